"""The CT-loop background of one segment in one pass: fundamental + harmonics, noise floor, tones.

Why this module: the straightforward evaluation (every harmonic h = 1..80 of every input as
``Re{C_h(u) z^h}`` at every sample, z = exp(j theta)) costs ~550 M multiply-adds per second of a
36-input capture, and numpy's normal generator another ~10 ns a sample; together they held the
simulator near 6x real time. The arithmetic here is different, the model the same:

* **Harmonics by periodic table.** Within a segment an input's harmonic sum is
  ``P0(theta) (1 - u) + P1(theta) u`` with ``P(phi) = sum_h Re{C_h e^{j h phi}}`` periodic in the
  fundamental phase and C the drift states at the segment's two ends (u = fraction of the
  segment), exactly the linear interpolation of the coefficients the channel models. P is
  tabulated once per drift state at ``TABLE_SIZE`` points per period (one inverse FFT per state,
  shared by the two segments it bounds) and read by linear interpolation in phase. The
  interpolation's error is periodic in theta too: for harmonic h the images sit at
  (m L +- h) f0 at (h / (m L))^2 of its amplitude, < -135 dBc for every harmonic (the 80th, at
  -54 dBc, gives -140 dBc), under the noise in a 1-Hz bin (-128.8 dBc at 48 kHz). Frequency
  drift, harmonic drift, levels and phases are those of the exact sum
  (tests/test_gridsim_background.py compares the two).
* **Noise by Ziggurat.** The normal deviates come from the Marsaglia-Tsang Ziggurat (256 layers,
  numpy's 64-bit layout: 8 bits of layer, 1 of sign, 52 of abscissa) driven by SplitMix64, one
  stream per segment seeded from ``SeedSequence([seed, stream, segment])``, drawn in sample-major
  order. SplitMix64 passes BigCrush; the Ziggurat is exact (tests check moments, tails, a KS test).
* **Tones by rotation.** Each interferer's phasor is evaluated exactly every ``_TONE_BLOCK`` samples
  and rotated by its instantaneous frequency in between (the drift of the frequency over a block
  moves the phase by < 1e-6 rad).

Output is sample-major ``(n, n_inputs)`` (as the capture is written), CT polarity applied.
"""

from __future__ import annotations

import math

import numpy as np

from dsp.numba_settings import jit

__all__ = ["TABLE_SIZE", "harmonic_table", "noise_seed", "render_background", "standard_normal"]

TABLE_SIZE = 8192  #: table points per fundamental period (a power of two)
_TONE_BLOCK = 32  #: samples between exact evaluations of an interferer's phasor

# Ziggurat (Marsaglia & Tsang 2000) with 256 layers: x_255 = R the base layer's edge, V the area
_ZIG_R = 3.6541528853610088
_ZIG_V = 4.92867323399e-3
_M52 = float(1 << 52)


def _ziggurat_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ki, wi, fi): acceptance thresholds (52-bit scale), widths / 2^52, densities."""
    ki = np.zeros(256, dtype=np.int64)
    wi = np.zeros(256)
    fi = np.zeros(256)
    dn = tn = _ZIG_R
    q = _ZIG_V / math.exp(-0.5 * dn * dn)
    ki[0] = int(dn / q * _M52)
    ki[1] = 0
    wi[0] = q / _M52
    wi[255] = dn / _M52
    fi[0] = 1.0
    fi[255] = math.exp(-0.5 * dn * dn)
    for i in range(254, 0, -1):
        dn = math.sqrt(-2.0 * math.log(_ZIG_V / dn + math.exp(-0.5 * dn * dn)))
        ki[i + 1] = int(dn / tn * _M52)
        tn = dn
        fi[i] = math.exp(-0.5 * dn * dn)
        wi[i] = dn / _M52
    return ki, wi, fi


_KI, _WI, _FI = _ziggurat_tables()


@jit
def _splitmix64(s):
    """SplitMix64 (Steele, Lea, Flood 2014): (next state, 64 random bits). State by value, so
    the kernels keep it in a register."""
    s = s + np.uint64(0x9E3779B97F4A7C15)
    z = (s ^ (s >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return s, z ^ (z >> np.uint64(31))


@jit
def _uniform(s):
    """(next state, uniform in [0, 1) with 53 random bits)."""
    s, r = _splitmix64(s)
    return s, np.float64(r >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@jit
def _fill_normal(s, out, ki, wi, fi):
    """out[:] = standard normal deviates (Ziggurat; ~98.5 % of draws take the first exit); returns
    the next state. One loop with breaks, the state by value: LLVM keeps it in a register (a
    per-deviate function with returns in loops ran 3x slower)."""
    for k in range(out.shape[0]):
        while True:
            s, r = _splitmix64(s)
            idx = np.int64(r & np.uint64(0xFF))
            rabs = np.int64(r >> np.uint64(12))  # 52 bits
            neg = (r & np.uint64(0x100)) != np.uint64(0)
            x = rabs * wi[idx]
            if rabs < ki[idx]:
                break
            if idx == 0:  # the tail beyond R (Marsaglia 1964)
                while True:
                    s, u1 = _uniform(s)
                    s, u2 = _uniform(s)
                    xx = -math.log1p(-u1) / _ZIG_R
                    yy = -math.log1p(-u2)
                    if yy + yy > xx * xx:
                        break
                x = _ZIG_R + xx
                break
            s, u = _uniform(s)
            if (fi[idx - 1] - fi[idx]) * u + fi[idx] < math.exp(-0.5 * x * x):
                break
        out[k] = -x if neg else x
    return s


def standard_normal(seed_state: int, n: int) -> np.ndarray:
    """``n`` standard normal deviates of the stream that starts at ``seed_state`` (for tests)."""
    out = np.empty(int(n))
    _fill_normal(np.uint64(seed_state), out, _KI, _WI, _FI)
    return out


def noise_seed(*entropy: int) -> int:
    """The SplitMix64 starting state of a stream, from a SeedSequence of ``entropy``."""
    return int(np.random.SeedSequence(list(entropy)).generate_state(1, dtype=np.uint64)[0])


def harmonic_table(coeffs: np.ndarray, sign: np.ndarray) -> np.ndarray:
    """``(TABLE_SIZE + 1, n_inputs)``: ``sign[i] * sum_h Re{coeffs[h-1, i] e^{j h phi_m}}`` at
    phi_m = 2 pi m / TABLE_SIZE (the last row repeats the first, for the interpolation)."""
    nh, ni = coeffs.shape
    if nh >= TABLE_SIZE // 2:
        raise ValueError(f"{nh} harmonics need a table of more than {TABLE_SIZE} points")
    spec = np.zeros((TABLE_SIZE // 2 + 1, ni), dtype=np.complex128)
    spec[1 : nh + 1] = coeffs * (sign * (TABLE_SIZE / 2.0))
    out = np.empty((TABLE_SIZE + 1, ni))
    out[:TABLE_SIZE] = np.fft.irfft(spec, n=TABLE_SIZE, axis=0)
    out[TABLE_SIZE] = out[0]
    return out


@jit
def _tone_phasors(tones, t0_s, fs_hz, z):
    """z[r, 2 j], z[r, 2 j + 1] = cos, sin of tone j's phase at sample r: f(t) = f0 + A sin(2 pi t / T
    + psi), phase 2 pi f0 t - A T cos(2 pi t / T + psi) + phi0; exact every _TONE_BLOCK samples,
    rotated by the block's mid-point frequency in between."""
    n = z.shape[0]
    for j in range(tones.shape[0]):
        f0, amp, per, psi, phi0 = tones[j, 0], tones[j, 1], tones[j, 2], tones[j, 3], tones[j, 4]
        w = 2.0 * math.pi / per
        for a in range(0, n, _TONE_BLOCK):
            b = min(n, a + _TONE_BLOCK)
            t = t0_s + a / fs_hz
            ph = 2.0 * math.pi * f0 * t - amp * per * math.cos(w * t + psi) + phi0
            zr = math.cos(ph)
            zi = math.sin(ph)
            tm = t0_s + (a + 0.5 * (b - a - 1)) / fs_hz
            step = 2.0 * math.pi * (f0 + amp * math.sin(w * tm + psi)) / fs_hz
            cr = math.cos(step)
            ci = math.sin(step)
            for r in range(a, b):
                z[r, 2 * j] = zr
                z[r, 2 * j + 1] = zi
                nr = zr * cr - zi * ci
                zi = zr * ci + zi * cr
                zr = nr


@jit
def _render(out, theta, tab0, tab1, noise_sd, s, ki, wi, fi, z, tone_g):
    """out[r, i] = harmonic table (interpolated in phase and in u) + noise + sum_j Re{g_ij z_rj}."""
    n, ni = out.shape
    size = tab0.shape[0] - 1
    per_rad = size / (2.0 * math.pi)
    nt = z.shape[1]
    g = np.empty(ni)
    for r in range(n):
        pos = theta[r] * per_rad
        fl = math.floor(pos)
        f = pos - fl
        m = np.int64(fl) % size
        u = r / n
        w00 = (1.0 - u) * (1.0 - f)
        w01 = (1.0 - u) * f
        w10 = u * (1.0 - f)
        w11 = u * f
        a0 = tab0[m]
        a1 = tab0[m + 1]
        b0 = tab1[m]
        b1 = tab1[m + 1]
        o = out[r]
        for i in range(ni):
            o[i] = w00 * a0[i] + w01 * a1[i] + w10 * b0[i] + w11 * b1[i]
        s = _fill_normal(s, g, ki, wi, fi)
        for i in range(ni):
            o[i] += noise_sd[i] * g[i]
        for c in range(nt):
            zc = z[r, c]
            tg = tone_g[c]
            for i in range(ni):
                o[i] += tg[i] * zc


def render_background(
    theta: np.ndarray,
    table0: np.ndarray,
    table1: np.ndarray,
    noise_sd: np.ndarray,
    noise_state: int,
    t0_s: float,
    fs_hz: float,
    tones: np.ndarray,
    tone_gains: np.ndarray,
) -> np.ndarray:
    """One segment, ``(theta.size, n_inputs)``: harmonics interpolated between ``table0`` (u = 0)
    and ``table1`` (u = 1), plus ``noise_sd[i]`` times normal deviates of stream ``noise_state``,
    plus tones (rows ``f0_hz, drift_hz, drift_period_s, drift_phase_rad, phase0_rad``; complex
    gains ``tone_gains`` (tones, n_inputs): ``Re{g e^{j phase}}``). Signs (CT polarity) are
    expected folded into the tables, ``noise_sd`` and the gains."""
    n, ni = theta.size, table0.shape[1]
    out = np.empty((n, ni))
    tones = np.ascontiguousarray(tones, dtype=np.float64).reshape(-1, 5)
    tg = np.asarray(tone_gains, dtype=np.complex128).reshape(-1, ni)
    g = np.empty((2 * tg.shape[0], ni))  # Re{g e^{j ph}} = g.re cos(ph) - g.im sin(ph)
    g[0::2], g[1::2] = tg.real, -tg.imag
    z = np.empty((n, 2 * tones.shape[0]))
    _tone_phasors(tones, float(t0_s), float(fs_hz), z)
    _render(
        out,
        np.ascontiguousarray(theta, dtype=np.float64),
        table0,
        table1,
        np.ascontiguousarray(noise_sd, dtype=np.float64),
        np.uint64(noise_state),
        _KI,
        _WI,
        _FI,
        z,
        g,
    )
    return out
