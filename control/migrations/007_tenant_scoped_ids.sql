-- Event and usage ids are unique per tenant (issue 3). They are globally unique by
-- construction (derived from the channel's own message id), but a collision between two
-- tenants must never let one tenant's held message or usage record hide another's.
ALTER TABLE held_messages DROP CONSTRAINT held_messages_event_id_key;
ALTER TABLE held_messages ADD CONSTRAINT held_messages_tenant_event_key UNIQUE (tenant_id, event_id);

ALTER TABLE usage_records DROP CONSTRAINT usage_records_pkey;
ALTER TABLE usage_records ADD PRIMARY KEY (tenant_id, usage_id);
