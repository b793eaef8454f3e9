"""The shared kernel: settings, topics, errors, Kafka producer/consumer plumbing, telemetry.

`ingress`, `streams` and `agents_bridge` import from here and from `schemas`, never from
each other. Nothing here imports those three packages.
"""
