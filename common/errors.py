"""The two kinds of failure a consumer knows, and nothing in between.

`InvalidEvent`: the event can never succeed (bad payload, unknown tenant, a permanent
4xx from a provider). It goes to the stage's dead-letter topic with the reason, is
counted, and its offset is committed.

`RetryableError`: the event may succeed later (broker down, gateway timeout, 5xx, 429).
It is retried with bounded backoff; when the attempts run out the consumer stops
committing (backpressure) rather than acknowledging silently.
"""


class PipelineError(Exception):
    """Root of the project's own errors."""


class InvalidEvent(PipelineError):
    """Never retry: dead-letter with `reason`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RetryableError(PipelineError):
    """Try again later; `retry_after` (seconds) when the other side said how long."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class KafkaUnavailable(RetryableError):
    """The broker did not acknowledge in time: the caller must not acknowledge upstream."""
