"""The package rule, read from every import statement (`ast`, any depth, lazy imports too):

- ingress, streams and agents_bridge import only common, schemas and themselves (never each
  other, never control, devstack, bench, chaos or tests);
- common imports only schemas; schemas imports only itself;
- no package but tests imports tests.

Standard-library and third-party imports are free everywhere.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT = frozenset(
    {
        "agents_bridge",
        "bench",
        "chaos",
        "common",
        "control",
        "devstack",
        "ingress",
        "schemas",
        "streams",
        "tests",
    }
)
# package -> the other project packages it may import (absent: any but tests)
ALLOWED: dict[str, frozenset[str]] = {
    "ingress": frozenset({"common", "schemas"}),
    "streams": frozenset({"common", "schemas"}),
    "agents_bridge": frozenset({"common", "schemas"}),
    "common": frozenset({"schemas"}),
    "schemas": frozenset(),
}


def imported(source: str) -> list[tuple[int, str]]:
    """(line, top-level package) of every absolute import in `source`; a relative import
    stays inside its own package and is left out."""
    out: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module.split(".")[0]))
    return out


def violations(package: str, source: str, where: str = "<source>") -> list[str]:
    """Each import in `source`, a module of `package`, that breaks the package rule."""
    allowed = ALLOWED.get(package, PROJECT - {"tests"}) | {package}
    return [
        f"{where}:{line}: {package} imports {name}"
        for line, name in imported(source)
        if name in PROJECT and name not in allowed
    ]


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_every_top_level_folder_with_python_is_a_known_package() -> None:
    folders = [
        d for d in ROOT.iterdir() if d.is_dir() and not d.name.startswith(".") and d.name != "build"
    ]
    with_python = {d.name for d in folders if next(d.rglob("*.py"), None) is not None}
    assert with_python <= PROJECT


@pytest.mark.parametrize("package", sorted(PROJECT - {"tests"}))
def test_the_package_keeps_the_rule(package: str) -> None:
    found = modules(package)
    assert found, f"{package}/ has no modules"
    broken = [
        v
        for path in found
        for v in violations(package, path.read_text(), str(path.relative_to(ROOT)))
    ]
    assert broken == []


@pytest.mark.parametrize(
    ("package", "source"),
    [
        ("streams", "from agents_bridge.forward.worker import run\n"),
        ("agents_bridge", "import ingress.telegram\n"),
        ("ingress", "def lazy():\n    from control import cli\n"),
        ("streams", "import os, devstack.probes\n"),
        ("common", "from streams.metering import decide\n"),
        ("schemas", "from common import timeconv\n"),
        ("chaos", "from tests.integration.quota_rig import inbound\n"),
        ("bench", "import tests.tenants as t\n"),
        ("agents_bridge", "if TYPE_CHECKING:\n    from bench.world import World\n"),
    ],
)
def test_a_forbidden_import_is_a_violation(package: str, source: str) -> None:
    [violation] = violations(package, source, "x.py")
    line = source.count("\n")  # each forbidden import is on the last line
    assert violation.startswith(f"x.py:{line}: {package} imports ")


@pytest.mark.parametrize(
    ("package", "source"),
    [
        ("streams", "import faust\nfrom common.topics import Topic\nfrom schemas import codec\n"),
        ("agents_bridge", "from agents_bridge.deliver.text import split_text\n"),
        ("agents_bridge", "from . import ports\nfrom ..common import x\n"),
        ("common", "import json\nfrom schemas.types import InboundMessage\n"),
        ("control", "import streams.main, ingress.main, devstack\n"),
        ("chaos", "from devstack.probes import eventually\nimport testsuite\n"),
    ],
)
def test_an_allowed_import_is_no_violation(package: str, source: str) -> None:
    assert violations(package, source) == []
