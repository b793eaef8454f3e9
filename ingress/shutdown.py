"""Graceful stop of the ingress processes (HTTP and SMTP): the grace period in-flight
work gets (the signals: `common.signals`)."""

from __future__ import annotations

# Added to one broker acknowledgement timeout: the time in-flight work gets on shutdown.
_GRACE_SLACK_S = 5.0


def grace_s(send_timeout_s: float) -> float:
    """Seconds in-flight work gets on shutdown when each waits at most `send_timeout_s`."""
    return send_timeout_s + _GRACE_SLACK_S
