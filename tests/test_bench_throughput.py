"""The throughput benchmark's bookkeeping: steal time, the canary, the run history and its plot."""
from __future__ import annotations

import json
import math

from benchmarks import bench_dsp as B


def test_steal_seconds_is_a_count_or_nan():
    s = B._steal_s(0)
    assert math.isnan(s) or s >= 0.0
    assert math.isnan(B._steal_s(None))
    assert math.isnan(B._steal_s(10**6))  # no such core: no count, not an error


def test_canary_times_a_fixed_sort():
    t = B._canary()
    assert 0.0 < t < 1.0


def _thr(rtf: float) -> dict:
    return {"date": "2026-11-22T15:00:00+0000", "realtime_factor_36in_48k_1core": rtf,
            "realtime_factor_runs": [rtf + 1, rtf, rtf - 1], "canary_us_runs": [600.0, 610.0, 700.0],
            "steal_fraction_runs": [0.0, 0.0, 0.01], "msamples_per_s": rtf * 1.728,
            "stage_msamples_per_s": {"comb": 500.0, "detector": None}}


def test_history_appends_one_line_per_run_and_plots(tmp_path):
    path = tmp_path / "runs.jsonl"
    B.append_history(_thr(55.0), path)
    hist = B.append_history(_thr(45.0), path)
    assert [h["realtime_factor"] for h in hist] == [55.0, 45.0]
    assert hist[-1]["passes"] == [46.0, 45.0, 44.0] and hist[-1]["canary_us"] == [600.0, 610.0, 700.0]
    assert all(json.loads(line) for line in path.read_text().splitlines())
    png = tmp_path / "t.png"
    B.plot_throughput(_thr(45.0), png, hist)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
