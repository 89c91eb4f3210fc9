"""The receiver benchmark (benchmarks/bench_receiver.py), run as a subprocess (tests import no
benchmark module): a --quick run never writes into the committed results, and the product
stages (the chain alone, the replay, the stage profile, the service) write the side-by-side keys,
computed as documented, and their plots."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "benchmarks" / "results"
ALL_STAGES = ["phase", "demo", "chain", "large", "profile", "service", "simulate", "startup", "kill"]


def _snapshot(d: Path) -> dict:
    return {p.relative_to(d).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(d.rglob("*"))}


def _run(*args: str) -> str:
    r = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_receiver", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


def test_a_quick_run_writes_into_a_temporary_directory_not_the_committed_results():
    before = _snapshot(COMMITTED)
    out = _run("--quick", "--skip", *ALL_STAGES)
    assert _snapshot(COMMITTED) == before
    written = Path(re.search(r"^wrote (\S+)", out, re.M).group(1))
    try:
        assert COMMITTED not in written.parents
        assert "the committed results are untouched" in out
        d = json.loads(written.read_text())
        # every result file names its command, date and machine
        assert d["command"].startswith("python -m benchmarks.bench_receiver --quick")
        assert d["date"] and d["machine"]["cores"] >= 1
    finally:
        shutil.rmtree(written.parent)


@pytest.mark.slow
def test_the_product_stages_write_the_side_by_side_keys(tmp_path):
    """The chain alone and the replay in one run give replay / (2 x chain); the replay's capture
    length, start-up, peak RSS of its process tree and its processes; the service's CPU fraction
    and latencies; the plots. On the committed 8-s, 12-input capture, to be quick."""
    before = _snapshot(COMMITTED)
    out_dir = tmp_path / "results"
    _run(
        *("--quick", "--out", str(out_dir), "--capture", str(ROOT / "captures" / "demo_small")),
        *("--service-seconds", "6", "--skip", "phase", "demo", "simulate", "startup", "kill"),
    )
    assert _snapshot(COMMITTED) == before
    d = json.loads((out_dir / "receiver.json").read_text())
    chain, replay = d["chain_realtime_factor_36in_1core"], d["replay_realtime_factor_36in_48k_2cores"]
    assert chain > 0 and replay > 0
    assert d["replay_to_chain_ratio"] == round(replay / (2 * chain), 3)
    chain_cpu_per_s = 1 / d["chain"]["cpu_realtime_factor_36in_48k_1core"]
    replay_cpu_per_s = d["large"]["tree_cpu_s"] / d["large"]["capture_s"]
    assert d["replay_to_chain_cpu_ratio"] == round(chain_cpu_per_s / replay_cpu_per_s, 3)
    assert d["replay_capture_s"] == 8.0
    lg = d["large"]
    assert lg["inputs"] == 12 and lg["workers"] == 2
    assert 0 < lg["startup_s"] < lg["wall_s"]
    roles = sorted(p["role"] for p in lg["processes"])
    assert roles == ["parent", "worker0", "worker1"]
    assert all(p["cpu_s"] > 0 and p["startup_cpu_s"] is not None for p in lg["processes"])
    # the tree's peak: at least the largest process's own peak, and under the sum of the peaks
    assert max(p["peak_rss_mb"] for p in lg["processes"]) * 0.9 <= d["replay_peak_rss_mb"] <= lg["rss_hwm_sum_mb"] + 1
    assert lg["message_success_rate"] is not None
    sv = d["service"]
    assert 5.5 <= sv["stream_s"] <= 6.5
    assert (
        0
        < d["service_cpu_fraction_36in_realtime"]
        == pytest.approx(sv["cpu_s_while_streaming"] / sv["stream_s"] / sv["cores"], rel=1e-3)
    )
    assert d["service_latency_max_s"] is None or d["service_latency_median_s"] <= d["service_latency_max_s"]
    pr = d["stage_profile"]
    assert set(pr["stage_s"]) >= {"file reading/decoding", "comb", "detector bank", "measurements", "grouping"}
    for st in ("chain", "large", "profile", "service"):
        assert d["stage_runs"][st]["command"] == d["command"] and d["stage_runs"][st]["machine"]
    for png in ("replay_stages.png", "replay_processes.png"):
        assert (out_dir / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
