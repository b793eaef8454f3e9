"""Webhook ingress: the outside world → Kafka. Thin on purpose: verify, normalise, produce, ack.

POST /webhooks/telegram/{bot_id} → messages.inbound (InboundMessage, keyed by tenant_id).
An update is acknowledged (200) only after the broker acknowledged the event; when Kafka
is down the answer is 503 so that Telegram delivers the update again.

Entry points: `create_app(settings, producer=..., directory=...)` (injected collaborators,
used by tests), `build_app(settings)` (real EventProducer + Directory, owned by the app's
cleanup context) and `run(settings)` (serve until SIGINT/SIGTERM).
"""

from ingress.app import build_app, create_app
from ingress.main import run

__all__ = ["build_app", "create_app", "run"]
