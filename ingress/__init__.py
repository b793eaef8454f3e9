"""Ingress: the outside world → Kafka. Thin on purpose: verify, parse, produce, ack.

One pair of modules per channel: `<channel>.py` is the HTTP handler and registers its
routes with `setup(app)` (`routes.py` calls each in turn); `<channel>_payload.py` is the
pure half that turns a verified body into records (no I/O, no clock, no settings).

- Telegram  `telegram.py` + `telegram_payload.py`: POST /webhooks/telegram/{bot_id} →
  messages.inbound (InboundMessage, keyed by tenant_id).
- WhatsApp  `whatsapp.py` + `whatsapp_payload.py`: GET/POST /webhooks/whatsapp →
  messages.inbound, messages.outbound ("not supported yet" notices), channel.statuses.
- Stripe    `stripe.py` + `stripe_payload.py`: POST /webhooks/stripe → tenants.lifecycle
  (TenantLifecycle, keyed by the tenant derived from the Stripe customer).
- Email     `smtp/`: a second server (aiosmtpd, `openclaw-saas run smtp`) → messages.inbound.

A webhook is acknowledged (200) only after the broker acknowledged its events; when Kafka
is down the answer is 503, so that the sender delivers it again.

Entry points: `create_app(settings, producer=..., directory=...)` (injected collaborators,
used by tests), `build_app(settings)` (real EventProducer + Directory, owned by the app's
cleanup context) and `run(settings)` (serve until SIGINT/SIGTERM).
"""

from ingress.app import build_app, create_app
from ingress.main import run

__all__ = ["build_app", "create_app", "run"]
