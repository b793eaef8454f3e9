-- Quotas (issue 3): the overage queue, the alerts sent, and the usage ledger.
--  * held_messages is the per-tenant FIFO of held messages (original InboundMessage bytes),
--    ordered by seq. Metering keeps, in its own state, the seq up to which a tenant's
--    messages are released; released_at here follows that state (for operators and
--    `usage show`), it is not what decides.
--  * quota_alerts remembers every alert and whether its email went out (sent once).
--  * usage_records is the usage.records stream in PostgreSQL, one row per usage_id; the
--    row that inserts a usage_id is the only one that adds to usage_logs, whose period is
--    now the subscription period's start (UTC date) the record carries.

CREATE TABLE held_messages (
  seq           BIGSERIAL PRIMARY KEY,
  tenant_id     UUID NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  event_id      TEXT NOT NULL UNIQUE,
  conversation  TEXT NOT NULL,               -- <channel>:<conversation_id>
  period_start  TIMESTAMPTZ NOT NULL,        -- the period in which it was held
  payload       BYTEA NOT NULL,              -- the InboundMessage as it arrived
  held_at       TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  released_at   TIMESTAMPTZ
);
CREATE INDEX idx_held_messages_tenant ON held_messages(tenant_id, seq);
CREATE INDEX idx_held_messages_pending ON held_messages(tenant_id) WHERE released_at IS NULL;

CREATE TABLE quota_alerts (
  alert_id      TEXT PRIMARY KEY,            -- <tenant_id>:<period_start ms>:<level>
  tenant_id     UUID NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  plan_id       TEXT NOT NULL,
  level         VARCHAR(10) NOT NULL CHECK (level IN ('soft', 'hard')),
  used          BIGINT NOT NULL,
  msg_limit     BIGINT NOT NULL,
  period_start  TIMESTAMPTZ NOT NULL,
  message       TEXT NOT NULL,
  created_at    TIMESTAMPTZ NOT NULL,
  emailed_to    TEXT,
  emailed_at    TIMESTAMPTZ
);
CREATE INDEX idx_quota_alerts_tenant ON quota_alerts(tenant_id, period_start);

CREATE TABLE usage_records (
  usage_id      TEXT PRIMARY KEY,            -- msg:<event_id> | tok:<event_id>
  tenant_id     UUID NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  kind          VARCHAR(10) NOT NULL CHECK (kind IN ('message', 'tokens')),
  plan_id       TEXT NOT NULL,
  period_start  TIMESTAMPTZ NOT NULL,
  period_end    TIMESTAMPTZ NOT NULL,
  channel       VARCHAR(20) NOT NULL,
  messages      BIGINT NOT NULL DEFAULT 0,
  input_tokens  BIGINT NOT NULL DEFAULT 0,
  output_tokens BIGINT NOT NULL DEFAULT 0,
  recorded_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX idx_usage_records_period ON usage_records(tenant_id, period_start);
