"""`openclaw-saas run delivery`: consumes messages.outbound → sends each reply on its channel
(Telegram, WhatsApp, email); beside it, channel.statuses → PostgreSQL `message_statuses`.

The lane is `tenant:conversation`, so the replies of one chat go out one at a time and in
order. The router (`worker.Delivery`) hands each reply to its channel's `ChannelDelivery`
(`channel`), every channel plugged in the same way; a channel without one is dead-lettered
`channel_not_supported_yet`. A reply longer than a channel's limit (4096 characters for
Telegram and WhatsApp; `text.split_text`) goes out as several messages, and each chunk's
result is recorded in `outbound_deliveries` (`log`).

Telegram (`telegram`): paced per chat and per bot (`pacing`); each call is retried
`settings.sender_attempts` times, waiting at least the `retry_after` Telegram asked for on
a 429; then the reply is dead-lettered (`telegram_unavailable: …`). A permanent refusal
(400 chat not found, 403 bot blocked, 401 revoked token), an unknown tenant, or a tenant
without a Telegram bot → `InvalidEvent` → messages.outbound.dlq. WhatsApp (`whatsapp`) and
email (`email`, `email_drafts`) tell their own rules.

Idempotency has an at-least-once limit: this process remembers (bounded) the reply
event_ids it delivered, and the chunks already sent are read back from
`outbound_deliveries`, so a redelivery sends nothing twice. Only a crash between a send
and its record can make Telegram receive that chunk again; the Bot API has no
idempotency key to prevent that.

The status recorder (`statuses`) writes channel.statuses as idempotent upserts; a row
PostgreSQL can never take is dead-lettered, connection failures are retried. `group`
runs it and the delivery worker as one process.

Each channel is a pair: `<channel>.py` (the deliverer) and `<channel>_api.py` (the
provider's API, every answer classified); email's second file is `email_drafts.py`.
"""
