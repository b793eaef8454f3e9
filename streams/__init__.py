"""The Faust stream worker: stateful, per-tenant processing of the message pipeline.

- `streams.agents.metering`: messages.inbound → messages.admitted | messages.held
  (+ session.events, usage.records), counting each tenant's messages exactly once per period
  in the `meter_state` table;
- `streams.agents.session_sync`: session.events → PostgreSQL (sessions, messages, usage_logs,
  session_stats), idempotent by event id.

`streams.main.run(settings)` starts both in one Faust worker.
"""
