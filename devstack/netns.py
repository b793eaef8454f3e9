"""Run a command in a network namespace that has only loopback (``unshare -n``).

The OpenClaw gateway looks up ``clawhub.ai`` after its first agent turn whatever its
settings, so tests and ``make run`` run inside such a namespace, after all fetching is done.
Servers started inside it are reachable only from inside it.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
from collections.abc import Sequence
from typing import NoReturn

#: Shell snippet: bring loopback up, then replace the shell with the command.
_LO_UP = 'ip link set lo up && exec "$@"'


def interfaces() -> list[str]:
    """Names of the network interfaces visible to this process."""
    return [name for _, name in socket.if_nameindex()]


def in_loopback_netns() -> bool:
    """True when ``lo`` is the only network interface (e.g. inside ``unshare -n``)."""
    return set(interfaces()) <= {"lo"}


def isolation_problem() -> str | None:
    """Why a loopback namespace cannot be made here, or None when it can."""
    if os.geteuid() != 0:
        return "not root (unshare -n needs CAP_SYS_ADMIN)"
    if shutil.which("unshare") is None:
        return "unshare not found (apt-get install -y util-linux)"
    if shutil.which("ip") is None:
        return "ip not found (apt-get install -y iproute2)"
    return None


def loopback_netns_argv(argv: Sequence[str]) -> list[str]:
    """``argv`` wrapped as ``unshare -n -- sh -c 'ip link set lo up && exec "$@"' sh ARGV``."""
    return ["unshare", "-n", "--", "sh", "-c", _LO_UP, "sh", *argv]


def reexec_in_loopback_netns(argv: Sequence[str]) -> NoReturn:
    """Replace this process with ``argv`` run in a fresh loopback-only network namespace.

    Already isolated: exec ``argv`` as is. Cannot isolate (not root, no ``unshare``):
    print a warning and exec ``argv`` without isolation.
    """
    if not argv:
        raise ValueError("no command given")
    sys.stdout.flush()
    sys.stderr.flush()
    if in_loopback_netns():
        os.execvp(argv[0], list(argv))  # noqa: S606 - exec is the point
    problem = isolation_problem()
    if problem is not None:
        print(
            f"devstack: WARNING: running without network isolation: {problem}",
            file=sys.stderr,
            flush=True,
        )
        os.execvp(argv[0], list(argv))  # noqa: S606 - exec is the point
    wrapped = loopback_netns_argv(argv)
    os.execvp(wrapped[0], wrapped)  # noqa: S606 - exec is the point
