"""docker-compose.yml: valid for Compose itself, and wired the way the pipeline needs.

`docker compose config` (or Debian's docker-compose 1.29, which reads the same Compose
Specification) validates the file; no registry is reachable here, so the images are not
pulled or built. The structural checks below cover what Compose cannot know.
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest
import yaml

from control.commands import SERVICES
from tests.ops.promql import ROOT

COMPOSE = ROOT / "docker-compose.yml"


def _compose_command() -> list[str]:
    docker = shutil.which("docker")
    if docker is not None:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30)
        if probe.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    if legacy is None:
        pytest.fail("neither `docker compose` nor docker-compose: run scripts/setup-system.sh")
    return [legacy]


def _resolved() -> dict[str, Any]:
    done = subprocess.run(
        [*_compose_command(), "-f", str(COMPOSE), "config"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin:/usr/local/bin"},  # no .env overrides from the caller
    )
    assert done.returncode == 0, done.stderr
    config: dict[str, Any] = yaml.safe_load(done.stdout)
    return config


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return _resolved()


def test_every_process_kind_runs_from_the_project_image(config: dict[str, Any]) -> None:
    services = config["services"]
    for name in SERVICES:
        service = services[name]
        assert service["command"] == ["run", name]
        assert "build" in service and service["image"] == "openclaw-saas:latest"
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert services["postgres"]["image"].startswith("postgres:")
    assert {"prometheus", "grafana", "migrate"} <= set(services)


def test_health_checks_and_start_order(config: dict[str, Any]) -> None:
    services = config["services"]
    for name, service in services.items():
        if name != "migrate":
            assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
    assert services["migrate"]["depends_on"] == {
        "kafka": {"condition": "service_healthy"},
        "postgres": {"condition": "service_healthy"},
    }
    for name in SERVICES:
        deps = services[name]["depends_on"]
        assert deps["migrate"] == {"condition": "service_completed_successfully"}
        assert deps["kafka"]["condition"] == deps["postgres"]["condition"] == "service_healthy"
    assert services["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"


def test_metrics_are_reachable_where_prometheus_looks(config: dict[str, Any]) -> None:
    prometheus = yaml.safe_load((ROOT / "ops" / "prometheus" / "prometheus.yml").read_text())
    targets = {
        job["job_name"]: job["static_configs"][0]["targets"][0]
        for job in prometheus["scrape_configs"]
    }
    services = config["services"]
    for name in SERVICES:
        env = services[name]["environment"]
        host, port = targets[name].split(":")
        assert host == name
        if name == "ingress":
            assert (env["INGRESS_HOST"], env["INGRESS_PORT"]) == ("0.0.0.0", port)
        else:
            assert (env["METRICS_HOST"], env["METRICS_PORT"]) == ("0.0.0.0", port)
        assert env["KAFKA_BOOTSTRAP"] == "kafka:9092"
        assert env["DATABASE_URL"].endswith("@postgres:5432/openclaw")


def test_dockerfile_runs_the_cli() -> None:
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    instructions = [line for line in lines if line and not line.startswith("#")]
    assert 'ENTRYPOINT ["openclaw-saas"]' in instructions
    assert any(line.startswith("USER ") and "root" not in line for line in instructions)
    assert instructions[0].startswith("FROM python:3.11")
