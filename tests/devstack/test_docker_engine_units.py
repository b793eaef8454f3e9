"""The gateway image recipe's pieces (no engine needed)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from devstack import docker_engine as de
from devstack.openclaw import OPENCLAW_VERSION


def test_parents_of_a_library_path() -> None:
    assert de._parents("lib/x86_64-linux-gnu/libc.so.6") == ["lib", "lib/x86_64-linux-gnu"]
    assert de._parents("file") == []


@pytest.mark.skipif(shutil.which("ldd") is None or not Path("/bin/ls").exists(), reason="no ldd")
def test_shared_libraries_of_a_dynamic_binary_include_libc_and_the_loader() -> None:
    names = {p.name for p in de._shared_libraries([Path("/bin/ls")])}
    assert "libc.so.6" in names
    assert any(n.startswith("ld-linux") for n in names)


def test_image_settings_run_the_gateway_as_the_node_user_with_a_readyz_health_check() -> None:
    changes = "\n".join(de.IMAGE_CHANGES)
    assert "USER 1000:1000" in changes
    assert '"gateway", "run", "--bind", "lan", "--port", "18789"' in changes
    assert "HEALTHCHECK" in changes and "/readyz" in changes
    assert de.GATEWAY_IMAGE.endswith(":" + OPENCLAW_VERSION)


def test_engine_problem_names_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("devstack.docker_engine.shutil.which", lambda _name: None)
    monkeypatch.setattr("devstack.docker_engine.os.geteuid", lambda: 0)
    problem = de.engine_problem()
    assert problem is not None and "dockerd" in problem
