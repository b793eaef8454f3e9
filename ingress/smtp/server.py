"""The SMTP protocol object: aiosmtpd's `SMTP` with our limits, counting its own refusals.

aiosmtpd refuses an oversized message itself, before the handler sees it: at `MAIL FROM`
when the client announced a `SIZE=` above the limit, else after the data with
`552 Error: Too much mail data`. `AgentSMTP` counts those 552s so that every rejection
has a metric, wherever it is decided.
"""

from __future__ import annotations

import asyncio
from typing import Any, AnyStr

from aiosmtpd.smtp import SMTP

from common.settings import Settings
from common.telemetry import INGRESS_REJECTIONS, INGRESS_REQUESTS
from ingress.smtp.handler import CHANNEL, MailHandler

# Seconds a connection may stay silent before the server hangs up (RFC 5321 suggests 5 min).
IDLE_TIMEOUT_S = 300.0


class AgentSMTP(SMTP):
    """`SMTP` that counts the 552 (too large) answers aiosmtpd gives on its own."""

    async def push(self, status: AnyStr) -> None:
        head = status[:3]
        if head in ("552", b"552"):
            INGRESS_REJECTIONS.labels(CHANNEL, "too_large").inc()
            INGRESS_REQUESTS.labels(CHANNEL, "rejected").inc()
        await super().push(status)


def smtp_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments of `AgentSMTP` (also what tests give aiosmtpd's `Controller`)."""
    return {
        "data_size_limit": settings.smtp_max_message_bytes,
        "hostname": settings.mail_domain,
        "timeout": IDLE_TIMEOUT_S,
        "enable_SMTPUTF8": True,  # internationalised sender addresses
        "decode_data": False,  # the raw bytes go to the email parser
        "auth_required": False,  # an MX: other MTAs do not authenticate
    }


def protocol_factory(
    handler: MailHandler, settings: Settings, loop: asyncio.AbstractEventLoop
) -> AgentSMTP:
    return AgentSMTP(handler, loop=loop, **smtp_options(settings))
