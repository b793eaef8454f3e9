"""A throwaway PostgreSQL server on loopback, run from the Debian server binaries."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from devstack._proc import (
    LOOPBACK,
    ServerProcess,
    StartupError,
    free_port,
    spawn,
    wait_until,
)

SETUP_HINT = "PostgreSQL server binaries not found: run setup (apt-get install -y postgresql)"
_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes; ".s.PGSQL.NNNNN" is appended to the dir


def find_pg_bindir() -> Path:
    """Locate the server binaries: ``pg_config --bindir``, else the newest
    ``/usr/lib/postgresql/<major>/bin``; raise with the setup hint if there are none."""
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        candidate = Path(out.stdout.strip())
        if out.returncode == 0 and (candidate / "initdb").exists():
            return candidate
    versions = []
    for path in Path("/usr/lib/postgresql").glob("*/bin"):
        if (path / "initdb").exists() and re.fullmatch(r"\d+", path.parent.name):
            versions.append((int(path.parent.name), path))
    if not versions:
        raise RuntimeError(SETUP_HINT)
    return max(versions)[1]


def _as_postgres_user() -> list[str]:
    """Command prefix dropping root to the ``postgres`` OS user (initdb/postgres refuse root)."""
    if os.geteuid() != 0:
        return []
    try:
        entry = pwd.getpwnam("postgres")
    except KeyError as exc:
        raise RuntimeError(f"running as root but no 'postgres' OS user: {SETUP_HINT}") from exc
    if not _uid_mapped(entry.pw_uid):
        raise RuntimeError(
            "running as root inside a user namespace (unshare -r?) where the 'postgres' user "
            "is not mapped: initdb/postgres refuse root and cannot switch user; run as real "
            "root (unshare -n) or as an ordinary user"
        )
    if shutil.which("setpriv"):  # execs in place, so the PID we hold is the postmaster
        return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"]
    return ["runuser", "-u", "postgres", "--"]


def _uid_mapped(uid: int) -> bool:
    """Tell whether ``uid`` exists in this user namespace (``/proc/self/uid_map``)."""
    try:
        lines = Path("/proc/self/uid_map").read_text().splitlines()
    except OSError:
        return True
    for line in lines:
        inside, _outside, count = (int(x) for x in line.split())
        if inside <= uid < inside + count:
            return True
    return False


def _reachable_by(path: Path, uid: int, gids: set[int]) -> bool:
    """Tell whether ``uid`` may traverse every ancestor of ``path`` (search permission)."""
    for parent in [path, *path.parents]:
        if not parent.exists():
            continue
        st = parent.stat()
        if st.st_uid == uid:
            bit = stat.S_IXUSR
        elif st.st_gid in gids:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            return False
    return True


class PostgresServer(ServerProcess):
    """A PostgreSQL cluster in ``base_dir/pgdata`` listening on 127.0.0.1 only.

    Auth is ``trust`` for ``user`` (the cluster superuser); ``database`` is created on first
    start. ``durable=False`` turns off fsync, synchronous_commit and full_page_writes.
    Leaving the ``with`` block stops the server and, unless ``keep``, deletes an
    out-of-tree cluster dir (see below).
    Under root the server runs as the ``postgres`` OS user; if that user cannot reach
    ``base_dir`` (e.g. under /root or a 0700 pytest tmp dir) the cluster lives in a private
    dir under the system temp dir and ``base_dir/pgdata`` is a symlink to it.
    """

    stop_signal = signal.SIGINT  # fast shutdown: disconnects clients

    def __init__(
        self,
        base_dir: Path,
        *,
        port: int | None = None,
        user: str = "devstack",
        database: str = "devstack",
        durable: bool = True,
        keep: bool = False,
        start_timeout: float = 60.0,
    ) -> None:
        self.base_dir = Path(base_dir).resolve()
        self.port = port or free_port()
        self.user = user
        self.database = database
        self.durable = durable
        self.keep = keep
        self.start_timeout = start_timeout
        self.log_path = self.base_dir / "postgres.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready_seconds: float | None = None
        self._launched_at = 0.0
        self._bindir: Path | None = None
        self._external: Path | None = None

    @property
    def dsn(self) -> str:
        """``postgresql://user@127.0.0.1:port/database``."""
        return f"postgresql://{self.user}@{LOOPBACK}:{self.port}/{self.database}"

    @property
    def pgdata(self) -> Path:
        """The cluster directory (resolved through the symlink, if any)."""
        return (self.base_dir / "pgdata").resolve()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        if not self.keep:
            self.cleanup()

    def launch(self) -> None:
        """initdb if needed and spawn ``postgres`` (does not wait)."""
        if self.pid is not None:
            return
        self._bindir = self._bindir or find_pg_bindir()
        self.base_dir.mkdir(parents=True, exist_ok=True)
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb()
        sock = self.pgdata / "sock"
        if len(str(sock)) > _SOCKET_PATH_MAX:
            sock = Path(tempfile.mkdtemp(prefix="devstack-pgsock-"))
            self._chown(sock)
        sock.mkdir(exist_ok=True)
        self._chown(sock)
        argv = [*_as_postgres_user(), str(self._bindir / "postgres"), "-D", str(self.pgdata)]
        argv += ["-p", str(self.port), "-c", f"listen_addresses={LOOPBACK}"]
        argv += ["-c", f"unix_socket_directories={sock}"]
        if not self.durable:
            for setting in ("fsync=off", "synchronous_commit=off", "full_page_writes=off"):
                argv += ["-c", setting]
        self._launched_at = time.monotonic()
        self.proc = spawn(argv, log=self.log_path)

    def wait_ready(self) -> float:
        """Poll with psycopg until a connection works; create the database; return s since spawn."""
        if self.proc is None:
            raise StartupError("PostgreSQL was not launched")
        wait_until(
            self._can_connect,
            what=f"PostgreSQL on {LOOPBACK}:{self.port}",
            timeout=self.start_timeout,
            proc=self.proc,
            log=self.log_path,
        )
        self._create_database()
        self.ready_seconds = time.monotonic() - self._launched_at
        return self.ready_seconds

    def cleanup(self) -> None:
        """Remove the private out-of-tree cluster dir, if one was used (after :meth:`stop`)."""
        if self._external is not None:
            shutil.rmtree(self._external, ignore_errors=True)
            self._external = None

    def _admin_dsn(self) -> str:
        return f"postgresql://{self.user}@{LOOPBACK}:{self.port}/postgres"

    def _can_connect(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self._admin_dsn(), connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def _create_database(self) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self._admin_dsn(), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)
            ).fetchone()
            if exists is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database)))

    def _initdb(self) -> None:
        link = self.base_dir / "pgdata"
        target = link
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            gids = {entry.pw_gid, *os.getgrouplist("postgres", entry.pw_gid)}
            if not _reachable_by(self.base_dir, entry.pw_uid, gids):
                self._external = Path(tempfile.mkdtemp(prefix="devstack-pg-"))
                self._chown(self._external)
                target = self._external / "pgdata"
                if link.is_symlink() or link.exists():
                    link.unlink()
                link.symlink_to(target)
        target.mkdir(mode=0o700, exist_ok=True)
        self._chown(target)
        assert self._bindir is not None
        argv = [*_as_postgres_user(), str(self._bindir / "initdb"), "-D", str(target)]
        argv += ["-U", self.user, "--auth=trust", "-E", "UTF8", "--locale=C", "--no-instructions"]
        if not self.durable:
            argv.append("--no-sync")
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise StartupError(f"initdb failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")

    @staticmethod
    def _chown(path: Path) -> None:
        if os.geteuid() == 0:
            shutil.chown(path, "postgres", "postgres")
