-- WhatsApp Cloud API (issue 4). One row per provider message id: what the platform sent
-- (accepted by the Graph API, then sent / delivered / read / failed from the webhook's
-- `statuses`) and the inbound messages it does not support yet (recorded, answered with
-- a notice). Written only by the status recorder (agents_bridge/deliver/statuses.py) from
-- the channel.statuses topic, in any order and any number of times:
--  * each status keeps its first timestamp (`<status>_at`), so a redelivery changes nothing;
--  * `status` only moves up `status_rank` (accepted 0 < sent 1 < delivered 2 < read 3 <
--    failed 4), so a late `delivered` never overwrites `read`;
--  * the sender's `accepted` row (reply_event_id, kind, chunk) and the webhook's statuses
--    may arrive in either order: missing columns are filled, never overwritten.
-- The channel column keeps the table usable by other channels' delivery results.
CREATE TABLE message_statuses (
  channel        VARCHAR(20) NOT NULL,
  message_id     TEXT NOT NULL,               -- WhatsApp wamid
  tenant_id      UUID NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  account_id     TEXT NOT NULL,               -- WhatsApp phone_number_id
  direction      VARCHAR(3) NOT NULL CHECK (direction IN ('in', 'out')),
  counterpart    TEXT NOT NULL,               -- the end user's wa_id
  kind           VARCHAR(40),                 -- out: text|template|notice; in: image, audio...
  reply_event_id TEXT,                        -- the messages.outbound event it delivered
  chunk          INT,                         -- part of a reply split at 4096 characters
  status         VARCHAR(20) NOT NULL,        -- accepted|sent|delivered|read|failed|received
  status_rank    SMALLINT NOT NULL,
  received_at    TIMESTAMPTZ,
  accepted_at    TIMESTAMPTZ,
  sent_at        TIMESTAMPTZ,
  delivered_at   TIMESTAMPTZ,
  read_at        TIMESTAMPTZ,
  failed_at      TIMESTAMPTZ,
  error_code     TEXT,                        -- Graph error code of a failure (131047...)
  error_title    TEXT,
  details        JSONB NOT NULL DEFAULT '{}',  -- pricing category, conversation id...
  updated_at     TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  PRIMARY KEY (channel, message_id)
);

CREATE INDEX idx_message_statuses_tenant ON message_statuses(tenant_id, updated_at DESC);
CREATE INDEX idx_message_statuses_reply ON message_statuses(reply_event_id)
  WHERE reply_event_id IS NOT NULL;
