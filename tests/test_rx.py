"""Receive chain: comb, channelizer, detector, demodulator, and the whole chain on the demo capture."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from dsp.air import frame as F
from dsp.air import params as P
from dsp.rx.chain import InputChain
from dsp.rx.channelizer import Channelizer
from dsp.rx.comb import HarmonicComb
from dsp.rx.demod import BurstDemodulator
from dsp.rx.demod.cancel import cancel_symbols, isi_taps, raised_cosine
from dsp.rx.demod.carrier import derotate, dft_bins, dft_twiddles, strip_modulation
from dsp.rx.demod.matched_filter import chip_period, mf_kernel
from dsp.rx.demod.phase import fit_known, fit_preamble, known_rotation, phase_blind, phase_known, rotation
from dsp.rx.demod.pulse import RRC_PULSE, chip_grid
from dsp.rx.demod.rake import despread
from dsp.rx.demod.soft import IMPULSE_EXCESS, soft_values, symbol_weights
from dsp.rx.demod.timing import timing_metrics
from dsp.rx.detect import PreambleDetector
from dsp.tx import burst as tx_burst
from dsp.tx import modulator
from tests import naive

FS = 48000.0
PLAN = P.ChannelPlan.default()
CAPTURES = Path(__file__).resolve().parents[1] / "captures"
T_BIT = P.data_symbols(P.Modulation.BPSK, P.FecRate.R1_2) / P.SYMBOL_RATE_HZ / P.FRAME_BITS


def grid(n, f0=59.97, seed=0, harmonics=range(2, 61), drift_hz_per_s=0.004):
    """A fundamental with harmonics (-30..-60 dBc) and a linearly drifting frequency."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / FS
    theta = 2 * np.pi * np.cumsum(f0 + drift_hz_per_s * t) / FS
    x = math.sqrt(2) * np.cos(theta)
    for h in harmonics:
        x += 10 ** (-(30 + 30 * (h / 60)) / 20) * math.sqrt(2) * np.cos(h * theta + rng.uniform(0, 2 * np.pi))
    return x, theta


def burst(rng, ch=1, code=0, ebn0_db=None, t_start=0.45, f0=60.0, ppm=None, plan=PLAN):
    header = F.Header(kind=4, hub_id=int(rng.integers(2**32)), counter=int(rng.integers(2**24)))
    fr = F.build_frame(header, bytes(rng.integers(0, 256, 21, dtype=np.uint8)))
    c = plan.channel(ch)
    chips = tx_burst.burst_chips(fr, ch, code, c.modulation, c.fec)
    ppm = float(rng.uniform(-100, 100)) if ppm is None else ppm
    first, s = modulator.modulate(
        chips,
        fs_hz=FS,
        fc_hz=c.fc_hz,
        t_start_s=t_start,
        grid_period_s=1 / f0,
        clock_ppm=ppm,
        phase_rad=float(rng.uniform(0, 2 * np.pi)),
    )
    return fr, first, s


def stream_with(fr_first_s, n, ebn0_db, rng, f0=60.0):
    x = np.zeros(n)
    for first, s in fr_first_s:
        x[first : first + s.size] += s
    sigma = math.sqrt(T_BIT * FS / 2 / 10 ** (ebn0_db / 10))
    x += sigma * rng.standard_normal(n)
    x += sigma * 10 ** (85 / 20) * math.sqrt(2) * np.cos(2 * np.pi * f0 * np.arange(n) / FS + 0.3)
    return x


def run_chain(x, chunks=None, plan=PLAN):
    chain = InputChain(plan, 0)
    got = []
    if chunks is None:
        chunks = [x.size]
    i = 0
    for c in chunks:
        got += chain.process(x[i : i + c]).bursts
        i += c
    got += chain.process(x[i:]).bursts
    got += chain.flush().bursts
    return chain, got


# -------------------------------------------------------------------------------------- comb
def test_comb_suppresses_every_harmonic_in_band_by_60_db():
    x, theta = grid(int(6 * FS))
    y = HarmonicComb().process(x)
    seg = slice(int(1.0 * FS), None)
    worst = -1e9
    for h in range(11, 61):
        ref = np.exp(-1j * h * theta[seg])
        sup = 20 * np.log10(abs(np.mean(y[seg] * ref)) / abs(np.mean(x[seg] * ref)))
        worst = max(worst, sup)
    assert worst < -60, worst


def test_comb_tracks_the_frequency_and_matches_naive():
    x, _ = grid(int(0.5 * FS), harmonics=range(2, 12))
    c = HarmonicComb()
    y = c.process(x)
    assert abs(c.f0_hz - (59.97 + 0.004 * 0.5)) < 2e-3
    ref = naive.comb_naive(x[:4000])
    # the filter runs in single precision: a few units in the last place of the input's scale
    # (measured 5e-8 of the peak), against the plain double-precision reference
    np.testing.assert_allclose(y[:4000], ref, rtol=0, atol=2e-7 * np.max(np.abs(x)))


def test_comb_reads_float32_input_as_the_same_values():
    """A float32 block (a capture's own type) gives bit for bit what its float64 copy gives."""
    x, _ = grid(int(0.5 * FS), harmonics=range(2, 8))
    x32 = (x + 1e-3 * np.random.default_rng(6).standard_normal(x.size)).astype(np.float32)
    x32[[100, 9000]] = [np.nan, np.inf]
    a, b = HarmonicComb(), HarmonicComb()
    ya, yb = a.process(x32), b.process(x32.astype(np.float64))
    assert ya.dtype == np.float32 and np.array_equal(ya, yb) and a.state.nonfinite == b.state.nonfinite == 2


def test_comb_takes_a_float64_sample_beyond_single_precision_as_non_finite():
    """A float64 sample that single precision cannot hold (1e39 -> inf) is replaced like a NaN:
    the whole-run check for finite input looks at the samples as the filter reads them."""
    x, _ = grid(int(0.5 * FS), harmonics=range(2, 8))
    big, nan = x.copy(), x.copy()
    big[[5000, 17000]] = [1e39, -1e39]
    nan[[5000, 17000]] = np.nan
    a, b = HarmonicComb(), HarmonicComb()
    ya, yb = a.process(big), b.process(nan)
    assert a.state.nonfinite == b.state.nonfinite == 2 and np.all(np.isfinite(ya)) and np.array_equal(ya, yb)


def test_comb_chunking_copy_and_nonfinite():
    x, _ = grid(int(1.0 * FS), harmonics=range(2, 8))
    x = x + 1e-4 * np.random.default_rng(2).standard_normal(x.size)
    whole = HarmonicComb().process(x)
    rng = np.random.default_rng(4)
    c = HarmonicComb()
    cuts = np.sort(rng.choice(np.arange(1, x.size), 30, replace=False))
    parts = []
    for i, part in enumerate(np.split(x, cuts)):
        parts.append(c.process(part))
        if i == 10:
            clone = c.copy()
            rest = clone.process(x[cuts[10] :])
    assert np.array_equal(np.concatenate(parts), whole)
    assert np.array_equal(rest, whole[cuts[10] :])
    bad = x.copy()
    bad[[1000, 20000, 20001]] = [np.nan, np.inf, -np.inf]
    cb = HarmonicComb()
    yb = cb.process(bad)
    assert cb.state.nonfinite == 3 and np.all(np.isfinite(yb))
    with pytest.raises(ValueError):
        HarmonicComb().process(np.zeros((10, 2)))
    with pytest.raises(ValueError):
        HarmonicComb().process(np.zeros(10, complex))
    with pytest.raises(ValueError):
        HarmonicComb(grid_hz=55.0)
    with pytest.raises(ValueError):
        HarmonicComb(fs_hz=44000.0)  # not a whole number of samples per cycle


# ------------------------------------------------------------------------------- channelizer
def test_channelizer_matches_naive_and_is_chunk_invariant():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(48000)
    ch = Channelizer(PLAN, blank_k=1e9)
    y = ch.process(x)
    ref = naive.channelize_naive(x, ch.ha, ch.hb, ch.f_mid_hz, [c.fc_hz - ch.f_mid_hz for c in PLAN.channels])
    from dsp.rx.blanker import DELAY

    assert y.shape[1] == ref.shape[1] - DELAY  # the blanker holds back the newest DELAY samples
    # the filters run in single precision: ~1e-7 of the output's scale (measured 1.3e-7 of the peak)
    np.testing.assert_allclose(y, ref[:, : y.shape[1]], rtol=0, atol=1e-6 * np.max(np.abs(ref)))
    c2 = Channelizer(PLAN, blank_k=1e9)
    parts, i = [], 0
    for k in rng.integers(1, 3000, 40):
        parts.append(c2.process(x[i : i + k]))
        i += k
    parts.append(c2.process(x[i:]))
    assert np.array_equal(np.concatenate(parts, axis=1), y)


def test_channelizer_time_reference_and_blanking():
    n = np.arange(int(3 * FS))
    x = 0.5 * np.cos(2 * np.pi * 870 * n / FS) + 1e-3 * np.random.default_rng(1).standard_normal(n.size)
    x[int(2 * FS)] += 50.0  # a switching spike
    ch = Channelizer(PLAN)
    y = ch.process(x)
    m = np.arange(600, 900)
    ref = 0.25 * np.exp(2j * np.pi * (870 - 1170) * Channelizer.input_index(m) / FS)
    assert np.max(np.abs(np.angle(y[0, m] / ref))) < 0.05
    assert np.all(ch.blanked > 0)
    k = int((2 * FS - Channelizer.input_index(0)) / 32)
    assert np.all(y[:, k - 2 : k + 3] == 0)
    with pytest.raises(ValueError):
        ch.process(np.array([1.0, np.nan]))
    with pytest.raises(ValueError):
        Channelizer(PLAN, blank_k=0)


def test_channelizer_reads_float32_and_turns_down_a_nonfinite_block_without_losing_state():
    """The comb hands over float32: read as the same values. A block with a non-finite sample
    is refused as a whole (ValueError) and what was accepted before is kept: the stream goes on
    as if that block had never been given."""
    x = np.random.default_rng(3).standard_normal(20000).astype(np.float32)
    a, b = Channelizer(PLAN), Channelizer(PLAN)
    head = a.process(x[:9001])
    with pytest.raises(ValueError, match="non-finite"):
        a.process(np.r_[x[9001:9100], np.float32(np.inf), x[9100:9200]])
    tail = a.process(x[9001:])
    assert np.array_equal(np.concatenate([head, tail], axis=1), b.process(x.astype(np.float64)))


# ------------------------------------------------------------------------------------ detector
def test_detector_finds_a_burst_at_the_right_time_and_code():
    rng = np.random.default_rng(5)
    fr, first, s = burst(rng, ch=2, code=3)
    x = stream_with([(first, s)], first + s.size + int(1.5 * FS), 6.0, rng)
    y = HarmonicComb().process(x)
    y[: int(0.25 * FS)] = 0.0  # as InputChain does until the comb has locked
    bb = Channelizer(PLAN).process(y)
    det = PreambleDetector(PLAN.channel(2))
    found = det.process(bb[2]) + det.flush()
    assert [(d.channel, d.code) for d in found] == [(2, 3)]
    assert abs(found[0].start_sample - 0.45 * FS) < 0.15 * FS / P.CHIP_RATE_HZ
    with pytest.raises(ValueError):
        det.process(np.zeros(10))


def test_detector_no_false_alarm_on_noise_and_harmonics():
    x, _ = grid(int(40 * FS), seed=3)
    x += 10 ** (-85 / 20) * np.random.default_rng(3).standard_normal(x.size)
    chain, res = run_chain(x)
    assert chain.stats.detections == 0


def test_detector_false_alarms_on_white_noise_keep_to_the_design_rate():
    """The comb and the channelizer colour white noise like the template, so the first-stage
    statistic has mean ~1.26, not 1; the second CFAR stage (dsp.rx.cfar_gate) brings the false
    detections back under n_tests exp(-T). Threshold lowered to 12 so that 40 s show it."""
    T = 12.0
    chain = InputChain(PLAN, 0, threshold=T)
    rng = np.random.default_rng(11)
    for pos in range(0, int(40 * FS), int(10 * FS)):
        n = int(10 * FS)
        chain.process(
            rng.standard_normal(n) + 1e4 * math.sqrt(2) * np.cos(2 * np.pi * 60.0 * (pos + np.arange(n)) / FS)
        )
    chain.flush()
    bound = sum(d.state.n_tests for d in chain.dets) * math.exp(-T)  # no credit for correlated lags
    first_stage = chain.stats.detections + sum(d.state.gated for d in chain.dets)
    assert chain.stats.detections <= bound
    assert first_stage > 3 * bound


def _switching_impulse(n, start, ring_hz, decay_s, peak_db, noise_rms, phase=0.3):
    """A switching transient as gridsim.channel draws them: a decaying ring, peak_db over the noise RMS."""
    length = int(math.ceil(10 * decay_s * FS))
    t = np.arange(length) / FS
    w = np.exp(-t / decay_s) * np.sin(2 * np.pi * ring_hz * t + phase)
    out = np.zeros(n)
    out[start : start + length] = (w / np.abs(w).max())[: n - start] * 10 ** (peak_db / 20) * noise_rms
    return out


def test_impulses_alone_are_not_detected_but_a_weak_burst_right_after_one_is():
    """A train of the simulator's switching impulses (ring in and around every channel, 20-50 dB
    over the noise, 0.5-5 ms decay) gives no detection: the blanker (dsp.rx.blanker) takes every one
    for a transient and none for a burst; with the blanker off, the second CFAR stage
    (dsp.rx.cfar_gate) turns down what the impulses and their comb echoes make the first stage
    cross. A weak burst 0.1 s after a 50 dB impulse ringing on its own channel is still found
    and decoded."""
    ebn0 = 5.0
    sigma = math.sqrt(T_BIT * FS / 2 / 10 ** (ebn0 / 10))
    n = int(12 * FS)
    rng = np.random.default_rng(7)
    imp = np.zeros(n)
    for k, t in enumerate(np.arange(0.6, 11.5, 0.45)):
        fc = PLAN.channel(k % 3).fc_hz + rng.uniform(-300, 300)
        imp += _switching_impulse(
            n, int(t * FS), fc, (0.5e-3, 2e-3, 5e-3)[k % 3], rng.uniform(20, 50), sigma, rng.uniform(0, 2 * np.pi)
        )
    x = stream_with([], n, ebn0, rng) + imp
    chain, res = run_chain(x)
    assert chain.stats.detections == 0 and res == []
    trig = chain.chan.blanker.state.triggers  # (channel, [echo, sustained, transient])
    assert np.all(trig[:, 2] >= 5) and np.all(trig[:, 1] == 0)
    unblanked = InputChain(PLAN, 0)
    unblanked.chan = Channelizer(PLAN, blank_k=1e9)
    got = unblanked.process(x).bursts + unblanked.flush().bursts
    assert unblanked.stats.detections == 0 and got == []
    assert sum(d.state.gated for d in unblanked.dets) >= 1  # the first stage did cross on an impulse
    fr, first, s = burst(rng, ch=1, code=2, t_start=4.6)
    imp += _switching_impulse(n, int(4.5 * FS), PLAN.channel(1).fc_hz, 5e-3, 50.0, sigma)
    chain, res = run_chain(stream_with([(first, s)], n, ebn0, rng) + imp)
    assert [(r.channel, r.code, r.crc_ok, r.frame) for r in res] == [(1, 2, True, fr)]
    assert abs(res[0].start_sample - 4.6 * FS) < 10


# ---------------------------------------------------------------------------------- demodulator
def test_matched_filter_matches_naive():
    rng = np.random.default_rng(8)
    r = rng.standard_normal(200) + 1j * rng.standard_normal(200)
    c0 = float(Channelizer.input_index(0))
    spc = FS / P.CHIP_RATE_HZ / (1 + 37e-6)
    z = mf_kernel(r, chip_grid(5, c0, spc, 800.7), 2000.3, 20, RRC_PULSE)
    ref = naive.mf_naive(r, 5, c0, 2000.3, spc, 800.7, 20)
    np.testing.assert_allclose(z, ref, atol=1e-4 * np.abs(ref).max())


def _mf_args(r, tau0, spc, n_chips, period=0, shift=0):
    return r, chip_grid(5, Channelizer.input_index(0), spc, 800.7, period, shift), tau0, n_chips, RRC_PULSE


#: chip-0 positions (input samples) where chip windows of a class end on a sample and round
#: either way from chip to chip (found by search; the detector's starts give such cases too)
_ALIGNED = (
    Channelizer.input_index(0) + 6.5 * FS / P.CHIP_RATE_HZ + 32 * 14 - 0.2 * FS / P.CHIP_RATE_HZ,
    Channelizer.input_index(0) + 32 * 22 + 4 / 3 + 0.2 * FS / P.CHIP_RATE_HZ,
)


def test_matched_filter_by_classes_matches_naive_and_chip_by_chip():
    """Without a clock offset 12 chips span 25 baseband samples and the filter runs a class of
    chips at a time: the same values (to rounding) as chip by chip, and as the directly
    evaluated pulse (to the table's interpolation); where window ends fall on samples the tap
    there (|x| = 6.5 chips) is in or out as the kernel's rounding has it, the reference's may
    differ."""
    rng = np.random.default_rng(9)
    r = rng.standard_normal(160) + 1j * rng.standard_normal(160)
    spc = FS / P.CHIP_RATE_HZ
    assert chip_period(spc) == (12, 25) and chip_period(spc / (1 + 3e-5)) == (0, 0)
    for tau0 in (2000.3, *_ALIGNED):
        z = mf_kernel(*_mf_args(r, tau0, spc, 40, 12, 25))
        zg = mf_kernel(*_mf_args(r, tau0, spc, 40))
        ref = naive.mf_naive(r, 5, float(Channelizer.input_index(0)), tau0, spc, 800.7, 40)
        np.testing.assert_allclose(z, zg, rtol=0, atol=1e-12 * np.abs(zg).max())
        if tau0 not in _ALIGNED:
            np.testing.assert_allclose(z, ref, atol=1e-4 * np.abs(ref).max())


def test_timing_metrics_match_naive():
    """The preamble metrics of the timing search (one kernel for all offsets, by classes of
    chips or chip by chip) against the directly evaluated matched filter."""
    rng = np.random.default_rng(12)
    r = rng.standard_normal(160) + 1j * rng.standard_normal(160)
    spc = FS / P.CHIP_RATE_HZ
    c0 = float(Channelizer.input_index(0))
    code = BurstDemodulator(PLAN.channel(1)).code_cache[2]
    pre = 1.0 - 2.0 * rng.integers(0, 2, 12)
    w2c = complex(np.exp(0.7j))
    for start in (1003.71, _ALIGNED[1]):
        taus = start + np.arange(-6, 7) * 0.05 * spc
        ref = naive.timing_metrics_naive(r, 5, c0, taus, spc, 800.7, 48, w2c, code, pre, 4)
        got = [
            timing_metrics(r, chip_grid(5, c0, spc, 800.7, period, shift), taus, 48, RRC_PULSE, w2c, code, pre, 4)
            for period, shift in ((12, 25), (0, 0))
        ]
        np.testing.assert_allclose(got[0], got[1], rtol=1e-11)
        if start not in _ALIGNED:
            np.testing.assert_allclose(got[0], ref, rtol=1e-4)


def test_carrier_search_dft_bins_match_naive():
    rng = np.random.default_rng(13)
    x = rng.standard_normal(100) + 1j * rng.standard_normal(100) + 3 * np.exp(0.02j * np.arange(100))
    for nfft, k_first, n_bins in ((1 << 10, -40, 81), (1 << 8, 250, 10)):
        got = dft_bins(x, *dft_twiddles(nfft, k_first, n_bins, x.size, 32), 32)
        np.testing.assert_allclose(got, naive.dft_bins_naive(x, nfft, k_first, n_bins), rtol=0, atol=1e-12 * 300)


def test_symbol_kernels_match_naive():
    """Despreading, derotation, modulation stripping, phase tracking and the amplitude and noise
    fits against numpy."""
    rng = np.random.default_rng(14)
    n_sym, npre = 90, 16
    pre = 1.0 - 2.0 * rng.integers(0, 2, npre)
    z = rng.standard_normal((2, 4 * n_sym)) + 1j * rng.standard_normal((2, 4 * n_sym))
    code = 1.0 - 2.0 * rng.integers(0, 2, 4 * n_sym)
    w2c = complex(np.exp(-1.1j))
    np.testing.assert_allclose(despread(z, w2c, code, 4), naive.despread_naive(z, w2c, code, 4), rtol=1e-13)
    r = rng.standard_normal(300) + 1j * rng.standard_normal(300)
    np.testing.assert_allclose(
        derotate(r, 17, -159.0, 1234.5, 0.73, 48000.0),
        naive.derotate_naive(r, 17, -159.0, 1234.5, 0.73, 48000.0),
        rtol=1e-13,
    )
    # symbols: a slowly turning phase, BPSK or QPSK data after a BPSK preamble, noise
    phase = 0.4 + 0.03 * np.arange(n_sym) + 0.2 * np.sin(np.arange(n_sym) / 9)
    for power in (2, 4):
        data = (
            rng.choice([-1.0, 1.0], n_sym)
            if power == 2
            else (rng.choice([-1.0, 1.0], n_sym) + 1j * rng.choice([-1.0, 1.0], n_sym)) / np.sqrt(2)
        )
        known = np.concatenate([pre, data[npre:]]).astype(complex)
        y = 2.0 * known * np.exp(1j * phase) + 0.3 * (rng.standard_normal(n_sym) + 1j * rng.standard_normal(n_sym))
        np.testing.assert_allclose(
            strip_modulation(y, pre, power), naive.strip_modulation_naive(y, pre, power), rtol=1e-14
        )
        phi = phase_blind(y, pre, power, 6)
        np.testing.assert_allclose(phi, naive.phase_blind_naive(y, pre, power, 6), rtol=0, atol=1e-12)
        np.testing.assert_allclose(rotation(phi), np.exp(-1j * phi), rtol=1e-15)
        np.testing.assert_allclose(
            fit_preamble(y, pre, rotation(phi)), naive.fit_preamble_naive(y, pre, phi), rtol=1e-12
        )
        phk = phase_known(y, known, 5)
        np.testing.assert_allclose(phk, naive.phase_known_naive(y, known, 5), rtol=0, atol=1e-12)
        rot, phi0 = known_rotation(y, known, 5)
        np.testing.assert_allclose(rot, np.exp(-1j * phk), rtol=0, atol=1e-14)
        assert phi0 == pytest.approx(phk[0], abs=1e-15)
        np.testing.assert_allclose(fit_known(y, known, rot), naive.fit_known_naive(y, known, phk), rtol=1e-12)


def test_symbol_weights_match_naive():
    rng = np.random.default_rng(15)
    r = rng.standard_normal(600) + 1j * rng.standard_normal(600)
    r[200:206] *= 30.0  # an impulse
    r[400:410] = 0.0  # blanked
    args = (r, 40, -159.0, 1500.7, 66.66, 801.3, 140, 4, IMPULSE_EXCESS)
    w = symbol_weights(*args)
    np.testing.assert_allclose(w, naive.symbol_weights_naive(*args), rtol=1e-12)
    assert w.min() < 0.01 and np.sum(w == 1.0) > 100
    np.testing.assert_array_equal(symbol_weights(np.zeros(600, complex), *args[1:]), np.ones(140))


@pytest.mark.parametrize("mod,fec", [(P.Modulation.BPSK, P.FecRate.R1_2), (P.Modulation.QPSK, P.FecRate.R2_3)])
def test_soft_values_and_reencoding_match_naive(mod, fec):
    rng = np.random.default_rng(16)
    dem = BurstDemodulator(P.Channel(0, 1170.0, P.ChannelRole.SCHEDULED, mod, fec))
    y = rng.standard_normal(dem.n_sym) + 1j * rng.standard_normal(dem.n_sym)
    phi = rng.uniform(-3, 3, dem.n_sym)
    w = rng.uniform(0.1, 1.0, dem.n_sym)
    full, ok = soft_values(
        y,
        rotation(phi),
        w,
        3.7,
        P.PREAMBLE_SYMBOLS,
        mod != P.Modulation.BPSK,
        dem._soft_dst,
        2 * (P.FRAME_BITS + P.CONV_TAIL_BITS),
    )
    assert ok
    np.testing.assert_allclose(full, naive.soft_values_naive(y, phi, w, 3.7, P.PREAMBLE_SYMBOLS, mod, fec), rtol=1e-13)
    bad = y.copy()
    bad[P.PREAMBLE_SYMBOLS + 5] = np.nan  # the decoder would turn such values down: soft_values says so
    assert not soft_values(
        bad,
        rotation(phi),
        w,
        3.7,
        P.PREAMBLE_SYMBOLS,
        mod != P.Modulation.BPSK,
        dem._soft_dst,
        2 * (P.FRAME_BITS + P.CONV_TAIL_BITS),
    )[1]
    bits = rng.integers(0, 2, P.FRAME_BITS).astype(np.uint8)
    coded, known = dem._reencode(bits)
    ref_coded, ref_known = naive.reencode_naive(bits, mod, fec)
    np.testing.assert_array_equal(coded, ref_coded)
    np.testing.assert_array_equal(known, ref_known)


def test_self_interference_cancellation_matches_naive():
    rng = np.random.default_rng(17)
    n_sym = 40
    known = rng.choice([-1.0, 1.0], n_sym).astype(complex)
    code = 1.0 - 2.0 * rng.integers(0, 2, 4 * n_sym)
    z = rng.standard_normal((2, 4 * n_sym)) + 1j * rng.standard_normal((2, 4 * n_sym))
    phi = rng.uniform(-3, 3, n_sym)
    w2 = complex(-np.exp(-0.3j))
    for t0c in (11.84, 12.2, 3.5):
        taps = isi_taps(t0c, 17, P.RRC_BETA)
        r1, r2, base, lo_lag = taps
        lags = np.arange(-8, 9)
        assert (base, lo_lag) == (int(round(t0c)), -8)
        np.testing.assert_allclose(r1, raised_cosine(lags - (t0c - base)), rtol=1e-14, atol=1e-16)
        np.testing.assert_allclose(r2, raised_cosine(t0c - (base + lags)), rtol=1e-14, atol=1e-16)
        got = cancel_symbols(
            despread(z, np.conj(w2), code, 4), known, code, 0.7, rotation(phi), 4, taps, w2, np.conj(w2)
        )
        ref = naive.despread_naive(
            naive.cancel_naive(z, known, code, 0.7, phi, 4, r1, r2, base, lo_lag, w2), np.conj(w2), code, 4
        )
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-13)


@pytest.mark.parametrize("ch,ppm", [(0, -100.0), (1, 0.0), (2, 100.0)])
def test_chain_decodes_with_clock_offsets(ch, ppm):
    rng = np.random.default_rng(10 + ch)
    fr, first, s = burst(rng, ch=ch, code=ch % 4, ppm=ppm)
    x = stream_with([(first, s)], first + s.size + int(1.5 * FS), 8.0, rng)
    _, res = run_chain(x)
    ok = [r for r in res if r.crc_ok]
    assert len(ok) == 1 and ok[0].frame == fr and ok[0].channel == ch
    assert abs(ok[0].clock_offset_ppm - ppm) < 8
    assert 6.0 < ok[0].ebn0_db < 10.0
    assert np.isfinite(ok[0].evm_pct)
    true_level_db = 20 * np.log10(np.sqrt(np.mean(s**2)) / (math.sqrt(T_BIT * FS / 2 / 10**0.8) * 10 ** (85 / 20)))
    assert abs(ok[0].level_db - true_level_db) < 1.0


def test_chain_decodes_qpsk_and_rate_two_thirds():
    chans = tuple(P.Channel(c.index, c.fc_hz, c.role, P.Modulation.QPSK, P.FecRate.R2_3) for c in PLAN.channels)
    plan = P.ChannelPlan(PLAN.grid_hz, chans)
    rng = np.random.default_rng(21)
    fr, first, s = burst(rng, ch=1, code=2, plan=plan, ppm=-40.0)
    x = stream_with([(first, s)], first + s.size + int(1.5 * FS), 12.0, rng)
    _, res = run_chain(x, plan=plan)
    assert [r.frame for r in res if r.crc_ok] == [fr]


def test_overlapping_bursts_on_one_channel_with_different_codes():
    rng = np.random.default_rng(31)
    fr1, f1, s1 = burst(rng, ch=0, code=0, t_start=0.45)
    fr2, f2, s2 = burst(rng, ch=0, code=1, t_start=1.6)
    x = stream_with([(f1, s1), (f2, s2)], f2 + s2.size + int(1.5 * FS), 10.0, rng)
    _, res = run_chain(x)
    assert sorted(r.frame for r in res if r.crc_ok) == sorted([fr1, fr2])


# --------------------------------------------------------------------------- the whole chain
def _demo_capture():
    x, fs = sf.read(str(CAPTURES / "demo_small.wav"), dtype="float64")
    meta = json.loads((CAPTURES / "demo_small.sigmf-meta").read_text())
    truth = json.loads((CAPTURES / "demo_small.truth.json").read_text())["transmissions"]
    return x / meta["global"]["gla:scale"], truth


def test_every_burst_of_the_demo_capture_is_decoded_on_its_true_input():
    x, truth = _demo_capture()
    for tx in truth:
        chain = InputChain(PLAN, tx["input"])
        res = chain.process(x[:, tx["input"]]).bursts + chain.flush().bursts
        mine = [r for r in res if r.channel == tx["channel"] and r.code == tx["code"] and r.crc_ok]
        assert [r.frame.hex() for r in mine] == [tx["frame_hex"]], tx["tx_id"]
        assert abs(mine[0].start_sample - tx["start_sample"]) < 10
        assert abs(mine[0].clock_offset_ppm - tx["clock_ppm"]) < 10


def test_chain_results_do_not_depend_on_chunking_or_copy_and_survive_bad_samples():
    x, truth = _demo_capture()
    tx = truth[1]
    col = x[:, tx["input"]].copy()
    col[[5000, 90000]] = np.nan  # two dropped samples
    a_chain, a = run_chain(col)
    rng = np.random.default_rng(3)
    b_chain, b = run_chain(col, chunks=list(rng.integers(1, 20000, 30)))
    key = lambda r: (r.channel, r.code, round(r.start_sample, 6), r.crc_ok, r.frame)  # noqa: E731
    assert [key(r) for r in a] == [key(r) for r in b]
    assert a_chain.stats.nonfinite == 2
    assert any(r.crc_ok and r.frame.hex() == tx["frame_hex"] for r in a)
    # a copy taken mid-stream continues exactly like the original
    c1 = InputChain(PLAN, 0)
    half = col.size // 3
    c1.process(col[:half])
    c2 = c1.copy()
    r1b = c1.process(col[half:]).bursts + c1.flush().bursts
    r2b = c2.process(col[half:]).bursts + c2.flush().bursts
    assert [key(r) for r in r1b] == [key(r) for r in r2b]
    with pytest.raises(ValueError):
        InputChain(PLAN, 0).process(np.zeros((4, 4)))


def test_chain_records_join_into_the_whole_stream_whatever_the_chunking():
    """The ChainOutput records of a chain, over random chunks and in one call: their basebands
    join end to end into the comb and channelizer's output, their grid-frequency estimates into
    the comb's whole log, the bursts are the same, the horizon never goes back and is
    END_OF_STREAM after flush."""
    from dsp.rx.chain import END_OF_STREAM
    from dsp.rx.comb import LOCK_S

    x, truth = _demo_capture()
    col = x[:, truth[1]["input"]].copy()

    def records(chunks):
        chain, out, i = InputChain(PLAN, 5), [], 0
        for c in chunks:
            out.append(chain.process(col[i : i + c]))
            i += c
        return out + [chain.process(col[i:]), chain.flush()]

    whole = records([])
    parts = records(list(np.random.default_rng(4).integers(1, 20000, 30)))
    for recs in (whole, parts):
        m = b = 0
        for r in recs:
            assert r.input_index == 5 and r.baseband.dtype == np.complex64 and r.baseband.shape[0] == 3
            assert r.baseband_start == m and r.grid_block_start == b
            m, b = r.baseband_end, b + len(r.grid_f0_hz)
        horizons = [r.horizon_sample for r in recs]
        assert horizons == sorted(horizons) and horizons[-1] == END_OF_STREAM and horizons[-2] > col.size - 3 * FS
        assert recs[-1].stats.samples_in == col.size and recs[-1].stats.crc_ok >= 1
        assert "\n" not in repr(recs[-1]) and repr(recs[-1]).startswith("ChainOutput(")
    comb = HarmonicComb()
    y = comb.process(col)
    y[: int(LOCK_S * FS)] = 0.0
    ch = Channelizer(PLAN)
    ref = np.concatenate([ch.process(y), ch.flush().astype(np.complex64)], axis=1)
    for recs in (whole, parts):
        np.testing.assert_array_equal(np.concatenate([r.baseband for r in recs], axis=1), ref)
        assert [f for r in recs for f in r.grid_f0_hz] == comb.f0_log
        assert [a for r in recs for a in r.grid_fund_rms] == comb.fund_log
    key = lambda r: (r.channel, r.code, round(r.start_sample, 6), r.crc_ok, r.frame)  # noqa: E731
    assert [key(r) for rec in whole for r in rec.bursts] == [key(r) for rec in parts for r in rec.bursts]


@pytest.mark.parametrize("ebn0_db", [20.0, 25.0, 30.0, 50.0, 70.0])
def test_strong_bursts_are_decoded_not_blanked(ebn0_db):
    """A burst far above the noise is a sustained rise, not a switching transient: the impulse
    blanker (dsp.rx.blanker) must leave it alone and the burst must come out decoded."""
    from gridsim.trials import trial_awgn

    assert all(trial_awgn((ebn0_db, 900 + k)) for k in range(3))


def _burst_under_a_tone(seed, ch, code, ebn0_db, offset_hz, chirp=0.0):
    """(frame, samples): one burst at ``ebn0_db`` with a tone 30 dB over N0 in 1 Hz at
    ``offset_hz`` from its carrier (phase ``chirp * t^2``)."""
    rng = np.random.default_rng(seed)
    fr, first, s = burst(rng, ch=ch, code=code, t_start=0.6)
    n = first + s.size + int(1.5 * FS)
    x = stream_with([(first, s)], n, ebn0_db, rng)
    sigma = math.sqrt(T_BIT * FS / 2 / 10 ** (ebn0_db / 10))
    # tone power = 10^3 * N0 * 1 Hz, N0 = 2 sigma^2 / FS (one-sided, real samples)
    amp = math.sqrt(2 * 10**3 * 2 * sigma**2 / FS)
    t = np.arange(n) / FS
    x += amp * np.cos(2 * np.pi * (PLAN.channel(ch).fc_hz + offset_hz) * t + chirp * t**2)
    return fr, x


@pytest.mark.parametrize("excise", [True, False])
def test_a_strong_in_band_tone_is_excised_before_demodulation(excise):
    """A non-harmonic tone 30 dB over the noise in 1 Hz inside the channel (the simulator's
    interferers reach that) doubles the channel's noise: the burst at 5 dB Eb/N0 is still decoded,
    because the chain excises the tone from the burst's span (dsp.rx.excise); without excision it is
    lost. (The False case shows the test can fail.)"""
    fr, x = _burst_under_a_tone(21, ch=1, code=3, ebn0_db=5.0, offset_hz=137.3, chirp=0.05)
    chain = InputChain(PLAN, 0, excise_tones=excise)
    got = chain.process(x).bursts + chain.flush().bursts
    ok = any(r.crc_ok and r.frame == fr and r.channel == 1 and r.code == 3 for r in got)
    assert ok == excise


def test_detector_excises_a_tone_from_its_blocks_and_leaves_noise_and_bursts_alone():
    """dsp.rx.detect.kernels.tone_bins: a tone 20 dB over the noise per bin inside the channel is found
    (with a bin either side); white noise and a strong burst's own spectrum are not touched."""
    from dsp.rx.detect import NFFT, tone_bins

    rng = np.random.default_rng(31)
    fs_bb = FS / 32
    inband = np.abs(np.fft.fftfreq(NFFT, 1 / fs_bb)) <= PLAN.channel(1).bandwidth_hz / 2
    for _ in range(20):
        noise = (rng.standard_normal(NFFT) + 1j * rng.standard_normal(NFFT)).astype(np.complex64)
        assert tone_bins(np.fft.fft(noise), inband) is None
    n = np.arange(NFFT)
    tone = 10 * np.exp(2j * np.pi * 0.1 * n)  # 20 dB per sample over the noise: ~53 dB per bin
    hit = tone_bins(np.fft.fft(noise + tone), inband)
    k = int(round(0.1 * NFFT))
    assert hit is not None and hit[k - 1 : k + 2].all() and hit.sum() <= 15  # its leakage too (no window)
    assert np.all(np.abs(np.flatnonzero(hit) - k) <= 8)
    # a burst 30 dB over the noise filling the block: spread over the band, nothing stands out
    chip = np.repeat(rng.choice([-1.0, 1.0], NFFT // 2 + 1), 2)[:NFFT]
    strong = 31.6 * np.convolve(chip, np.ones(3) / 3, mode="same") + noise
    assert tone_bins(np.fft.fft(strong), inband) is None
    # the numba kernel against numpy's median and plain loops, with tones of every strength
    for level in np.linspace(0.3, 3.0, 12):
        Xt = np.fft.fft((noise + level * np.exp(2j * np.pi * rng.uniform(-0.3, 0.3) * n)).astype(np.complex64))
        got, ref = tone_bins(Xt, inband), naive.tone_bins_naive(Xt, inband)
        assert (got is None and ref is None) or np.array_equal(got, ref)


def test_a_tone_in_the_channel_does_not_make_the_detector_turn_a_burst_down():
    """A tone 30 dB over N0 in 1 Hz inside the channel correlates with every template at every
    lag: before the detector excised it, the second CFAR stage read it as noise and turned the
    burst down. Here the tone sits on the burst's channel at 4.5 dB Eb/N0 (without the excision
    this burst is turned down: checked when the test was written)."""
    fr, x = _burst_under_a_tone(41, ch=2, code=1, ebn0_db=4.5, offset_hz=238.2)  # on a line of the template
    chain, res = run_chain(x)
    assert chain.dets[2].state.tone_blocks >= 1
    assert [(r.channel, r.code, r.crc_ok, r.frame) for r in res] == [(2, 1, True, fr)]


def test_a_burst_ending_just_before_the_end_of_the_stream_is_decoded_at_flush():
    """The blanker holds back 0.15 s of baseband; flush() lets it go, so a burst whose last chip
    is 0.06 s before the end of a capture is still decoded."""
    rng = np.random.default_rng(51)
    fr, first, s = burst(rng, ch=0, code=2, t_start=0.6)
    x = stream_with([(first, s)], first + s.size + int(0.06 * FS), 9.0, rng)
    chain, res = run_chain(x, chunks=[int(1.3 * FS)] * 3)
    assert [(r.channel, r.code, r.crc_ok, r.frame) for r in res] == [(0, 2, True, fr)]
    assert chain.stats.truncated == 0


def test_baseband_ring_holds_what_concatenation_would():
    """The chain's in-place ring against the obvious concatenate-and-drop, over random blocks
    (some longer than its spare room) and a copy taken part-way."""
    from dsp.rx.chain import BasebandRing

    rng = np.random.default_rng(8)
    ring, ref, ref_start = BasebandRing(3, 500), np.zeros((3, 0), complex), 0
    clone = None
    for i, k in enumerate(rng.integers(0, 900, 60)):
        bb = (rng.standard_normal((3, k)) + 1j * rng.standard_normal((3, k))).astype(
            np.complex64
        )  # the channelizer's type
        ring.append(bb)
        ref = np.concatenate([ref, bb], axis=1)
        assert ring.end == ref_start + ref.shape[1]
        a, b = ref_start + int(rng.integers(0, ref.shape[1] + 1)), ref_start + int(rng.integers(0, ref.shape[1] + 50))
        np.testing.assert_array_equal(ring.span(1, a, b), ref[1, a - ref_start : max(a - ref_start, b - ref_start)])
        ring.trim()
        drop = max(0, ref.shape[1] - 500)
        ref, ref_start = ref[:, drop:], ref_start + drop
        assert ring.start == ref_start
        np.testing.assert_array_equal(ring.channel(2), ref[2])
        if i == 30:
            clone, clone_ref = ring.copy(), ref.copy()
    np.testing.assert_array_equal(clone.channel(0), clone_ref[0])


# ------------------------------------------------------------------- detector bank and kernels
def test_noise_kernel_matches_naive():
    """dsp.rx.detect.kernels.noise_kernel (median from the narrowest of four windows around the previous
    median that holds it, else quickselect of every live sample) against numpy's partition, with blanked spans, a silent
    row and guesses good and bad."""
    from dsp.rx.detect import NFFT
    from dsp.rx.detect.kernels import noise_kernel

    rng = np.random.default_rng(61)
    blk = (
        (rng.standard_normal((4, NFFT)) + 1j * rng.standard_normal((4, NFFT)))
        * np.array([[1.0], [30.0], [1e-3], [1.0]])
    ).astype(np.complex64)
    blk[1, 300:900] = 0.0  # blanked
    blk[2, :] = 0.0  # silent
    blk[3, :1500] = 0.0  # mostly blanked
    blk[0, 7] = 500.0  # a strong sample
    ref = naive.noise_naive(blk)
    p, scratch = np.empty(NFFT, np.float32), np.empty((2, NFFT), np.float32)
    for guess in (
        np.zeros(4),
        np.array([1.4, 1200.0, 1.0, 2.0]),
        np.array([1.33, 1300.0, 1.0, 1.9]),
        np.array([1.25, 1120.0, 1.0, 1.8]),
        np.array([1.05, 950.0, 1.0, 1.5]),
        np.array([1e-6, 1e9, 0.0, 2e3]),
    ):  # none, near, off by 5-10 %, 10-20 %, 25-35 %, far
        n_live, noise, power = np.empty(4, np.int64), np.empty(4), np.empty(4)
        g = guess.copy()
        noise_kernel(blk, np.arange(4), p, scratch, g, n_live, noise, power)
        for c in range(4):
            assert (n_live[c], noise[c]) == ref[c][:2]
            assert ref[c][2] <= power[c] <= ref[c][2] * (1 + 2e-4)


def _bank_blocks(seed, n_blocks=4):
    """A bank and blocks of its three channels: noise with phase-1 preambles (the template half a
    sample late) at a statistic near the threshold, one per code here and there, some blanking."""
    from dsp.rx.detect import NFFT, DetectorBank
    from dsp.rx.detect.templates import cached_template

    rng = np.random.default_rng(seed)
    bank = DetectorBank(PLAN.channels, PLAN.grid_hz)
    blocks = []
    for _ in range(n_blocks):
        blk = np.zeros((4, NFFT), np.complex64)
        for c, ch in enumerate(PLAN.channels):
            x = rng.standard_normal(NFFT) + 1j * rng.standard_normal(NFFT)  # sigma^2 = 2
            for ci in rng.choice(4, 2, replace=False):
                t1 = cached_template(ch.index, ch.fc_hz, int(ci), PLAN.grid_hz, FS / 32, 0.5)
                m = int(rng.integers(0, bank.hop))
                lam = rng.uniform(0.7, 1.3) * 21.0
                x[m : m + t1.size] += math.sqrt(lam * 2.0 / np.sum(np.abs(t1) ** 2)) * t1
            if rng.uniform() < 0.3:
                x[int(rng.integers(0, NFFT - 200)) :][:200] = 0.0
            blk[c] = x
        blocks.append(blk)
    return bank, blocks


def _bank_rows(bank, blk):
    """What DetectorBank._block gives full_rows_kernel, and both phases' exact correlations."""
    from dsp.rx.detect import NFFT
    from dsp.rx.detect.kernels import noise_kernel

    n_live, noise, power = np.empty(3, np.int64), np.empty(3), np.empty(3)
    noise_kernel(
        blk[:3],
        np.arange(3),
        np.empty(NFFT, np.float32),
        np.empty((2, NFFT), np.float32),
        np.zeros(3),
        n_live,
        noise,
        power,
    )
    X = np.fft.fft(blk, axis=1).astype(np.complex64)
    # (the bank's spectra carry the inverse transform's 1/N: the inverse is unnormalised)
    r0 = np.fft.ifft((X[:3, None, :] * bank.T0).reshape(12, NFFT), axis=1, norm="forward").astype(np.complex64)
    r1 = np.fft.ifft((X[:3, None, :] * bank.T1).reshape(12, NFFT), axis=1, norm="forward").astype(np.complex64)
    den = (bank.energy * noise[:, None]).astype(np.float32)
    return r0, r1, den, noise, power


def test_full_rows_kernel_matches_naive_and_flags_every_crossing():
    """dsp.rx.detect.kernels.full_rows_kernel against plain loops; and every code whose phase-0 or phase-1
    statistic (computed in full, as the detector did before the screen) reaches 0.99 T at some lag
    is flagged."""
    from dsp.rx.detect.kernels import full_rows_kernel

    bank, blocks = _bank_blocks(71)
    lim = 0.99 * 21.0
    flagged = crossing = 0
    for blk in blocks:
        r0, r1, den, noise, power = _bank_rows(bank, blk)
        need = np.zeros(12, bool)
        need[5] = True  # a row in a peak window stays flagged
        sc = bank.screen
        ref = naive.full_rows_naive(
            r0, bank.hop, sc["ch"], sc["code"], den, power, sc["g"], sc["h_norm"], sc["g1"], sc["e1"], lim, need
        )
        full_rows_kernel(r0, bank.hop, sc, bank.energy, noise, power, lim, need)
        assert np.array_equal(need, ref)
        for k in range(12):
            c, ci = sc["ch"][k], sc["code"][k]
            l0 = np.abs(r0[k, : bank.hop]) ** 2 / den[c, 2 * ci]
            l1 = np.abs(r1[k, : bank.hop]) ** 2 / den[c, 2 * ci + 1]
            if max(l0.max(), l1.max()) >= lim:
                crossing += 1
                assert need[k]
        flagged += need.sum()
    assert crossing >= 5 and flagged < 12 * len(blocks)  # both cases were seen


def test_tone_rows_match_naive():
    """dsp.rx.detect.kernels.tone_rows (tone_bins on each live row, the groups that cannot cross skipped
    without their median, the bins found set to 0) against numpy's median and plain loops."""
    from dsp.rx.detect import NFFT, TONE_GROUP, TONE_K
    from dsp.rx.detect.kernels import tone_rows

    rng = np.random.default_rng(81)
    inband = np.stack([np.abs(np.fft.fftfreq(NFFT, 32 / FS)) <= c.bandwidth_hz / 2 for c in PLAN.channels])
    n = np.arange(NFFT)
    for level in (0.0, 0.5, 1.0, 3.0):
        x = (rng.standard_normal((3, NFFT)) + 1j * rng.standard_normal((3, NFFT))).astype(np.complex64)
        x[1] += level * np.exp(2j * np.pi * rng.uniform(-0.3, 0.3) * n)
        x[2, :400] = 0.0
        X = np.fft.fft(x, axis=1).astype(np.complex64)
        live = np.array([True, True, level != 1.0])
        hit, count = np.ones((3, NFFT), bool), np.empty(3, np.int64)
        X0 = X.copy()
        total = tone_rows(X, inband, live, TONE_GROUP, TONE_K / math.log(2.0), hit, count)
        for c in range(3):
            ref = naive.tone_bins_naive(X0[c], inband[c]) if live[c] else None
            assert count[c] == (0 if ref is None else ref.sum())
            if ref is not None:
                assert np.array_equal(hit[c], ref)
            assert np.array_equal(X[c], np.where(ref, 0, X0[c]) if ref is not None else X0[c])  # the tone is out
        assert total == count.sum()


def test_detector_bank_does_not_depend_on_chunking_copy_channels_or_the_screen(monkeypatch):
    """The bank's detections (threshold lowered to 12 so that noise crosses it often: peak windows,
    hold-offs, the second stage at work) are the same cut at random, from a copy taken mid-stream,
    per channel (PreambleDetector), and with every code's phase-1 correlation computed in full as
    before the screen (dsp.rx.detect.kernels.full_rows_kernel)."""
    import dsp.rx.detect.bank as B

    rng = np.random.default_rng(91)
    fr, first, s = burst(rng, ch=1, code=2, t_start=3.0)
    x = stream_with([(first, s)], int(24 * FS), 4.0, rng)
    y = HarmonicComb().process(x)
    y[: int(0.25 * FS)] = 0.0
    ch = Channelizer(PLAN)
    bb = np.concatenate([ch.process(y), ch.flush()], axis=1)
    key = lambda d: (d.channel, d.code, d.m_peak, d.sub_phase, d.start_sample, d.lambda_peak, d.corr)  # noqa: E731

    def flat(found):
        return [d for f in found for d in f]

    def run(cuts):
        bank = B.DetectorBank(PLAN.channels, PLAN.grid_hz, threshold=12.0)
        got, pos = [], 0
        for n in list(cuts) + [bb.shape[1]]:
            got += flat(bank.process(bb[:, pos : pos + n]))
            pos += n
        return sorted(map(key, got + flat(bank.flush()))), bank

    whole, bank = run([])
    assert len(whole) >= 3 and any(k[:2] == (1, 2) for k in whole)
    assert sum(d.state.gated for d in bank.dets) >= 1
    cuts = list(rng.integers(1, 3000, 60))
    assert run(cuts)[0] == whole
    # a copy taken mid-stream continues exactly like the original
    bank = B.DetectorBank(PLAN.channels, PLAN.grid_hz, threshold=12.0)
    half = bb.shape[1] // 2
    bank.process(bb[:, :half])
    clone = bank.copy()
    after = [sorted(map(key, flat(b.process(bb[:, half:])) + flat(b.flush()))) for b in (bank, clone)]
    assert after[0] == after[1] and len(after[0]) >= 1
    single = []
    for c in PLAN.channels:
        det = B.PreambleDetector(c, PLAN.grid_hz, threshold=12.0)
        single += det.process(bb[c.index]) + det.flush()
    assert sorted(map(key, single)) == whole

    def flag_all(r, hop, screen, energy, noise, power, lim, need):
        need[:] = True
        return 0, need.size

    monkeypatch.setattr(B, "full_rows_kernel", flag_all)
    full, bank = run([])
    assert full == whole
    assert sum(d.state.full_rows for d in bank.dets) == sum(d.state.n_tests for d in bank.dets) // (2 * bank.hop)


def test_medians_match_numpy_median_naive():
    """dsp.rx.order.median32/median64 (quickselect) give np.median's value to the bit: odd and even
    counts, ties, one value, a NaN."""
    from dsp.rx.order import median32, median64

    rng = np.random.default_rng(101)
    for n in list(range(1, 12)) + [585, 1464, 2048]:
        for draw in (rng.exponential(size=n), rng.integers(0, 4, n).astype(float), 1e-30 * rng.uniform(size=n) + 1.0):
            for x, f in ((draw.astype(np.float32), median32), (draw.astype(np.float64), median64)):
                got, ref = f(x), np.median(x)
                assert got == ref, (n, x.dtype)
    x = rng.uniform(size=9)
    x[4] = np.nan
    assert np.isnan(median64(x)) and np.isnan(median32(x.astype(np.float32)))


def test_gated_statistic_matches_naive():
    """dsp.rx.cfar_gate.gated_statistic (a numba kernel, numpy's pairwise sum reproduced) gives what
    its numpy version gave, to the bit: noise, a burst, blanked spans, a transient, strong samples,
    odd and even live counts per segment, too few live samples, no noise."""
    from dsp.rx.cfar_gate import gated_statistic, pairwise_sum
    from dsp.rx.detect.templates import cached_template

    rng = np.random.default_rng(111)
    t = cached_template(1, PLAN.channel(1).fc_hz, 2, PLAN.grid_hz, FS / 32, 0.5)
    for trial in range(40):
        w = (rng.standard_normal(t.size) + 1j * rng.standard_normal(t.size)) * math.sqrt(rng.uniform(0.5, 2))
        if trial % 4 == 1:
            w += rng.uniform(0.05, 0.5) * t  # a burst
        if trial % 4 == 2:
            w[int(rng.integers(0, t.size - 120)) :][: int(rng.integers(1, 120))] = 0.0  # blanked
        if trial % 4 == 3:
            k = int(rng.integers(0, t.size - 60))
            w[k : k + 60] *= 10 * np.exp(-np.arange(60) / 15)  # a transient
            w[int(rng.integers(0, t.size))] = 30.0  # a strong sample
        if trial == 39:
            w[50:] = 0.0  # too few live samples
        w = w.astype(np.complex64)
        r_row = (rng.standard_normal(1464 + trial % 2) + 1j * rng.standard_normal(1464 + trial % 2)).astype(
            np.complex64
        )
        e_p, noise = float(np.sum(np.abs(t) ** 2)), rng.uniform(0.5, 2.5) * (trial != 38)
        got, ref = gated_statistic(w, t, r_row, e_p, noise), naive.gated_statistic_naive(w, t, r_row, e_p, noise)
        assert got == ref, trial
    for n in list(range(0, 140)) + [585, 1000]:  # numpy's pairwise summation, as np.sum does it
        x = rng.exponential(size=n) * 10 ** rng.uniform(-5, 5, n)
        assert pairwise_sum(x, 0, n) == np.sum(x)


def test_spectra_product_matches_naive():
    """dsp.rx.detect.kernels.spectra_product (a complex product with fused multiply-adds) against exact
    arithmetic; and where the bank uses it, it gives numpy's complex64 product to the bit."""
    from dsp.rx.detect import DetectorBank
    from dsp.rx.detect.kernels import spectra_product

    rng = np.random.default_rng(121)
    X = (rng.standard_normal((4, 48)) * 10 ** rng.uniform(-3, 3, (4, 48)) + 1j * rng.standard_normal((4, 48))).astype(
        np.complex64
    )
    T0 = (rng.standard_normal((3, 2, 48)) + 1j * rng.standard_normal((3, 2, 48)) * 1e-3).astype(np.complex64)
    chans = np.array([2, 0])
    out = np.empty((4, 48), np.complex64)
    spectra_product(X, T0, chans, out)
    assert np.array_equal(out, naive.spectra_product_naive(X, T0, chans))
    if DetectorBank(PLAN.channels, PLAN.grid_hz).product_kernel:  # (decided when a bank is made)
        assert np.array_equal(out, np.concatenate([X[c][None, :] * T0[c] for c in chans]))


def test_restore_zeros_and_statistic_match_naive():
    """dsp.rx.detect.kernels.restore_zeros (a block without its tone keeps the blanked zeros) and
    statistic (the two phases' larger lambda) against numpy."""
    from dsp.rx.detect.kernels import restore_zeros, statistic

    rng = np.random.default_rng(131)
    blk = (rng.standard_normal((4, 256)) + 1j * rng.standard_normal((4, 256))).astype(np.complex64)
    blk[1, 10:40] = 0.0
    blk[2, ::7] = 0.0
    x = (rng.standard_normal((2, 256)) + 1j * rng.standard_normal((2, 256))).astype(np.complex64)
    rows = np.array([2, 1])
    ref, ref_power = naive.restore_zeros_naive(blk, rows, x)
    power = np.zeros(4)
    restore_zeros(blk, rows, x, power)
    assert np.array_equal(x, ref)
    np.testing.assert_allclose(power[rows], ref_power, rtol=2e-6)
    assert np.all(power[rows] >= ref_power) and power[0] == power[3] == 0
    r0, r1 = [(rng.standard_normal(300) + 1j * rng.standard_normal(300)).astype(np.complex64) for _ in range(2)]
    r1[5] = r0[5]  # a tie: phase 0
    d0, d1 = np.float32(1.7), np.float32(1.7)
    lam, best, mx = statistic(r0, r1, d0, d1)
    ref_lam, ref_best, ref_mx = naive.statistic_naive(r0, r1, d0, d1)
    assert np.array_equal(lam, ref_lam) and np.array_equal(best, ref_best) and mx == ref_mx and best[5] == 0


def test_select_pair_matches_sorting_naive():
    """dsp.rx.order.select_pair gives the (k-1)-th and k-th smallest values as sorting does: random,
    tied, sorted, reversed and constant data, every k of small arrays, the middle of large ones."""
    from dsp.rx.order import select_pair

    rng = np.random.default_rng(141)
    bufs = np.empty((2, 2048), np.float32)
    for n in list(range(1, 40)) + [64, 75, 585, 1464, 2048]:
        for x in (rng.exponential(size=n), rng.integers(0, 3, n), np.arange(n), np.arange(n)[::-1], np.full(n, 2.0)):
            x = np.asarray(x, np.float32)
            s = np.sort(x)
            for k in range(n) if n < 40 else (0, n // 2 - 1, n // 2, n - 1):
                assert select_pair(x, k, bufs) == (s[max(k - 1, 0)], s[k]), (n, k)


def test_deinterleave_matches_naive_transpose():
    """dsp.rx.chain.deinterleave: one contiguous row per input, the same values as x.T, out reused;
    a block that is not (samples, inputs) of real numbers raises."""
    from dsp.rx.chain import deinterleave

    rng = np.random.default_rng(3)
    for x in (
        rng.standard_normal((1000, 36)),
        rng.standard_normal((7, 3)).astype(np.float32),
        rng.integers(-(2**15), 2**15, (50, 4)).astype(np.int16),
    ):
        y = deinterleave(x)
        assert y.flags.c_contiguous and y.dtype == (np.float64 if x.dtype == np.float64 else np.float32)
        np.testing.assert_array_equal(y, x.T.astype(np.float64))
        again = deinterleave(x[::-1], y)
        assert again is y
        np.testing.assert_array_equal(y, x[::-1].T.astype(np.float64))
    assert deinterleave(np.zeros((5, 2), np.int32)).dtype == np.float64  # 32-bit integers need float64
    with pytest.raises(ValueError):
        deinterleave(np.zeros(10))
    with pytest.raises(ValueError):
        deinterleave(np.zeros((4, 2), complex))
