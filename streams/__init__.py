"""The Faust stream worker: stateful, per-tenant processing of the message pipeline.

- `streams.agents.metering`: messages.inbound → messages.admitted | the overage queue
  (+ session.events, usage.records, quota.alerts, held notices on messages.outbound),
  counting each tenant's messages exactly once per period in the `meter_state` table; and
  quota.releases → held messages released in order (`streams.overage`);
- `streams.agents.session_sync`: session.events → PostgreSQL (sessions, messages,
  session_stats), idempotent by event id;
- `streams.agents.usage_sink`: usage.records → PostgreSQL (usage_records, usage_logs),
  idempotent by usage id;
- `streams.agents.alert_mail`: quota.alerts → one email per alert to the tenant owner;
- `streams.release_watch`: a task asking for releases when a tenant's allowance changes.

`streams.main.run(settings)` starts all of them in one Faust worker.
"""
