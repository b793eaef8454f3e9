"""The chaos harness of issue 7: `python -m chaos` (`make chaos`) and the short test run.

`chaos.plan` (sizes and the seeded fault timetable), `chaos.world` (tenants, stand-ins,
services), `chaos.load` (the end users and the ledger of answers), `chaos.faults` (kills,
server restarts, gateway modes), `chaos.invariants` (the four checks), `chaos.run` (one run
end to end). `chaos.gateways.StubGateways` serves every tenant's gateway on one port with
its own URL and token, records what reached which gateway and can make one hang or fail;
the isolation test uses it too.
"""
