"""The Faust stream worker: stateful, per-tenant processing of the message pipeline.

One subpackage per agent domain, each with an `agent` module whose `register(app, ...)`
adds its Faust agents:

- `streams.metering`: messages.inbound → messages.admitted | the overage queue
  (+ session.events, usage.records, quota.alerts, held notices on messages.outbound),
  counting each tenant's messages exactly once per period in the `meter_state` table; and
  quota.releases → held messages released in order (`streams.metering.overage`); plus
  `streams.metering.release_watch`, a task asking for releases when a tenant's allowance
  changes;
- `streams.sessions`: session.events → PostgreSQL (sessions, messages, session_stats),
  idempotent by event id;
- `streams.usage`: usage.records → PostgreSQL (usage_records, usage_logs), idempotent by
  usage id;
- `streams.alerts`: quota.alerts → one email per alert to the tenant owner.

Shared by them: `streams.boundary` (what happens when handling an event fails, and the
batches), `streams.topics` (Faust topics and events), `streams.app` (the Faust app) and
`streams.gauges`. `streams.main.run(settings)` starts all of them in one Faust worker.
"""
