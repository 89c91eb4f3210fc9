"""What a substation CT loop really carries.

A substation has ``buses`` x ``feeders_per_bus`` feeders, each with three phase CTs (A, B, C),
so ``3 * buses * feeders_per_bus`` inputs. Feeders are numbered globally (feeder ``f`` sits on
bus ``f // feeders_per_bus``) and the inputs are ordered

    input = feeder * 3 + phase = ((bus * feeders_per_bus) + feeder_in_bus) * 3 + phase.

:class:`SubstationChannel` renders the capture block by block (``render(start_sample, n,
injections)`` returns an ``(n, n_inputs)`` float64 array in "per-unit current": the fundamental of
an input at full load has RMS 1). Each input carries

* the fundamental at the grid frequency, RMS = per-feeder load factor (0.5..1), phase angles
  0, -120, +120 degrees on A, B, C; the grid frequency is a bounded random walk (+-0.05 Hz around
  nominal) plus occasional steps (generation/load trips) that recover exponentially; the same on
  all inputs; the phase is the sample-by-sample integral of the frequency;
* harmonics 2..80 locked to the fundamental (``h * theta(t) + phi_h(t)``), odd ones dominant
  (3rd -20..-14 dBc, 5th -22, 7th -28, 9th -32, 11th/13th -35, then ~1/h^1.2), even ones 20-30 dB
  under their odd neighbours, triplens different on each phase; amplitude (mean-reverting,
  0.5 %/sqrt(s)) and phase (0.01 rad/sqrt(s)) drift slowly;
* a white Gaussian noise floor ``noise_floor_dbc`` (default 85 dB) under the fundamental RMS,
  measured over the whole band 0..fs/2 (at 48 kHz that is 128.8 dB under the fundamental in a
  1-Hz bin, so in-band harmonics stand 77-94 dB above the floor);
* switching transients: Poisson per feeder, damped sinusoids (500-5000 Hz, 0.5-5 ms decay,
  peak 20-50 dB over the noise RMS) on the three phases of the feeder with different gains/signs;
* a few narrowband interferers (non-harmonic tones in 600-3600 Hz, 10-30 dB over the noise floor
  in a 1-Hz bin, frequency drifting +-2 Hz over minutes) on random subsets of inputs;
* the CT polarity: each input is multiplied by a fixed sign (a reversed CT inverts everything it
  measures, fundamental included); see :attr:`SubstationChannel.ct_polarity`.

How it is computed (gridsim.background, one pass per segment): the harmonic sum of every input
from a periodic table per drift state, interpolated in phase and across the segment; the noise
from a Ziggurat on SplitMix64; the tones by phasor rotation.

Determinism: the background is generated per internal 1-second segment from RNGs seeded with
``[seed, stream, segment, ...]``; the slowly varying state (frequency walk, phase, harmonic drift)
is advanced segment by segment from its own seeded draws. The output therefore depends on the
seed only, never on how the capture is cut into blocks (bitwise identical).

Injections (:class:`Injection`) are hub bursts: the unit-free waveform (unit RMS, as
``dsp.tx.modulator.modulate`` makes it with amplitude 1) is scaled to ``level_db`` relative to the
fundamental RMS of its true input, low-passed by the hub's service transformer (2nd-order
Butterworth at ``cutoff_hz``, zero initial state, 10 ms tail), and added to the true input and, via
:meth:`SubstationChannel.crosstalk_gains`, to its neighbours.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields

import numpy as np
from scipy import signal

from dsp.numba_settings import jit
from receiver.contracts.capture import PHASES as CAPTURE_PHASES

from . import background

__all__ = [
    "PHASES",
    "ChannelConfig",
    "Injection",
    "Layout",
    "SubstationChannel",
    "harmonic_profile_dbc",
    "input_index",
    "phase_index",
]

PHASES = CAPTURE_PHASES  # one definition: the capture format's
#: Phase angle of the fundamental on A, B, C (radians).
PHASE_ANGLE_RAD = (0.0, -2.0 * math.pi / 3.0, 2.0 * math.pi / 3.0)

SEGMENT_S = 1.0  #: internal generation segment (seconds); fixed, the output does not depend on it
_HARM_CHECKPOINT_EVERY = 120  #: segments between stored harmonic-drift states (random access)

# RNG streams (second element of every seed list)
_S_LOAD, _S_CT, _S_HARM, _S_HDRIFT, _S_FWALK, _S_FSTEP = 1, 2, 3, 4, 5, 6
_S_NOISE, _S_IMPULSE, _S_INTERF, _S_XTALK, _S_INIT = 7, 8, 9, 10, 11


@jit
def _biquad(b, a, x, scale, n_out):
    """scipy.signal.lfilter(b, a, concat(x, zeros) * scale) for a 2nd-order section with a[0] = 1
    (transposed direct form II, the same operations in the same order), ``n_out`` samples."""
    y = np.empty(n_out)
    z0 = 0.0
    z1 = 0.0
    for k in range(n_out):
        xn = x[k] * scale if k < x.shape[0] else 0.0
        yn = z0 + b[0] * xn
        z0 = z1 + xn * b[1] - yn * a[1]
        z1 = xn * b[2] - yn * a[2]
        y[k] = yn
    return y


def _u64(x: int) -> int:
    return int(x) % (1 << 64)


def phase_index(phase: int | str) -> int:
    """0, 1, 2 for phase ``"A"``/``"B"``/``"C"`` (or 0/1/2, returned as is)."""
    if isinstance(phase, str):
        p = phase.strip().upper()
        if p not in PHASES:
            raise ValueError(f"phase must be one of A, B, C, got {phase!r}")
        return PHASES.index(p)
    k = int(phase)
    if k not in (0, 1, 2):
        raise ValueError(f"phase must be 0, 1, 2 (A, B, C), got {phase!r}")
    return k


def input_index(bus: int, feeder: int, phase: int | str, feeders_per_bus: int) -> int:
    """Input index of a CT: ``((bus * feeders_per_bus) + feeder_in_bus) * 3 + phase``.

    ``feeder`` may be the global feeder number (``bus * feeders_per_bus <= feeder <
    (bus + 1) * feeders_per_bus``) or the number within the bus (``0 <= feeder <
    feeders_per_bus``); the two ranges only overlap on bus 0, where they agree.
    """
    bus, feeder, fpb = int(bus), int(feeder), int(feeders_per_bus)
    if bus < 0:
        raise ValueError(f"bus must be >= 0, got {bus}")
    if bus * fpb <= feeder < (bus + 1) * fpb:
        g = feeder
    elif 0 <= feeder < fpb:
        g = bus * fpb + feeder
    else:
        raise ValueError(
            f"feeder {feeder} is not on bus {bus} (global {bus * fpb}..{(bus + 1) * fpb - 1} "
            f"or within-bus 0..{fpb - 1})"
        )
    return g * 3 + phase_index(phase)


@dataclass(frozen=True)
class Layout:
    """Bus/feeder/phase arrangement of the CT inputs."""

    buses: int = 1
    feeders_per_bus: int = 4

    def __post_init__(self) -> None:
        if int(self.buses) < 1:
            raise ValueError(f"buses must be >= 1, got {self.buses}")
        if int(self.feeders_per_bus) < 1:
            raise ValueError(f"feeders_per_bus must be >= 1, got {self.feeders_per_bus}")

    @property
    def n_feeders(self) -> int:
        return self.buses * self.feeders_per_bus

    @property
    def n_inputs(self) -> int:
        return 3 * self.n_feeders

    @property
    def inputs(self) -> list[tuple[int, int, int]]:
        """``(bus, global feeder, phase)`` of every input, in input order."""
        return [(f // self.feeders_per_bus, f, p) for f in range(self.n_feeders) for p in range(3)]

    def input_index(self, bus: int, feeder: int, phase: int | str) -> int:
        """See :func:`input_index` (also checks the bus exists)."""
        if not 0 <= int(bus) < self.buses:
            raise ValueError(f"bus must be in 0..{self.buses - 1}, got {bus}")
        return input_index(bus, feeder, phase, self.feeders_per_bus)

    def bus_of_feeder(self, feeder: int) -> int:
        if not 0 <= int(feeder) < self.n_feeders:
            raise ValueError(f"feeder must be in 0..{self.n_feeders - 1}, got {feeder}")
        return int(feeder) // self.feeders_per_bus

    def bus_inputs(self, bus: int) -> slice:
        """Slice of the inputs of one bus (they are contiguous)."""
        w = 3 * self.feeders_per_bus
        return slice(bus * w, (bus + 1) * w)


@dataclass
class ChannelConfig:
    """Every knob of the background and of the injection paths. Units are in the names;
    ``*_db`` ranges are ``(min, max)`` drawn uniformly."""

    fs_hz: int = 48000
    grid_hz: float = 60.0
    load_factor_range: tuple[float, float] = (0.5, 1.0)  #: fundamental RMS per feeder
    ct_reversed_prob: float = 0.5  #: probability that an input's CT polarity is reversed (-1)
    # grid frequency
    freq_wander_hz: float = 0.05  #: bound of the random walk around nominal
    freq_walk_hz_per_sqrt_s: float = 0.003  #: random-walk step per sqrt(second)
    freq_steps_per_hour: float = 3.0  #: Poisson rate of frequency steps
    freq_step_hz: tuple[float, float] = (0.005, 0.020)  #: step size (random sign)
    freq_step_recovery_s: float = 60.0  #: exponential recovery time constant of a step
    # harmonics
    harmonic_max: int = 80
    harmonic_third_dbc: tuple[float, float] = (-20.0, -14.0)  #: drawn per phase
    harmonic_odd_dbc: tuple[tuple[int, float], ...] = ((5, -22.0), (7, -28.0), (9, -32.0), (11, -35.0), (13, -35.0))
    harmonic_decay_exponent: float = 1.2  #: amplitude ~ 1/h^x above the last tabulated one
    harmonic_even_below_odd_db: tuple[float, float] = (20.0, 30.0)
    harmonic_spread_db: float = 1.0  #: per-feeder random offset (std) of each harmonic
    harmonic_triplen_spread_db: float = 3.0  #: extra per-phase offset (std) of the triplens
    harmonic_amp_drift_per_sqrt_s: float = 0.005  #: log-amplitude random walk (0.5 %/sqrt(s))
    harmonic_amp_reversion_s: float = 600.0  #: mean reversion of the amplitude drift
    harmonic_phase_drift_rad_per_sqrt_s: float = 0.01
    # noise floor
    noise_floor_dbc: float = 85.0  #: full-band noise RMS this many dB under the fundamental RMS
    # switching transients
    impulse_rate_per_feeder_per_s: float = 0.05
    impulse_ring_hz: tuple[float, float] = (500.0, 5000.0)
    impulse_decay_s: tuple[float, float] = (0.5e-3, 5e-3)
    impulse_peak_db: tuple[float, float] = (20.0, 50.0)  #: peak over the noise RMS
    # narrowband interferers
    interferers: int = 3
    interferer_freq_hz: tuple[float, float] = (600.0, 3600.0)
    interferer_min_harmonic_distance_hz: float = 8.0
    interferer_snr_1hz_db: tuple[float, float] = (10.0, 30.0)  #: over the noise in a 1-Hz bin
    interferer_drift_hz: float = 2.0  #: peak frequency excursion
    interferer_drift_period_s: tuple[float, float] = (120.0, 600.0)
    # injections
    crosstalk_same_feeder_db: tuple[float, float] = (-20.0, -6.0)
    crosstalk_other_feeder_db: tuple[float, float] = (-40.0, -20.0)
    injection_tail_s: float = 0.010  #: zeros appended so the transformer filter rings out
    # switches (for tests and debugging)
    enable_fundamental: bool = True
    enable_harmonics: bool = True
    enable_noise: bool = True
    enable_impulses: bool = True
    enable_interferers: bool = True

    def validate(self) -> None:
        """Raise ValueError naming the first bad field."""

        def rng_ok(name: str, lo_lim: float | None = None, hi_lim: float | None = None) -> None:
            lo, hi = getattr(self, name)
            if not lo <= hi:
                raise ValueError(f"{name}: min {lo} > max {hi}")
            if lo_lim is not None and lo < lo_lim:
                raise ValueError(f"{name}: must be >= {lo_lim}, got {lo}")
            if hi_lim is not None and hi > hi_lim:
                raise ValueError(f"{name}: must be <= {hi_lim}, got {hi}")

        if int(self.fs_hz) != self.fs_hz or self.fs_hz < 1000:
            raise ValueError(f"fs_hz: must be an integer >= 1000, got {self.fs_hz}")
        if not 0 < self.grid_hz < self.fs_hz / 4:
            raise ValueError(f"grid_hz: must be in (0, fs/4), got {self.grid_hz}")
        rng_ok("load_factor_range", 0.0)
        if not 0.0 <= self.ct_reversed_prob <= 1.0:
            raise ValueError(f"ct_reversed_prob: must be in [0, 1], got {self.ct_reversed_prob}")
        for name in (
            "freq_wander_hz",
            "freq_walk_hz_per_sqrt_s",
            "freq_steps_per_hour",
            "harmonic_spread_db",
            "harmonic_triplen_spread_db",
            "harmonic_amp_drift_per_sqrt_s",
            "harmonic_phase_drift_rad_per_sqrt_s",
            "impulse_rate_per_feeder_per_s",
            "interferer_drift_hz",
            "injection_tail_s",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: must be >= 0, got {getattr(self, name)}")
        if self.freq_wander_hz >= self.grid_hz / 10:
            raise ValueError(f"freq_wander_hz: must be < grid_hz/10, got {self.freq_wander_hz}")
        rng_ok("freq_step_hz", 0.0)
        if self.freq_step_recovery_s <= 0:
            raise ValueError("freq_step_recovery_s: must be > 0")
        if self.harmonic_max < 1:
            raise ValueError(f"harmonic_max: must be >= 1, got {self.harmonic_max}")
        rng_ok("harmonic_third_dbc", hi_lim=0.0)
        rng_ok("harmonic_even_below_odd_db", 0.0)
        if self.harmonic_amp_reversion_s <= 0:
            raise ValueError("harmonic_amp_reversion_s: must be > 0")
        if not 20.0 <= self.noise_floor_dbc <= 200.0:
            raise ValueError(f"noise_floor_dbc: must be in [20, 200], got {self.noise_floor_dbc}")
        rng_ok("impulse_ring_hz", 1.0, self.fs_hz / 2)
        rng_ok("impulse_decay_s", 1e-5, 0.1)
        rng_ok("impulse_peak_db")
        if self.interferers < 0:
            raise ValueError(f"interferers: must be >= 0, got {self.interferers}")
        rng_ok("interferer_freq_hz", 1.0, self.fs_hz / 2)
        rng_ok("interferer_snr_1hz_db")
        rng_ok("interferer_drift_period_s", 1.0)
        rng_ok("crosstalk_same_feeder_db", hi_lim=0.0)
        rng_ok("crosstalk_other_feeder_db", hi_lim=0.0)

    @property
    def noise_ratio(self) -> float:
        """Noise RMS / fundamental RMS (linear)."""
        return 10.0 ** (-self.noise_floor_dbc / 20.0)


def harmonic_profile_dbc(
    config: ChannelConfig, third_dbc: float | None = None, even_below_db: float | None = None
) -> np.ndarray:
    """Nominal level (dB under the fundamental) of harmonics 1..``harmonic_max``, index h-1.

    Odd: tabulated (``harmonic_third_dbc`` mid-range unless ``third_dbc`` is given, then
    ``harmonic_odd_dbc``), above the last tabulated one decaying as 1/h^``harmonic_decay_exponent``.
    Even: mean (in dB) of the odd neighbours (only the 3rd for h = 2) minus ``even_below_db``
    (mid-range of ``harmonic_even_below_odd_db`` by default).
    """
    hmax = config.harmonic_max
    table = {3: float(np.mean(config.harmonic_third_dbc)) if third_dbc is None else third_dbc}
    table.update({int(h): float(v) for h, v in config.harmonic_odd_dbc})
    last_h = max(table)

    def odd(h: int) -> float:
        if h in table:
            return table[h]
        if h < last_h:  # an untabulated odd harmonic below the last tabulated one: interpolate
            lo = max(k for k in table if k < h)
            hi = min(k for k in table if k > h)
            return table[lo] + (table[hi] - table[lo]) * (h - lo) / (hi - lo)
        return table[last_h] - 20.0 * config.harmonic_decay_exponent * math.log10(h / last_h)

    below = float(np.mean(config.harmonic_even_below_odd_db)) if even_below_db is None else even_below_db
    out = np.zeros(hmax)
    for h in range(2, hmax + 1):
        if h % 2:
            out[h - 1] = odd(h)
        else:
            nb = [odd(h + 1)] if h == 2 else [odd(h - 1), odd(h + 1)]
            out[h - 1] = float(np.mean(nb)) - below
    return out


@dataclass
class Injection:
    """One transmitted burst, as current at the hub (LV side), already modulated.

    ``samples`` should have unit RMS (``dsp.tx.modulator.modulate`` with amplitude 1): the channel
    multiplies it by ``fundamental_rms[input] * 10**(level_db/20)`` before the transformer filter,
    so ``level_db`` is the in-passband RMS level at the true input relative to that input's
    fundamental RMS. ``feeder`` is global (or within-bus, see :func:`input_index`).
    """

    start_sample: int
    samples: np.ndarray
    bus: int
    feeder: int
    phase: int
    level_db: float
    cutoff_hz: float
    crosstalk_seed: int
    _prepared: tuple | None = field(default=None, init=False, repr=False, compare=False)


@dataclass
class _HarmState:
    k: int
    log_amp: np.ndarray  # (H, I) log-amplitude deviation
    phase_rad: np.ndarray  # (H, I) phase deviation


class SubstationChannel:
    """Background of every CT input plus injected bursts; see the module docstring.

    Attributes fixed by the seed: ``load_factor`` (per feeder), ``fundamental_rms`` and
    ``noise_rms`` (per input), ``ct_polarity`` (per input, +-1), ``interferers`` (list of dicts),
    ``harmonics`` (the harmonic orders rendered).
    """

    def __init__(self, config: ChannelConfig | None = None, layout: Layout | None = None, seed: int = 0):
        self.config = config if config is not None else ChannelConfig()
        self.config.validate()
        self.layout = layout if layout is not None else Layout()
        self.seed = _u64(seed)
        cfg = self.config
        self.fs_hz = int(cfg.fs_hz)
        self.segment_samples = int(round(self.fs_hz * SEGMENT_S))
        self.n_inputs = self.layout.n_inputs
        nf, ni = self.layout.n_feeders, self.n_inputs

        self.load_factor = np.array([self._rng(_S_LOAD, f).uniform(*cfg.load_factor_range) for f in range(nf)])
        self.fundamental_rms = np.repeat(self.load_factor, 3)
        self.noise_rms = self.fundamental_rms * cfg.noise_ratio
        self.ct_polarity = np.array(
            [-1 if self._rng(_S_CT, i).random() < cfg.ct_reversed_prob else 1 for i in range(ni)], dtype=np.int64
        )

        # harmonic orders that stay well under Nyquist
        hmax = min(cfg.harmonic_max, int(0.45 * self.fs_hz / (1.01 * cfg.grid_hz)))
        hmax = hmax if cfg.enable_harmonics else 1
        self.harmonics = np.arange(1, max(hmax, 1) + 1)
        self._amp_ref, self._phase_ref = self._harmonic_reference()
        if not cfg.enable_fundamental:
            self._amp_ref[0] = 0.0

        init = self._rng(_S_INIT)
        self._theta: list[float] = [float(init.uniform(0.0, 2.0 * math.pi))]
        self._walk: list[float] = [float(init.uniform(-0.5, 0.5) * cfg.freq_wander_hz)]
        self._step_cache: dict[int, list[tuple[int, float]]] = {}
        self._freq_cache: dict[int, np.ndarray] = {}
        self._decay: np.ndarray | None = None  # exp(-n / (fs * recovery)) over one segment

        h = self.harmonics.size
        zero = _HarmState(0, np.zeros((h, ni)), np.zeros((h, ni)))
        self._hs = zero
        self._hs_prev: _HarmState | None = None
        self._hs_checkpoints = {0: zero}

        self.interferers = self._make_interferers()
        self._seg_cache: dict[int, np.ndarray] = {}
        self._table_cache: dict[int, np.ndarray] = {}
        self._impulse_cache: dict[int, list[dict]] = {}
        self._xtalk_cache: dict[tuple[int, int], np.ndarray] = {}

    # ------------------------------------------------------------------------------ helpers
    def _rng(self, stream: int, *keys: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, stream, *(_u64(k) for k in keys)])

    def input_index(self, bus: int, feeder: int, phase: int | str) -> int:
        return self.layout.input_index(bus, feeder, phase)

    def _harmonic_reference(self) -> tuple[np.ndarray, np.ndarray]:
        """Peak amplitude and phase (H, I) of every harmonic at zero drift."""
        cfg = self.config
        hs = self.harmonics
        nh, ni = hs.size, self.n_inputs
        amp = np.zeros((nh, ni))
        ph = np.zeros((nh, ni))
        triplen = hs % 3 == 0
        full = harmonic_profile_dbc(cfg, even_below_db=0.0)[:nh]  # odd levels; evens added below
        hd = cfg.harmonic_max  # draw for every configured order: the values do not depend on fs
        for f in range(self.layout.n_feeders):
            r = self._rng(_S_HARM, f)
            even_below = r.uniform(*cfg.harmonic_even_below_odd_db, size=hd)[:nh]
            feeder_off = r.normal(0.0, cfg.harmonic_spread_db, size=hd)[:nh]
            feeder_phase = r.uniform(0.0, 2.0 * math.pi, size=hd)[:nh]
            for p in range(3):
                i = 3 * f + p
                third = r.uniform(*cfg.harmonic_third_dbc)
                phase_off = r.normal(0.0, 0.5, size=hd)[:nh]  # small per-phase unbalance (dB)
                trip_off = r.normal(0.0, cfg.harmonic_triplen_spread_db, size=hd)[:nh]
                jitter = r.normal(0.0, 0.05, size=hd)[:nh]  # rad
                db = full.copy()
                if nh >= 3:
                    db[2] = third
                if nh >= 2:  # 2nd harmonic follows this phase's 3rd
                    db[1] = third
                db = db - np.where(hs % 2 == 0, even_below, 0.0)
                db = db + feeder_off + np.where(triplen, trip_off, phase_off)
                db[0] = 0.0
                amp[:, i] = math.sqrt(2.0) * self.fundamental_rms[i] * 10.0 ** (db / 20.0)
                ph[:, i] = hs * PHASE_ANGLE_RAD[p] + np.where(hs > 1, feeder_phase + jitter, 0.0)
        return amp, ph

    def _make_interferers(self) -> list[dict]:
        cfg = self.config
        out: list[dict] = []
        if not cfg.enable_interferers or cfg.interferers == 0:
            return out
        r = self._rng(_S_INTERF)
        lo, hi = cfg.interferer_freq_hz
        for _ in range(cfg.interferers):
            for _try in range(1000):
                f = float(r.uniform(lo, hi))
                d = abs(f - round(f / cfg.grid_hz) * cfg.grid_hz)
                if d >= cfg.interferer_min_harmonic_distance_hz + cfg.interferer_drift_hz:
                    break
            snr_db = float(r.uniform(*cfg.interferer_snr_1hz_db))
            n_sub = int(r.integers(1, self.n_inputs + 1))
            subset = np.sort(r.choice(self.n_inputs, size=n_sub, replace=False))
            gains = np.zeros(self.n_inputs, dtype=np.complex128)
            # tone RMS = noise RMS * sqrt(10^(snr/10) * 1 Hz / (fs/2)); peak = sqrt(2) * RMS
            ratio = math.sqrt(10.0 ** (snr_db / 10.0) / (self.fs_hz / 2.0))
            mag = r.uniform(0.5, 1.0, size=n_sub) * math.sqrt(2.0) * ratio * self.noise_rms[subset]
            gains[subset] = mag * np.exp(1j * r.uniform(0.0, 2.0 * math.pi, size=n_sub))
            out.append(
                dict(
                    freq_hz=f,
                    snr_1hz_db=snr_db,
                    inputs=subset.tolist(),
                    drift_hz=float(r.uniform(0.5, 1.0) * cfg.interferer_drift_hz),
                    drift_period_s=float(r.uniform(*cfg.interferer_drift_period_s)),
                    drift_phase_rad=float(r.uniform(0.0, 2.0 * math.pi)),
                    phase0_rad=float(r.uniform(0.0, 2.0 * math.pi)),
                    gains=gains,
                )
            )
        return out

    # ---------------------------------------------------------------------- grid frequency
    def _step_events(self, k: int) -> list[tuple[int, float]]:
        """Frequency steps starting in segment k: (absolute sample, step in Hz)."""
        ev = self._step_cache.get(k)
        if ev is None:
            cfg = self.config
            r = self._rng(_S_FSTEP, k)
            n = int(r.poisson(cfg.freq_steps_per_hour / 3600.0 * SEGMENT_S))
            ev = []
            for _ in range(n):
                at = k * self.segment_samples + int(r.integers(0, self.segment_samples))
                a = float(r.uniform(*cfg.freq_step_hz)) * (1.0 if r.random() < 0.5 else -1.0)
                ev.append((at, a))
            self._step_cache[k] = ev
        return ev

    def _steps_hz(self, k: int) -> np.ndarray | None:
        """Step component of the frequency over segment k (None when zero)."""
        cfg = self.config
        if cfg.freq_steps_per_hour <= 0:
            return None
        n_seg = self.segment_samples
        tau = cfg.freq_step_recovery_s
        span = int(math.ceil(10.0 * tau / SEGMENT_S)) + 1
        s0 = k * n_seg
        out = None
        for j in range(max(0, k - span), k + 1):
            for at, a in self._step_events(j):
                if at >= s0 + n_seg or (s0 - at) / self.fs_hz > 10.0 * tau:
                    continue
                if self._decay is None:
                    self._decay = np.exp(-np.arange(n_seg) / (self.fs_hz * tau))
                if at <= s0:  # started before this segment: a scaled copy of the decay ramp
                    c = (a * math.exp(-(s0 - at) / (self.fs_hz * tau))) * self._decay
                else:
                    c = np.zeros(n_seg)
                    c[at - s0 :] = a * self._decay[: n_seg - (at - s0)]
                out = c if out is None else out + c
        return out

    def _extend_walk(self, k: int) -> None:
        """Random-walk values at the segment boundaries 0 .. k+1 (reflected at +-wander)."""
        cfg = self.config
        w = cfg.freq_wander_hz
        sigma = cfg.freq_walk_hz_per_sqrt_s * math.sqrt(SEGMENT_S)
        while len(self._walk) < k + 2:
            j = len(self._walk) - 1
            x = self._walk[j] + sigma * float(self._rng(_S_FWALK, j).standard_normal())
            if x > w:
                x = 2 * w - x
            if x < -w:
                x = -2 * w - x
            self._walk.append(min(max(x, -w), w))

    def _ensure_freq(self, k: int) -> None:
        """Walk values up to segment k+1 and the phase at the start of segments 0 .. k."""
        self._extend_walk(k)
        while len(self._theta) < k + 1:
            j = len(self._theta) - 1
            f = self._segment_freq_hz(j)
            self._theta.append(
                float((self._theta[j] + 2.0 * math.pi * float(np.sum(f)) / self.fs_hz) % (2.0 * math.pi))
            )

    def _segment_freq_hz(self, k: int) -> np.ndarray:
        """Grid frequency over segment k: walk interpolated linearly between the segment
        boundaries, plus the step component."""
        f = self._freq_cache.get(k)
        if f is not None:
            return f
        self._extend_walk(k)
        n = self.segment_samples
        w0, w1 = self._walk[k], self._walk[k + 1]
        f = self.config.grid_hz + w0 + (w1 - w0) * (np.arange(n) / n)
        st = self._steps_hz(k)
        if st is not None:
            f = f + st
        if len(self._freq_cache) > 4:
            self._freq_cache.pop(min(self._freq_cache))
        self._freq_cache[k] = f
        return f

    def _segment_theta(self, k: int) -> np.ndarray:
        """Fundamental phase (rad) over segment k: theta[n] = theta_k + 2 pi/fs sum_{m<n} f[m]."""
        self._ensure_freq(k)
        f = self._segment_freq_hz(k)
        c = np.cumsum(f)
        c -= f
        return self._theta[k] + (2.0 * math.pi / self.fs_hz) * c

    def _per_segment(self, start_sample: int, n: int, fn) -> np.ndarray:
        out = np.empty(n)
        pos, end = int(start_sample), int(start_sample) + int(n)
        if start_sample < 0:
            raise ValueError(f"start_sample must be >= 0, got {start_sample}")
        while pos < end:
            k = pos // self.segment_samples
            a = pos - k * self.segment_samples
            b = min(self.segment_samples, end - k * self.segment_samples)
            out[pos - start_sample : pos - start_sample + b - a] = fn(k)[a:b]
            pos += b - a
        return out

    def grid_frequency(self, start_sample: int, n: int) -> np.ndarray:
        """True instantaneous grid frequency (Hz) at samples start_sample .. +n-1."""
        return self._per_segment(start_sample, n, self._segment_freq_hz)

    def frequency_components(self, start_sample: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(bounded walk, step component) of the frequency deviation, Hz; their sum plus
        ``grid_hz`` is :meth:`grid_frequency`."""

        def walk(k: int) -> np.ndarray:
            self._extend_walk(k)
            m = self.segment_samples
            w0, w1 = self._walk[k], self._walk[k + 1]
            return w0 + (w1 - w0) * (np.arange(m) / m)

        def steps(k: int) -> np.ndarray:
            st = self._steps_hz(k)
            return np.zeros(self.segment_samples) if st is None else st

        return self._per_segment(start_sample, n, walk), self._per_segment(start_sample, n, steps)

    def grid_phase_rad(self, start_sample: int, n: int) -> np.ndarray:
        """Phase theta(t) of the fundamental on phase A (before CT polarity), radians,
        wrapped to [0, 2 pi) at every segment start (continuous within a segment)."""
        return self._per_segment(start_sample, n, self._segment_theta)

    # -------------------------------------------------------------------- harmonic drift
    def _advance_harm(self, s: _HarmState) -> _HarmState:
        cfg = self.config
        nh = self.harmonics.size
        if nh <= 1 or (cfg.harmonic_amp_drift_per_sqrt_s == 0 and cfg.harmonic_phase_drift_rad_per_sqrt_s == 0):
            return _HarmState(s.k + 1, s.log_amp, s.phase_rad)
        # one generator a segment, drawn for every configured order so the values do not depend on fs
        draws = self._rng(_S_HDRIFT, s.k).standard_normal((self.n_inputs, 2, cfg.harmonic_max))
        eps = np.ascontiguousarray(draws[:, :, :nh].transpose(1, 2, 0))  # (2, H, I)
        eps[:, 0, :] = 0.0  # the fundamental does not drift
        rho = SEGMENT_S / cfg.harmonic_amp_reversion_s
        sq = math.sqrt(SEGMENT_S)
        la = s.log_amp * (1.0 - rho) + cfg.harmonic_amp_drift_per_sqrt_s * sq * eps[0]
        ph = s.phase_rad + cfg.harmonic_phase_drift_rad_per_sqrt_s * sq * eps[1]
        return _HarmState(s.k + 1, la, ph)

    def _harm_state(self, k: int) -> _HarmState:
        if self._hs.k == k:
            return self._hs
        if self._hs_prev is not None and self._hs_prev.k == k:
            return self._hs_prev
        if k < self._hs.k:
            c = max(j for j in self._hs_checkpoints if j <= k)
            self._hs, self._hs_prev = self._hs_checkpoints[c], None
        while self._hs.k < k:
            nxt = self._advance_harm(self._hs)
            self._hs_prev, self._hs = self._hs, nxt
            if nxt.k % _HARM_CHECKPOINT_EVERY == 0:
                self._hs_checkpoints.setdefault(nxt.k, nxt)
        return self._hs

    def _coeffs(self, s: _HarmState) -> np.ndarray:
        """Complex harmonic coefficients C (H, I): term = Re{C_h z^h}, z = exp(j theta)."""
        return self._amp_ref * np.exp(s.log_amp) * np.exp(1j * (self._phase_ref + s.phase_rad))

    # ------------------------------------------------------------------------ background
    def _table(self, k: int) -> np.ndarray:
        """Harmonic table (gridsim.background) of drift state k, CT polarity applied; the last
        three are kept (segment k uses states k and k + 1)."""
        tab = self._table_cache.get(k)
        if tab is None:
            if self.config.enable_fundamental or self.config.enable_harmonics:
                tab = background.harmonic_table(self._coeffs(self._harm_state(k)), self.ct_polarity)
            else:
                tab = np.zeros((background.TABLE_SIZE + 1, self.n_inputs))
            if len(self._table_cache) >= 3:
                self._table_cache.pop(min(self._table_cache))
            self._table_cache[k] = tab
        return tab

    def _segment(self, k: int) -> np.ndarray:
        """Background of segment k, (segment_samples, n_inputs), CT polarity applied: harmonics,
        noise and interferers in one pass (gridsim.background), then the transients."""
        seg = self._seg_cache.get(k)
        if seg is not None:
            return seg
        cfg = self.config
        n = self.segment_samples
        pol = self.ct_polarity.astype(np.float64)
        noise_sd = self.noise_rms * pol if cfg.enable_noise else np.zeros(self.n_inputs)
        tones = np.array(
            [
                (it["freq_hz"], it["drift_hz"], it["drift_period_s"], it["drift_phase_rad"], it["phase0_rad"])
                for it in self.interferers
            ]
        ).reshape(-1, 5)
        gains = np.array([it["gains"] * pol for it in self.interferers]).reshape(-1, self.n_inputs)
        seg = background.render_background(
            self._segment_theta(k),
            self._table(k),
            self._table(k + 1),
            noise_sd,
            background.noise_seed(self.seed, _S_NOISE, k),
            k * n / self.fs_hz,
            self.fs_hz,
            tones,
            gains,
        )
        if cfg.enable_impulses and cfg.impulse_rate_per_feeder_per_s > 0:
            for j in (k - 1, k):
                if j >= 0:
                    for ev in self._impulse_events(j):
                        self._add_impulse(ev, k, seg)
        if len(self._seg_cache) >= 2:
            self._seg_cache.pop(min(self._seg_cache))
        self._seg_cache[k] = seg
        return seg

    def _impulse_events(self, k: int) -> list[dict]:
        """Switching transients starting in segment k (cached: segments k and k + 1 both ask)."""
        evs = self._impulse_cache.get(k)
        if evs is None:
            evs = self._draw_impulse_events(k)
            if len(self._impulse_cache) >= 3:
                self._impulse_cache.pop(min(self._impulse_cache))
            self._impulse_cache[k] = evs
        return evs

    def _draw_impulse_events(self, k: int) -> list[dict]:
        cfg = self.config
        evs = []
        n_seg = self.segment_samples
        for f in range(self.layout.n_feeders):
            r = self._rng(_S_IMPULSE, k, f)
            for _ in range(int(r.poisson(cfg.impulse_rate_per_feeder_per_s * SEGMENT_S))):
                lo, hi = cfg.impulse_decay_s
                evs.append(
                    dict(
                        start_sample=k * n_seg + int(r.integers(0, n_seg)),
                        feeder=f,
                        ring_hz=float(r.uniform(*cfg.impulse_ring_hz)),
                        decay_s=float(math.exp(r.uniform(math.log(lo), math.log(hi)))),
                        peak_db=float(r.uniform(*cfg.impulse_peak_db)),
                        phase_rad=float(r.uniform(0.0, 2.0 * math.pi)),
                        gains=(r.uniform(0.3, 1.0, size=3) * r.choice([-1.0, 1.0], size=3)).tolist(),
                    )
                )
        return evs

    def impulse_events(self, start_sample: int, n: int) -> list[dict]:
        """Switching transients starting in [start_sample, start_sample + n) (for ground truth)."""
        if not (self.config.enable_impulses and self.config.impulse_rate_per_feeder_per_s > 0):
            return []
        k0, k1 = start_sample // self.segment_samples, (start_sample + n - 1) // self.segment_samples
        return [
            e
            for k in range(k0, k1 + 1)
            for e in self._impulse_events(k)
            if start_sample <= e["start_sample"] < start_sample + n
        ]

    def _add_impulse(self, ev: dict, k: int, seg: np.ndarray) -> None:
        length = int(math.ceil(10.0 * ev["decay_s"] * self.fs_hz))
        s0 = k * self.segment_samples
        a = max(ev["start_sample"], s0)
        b = min(ev["start_sample"] + length, s0 + self.segment_samples)
        if a >= b:
            return
        t_full = np.arange(length) / self.fs_hz
        wave = np.exp(-t_full / ev["decay_s"]) * np.sin(2.0 * math.pi * ev["ring_hz"] * t_full + ev["phase_rad"])
        wave /= np.max(np.abs(wave))
        wave = wave[a - ev["start_sample"] : b - ev["start_sample"]]
        peak = 10.0 ** (ev["peak_db"] / 20.0)
        f = ev["feeder"]
        cols = slice(3 * f, 3 * f + 3)
        g = np.asarray(ev["gains"]) * peak * self.noise_rms[cols] * self.ct_polarity[cols]
        seg[a - s0 : b - s0, cols] += np.outer(wave, g)

    # -------------------------------------------------------------------------- injections
    def _true_input(self, inj: Injection) -> int:
        return self.layout.input_index(inj.bus, inj.feeder, inj.phase)

    def injection_scale(self, inj: Injection) -> float:
        """Linear factor applied to ``inj.samples`` on its true input (before the transformer
        filter and the CT polarity): ``fundamental_rms * 10**(level_db / 20)``."""
        return float(self.fundamental_rms[self._true_input(inj)] * 10.0 ** (inj.level_db / 20.0))

    def crosstalk_gains(self, inj: Injection) -> np.ndarray:
        """Signed linear gain (n_inputs,) of ``inj`` onto every input, relative to its level on
        the true input, as it appears in the capture (CT polarity included): the true input gets
        ``ct_polarity``, the two other phases of the feeder +-U(crosstalk_same_feeder_db), the other
        feeders of the bus +-U(crosstalk_other_feeder_db), other buses 0."""
        cfg = self.config
        true = self._true_input(inj)
        key = (int(inj.crosstalk_seed), true)
        cached = self._xtalk_cache.get(key)
        if cached is not None:  # the simulator asks twice a burst (truth, then rendering)
            return cached.copy()
        f_true = true // 3
        bus = f_true // self.layout.feeders_per_bus
        r = self._rng(_S_XTALK, inj.crosstalk_seed)
        u = r.random(self.n_inputs)
        sign = np.where(r.random(self.n_inputs) < 0.5, -1.0, 1.0)
        g = np.zeros(self.n_inputs)
        for i in range(self.n_inputs)[self.layout.bus_inputs(bus)]:
            if i == true:
                continue
            lo, hi = cfg.crosstalk_same_feeder_db if i // 3 == f_true else cfg.crosstalk_other_feeder_db
            g[i] = sign[i] * 10.0 ** ((lo + (hi - lo) * u[i]) / 20.0)
        g[true] = 1.0
        g = g * self.ct_polarity
        if len(self._xtalk_cache) >= 256:
            self._xtalk_cache.pop(next(iter(self._xtalk_cache)))
        self._xtalk_cache[key] = g
        return g.copy()

    def _prepare(self, inj: Injection) -> tuple[np.ndarray, np.ndarray, slice]:
        """(received waveform with tail, gains over the bus, bus slice); cached on ``inj``."""
        key = (
            id(inj.samples),
            np.shape(inj.samples),
            float(inj.level_db),
            float(inj.cutoff_hz),
            inj.bus,
            inj.feeder,
            inj.phase,
            inj.crosstalk_seed,
            self.fs_hz,
            self.seed,
        )
        if inj._prepared is not None and inj._prepared[0] == key:
            return inj._prepared[1]
        x = np.asarray(inj.samples, dtype=np.float64)
        if x.ndim != 1:
            raise ValueError(f"injection samples must be one-dimensional, got shape {x.shape}")
        if not 0.0 < inj.cutoff_hz < self.fs_hz / 2:
            raise ValueError(f"cutoff_hz must be in (0, {self.fs_hz / 2}), got {inj.cutoff_hz}")
        tail = int(round(self.config.injection_tail_s * self.fs_hz))
        b, a = signal.butter(2, inj.cutoff_hz, btype="low", fs=self.fs_hz)
        y = _biquad(b / a[0], a / a[0], x, self.injection_scale(inj), x.size + tail)
        true = self._true_input(inj)
        sl = self.layout.bus_inputs(true // 3 // self.layout.feeders_per_bus)
        g = self.crosstalk_gains(inj)[sl]
        res = (y, g, sl)
        inj._prepared = (key, res)
        return res

    def render(self, start_sample: int, n: int, injections: Sequence[Injection] = ()) -> np.ndarray:
        """Capture samples ``start_sample .. start_sample + n - 1``: (n, n_inputs) float64.

        Injections may start before or end after the block (only the overlap is added).
        """
        start_sample, n = int(start_sample), int(n)
        if start_sample < 0 or n < 0:
            raise ValueError(f"start_sample and n must be >= 0, got {start_sample}, {n}")
        pos, end = start_sample, start_sample + n
        seg_n = self.segment_samples
        if n == seg_n and start_sample % seg_n == 0:  # a whole segment: hand it over, no copy
            k = start_sample // seg_n
            out = self._segment(k)
            self._seg_cache.pop(k, None)
        else:
            out = np.empty((n, self.n_inputs))
            while pos < end:
                k = pos // seg_n
                a = pos - k * seg_n
                b = min(seg_n, end - k * seg_n)
                out[pos - start_sample : pos - start_sample + b - a] = self._segment(k)[a:b]
                pos += b - a
        # the bursts overlapping the block as a matrix product: out += Y G, Y (n, bursts) the
        # received waveforms, G (bursts, inputs) their gains (a numba loop over rows, bursts and
        # the bus's columns took 4x as long)
        cols: list[tuple[np.ndarray, int, int, np.ndarray, slice]] = []
        for inj in injections:
            s0 = int(inj.start_sample)
            length = len(inj.samples) + int(round(self.config.injection_tail_s * self.fs_hz))
            a, b = max(s0, start_sample), min(s0 + length, end)
            if a >= b:
                continue
            y, g, sl = self._prepare(inj)
            cols.append((y[a - s0 : b - s0], a - start_sample, b - start_sample, g, sl))
        # a burst reaches only its own bus: one product per bus, on that bus's columns
        for bus in range(self.layout.buses):
            sl = self.layout.bus_inputs(bus)
            mine = [c for c in cols if c[4] == sl]
            if mine:
                ys = np.zeros((n, len(mine)))
                gs = np.empty((len(mine), sl.stop - sl.start))
                for j, (y, a, b, g, _) in enumerate(mine):
                    ys[a:b, j] = y
                    gs[j] = g
                out[:, sl] += ys @ gs
        return out

    def describe(self) -> dict:
        """JSON-friendly summary of the seeded draws (for the capture's ground truth)."""
        return dict(
            seed=self.seed,
            fs_hz=self.fs_hz,
            grid_hz=self.config.grid_hz,
            load_factor=self.load_factor.tolist(),
            ct_polarity=self.ct_polarity.tolist(),
            noise_floor_dbc=self.config.noise_floor_dbc,
            interferers=[
                {k: v for k, v in it.items() if k != "gains"}
                | {"gains_abs": np.abs(it["gains"][it["inputs"]]).tolist()}
                for it in self.interferers
            ],
            config={f.name: getattr(self.config, f.name) for f in fields(self.config)},
        )
