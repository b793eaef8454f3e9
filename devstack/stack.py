"""Kafka + PostgreSQL + OpenClaw gateway (with the stub LLM) started and stopped together."""

from __future__ import annotations

import contextlib
import json
import shlex
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from devstack._proc import Managed, cache_dir, rss_mib
from devstack.kafka import KafkaBroker, ensure_kafka_jars, kafka_home
from devstack.netns import in_loopback_netns
from devstack.openclaw import LlmProvider, OpenClawGateway, ensure_openclaw, openclaw_home
from devstack.postgres import PostgresServer
from devstack.stub_llm import StubLLM


def fetched(cache: Path | None = None) -> dict[str, bool]:
    """Which downloads are already in the cache (``kafka``, ``openclaw``)."""
    return {
        "kafka": (kafka_home(cache) / "libs" / ".complete").exists(),
        "openclaw": (openclaw_home(cache) / "node_modules" / ".bin" / "openclaw").exists(),
    }


class Stack(Managed):
    """The three servers for ``make run``, pytest session fixtures and ``make bench``.

    ``state_dir`` receives ``kafka/``, ``postgres/``, ``openclaw/``, ``env.json`` and
    ``env.sh``; without one a temp dir is used and deleted by :meth:`stop`. Servers are
    launched together and then awaited, so their start-up overlaps.
    """

    def __init__(
        self,
        state_dir: Path | None = None,
        *,
        kafka: bool = True,
        postgres: bool = True,
        gateway: bool = True,
        agents: Sequence[str] = (),
        durable_postgres: bool = True,
        llm: LlmProvider | StubLLM | None = None,
        cache: Path | None = None,
    ) -> None:
        self._temp = state_dir is None
        self.state_dir = Path(state_dir or tempfile.mkdtemp(prefix="devstack-")).resolve()
        if self._temp:  # let the postgres OS user traverse (not list) it: cluster stays inside
            self.state_dir.chmod(0o711)
        self.cache = cache or cache_dir()
        self.kafka = KafkaBroker(self.state_dir / "kafka") if kafka else None
        self.postgres = (
            PostgresServer(
                self.state_dir / "postgres", durable=durable_postgres, keep=not self._temp
            )
            if postgres
            else None
        )
        self.gateway = (
            OpenClawGateway(self.state_dir / "openclaw", agents=agents, llm=llm)
            if gateway
            else None
        )

    def start(self) -> None:
        """Resolve binaries, launch every server, wait for each; stop all if one fails."""
        self._resolve_binaries()
        try:
            for server in self._servers():
                server.launch()
            for server in self._servers():
                server.wait_ready()
        except BaseException:
            self.stop()
            raise
        self.write_env_files()

    def stop(self) -> None:
        """Stop the servers (gateway, Kafka, PostgreSQL); delete a temp state dir."""
        for server in reversed(self._servers()):
            with contextlib.suppress(Exception):
                server.stop()
        if self.postgres is not None and not self.postgres.keep:
            self.postgres.cleanup()
        if self._temp:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def env(self) -> dict[str, str]:
        """``KAFKA_BOOTSTRAP``, ``DATABASE_URL``, ``GATEWAY_URL``, ``GATEWAY_TOKEN`` (and
        ``STUB_LLM_URL`` when the stub runs) for the servers that are part of the stack."""
        env: dict[str, str] = {}
        if self.kafka is not None:
            env["KAFKA_BOOTSTRAP"] = self.kafka.bootstrap
        if self.postgres is not None:
            env["DATABASE_URL"] = self.postgres.dsn
        if self.gateway is not None:
            env["GATEWAY_URL"] = self.gateway.base_url
            env["GATEWAY_TOKEN"] = self.gateway.token
            if self.gateway.stub is not None:
                env["STUB_LLM_URL"] = self.gateway.stub.base_url
        return env

    def info(self) -> dict[str, Any]:
        """Connection env plus state dir, PIDs, seconds to ready and RSS (MiB) per server."""
        names = {"kafka": self.kafka, "postgres": self.postgres, "gateway": self.gateway}
        servers = {name: srv for name, srv in names.items() if srv is not None}
        return {
            "env": self.env(),
            "state_dir": str(self.state_dir),
            "pids": {name: srv.pid for name, srv in servers.items()},
            "ready_seconds": {
                name: None if srv.ready_seconds is None else round(srv.ready_seconds, 1)
                for name, srv in servers.items()
            },
            "rss_mib": {
                name: round(rss_mib(srv.pid)) if srv.pid else None for name, srv in servers.items()
            },
        }

    def write_env_files(self) -> None:
        """Write ``env.json`` and ``env.sh`` (``export K=V`` lines) into the state dir."""
        env = self.env()
        (self.state_dir / "env.json").write_text(json.dumps(env, indent=2) + "\n")
        lines = [f"export {key}={shlex.quote(value)}" for key, value in env.items()]
        (self.state_dir / "env.sh").write_text("\n".join(lines) + "\n")

    def dead(self) -> list[str]:
        """Names of servers whose process has exited since start."""
        names = {"kafka": self.kafka, "postgres": self.postgres, "gateway": self.gateway}
        return [name for name, srv in names.items() if srv is not None and srv.proc and not srv.pid]

    def _servers(self) -> list[KafkaBroker | PostgresServer | OpenClawGateway]:
        """Fastest to start first, so the ready times measured in turn stay accurate."""
        found: list[KafkaBroker | PostgresServer | OpenClawGateway] = []
        if self.postgres is not None:
            found.append(self.postgres)
        if self.kafka is not None:
            found.append(self.kafka)
        if self.gateway is not None:
            found.append(self.gateway)
        return found

    def _resolve_binaries(self) -> None:
        have = fetched(self.cache)
        missing = [name for name in ("kafka", "openclaw") if not have[name] and self._wants(name)]
        if missing and in_loopback_netns():
            raise RuntimeError(
                f"{', '.join(missing)} not in {self.cache}: run `python -m devstack fetch` "
                "first, outside the network namespace"
            )
        if self.kafka is not None:
            self.kafka.libs = ensure_kafka_jars(self.cache)
        if self.gateway is not None:
            self.gateway.openclaw_bin = ensure_openclaw(self.cache)

    def _wants(self, name: str) -> bool:
        return (self.kafka if name == "kafka" else self.gateway) is not None
