"""gridsim.channel: determinism, spectrum, noise floor, grid frequency, injections, crosstalk."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from scipy import signal

from gridsim.channel import ChannelConfig, Injection, Layout, SubstationChannel, harmonic_profile_dbc, input_index

FS = 48000
QUIET = dict(enable_fundamental=False, enable_harmonics=False, enable_impulses=False, enable_interferers=False)


def _welch(x: np.ndarray, scaling: str) -> tuple[np.ndarray, np.ndarray]:
    """1-Hz resolution spectrum (Blackman-Harris: low leakage next to strong harmonics)."""
    return signal.welch(x, fs=FS, nperseg=FS, window="blackmanharris", scaling=scaling, axis=0)


def _floor_mask(f: np.ndarray, ch: SubstationChannel, excl_hz: float = 6.0) -> np.ndarray:
    """600-3600 Hz bins away from harmonics and interferers."""
    grid = ch.config.grid_hz
    m = (f > 600) & (f < 3600) & (np.abs(f - np.round(f / grid) * grid) > excl_hz)
    for it in ch.interferers:
        m &= np.abs(f - it["freq_hz"]) > excl_hz + it["drift_hz"]
    return m


@pytest.fixture(scope="module")
def background():
    """4 s of the default background on 1 bus x 4 feeders, and its channel."""
    ch = SubstationChannel(ChannelConfig(), Layout(1, 4), seed=1)
    return ch, ch.render(0, 4 * FS)


# ------------------------------------------------------------------------------- layout
def test_input_index_formula():
    lay = Layout(2, 6)
    assert lay.n_inputs == 36
    assert lay.input_index(0, 0, "A") == 0
    assert lay.input_index(0, 5, 2) == 17
    # feeder given globally (feeder 8 is the 3rd on bus 1) or within the bus: same input
    assert lay.input_index(1, 8, "B") == lay.input_index(1, 2, "B") == ((1 * 6) + 2) * 3 + 1 == 25
    assert input_index(1, 2, "C", feeders_per_bus=6) == 26
    assert [lay.inputs[i] for i in (0, 25, 35)] == [(0, 0, 0), (1, 8, 1), (1, 11, 2)]
    for bad in [(0, 6, 0), (1, 12, 0), (0, 0, 3), (0, 0, "D"), (2, 0, 0)]:
        with pytest.raises(ValueError):
            lay.input_index(*bad)


# -------------------------------------------------------------------------- determinism
def _injections() -> list[Injection]:
    t = np.arange(int(1.5 * FS)) / FS
    tone = math.sqrt(2) * np.sin(2 * np.pi * 1170.0 * t)
    return [
        Injection(
            start_sample=16000,
            samples=tone,
            bus=0,
            feeder=1,
            phase=2,
            level_db=-70.0,
            cutoff_hz=3600.0,
            crosstalk_seed=5,
        ),
        Injection(
            start_sample=47990,
            samples=tone[:30],
            bus=0,
            feeder=3,
            phase=0,
            level_db=-90.0,
            cutoff_hz=3000.0,
            crosstalk_seed=6,
        ),
    ]


def test_seeded_and_block_size_independent():
    cfg = ChannelConfig(impulse_rate_per_feeder_per_s=2.0)  # make sure transients straddle blocks
    inj = _injections()
    a = SubstationChannel(cfg, Layout(1, 4), seed=42).render(0, FS, inj)
    ch = SubstationChannel(cfg, Layout(1, 4), seed=42)
    b = np.concatenate([ch.render(0, 17000, inj), ch.render(17000, 31000, inj)])
    assert np.array_equal(a, b)
    ch = SubstationChannel(cfg, Layout(1, 4), seed=42)
    pos, parts = 0, []
    for n in (1, 4799, 12345, 30855):
        parts.append(ch.render(pos, n, inj))
        pos += n
    assert np.array_equal(a, np.concatenate(parts))
    # random access (later segment first, then back) gives the same samples
    ch = SubstationChannel(cfg, Layout(1, 4), seed=42)
    late = ch.render(3 * FS + 100, 5000)
    early = ch.render(20000, 1000, inj)
    assert np.array_equal(early, a[20000:21000])
    full = SubstationChannel(cfg, Layout(1, 4), seed=42).render(0, 4 * FS)
    assert np.array_equal(late, full[3 * FS + 100 : 3 * FS + 5100])
    # another seed is another substation
    c = SubstationChannel(cfg, Layout(1, 4), seed=43).render(0, 1000)
    assert not np.allclose(c, a[:1000])


# ------------------------------------------------------------------------------ spectrum
def test_harmonics_stand_80_to_90_db_over_the_floor(background):
    ch, x = background
    f, spec = _welch(x, "spectrum")
    _, dens = _welch(x, "density")
    mask = _floor_mask(f, ch)
    ratios = []
    for i in range(ch.n_inputs):
        floor_1hz = np.median(dens[mask, i])  # noise power in a 1-Hz bin
        for h in range(11, 60, 2):  # odd harmonics in 660..3600 Hz
            peak = spec[h * 60 - 2 : h * 60 + 3, i].max()
            ratios.append(10 * np.log10(peak / floor_1hz))
    ratios = np.array(ratios)
    med, p5, p95 = np.median(ratios), np.percentile(ratios, 5), np.percentile(ratios, 95)
    print(f"in-band odd harmonics over the 1-Hz floor: median {med:.1f} dB, 5..95 % {p5:.1f}..{p95:.1f} dB")
    assert 78.0 <= med <= 90.0
    assert 72.0 <= p5 and p95 <= 97.0
    # even harmonics are 20-30 dB (plus spread) under the odd ones
    prof = harmonic_profile_dbc(ch.config)
    assert prof[2] == pytest.approx(-17.0)  # 3rd mid-range
    assert prof[4] == -22.0 and prof[6] == -28.0 and prof[10] == -35.0
    assert prof[3] == pytest.approx((prof[2] + prof[4]) / 2 - 25.0)
    assert prof[79] < prof[58] < prof[12]


def test_fundamental_rms_and_phase_rotation(background):
    ch, x = background
    f, spec = _welch(x, "spectrum")
    fund = spec[58:63].max(axis=0)  # "spectrum" scaling: the peak bin holds the tone power
    np.testing.assert_allclose(10 * np.log10(fund), 20 * np.log10(ch.fundamental_rms), atol=0.2)
    assert np.all((ch.load_factor >= 0.5) & (ch.load_factor <= 1.0))
    # phase B lags A by 120 degrees, C leads by 120 (CT polarity undone)
    y = x[:FS] * ch.ct_polarity
    z = np.exp(-1j * ch.grid_phase_rad(0, FS))
    ph = np.angle((y * z[:, None]).mean(axis=0))
    d = np.angle(np.exp(1j * (ph[1::3] - ph[0::3])))
    np.testing.assert_allclose(np.degrees(d), -120.0, atol=1.0)
    d = np.angle(np.exp(1j * (ph[2::3] - ph[0::3])))
    np.testing.assert_allclose(np.degrees(d), 120.0, atol=1.0)


@pytest.mark.parametrize("dbc", [80.0, 85.0, 90.0])
def test_noise_floor_dbc_exact(dbc):
    ch = SubstationChannel(ChannelConfig(noise_floor_dbc=dbc, **QUIET), Layout(1, 2), seed=3)
    x = ch.render(0, FS)
    meas = 20 * np.log10(x.std(axis=0) / ch.fundamental_rms)
    # the RMS of FS Gaussian samples scatters by 20 log10(e) / sqrt(2 FS) = 0.028 dB: 4 sigma
    sigma_db = 20 * np.log10(np.e) / np.sqrt(2 * FS)
    np.testing.assert_allclose(meas, -dbc, atol=4 * sigma_db)


def test_noise_floor_measured_in_full_background(background):
    ch, x = background
    f, dens = _welch(x, "density")
    mask = _floor_mask(f, ch)
    # median of 7 averaged periodograms sits ~0.15 dB under the mean
    meas = 10 * np.log10(np.median(dens[mask], axis=0) * FS / 2 / ch.fundamental_rms**2)
    print(f"noise floor measured: {np.round(meas, 2)} dBc (configured -85)")
    np.testing.assert_allclose(meas, -ch.config.noise_floor_dbc, atol=0.6)


# ------------------------------------------------------------------------ grid frequency
def test_grid_frequency_bounded_walk_plus_steps():
    cfg = ChannelConfig(freq_steps_per_hour=300.0, **QUIET)  # several steps in a minute
    ch = SubstationChannel(cfg, Layout(1, 1), seed=11)
    n_s = 60
    n = n_s * FS
    f = ch.grid_frequency(0, n)
    walk, step = ch.frequency_components(0, n)
    np.testing.assert_allclose(f, 60.0 + walk + step, atol=1e-12)
    assert np.abs(walk).max() <= cfg.freq_wander_hz + 1e-12
    steps = [e for k in range(n_s) for e in ch._step_events(k)]
    assert len(steps) >= 1
    assert all(0.005 <= abs(a) <= 0.020 for _, a in steps)
    assert np.abs(step).max() <= sum(abs(a) for _, a in steps) + 1e-12
    assert np.abs(f - 60.0).max() <= cfg.freq_wander_hz + sum(abs(a) for _, a in steps)
    # it does wander (not stuck at nominal) and steps are visible as jumps
    assert walk.std() > 0.002
    first_at = steps[0][0]
    assert abs(f[first_at] - f[first_at - 1]) >= 0.004
    # the same grid on every input: frequency does not depend on the layout
    other = SubstationChannel(cfg, Layout(2, 3), seed=11).grid_frequency(123456, 1000)
    np.testing.assert_array_equal(other, f[123456:124456])
    # 50 Hz grid selectable
    f50 = SubstationChannel(ChannelConfig(grid_hz=50.0, **QUIET), Layout(1, 1), seed=1).grid_frequency(0, FS)
    assert np.abs(f50 - 50.0).max() <= 0.05 + 0.02 * 3


def test_phase_is_the_integral_of_frequency_across_segments():
    ch = SubstationChannel(ChannelConfig(**QUIET), Layout(1, 1), seed=2)
    n = 3 * FS
    theta = np.unwrap(ch.grid_phase_rad(0, n))
    f = ch.grid_frequency(0, n)
    np.testing.assert_allclose(np.diff(theta), 2 * np.pi * f[:-1] / FS, atol=1e-9)


# -------------------------------------------------------------------------- injections
def test_crosstalk_gains_ranges_and_signs():
    lay = Layout(2, 3)
    ch = SubstationChannel(ChannelConfig(), lay, seed=9)
    signs = {"same": set(), "other": set()}
    for s in range(200):
        inj = Injection(0, np.zeros(1), bus=1, feeder=4, phase=1, level_db=-100.0, cutoff_hz=3600.0, crosstalk_seed=s)
        g = ch.crosstalk_gains(inj)
        true = lay.input_index(1, 4, 1)
        assert true == 13
        assert g[true] == ch.ct_polarity[true]
        assert np.all(g[:9] == 0.0)  # bus 0 hears nothing
        raw = g / ch.ct_polarity  # undo the CT polarity to see the path sign
        for i in (12, 14):  # other phases of feeder 4
            db = 20 * np.log10(abs(g[i]))
            assert -20.0 <= db <= -6.0
            signs["same"].add(np.sign(raw[i]))
        for i in (9, 10, 11, 15, 16, 17):  # feeders 3 and 5 of bus 1
            db = 20 * np.log10(abs(g[i]))
            assert -40.0 <= db <= -20.0
            signs["other"].add(np.sign(raw[i]))
        np.testing.assert_array_equal(g, ch.crosstalk_gains(inj))  # deterministic
    assert signs == {"same": {-1.0, 1.0}, "other": {-1.0, 1.0}}
    assert set(ch.ct_polarity.tolist()) == {-1, 1}


def test_injection_level_filter_and_crosstalk_copies():
    cfg = ChannelConfig(**QUIET, enable_noise=False)
    lay = Layout(1, 2)
    ch = SubstationChannel(cfg, lay, seed=4)
    n = FS
    t = np.arange(n) / FS
    lows, highs = math.sqrt(2) * np.sin(2 * np.pi * 1170 * t), math.sqrt(2) * np.sin(2 * np.pi * 3400 * t)
    for tone, freq in ((lows, 1170.0), (highs, 3400.0)):
        inj = Injection(
            start_sample=1000,
            samples=tone,
            bus=0,
            feeder=1,
            phase=0,
            level_db=-100.0,
            cutoff_hz=3600.0,
            crosstalk_seed=1,
        )
        # rendered in two blocks that cut the burst
        y = np.concatenate([ch.render(0, 20000, [inj]), ch.render(20000, n + 2000, [inj])])
        true = lay.input_index(0, 1, "A")
        steady = y[10000 : 10000 + FS // 2, true]
        level_db = 20 * np.log10(steady.std() / ch.fundamental_rms[true])
        b, a = signal.butter(2, 3600.0, fs=FS)
        _, hresp = signal.freqz(b, a, worN=[freq], fs=FS)
        expected = -100.0 + 20 * np.log10(abs(hresp[0]))
        assert level_db == pytest.approx(expected, abs=0.05)
        assert ch.injection_scale(inj) == pytest.approx(ch.fundamental_rms[true] * 1e-5)
        g = ch.crosstalk_gains(inj)
        np.testing.assert_allclose(y * g[true], np.outer(y[:, true], g), rtol=1e-9, atol=1e-18)
        assert np.all(y[:1000] == 0.0)  # nothing before the burst (background switched off)
        tail = int(0.010 * FS)
        assert np.all(y[1000 + n + tail :] == 0.0) and np.any(y[1000 + n : 1000 + n + tail] != 0.0)
    assert expected < -102.0  # the 3400 Hz tone is attenuated by the transformer


def test_render_speed_12_inputs():
    ch = SubstationChannel(ChannelConfig(), Layout(1, 4), seed=5)
    ch.render(0, FS // 10)  # warm up
    t0 = time.perf_counter()
    ch.render(FS // 10, 3 * FS)
    per_s = (time.perf_counter() - t0) / 3
    print(f"render: {per_s * 1e3:.0f} ms per second of 12-input capture")
    assert per_s < 1.0


# ------------------------------------------------------------------ impulses, interferers
def test_switching_transients_on_their_feeder():
    cfg = ChannelConfig(
        enable_fundamental=False, enable_harmonics=False, enable_interferers=False, impulse_rate_per_feeder_per_s=3.0
    )
    ch = SubstationChannel(cfg, Layout(1, 2), seed=8)
    x = ch.render(0, 2 * FS)
    evs = ch.impulse_events(0, 2 * FS - 2000)
    assert len(evs) >= 4
    for ev in evs:
        s, f = ev["start_sample"], ev["feeder"]
        assert 500 <= ev["ring_hz"] <= 5000 and 0.5e-3 <= ev["decay_s"] <= 5e-3
        assert 20 <= ev["peak_db"] <= 50
        for p in range(3):
            i = 3 * f + p
            peak = np.abs(x[s : s + 2000, i]).max() / ch.noise_rms[i]
            want = 10 ** (ev["peak_db"] / 20) * abs(ev["gains"][p])
            # other transients may overlap; the noise adds at most a few RMS
            assert peak >= want - 5.0


def test_interferers_tones_off_harmonics(background):
    ch, x = background
    assert len(ch.interferers) == 3
    f, dens = _welch(x, "density")
    mask = _floor_mask(f, ch)
    for it in ch.interferers:
        assert 600 <= it["freq_hz"] <= 3600
        d = abs(it["freq_hz"] - round(it["freq_hz"] / 60) * 60)
        assert d >= 8.0
        i = it["inputs"][0]
        k = int(round(it["freq_hz"]))
        floor = np.median(dens[mask, i])
        over = 10 * np.log10(dens[k - 3 : k + 4, i].max() / floor)
        assert 5.0 <= over <= 35.0
