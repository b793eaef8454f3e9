"""Usage sink: usage.records → PostgreSQL (usage_records, usage_logs).

- `agent`: the Faust agent (`register`) and its handlers, batch by batch;
- `store`: the ledger and the per-period totals, idempotent by usage id.
"""
