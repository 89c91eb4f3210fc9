import math

import numpy as np
import scipy.fft as sfft
from scipy.ndimage import median_filter

from dsp.rx.excise import excise_tones, tone_hits
from tests import naive

FS = 1500.0


def _noise(rng, n):
    return (rng.standard_normal(n) + 1j * rng.standard_normal(n)) / np.sqrt(2)


def test_tone_is_removed_and_noise_kept():
    rng = np.random.default_rng(1)
    n = 5000
    w = _noise(rng, n)
    t = np.arange(n) / FS
    # 27 dB over the noise in a 1-Hz bin, drifting 0.3 Hz over the span
    amp = np.sqrt(10**2.7 / FS)
    tone = amp * np.exp(2j * np.pi * (123.4 * t + 0.045 * t**2))
    y, hits = excise_tones(w + tone)
    assert 1 <= hits <= 20
    # what is left of the tone: its projection on the clean output is tiny
    resid = y - w
    assert np.mean(np.abs(resid) ** 2) < 0.02 * np.mean(np.abs(tone) ** 2) + 0.01
    # the noise loses only the excised bins' share
    assert abs(np.mean(np.abs(y) ** 2) - 1.0) < 0.05


def test_noise_only_is_untouched_and_zeros_stay_zero():
    rng = np.random.default_rng(2)
    x = _noise(rng, 5000)
    x[1000:1040] = 0.0  # blanked samples
    y, hits = excise_tones(x)
    assert hits == 0  # a chance bin 15 dB over the mean: p = exp(-31.6) per bin
    assert np.all(y[1000:1040] == 0.0)
    assert np.mean(np.abs(y - x) ** 2) < 0.01
    if hits == 0:
        assert np.array_equal(y, x)


def test_wideband_signal_over_the_noise_is_not_excised():
    rng = np.random.default_rng(3)
    n = 5000
    chips = rng.choice([-1.0, 1.0], size=n // 2).repeat(2)  # ~750 Hz wide, 10 dB over the noise
    x = np.sqrt(10.0) * chips + _noise(rng, n)
    y, hits = excise_tones(x)
    assert hits <= 5
    assert np.mean(np.abs(y - x) ** 2) < 1e-3 * np.mean(np.abs(x) ** 2)


def test_short_span_is_returned_as_is():
    x = np.ones(100, complex)
    y, hits = excise_tones(x)
    assert hits == 0 and np.array_equal(y, x)


def _spectra(rng):
    """Power spectra that exercise tone_hits: white and shaped noise, scales far from 1, zero
    bins, ties, peaks, and bins exactly at, just over and just under their threshold."""
    ln2, k = math.log(2.0), 10.0**1.5
    for case in range(12):
        n = int(rng.integers(404, 900))
        half = (50, 25, 3)[case % 3]
        p = rng.exponential(size=n) * (1.0, 1e-200, 1e200, 1e-300)[case % 4]
        if case % 3 == 1:
            p *= 1 + 5 * np.cos(np.arange(n) * 0.05) ** 2  # uneven level
        if case % 4 == 2:
            p[rng.random(n) < 0.3] = 0.0
        if case % 5 == 3:
            p = np.round(p / p.max() * 8) * p.max()  # ties
        p[rng.integers(0, n, 5)] *= 10.0 ** rng.uniform(1, 4, 5)  # peaks
        for i in rng.integers(0, n, 20):  # at the threshold (its own value is in its window: redo it)
            v = median_filter(p, size=2 * half + 1, mode="wrap")[i] / ln2 * k
            p[i] = (v, np.nextafter(v, np.inf), np.nextafter(v, 0.0))[int(rng.integers(0, 3))]
        yield p, half, ln2, k


def test_tone_hits_match_naive_and_the_running_median():
    rng = np.random.default_rng(4)
    n_hits = 0
    for p, half, ln2, k in _spectra(rng):
        got = tone_hits(p, half, ln2, k)
        assert np.array_equal(got, naive.tone_hits_naive(p, half, ln2, k))
        assert np.array_equal(got, p > median_filter(p, size=2 * half + 1, mode="wrap") / ln2 * k)
        n_hits += int(got.sum())
    assert n_hits > 20


def test_excision_is_the_running_median_rule_exactly():
    """The same output, bit for bit, as the rule written with numpy's FFT and scipy's running median."""
    rng = np.random.default_rng(5)
    for n in (4964, 4965, 1000):
        t = np.arange(n) / FS
        x = _noise(rng, n) + np.sqrt(10**2.2 / FS) * np.exp(2j * np.pi * 211.7 * t)
        x[10:30] = 0.0
        R = np.fft.fft(x)
        p = np.abs(R) ** 2
        hit = p > median_filter(p, size=101, mode="wrap") / math.log(2.0) * 10.0**1.5
        hit = np.convolve(np.concatenate([hit[-2:], hit, hit[:2]]).astype(float), np.ones(5), mode="valid") > 0
        R[hit] = 0.0
        want = np.fft.ifft(R)
        want[x == 0] = 0.0
        y, hits = excise_tones(x)
        assert hits == int(hit.sum()) > 0
        assert y.tobytes() == want.tobytes()
        assert sfft.fft(x).tobytes() == np.fft.fft(x).tobytes()  # scipy's FFT is numpy's, value for value
