"""Kafka ↔ per-tenant OpenClaw gateways and channel APIs.

`forwarder`: messages.admitted → gateway → messages.outbound + session.events + usage.records.
`delivery`: messages.outbound → Telegram sendMessage. Entry points live in `main`.
Imports only `common` and `schemas`.
"""
