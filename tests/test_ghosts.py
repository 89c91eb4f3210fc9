"""Ghost detections (dsp.rx.ghosts): a strong burst's own correlation re-triggers the detectors of
its channel inside itself; the chain must not turn that into a second (CRC-failed) burst, and must
still demodulate a real second burst on the same code.

The tests of :class:`dsp.rx.ghosts.DecodedSpan` on a burst's real correlation (no chain) also run
in the NUMBA_DISABLE_JIT=1 pass (``kernel``; tests/conftest.py leaves the chain's out)."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import pytest

from dsp.air import params as P
from dsp.rx.chain import InputChain
from dsp.rx.channelizer import DECIMATION, Channelizer
from dsp.rx.demod import BurstResult
from dsp.rx.detect import PRE_CHIPS, Detection, sidelobe_bound, template
from dsp.rx.ghosts import DecodedSpan
from gridsim.trials import FS, T_BIT, burst
from receiver.grouping import Grouper, InputInfo
from tests.test_rx import burst as burst_on

PLAN = P.ChannelPlan.default()


def _strong(ebn0_db: float, seed: int, tail_s: float = 4.0):
    """One burst (gridsim.trials' random frame, channel, code, clock, phase, start) in white noise
    with a clean fundamental, and ``tail_s`` of the same noise after it: long enough for the
    detectors to scan the burst's end and for a detection there to be demodulated."""
    rng = np.random.default_rng(seed)
    fr, ch, code, t_start, first, s, f0 = burst(rng, PLAN)
    n = first + s.size + int(tail_s * FS)
    x = np.zeros(n)
    x[first : first + s.size] = s
    sigma = math.sqrt(T_BIT * FS / 2 / 10 ** (ebn0_db / 10))
    x += sigma * rng.standard_normal(n)
    x += sigma * 10 ** (85 / 20) * math.sqrt(2) * np.cos(2 * np.pi * f0 * np.arange(n) / FS + 0.7)
    return x, fr, ch, code, t_start


def _run(x, chunks=None):
    chain = InputChain(PLAN, 0)
    got, i = [], 0
    for c in chunks or []:
        got += chain.process(x[i : i + c]).bursts
        i += c
    got += chain.process(x[i:]).bursts + chain.flush().bursts
    return chain, got


# 3fff255 made 2-4 extra CRC-failed bursts of every one of these (detections 2.2-2.9 s into the burst)
@pytest.mark.parametrize("ebn0_db,seed", [(20.0, 2), (30.0, 21), (40.0, 5)])
def test_a_strong_burst_in_white_noise_gives_exactly_one_burst(ebn0_db, seed):
    x, fr, ch, code, t_start = _strong(ebn0_db, seed)
    chain, got = _run(x)
    assert [(r.channel, r.code, r.crc_ok, r.frame) for r in got] == [(ch, code, True, fr)]
    assert abs(got[0].start_sample - t_start * FS) < 40
    assert chain.stats.ghosts >= 1  # the detectors did fire inside it: the chain explained them
    assert chain.stats.crc_fail == 0


def test_the_ghost_check_does_not_depend_on_chunking_or_copy():
    x, fr, ch, code, _ = _strong(30.0, 21)
    key = lambda r: (r.channel, r.code, round(r.start_sample, 6), r.crc_ok, r.frame)  # noqa: E731
    a_chain, a = _run(x)
    b_chain, b = _run(x, list(np.random.default_rng(5).integers(1, 30000, 25)))
    assert [key(r) for r in a] == [key(r) for r in b] and a_chain.stats == b_chain.stats
    # a copy taken inside the burst (after it was detected, before it was decoded) and one taken
    # after it was decoded, before its ghosts were released, go on like the original
    for cut_s in (2.0, 5.0):
        c1 = InputChain(PLAN, 0)
        k = int(cut_s * FS)
        r1 = c1.process(x[:k]).bursts
        c2 = c1.copy()
        r1b = r1 + c1.process(x[k:]).bursts + c1.flush().bursts
        r2b = r1 + c2.process(x[k:]).bursts + c2.flush().bursts
        assert [key(r) for r in r1b] == [key(r) for r in r2b] == [key(r) for r in a]
        assert c1.stats == c2.stats == a_chain.stats


@pytest.mark.parametrize("second_db", [0.0, -3.0])
def test_a_second_burst_on_the_same_code_inside_the_first_is_still_decoded(second_db):
    """A collision: another hub on the same channel and code starts 1.3 s into the first burst
    at a comparable level. It lies inside a decoded burst on its code, but far above what that
    burst's correlation puts there: it is demodulated and decoded, not taken for a ghost."""
    rng = np.random.default_rng(41)
    fr1, f1, s1 = burst_on(rng, ch=1, code=2, t_start=0.45, ppm=20.0)
    fr2, f2, s2 = burst_on(rng, ch=1, code=2, t_start=1.75, ppm=-35.0)
    n = f2 + s2.size + int(4.0 * FS)
    x = np.zeros(n)
    x[f1 : f1 + s1.size] += s1
    x[f2 : f2 + s2.size] += s2 * 10 ** (second_db / 20)
    sigma = math.sqrt(T_BIT * FS / 2 / 10 ** (25.0 / 10))
    x += sigma * rng.standard_normal(n)
    x += sigma * 10 ** (85 / 20) * math.sqrt(2) * np.cos(2 * np.pi * 60.0 * np.arange(n) / FS + 0.3)
    chain, got = _run(x)
    starts = {round(r.start_sample / FS, 1): r for r in got if r.code == 2 and r.channel == 1}
    assert 1.8 in starts or 1.7 in starts, "the second burst was not demodulated"
    assert sorted(r.frame for r in got if r.crc_ok) == sorted([fr1, fr2])


def test_a_decoded_span_predicts_its_own_peak_and_explains_only_weak_detections():
    rng = np.random.default_rng(3)
    fr, _, _ = burst_on(rng, ch=0, code=1)
    span = DecodedSpan.of(0, 1, 30000.0, fr, 0.0, PLAN, 400.0 * 0.5)
    assert 1.0 <= span.predicted_ratio(1, 30000.0) < 1.2  # its own peak (an upper bound: the T0 terms)
    assert span.end_sample == pytest.approx(30000.0 + (P.burst_symbols() * P.CHIPS_PER_SYMBOL + 12) * 48000 / 720)
    later = 30000.0 + 2032 * 48000 / 720  # where the code phase and the symbol boundary realign
    side = span.predicted_ratio(1, later) * span.level
    weak = Detection(0, 1, later, 0, 0.9 * side / 0.5 + 6.0, 0j, 0.5, 0)
    strong = Detection(0, 1, later, 0, 0.5 * span.level / 0.5, 0j, 0.5, 0)  # 3 dB under the first
    assert span.explains(weak) and not span.explains(strong)
    # another channel, or a start outside the burst: never explained
    assert not span.explains(Detection(1, 1, later, 0, 1.0, 0j, 0.5, 0))
    assert not span.explains(Detection(0, 1, span.end_sample + 10, 0, 7.0, 0j, 0.5, 0))
    assert not span.explains(Detection(0, 1, 29000.0, 0, 7.0, 0j, 0.5, 0))


SPC = FS / P.CHIP_RATE_HZ  # input samples per chip


@lru_cache(maxsize=1)
def _one_burst():
    """A burst (random frame, channel 1, code 2, chip 0 at 0.5 s, no clock offset) at 48 kHz: its
    frame, first sample and samples."""
    return burst_on(np.random.default_rng(7), ch=1, code=2, t_start=0.5, ppm=0.0)


def _correlate(x: np.ndarray, ch: int, seed: int) -> list[Detection]:
    """``x`` in white noise at 30 dB Eb/N0 through the receive chain's channelizer, correlated with
    each code's detector template (both half-sample phases) at every baseband lag: the detector's
    statistic there (|r|^2 / template energy / noise power per baseband sample, the noise measured
    before the burst) as a Detection at the input index of chip 0 that lag stands for."""
    rng = np.random.default_rng(seed)
    x = x + math.sqrt(T_BIT * FS / 2 / 10 ** (30.0 / 10)) * rng.standard_normal(x.size)
    chz = Channelizer(PLAN)
    bb = np.concatenate([chz.process(x), chz.flush()], axis=1)[ch]
    noise = float(np.mean(np.abs(bb[100:600]) ** 2))  # (chip 0 at baseband sample 750)
    out = []
    for code in range(P.CODES_PER_CHANNEL):
        for sub in (0, 1):
            tp = template(PLAN.channel(ch), code, PLAN.grid_hz, FS / DECIMATION, 0.5 * sub)
            lam = np.abs(np.correlate(bb, tp, mode="valid")) ** 2 / np.sum(np.abs(tp) ** 2) / noise
            start = Channelizer.input_index(np.arange(lam.size)) - DECIMATION * 0.5 * sub + PRE_CHIPS * SPC
            for m in np.flatnonzero(lam > 6.0):  # (under this, noise alone)
                out.append(Detection(ch, code, float(start[m]), int(m), float(lam[m]), 0j, noise, sub))
    return out


def test_a_decoded_span_explains_what_its_real_correlation_could_make_the_detector_take():
    """A strong burst through the channelizer and the detector's templates: every lag and code
    inside it (its own peak's main lobe aside) where its correlation passes the detector's rival
    check (:func:`dsp.rx.detect.sidelobe_bound`), i.e. every ghost the detector could take, is
    explained by the burst's DecodedSpan; among them the T0 path's peak 12 chips after chip 0."""
    fr, first, s = _one_burst()
    x = np.zeros(first + s.size + 12000)
    x[first : first + s.size] = s
    dets = _correlate(x, 1, seed=1)
    peak = max(dets, key=lambda d: d.lambda_peak)
    assert (peak.channel, peak.code) == (1, 2) and abs(peak.start_sample - 0.5 * FS) < SPC / 2
    span = DecodedSpan.of(1, 2, peak.start_sample, fr, 0.0, PLAN, peak.lambda_peak * peak.noise_power)
    assert span.predicted_ratio(2, peak.start_sample) >= 1.0  # its own peak is within the prediction
    rivals = [
        d
        for d in dets
        if span.covers(d)
        and d.lambda_peak > sidelobe_bound(peak.lambda_peak)
        and not (d.code == 2 and abs(d.start_sample - peak.start_sample) < 2 * SPC)
    ]
    lags = {(d.code, round((d.start_sample - peak.start_sample) / SPC)) for d in rivals}
    assert (2, 12) in lags  # the T0 path's peak, -5 to -7 dB
    assert [d for d in rivals if not span.explains(d)] == []
    # nothing before the burst's chip 0 nor on another channel is the span's to explain
    assert not any(span.explains(d) for d in dets if d.start_sample <= span.start_sample)
    assert not span.explains(Detection(0, 2, peak.start_sample + 12 * SPC, 0, 1e3, 0j, peak.noise_power, 0))


def test_a_real_second_burst_inside_a_decoded_one_is_not_explained():
    """The same frame sent again 1.3 s into the first burst, 3 dB weaker (another hub on the same
    channel and code): its peak lies inside the first burst, far above what the first burst's
    correlation puts there, and passes the rival check: the first burst's span does not explain
    it (the chain demodulates it)."""
    fr, first, s = _one_burst()
    lag = int(1.3 * FS)
    x = np.zeros(first + lag + s.size + 12000)
    x[first : first + s.size] = s
    x[first + lag : first + lag + s.size] += s * 10 ** (-3 / 20)
    dets = _correlate(x, 1, seed=2)
    peak = max(dets, key=lambda d: d.lambda_peak)
    span = DecodedSpan.of(1, 2, peak.start_sample, fr, 0.0, PLAN, peak.lambda_peak * peak.noise_power)
    second = max(
        (d for d in dets if d.code == 2 and abs(d.start_sample - peak.start_sample - lag) < 2 * SPC),
        key=lambda d: d.lambda_peak,
    )
    assert span.covers(second) and second.lambda_peak > sidelobe_bound(peak.lambda_peak)
    assert 10 * math.log10(second.lambda_peak / peak.lambda_peak) == pytest.approx(-3.0, abs=1.5)
    assert not span.explains(second)


def _result(ch, code, start, frame=None):
    """A chain's record of one burst (what the grouper reads), clean when ``frame`` is given."""
    return BurstResult(
        ch, code, start, frame is not None, frame, None, 10.0, 12.0, 5.0, 1.0, -60.0, 0.0, 0.0, 0.0, 0, 50.0, 1
    )


def test_the_grouper_makes_no_bundle_of_a_decoded_bursts_echo_on_another_input():
    """On a crosstalk input the detector can take the T0 path's peak (one grid period, 12 chips,
    after chip 0; 6 dB under the burst's) for the burst: that copy fails its CRC, starts 800
    samples off and so clusters alone. The grouper drops such a cluster when a burst bundled with
    a clean frame explains it, and keeps a CRC-failed cluster where that burst's correlation is
    weak (a real collision) or on another channel."""
    rng = np.random.default_rng(8)
    fr, _, _ = burst_on(rng, ch=1, code=1)
    inputs = [InputInfo(i, 0, i // 3, "ABC"[i % 3]) for i in range(3)]
    g = Grouper(PLAN, inputs, receiver_id="rx-test", substation_id="sub-test")
    t0 = 500_000.0
    spc = 48000.0 / 720
    span = DecodedSpan.of(1, 1, t0, fr, 0.0, PLAN)
    echo = t0 + 12 * spc
    real = next(t0 + k * spc for k in range(900, 1400) if span.predicted_ratio(1, t0 + k * spc) < 10 ** (-1.5))
    g._add(0, _result(1, 1, t0, fr))
    g._add(1, _result(1, 1, echo))  # the echo: dropped
    g._add(2, _result(1, 1, real))  # a CRC-failed burst where the first is weak: kept
    g._add(2, _result(2, 1, echo))  # another channel: kept
    made = g.flush()
    assert [(b.channel, b.code, b.crc_ok, b.copies[0].start_sample) for b in made] == [
        (1, 1, True, int(t0)),
        (1, 1, False, int(round(real))),
        (2, 1, False, int(round(echo))),
    ]
    assert g.stats["ghost_clusters"] == 1
