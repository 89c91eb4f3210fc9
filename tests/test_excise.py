import numpy as np

from dsp.excise import excise_tones

FS = 1500.0


def _noise(rng, n):
    return (rng.standard_normal(n) + 1j * rng.standard_normal(n)) / np.sqrt(2)


def test_tone_is_removed_and_noise_kept():
    rng = np.random.default_rng(1)
    n = 5000
    w = _noise(rng, n)
    t = np.arange(n) / FS
    # 27 dB over the noise in a 1-Hz bin, drifting 0.3 Hz over the span
    amp = np.sqrt(10 ** 2.7 / FS)
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
