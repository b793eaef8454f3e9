-- Tables of the platform design (seed 004, section 3), with the additions routing,
-- lifecycle and idempotent session sync need. Deviations from the seed, and why:
--  * plans.id is a readable text key ('individual', ...) and carries every limit,
--    the tenancy mode and the container resources (plans are data, not code);
--  * messages.event_id is unique: replaying session.events leaves the same rows;
--  * channel_bindings and tenant_gateways hold routing; secrets are sealed (AES-GCM).
CREATE EXTENSION IF NOT EXISTS pgcrypto;

CREATE TABLE users (
  id            UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  email         VARCHAR(255) UNIQUE NOT NULL,
  password_hash VARCHAR(255) NOT NULL DEFAULT '',
  created_at    TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  updated_at    TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

CREATE TABLE tenants (
  id            UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id       UUID REFERENCES users(id) ON DELETE CASCADE,
  agent_id      VARCHAR(100) UNIQUE NOT NULL,
  display_name  VARCHAR(255),
  status        VARCHAR(20) NOT NULL DEFAULT 'active',  -- active, grace, suspended, deleted
  created_at    TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  CONSTRAINT tenants_agent_id_format CHECK (agent_id ~ '^[a-z0-9_][a-z0-9_-]{0,63}$')
);

CREATE TABLE plans (
  id                 TEXT PRIMARY KEY,
  name               VARCHAR(100) NOT NULL,
  price_monthly      DECIMAL(10,2),
  msg_limit          INT,            -- messages per period, NULL = unlimited
  agent_limit        INT,            -- NULL = unlimited
  automation_limit   INT,
  integration_limit  INT,
  channel_limit      INT,
  storage_mb         INT,
  tenancy_mode       VARCHAR(20) NOT NULL CHECK (tenancy_mode IN ('shared_pool', 'dedicated')),
  memory_mb          INT,            -- container memory limit for this plan's gateway
  cpus               NUMERIC(4,2),   -- container CPU limit
  upgrade_to         TEXT REFERENCES plans(id),
  features           JSONB NOT NULL DEFAULT '{}'
);

CREATE TABLE subscriptions (
  id                   UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id            UUID NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  plan_id              TEXT NOT NULL REFERENCES plans(id),
  status               VARCHAR(20) NOT NULL DEFAULT 'active',
  current_period_start TIMESTAMPTZ NOT NULL,
  current_period_end   TIMESTAMPTZ NOT NULL,
  stripe_subscription_id TEXT UNIQUE,
  created_at           TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  UNIQUE (tenant_id)
);

CREATE TABLE usage_logs (
  id            UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id     UUID REFERENCES tenants(id) ON DELETE CASCADE,
  period        DATE NOT NULL,
  message_count INT NOT NULL DEFAULT 0,
  token_count   BIGINT NOT NULL DEFAULT 0,
  UNIQUE (tenant_id, period)
);

CREATE TABLE tenant_configs (
  id            UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id     UUID REFERENCES tenants(id) ON DELETE CASCADE,
  config_type   VARCHAR(50) NOT NULL,
  config_key    VARCHAR(100) NOT NULL,
  config_value  JSONB NOT NULL,
  enabled       BOOLEAN NOT NULL DEFAULT true,
  updated_at    TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  synced_at     TIMESTAMPTZ,
  UNIQUE (tenant_id, config_type, config_key)
);

CREATE TABLE sessions (
  id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id       UUID REFERENCES tenants(id) ON DELETE CASCADE,
  session_id      TEXT NOT NULL,              -- <channel>:<conversation_id>
  channel         VARCHAR(50),
  started_at      TIMESTAMPTZ,
  last_message_at TIMESTAMPTZ,
  message_count   INT NOT NULL DEFAULT 0,
  metadata        JSONB,
  UNIQUE (tenant_id, session_id)
);

CREATE TABLE messages (
  id            UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  event_id      TEXT UNIQUE NOT NULL,         -- pipeline event id: the idempotency key
  tenant_id     UUID REFERENCES tenants(id) ON DELETE CASCADE,
  session_id    TEXT NOT NULL,
  role          VARCHAR(20) NOT NULL,
  content       TEXT,
  status        VARCHAR(20) NOT NULL DEFAULT 'admitted',
  token_count   INT,
  input_tokens  INT,
  output_tokens INT,
  in_reply_to   TEXT,
  created_at    TIMESTAMPTZ NOT NULL,
  metadata      JSONB,
  CONSTRAINT fk_session FOREIGN KEY (tenant_id, session_id)
    REFERENCES sessions(tenant_id, session_id) ON DELETE CASCADE
);

CREATE TABLE session_stats (
  tenant_id     UUID REFERENCES tenants(id) ON DELETE CASCADE,
  period        DATE NOT NULL,
  channel       VARCHAR(50) NOT NULL,
  session_count INT NOT NULL DEFAULT 0,
  message_count INT NOT NULL DEFAULT 0,
  avg_response_time_ms INT,
  PRIMARY KEY (tenant_id, period, channel)
);

CREATE INDEX idx_messages_tenant_session ON messages(tenant_id, session_id, created_at);
CREATE INDEX idx_messages_created ON messages(created_at);
CREATE INDEX idx_sessions_tenant ON sessions(tenant_id, last_message_at DESC);

-- Routing: each binding is unique across all tenants.
CREATE TABLE channel_bindings (
  id            UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id     UUID NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  channel       VARCHAR(20) NOT NULL CHECK (channel IN ('telegram', 'whatsapp', 'email')),
  external_id   TEXT NOT NULL,                -- telegram bot id, phone_number_id, mail local part
  secret_hash   BYTEA,                        -- sha256 of the webhook secret token
  credentials   BYTEA,                        -- sealed JSON (bot token, access token, ...)
  settings      JSONB NOT NULL DEFAULT '{}',
  created_at    TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  UNIQUE (channel, external_id)
);

CREATE TABLE tenant_gateways (
  tenant_id     UUID PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
  base_url      TEXT NOT NULL,
  token         BYTEA NOT NULL,               -- sealed gateway bearer token
  agent_id      TEXT NOT NULL,
  mode          VARCHAR(20) NOT NULL DEFAULT 'dedicated',
  updated_at    TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

-- Ingress, metering and the bridge keep an in-memory directory; this tells them to reload.
CREATE FUNCTION notify_directory_changed() RETURNS trigger AS $$
BEGIN
  PERFORM pg_notify('directory_changed', TG_TABLE_NAME);
  RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER tenants_directory AFTER INSERT OR UPDATE OR DELETE ON tenants
  FOR EACH STATEMENT EXECUTE FUNCTION notify_directory_changed();
CREATE TRIGGER subscriptions_directory AFTER INSERT OR UPDATE OR DELETE ON subscriptions
  FOR EACH STATEMENT EXECUTE FUNCTION notify_directory_changed();
CREATE TRIGGER bindings_directory AFTER INSERT OR UPDATE OR DELETE ON channel_bindings
  FOR EACH STATEMENT EXECUTE FUNCTION notify_directory_changed();
CREATE TRIGGER gateways_directory AFTER INSERT OR UPDATE OR DELETE ON tenant_gateways
  FOR EACH STATEMENT EXECUTE FUNCTION notify_directory_changed();
CREATE TRIGGER plans_directory AFTER INSERT OR UPDATE OR DELETE ON plans
  FOR EACH STATEMENT EXECUTE FUNCTION notify_directory_changed();

-- Seeded plans (SPEC.md "Plans and quotas"). Container figures: a 2026.9 gateway needs
-- ~1-1.5 GB, so Individual tenants share a pool gateway (pool container sized here).
INSERT INTO plans (id, name, price_monthly, msg_limit, agent_limit, automation_limit,
                   integration_limit, storage_mb, tenancy_mode, memory_mb, cpus, upgrade_to)
VALUES
  ('enterprise', 'Enterprise', 999.00, NULL, NULL, NULL, NULL, NULL, 'dedicated', 4096, 2.0, NULL),
  ('business', 'Business', 199.00, 10000, 3, NULL, 10, 10240, 'dedicated', 1536, 1.0, 'enterprise'),
  ('individual', 'Individual', 49.00, 1000, 1, 5, 3, 1024, 'shared_pool', 3072, 1.0, 'business');
