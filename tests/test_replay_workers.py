"""The replay's data path: the workers read and decode their own columns of the capture, keep the
baseband and measure the decoded bursts on it; the parent does no per-sample work. The bundles
are those of the path where the parent read the file, shipped the samples and measured every
copy itself."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import soundfile as sf

from dsp.air import params as P
from receiver.grouping import Grouper
from receiver.pipeline import Pipeline
from receiver.replay import inputs_from_meta, replay
from receiver.sources import CaptureSource
from receiver.sources.columns import ColumnSpec, _data_offset

ROOT = Path(__file__).resolve().parents[1]
CAP = ROOT / "captures" / "demo_small"


def test_columns_decode_like_soundfile_and_count_full_scale(tmp_path):
    """Every integer subtype, RF64 and WAV: the columns' values are soundfile's float64 read
    divided by the scale, as float32, exactly; the extremes of the range are counted."""
    rng = np.random.default_rng(5)
    for subtype, bits, fmt in (("PCM_24", 24, "RF64"), ("PCM_16", 16, "WAV"), ("PCM_32", 32, "WAV")):
        full = 2 ** (bits - 1)
        ints = rng.integers(-full, full, size=(1000, 5), dtype=np.int64)
        ints[3, 1], ints[7, 4], ints[9, 0] = full - 1, -full, full - 1
        path = tmp_path / f"x{bits}.wav"
        sf.write(str(path), (ints << (32 - bits)).astype(np.int32), 48000, subtype=subtype, format=fmt)
        want = sf.read(str(path), dtype="float64")[0] / 0.25
        spec = ColumnSpec(str(path), _data_offset(path), 5, bits // 8, 1000, 0.25)
        r = spec.open([1, 4])
        got, clipped = r.read(2, 900)
        r.close()
        assert np.array_equal(got, want[2:902, [1, 4]].astype(np.float32).T), subtype
        assert clipped == 2, subtype


def test_a_capture_that_is_not_integer_pcm_is_read_by_the_parent(tmp_path):
    with CaptureSource(CAP) as src:
        assert src.column_spec() is not None
    meta = json.loads((ROOT / "captures" / "demo_small.sigmf-meta").read_text())
    x, fs = sf.read(str(CAP) + ".wav", dtype="float32", frames=48000)
    sf.write(str(tmp_path / "f.wav"), x, fs, subtype="FLOAT", format="WAV")
    meta["global"].update({"gla:subtype": "FLOAT", "gla:format": "WAV", "gla:num_frames": 48000})
    meta["global"].update({"core:datatype": "rf32_le", "core:dataset": "f.wav"})
    meta["global"]["gla:sha256"] = hashlib.sha256((tmp_path / "f.wav").read_bytes()).hexdigest()
    (tmp_path / "f.sigmf-meta").write_text(json.dumps(meta))
    with CaptureSource(tmp_path / "f") as src:
        assert src.column_spec() is None


def _parent_path_bundles():
    """demo_small as before: the parent reads, ships every block, and measures every copy."""
    src = CaptureSource(CAP)
    meta = src.meta
    plan = P.ChannelPlan.default(meta.grid_hz)
    t0 = datetime.fromisoformat(str(meta.start_time_utc).replace("Z", "+00:00"))
    burst_s = P.burst_duration_s()
    g = Grouper(
        plan,
        inputs_from_meta(meta),
        receiver_id="rx-replay",
        substation_id="sub-1",
        t0_utc=t0,
        created_clock=lambda s: datetime.fromtimestamp(s + burst_s, UTC),
    )
    pipe = Pipeline(plan, meta.n_channels, 48000.0, workers=2)
    try:
        for blk in src:
            if blk.discontinuity:
                for o in pipe.reset():
                    g.add_output(o)
                g.reset(blk.first_sample, pipe.segment)
            pipe.feed(blk.first_sample, blk.samples)
            for o in pipe.outputs():
                g.add_output(o)
    finally:
        for o in pipe.close():
            g.add_output(o)
        src.close()
    g.flush()
    return g


def test_workers_measuring_make_the_bundles_of_the_parent_measuring():
    old = _parent_path_bundles()
    new = replay(CAP, progress=False)

    def rows(bundles):
        return sorted(json.dumps(b.model_dump(mode="json"), sort_keys=True) for b in bundles)

    assert len(new.bundles) == len(old.bundles) == 4
    assert rows(new.bundles) == rows(old.bundles)
    assert new.stats["grouper"]["copies_measured"] == old.stats["copies_measured"] > 4
    assert new.stats["source"]["samples"] == 384000 and new.stats["source"]["blocks"] == 8


def test_the_parent_gets_no_baseband_and_no_samples():
    """With a reader and the measurements in the workers, the records that reach the parent
    carry no baseband, and the parent sends frame ranges, not samples."""
    with CaptureSource(CAP) as src:
        spec = src.column_spec()
    plan = P.ChannelPlan.default()
    pipe = Pipeline(plan, 12, workers=2, measure_in_workers=True, reader=spec)
    try:
        got = pipe.reset()
        for k in range(3):
            pipe.feed_frames(k * 48000, 48000)
        got += pipe.flush()
    finally:
        pipe.close()
    recs = [r for o in got for r in o.records]
    assert len(recs) == 12 * 5  # the first reset's flush, 3 blocks, the end
    assert {r.baseband.shape[1] for r in recs} == {0}
    assert max(r.stats.samples_in for r in recs) == 3 * 48000


def test_band_amplitudes_left_out_change_nothing_else():
    """A measurement without its band amplitudes (a copy too weak to be reported) has the same
    level, phase and SNR as the full one; the bands are computed from ``min_snr_db`` up."""
    pairs = []

    class Both(Grouper):
        def _measure(self, i, demod, best, frame, min_snr_db=None):
            full = super()._measure(i, demod, best, frame)
            pairs.append((full, super()._measure(i, demod, best, frame, -12.0)))
            return super()._measure(i, demod, best, frame, min_snr_db)

    x, _ = sf.read(str(CAP) + ".wav", dtype="float64")
    x /= 0.25
    src = CaptureSource(CAP)
    plan = P.ChannelPlan.default()
    g = Both(plan, inputs_from_meta(src.meta), receiver_id="rx", substation_id="s")
    src.close()
    pipe = Pipeline(plan, 12, workers=0)
    for pos in range(0, x.shape[0], 48000):
        pipe.feed(pos, x[pos : pos + 48000])
        for o in pipe.outputs():
            g.add_output(o)
    for o in pipe.close():
        g.add_output(o)
    g.flush()
    assert len(g.bundles) == 4 and len(pairs) == 4 * 12
    for full, part in pairs:
        assert full is not None and part is not None and full.band_amplitudes_db
        assert (part.amplitude, part.phase_rad, part.snr_db, part.level_db) == (
            full.amplitude,
            full.phase_rad,
            full.snr_db,
            full.level_db,
        )
        assert part.band_amplitudes_db == (full.band_amplitudes_db if full.snr_db >= -12.0 else [])
    assert {full.snr_db >= -12.0 for full, _ in pairs} == {True, False}


def test_clean_symbols_kernel_matches_numpy():
    """The compiled clean-symbol mask is the numpy reference's, bit for bit (blanked runs at
    random places, random timing and clock offsets, spans clipped at both ends)."""
    from dsp.rx.demod import BurstDemodulator
    from dsp.rx.demod.measure import _clean_symbols, _clean_symbols_numpy

    demod = BurstDemodulator(P.ChannelPlan.default().channels[0], 48000.0)
    rng = np.random.default_rng(11)
    seen = set()
    for _ in range(40):
        n = int(rng.integers(4000, 6000))
        r = (rng.normal(size=n) + 1j * rng.normal(size=n)).astype(np.complex128)
        for _ in range(int(rng.integers(0, 6))):
            a = int(rng.integers(0, n))
            r[a : a + int(rng.integers(1, 80))] = 0
        m_first = int(rng.integers(-50, 50))
        tau0 = float(demod.c0 + 32 * m_first + rng.uniform(-600, 1500))
        eps, t0_s = float(rng.uniform(-2e-4, 2e-4)), 1 / float(rng.uniform(49.5, 60.5))
        want = _clean_symbols_numpy(demod, r, m_first, tau0, eps, t0_s)
        assert np.array_equal(_clean_symbols(demod, r, m_first, tau0, eps, t0_s), want)
        seen.add((bool(want.all()), bool(want.any())))
    assert {(True, True), (False, True)} <= seen  # all clean, and some blanked
