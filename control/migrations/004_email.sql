-- Email channel (issue 4). A tenant whose email binding says {"reply_mode": "approve"}
-- gets its agent's replies kept here instead of sent; `openclaw-saas email approve <id>`
-- sends one through the SMTP relay, `email discard <id>` drops it. The row holds the reply
-- exactly as it will go out (threading headers included), so what is approved is what is
-- sent. Written by the delivery worker (agents_bridge/deliver/email_drafts.py), once per reply
-- event however often Kafka redelivers it (event_id is unique).
CREATE TABLE email_drafts (
  id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  tenant_id        UUID NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  event_id         TEXT UNIQUE NOT NULL,        -- the messages.outbound reply event
  conversation_id  TEXT NOT NULL,               -- the thread root Message-ID
  from_address     TEXT NOT NULL,               -- the agent's address
  to_address       TEXT NOT NULL,               -- the customer (Reply-To or From)
  subject          TEXT NOT NULL,
  in_reply_to      TEXT,
  thread_references TEXT NOT NULL DEFAULT '',   -- the References header
  message_id       TEXT NOT NULL,
  body             TEXT NOT NULL,
  status           VARCHAR(20) NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'sent', 'discarded')),
  created_at       TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  decided_at       TIMESTAMPTZ
);

CREATE INDEX idx_email_drafts_pending ON email_drafts(tenant_id, created_at)
  WHERE status = 'pending';
