-- Billing lifecycle (Stripe) and provisioned gateways (issue 5).
--  * processed_stripe_events: every Stripe event applied, by its id (dedup; kept >= 30 days,
--    the time Stripe keeps events retrievable);
--  * billing_states: per tenant, the facts learnt from Stripe (JSON, merged by each object's
--    own timestamps, never by arrival order) and the status decided from them;
--  * gateway_units / gateway_unit_members: the containers the provisioner runs, a dedicated
--    gateway (one member) or a shared pool (many agents), and which tenant lives where.
CREATE TABLE processed_stripe_events (
  event_id     TEXT PRIMARY KEY,
  event_type   TEXT NOT NULL,
  tenant_id    UUID,
  occurred_at  TIMESTAMPTZ NOT NULL,
  processed_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE INDEX idx_processed_stripe_events_at ON processed_stripe_events(processed_at);

CREATE TABLE billing_states (
  tenant_id          UUID PRIMARY KEY,          -- no FK: facts may arrive before the tenant
  stripe_customer_id TEXT UNIQUE,
  facts              JSONB NOT NULL DEFAULT '{}',
  status             VARCHAR(20) NOT NULL DEFAULT 'pending',
  next_check_at      TIMESTAMPTZ,               -- when the clock alone changes the status
  updated_at         TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE INDEX idx_billing_states_next_check ON billing_states(next_check_at)
  WHERE next_check_at IS NOT NULL;

ALTER TABLE tenants ADD COLUMN stripe_customer_id TEXT UNIQUE;
ALTER TABLE subscriptions ADD COLUMN stripe_status TEXT;
ALTER TABLE subscriptions ADD COLUMN payment_failed_at TIMESTAMPTZ;
ALTER TABLE subscriptions ADD COLUMN grace_until TIMESTAMPTZ;
ALTER TABLE subscriptions ADD COLUMN delete_at TIMESTAMPTZ;
ALTER TABLE subscriptions ADD COLUMN updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW();
ALTER TABLE plans ADD COLUMN stripe_price_id TEXT UNIQUE;
ALTER TABLE plans ADD COLUMN pids_limit INT NOT NULL DEFAULT 1024;

CREATE TABLE gateway_units (
  name          TEXT PRIMARY KEY,                -- container, network and volume name stem
  kind          VARCHAR(20) NOT NULL CHECK (kind IN ('dedicated', 'pool')),
  plan_id       TEXT NOT NULL REFERENCES plans(id),  -- sizes the container
  capacity      INT NOT NULL DEFAULT 1,          -- agents it may host
  token         BYTEA NOT NULL,                  -- sealed gateway bearer token
  container_id  TEXT,
  base_url      TEXT,
  health        VARCHAR(20) NOT NULL DEFAULT 'starting',
  created_at    TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  updated_at    TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

CREATE TABLE gateway_unit_members (
  tenant_id     UUID PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
  unit_name     TEXT NOT NULL REFERENCES gateway_units(name) ON DELETE CASCADE,
  agent_id      TEXT NOT NULL,
  enabled       BOOLEAN NOT NULL DEFAULT true,
  UNIQUE (unit_name, agent_id)
);
CREATE INDEX idx_gateway_unit_members_unit ON gateway_unit_members(unit_name);

-- Stripe prices of the seeded plans (test mode ids; operators set their own).
UPDATE plans SET stripe_price_id = 'price_individual_monthly' WHERE id = 'individual';
UPDATE plans SET stripe_price_id = 'price_business_monthly' WHERE id = 'business';
UPDATE plans SET stripe_price_id = 'price_enterprise_monthly' WHERE id = 'enterprise';
