"""Despreader and demodulator of one detected burst; decoding to a frame (deinterleave, depuncture,
soft Viterbi, CRC).

Signal model (docs/air-interface.md): at the channel's baseband the burst is
    r(t) = H e^{j 2 pi df t} [U(t') + w2 U(t' - T0)],   U(t) = sum_k a_k g(t/Tc - k),
t' = (1 + eps)(t - t_start) the transmitter's clock, w2 = -exp(-j 2 pi fc T0), and the carrier
offset df = eps fc because carrier and chips come from the same crystal.

Steps:
1. Timing: the detector's start (a quarter of a baseband sample) is refined by maximising the
   preamble correlation over +-0.3 chip (parabolic interpolation).
2. Chip matched filter: the RRC is evaluated (from a 1/1024-chip table) at the true position of
   every chip for both paths (0 and T0) and correlated with the baseband samples; the two paths
   are combined with the known weight conj(w2) (a two-finger RAKE); chips are despread by the
   Gold code into symbols.
3. Carrier: df from the FFT of the squared (BPSK) or fourth-power (QPSK) symbols of the whole
   burst, refined by parabolic interpolation; eps = df / fc sets the chip clock; the matched
   filter is run again with both. The phase is the preamble's, then tracked over the data by a
   smoothed decision-free estimate (squared symbols in windows of 48, unwrapped from the
   preamble phase).
4. Soft symbols -> deinterleave -> depuncture -> Viterbi -> CRC.
5. If the CRC fails, or to refine the figures of merit, a data-aided pass: the decided frame is
   re-encoded into chips, the self-interference that the T0 path of each neighbouring chip puts
   on each finger is reconstructed and subtracted, the phase is re-estimated from the known
   symbols, and the frame decoded again (up to ``iterations`` passes).

Figures of merit per burst: symbol SNR and Eb/N0 from the data-aided residual, EVM, carrier
offset, clock offset, level relative to the fundamental, pre-FEC bit errors (re-encoding), the
detector statistic.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from . import conv
from . import params as P
from ._jit import jit
from .channelizer import DECIMATION, Channelizer
from .codes import chip_code, preamble_bits
from .crc import crc16
from .frame import frame_coded_bits, frame_from_bits
from .interleave import deinterleave
from .shaping import rrc
from .viterbi import decode_frame, reencode_errors

TAB_RES = 1024  # table points per chip
IMPULSE_EXCESS = 3.0  # local power above this many times the burst's typical level is an impulse
TAB_SPAN = 7.0
SPAN = P.RRC_SPAN_CHIPS + 0.5


def _table() -> np.ndarray:
    x = np.arange(-TAB_SPAN * TAB_RES, TAB_SPAN * TAB_RES + 2) / TAB_RES
    return np.array([rrc(float(v), P.RRC_BETA) for v in x])


_RRC_TAB = _table()


def raised_cosine(x: np.ndarray, beta: float = P.RRC_BETA) -> np.ndarray:
    """Autocorrelation of the RRC pulse (in chips)."""
    x = np.asarray(x, dtype=np.float64)
    den = 1.0 - (2.0 * beta * x) ** 2
    out = np.sinc(x) * np.cos(np.pi * beta * x) / np.where(np.abs(den) < 1e-9, 1.0, den)
    sing = np.abs(den) < 1e-9
    out[sing] = np.pi / 4 * np.sinc(1.0 / (2 * beta))
    return out


@jit(fastmath={"reassoc", "contract"})
def mf_kernel(r, n_first, c0, tau0, spc, t0_samples, n_chips, tab, tab_res, tab_span, span):
    """Matched-filter outputs of both paths for chips 0..n_chips-1.

    ``r[i]`` is the (derotated) baseband sample at input index 32 (n_first + i) + c0; chip k of
    path p is centred at input index tau0 + k spc + p t0_samples (spc = input samples per chip in
    true time)."""
    z = np.zeros((2, n_chips), dtype=np.complex128)
    nr = r.shape[0]
    rr = r.real.copy()
    ri = r.imag.copy()
    inv = 1.0 / spc
    du = 32.0 * inv * tab_res  # table step per baseband sample
    for p in range(2):
        for k in range(n_chips):
            tau = tau0 + k * spc + p * t0_samples
            lo = int(math.ceil((tau - span * spc - c0) / 32.0)) - n_first
            hi = int(math.floor((tau + span * spc - c0) / 32.0)) - n_first
            if lo < 0:
                lo = 0
            if hi > nr - 1:
                hi = nr - 1
            # table position of sample i: ((32 (n_first + i) + c0 - tau) / spc + tab_span) * tab_res
            u0 = ((32.0 * n_first + c0 - tau) * inv + tab_span) * tab_res
            acc_r = 0.0
            acc_i = 0.0
            for i in range(lo, hi + 1):
                u = u0 + i * du
                j = int(u)
                f = u - j
                g = tab[j] + (tab[j + 1] - tab[j]) * f
                acc_r += rr[i] * g
                acc_i += ri[i] * g
            z[p, k] = complex(acc_r, acc_i)
    return z


@jit
def moving_sum(v, half):
    """out[i] = sum of v[i - half .. i + half] (within v), as ``np.convolve(v, ones(2 half + 1),
    "same")``, by a running sum (its rounding drift stays near 1e-16 of the sums)."""
    n = v.shape[0]
    out = np.empty_like(v)
    acc = 0.0 * v[0] if n > 0 else 0.0j
    for j in range(min(n, half + 1)):
        acc += v[j]
    for i in range(n):
        out[i] = acc
        if i + half + 1 < n:
            acc += v[i + half + 1]
        if i - half >= 0:
            acc -= v[i - half]
    return out


@jit
def unwrapped_angle(z):
    """``np.unwrap(np.angle(z))`` (the same steps: corrections where a step exceeds pi)."""
    n = z.shape[0]
    out = np.empty(n)
    if n == 0:
        return out
    prev = math.atan2(z[0].imag, z[0].real)
    out[0] = prev
    corr = 0.0
    for i in range(1, n):
        a = math.atan2(z[i].imag, z[i].real)
        dd = a - prev
        ddmod = (dd + math.pi) % (2.0 * math.pi) - math.pi
        if ddmod == -math.pi and dd > 0:
            ddmod = math.pi
        if abs(dd) >= math.pi:
            corr += ddmod - dd
        out[i] = a + corr
        prev = a
    return out


@jit
def preamble_metric(z, w2c, code, pre, sf):
    """|sum_s pre[s] Y[s]|, Y = the symbols despread (``sf`` chips each) from the fingers ``z``
    (see ``BurstDemodulator._combine``)."""
    acc = 0.0j
    for s in range(pre.shape[0]):
        y = 0.0j
        for c in range(sf * s, sf * s + sf):
            y += (z[0, c] + w2c * z[1, c]) * code[c]
        acc += y * pre[s]
    return abs(acc)


@jit
def cancel_kernel(z, chips, h_amp, phi_sym, sf, r1, r2, base, lo_lag, w2):
    """``z`` minus the self-interference of the T0 path on both fingers (``_cancel``): the
    gain of chip k is h_amp exp(j phi_sym[k // sf])."""
    isi1, isi2 = isi_kernel(chips, r1, r2, base, lo_lag)
    n = chips.shape[0]
    zc = z.copy()
    for s in range(phi_sym.shape[0]):
        h = h_amp * np.exp(1j * phi_sym[s])
        hw = h * w2
        for k in range(s * sf, min(n, s * sf + sf)):
            zc[0, k] -= hw * isi1[k]
            zc[1, k] -= h * isi2[k]
    return zc


@jit
def isi_kernel(chips, r1, r2, base, lo_lag):
    """Self-interference of the T0 path on both fingers (see :meth:`BurstDemodulator._cancel`):
    isi1[k] = sum_l r1[l] chips[k - sh], isi2[k] = sum_l r2[l] chips[k + sh], sh = base + lo_lag + l,
    for 0 < sh < n and the chip inside the burst (summed in the order of l; real and imaginary
    parts apart, the weights are real)."""
    n = chips.shape[0]
    cr = chips.real.copy()
    ci = chips.imag.copy()
    isi1 = np.empty(n, dtype=np.complex128)
    isi2 = np.empty(n, dtype=np.complex128)
    for k in range(n):
        ar = 0.0
        ai = 0.0
        for l in range(r1.shape[0]):
            sh = base + lo_lag + l
            if 0 < sh <= k:
                ar += r1[l] * cr[k - sh]
                ai += r1[l] * ci[k - sh]
        isi1[k] = complex(ar, ai)
        br = 0.0
        bi = 0.0
        for l in range(r2.shape[0]):
            sh = base + lo_lag + l
            if 0 < sh < n - k:
                br += r2[l] * cr[k + sh]
                bi += r2[l] * ci[k + sh]
        isi2[k] = complex(br, bi)
    return isi1, isi2


@dataclass
class BurstResult:
    """One decoded (or failed) burst of one input: the record that flows to the receiver."""

    channel: int
    code: int
    start_sample: float  # refined input index of the centre of chip 0
    crc_ok: bool
    frame: bytes | None
    info_bits: np.ndarray | None
    snr_db: float
    ebn0_db: float
    evm_pct: float
    amplitude: float  # symbol amplitude at the despreader output
    level_db: float  # burst RMS relative to the input's fundamental RMS (nan if unknown)
    carrier_offset_hz: float
    clock_offset_ppm: float
    phase_rad: float
    pre_fec_bit_errors: int
    corr_peak: float
    iterations: int
    symbols: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, complex))


class BurstDemodulator:
    """Demodulates bursts of one channel from its baseband (see the module docstring)."""

    def __init__(self, channel: P.Channel, fs_hz: float = 48000.0, iterations: int = 3) -> None:
        self.channel = channel
        self.fs_hz = fs_hz
        self.iterations = iterations
        self.n_sym = P.burst_symbols(channel.modulation, channel.fec)
        self.n_chips = self.n_sym * P.CHIPS_PER_SYMBOL
        self.code_cache = {k: np.asarray(chip_code(channel.index, k))[np.arange(self.n_chips) % P.CODE_LENGTH]
                           for k in range(P.CODES_PER_CHANNEL)}
        self.pre = 1.0 - 2.0 * preamble_bits().astype(float)
        self.n_coded = P.coded_bits(channel.fec)
        self.c0 = Channelizer.input_index(0)  # input index of baseband sample 0
        # the carrier search's frequency grid, and the bins beyond the crystals' +-150 ppm
        fr = np.fft.fftfreq(1 << 14, d=1.0 / P.SYMBOL_RATE_HZ)
        power = 2 if channel.modulation == P.Modulation.BPSK else 4
        self._carrier_grid = (fr, np.abs(fr) > power * channel.fc_hz * 150e-6)

    # -- geometry ------------------------------------------------------------------------------
    def span_samples(self, grid_hz: float) -> int:
        """How many input samples after chip 0 a burst needs (for buffering)."""
        spc = self.fs_hz / P.CHIP_RATE_HZ * 1.0002
        return int((self.n_chips + SPAN + 2) * spc + self.fs_hz / grid_hz * 1.0002) + 64

    def _mf(self, r, m_first, tau0, eps, t0_s, df, n_chips):
        spc = self.fs_hz / P.CHIP_RATE_HZ / (1.0 + eps)
        if df != 0.0:
            n = 32.0 * (m_first + np.arange(r.size)) + self.c0
            r = r * np.exp(-2j * np.pi * df * (n - tau0) / self.fs_hz)
        return mf_kernel(r, int(m_first), float(self.c0), float(tau0), spc, t0_s * self.fs_hz / (1.0 + eps),
                         int(n_chips), _RRC_TAB, float(TAB_RES), TAB_SPAN, SPAN)

    def _combine(self, z, t0_s, code):
        w2 = -np.exp(-2j * np.pi * self.channel.fc_hz * t0_s)
        y = z[0] + np.conj(w2) * z[1]
        c = self.code_cache[code][: y.size]
        return (y * c).reshape(-1, P.CHIPS_PER_SYMBOL).sum(axis=1), w2

    # -- main ----------------------------------------------------------------------------------
    def demodulate(self, r: np.ndarray, m_first: int, start_sample: float, code: int, grid_hz: float,
                   corr_peak: float = 0.0, fundamental_rms: float = float("nan")) -> BurstResult:
        """``r``: baseband of this channel, ``r[0]`` = baseband index ``m_first``."""
        t0_s = 1.0 / grid_hz
        mod = self.channel.modulation
        # 1. timing refinement on the preamble
        n_pre = P.PREAMBLE_SYMBOLS * P.CHIPS_PER_SYMBOL
        spc0 = self.fs_hz / P.CHIP_RATE_HZ
        offs = np.arange(-6, 7) * 0.05 * spc0
        mets = []
        w2c = np.conj(-np.exp(-2j * np.pi * self.channel.fc_hz * t0_s))
        spc = self.fs_hz / P.CHIP_RATE_HZ
        for o in offs:
            z = mf_kernel(r, int(m_first), float(self.c0), float(start_sample + o), spc, t0_s * self.fs_hz, n_pre,
                          _RRC_TAB, float(TAB_RES), TAB_SPAN, SPAN)
            mets.append(preamble_metric(z, w2c, self.code_cache[code], self.pre, P.CHIPS_PER_SYMBOL))
        mets = np.array(mets)
        i = int(np.argmax(mets))
        tau0 = start_sample + offs[i]
        if 0 < i < len(offs) - 1:
            a, b, c = mets[i - 1], mets[i], mets[i + 1]
            den = a - 2 * b + c
            if den < 0:
                tau0 += 0.5 * (a - c) / den * (offs[1] - offs[0])
        # 2./3. carrier offset from the whole burst (eps = 0 first)
        z = self._mf(r, m_first, tau0, 0.0, t0_s, 0.0, self.n_chips)
        Y, _ = self._combine(z, t0_s, code)
        power = 2 if mod == P.Modulation.BPSK else 4
        zpow = self._strip(Y)
        nfft = 1 << 14
        F = np.abs(np.fft.fft(zpow, nfft))
        fr, far = self._carrier_grid
        F[far] = 0.0
        k = int(np.argmax(F))
        a, b, c = F[k - 1], F[k], F[(k + 1) % nfft]
        den = a - 2 * b + c
        delta = 0.5 * (a - c) / den if den < 0 else 0.0
        df = (fr[k] + delta * P.SYMBOL_RATE_HZ / nfft) / power
        eps = df / self.channel.fc_hz
        return self._finish(r, m_first, tau0, eps, df, t0_s, code, corr_peak, fundamental_rms)

    def _strip(self, Y: np.ndarray) -> np.ndarray:
        """Modulation removed by a power law: BPSK^2 = 1 and ((+-1 +-j)/sqrt2)^4 = -1, so data
        symbols give +A^p exp(j p phi) like the known preamble symbols (BPSK, whatever the mode)."""
        power = 2 if self.channel.modulation == P.Modulation.BPSK else 4
        z = Y ** power
        if power == 4:
            z = -z
        npre = P.PREAMBLE_SYMBOLS
        z[:npre] = (Y[:npre] * self.pre) ** power
        return z

    def _phase_track(self, Y: np.ndarray, known: np.ndarray | None) -> np.ndarray:
        """Phase per symbol. ``known``: the symbols if known (data-aided), else None."""
        mod = self.channel.modulation
        npre = P.PREAMBLE_SYMBOLS
        if known is not None:
            v = Y * np.conj(known)
            return unwrapped_angle(moving_sum(v, 24))
        phi_pre = np.angle(np.sum(Y[:npre] * self.pre))
        power = 2 if mod == P.Modulation.BPSK else 4
        zp = self._strip(Y)
        ang = unwrapped_angle(moving_sum(zp, 48)) / power
        # align the M-fold ambiguity to the preamble phase
        shift = np.round((phi_pre - np.mean(ang[:npre])) / (2 * np.pi / power)) * (2 * np.pi / power)
        return ang + shift

    def _weights(self, r, m_first, tau0, eps, t0_s):
        """Per-symbol reliability: 1 where the baseband power around the symbol (both paths) is near
        the burst's typical level, (3 p_typ / p_local)^2 where an impulse raised it further (its soft
        values then count for less instead of misleading the decoder)."""
        p = np.abs(r) ** 2
        k = np.ones(5) / 5
        ploc = np.convolve(p, k, mode="same")
        spc = self.fs_hz / P.CHIP_RATE_HZ / (1.0 + eps)
        centre = tau0 + (np.arange(self.n_sym) * P.CHIPS_PER_SYMBOL + 1.5) * spc
        idx0 = np.clip(np.round((centre - self.c0) / DECIMATION).astype(int) - m_first, 0, r.size - 1)
        idx1 = np.clip(np.round((centre + t0_s * self.fs_hz / (1 + eps) - self.c0) / DECIMATION).astype(int)
                       - m_first, 0, r.size - 1)
        ps = 0.5 * (ploc[idx0] + ploc[idx1])
        typ = float(np.median(ps))
        if typ <= 0:
            return np.ones(self.n_sym)
        # only a clear excess (an impulse) is down-weighted: noise alone rarely triples the power
        # of 5 neighbouring samples, and weighting its ordinary fluctuations would cost sensitivity
        return np.minimum(1.0, IMPULSE_EXCESS * typ / np.maximum(ps, 1e-300)) ** 2

    def _soft(self, Y, phi, amp, noise_var, w=None):
        d = Y[P.PREAMBLE_SYMBOLS:] * np.exp(-1j * phi[P.PREAMBLE_SYMBOLS:])
        if w is not None:
            d = d * w[P.PREAMBLE_SYMBOLS:]
        scale = 2.0 * amp / max(noise_var, 1e-300)
        if self.channel.modulation == P.Modulation.BPSK:
            soft = d.real * scale
        else:
            soft = np.empty(2 * d.size)
            soft[0::2] = d.real * scale / np.sqrt(2)
            soft[1::2] = d.imag * scale / np.sqrt(2)
            soft = soft[: self.n_coded]
        return soft

    def _decode(self, soft):
        full = conv.depuncture(deinterleave(soft), self.channel.fec, 2 * (P.FRAME_BITS + P.CONV_TAIL_BITS))
        bits = decode_frame(full, P.FRAME_BITS)
        frame = frame_from_bits(bits)
        ok = crc16(frame[:-2]) == int.from_bytes(frame[-2:], "big")
        return bits, frame, ok, full

    def _known_symbols(self, frame: bytes) -> np.ndarray:
        from .frame import burst_symbols
        return burst_symbols(frame, self.channel.modulation, self.channel.fec)

    def _finish(self, r, m_first, tau0, eps, df, t0_s, code, corr_peak, fund_rms) -> BurstResult:
        r = np.asarray(r)
        z = self._mf(r, m_first, tau0, eps, t0_s, df, self.n_chips)
        Y, w2 = self._combine(z, t0_s, code)
        phi = self._phase_track(Y, None)
        npre = P.PREAMBLE_SYMBOLS
        amp = float(np.abs(np.mean((Y[:npre] * self.pre) * np.exp(-1j * phi[:npre]))))
        resid = (Y[:npre] * self.pre) * np.exp(-1j * phi[:npre]) - amp
        noise_var = float(np.mean(np.abs(resid) ** 2))
        wts = self._weights(r, m_first, tau0, eps, t0_s)
        bits, frame, ok, full = self._decode(self._soft(Y, phi, amp, noise_var, wts))
        it = 1
        best = (bits, frame, ok, full, Y, phi)
        while it < self.iterations + 1 and (not ok or it == 1):
            # data-aided pass: known symbols from the re-encoded decision, self-interference removed
            known = self._known_symbols(frame)
            chips = known.repeat(P.CHIPS_PER_SYMBOL) * self.code_cache[code]
            phi_k = self._phase_track(Y, known)
            amp_k = float(np.mean(np.real(Y * np.conj(known) * np.exp(-1j * phi_k))))
            zc = self._cancel(z, chips, amp_k, phi_k, eps, t0_s, w2)
            Y2, _ = self._combine(zc, t0_s, code)
            phi2 = self._phase_track(Y2, known)
            amp2 = float(np.mean(np.real(Y2 * np.conj(known) * np.exp(-1j * phi2))))
            res2 = Y2 * np.conj(known) * np.exp(-1j * phi2) - amp2
            nv2 = float(np.mean(np.abs(res2) ** 2))
            bits2, frame2, ok2, full2 = self._decode(self._soft(Y2, phi2, amp2, nv2, wts))
            it += 1
            if ok2 or not ok:
                best = (bits2, frame2, ok2, full2, Y2, phi2)
                bits, frame, ok = bits2, frame2, ok2
            if ok and it > 2:
                break
        bits, frame, ok, full, Yf, phif = best
        # figures of merit from the final decision (exact when the CRC passed)
        known = self._known_symbols(frame)
        v = Yf * np.conj(known) * np.exp(-1j * phif)
        amp_f = float(np.mean(v.real))
        nv = float(np.mean(np.abs(v - amp_f) ** 2))
        snr = amp_f**2 / nv if nv > 0 and amp_f > 0 else 0.0
        snr_db = 10 * math.log10(snr) if snr > 0 else -99.0
        n_data = self.n_sym - npre
        ebn0_db = snr_db + 10 * math.log10(n_data / P.FRAME_BITS) if snr > 0 else -99.0
        evm = 100.0 * math.sqrt(nv) / amp_f if amp_f > 0 else 999.0
        # despread amplitude = burst RMS x 4 chips x (baseband samples per chip) (calibrated in tests)
        level = amp_f / (P.CHIPS_PER_SYMBOL * (self.fs_hz / DECIMATION) / P.CHIP_RATE_HZ)
        level_db = 20 * math.log10(level / fund_rms) if fund_rms > 0 and level > 0 else float("nan")
        pre_err = reencode_errors(full, bits)
        return BurstResult(self.channel.index, code, float(tau0), bool(ok), frame if ok else None, bits if ok else None,
                           snr_db, ebn0_db, evm, amp_f, level_db, float(df), float(eps * 1e6), float(phif[0]),
                           int(pre_err), float(corr_peak), it, Yf)

    def _cancel(self, z, chips, amp, phi_sym, eps, t0_s, w2):
        """Remove from both fingers what the other path of the (decided) chips puts there."""
        t0c = t0_s * P.CHIP_RATE_HZ  # path offset in chips (transmitter time)
        lags = np.arange(-8, 9)
        base = int(round(t0c))
        frac = t0c - base
        # finger 0 at chip k sees w2 * sum_j a_j R(k - j - t0c): j = k - base - l
        R1 = raised_cosine(lags - frac)  # R((k - j) - t0c) with k - j = base + l
        # finger 1 at chip k (+T0) sees sum_j a_j R(k + t0c - j): j = k + base + l
        R2 = raised_cosine(frac + base - (base + lags))  # R(k + t0c - j) with j - k = base + l
        # per-chip complex gain at the matched-filter output: Y = 2 * 4 * H d  ->  H = amp/8 e^{j phi}
        return cancel_kernel(z, np.asarray(chips, dtype=np.complex128), amp / (2.0 * P.CHIPS_PER_SYMBOL),
                             np.asarray(phi_sym, dtype=np.float64), P.CHIPS_PER_SYMBOL, R1, R2, base, int(lags[0]),
                             complex(w2))


@dataclass
class KnownMeasurement:
    """A known burst measured on one input (data-aided: the chips are known from a decoded copy)."""

    amplitude: float  # despread amplitude (same scale as BurstResult.amplitude)
    phase_rad: float
    snr_db: float  # symbol SNR
    level_db: float  # burst RMS relative to this input's fundamental RMS
    band_amplitudes_db: list[tuple[float, float]]  # (freq_hz, level dB re fundamental) across the channel


def measure_known(demod: BurstDemodulator, r: np.ndarray, m_first: int, start_sample: float, code: int,
                  grid_hz: float, frame: bytes, eps: float, fundamental_rms: float,
                  band_offsets_hz: tuple[float, ...] = (-300.0, -150.0, 0.0, 150.0, 300.0)) -> KnownMeasurement:
    """Level, phase and SNR of a known burst on an input where it may be far below detection.

    Timing and clock come from the decoded copy (one transmission, one arrival time on every
    input); the despread symbols are correlated with the known ones. Band amplitudes: the
    received baseband is correlated with the reconstructed noise-free burst within +-60 Hz of
    each offset (a cross-spectral estimate of the path's gain across the channel).
    """
    t0_s = 1.0 / grid_hz
    df = eps * demod.channel.fc_hz
    z = demod._mf(r, m_first, start_sample, eps, t0_s, df, demod.n_chips)
    Y, w2 = demod._combine(z, t0_s, code)
    known = demod._known_symbols(frame)
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
    # reconstructed baseband burst (unit chips) for the band estimate
    fs_bb = demod.fs_hz / DECIMATION
    chips = known.repeat(P.CHIPS_PER_SYMBOL) * demod.code_cache[code]
    ref = synth_kernel(chips, int(m_first), r.size, float(demod.c0), float(start_sample),
                       demod.fs_hz / P.CHIP_RATE_HZ / (1 + eps), t0_s * demod.fs_hz / (1 + eps), w2,
                       _RRC_TAB, float(TAB_RES), TAB_SPAN, SPAN)
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
    return KnownMeasurement(amp, phase, 10 * math.log10(snr) if snr > 0 else -99.0, lvl, bands)


def _clean_symbols(demod: BurstDemodulator, r: np.ndarray, m_first: int, tau0: float, eps: float,
                   t0_s: float) -> np.ndarray:
    """True for symbols whose chips (both paths, +-7 chips) saw no blanked baseband sample."""
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
def synth_kernel(chips, m_first, n_out, c0, tau0, spc, t0_samples, w2, tab, tab_res, tab_span, span):
    """Noise-free baseband of both paths at baseband samples m_first .. m_first + n_out - 1."""
    out = np.zeros(n_out, dtype=np.complex128)
    for k in range(chips.shape[0]):
        for p in range(2):
            tau = tau0 + k * spc + p * t0_samples
            w = 1.0 + 0.0j if p == 0 else w2
            lo = int(math.ceil((tau - span * spc - c0) / 32.0)) - m_first
            hi = int(math.floor((tau + span * spc - c0) / 32.0)) - m_first
            if lo < 0:
                lo = 0
            if hi > n_out - 1:
                hi = n_out - 1
            for i in range(lo, hi + 1):
                x = (32.0 * (m_first + i) + c0 - tau) / spc
                u = (x + tab_span) * tab_res
                j = int(u)
                f = u - j
                g = tab[j] * (1.0 - f) + tab[j + 1] * f
                out[i] += w * chips[k] * g
    return out
