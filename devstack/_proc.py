"""Process helpers shared by the devstack servers: ports, polling with deadlines, stopping."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Self

LOOPBACK = "127.0.0.1"


class StartupError(RuntimeError):
    """A server did not become ready (it exited, or its deadline passed)."""


class Managed:
    """Something devstack starts and stops: `with` starts it and stops it again."""

    def start(self) -> object:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class ServerProcess(Managed):
    """A server run as a child process: the life cycle the devstack servers share.

    A subclass spawns it in `launch()` (without waiting) and waits in `wait_ready()`
    (returning the seconds since the spawn); `stop_signal` asks it to exit cleanly."""

    stop_signal: ClassVar[signal.Signals] = signal.SIGTERM
    proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The server's PID while it runs."""
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def start(self) -> None:
        """Launch, then wait until the server answers."""
        self.launch()
        self.wait_ready()

    def launch(self) -> None:
        raise NotImplementedError

    def wait_ready(self) -> float:
        raise NotImplementedError

    def stop(self, timeout: float = 30.0) -> None:
        """`stop_signal`, wait `timeout` s, then SIGKILL."""
        self._terminate(timeout)

    def kill(self) -> None:
        """SIGKILL the server and its children (crash simulation); `restart` brings it back."""
        if self.proc is not None:
            kill_process(self.proc)

    def restart(self) -> None:
        """Stop (if running) and start again with the same directories and ports."""
        self._terminate(30.0)
        self.proc = None
        self.start()

    def _terminate(self, timeout: float) -> None:
        if self.proc is not None:
            stop_process(self.proc, sig=self.stop_signal, timeout=timeout)


def cache_dir() -> Path:
    """Return the download cache: ``$OPENCLAW_SAAS_CACHE`` or ``~/.cache/openclaw-saas``."""
    return Path(os.environ.get("OPENCLAW_SAAS_CACHE", Path.home() / ".cache" / "openclaw-saas"))


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port that is free on ``host`` right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(port: int, host: str = LOOPBACK, timeout: float = 0.5) -> bool:
    """Tell whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def log_tail(path: Path, lines: int = 40) -> str:
    """Return the last ``lines`` lines of a log file (empty string if it does not exist)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def wait_until(
    check: Callable[[], bool],
    *,
    what: str,
    timeout: float,
    proc: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
    interval: float = 0.25,
) -> float:
    """Poll ``check`` until it returns True; return the seconds it took.

    Raises :class:`StartupError` (with the log tail) when ``proc`` exits first or
    ``timeout`` seconds pass.
    """
    start = time.monotonic()
    deadline = start + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise StartupError(_failure(f"{what}: process exited with {proc.returncode}", log))
        if check():
            return time.monotonic() - start
        if time.monotonic() >= deadline:
            raise StartupError(_failure(f"{what}: not ready after {timeout:.0f} s", log))
        time.sleep(interval)


def _failure(message: str, log: Path | None) -> str:
    if log is None:
        return message
    return f"{message}\n--- last lines of {log} ---\n{log_tail(log)}"


def spawn(
    argv: list[str], *, log: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a new session (a terminal Ctrl-C reaches only us), output to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )


def stop_process(
    proc: subprocess.Popen[bytes],
    *,
    sig: signal.Signals = signal.SIGTERM,
    timeout: float = 30.0,
) -> int:
    """Send ``sig``, wait up to ``timeout`` s, then SIGKILL; also reap the child's process group."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    kill_group(proc.pid)
    return proc.returncode


def kill_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process and the rest of the process group it leads (crash simulation)."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    kill_group(proc.pid)


def kill_group(pgid: int) -> None:
    """SIGKILL what is left in the process group ``pgid`` (one that :func:`spawn` created)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def rss_mib(pid: int, *, with_children: bool = True) -> float:
    """Resident memory of ``pid`` (plus its descendants) in MiB, read from /proc."""
    pids = [pid, *_descendants(pid)] if with_children else [pid]
    total_kib = 0
    for one in pids:
        try:
            for line in Path(f"/proc/{one}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kib += int(line.split()[1])
        except (OSError, ValueError):
            continue
    return total_kib / 1024


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def http_request(
    port: int,
    method: str,
    path: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[int, bytes]:
    """One plain HTTP request to ``127.0.0.1:port``; return (status, body)."""
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()
