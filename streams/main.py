"""Run the stream worker: `await run(settings)` until SIGINT or SIGTERM.

Starts the Faust worker programmatically (no `faust` CLI, so no web server and no
command-line defaults overriding the app's settings): the tenant directory, the producer
and the PostgreSQL pool are opened first, the agents are registered on a fresh app, the
tables' changelog topics are created (the app may not declare topics), and then a
`faust.Worker` runs on the current event loop. A stage whose dead-letter breaker trips
stops the worker, and `run` then raises `DlqBreakerTripped` (the CLI exits non-zero).
Logging is set up by the caller (the CLI); `run` serves /metrics when METRICS_PORT is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import warnings
from collections.abc import Awaitable, Callable

import faust

from common.breaker import DlqBreakerTripped
from common.db import open_pool
from common.directory import Directory
from common.kafka import EventProducer, create_topics
from common.settings import Settings
from common.signals import on_stop_signals
from common.telemetry import serve_metrics
from streams.alerts import agent as alert_mail
from streams.alerts.mailer import AlertMailer, PgAlertLedger, SmtpMailer
from streams.app import create_app
from streams.boundary import OnTrip, Producer
from streams.gauges import gauge_reporting
from streams.metering import agent as metering
from streams.metering.core import Tenants
from streams.metering.held_store import HeldQueue, PgHeldQueue
from streams.metering.release_watch import ReleaseWatch
from streams.sessions import agent as session_sync
from streams.sessions.store import PgSessionsStore, SessionsStore
from streams.usage import agent as usage_sink
from streams.usage.store import PgUsageStore, UsageStore

log = logging.getLogger(__name__)

#: Seconds allowed for the Faust worker to stop (commit, flush the changelogs, leave).
STOP_GRACE_S = 30.0


def build_app(
    settings: Settings,
    *,
    tenants: Tenants,
    producer: Producer,
    store: SessionsStore,
    held: HeldQueue,
    usage: UsageStore,
    mailer: AlertMailer,
    refresh: Callable[[], Awaitable[None]] | None = None,
    on_trip: OnTrip | None = None,
) -> faust.App:
    """The app with every agent (and the `meter_state` table) registered; `on_trip(reason)`
    is called when a stage's dead-letter breaker trips."""
    app = create_app(settings)
    metering.register(
        app,
        settings,
        tenants=tenants,
        producer=producer,
        held=held,
        refresh=refresh,
        on_trip=on_trip,
    )
    session_sync.register(app, settings, store=store, producer=producer, on_trip=on_trip)
    usage_sink.register(app, settings, store=usage, producer=producer, on_trip=on_trip)
    alert_mail.register(app, settings, mailer=mailer, producer=producer, on_trip=on_trip)
    return app


class StopOnTrip:
    """`on_trip` for the worker: the first stage whose breaker trips stops it (sets `stop`);
    `raise_if_tripped` then makes the process exit non-zero, like `KafkaWorker.run`."""

    def __init__(self, stop: asyncio.Event) -> None:
        self._stop = stop
        self.reason: str | None = None

    def __call__(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        self._stop.set()

    def raise_if_tripped(self) -> None:
        if self.reason is not None:
            raise DlqBreakerTripped(self.reason)


def changelog_topics(app: faust.App) -> list[tuple[str, int]]:
    """(name, partitions) of every table's changelog topic."""
    conf = app.conf
    return [
        (table.changelog_topic.get_topic_name(), table.partitions or conf.topic_partitions)
        for table in app.tables.values()
    ]


def ensure_changelog_topics(settings: Settings, app: faust.App) -> list[str]:
    """Create the compacted changelog topics that are missing; returns the names created.

    Blocking (confluent-kafka admin calls): run it in an executor from async code.
    """
    return create_topics(
        settings, dict(changelog_topics(app)), config={"cleanup.policy": "compact"}
    )


async def serve(app: faust.App, stop: asyncio.Event, *, grace_s: float | None = None) -> None:
    """Run `app` in a Faust worker on this loop until `stop` is set or the app crashes.

    On stop, the event each agent has in flight is abandoned unacknowledged (its offset is
    not committed; it is consumed again after the restart, and both agents are idempotent).
    Faust would otherwise wait for it to be acked, forever if it is being retried because
    the database or the broker is down. The stop itself is bounded by `grace_s` (default
    `STOP_GRACE_S`). Raises the crash reason when the app crashed (exit non-zero).
    """
    worker = _Worker(
        app,
        loop=asyncio.get_running_loop(),
        quiet=True,
        override_logging=False,  # keep the process's logging set-up
        redirect_stdouts=False,
        daemon=False,  # start() returns once started; we wait below
    )
    worker.spinner = None  # no terminal progress output
    starting = asyncio.ensure_future(worker.start())
    stopping = asyncio.ensure_future(stop.wait())
    ended = asyncio.ensure_future(worker.wait_until_stopped())  # stopped or crashed
    try:
        while not (stopping.done() or ended.done()):
            waiting = {stopping, ended} if starting.done() else {stopping, ended, starting}
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if starting.done() and not starting.cancelled():
                failure = starting.exception()
                if failure is not None:
                    raise failure
    finally:
        log.info("stream worker stopping")
        _do_not_wait_for_events_in_flight(app)
        grace = STOP_GRACE_S if grace_s is None else grace_s
        try:
            await asyncio.wait_for(worker.stop(), grace)
        except TimeoutError:
            log.error("stream worker did not stop within %.0fs; exiting anyway", grace)
        for task in (starting, stopping, ended):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if worker.crash_reason is not None:
        raise worker.crash_reason


def _do_not_wait_for_events_in_flight(app: faust.App) -> None:
    # `stream_wait_empty` stays on while running, so a rebalance lets the event in flight
    # finish before tables change owner; at stop it goes off (Faust reads it at that point).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # AlreadyConfiguredWarning: intended
        app.conf.stream_wait_empty = False


class _Worker(faust.Worker):
    """A Faust worker that leaves signal handling to `run()`."""

    def install_signal_handlers(self) -> None:
        # mode would bind SIGINT/SIGTERM to its own shutdown and SIGUSR2 to pdb.
        return None


async def run(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """Run every agent until SIGINT/SIGTERM (or `stop` is set), then stop. Raises
    `DlqBreakerTripped` (exit non-zero) when a stage's dead-letter breaker stopped it."""
    stop = stop if stop is not None else asyncio.Event()
    trips = StopOnTrip(stop)
    serve_metrics(settings.metrics_port, settings.metrics_host)
    with on_stop_signals(stop.set):
        async with contextlib.AsyncExitStack() as resources:
            directory = Directory(settings)
            await directory.start()
            resources.push_async_callback(directory.stop)
            pool = await open_pool(settings)
            resources.push_async_callback(pool.close)
            producer = EventProducer(settings)
            resources.push_async_callback(_close_producer, producer)
            app = build_app(
                settings,
                tenants=directory,
                producer=producer,
                store=PgSessionsStore(pool),
                held=PgHeldQueue(pool),
                usage=PgUsageStore(pool),
                mailer=AlertMailer(
                    settings,
                    PgAlertLedger(pool),
                    SmtpMailer(settings.smtp_relay_host, settings.smtp_relay_port),
                ),
                refresh=directory.reload,
                on_trip=trips,
            )
            loop = asyncio.get_running_loop()
            created = await loop.run_in_executor(None, ensure_changelog_topics, settings, app)
            if created:
                log.info("created changelog topics %s", created)
            await resources.enter_async_context(gauge_reporting(settings, app))
            watch = asyncio.create_task(ReleaseWatch(directory, producer, pool).run())
            resources.push_async_callback(_cancel, watch)
            await serve(app, stop)
    log.info("stream worker stopped")
    trips.raise_if_tripped()


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _close_producer(producer: EventProducer) -> None:
    await asyncio.get_running_loop().run_in_executor(None, producer.close)
