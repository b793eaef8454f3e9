"""`python -m bench` (what `make bench` runs): every figure of docs/benchmarks.md.

Starts a durable PostgreSQL and a Kafka broker (devstack), the stub gateway, 1,000 tenants,
then runs the phases in turn, each on its own topic prefix: ingress (whose updates feed)
metering, session-sync, end to end. Prints the table and writes bench/results.json. State
and logs go to .state/bench (wiped at the start). Takes about five minutes; `--quick` halves
the measuring windows; `--only metering,session_sync` runs just those phases (metering then
tops messages.inbound up with synthetic events alone) and writes no results.json unless
`--out` is given.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

from bench import e2e, ingress, metering, session_sync
from bench.report import RESULTS, Figure, machine, table, write
from bench.world import TENANTS, World
from devstack import Stack
from devstack.kafka import KAFKA_VERSION
from devstack.stack import fetched

STATE = Path(".state/bench")
PHASES = ("ingress", "metering", "session_sync", "e2e")


_STARTED = time.monotonic()


def _say(msg: str) -> None:
    print(f"==> [{time.monotonic() - _STARTED:5.0f}s] {msg}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="shorter windows (noisier)")
    parser.add_argument(
        "--rate", type=float, default=e2e.RATE, help=f"e2e offered msg/s (default {e2e.RATE:.0f})"
    )
    parser.add_argument("--out", type=Path, default=None, help=f"default {RESULTS}")
    parser.add_argument(
        "--only",
        type=_phases,
        default=PHASES,
        help=f"comma-separated phases to run, of {','.join(PHASES)} (default all)",
    )
    args = parser.parse_args(argv)
    only: tuple[str, ...] = args.only
    out: Path | None = args.out
    if out is None and only == PHASES:
        out = RESULTS
    if not fetched()["kafka"]:
        print("Kafka is not fetched yet: run `make fetch`", file=sys.stderr)
        return 2
    scale = 0.5 if args.quick else 1.0
    load_at_start = [round(v, 2) for v in os.getloadavg()]
    root = STATE.resolve()
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    root.chmod(0o711)  # the postgres OS user traverses (not lists) it
    figures: list[Figure] = []
    _say("starting Kafka and a durable PostgreSQL")
    with Stack(root / "stack", gateway=False) as stack:
        world = World(stack, root)
        try:
            _say(f"creating {TENANTS} tenants (gateway and Telegram API: bench.stub)")
            world.prepare()
            b1 = world.settings("b1.")
            ing = None
            if "ingress" in only:
                _say("ingress: wrk against the ingress, then against a bare aiohttp handler")
                ing = ingress.run(world, b1, seconds=8 * scale)
                figures += ing.figures()
            if "metering" in only:
                _say("metering: the streams worker, then a raw consume->produce loop")
                figures += metering.run(world, b1, window_s=20 * scale).figures()
            if "session_sync" in only:
                _say("session-sync: the streams worker, then a raw COPY")
                phase3 = session_sync.run(world, world.settings("b3."), window_s=20 * scale)
                figures += phase3.figures()
            if "e2e" in only:
                _say(f"end to end at {args.rate:.0f} msg/s, then two bare Kafka hops")
                phase = e2e.run(world, world.settings("b4."), rate=args.rate, duration=20 * scale)
                assert ing is not None  # _phases: e2e comes with ingress
                figures += phase.figures(ing.bare.cpu_ms_per_request)
        finally:
            world.close()
    info = machine(
        {
            "kafka": KAFKA_VERSION,
            "postgresql": "devstack, durable (fsync on)",
            "load_average_at_start": load_at_start,
        }
    )
    _say("done")
    print()
    print(table(figures))
    print(f"\nload average at the end: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    if out is not None:
        write(out, info, figures)
        print(f"wrote {out}")
    return 0


def _phases(value: str) -> tuple[str, ...]:
    names = tuple(n.strip().replace("-", "_") for n in value.split(",") if n.strip())
    unknown = [n for n in names if n not in PHASES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"phases are {', '.join(PHASES)}; got {value!r}")
    if "e2e" in names and "ingress" not in names:
        raise argparse.ArgumentTypeError("e2e needs ingress (its bare CPU baseline)")
    return tuple(n for n in PHASES if n in names)


if __name__ == "__main__":
    sys.exit(main())
