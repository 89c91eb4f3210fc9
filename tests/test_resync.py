"""A resynchronisation must not mix segments: every block sent before a pipeline reset comes back
in the old segment (and is grouped there), the old segment's bursts are finished before the
new one starts, and the service resynchronised many times mid-stream makes the bundles of an
offline replay of the same samples segment by segment."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from dsp.air import params as P
from receiver.grouping import Grouper, InputInfo
from receiver.pipeline import Pipeline, WorkerOutput
from receiver.replay import replay

ROOT = Path(__file__).resolve().parents[1]
CAP = ROOT / "captures" / "demo_small"


def test_reset_waits_for_every_block_of_the_old_segment():
    """The workers still hold blocks when the reset comes (fed faster than they run): reset()
    returns every one of them (and the chains' flush), all tagged with the old segment; what
    follows carries the new one."""
    plan = P.ChannelPlan.default()
    rng = np.random.default_rng(3)
    pipe = Pipeline(plan, 4, workers=2, queue_blocks=8)
    try:
        n_blocks = 6
        for k in range(n_blocks):
            pipe.feed(k * 4800, rng.normal(size=(4800, 4)))
        got = pipe.reset()
        assert pipe.segment == 1
        assert len(got) == n_blocks * 2 + 2  # every block of both workers, then their flush
        assert {o.segment for o in got} == {0}
        assert sorted(o.first_sample for o in got if o.first_sample >= 0) == sorted(
            k * 4800 for k in range(n_blocks) for _ in range(2)
        )
        assert pipe.outputs() == []  # nothing of the old segment is left behind
        pipe.feed(10**6, rng.normal(size=(4800, 4)))
    finally:
        rest = pipe.close()
    assert rest and {o.segment for o in rest} == {1}


def test_grouper_drops_and_counts_an_output_of_another_segment():
    plan = P.ChannelPlan.default()
    inputs = [InputInfo(i, 0, i // 3, "ABC"[i % 3]) for i in range(4)]
    g = Grouper(plan, inputs, receiver_id="rx-test", substation_id="sub-test")
    pipe = Pipeline(plan, 4, workers=0)
    pipe.feed(0, np.random.default_rng(1).normal(size=(4800, 4)))
    old = pipe.outputs()
    for o in pipe.reset():
        g.add_output(o)
    g.reset(48000, pipe.segment)
    assert g.add_output(old[0]) == [] and g.stats["stale_outputs_dropped"] == 1
    assert g.progress == {i: 0 for i in range(4)} and not g.rings  # nothing of it was taken
    stale = WorkerOutput(0, 0, 0, records=old[0].records, segment=pipe.segment + 1)
    g.add_output(stale)
    assert g.stats["stale_outputs_dropped"] == 2


def test_a_reset_finishes_the_old_segments_bursts():
    """The first burst of demo_small ends at 3.6 s; the stream breaks off at 3.8 s, while the
    detectors still hold the burst back (release delay). The reset flushes the chains into the
    old segment: its bundle is the one an offline replay of those 3.8 s makes."""
    x, _ = sf.read(str(CAP) + ".wav", dtype="float64")
    meta = json.loads((ROOT / "captures" / "demo_small.sigmf-meta").read_text())
    x /= meta["global"]["gla:scale"]
    inputs = [InputInfo(c["index"], c["bus"], c["feeder"], c["phase"]) for c in meta["global"]["gla:channels"]]
    plan = P.ChannelPlan.default()
    g = Grouper(plan, inputs, receiver_id="rx-replay", substation_id="sub-1")
    pipe = Pipeline(plan, x.shape[1], workers=2)
    end = int(3.8 * 48000)
    try:
        for pos in range(0, end, 4800):
            pipe.feed(pos, x[pos : pos + 4800])
            for o in pipe.outputs():
                g.add_output(o)
        assert g.bundles == []  # the burst is over, but still held back
        for o in pipe.reset():
            g.add_output(o)
        g.reset(10**7, pipe.segment)
    finally:
        pipe.close()
    want = replay(CAP, duration_s=3.8, progress=False, block_s=0.1).bundles
    done = g.bundles
    assert len(want) == 1 and len(done) == 1

    def same(b):
        return (b.frame_hex, [(c.input_index, c.start_sample, c.level_db) for c in b.copies], b.inferred)

    assert same(done[0]) == same(want[0])


def test_many_resyncs_mid_stream_match_an_offline_replay_segment_by_segment(tmp_path):
    """12 resynchronisations at random points of a 60-s stream, fed through the service's live
    source as fast as it takes it (so blocks are inside the workers at every reset): the same
    bundles, copies, levels and feeder/phase as the replay of each segment on its own, and no
    bundle with copies of two segments. (On the code before the fix: bundles lost at every
    reset and others placed in the wrong segment.) The scenario is benchmarks/bench_resync.py,
    run as a subprocess (tests import no benchmark module)."""
    cmd = [sys.executable, "benchmarks/bench_resync.py", "--resyncs", "12", "--seed", "1", "--work-dir", str(tmp_path)]
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-2000:]
    r = json.loads(p.stdout)
    assert r["resyncs"] == 12
    assert r["differences"] == [] and r["mismatches"] == 0 and r["mixed"] == 0
    assert r["compared"] == r["service_bundles"] == r["offline_bundles"] >= 12
