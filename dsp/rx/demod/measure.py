"""Measurement of a known burst on another input: level, phase, SNR and band amplitudes where it
may be far below detection.

Once one input has decoded a burst, its copies on the other inputs are measured data-aided
(:func:`measure_known`): timing and clock come from the decoded copy (one transmission, one
arrival time on every input) and the despread symbols are correlated with the known ones. The
band amplitudes correlate the received baseband with the noise-free burst reconstructed from
the frame (:func:`synth_kernel`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from dsp.air import params as P
from dsp.numba_settings import jit
from dsp.rx.channelizer import DECIMATION
from dsp.rx.demod.demodulator import BurstDemodulator
from dsp.rx.demod.mf_rows import derotation, mf_rows_grid, rows_match
from dsp.rx.demod.pulse import DEC, RRC_PULSE, chip_grid


@dataclass
class KnownMeasurement:
    """A known burst measured on one input (data-aided: the chips are known from a decoded copy)."""

    amplitude: float  # despread amplitude (same scale as BurstResult.amplitude)
    phase_rad: float
    snr_db: float  # symbol SNR
    level_db: float  # burst RMS relative to this input's fundamental RMS
    band_amplitudes_db: list[tuple[float, float]]  # (freq_hz, level dB re fundamental) across the channel


def measure_known(
    demod: BurstDemodulator,
    r: np.ndarray,
    m_first: int,
    start_sample: float,
    code: int,
    grid_hz: float,
    frame: bytes,
    eps: float,
    fundamental_rms: float,
    band_offsets_hz: tuple[float, ...] = (-300.0, -150.0, 0.0, 150.0, 300.0),
    bands_for: Callable[[float], bool] | None = None,
) -> KnownMeasurement:
    """Level, phase and SNR of a known burst on an input where it may be far below detection.

    Timing and clock come from the decoded copy (one transmission, one arrival time on every
    input); the despread symbols are correlated with the known ones. Band amplitudes: the
    received baseband is correlated with the reconstructed noise-free burst within +-60 Hz of
    each offset (a cross-spectral estimate of the path's gain across the channel).

    ``bands_for``: called with the symbol SNR (dB); when it returns False the band amplitudes
    (about half the cost: the reconstruction and two FFTs) are left out (an empty list), for a
    caller that does not report a copy that weak. Every other value is the same either way.
    """
    t0_s = 1.0 / grid_hz
    df = eps * demod.channel.fc_hz
    z = demod._mf(r, m_first, start_sample, eps, t0_s, df, demod.n_chips)
    known = demod._known_symbols(frame)
    return _measure_from_chips(
        demod, r, z, m_first, start_sample, code, t0_s, eps, df, known, fundamental_rms, band_offsets_hz, bands_for
    )


def measure_known_many(
    demod: BurstDemodulator,
    rows: np.ndarray,
    m_first: int,
    start_sample: float,
    code: int,
    grid_hz: list[float],
    frame: bytes,
    eps: float,
    fundamental_rms: list[float],
    bands_for: list[Callable[[float], bool] | None],
) -> list[KnownMeasurement | None]:
    """:func:`measure_known` of one burst on many inputs, ``rows[b]`` the baseband of input b
    (all at baseband index ``m_first``), with its grid frequency, fundamental RMS and
    ``bands_for``: the same numbers, to the bit. What does not depend on the input is made once:
    the known symbols, and with a clock offset the derotation and the direct path's chip windows
    and pulse taps (:mod:`dsp.rx.demod.mf_rows`; without one, or where :func:`rows_match` is
    False, each input's matched filter is its own). None for an input whose fit failed
    (ValueError, FloatingPointError), as for all of them if the frame cannot be re-encoded."""
    try:
        known = demod._known_symbols(frame)
    except (ValueError, FloatingPointError):
        return [None] * rows.shape[0]
    df = eps * demod.channel.fc_hz
    t0s = [1.0 / g for g in grid_hz]
    zs: np.ndarray | None = None
    if eps != 0.0 and rows_match():
        spc = demod.fs_hz / P.CHIP_RATE_HZ / (1.0 + eps)
        grids = [chip_grid(m_first, demod.c0, spc, t0_s * demod.fs_hz / (1.0 + eps), 0, 0) for t0_s in t0s]
        ph = (
            derotation(rows.shape[1], int(m_first), float(demod.c0), float(start_sample), float(df), float(demod.fs_hz))
            if df != 0.0
            else np.empty(0, np.complex128)
        )
        try:
            zs = mf_rows_grid(rows, grids, float(start_sample), ph, int(demod.n_chips))
        except (ValueError, FloatingPointError):
            zs = None  # (then each input's own, and its own error)
    out: list[KnownMeasurement | None] = []
    for b in range(rows.shape[0]):
        try:
            z = zs[b] if zs is not None else demod._mf(rows[b], m_first, start_sample, eps, t0s[b], df, demod.n_chips)
            out.append(
                _measure_from_chips(
                    demod,
                    rows[b],
                    z,
                    m_first,
                    start_sample,
                    code,
                    t0s[b],
                    eps,
                    df,
                    known,
                    fundamental_rms[b],
                    (-300.0, -150.0, 0.0, 150.0, 300.0),
                    bands_for[b],
                )
            )
        except (ValueError, FloatingPointError):
            out.append(None)
    return out


def _measure_from_chips(
    demod: BurstDemodulator,
    r: np.ndarray,
    z: np.ndarray,
    m_first: int,
    start_sample: float,
    code: int,
    t0_s: float,
    eps: float,
    df: float,
    known: np.ndarray,
    fundamental_rms: float,
    band_offsets_hz: tuple[float, ...],
    bands_for: Callable[[float], bool] | None,
) -> KnownMeasurement:
    """:func:`measure_known` from the matched filter's outputs ``z`` of ``r`` on: despreading,
    phase, level, SNR and band amplitudes."""
    Y, w2 = demod._combine(z, t0_s, code)
    phi = demod._phase_track(Y, known)
    v = Y * np.conj(known) * np.exp(-1j * phi)
    # symbols touched by impulse blanking (exact zeros at baseband) would bias the level low
    clean = _clean_symbols(demod, r, m_first, start_sample, eps, t0_s)
    if clean.sum() >= 32:
        v = v[clean]
    amp = float(np.mean(v.real))
    phase = float(np.angle(np.sum(Y * np.conj(known))))
    resid = v - amp
    nv = float(np.mean(np.abs(resid) ** 2))
    snr = amp**2 / nv if nv > 0 else float("inf")
    scale = P.CHIPS_PER_SYMBOL * (demod.fs_hz / DECIMATION) / P.CHIP_RATE_HZ
    lvl = 20 * math.log10(max(amp / scale, 1e-30) / fundamental_rms) if fundamental_rms > 0 else float("nan")
    snr_db = 10 * math.log10(snr) if snr > 0 else -99.0
    if bands_for is not None and not bands_for(snr_db):
        return KnownMeasurement(amp, phase, snr_db, lvl, [])
    # reconstructed baseband burst (unit chips) for the band estimate
    fs_bb = demod.fs_hz / DECIMATION
    chips = known.repeat(P.CHIPS_PER_SYMBOL) * demod.code_cache[code]
    grid = chip_grid(m_first, demod.c0, demod.fs_hz / P.CHIP_RATE_HZ / (1 + eps), t0_s * demod.fs_hz / (1 + eps))
    ref = synth_kernel(chips, grid, r.size, float(start_sample), w2, RRC_PULSE)
    n = 32.0 * (m_first + np.arange(r.size)) + demod.c0
    ref = ref * np.exp(2j * np.pi * df * (n - start_sample) / demod.fs_hz)
    R = np.fft.fft(r)
    F = np.fft.fft(ref)
    fr = np.fft.fftfreq(r.size, 1 / fs_bb)
    bands = []
    for off in band_offsets_hz:
        m = np.abs(fr - off) <= 60.0
        den = float(np.sum(np.abs(F[m]) ** 2))
        # received amplitude per unit reference; x2 undoes the real -> complex mixing (cos = e/2)
        g = 2.0 * abs(np.sum(R[m] * np.conj(F[m]))) / den if den > 0 else 0.0
        b = 20 * math.log10(max(g, 1e-30) / fundamental_rms) if fundamental_rms > 0 else float("nan")
        bands.append((demod.channel.fc_hz + off, b))
    return KnownMeasurement(amp, phase, snr_db, lvl, bands)


def _clean_symbols(
    demod: BurstDemodulator, r: np.ndarray, m_first: int, tau0: float, eps: float, t0_s: float
) -> np.ndarray:
    """True for symbols whose chips (both paths, +-7 chips) saw no blanked baseband sample."""
    spc = demod.fs_hz / P.CHIP_RATE_HZ / (1.0 + eps)
    starts = np.array([tau0 + 0.0, tau0 + t0_s * demod.fs_hz / (1.0 + eps)])
    return clean_kernel(r, int(m_first), starts, spc, float(demod.c0), demod.n_sym, P.CHIPS_PER_SYMBOL)


def _clean_symbols_numpy(
    demod: BurstDemodulator, r: np.ndarray, m_first: int, tau0: float, eps: float, t0_s: float
) -> np.ndarray:
    """:func:`_clean_symbols` in numpy (the reference its kernel is tested against)."""
    zero = (r == 0).astype(np.int64)
    cz = np.concatenate([[0], np.cumsum(zero)])
    spc = demod.fs_hz / P.CHIP_RATE_HZ / (1.0 + eps)
    ok = np.ones(demod.n_sym, bool)
    for off in (0.0, t0_s * demod.fs_hz / (1.0 + eps)):
        lo = tau0 + off + (np.arange(demod.n_sym) * P.CHIPS_PER_SYMBOL - 7) * spc
        hi = tau0 + off + (np.arange(demod.n_sym) * P.CHIPS_PER_SYMBOL + P.CHIPS_PER_SYMBOL + 7) * spc
        a = np.clip(((lo - demod.c0) / DECIMATION).astype(int) - m_first, 0, r.size)
        b = np.clip(((hi - demod.c0) / DECIMATION).astype(int) + 1 - m_first, 0, r.size)
        ok &= (cz[b] - cz[a]) == 0
    return ok


@jit
def synth_kernel(chips, grid, n_out, tau0, w2, pulse):
    """Noise-free baseband of both paths (weights 1 and ``w2``) at baseband samples m_first ..
    m_first + n_out - 1, m_first the ``grid``'s first sample (:func:`~dsp.rx.demod.pulse.chip_grid`),
    the pulse interpolated linearly in the ``pulse``'s ``tab`` (:func:`~dsp.rx.demod.pulse.pulse_table`)."""
    m_first, c0, spc, t0_samples, period, shift = grid
    tab, td, tab_res, tab_span, span = pulse
    out = np.zeros(n_out, dtype=np.complex128)
    for k in range(chips.shape[0]):
        for p in range(2):
            tau = tau0 + k * spc + p * t0_samples
            w = 1.0 + 0.0j if p == 0 else w2
            lo = int(math.ceil((tau - span * spc - c0) / DEC)) - m_first
            hi = int(math.floor((tau + span * spc - c0) / DEC)) - m_first
            if lo < 0:
                lo = 0
            if hi > n_out - 1:
                hi = n_out - 1
            for i in range(lo, hi + 1):
                x = (DEC * (m_first + i) + c0 - tau) / spc
                u = (x + tab_span) * tab_res
                j = int(u)
                f = u - j
                g = tab[j] * (1.0 - f) + tab[j + 1] * f
                out[i] += w * chips[k] * g
    return out


@jit
def clean_kernel(r, m_first, starts, spc, c0, n_sym, cps):
    """:func:`_clean_symbols`'s arithmetic, compiled: for each path start in ``starts`` (tau0
    plus the path's delay) and symbol k, the baseband samples a .. b - 1 its chips (+-7) touch,
    a = int((start + (k cps - 7) spc - c0) / DEC) - m_first and b likewise + 1, clipped to r;
    the symbol is clean when none of them is exactly 0."""
    n = r.shape[0]
    cz = np.zeros(n + 1, np.int64)
    for i in range(n):
        cz[i + 1] = cz[i] + (1 if r[i] == 0 else 0)
    ok = np.ones(n_sym, np.bool_)
    for s in range(starts.shape[0]):
        t = starts[s]
        for k in range(n_sym):
            lo = t + float(k * cps - 7) * spc
            hi = t + float(k * cps + cps + 7) * spc
            a = int((lo - c0) / DEC) - m_first
            b = int((hi - c0) / DEC) + 1 - m_first
            a = min(max(a, 0), n)
            b = min(max(b, 0), n)
            if cz[b] - cz[a] != 0:
                ok[k] = False
    return ok


def warm_up(channel: P.Channel, fs_hz: float) -> None:
    """Load (or compile) every kernel a measurement runs, with the argument types it gives them:
    a burst of noise measured on two inputs at once, with a clock offset (the shared-tap filter,
    and :func:`~dsp.rx.demod.mf_rows.rows_match` decided) and band amplitudes. Once per process
    (the receiver's pipeline calls it, through :func:`dsp.rx.chain.warm_up`, before it forks its
    workers)."""
    demod = BurstDemodulator(channel, fs_hz)
    n = int(demod.span_samples(60.0) / DECIMATION) + 24
    rows = np.random.default_rng(2).standard_normal((2, 2 * n)).view(np.complex128)
    rows[1, 100:140] = 0.0
    frame = bytes(P.FRAME_BYTES)
    start = float(demod.c0) + 32.0 * 16 + 3.0
    measure_known_many(demod, rows, 0, start, 0, [60.0, 60.001], frame, 2e-5, [1.0, 1.0], [None, None])
