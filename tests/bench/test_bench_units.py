"""The benchmark harness's own arithmetic (the runs themselves are `make bench`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from bench.__main__ import _phases
from bench.load import parse_wrk, wrk_script
from bench.report import Figure, percentile, table, write

WRK_OUTPUT = """Running 8s test @ http://127.0.0.1:4000
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     5.12ms    1.20ms  20.00ms   80.00%
    Req/Sec     6.25k   400.00     7.00k    70.00%
  Latency Distribution
     50%  850.00us
     75%    5.50ms
     90%    6.20ms
     99%    1.20s
  50000 requests in 8.00s, 7.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 5
Requests/sec:   6250.00
Transfer/sec:      0.88MB
"""


def test_wrk_output_is_parsed_in_milliseconds() -> None:
    result = parse_wrk(WRK_OUTPUT)
    assert result.rps == 6250.0
    assert result.p50_ms == 0.85
    assert result.p99_ms == 1200.0
    assert result.requests == 50000
    assert result.errors == 8


def test_wrk_script_lists_every_bot(tmp_path: Path) -> None:
    script = wrk_script(tmp_path / "s.lua", [("1", "a"), ("2", "b")]).read_text()
    assert '{"1", "a"}' in script and '{"2", "b"}' in script
    assert "X-Telegram-Bot-Api-Secret-Token" in script


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([3.0], 99) == 3.0
    assert percentile([], 50) is None


def test_results_have_the_issue_format(tmp_path: Path) -> None:
    figures = [
        Figure("ingress_rps", "requests/s", 500.0, 1000.0, ">= 0.5x baseline"),
        Figure("e2e_added_p50_ms", "ms", 12.345, None, "<= 10 ms"),
    ]
    path = tmp_path / "results.json"
    write(path, {"cores": 2}, figures)
    doc = json.loads(path.read_text())
    assert doc["machine"] == {"cores": 2}
    assert doc["figures"][0] == {
        "name": "ingress_rps",
        "unit": "requests/s",
        "value": 500.0,
        "baseline": 1000.0,
        "ratio": 0.5,
        "target": ">= 0.5x baseline",
    }
    assert doc["figures"][1]["ratio"] is None
    assert "0.50x" in table(figures)


def test_only_selects_phases_in_run_order() -> None:
    assert _phases("session_sync,metering") == ("metering", "session_sync")
    assert _phases("session-sync") == ("session_sync",)
    with pytest.raises(argparse.ArgumentTypeError):
        _phases("metering,nope")
    with pytest.raises(argparse.ArgumentTypeError):
        _phases("e2e")  # its CPU baseline comes from the ingress phase
    assert _phases("ingress,e2e") == ("ingress", "e2e")
