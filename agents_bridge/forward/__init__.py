"""`openclaw-saas run forwarder`: consumes messages.admitted → calls the tenant's OpenClaw
gateway → produces messages.outbound (the reply), session.events (message_out) and
usage.records (tokens).

Flow control: the worker's lane is the conversation (`tenant:channel:conversation`), so one
conversation has at most one gateway request in flight and its turns stay in order (the
gateway fails racing first turns of a new session). Different conversations run
concurrently, but each tenant holds at most `settings.gateway_concurrency_per_tenant`
requests, so one slow tenant cannot take every in-flight slot of the worker.

Failure handling: an unknown tenant, a tenant without a gateway, or a gateway that rejects
the request → `InvalidEvent` (messages.admitted.dlq). A tenant whose gateway is still being
provisioned (bought a moment ago, or back from suspension) is waited for: `RetryableError`
for up to `PROVISIONING_WAIT_S` after the message was metered, only then `no_gateway`.
Retryable gateway failures are retried `settings.gateway_attempts` times; then
`InvalidEvent("gateway_unavailable: …")`, so no message is dropped silently. The three
produces are awaited before the handler returns, so the offset is committed only after the
side effect.

While the gateway works, `indicator` shows it to the user (Telegram: "typing…",
`agents_bridge.forward.typing_indicator`); best effort, it never delays or fails the message.

Delivery is at least once: after a crash between the gateway answer and the produces the
message is forwarded again (a second agent turn). Within one process, an answer whose
produces failed is kept (bounded) and re-published on retry without asking the gateway again.
Downstream consumers deduplicate by `event_id` / `usage_id`.

`worker` (the handler and its consumer), `gateway_client` (HTTP to the gateway),
`typing_indicator` (Telegram "typing…").
"""
