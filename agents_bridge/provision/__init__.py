"""`openclaw-saas run provisioner`: tenants.lifecycle → PostgreSQL → Docker.

For each billing fact (a TenantLifecycle record from the Stripe webhook), in one lane per
tenant: apply it (dedup by event id, facts merged by the objects' own timestamps, status
decided at the clock's now; `BillingStore`), announce a status change on tenants.lifecycle
(`billing_event = "decision"`; the `payment_failed` one is the owner's notice, carrying the
owner's email and the grace deadline), then converge the gateway (`Provisioner`). The
offset is committed only after all of that, so a crash replays the event and the repeat
converges. A ticker re-decides tenants whose status the clock alone changes (grace over,
deletion due), and re-converges the gateways whose live tool policy did not read back.
The first tick gives every running gateway the current openclaw.json and reads its tool
policy back (`Provisioner.recheck`): none stays on an older policy. The clock is
injectable: tests move it by hand.

Failures: a record that is not a billing fact is dead-lettered (`bad_fact: …`); a store,
engine or channel-setup error fails the handler, so the worker retries the event; a
failed tick is logged and the next tick tries again.

`worker` (the service, its consumer, `run_provisioner`), `lifecycle` (the pure state
machine), `billing_store` (facts and statuses in PostgreSQL), `provisioner` (Docker),
`gateway_config` (openclaw.json), `units_store` (placement in pools), `channel_setup`
(Telegram webhooks), `policy_check` (the live tool policy read back).
"""
