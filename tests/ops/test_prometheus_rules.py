"""The Prometheus config and alert rules: promtool checks them and runs their unit tests."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest
import yaml

from control.commands import SERVICES
from tests.ops.promql import OPS, exported_names, metric_names

PROMETHEUS = OPS / "prometheus"


def _promtool(*args: str) -> str:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool missing: run scripts/setup-system.sh (Debian package prometheus)")
    done = subprocess.run(
        [promtool, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def test_promtool_checks_config_and_rules() -> None:
    assert "SUCCESS" in _promtool("check", "config", "prometheus.yml")
    assert "SUCCESS" in _promtool("check", "rules", "alerts.yml")


def test_promtool_rule_unit_tests_pass() -> None:
    assert "SUCCESS" in _promtool("test", "rules", "alerts_test.yml")


def test_the_issue_alerts_exist_and_every_one_is_unit_tested() -> None:
    names = {rule["alert"] for rule in _rules()}
    assert names >= {
        "ConsumerLagGrowing",
        "DeadLettersAppearing",
        "GatewayErrorRatioHigh",
        "Ingress5xx",
        "OverageQueueGrowing",
    }
    tests = yaml.safe_load((PROMETHEUS / "alerts_test.yml").read_text())["tests"]
    tested = {case["alertname"] for test in tests for case in test["alert_rule_test"]}
    assert tested == names
    for rule in _rules():
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]


def test_rules_read_only_metrics_the_registry_defines() -> None:
    known = exported_names()
    for rule in _rules():
        unknown = metric_names(rule["expr"]) - known
        assert not unknown, f"{rule['alert']} reads undefined metrics {unknown}"


def test_prometheus_scrapes_every_process_kind() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert jobs == {*SERVICES, "prometheus"}
    assert config["rule_files"] == ["alerts.yml"]


def test_metric_names_parser() -> None:
    expr = (
        'sum by (group, topic) (max by (group, topic, partition) (delta(lag_x{group=~"a"}[10m])))'
        " > 1000 and on() rate(b_total[5m]) unless c offset 5m"
    )
    assert metric_names(expr) == {"lag_x", "b_total", "c"}
