"""`make bench`: the pipeline's figures on the real broker and database, each beside a bare
baseline measured in the same run (docs/benchmarks.md).

- `bench.__main__`: the run: servers, tenants, then the phases, a table, bench/results.json;
- `bench.world`: the devstack servers, settings per phase, 1,000 tenants, the services;
- `bench.ingress`, `bench.metering`, `bench.session_sync`, `bench.e2e`: one phase each;
- `bench.stub`: the stub OpenClaw gateway + Telegram Bot API (records arrival times);
- `bench.bare`, `bench.raw`, `bench.load`: baselines and load generators (own processes);
- `bench.report`: figures, the machine, the table and the JSON.
"""
