"""A real Docker engine (Debian's ``docker.io``) on a private unix socket, and the gateway image.

No registry is reachable here, so the OpenClaw gateway image is imported from a root
filesystem assembled locally (research/container-engine.md, "Recipe"): busybox, the Node 24
binary from the npm package ``node@24`` with the shared libraries ``ldd`` names, and the
cached ``openclaw`` install, then ``docker import`` with the image's Dockerfile-style
settings (user, entrypoint, health check). The rootfs tar is cached per version.

  python -m devstack.docker_engine up [--root DIR]       start dockerd, print DOCKER_HOST, block
  python -m devstack.docker_engine image [--docker-host]  build + import the gateway image

Needs root (dockerd) and ``docker.io`` + ``busybox`` installed (scripts/setup-system.sh).
One engine per network namespace: each engine creates bridges and iptables rules there.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import docker

from devstack._proc import Managed, StartupError, cache_dir, stop_process, wait_until
from devstack.openclaw import NODE_VERSION, OPENCLAW_VERSION, ensure_openclaw, openclaw_home

IMAGE_RECIPE = 2  # bump when the rootfs layout below changes
GATEWAY_IMAGE = f"openclaw-saas/gateway:{OPENCLAW_VERSION}"
OPT = "opt/openclaw"
_NODE = f"/{OPT}/node_modules/node/bin/node"
_ENTRY = f"/{OPT}/node_modules/openclaw/openclaw.mjs"
_PROBE = (
    "fetch('http://127.0.0.1:18789/readyz')"
    ".then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"
)
IMAGE_CHANGES = [
    "USER 1000:1000",
    "WORKDIR /home/node",
    f"ENV PATH=/{OPT}/node_modules/.bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
    "ENV HOME=/home/node OPENCLAW_STATE_DIR=/home/node/.openclaw NODE_ENV=production",
    "EXPOSE 18789",
    "VOLUME /home/node/.openclaw",
    f'ENTRYPOINT ["{_NODE}", "{_ENTRY}", "gateway", "run", "--bind", "lan", "--port", "18789"]',
    f'HEALTHCHECK --interval=10s --timeout=5s --start-period=120s --retries=3 CMD ["{_NODE}", '
    f'"-e", "{_PROBE}"]',
]


def engine_problem() -> str | None:
    """Why a Docker engine cannot be started here (None: it can)."""
    if os.geteuid() != 0:
        return "not root: dockerd needs root"
    for tool in ("dockerd", "containerd", "runc"):
        if shutil.which(tool) is None:
            return f"{tool} not found: run scripts/setup-system.sh (apt-get install docker.io)"
    if _busybox() is None:
        return "busybox not found: run scripts/setup-system.sh (apt-get install busybox-static)"
    return None


class DockerEngine(Managed):
    """``dockerd`` with its own data root, exec root and socket under ``root``."""

    def __init__(self, root: Path | None = None, *, start_timeout: float = 60.0) -> None:
        self._temp = root is None
        # short path: containerd's socket lives under the exec root (108-byte limit)
        self.root = Path(root or tempfile.mkdtemp(prefix="ocs-eng-", dir="/tmp")).resolve()
        self.socket = self.root / "engine.sock"
        self.log_path = self.root / "engine.log"
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready_seconds: float | None = None

    @property
    def docker_host(self) -> str:
        return f"unix://{self.socket}"

    def client(self, timeout: int = 120) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.docker_host, timeout=timeout)

    def start(self) -> None:
        problem = engine_problem()
        if problem is not None:
            raise StartupError(f"cannot start a Docker engine: {problem}")
        self.root.mkdir(parents=True, exist_ok=True)
        argv = [
            "dockerd",
            "-H",
            self.docker_host,
            "--data-root",
            str(self.root / "data"),
            "--exec-root",
            str(self.root / "exec"),
            "--pidfile",
            str(self.root / "dockerd.pid"),
            "--userland-proxy=true",
        ]
        started = time.monotonic()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a terminal's Ctrl-C reaches only us
                preexec_fn=_die_with_parent,  # a killed test run leaves no engine
            )
        wait_until(
            self._ping,
            what=f"dockerd on {self.socket}",
            timeout=self.start_timeout,
            proc=self.proc,
            log=self.log_path,
        )
        self.ready_seconds = time.monotonic() - started

    def _ping(self) -> bool:
        if not self.socket.exists():
            return False
        try:
            with contextlib.closing(self.client(timeout=2)) as client:
                return bool(client.ping())
        except Exception:
            return False

    def stop(self) -> None:
        """Remove every container, stop dockerd (SIGTERM), unmount and delete a temp root."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(Exception), contextlib.closing(self.client(30)) as client:
                for container in client.containers.list(all=True):
                    container.remove(force=True)
            stop_process(self.proc, timeout=30)
        if self._temp:
            subprocess.run(["umount", "-R", str(self.root)], capture_output=True, check=False)
            for mount in _mounts_under(self.root):
                subprocess.run(["umount", "-l", mount], capture_output=True, check=False)
            shutil.rmtree(self.root, ignore_errors=True)


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it when the process that started it dies."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _mounts_under(root: Path) -> list[str]:
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return []
    found = [line.split()[1] for line in lines if line.split()[1].startswith(str(root))]
    return sorted(found, key=len, reverse=True)


# -- the gateway image ---------------------------------------------------------------------


def rootfs_tar(cache: Path | None = None) -> Path:
    """The cached root filesystem tar of the gateway image (built on first use)."""
    cache = cache or cache_dir()
    name = f"gateway-rootfs-node{NODE_VERSION}-openclaw{OPENCLAW_VERSION}-r{IMAGE_RECIPE}.tar"
    out = cache / name
    if out.exists():
        return out
    home = openclaw_home(cache)
    ensure_openclaw(cache, quiet=True)
    busybox = _busybox()
    if busybox is None:
        raise RuntimeError("busybox not found: apt-get install busybox-static")
    node = (home / "node_modules" / "node" / "bin" / "node").resolve()
    natives = [p for p in (home / "node_modules").rglob("*.node") if "linux-x64" in str(p)]
    libs = _shared_libraries([busybox, node, *natives])
    partial = out.with_suffix(".partial")
    with tarfile.open(partial, "w") as tar:
        for d, mode in (
            ("bin", 0o755),
            ("sbin", 0o755),
            ("usr/bin", 0o755),
            ("usr/sbin", 0o755),
            ("usr/local/bin", 0o755),
            ("etc", 0o755),
            ("etc/ssl/certs", 0o755),
            ("tmp", 0o1777),
            ("root", 0o700),
            ("opt", 0o755),
            ("home", 0o755),
        ):
            tar.addfile(_dir(d, mode))
        for d in ("home/node", "home/node/.openclaw", "home/node/.cache"):
            tar.addfile(_dir(d, 0o750, uid=1000))
        tar.add(str(busybox), arcname="bin/busybox")
        for applet in _applets(busybox):
            if applet != "bin/busybox":
                tar.addfile(_link(applet, "/bin/busybox"))
        made: set[str] = set()
        for lib in libs:  # as regular files at the paths ldd names (merged-/usr safe)
            name = str(lib).lstrip("/")
            for parent in _parents(name):
                if parent not in made:
                    made.add(parent)
                    tar.addfile(_dir(parent, 0o755))
            info = tar.gettarinfo(str(lib.resolve()), arcname=name)
            with lib.resolve().open("rb") as fh:
                tar.addfile(info, fh)
        for name, text in _etc_files().items():
            _add_text(tar, f"etc/{name}", text)
        certs = Path("/etc/ssl/certs/ca-certificates.crt")
        if certs.exists():
            tar.add(str(certs), arcname="etc/ssl/certs/ca-certificates.crt")
        tar.add(str(home / "package.json"), arcname=f"{OPT}/package.json")
        tar.add(str(home / "node_modules"), arcname=f"{OPT}/node_modules", filter=_root_owned)
    partial.rename(out)
    return out


def ensure_gateway_image(
    client: docker.DockerClient, *, tag: str = GATEWAY_IMAGE, cache: Path | None = None
) -> str:
    """Import the gateway image into the engine unless it is there; returns its id."""
    with contextlib.suppress(docker.errors.ImageNotFound):
        image_id: str = client.images.get(tag).id
        return image_id
    repository, _, version = tag.rpartition(":")
    client.api.import_image(
        src=str(rootfs_tar(cache)), repository=repository, tag=version, changes=IMAGE_CHANGES
    )
    imported: str = client.images.get(tag).id
    return imported


def _busybox() -> Path | None:
    found = shutil.which("busybox") or ("/bin/busybox" if Path("/bin/busybox").exists() else None)
    return Path(found) if found else None


def _shared_libraries(binaries: list[Path]) -> list[Path]:
    libs: set[Path] = set()
    for binary in binaries:
        out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=False)
        for line in out.stdout.splitlines():
            parts = line.split()
            path = parts[2] if "=>" in parts and len(parts) > 2 else parts[0] if parts else ""
            if path.startswith("/") and Path(path).exists():
                libs.add(Path(path))
    return sorted(libs)


def _parents(name: str) -> list[str]:
    parts = name.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def _applets(busybox: Path) -> list[str]:
    out = subprocess.run([str(busybox), "--list-full"], capture_output=True, text=True, check=True)
    return [line.strip().lstrip("/") for line in out.stdout.splitlines() if line.strip()]


def _etc_files() -> dict[str, str]:
    return {
        "passwd": "root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1000:node:/home/node:/bin/sh\n",
        "group": "root:x:0:\nnode:x:1000:\n",
        "nsswitch.conf": "hosts: files dns\n",
        "os-release": 'NAME="openclaw-saas gateway"\nID=openclaw-saas\n',
    }


def _dir(name: str, mode: int, uid: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, mode, uid, uid
    info.mtime = int(time.time())
    return info


def _link(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = tarfile.SYMTYPE, target, 0o777
    return info


def _add_text(tar: tarfile.TarFile, name: str, text: str) -> None:
    data = text.encode()
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
    tar.addfile(info, _bytes_io(data))


def _bytes_io(data: bytes) -> Any:
    import io

    return io.BytesIO(data)


def _root_owned(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.docker_engine", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="start dockerd on a private socket and block until Ctrl-C")
    up.add_argument("--root", help="engine state dir (default: temp dir, deleted at exit)")
    image = sub.add_parser("image", help="build the gateway rootfs (cached) and import it")
    image.add_argument("--docker-host", default=os.environ.get("DOCKER_HOST", ""))
    args = parser.parse_args(argv)
    if args.cmd == "image":
        if not args.docker_host:  # no engine to import into: build the cached rootfs only
            print(f"devstack: gateway rootfs {rootfs_tar()} (import with --docker-host)")
            return 0
        with contextlib.closing(docker.DockerClient(base_url=args.docker_host)) as client:
            print(ensure_gateway_image(client))
        return 0
    with DockerEngine(Path(args.root) if args.root else None) as engine:
        print(f"DOCKER_HOST={engine.docker_host}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while engine.proc is not None and engine.proc.poll() is None:
                time.sleep(1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
