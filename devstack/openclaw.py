"""Install the OpenClaw gateway from npm and run it against a stub (or real) LLM on loopback."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import agent_policy
from devstack._proc import (
    LOOPBACK,
    ServerProcess,
    StartupError,
    cache_dir,
    free_port,
    http_request,
    spawn,
    wait_until,
)
from devstack.stub_llm import StubLLM

NODE_VERSION = "24.21.0"
OPENCLAW_VERSION = "2026.9.6"

#: Environment that keeps the gateway quiet, local and inside its state root.
QUIET_ENV = {
    "OPENCLAW_NO_AUTO_UPDATE": "1",
    "DO_NOT_TRACK": "1",
    "OPENCLAW_DISABLE_BONJOUR": "1",
    "OPENCLAW_OFFLINE": "1",
    "OPENCLAW_NO_RESPAWN": "1",
    "OPENCLAW_SKIP_CHANNELS": "1",
    "NO_COLOR": "1",  # plain gateway.log (no ANSI colours)
}


def openclaw_home(cache: Path | None = None) -> Path:
    """Directory whose ``node_modules`` holds Node and OpenClaw."""
    return (cache or cache_dir()) / "openclaw"


def ensure_openclaw(cache: Path | None = None, *, quiet: bool = False) -> Path:
    """Install ``node@NODE_VERSION`` and ``openclaw@OPENCLAW_VERSION`` from npm (once).

    Returns the path of the ``openclaw`` executable; Node sits next to it in ``.bin``.
    """
    home = openclaw_home(cache)
    bin_dir = home / "node_modules" / ".bin"
    openclaw, node = bin_dir / "openclaw", bin_dir / "node"
    if openclaw.exists() and _node_version(node) == NODE_VERSION:
        return openclaw
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm not found: run setup (apt-get install -y npm)")
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "package.json").exists():
        (home / "package.json").write_text('{"name": "devstack-openclaw", "private": true}\n')
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    for package in (f"node@{NODE_VERSION}", f"openclaw@{OPENCLAW_VERSION}"):
        if not quiet:
            print(f"devstack: npm install {package} in {home}", flush=True)
        started = time.monotonic()
        proc = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--loglevel=error", package],
            cwd=home,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"npm install {package} failed:\n{proc.stdout[-4000:]}{proc.stderr[-4000:]}"
            )
        if not quiet:
            print(
                f"devstack: {package} installed in {time.monotonic() - started:.1f} s", flush=True
            )
    if _node_version(node) != NODE_VERSION or not openclaw.exists():
        raise RuntimeError(f"OpenClaw install in {home} is incomplete (node {_node_version(node)})")
    return openclaw


def _node_version(node: Path) -> str | None:
    if not node.exists():
        return None
    try:
        out = subprocess.run([str(node), "--version"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip().removeprefix("v")


@dataclass(frozen=True)
class LlmProvider:
    """An OpenAI-compatible model provider for the gateway (``api: openai-completions``)."""

    base_url: str
    api_key: str
    model: str
    provider_id: str = "llm"

    @classmethod
    def from_env(cls) -> LlmProvider | None:
        """Read ``OPENCLAW_SAAS_LLM_{API_KEY,BASE_URL,MODEL}``; None unless all three are set."""
        key = os.environ.get("OPENCLAW_SAAS_LLM_API_KEY")
        url = os.environ.get("OPENCLAW_SAAS_LLM_BASE_URL")
        model = os.environ.get("OPENCLAW_SAAS_LLM_MODEL")
        if key and url and model:
            return cls(base_url=url, api_key=key, model=model)
        return None

    @classmethod
    def for_stub(cls, stub: StubLLM) -> LlmProvider:
        """The provider entry pointing at a running :class:`StubLLM`."""
        return cls(base_url=stub.base_url, api_key="stub-key", model=stub.model, provider_id="stub")


def gateway_config(
    *,
    port: int,
    token: str,
    provider: LlmProvider,
    log_file: Path,
    agents: Sequence[str] = (),
    policy: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``openclaw.json`` document: local loopback gateway, token auth, HTTP chat enabled.

    Tools and commands follow ``common.agent_policy`` like a provisioned gateway; a test
    may pass ``policy`` (the ``tools``/``commands`` keys) to run an older one.

    ``agents`` become ``agents.entries`` (one agent per id; ``main`` always exists). With
    more than one agent every request must name its agent (``model: openclaw/<id>``).
    """
    endpoints = {"chatCompletions": {"enabled": True}, "responses": {"enabled": True}}
    cfg: dict[str, Any] = {
        "gateway": {
            "mode": "local",
            "bind": "loopback",
            "port": port,
            "auth": {"mode": "token", "token": token},
            "http": {"endpoints": endpoints},
        },
        "update": {"checkOnStart": False},
        **(agent_policy.public_agent_config() if policy is None else dict(policy)),
        "logging": {"file": str(log_file)},
        "models": {
            "mode": "merge",
            "catalogRefresh": {"enabled": False},
            "providers": {
                provider.provider_id: {
                    "baseUrl": provider.base_url,
                    "apiKey": provider.api_key,
                    "api": "openai-completions",
                    "models": [{"id": provider.model, "name": provider.model}],
                }
            },
        },
        "agents": {"defaults": {"model": {"primary": f"{provider.provider_id}/{provider.model}"}}},
    }
    extra = [a for a in agents if a != "main"]
    if extra:
        cfg["agents"]["entries"] = {agent: {} for agent in dict.fromkeys(agents)}
    return cfg


class OpenClawGateway(ServerProcess):
    """A real ``openclaw gateway run`` on loopback with an isolated state root.

    ``state_root`` receives ``state/`` (``OPENCLAW_STATE_DIR`` with ``openclaw.json``),
    ``home/`` (``HOME``), ``tmp/`` (``TMPDIR``) and ``gateway.log``. The model provider is
    ``llm`` if given, else :meth:`LlmProvider.from_env`, else a :class:`StubLLM` started and
    owned by the gateway (see :attr:`stub`). ``policy`` replaces the public-agent tool and
    command policy (tests that prove what an older one leaks). Run it in a loopback-only
    network namespace: it looks up ``clawhub.ai`` after the first agent turn whatever the settings.
    """

    def __init__(
        self,
        state_root: Path,
        *,
        openclaw_bin: Path | None = None,
        agents: Sequence[str] = (),
        port: int | None = None,
        token: str | None = None,
        llm: LlmProvider | StubLLM | None = None,
        start_timeout: float = 120.0,
        policy: Mapping[str, Any] | None = None,
    ) -> None:
        self.state_root = Path(state_root).resolve()
        self.openclaw_bin = openclaw_bin
        self.agents = list(agents)
        self.port = port or free_port()
        self.token = token or secrets.token_hex(16)
        self.start_timeout = start_timeout
        self.policy = policy
        self.state_dir = self.state_root / "state"
        self.log_path = self.state_root / "gateway.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready_seconds: float | None = None
        self._launched_at = 0.0
        self.stub: StubLLM | None = llm if isinstance(llm, StubLLM) else None
        self._own_stub = False
        self._provider = llm if isinstance(llm, LlmProvider) else None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (HTTP API and WebSocket share it)."""
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def provider(self) -> LlmProvider:
        """The model provider the gateway is configured with (after :meth:`launch`)."""
        if self._provider is None:
            raise RuntimeError("gateway not launched yet")
        return self._provider

    def launch(self) -> None:
        """Pick the provider, write ``openclaw.json`` and spawn the gateway (does not wait)."""
        if self.pid is not None:
            return
        if self.openclaw_bin is None:
            self.openclaw_bin = ensure_openclaw()
        if self._provider is None:
            self._provider = LlmProvider.from_env()
        if self._provider is None:
            if self.stub is None:
                self.stub = StubLLM()
                self._own_stub = True
            self._provider = LlmProvider.for_stub(self.stub.start())
        for sub in ("state", "home", "tmp"):
            (self.state_root / sub).mkdir(parents=True, exist_ok=True)
        cfg = gateway_config(
            port=self.port,
            token=self.token,
            provider=self._provider,
            log_file=self.state_dir / "logs" / "openclaw.log",
            agents=self.agents,
            policy=self.policy,
        )
        (self.state_dir / "openclaw.json").write_text(json.dumps(cfg, indent=2) + "\n")
        argv = [str(self.openclaw_bin), "gateway", "run", "--bind", "loopback"]
        argv += ["--port", str(self.port)]
        self._launched_at = time.monotonic()
        self.proc = spawn(argv, log=self.log_path, env=self._env(), cwd=self.state_root)

    def _env(self) -> dict[str, str]:
        assert self.openclaw_bin is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCLAW_")}
        env.update(QUIET_ENV)
        env.update(
            PATH=f"{self.openclaw_bin.parent}{os.pathsep}{os.environ.get('PATH', '')}",
            HOME=str(self.state_root / "home"),
            TMPDIR=str(self.state_root / "tmp"),
            OPENCLAW_STATE_DIR=str(self.state_dir),
        )
        return env

    def wait_ready(self) -> float:
        """Poll ``GET /readyz`` until 200; return seconds since spawn."""
        if self.proc is None:
            raise StartupError("gateway was not launched")
        wait_until(
            self._ready,
            what=f"OpenClaw gateway on {self.base_url}",
            timeout=self.start_timeout,
            proc=self.proc,
            log=self.log_path,
        )
        self.ready_seconds = time.monotonic() - self._launched_at
        return self.ready_seconds

    def _ready(self) -> bool:
        try:
            status, _ = http_request(self.port, "GET", "/readyz", timeout=2)
        except OSError:
            return False
        return status == 200

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (clean exit in about 3 s), wait ``timeout`` s, SIGKILL; stop an owned stub."""
        super().stop(timeout)
        self._stop_stub()

    def _stop_stub(self) -> None:
        if self._own_stub and self.stub is not None:
            self.stub.stop()
            self.stub = None
            self._own_stub = False
            self._provider = None

    def chat(
        self, text: str, *, agent: str = "main", user: str = "conv-1", timeout: float = 120.0
    ) -> dict[str, Any]:
        """``POST /v1/chat/completions`` (non-streaming) and return the decoded response."""
        body = {
            "model": f"openclaw/{agent}",
            "user": user,
            "messages": [{"role": "user", "content": text}],
        }
        status, data = http_request(
            self.port,
            "POST",
            "/v1/chat/completions",
            body=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
            timeout=timeout,
        )
        if status != 200:
            raise RuntimeError(f"chat completion failed: HTTP {status}: {data[:500]!r}")
        result: dict[str, Any] = json.loads(data)
        return result
