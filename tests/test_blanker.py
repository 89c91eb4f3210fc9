"""The impulse blanker (dsp.rx.blanker): transients and their comb echoes go, bursts stay."""

from __future__ import annotations

import numpy as np
import pytest

from dsp.rx import blanker as B
from dsp.rx.comb import RHO
from tests import naive

PERIOD = 25  # baseband samples per 60 Hz cycle at 1.5 kHz


def _noise(rng, nch, n):
    return (rng.standard_normal((nch, n)) + 1j * rng.standard_normal((nch, n))) / np.sqrt(2)


def _lobe(n, at, peak_db, width=12):
    """A transient's lobe at baseband (a smooth bump, peak_db over unit noise power)."""
    t = np.arange(n) - at
    return 10 ** (peak_db / 20) * np.exp(-0.5 * (t / (width / 2.5)) ** 2)


def _transient_with_echoes(n, at, peak_db, rho=RHO, periods=60):
    """A lobe and its echoes through the comb (1 - u)^2 / (1 - rho u)^2, u = one grid period,
    with the carrier rotation of a channel half-way between harmonics (echo k flips sign k times)."""
    den = np.array([(j + 1) * rho**j for j in range(periods + 2)])
    c = den.copy()
    c[1:] -= 2 * den[:-1]
    c[2:] += den[:-2]
    x = np.zeros(n, complex)
    for k in range(periods):
        if at + k * PERIOD < n:
            x += c[k] * (-1) ** k * _lobe(n, at + k * PERIOD, peak_db) * np.exp(0.7j)
    return x


def _burst(n, start, length, snr_db, rng):
    """A BPSK-like burst: random +-1 chips at ~2 samples per chip, smoothed, snr_db per sample."""
    chips = rng.choice([-1.0, 1.0], size=length // 2 + 2)
    s = np.repeat(chips, 2)[:length]
    s = np.convolve(s, np.ones(3) / 3, mode="same")
    s /= np.sqrt(np.mean(s**2))
    x = np.zeros(n, complex)
    x[start : start + length] = 10 ** (snr_db / 20) * s * np.exp(1.1j)
    return x


def _run(y, chunks=None, blk=None):
    blk = blk or B.ImpulseBlanker(y.shape[0], PERIOD, RHO)
    if chunks is None:
        return blk.process(y), blk
    outs, i = [], 0
    for k in chunks:
        outs.append(blk.process(y[:, i : i + k]))
        i += k
    outs.append(blk.process(y[:, i:]))
    return np.concatenate(outs, axis=1), blk


def test_echo_envelope_follows_the_comb_coefficients():
    env = B.echo_envelope(0.8, periods=40, margin=1.0)
    # c_0 = 1, c_1 = 2 rho - 2 = -0.4, c_2 = rho^0 (3 * 0.64 - 4 * 0.8 + 1) = -0.28; env[k] = max_{j >= k-1} c_j^2
    assert env[0] == pytest.approx(1.0) and env[1] == pytest.approx(1.0)
    assert env[2] == pytest.approx(0.16) and env[3] == pytest.approx(0.28**2)
    assert np.all(np.diff(env) <= 0)
    # the second bump: c_k = rho^(k-2) (0.04 k - 0.36) peaks near -37 dB around k = 13-16
    assert 10 * np.log10(env[14]) == pytest.approx(
        10 * np.log10(max((0.8 ** (k - 2) * (0.04 * k - 0.36)) ** 2 for k in range(13, 42))), abs=1e-9
    )
    with pytest.raises(ValueError):
        B.echo_envelope(1.0)


def test_matches_naive_and_does_not_depend_on_the_cut_or_a_copy():
    rng = np.random.default_rng(1)
    n = 12000
    y = _noise(rng, 3, n)
    y[0] += _transient_with_echoes(n, 1500, 50.0) + _burst(n, 4000, 4900, 25.0, rng)
    y[1] += _transient_with_echoes(n, 2000, 35.0) + _transient_with_echoes(n, 2230, 45.0)
    y[2] += _burst(n, 300, 4900, 30.0, rng) + _transient_with_echoes(n, 3000, 60.0)  # a transient on a burst
    out, blk = _run(y)
    ref, counts = naive.blank_naive(
        y,
        PERIOD,
        blk.env,
        B.BLANK_K**2,
        blk.sustain,
        B.DECIDE,
        B.BLANK_HALF,
        B.ECHO_HALF,
        B.SLOTS,
        B.WARMUP,
        B.NOISE_ALPHA,
        B.RISE_ALPHA,
    )
    assert out.shape == ref.shape == (3, n - B.DELAY)
    np.testing.assert_array_equal(out == 0, ref == 0)
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(blk.state.triggers, counts)
    chunked, _ = _run(y, chunks=list(rng.integers(1, 700, 30)))
    np.testing.assert_array_equal(chunked, out)
    b1 = B.ImpulseBlanker(3, PERIOD, RHO)
    first = b1.process(y[:, :5000])
    b2 = b1.copy()
    np.testing.assert_array_equal(np.concatenate([first, b1.process(y[:, 5000:])], axis=1), out)
    np.testing.assert_array_equal(np.concatenate([first, b2.process(y[:, 5000:])], axis=1), out)


@pytest.mark.parametrize("snr_db", [10.0, 20.0, 30.0, 50.0])
def test_a_strong_burst_is_left_alone(snr_db):
    rng = np.random.default_rng(int(snr_db))
    n = 9000
    y = _noise(rng, 1, n)
    y[0] += _burst(n, 2000, 4900, snr_db, rng)
    out, blk = _run(y)
    assert blk.state.blanked[0] == 0
    np.testing.assert_array_equal(out, y[:, : out.shape[1]])
    assert blk.state.triggers[0, 2] == 0  # no sample of it was taken for a transient


@pytest.mark.parametrize("peak_db", [25.0, 40.0, 55.0])
def test_a_transient_and_its_echoes_are_blanked(peak_db):
    rng = np.random.default_rng(int(peak_db))
    n = 6000
    noise = _noise(rng, 1, n)
    y = noise.copy()
    y[0] += _transient_with_echoes(n, 2000, peak_db)
    out, blk = _run(y)
    p = np.abs(out[0]) ** 2
    # nothing left much above the trigger level (the echoes under it lift the noise estimate a
    # little), and no sample of it was taken for a burst
    assert p.max() < B.BLANK_K**2 * 2.0
    assert blk.state.triggers[0, 1] == 0 and blk.state.triggers[0, 2] >= 1
    # the noise under it is untouched outside the blanked samples
    kept = out[0] != 0
    np.testing.assert_array_equal(out[0, kept], y[0, : out.shape[1]][kept])
    assert kept[:1900].all()


def test_a_burst_right_after_a_transient_keeps_most_of_its_samples():
    rng = np.random.default_rng(5)
    n = 12000
    y = _noise(rng, 1, n)
    y[0] += _transient_with_echoes(n, 2000, 50.0) + _burst(n, 2150, 4900, 0.0, rng)
    out, blk = _run(y)
    blanked = np.mean(out[0, 2150 : 2150 + 540] == 0)  # the preamble's first 0.36 s
    assert blanked < 0.5
    assert blk.state.triggers[0, 1] == 0


def test_bad_input_and_parameters_raise():
    blk = B.ImpulseBlanker(3, PERIOD, RHO)
    with pytest.raises(ValueError, match="expected"):
        blk.process(np.zeros((2, 10), complex))
    with pytest.raises(ValueError, match="expected"):
        blk.process(np.zeros(10, complex))
    with pytest.raises(ValueError, match="blank_k"):
        B.ImpulseBlanker(3, PERIOD, RHO, blank_k=0.0)
    with pytest.raises(ValueError, match="period"):
        B.ImpulseBlanker(3, 31, RHO)
    with pytest.raises(ValueError, match="rho"):
        B.ImpulseBlanker(3, PERIOD, 1.5)
