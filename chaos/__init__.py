"""Pieces of the chaos harness (issue 7); so far the per-tenant stub gateways.

`chaos.gateways.StubGateways` serves every tenant's gateway on one port with its own URL
and token, records what reached which gateway and can make one hang or fail; the isolation
test uses it. The harness itself (`python -m chaos`, `make chaos`) is not written yet.
"""
