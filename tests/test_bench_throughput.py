"""The throughput benchmark (benchmarks/bench_dsp.py) end to end: its --quick throughput part, run as
a subprocess (tests import no benchmark module) into a temporary directory (a test run must never
touch the committed results in benchmarks/results/). Its steal-time and canary bookkeeping show in
what it writes."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _snapshot(d: Path) -> dict:
    return (
        {
            p.relative_to(d).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(d.rglob("*"))
            if p.is_file()
        }
        if d.exists()
        else {}
    )


@pytest.mark.slow
def test_quick_throughput_run_writes_its_results_where_it_is_told(tmp_path):
    committed = ROOT / "benchmarks" / "results"
    before = _snapshot(committed)
    out = tmp_path / "results"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.bench_dsp",
            "--quick",
            "--skip",
            "sensitivity",
            "comb",
            "false",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    assert _snapshot(committed) == before
    thr = json.loads((out / "throughput.json").read_text())
    assert thr["realtime_factor_36in_48k_1core"] > 0 and thr["inputs"] == 36
    assert len(thr["realtime_factor_runs"]) == 5
    # per pass: the canary (a fixed numpy sort after every block, ~1 ms) and the share of the pass
    # the hypervisor took the pinned core away (NaN where there is no such count)
    assert all(0.0 < c < 1e6 for c in thr["canary_us_runs"])
    assert all(math.isnan(s) or 0.0 <= s <= 1.0 for s in thr["steal_fraction_runs"])
    assert (out / "throughput.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a quick run is not a measurement: no history line, no sensitivity results, no capture left behind
    assert sorted(p.name for p in out.iterdir()) == ["throughput.json", "throughput.png"]
