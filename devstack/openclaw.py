"""Install the OpenClaw gateway from npm and run it against a stub (or real) LLM on loopback."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from devstack._proc import (
    LOOPBACK,
    StartupError,
    cache_dir,
    free_port,
    kill_process,
    spawn,
    stop_process,
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
            raise RuntimeError(f"npm install {package} failed:\n{proc.stdout[-4000:]}{proc.stderr[-4000:]}")
        if not quiet:
            print(f"devstack: {package} installed in {time.monotonic() - started:.1f} s", flush=True)
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
