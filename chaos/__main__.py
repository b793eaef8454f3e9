"""`python -m chaos` (what `make chaos` runs, inside the loopback network namespace).

Offers messages (default 20,000 over 200 Business tenants) on three channels, Telegram
webhooks, signed WhatsApp webhooks and SMTP mail, to the real services (ingress, smtp,
streams, forwarder, delivery as child processes) on a devstack Kafka and durable
PostgreSQL, with per-tenant stub gateways and the Telegram, Graph API and SMTP relay
stand-ins at the far end. Meanwhile it SIGKILLs and restarts every worker kind at random
moments, stops the Kafka broker once (long enough for SMTP to answer 451) and PostgreSQL
once, makes one tenant's gateway hang and another's answer 500 for a while. A refused
message (503, 451, connection refused) is offered again later, as the providers do.

When the pipeline has drained it checks, and prints with counts:
  1. every acknowledged message has exactly one session row (`messages`, by event id) and
     exactly one reply at the end user, or a dead letter with a reason;
  2. usage records and usage_logs equal the admitted messages, per tenant (0 double-billed);
  3. while Kafka was down nothing was acknowledged (503 / 451), and every acknowledged
     message has its event on messages.inbound, accepted once after retries;
  4. healthy tenants' p99 latency (ack -> reply) during the hang is within 20% of before.

The seed (random unless --seed) is printed and in the report; the same seed gives the same
plan. Writes the JSON report (default .state/chaos/report.json); logs in .state/chaos/logs.
Exit code 0 when every invariant holds, 1 when one fails, 2 when it could not run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import shutil
import sys
import time
from pathlib import Path

from chaos.invariants import table
from chaos.plan import Plan
from chaos.run import run
from devstack import Stack
from devstack.stack import fetched

STATE = Path(".state/chaos")
_STARTED = time.monotonic()


def _say(msg: str) -> None:
    print(f"==> [{time.monotonic() - _STARTED:5.0f}s] {msg}", flush=True)


def main(argv: list[str] | None = None) -> int:
    defaults = Plan()
    parser = argparse.ArgumentParser(
        prog="python -m chaos",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--messages", type=int, default=defaults.messages, help="messages offered in all"
    )
    parser.add_argument("--tenants", type=int, default=defaults.tenants, help="Business tenants")
    parser.add_argument("--rate", type=float, default=defaults.rate, help="offered msg/s")
    parser.add_argument("--seed", type=int, default=None, help="default: a random one")
    parser.add_argument(
        "--kills-per-kind", type=int, default=defaults.kills_per_kind, help="SIGKILLs per service"
    )
    parser.add_argument("--no-kafka-restart", action="store_true", help="keep the broker up")
    parser.add_argument("--no-postgres-restart", action="store_true", help="keep PostgreSQL up")
    parser.add_argument(
        "--kafka-down-s", type=float, default=defaults.kafka_down_s, help="broker outage"
    )
    parser.add_argument(
        "--drain-timeout-s",
        type=float,
        default=defaults.drain_timeout_s,
        help="longest wait for the pipeline to drain after the load",
    )
    parser.add_argument("--log-level", default=defaults.log_level, help="of the services")
    parser.add_argument("--out", type=Path, default=STATE / "report.json")
    args = parser.parse_args(argv)
    if not fetched()["kafka"]:
        print("Kafka is not fetched yet: run `make fetch`", file=sys.stderr)
        return 2
    plan = Plan(
        messages=args.messages,
        tenants=args.tenants,
        rate=args.rate,
        seed=secrets.randbelow(2**31) if args.seed is None else args.seed,
        kills_per_kind=args.kills_per_kind,
        restart_kafka=not args.no_kafka_restart,
        restart_postgres=not args.no_postgres_restart,
        kafka_down_s=args.kafka_down_s,
        drain_timeout_s=args.drain_timeout_s,
        log_level=args.log_level,
    )
    _say(f"seed {plan.seed} (rerun the same plan with --seed {plan.seed})")
    root = STATE.resolve()
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    root.chmod(0o711)  # the postgres OS user traverses (not lists) it
    _say("starting Kafka and a durable PostgreSQL")
    with Stack(root / "stack", gateway=False) as stack:
        report = asyncio.run(run(stack, plan, root, _say))
    print()
    print(f"chaos run, seed {plan.seed}: {plan.messages} messages, {plan.tenants} tenants")
    print(table(report.checks))
    for crash in report.crashes:
        down = f" while {'+'.join(crash['servers_down'])} was down" if crash["servers_down"] else ""
        last = (crash["log"].strip().splitlines() or [""])[-1][:160]
        print(f"exited by itself{down}: {crash['service']} ({crash['code']}): {last}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report.to_json(), indent=2, default=str) + "\n")
    print(f"\nwrote {args.out}; {'every invariant holds' if report.ok else 'FAILED'}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
