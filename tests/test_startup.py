"""Start-up of the receiver's commands: what was made faster still gives the same values, the
workers find everything made, the imports leave out what the path does not need, and the
timing hook reports the phases (the start-up time itself is measured by
benchmarks/bench_startup.py, not here: no test here compares a duration with a limit, and the
phases are checked by what must come before what, never by how far apart they are)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from dsp.air import params as P
from dsp.numba_settings import jit_enabled

ROOT = Path(__file__).resolve().parents[1]


def test_kaiser_lowpass_is_scipy_firwin_bit_for_bit():
    from scipy import signal

    from dsp.rx import channelizer as C

    for fs, taps, cut, db in [
        (48000.0, C.TAPS_A, 3000.0, C.STOP_DB),
        (6000.0, C.TAPS_B, 750.0, C.STOP_DB),
        (44100.0, 60, 2000.0, 40.0),
        (96000.0, 7, 100.0, 15.0),
        (8000.0, 2, 1000.0, 30.0),
    ]:
        want = signal.firwin(taps, cut, window=("kaiser", signal.kaiser_beta(db)), fs=fs)
        got = C.kaiser_lowpass(taps, cut, fs, db)
        assert got.dtype == want.dtype and np.array_equal(got, want), (fs, taps, cut, db)
    ha, hb = C.design(48000.0)
    assert ha.size == C.TAPS_A and hb.size == C.TAPS_B
    with pytest.raises(ValueError, match="cut-off"):
        C.kaiser_lowpass(11, 30000.0, 48000.0, 65.0)


def _template_by_arrays(channel: P.Channel, code: int, grid_hz: float, fs_bb: float, phase: float) -> np.ndarray:
    """The detector's template as it was made before its kernel: numpy arrays and a call of
    ``rrc`` from Python per point (the reference the kernel must equal to the bit)."""
    from dsp.air.codes import chip_code, preamble_bits
    from dsp.rx.detect.templates import PRE_CHIPS
    from dsp.tx.shaping import rrc

    tc, t0 = 1.0 / P.CHIP_RATE_HZ, 1.0 / grid_hz
    n_chips = P.PREAMBLE_SYMBOLS * P.CHIPS_PER_SYMBOL
    chips = (1.0 - 2.0 * preamble_bits().astype(float)).repeat(P.CHIPS_PER_SYMBOL) * np.asarray(
        chip_code(channel.index, code)
    )[np.arange(n_chips) % P.CODE_LENGTH]
    length = int(math.ceil(((n_chips - 1 + 2 * PRE_CHIPS) * tc + t0) * fs_bb)) + 1
    t = (np.arange(length) + phase) / fs_bb - PRE_CHIPS * tc
    w2 = -np.exp(-2j * np.pi * channel.fc_hz * t0)
    out = np.zeros(length, complex)
    for n in range(n_chips):
        for d, w in ((0.0, 1.0), (t0, w2)):
            x = (t - d) / tc - n
            m = np.abs(x) <= PRE_CHIPS
            out[m] += w * chips[n] * np.array([rrc(float(v), P.RRC_BETA) for v in x[m]])
    return out


@pytest.mark.parametrize("grid_hz, ch, code, phase", [(60.0, 0, 0, 0.0), (60.0, 2, 3, 0.5), (50.0, 1, 2, 0.5)])
def test_template_kernel_gives_the_array_sum_to_the_bit(grid_hz, ch, code, phase):
    from dsp.rx.detect.templates import template

    c = P.ChannelPlan.default(grid_hz).channels[ch]
    got = template(c, code, grid_hz, 1500.0, phase)
    want = _template_by_arrays(c, code, grid_hz, 1500.0, phase)
    assert got.dtype == want.dtype and np.array_equal(got.view(np.float64), want.view(np.float64))


def test_rrc_table_is_rrc_point_by_point():
    from dsp.rx.demod import pulse
    from dsp.tx.shaping import rrc, rrc_many

    x = np.arange(-pulse.TAB_SPAN * pulse.TAB_RES, pulse.TAB_SPAN * pulse.TAB_RES + 2) / pulse.TAB_RES
    want = np.array([rrc(float(v), P.RRC_BETA) for v in x])
    assert np.array_equal(pulse.RRC_TAB, want)
    pts = np.array([0.0, 1.0 / (4 * P.RRC_BETA), -0.3, 5.123])  # (its two special cases, two others)
    assert np.array_equal(rrc_many(pts, 0.25), np.array([rrc(float(v), 0.25) for v in pts]))


def _loaded_kernels() -> dict[str, int]:
    """Every numba kernel of dsp imported so far: how many signatures it has loaded or compiled."""
    from numba.core.registry import CPUDispatcher

    out = {}
    for name, mod in list(sys.modules.items()):
        if name.startswith("dsp.") and mod is not None:
            for attr, v in list(vars(mod).items()):  # (a copy: another thread may be importing)
                if isinstance(v, CPUDispatcher):
                    out[f"{name}.{attr}"] = len(v.signatures)
    return out


@pytest.mark.skipif(not jit_enabled(), reason="warm_up does nothing without JIT")
def test_after_warm_up_a_worker_loads_no_kernel():
    """What the pipeline's workers run (their chains on float32 blocks of a capture with bursts,
    detection, demodulation, excision, the flush, and the measurement of a decoded burst on
    their inputs) loads or compiles nothing after warm_up: the workers, forked after it, find
    every kernel loaded."""
    import soundfile as sf

    from dsp.rx.chain import warm_up
    from receiver.measuring import MeasureRequest, WorkerMeasurer
    from receiver.pipeline import _Chains

    plan = P.ChannelPlan.default(60.0)
    warm_up(plan, 48000.0)
    before = _loaded_kernels()
    x, fs = sf.read(ROOT / "captures" / "demo_small.wav", dtype="float32")
    chains = _Chains(plan, [0, 1], float(fs))
    meas = WorkerMeasurer(plan, [0, 1], float(fs), 10**7)
    recs = []
    for a in range(0, x.shape[0], 48000):
        recs += chains.run(0, a, np.ascontiguousarray(x[a : a + 48000, :2])).records
    recs += chains.run(0, -1, None, flush=True).records
    assert any(r.bursts for r in recs)  # (the demodulator and the excision ran)
    for r in recs:
        meas.take(r.input_index, r.baseband_start, r.baseband)
    b = next(b for r in recs for b in r.bursts)
    inputs = {0: (60.0, 0.7), 1: (60.0001, 0.7)}
    req = MeasureRequest(1, 0, b.channel, b.code, b.start_sample, 12.5, bytes(P.FRAME_BYTES), inputs)
    assert all(m is not None for m in meas.answer(0, req).measured.values())
    after = _loaded_kernels()
    assert {k: v for k, v in after.items() if v != before.get(k, 0)} == {}


def test_replay_imports_leave_out_what_it_does_not_use():
    code = (
        "import sys, receiver.replay, receiver.cli\n"
        "print(sorted(m for m in ('scipy.signal', 'scipy.stats', 'scipy.ndimage', 'scipy.interpolate',"
        " 'scipy.optimize', 'zmq', 'httpx', 'matplotlib', 'platform_api') if m in sys.modules))"
    )
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert p.stdout.strip() == "[]"


def test_sources_are_imported_on_first_use():
    import receiver.sources as s

    assert s.ZmqSource.__module__ == "receiver.sources.zmq_source"
    assert s.CaptureSource.__module__ == "receiver.sources.capture"
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        s.Nothing  # noqa: B018
    assert set(s.__all__) <= set(dir(s)) | set(s._WHERE)


def test_first_block_is_marked_once_every_worker_has_answered(monkeypatch, capsys):
    from receiver import timings
    from receiver.pipeline import WorkerOutput

    monkeypatch.setenv(timings.ENV, "1")
    # the command's start, pinned as the first mark would pin it (in the environment) but through
    # monkeypatch, so that no later test, nor a process it starts, inherits it as its own
    monkeypatch.setenv(timings.T0_ENV, repr(time.time()))
    fb = timings.FirstBlock(2)
    fb.seen(WorkerOutput(1, 0, 48000))
    fb.seen(WorkerOutput(1, 48000, 48000))
    assert timings.PREFIX not in capsys.readouterr().err
    fb.seen(WorkerOutput(0, 0, 48000))
    fb.seen(WorkerOutput(0, 48000, 48000))
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith(timings.PREFIX)]
    assert len(lines) == 1 and lines[0].split()[1] == "first_block"
    f = lines[0].split()
    assert float(f[2]) >= 0.0 and int(f[f.index("pid") + 1]) == os.getpid()
    monkeypatch.setenv(timings.ENV, "0")
    timings.FirstBlock(1).seen(WorkerOutput(0, 0, 1))
    timings.mark("anything")
    assert capsys.readouterr().err == ""


def test_a_timing_line_is_written_whole(monkeypatch):
    """One write per line: the pipeline's workers share the command's stderr, and a line written
    in two pieces (print's text, then its newline) was cut by another process's line when two
    workers marked at once (a pipe keeps one write whole)."""
    from receiver import timings

    class Stderr:
        def __init__(self) -> None:
            self.writes: list[str] = []

        def write(self, s: str) -> int:
            self.writes.append(s)
            return len(s)

        def flush(self) -> None:
            pass

    err = Stderr()
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setenv(timings.ENV, "1")
    monkeypatch.setenv(timings.T0_ENV, repr(time.time()))
    timings.mark("worker0_first_block")
    assert len(err.writes) == 1 and err.writes[0].count("\n") == 1 and err.writes[0].endswith("\n")
    assert err.writes[0].split()[:2] == [timings.PREFIX, "worker0_first_block"]


def test_replay_timings_report_the_phases_up_to_the_first_block():
    """`gla replay --timings`: the parent's phases in order, every worker's, the first block
    last; without the flag, no timing line. The order across processes is what causality gives:
    the workers are forked inside the pipeline's construction, after the ``grouper`` mark, and may
    make their chains before the parent marks ``pipeline`` (by how much depends on the load: no
    slack of seconds here); ``first_block`` waits for every worker's first block."""
    cmd = [sys.executable, "-m", "receiver.cli", "replay", "captures/demo_small", "--workers", "2"]
    cmd += ["--no-progress", "--show", "0"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("GLA_TIMINGS")}
    p = subprocess.run(cmd + ["--timings"], cwd=ROOT, capture_output=True, text=True, env=env, check=True)
    lines = [ln.split() for ln in p.stderr.splitlines() if ln.startswith("gla-timings:")]
    t = {f[1]: float(f[2]) for f in lines}
    assert [f[1] for f in lines if f[1] in ("cli", "imports", "source", "grouper", "pipeline", "first_block")] == [
        "cli",
        "imports",
        "source",
        "grouper",
        "pipeline",
        "first_block",
    ]
    for w in (0, 1):
        assert t["grouper"] <= t[f"worker{w}_started"] <= t[f"worker{w}_chains"]
        assert t[f"worker{w}_chains"] <= t[f"worker{w}_first_block"] <= t["first_block"]
    assert 0.0 < t["cli"] <= t["first_block"]
    assert "4 bundles" in p.stdout
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, check=True)
    assert "gla-timings" not in p.stderr
