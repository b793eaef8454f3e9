"""Which metric names a PromQL expression reads, and which ones the project defines."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client.metrics import MetricWrapperBase

from common import telemetry

ROOT = Path(__file__).resolve().parents[2]
OPS = ROOT / "ops"

_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "offset", "bool"}
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"(?<![\w$.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()")
# Series every Prometheus target has, defined by Prometheus rather than by the project.
_BUILTIN = {"up"}


def metric_names(expr: str) -> set[str]:
    """The metric names `expr` selects (label matchers, groupings and ranges removed)."""
    text = re.sub(r'"[^"]*"', "", expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = _GROUPING.sub("", text)
    return {
        name
        for name in _IDENT.findall(text)
        if name not in _KEYWORDS and not name.replace("_", "").isdigit()
    }


def exported_names() -> set[str]:
    """Every series name the project's registry (common.telemetry) can export."""
    names = set(_BUILTIN)
    for value in vars(telemetry).values():
        if not isinstance(value, MetricWrapperBase):
            continue
        base = value._name
        if value._type == "counter":
            names.add(f"{base}_total")
        elif value._type == "histogram":
            names.update({f"{base}_bucket", f"{base}_count", f"{base}_sum"})
        else:
            names.add(base)
    return names
