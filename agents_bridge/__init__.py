"""Kafka ↔ per-tenant OpenClaw gateways and channel APIs: one subpackage per process
(`openclaw-saas run forwarder|delivery|provisioner`), the three never import each other.

`forward`: messages.admitted → gateway → messages.outbound + session.events + usage.records.
`deliver`: messages.outbound → Telegram, WhatsApp, email; channel.statuses → PostgreSQL.
`provision`: tenants.lifecycle → PostgreSQL → Docker (the tenants' gateways).
Entry points live in `main` (forwarder, delivery) and `provision.worker` (provisioner);
`ports` holds the narrow protocols forward and deliver share. Imports only `common` and
`schemas`.
"""
