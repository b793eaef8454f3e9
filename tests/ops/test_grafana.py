"""The Grafana dashboard and its file provisioning."""

from __future__ import annotations

import json
from typing import Any

import yaml

from tests.ops.promql import OPS, exported_names, metric_names

GRAFANA = OPS / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "pipeline.json"
# One row per stage of the flow (README "The flow"), in flow order.
STAGES = ("Ingress", "Metering", "Forwarder", "Delivery", "Session sync")


def _dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def _targets(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for p in dashboard["panels"] for t in p.get("targets", [])]


def test_a_row_per_stage_in_flow_order() -> None:
    rows = [p["title"] for p in _dashboard()["panels"] if p["type"] == "row"]
    firsts = [next(i for i, row in enumerate(rows) if row.startswith(s)) for s in STAGES]
    assert firsts == sorted(firsts), rows


def test_panels_query_only_metrics_the_registry_defines() -> None:
    known = exported_names()
    targets = _targets(_dashboard())
    assert len(targets) >= 20
    read: set[str] = set()
    for target in targets:
        names = metric_names(target["expr"])
        assert names, target["expr"]
        assert names <= known, f"{target['expr']} reads undefined {names - known}"
        read |= names
    # the metrics the operators' view needs, each on some panel
    assert read >= {
        "ingress_requests_total",
        "ingress_rejections_total",
        "kafka_produce_seconds_bucket",
        "kafka_produce_errors_total",
        "quota_decisions_total",
        "overage_held_messages",
        "gateway_request_seconds_bucket",
        "gateway_errors_total",
        "kafka_consumer_lag_messages",
        "dead_letters_total",
        "postgres_write_seconds_bucket",
        "channel_sends_total",
        "stage_events_total",
    }


def test_panels_are_laid_out_without_overlap() -> None:
    taken: set[tuple[int, int]] = set()
    ids = set()
    for panel in _dashboard()["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24
        cells = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not cells & taken, panel["title"]
        taken |= cells
        assert panel["id"] not in ids
        ids.add(panel["id"])


def test_provisioning_points_at_the_dashboard_and_the_datasource_uid() -> None:
    provisioning = GRAFANA / "provisioning"
    sources = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    (source,) = sources["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    uids = {t["datasource"]["uid"] for t in _targets(_dashboard())}
    assert uids == {source["uid"]}
    providers = yaml.safe_load((provisioning / "dashboards" / "openclaw-saas.yml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    compose = yaml.safe_load((OPS.parent / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./ops/grafana/dashboards:{provider['options']['path']}:ro" in mounts
    assert "./ops/grafana/provisioning:/etc/grafana/provisioning:ro" in mounts
