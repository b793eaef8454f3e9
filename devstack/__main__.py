"""``python -m devstack``: fetch, start and stop the real servers of the dev/test stack.

  fetch    download Kafka jars (Maven) and Node + OpenClaw (npm), check PostgreSQL binaries;
           idempotent, needs the registries; run it before entering a network namespace.
  up       start Kafka, PostgreSQL and the OpenClaw gateway (stub LLM unless
           OPENCLAW_SAAS_LLM_{API_KEY,BASE_URL,MODEL} are set), print a JSON document with
           the connection env (KAFKA_BOOTSTRAP, DATABASE_URL, GATEWAY_URL, GATEWAY_TOKEN),
           write STATE_DIR/env.sh and env.json, then block until Ctrl-C/SIGTERM and stop all.
           With `-- CMD ...` run CMD with that env instead of blocking, stop, exit with its code.
  netns    run `-- CMD ...` in a loopback-only network namespace (unshare -n, root only).

Examples:
  python -m devstack fetch
  python -m devstack up --state-dir .devstack
  python -m devstack up --netns -- .venv/bin/python -m control.cli run
  python -m devstack netns -- .venv/bin/pytest -m integration

Servers in a namespace are reachable only from inside it: use `up --netns -- CMD` (or run
everything under one `netns`) rather than `up --netns` plus clients outside.
The download cache is $OPENCLAW_SAAS_CACHE (default ~/.cache/openclaw-saas).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import FrameType
from typing import NoReturn

from devstack._proc import cache_dir
from devstack.kafka import ensure_kafka_jars
from devstack.netns import in_loopback_netns, reexec_in_loopback_netns
from devstack.openclaw import ensure_openclaw
from devstack.postgres import find_pg_bindir
from devstack.stack import Stack


def _timed(label: str, action: Callable[[], object]) -> None:
    started = time.monotonic()
    result = action()
    print(f"devstack: {label}: {result} ({time.monotonic() - started:.1f} s)", flush=True)


def cmd_fetch(_: argparse.Namespace) -> int:
    """Fetch everything the stack needs (idempotent)."""
    cache = cache_dir()
    print(f"devstack: cache {cache}", flush=True)
    started = time.monotonic()
    _timed("PostgreSQL binaries", find_pg_bindir)
    with ThreadPoolExecutor(max_workers=2) as pool:  # Maven and npm downloads overlap
        jobs = [
            pool.submit(_timed, "Kafka jars", lambda: ensure_kafka_jars(cache)),
            pool.submit(_timed, "OpenClaw", lambda: ensure_openclaw(cache)),
        ]
        for job in jobs:
            job.result()
    print(f"devstack: fetch done in {time.monotonic() - started:.1f} s", flush=True)
    return 0


def _stop_event() -> threading.Event:
    """An event set by SIGINT/SIGTERM."""
    event = threading.Event()

    def handler(signum: int, _frame: FrameType | None) -> None:
        event.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return event


def cmd_up(args: argparse.Namespace) -> int:
    """Start the stack; block (or run a command) and stop it."""
    command = _strip_dashes(args.command)
    if args.netns and not in_loopback_netns():
        cmd_fetch(args)
        reexec_in_loopback_netns([sys.executable, "-m", "devstack", *_without_netns(sys.argv)])
    stop = _stop_event()
    agents = [a for a in args.agents.split(",") if a] if args.agents else []
    stack = Stack(
        Path(args.state_dir) if args.state_dir else None,
        agents=agents,
        kafka=not args.no_kafka,
        postgres=not args.no_postgres,
        gateway=not args.no_gateway,
        durable_postgres=not args.fast_postgres,
    )
    started = time.monotonic()
    with stack:
        info = stack.info()
        info["total_seconds"] = round(time.monotonic() - started, 1)
        print(json.dumps(info, indent=2), flush=True)
        if command:
            return _run_command(command, stack, stop)
        print("devstack: up; Ctrl-C or SIGTERM to stop", file=sys.stderr, flush=True)
        while not stop.wait(1.0):
            dead = stack.dead()
            if dead:
                print(f"devstack: {', '.join(dead)} exited; stopping", file=sys.stderr)
                return 1
        print("devstack: stopping", file=sys.stderr, flush=True)
    return 0


def _run_command(command: list[str], stack: Stack, stop: threading.Event) -> int:
    proc = subprocess.Popen(command, env={**os.environ, **stack.env()})
    while proc.poll() is None:
        if stop.wait(0.5):
            proc.terminate()
            proc.wait()
    return proc.returncode


def _without_netns(argv: list[str]) -> list[str]:
    """Our own arguments minus ``--netns`` (the re-executed process is already isolated)."""
    args = argv[1:]
    if "--" in args:
        cut = args.index("--")
        return [a for a in args[:cut] if a != "--netns"] + args[cut:]
    return [a for a in args if a != "--netns"]


def _strip_dashes(command: list[str]) -> list[str]:
    """Drop the ``--`` that separates our options from the command."""
    return command[1:] if command[:1] == ["--"] else command


def cmd_netns(args: argparse.Namespace) -> NoReturn:
    """Exec a command in a loopback-only network namespace."""
    command = _strip_dashes(args.command)
    if not command:
        print("devstack netns: give a command after --", file=sys.stderr)
        sys.exit(2)
    reexec_in_loopback_netns(command)


def build_parser() -> argparse.ArgumentParser:
    """The CLI: ``fetch``, ``up`` and ``netns``."""
    parser = argparse.ArgumentParser(
        prog="python -m devstack",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    fetch = sub.add_parser("fetch", help="download Kafka jars + Node/OpenClaw; check PostgreSQL")
    fetch.set_defaults(func=cmd_fetch)
    up = sub.add_parser("up", help="start the stack, print connection JSON, block until Ctrl-C")
    up.add_argument("--state-dir", help="keep server data here (default: temp dir, deleted)")
    up.add_argument("--agents", default="", help="comma-separated OpenClaw agent ids")
    up.add_argument("--no-kafka", action="store_true", help="do not start Kafka")
    up.add_argument("--no-postgres", action="store_true", help="do not start PostgreSQL")
    up.add_argument("--no-gateway", action="store_true", help="do not start the gateway")
    up.add_argument("--fast-postgres", action="store_true", help="fsync=off (tests/bench)")
    up.add_argument(
        "--netns", action="store_true", help="fetch, then run inside a loopback-only netns"
    )
    up.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD: run it, then stop")
    up.set_defaults(func=cmd_up)
    netns = sub.add_parser("netns", help="run -- CMD in a loopback-only network namespace")
    netns.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD ARGS...")
    netns.set_defaults(func=cmd_netns)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    return func(args)


if __name__ == "__main__":
    sys.exit(main())
