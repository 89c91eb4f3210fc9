"""The background kernels (gridsim.background): the same signal the model defines, computed faster.

Harmonics by periodic table against the exact sum over harmonics, tones by rotation against their
closed form, the Ziggurat's deviates against the normal distribution.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from gridsim import background as bg
from gridsim.channel import ChannelConfig, Layout, SubstationChannel

FS = 48000
ONLY_HARMONICS = dict(enable_noise=False, enable_impulses=False, enable_interferers=False)


def _exact_harmonics(ch: SubstationChannel, k: int, rows: np.ndarray, droop: bool = False) -> np.ndarray:
    """sum_h Re{C_h(u) z^h} at the given rows of segment k, the coefficients linear in u between
    the drift states at the segment's ends (the model), CT polarity applied. ``droop``: each
    harmonic scaled by sinc^2(h / TABLE_SIZE), the gain linear interpolation in the table has at
    harmonic h (1 - 3e-4 at h = 80: 0.003 dB, far inside the levels' 1-dB spread)."""
    theta = ch.grid_phase_rad(k * FS, FS)[rows]
    c0, c1 = ch._coeffs(ch._harm_state(k)), ch._coeffs(ch._harm_state(k + 1))
    if droop:
        g = np.sinc(ch.harmonics / bg.TABLE_SIZE)[:, None] ** 2
        c0, c1 = c0 * g, c1 * g
    u = rows / FS
    h = ch.harmonics[:, None]
    out = np.empty((rows.size, ch.n_inputs))
    for r, (th, uu) in enumerate(zip(theta, u, strict=True)):
        c = c0 + (c1 - c0) * uu
        out[r] = np.real(c * np.exp(1j * h * th)).sum(axis=0)
    return out * ch.ct_polarity


def test_harmonic_table_matches_the_exact_sum():
    ch = SubstationChannel(ChannelConfig(**ONLY_HARMONICS), Layout(1, 4), seed=5)
    rows = np.sort(np.random.default_rng(1).choice(FS, 400, replace=False))
    for k in (0, 3):
        x = ch.render(k * FS, FS)[rows]
        ref = _exact_harmonics(ch, k, rows)
        peak = np.abs(ref).max(axis=0)
        # linear interpolation on 8192 points a period: < 2e-5 of the peak anywhere
        assert np.max(np.abs(x - ref) / peak) < 2e-5
        # without the interpolation's droop (a 0.003 dB level change of the 80th) what remains
        # is the images, spread over many lines: < 1e-5 of the peak together, under the noise
        # floor's RMS (85 dB under the fundamental: 5.6e-5), and each far under it in a 1-Hz bin
        ref = _exact_harmonics(ch, k, rows, droop=True)
        assert np.max(np.abs(x - ref) / peak) < 1e-5


def test_harmonic_table_error_is_far_under_the_noise_in_a_1hz_bin():
    """What the table adds that the model has not (its images, the droop set aside) stays > 10 dB
    under the noise floor in a 1-Hz bin (85 dB under the fundamental over 24 kHz = -128.8 dBc)."""
    assert 20 * np.log10(np.sinc(80 / bg.TABLE_SIZE) ** 2) > -0.005
    ch = SubstationChannel(ChannelConfig(**ONLY_HARMONICS), Layout(1, 1), seed=2)
    x = ch.render(0, FS)
    ref = _exact_harmonics(ch, 0, np.arange(FS), droop=True)
    err = x - ref
    spec = np.abs(np.fft.rfft(err * np.hanning(FS)[:, None], axis=0)) / (FS / 4)  # peak amplitude / bin
    worst_dbc = 20 * np.log10(spec.max(axis=0) / math.sqrt(2) / ch.fundamental_rms)
    assert np.all(worst_dbc < -128.8 - 10.0), worst_dbc


def test_interferer_tones_match_their_closed_form():
    cfg = ChannelConfig(enable_fundamental=False, enable_harmonics=False, enable_noise=False, enable_impulses=False)
    ch = SubstationChannel(cfg, Layout(1, 2), seed=4)
    assert ch.interferers
    for k in (0, 7):
        x = ch.render(k * FS, FS)
        t = (k * FS + np.arange(FS)) / FS
        ref = np.zeros_like(x)
        for it in ch.interferers:
            w = 2 * math.pi / it["drift_period_s"]
            phi = (
                2 * math.pi * it["freq_hz"] * t
                - it["drift_hz"] * it["drift_period_s"] * np.cos(w * t + it["drift_phase_rad"])
                + it["phase0_rad"]
            )
            ref += np.real(np.exp(1j * phi)[:, None] * it["gains"][None, :])
        ref *= ch.ct_polarity
        assert np.max(np.abs(x - ref)) < 1e-6 * np.max(np.abs(ref))


def test_ziggurat_deviates_are_standard_normal():
    x = bg.standard_normal(bg.noise_seed(1, 2, 3), 4_000_000)
    n = x.size
    assert abs(x.mean()) < 5 / math.sqrt(n)
    assert abs(x.var() - 1.0) < 5 * math.sqrt(2.0 / n)
    assert abs(stats.skew(x)) < 5 * math.sqrt(6.0 / n)
    assert abs(stats.kurtosis(x)) < 5 * math.sqrt(24.0 / n)
    assert stats.kstest(x[:1_000_000], "norm").pvalue > 1e-4
    for th in (1.0, 2.0, 3.0, bg._ZIG_R, 4.0, 4.5):  # the tail beyond the base layer's edge too
        expected = 2 * stats.norm.sf(th) * n
        assert abs(np.count_nonzero(np.abs(x) > th) - expected) < 5 * math.sqrt(expected) + 1, th


def test_noise_streams_are_seeded_and_distinct():
    a = bg.standard_normal(bg.noise_seed(7, 7, 0), 1000)
    assert np.array_equal(a, bg.standard_normal(bg.noise_seed(7, 7, 0), 1000))
    b = bg.standard_normal(bg.noise_seed(7, 7, 1), 1000)
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.15


@pytest.mark.parametrize("n_harmonics", [1, 80])
def test_harmonic_table_is_the_fourier_sum(n_harmonics):
    r = np.random.default_rng(n_harmonics)
    c = r.normal(size=(n_harmonics, 3)) + 1j * r.normal(size=(n_harmonics, 3))
    sign = np.array([1.0, -1.0, 1.0])
    tab = bg.harmonic_table(c, sign)
    m = np.array([0, 1, 777, bg.TABLE_SIZE - 1])
    phi = 2 * math.pi * m / bg.TABLE_SIZE
    h = np.arange(1, n_harmonics + 1)[:, None, None]
    ref = np.real(c[:, None, :] * np.exp(1j * h * phi[None, :, None])).sum(axis=0) * sign
    np.testing.assert_allclose(tab[m], ref, rtol=0, atol=1e-12 * np.abs(c).sum())
    assert np.array_equal(tab[bg.TABLE_SIZE], tab[0])
