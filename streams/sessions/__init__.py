"""Session-sync: session.events → PostgreSQL (sessions, messages, session_stats).

- `agent`: the Faust agent (`register`) and its handlers, batch by batch;
- `store`: the writes, idempotent by event id, one event or a batch in one transaction;
- `sql`: the statements `store` runs.
"""
