-- What happened to each outbound message (agents_bridge/deliver/log.py): one row per chunk
-- of a reply (a long Telegram reply goes out as several messages), written by the
-- delivery worker after each send. Keyed by (event_id, chunk) so replays are idempotent;
-- a 'failed' row may be replaced by a later result, a 'sent' one never by the worker.
-- 'delivered' and 'read' are for channels that report receipts (WhatsApp statuses).
CREATE TABLE outbound_deliveries (
  event_id            TEXT NOT NULL,          -- the reply's event id (messages.outbound)
  chunk               INT NOT NULL CHECK (chunk >= 0),
  chunks              INT NOT NULL CHECK (chunks > chunk),
  tenant_id           UUID NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  channel             VARCHAR(20) NOT NULL,
  conversation_id     TEXT NOT NULL,
  status              VARCHAR(20) NOT NULL
                      CHECK (status IN ('sent', 'delivered', 'read', 'failed')),
  provider_message_id TEXT,                   -- Telegram message_id, WhatsApp wamid, ...
  error               TEXT,                   -- why it failed (never a secret)
  created_at          TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  updated_at          TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  PRIMARY KEY (event_id, chunk)
);

CREATE INDEX idx_outbound_deliveries_tenant ON outbound_deliveries(tenant_id, created_at);
CREATE INDEX idx_outbound_deliveries_provider ON outbound_deliveries(channel, provider_message_id)
  WHERE provider_message_id IS NOT NULL;
