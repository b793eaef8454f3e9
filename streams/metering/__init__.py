"""Metering: messages.inbound → messages.admitted | the overage queue, and
quota.releases → held messages released in order.

The tenant's plan and period come from the in-memory `common.directory.Directory` (loaded
from PostgreSQL, refreshed by LISTEN/NOTIFY: no database call per message); the count lives
in the `meter_state` table (one JSON value per tenant, see `streams.metering.state`).

Group commit. The agent takes what the stream has buffered (`boundary.batches`, up to
`BATCH_MAX`, never waiting for more) and handles it as one group: it decides every event in
order with the pure `decide` (each tenant's state updated in memory), writes each touched
tenant's state to the table once (one changelog record per tenant), waits once until the
broker has acknowledged them all (`faust_private.ChangelogAcks`), then starts every output
of the group and waits for all their acknowledgements (broker acks, the queue rows committed
in PostgreSQL) before the events are acked. So the state is durable before any output
exists, and a redelivered event always finds its verdict: it is never decided a second time,
not even after the plan or the period changed in between; its outputs are sent again, the
same.

A group stops before an event whose decision would push a verdict of the same group out of
the tenant's window of recent verdicts (`state.RECENT_EVENTS`): every event with
unsent outputs must stay in the window so a replay re-sends them. Events that need more than
a decision go the slow way, one at a time after the group before them is committed: a tenant
with held messages and room again (release first, see below), the event that triggered the
latest release (its outputs are re-sent), an unknown tenant (directory reload, dead letter)
and anything undecodable. When committing a group fails, each of its events is handled again
on its own (`Boundary.each`): replays by then, so nothing is counted twice.

Outputs of an admitted message, started in this order: the session event (so session-sync
usually stores the user message before the bridge's reply to it; it also copes with the
reverse), a soft alert when one is due, messages.admitted and the usage record. Of a held
message: the session event, the hard alert when one is due, messages.held (the original
bytes, an audit log), the polite notice to the end user (messages.outbound) and the queue
row (PostgreSQL; one tenant's rows are inserted one after the other, in decision order, so
`seq` keeps the original order).

Releases: before a new message of a tenant with held messages and room (after an upgrade or
in a new period) is decided, the held ones are released first, so nothing overtakes them; a
release request (`release_watch`, `openclaw-saas overage release`) does the same for
a tenant that sends nothing. Both agents share the table and take one lock (a group holds it
from its first decision to its last output), so a tenant's state has one writer at a time;
the state's `last_release` names the event that triggered the latest release, and handling
that event again re-sends the release's outputs.

The parsed states of recently seen tenants are kept in memory (`core.STATE_CACHE`); every
write goes through that cache, and the cache is dropped whenever partitions move (Faust then
rebuilds the table from its changelog).

The modules, in the order of a message:

- `agent`: the Faust wiring (the table, the metering agent, the release agent);
- `handler`: `Metering`, one event; `group`: a batch, by group commit; `release`: releases;
- `core`: what the handlers share (the lock, the state cache, tenant lookups, counts);
- `decide`: the pure decision; `overage`: the pure release plan; `state`: the meter state
  and its storage form;
- `outputs`: the records sent (session event, admitted, usage, alert, notice) and their sends;
- `held_store`: the overage queue in PostgreSQL; `release_watch`: release requests when a
  tenant's allowance changes;
- `faust_private`: every use of Faust internals.
"""
