"""Figures, the machine they were measured on, the printed table and bench/results.json."""

from __future__ import annotations

import json
import math
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results.json"
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Figure:
    """One figure: the project's value, the bare baseline of the same run, the target."""

    name: str
    unit: str
    value: float | None
    baseline: float | None
    target: str
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.baseline:
            return None
        return self.value / self.baseline

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "unit": self.unit,
            "value": _round(self.value),
            "baseline": _round(self.baseline),
            "ratio": _round(self.ratio, 3),
            "target": self.target,
        }


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (and its waited-for children), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    return (utime + stime + cutime + cstime) / CLK_TCK


def percentile(values: list[float], p: float) -> float | None:
    """The `p`-th percentile (nearest rank) of `values`; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))
    return ordered[rank]


def machine(extra: dict[str, Any]) -> dict[str, Any]:
    cpu = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **extra,
    }


def table(figures: list[Figure]) -> str:
    head = ("figure", "unit", "value", "baseline", "ratio", "target")
    rows = [head] + [
        (
            f.name,
            f.unit,
            _fmt(f.value),
            _fmt(f.baseline),
            "-" if f.ratio is None else f"{f.ratio:.2f}x",
            f.target,
        )
        for f in figures
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    notes = [f"  {f.name}: {f.note}" for f in figures if f.note]
    return "\n".join(lines + (["", "notes:", *notes] if notes else []))


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}"


def write(path: Path, machine_info: dict[str, Any], figures: list[Figure]) -> None:
    doc = {"machine": machine_info, "figures": [f.to_json() for f in figures]}
    path.write_text(json.dumps(doc, indent=2) + "\n")
