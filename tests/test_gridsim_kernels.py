"""The simulator's fast kernels: the same waveforms as the straightforward code they replace."""

from __future__ import annotations

import numpy as np
import pytest

from dsp.air import params as P
from dsp.tx import modulator
from gridsim import burst_synth
from gridsim.channel import ChannelConfig, Layout, SubstationChannel

CASES = [
    dict(fc_hz=2100.0, t_start_s=0.3, grid_period_s=1 / 60.0003, clock_ppm=-99.0, phase_rad=5.0),
    dict(fc_hz=1230.0, t_start_s=12.3456, grid_period_s=1 / 59.97, clock_ppm=37.3, phase_rad=1.1),
    dict(fc_hz=3000.0, t_start_s=0.0123, grid_period_s=1 / 50.01, clock_ppm=0.0, phase_rad=0.0, amplitude=0.5),
]


def _chips(n: int, seed: int) -> np.ndarray:
    r = np.random.default_rng(seed)
    return (r.choice([-1.0, 1.0], n) + 1j * r.choice([-1.0, 0.0, 1.0], n)).astype(np.complex128)


@pytest.mark.parametrize("case", CASES)
def test_burst_synth_matches_the_reference_modulator(case):
    chips = _chips(80, 1)
    a0, x = modulator.modulate(chips, fs_hz=48000, **case)
    b0, y = burst_synth.modulate(chips, fs_hz=48000, **case)
    assert (a0, x.size) == (b0, y.size)
    # the reference loses up to ~1e-9 of the peak near the pulse's removable singularities
    assert np.max(np.abs(x - y)) <= 1e-8 * np.max(np.abs(x))
    assert np.count_nonzero(x) == np.count_nonzero(y)


def test_burst_synth_is_exact_where_the_reference_loses_digits():
    """At the sample where the two disagree most, a 40-digit evaluation sides with the new one."""
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 40
    chips = _chips(80, 2)
    case = CASES[0]
    a0, x = modulator.modulate(chips, fs_hz=48000, **case)
    _, y = burst_synth.modulate(chips, fs_hz=48000, **case)
    k = int(np.argmax(np.abs(x - y)))
    beta = mp.mpf(P.RRC_BETA)

    def g(t):
        if t == 0:
            return 1 - beta + 4 * beta / mp.pi
        return (mp.sin(mp.pi * t * (1 - beta)) + 4 * beta * t * mp.cos(mp.pi * t * (1 + beta))) / (
            mp.pi * t * (1 - (4 * beta * t) ** 2)
        )

    scale = 1 + mp.mpf(case["clock_ppm"]) * mp.mpf("1e-6")
    tau = (mp.mpf(a0 + k) / 48000 - mp.mpf(case["t_start_s"])) * scale
    ref = mp.mpf(0)
    for d in (0, 1):
        tt = tau - d * mp.mpf(case["grid_period_s"])
        tc = tt * P.CHIP_RATE_HZ
        nc = int(mp.floor(tc + mp.mpf(0.5)))
        e = sum(
            complex(chips[n]) * g(tc - n)
            for n in range(max(nc - P.RRC_SPAN_CHIPS, 0), min(nc + P.RRC_SPAN_CHIPS, chips.size - 1) + 1)
        )
        if e != 0:
            val = mp.re(e * mp.exp(1j * (2 * mp.pi * case["fc_hz"] * tt + mp.mpf(case["phase_rad"]))))
            ref += val if d == 0 else -val
    peak = np.max(np.abs(x))
    assert abs(float(y[k] - ref)) < 1e-12 * peak
    assert abs(float(x[k] - ref)) >= abs(float(y[k] - ref))


def test_burst_synth_checks_its_arguments_like_the_reference():
    with pytest.raises(ValueError, match="chips must be a non-empty"):
        burst_synth.modulate(np.zeros(0), fs_hz=48000, fc_hz=2000.0, t_start_s=0.1, grid_period_s=1 / 60)
    with pytest.raises(ValueError, match="too low for a carrier"):
        burst_synth.modulate(_chips(4, 0), fs_hz=4000, fc_hz=2000.0, t_start_s=0.1, grid_period_s=1 / 60)
    with pytest.raises(ValueError, match="not a grid period"):
        burst_synth.modulate(_chips(4, 0), fs_hz=48000, fc_hz=2000.0, t_start_s=0.1, grid_period_s=0.5)


def test_background_of_36_inputs_does_not_depend_on_the_block_size():
    """36 inputs (two buses), rendered whole or in odd blocks: bitwise the same."""
    ch = SubstationChannel(ChannelConfig(), Layout(2, 6), seed=11)
    a = ch.render(0, 60000)
    ch2 = SubstationChannel(ChannelConfig(), Layout(2, 6), seed=11)
    b = np.concatenate([ch2.render(0, 7), ch2.render(7, 47993), ch2.render(48000, 12000)])
    assert a.shape == (60000, 36) and np.array_equal(a, b)


@pytest.mark.parametrize("cutoff_hz", [2500.0, 3900.0])
def test_transformer_biquad_is_scipys_lfilter(cutoff_hz):
    from scipy import signal

    from gridsim.channel import _biquad

    x = np.random.default_rng(5).normal(size=5000)
    b, a = signal.butter(2, cutoff_hz, btype="low", fs=48000)
    ref = signal.lfilter(b, a, np.concatenate([x, np.zeros(480)]) * 0.37)
    y = _biquad(b / a[0], a / a[0], x, 0.37, x.size + 480)
    np.testing.assert_allclose(y, ref, rtol=0, atol=1e-15 * np.abs(ref).max())
