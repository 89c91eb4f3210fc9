"""The burst demodulator: one detected burst of one input through every step of this package,
and its record (:class:`BurstResult`).

:meth:`BurstDemodulator.demodulate` refines the timing on the preamble, runs the matched filter
and despreads, finds the carrier offset, runs the matched filter again with it, tracks the
phase, decodes the soft symbols (deinterleave and depuncture in one kernel, soft Viterbi, CRC)
and then makes data-aided passes (the decision re-encoded, the self-interference of the second
path removed, the phase re-estimated from the known symbols, the frame decoded again; up to
``iterations`` of them while the CRC fails, and one in any case to refine the figures of merit).

Figures of merit per burst: symbol SNR and Eb/N0 from the data-aided residual, EVM, carrier
offset, clock offset, level relative to the fundamental, pre-FEC bit errors (re-encoding), the
detector statistic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from dsp.air import params as P
from dsp.air.codes import chip_code, preamble_bits
from dsp.air.crc import crc16
from dsp.air.interleave import permutation
from dsp.fec import conv
from dsp.fec.viterbi import decode_frame, viterbi_decode_kernel
from dsp.numba_settings import jit_enabled
from dsp.rx.channelizer import DECIMATION, Channelizer
from dsp.rx.demod.cancel import cancel_symbols, isi_taps, reencode
from dsp.rx.demod.carrier import CarrierSearch, derotate
from dsp.rx.demod.matched_filter import chip_period, mf_kernel
from dsp.rx.demod.phase import fit_known, fit_preamble, known_rotation, phase_blind, phase_known, rotation
from dsp.rx.demod.pulse import RRC_PULSE, SPAN, chip_grid
from dsp.rx.demod.rake import despread
from dsp.rx.demod.soft import IMPULSE_EXCESS, soft_values, symbol_weights
from dsp.rx.demod.timing import refine_start


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


_warmed_up = False  # whether a burst has been demodulated in this process (see BurstDemodulator._warm_up)


class BurstDemodulator:
    """Demodulates bursts of one channel from its baseband (see :mod:`dsp.rx.demod`)."""

    def __init__(self, channel: P.Channel, fs_hz: float = 48000.0, iterations: int = 3) -> None:
        self.channel = channel
        self.fs_hz = fs_hz
        self.iterations = iterations
        self.n_sym = P.burst_symbols(channel.modulation, channel.fec)
        self.n_chips = self.n_sym * P.CHIPS_PER_SYMBOL
        self.code_cache = {
            k: np.asarray(chip_code(channel.index, k))[np.arange(self.n_chips) % P.CODE_LENGTH]
            for k in range(P.CODES_PER_CHANNEL)
        }
        self.pre = 1.0 - 2.0 * preamble_bits().astype(float)
        self.n_coded = P.coded_bits(channel.fec)
        self.c0 = Channelizer.input_index(0)  # input index of baseband sample 0
        self.power = 2 if channel.modulation == P.Modulation.BPSK else 4
        self.carrier = CarrierSearch(channel.fc_hz, self.power, self.n_sym, self.pre)
        # soft value k (air order) -> its place among the rate-1/2 coded bits (deinterleaved, depunctured)
        n_full = 2 * (P.FRAME_BITS + P.CONV_TAIL_BITS)
        kept = conv.puncture(np.arange(n_full), channel.fec)
        self._soft_dst = np.ascontiguousarray(kept[permutation(self.n_coded)], dtype=np.int64)
        self._isi = None  # (t0_s, taps of _cancel) of the latest burst
        if not _warmed_up:
            self._warm_up()

    def __repr__(self) -> str:
        c = self.channel
        fec = c.fec.name[1:].replace("_", "/")
        return (
            f"BurstDemodulator(channel {c.index} at {c.fc_hz:g} Hz, {c.modulation.name}, FEC {fec}, "
            f"{self.fs_hz / P.CHIP_RATE_HZ:.4g} input samples per chip at {self.fs_hz:g} Hz, "
            f"up to {self.iterations} data-aided iterations)"
        )

    def _warm_up(self) -> None:
        """Demodulate a burst of noise, once per process: every kernel is then loaded from
        numba's cache (about 5 ms each, 0.1 s in all) before the first real burst rather than
        during it. Not without JIT (it would take seconds)."""
        global _warmed_up
        _warmed_up = True
        if jit_enabled():
            n = int(self.span_samples(60.0) / DECIMATION) + 64
            r = np.random.default_rng(0).standard_normal(2 * n).view(np.complex128)
            self.demodulate(r, 0, float(self.c0) + 600.0, 0, 60.0)
            self._isi = None

    # -- geometry ------------------------------------------------------------------------------
    def span_samples(self, grid_hz: float) -> int:
        """How many input samples after chip 0 a burst needs (for buffering)."""
        spc = self.fs_hz / P.CHIP_RATE_HZ * 1.0002
        return int((self.n_chips + SPAN + 2) * spc + self.fs_hz / grid_hz * 1.0002) + 64

    def _mf(self, r, m_first, tau0, eps, t0_s, df, n_chips):
        """Matched filter of ``n_chips`` chips from ``tau0``, clock offset ``eps``, the baseband
        derotated by the carrier offset ``df`` first."""
        spc = self.fs_hz / P.CHIP_RATE_HZ / (1.0 + eps)
        r = np.asarray(r, dtype=np.complex128)
        if df != 0.0:
            r = derotate(r, int(m_first), float(self.c0), float(tau0), float(df), float(self.fs_hz))
        period, shift = chip_period(spc) if eps == 0.0 else (0, 0)
        grid = chip_grid(m_first, self.c0, spc, t0_s * self.fs_hz / (1.0 + eps), period, shift)
        return mf_kernel(r, grid, float(tau0), int(n_chips), RRC_PULSE)

    def _combine(self, z, t0_s, code):
        w2 = -np.exp(-2j * np.pi * self.channel.fc_hz * t0_s)
        return despread(z, complex(np.conj(w2)), self.code_cache[code], P.CHIPS_PER_SYMBOL), w2

    # -- main ----------------------------------------------------------------------------------
    def demodulate(
        self,
        r: np.ndarray,
        m_first: int,
        start_sample: float,
        code: int,
        grid_hz: float,
        corr_peak: float = 0.0,
        fundamental_rms: float = float("nan"),
    ) -> BurstResult:
        """``r``: baseband of this channel, ``r[0]`` = baseband index ``m_first``."""
        t0_s = 1.0 / grid_hz
        r = np.asarray(r, dtype=np.complex128)
        # 1. timing refinement on the preamble
        n_pre = P.PREAMBLE_SYMBOLS * P.CHIPS_PER_SYMBOL
        spc0 = self.fs_hz / P.CHIP_RATE_HZ
        w2c = complex(np.conj(-np.exp(-2j * np.pi * self.channel.fc_hz * t0_s)))
        grid = chip_grid(m_first, self.c0, spc0, t0_s * self.fs_hz, *chip_period(spc0))
        tau0 = refine_start(
            r, grid, start_sample, n_pre, RRC_PULSE, w2c, self.code_cache[code], self.pre, P.CHIPS_PER_SYMBOL
        )
        # 2./3. carrier offset from the whole burst (eps = 0 first)
        z = self._mf(r, m_first, tau0, 0.0, t0_s, 0.0, self.n_chips)
        Y, _ = self._combine(z, t0_s, code)
        df = self.carrier.offset_hz(Y)
        eps = df / self.channel.fc_hz
        return self._finish(r, m_first, tau0, eps, df, t0_s, code, corr_peak, fundamental_rms)

    def _phase_track(self, Y: np.ndarray, known: np.ndarray | None) -> np.ndarray:
        """Phase per symbol. ``known``: the symbols if known (data-aided), else None."""
        if known is not None:
            return phase_known(Y, np.asarray(known, dtype=np.complex128), 24)
        return phase_blind(Y, self.pre, self.power, 48)

    def _weights(self, r, m_first, tau0, eps, t0_s):
        """Per-symbol reliability: 1 where the baseband power around the symbol (both paths) is near
        the burst's typical level, (3 p_typ / p_local)^2 where an impulse raised it further (its soft
        values then count for less instead of misleading the decoder)."""
        spc = self.fs_hz / P.CHIP_RATE_HZ / (1.0 + eps)
        return symbol_weights(
            r,
            int(m_first),
            float(self.c0),
            float(tau0),
            spc,
            t0_s * self.fs_hz / (1 + eps),
            self.n_sym,
            P.CHIPS_PER_SYMBOL,
            IMPULSE_EXCESS,
        )

    def _soft(self, Y, rot, amp, noise_var, w):
        """Soft coded bits (deinterleaved, depunctured) of the symbols derotated by ``rot``."""
        full, ok = soft_values(
            Y,
            rot,
            w,
            2.0 * amp / max(noise_var, 1e-300),
            P.PREAMBLE_SYMBOLS,
            self.channel.modulation != P.Modulation.BPSK,
            self._soft_dst,
            2 * (P.FRAME_BITS + P.CONV_TAIL_BITS),
        )
        if not ok:
            decode_frame(full, P.FRAME_BITS)  # raises what the decoder says of such values
        return full

    def _decode(self, full):
        bits = viterbi_decode_kernel(full, P.FRAME_BITS + P.CONV_TAIL_BITS)[: P.FRAME_BITS]
        frame = np.packbits(bits).tobytes()  # frame_from_bits (the decoder's bits are 0/1)
        ok = crc16(frame[:-2]) == int.from_bytes(frame[-2:], "big")
        return bits, frame, ok, full

    def _known_symbols(self, frame: bytes) -> np.ndarray:
        from dsp.tx.burst import burst_symbols

        return burst_symbols(frame, self.channel.modulation, self.channel.fec)

    def _reencode(self, bits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(coded bits at rate 1/2, burst symbols) of decoded information bits: what
        ``reencode_errors`` and ``_known_symbols`` compute."""
        return reencode(bits, self._soft_dst, self.channel.modulation != P.Modulation.BPSK, self.pre, self.n_sym)

    def _finish(self, r, m_first, tau0, eps, df, t0_s, code, corr_peak, fund_rms) -> BurstResult:
        r = np.asarray(r)
        Y, w2 = self._combine(self._mf(r, m_first, tau0, eps, t0_s, df, self.n_chips), t0_s, code)
        phi = self._phase_track(Y, None)
        rot = rotation(phi)
        amp, noise_var = fit_preamble(Y, self.pre, rot)
        wts = self._weights(r, m_first, tau0, eps, t0_s)
        bits, frame, ok, full = self._decode(self._soft(Y, rot, amp, noise_var, wts))
        reenc = {}  # frame -> (coded bits, known symbols)

        def known_of(bits, frame):
            if frame not in reenc:
                reenc[frame] = self._reencode(bits)
            return reenc[frame]

        it = 1
        best = (bits, frame, ok, full, Y, phi[0], rot)
        while it < self.iterations + 1 and (not ok or it == 1):
            # data-aided pass: known symbols from the re-encoded decision, self-interference removed
            _, known = known_of(bits, frame)
            rot_k, _ = known_rotation(Y, known, 24)  # the phase of _phase_track(Y, known)
            amp_k, _ = fit_known(Y, known, rot_k)
            Y2 = self._cancel(Y, known, code, amp_k, rot_k, t0_s, w2)
            rot2, phi2 = known_rotation(Y2, known, 24)
            amp2, nv2 = fit_known(Y2, known, rot2)
            bits2, frame2, ok2, full2 = self._decode(self._soft(Y2, rot2, amp2, nv2, wts))
            it += 1
            if ok2 or not ok:
                best = (bits2, frame2, ok2, full2, Y2, phi2, rot2)
                bits, frame, ok = bits2, frame2, ok2
            if ok and it > 2:
                break
        bits, frame, ok, full, Yf, phif, rotf = best
        # figures of merit from the final decision (exact when the CRC passed)
        coded, known = known_of(bits, frame)
        amp_f, nv = fit_known(Yf, known, rotf)
        snr = amp_f**2 / nv if nv > 0 and amp_f > 0 else 0.0
        snr_db = 10 * math.log10(snr) if snr > 0 else -99.0
        n_data = self.n_sym - P.PREAMBLE_SYMBOLS
        ebn0_db = snr_db + 10 * math.log10(n_data / P.FRAME_BITS) if snr > 0 else -99.0
        evm = 100.0 * math.sqrt(nv) / amp_f if amp_f > 0 else 999.0
        # despread amplitude = burst RMS x 4 chips x (baseband samples per chip) (calibrated in tests)
        level = amp_f / (P.CHIPS_PER_SYMBOL * (self.fs_hz / DECIMATION) / P.CHIP_RATE_HZ)
        level_db = 20 * math.log10(level / fund_rms) if fund_rms > 0 and level > 0 else float("nan")
        # pre-FEC bit errors: the non-erased soft values whose sign disagrees with the re-encoded bits
        pre_err = np.count_nonzero((full > 0) & (coded == 1)) + np.count_nonzero((full < 0) & (coded == 0))
        return BurstResult(
            self.channel.index,
            code,
            float(tau0),
            bool(ok),
            frame if ok else None,
            bits if ok else None,
            snr_db,
            ebn0_db,
            evm,
            amp_f,
            level_db,
            float(df),
            float(eps * 1e6),
            float(phif),
            int(pre_err),
            float(corr_peak),
            it,
            Yf,
        )

    def _cancel(self, Y, known, code, amp, rot, t0_s, w2):
        """Remove from the symbols what the other path of the (decided) chips puts on each finger."""
        isi = self._isi
        if isi is None or isi[0] != t0_s:
            # finger 0 at chip k sees w2 * sum_j a_j R(k - j - t0c): j = k - base - l, weight
            # R((k - j) - t0c) with k - j = base + l; finger 1 at chip k (+T0) sees
            # sum_j a_j R(k + t0c - j): j = k + base + l, weight R(k + t0c - j), j - k = base + l
            isi = self._isi = (t0_s, isi_taps(t0_s * P.CHIP_RATE_HZ, 17, P.RRC_BETA))  # t0 in chips (tx time)
        # per-chip complex gain at the matched-filter output: Y = 2 * 4 * H d  ->  H = amp/8 e^{j phi}
        return cancel_symbols(
            Y,
            known,
            self.code_cache[code],
            amp / (2.0 * P.CHIPS_PER_SYMBOL),
            rot,
            P.CHIPS_PER_SYMBOL,
            isi[1],
            complex(w2),
            complex(np.conj(w2)),
        )
