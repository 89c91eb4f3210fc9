"""Preamble detector: every chip code of one channel, CFAR threshold, explicit state machine.

Input: the channel's complex baseband at 1.5 kHz (dsp.channelizer). For each code the detector
correlates against the noise-free received preamble (64 BPSK symbols spread by the code, RRC
chips, and the transmitter's harmonic-null comb, i.e. the two paths 0 and T0), sampled at two
sub-sample phases (0 and half a sample, so the timing mismatch never exceeds a quarter sample).
Correlation runs by overlap-save FFTs (single precision) in fixed blocks of N = 2048 samples aligned to the absolute
sample index, so results do not depend on how the stream is cut.

CFAR, two stages. First: lambda = |r|^2 / (E_p sigma^2) with sigma^2 the noise power per sample
of the block (median of |x|^2 / ln 2, robust to a burst in the block); the state machine runs on it.
Were the noise white, lambda would be exponential with mean 1 and a threshold T would give a
false-alarm probability exp(-T) per test: T = 21 for about 6.5e7 tests per input-hour (3 channels
x 4 codes x 1500 lags/s x 3600 s), ~0.05 false alarms per input-hour. It is not: the comb and the
channelizer colour the noise the way the template is coloured (on white input noise lambda has
mean 1.26, and the false detections were 2.3 per input-hour, all on plain Gaussian noise).
Second stage (:mod:`dsp.cfar_gate`, applied to the peak before it is emitted): lambda / kappa > T,
with kappa >= 1 the noise as this template sees it (the median of its own correlator output
over the block, and the window's mean power against the block's), which restores exp(-T) and
turns down crossings carried by a transient or a few strong samples (impulse residue); it cannot
turn down a decodable burst (see that module).

State machine per code: IDLE -> (lambda > T) -> PEAK (follow the maximum for PEAK_SPAN samples,
a template length: a strong burst has correlation sidelobes (the code repeats every 127 chips, the
T0 path echoes the template one grid period either side) that can cross T before the true peak)
-> emit the maximum -> HOLDOFF (PEAK_SPAN samples past the peak, covering its +T0 echo) -> IDLE.
A detection is released once its burst has passed, and dropped if a detection on the same
channel (any code, this one included) whose burst overlaps it is strong enough to explain it as
a sidelobe (:func:`sidelobe_bound`: the data of a strong burst re-triggers its own and the other
codes' correlators; no long hold-off, so a sidelobe can never mask a real burst) (a real burst 10 dB under another on a spreading factor of 4 could
not be decoded anyway).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import IntEnum
from functools import lru_cache

import numpy as np
import scipy.fft as sfft

from . import params as P
from .cfar_gate import gated_statistic
from .channelizer import DECIMATION, Channelizer
from ._jit import jit
from .codes import chip_code, preamble_bits
from .shaping import rrc

NFFT = 2048  # ~1 s hop: a burst is released at most ~1 s after it ends (latency budget 2 s)
THRESHOLD = 21.0
PEAK_SPAN = 640  # follow the maximum for a template length after the first crossing (0.43 s)
SIDELOBE_DB = 10.8  # a burst's largest sidelobe over other lags and codes, noiseless (measured: -10.6 dB)
PRE_CHIPS = 6.5  # template starts this many chips before the centre of chip 0
TONE_DB = 15.0  # a bin this far over its neighbourhood is narrowband interference (:func:`tone_bins`)
TONE_K = 10 ** (TONE_DB / 10)
TONE_GROUP = 64  # bins per neighbourhood (47 Hz)


def sidelobe_bound(lam: float) -> float:
    """Largest statistic a burst of peak ``lam`` can put on another lag or code of its channel:
    its noiseless sidelobe (SIDELOBE_DB down) plus what noise can add to it (a 4-sigma
    excursion of |s + n|^2 with |s|^2 = the sidelobe, plus the exponential noise alone)."""
    side = lam * 10 ** (-SIDELOBE_DB / 10)
    return side + 4.0 * math.sqrt(side) + 6.0


class DetState(IntEnum):
    IDLE = 0
    PEAK = 1
    HOLDOFF = 2


@dataclass(frozen=True)
class Detection:
    """A preamble found on one channel of one input; times derive from ``start_sample``."""

    channel: int
    code: int
    start_sample: float  # input-rate index (fractional) of the centre of chip 0
    m_peak: int  # baseband index of the correlation peak (template start)
    lambda_peak: float  # CFAR statistic at the peak
    corr: complex  # complex correlation at the peak (its phase is the carrier phase)
    noise_power: float  # per baseband sample, at detection
    sub_phase: int  # which template phase (0 or 1 = half a sample later)


def template(channel: P.Channel, code: int, grid_hz: float, fs_bb: float, phase: float) -> np.ndarray:
    """Received preamble at baseband rate, sample i at time (i + phase)/fs_bb - PRE_CHIPS*Tc."""
    return _template(channel.index, channel.fc_hz, code, grid_hz, fs_bb, phase).copy()


@lru_cache(maxsize=256)
def _template(ch_index: int, fc_hz: float, code: int, grid_hz: float, fs_bb: float, phase: float) -> np.ndarray:
    tc = 1.0 / P.CHIP_RATE_HZ
    t0 = 1.0 / grid_hz
    n_chips = P.PREAMBLE_SYMBOLS * P.CHIPS_PER_SYMBOL
    chips = (1.0 - 2.0 * preamble_bits().astype(float)).repeat(P.CHIPS_PER_SYMBOL) * \
        np.asarray(chip_code(ch_index, code))[np.arange(n_chips) % P.CODE_LENGTH]
    length = int(math.ceil(((n_chips - 1 + 2 * PRE_CHIPS) * tc + t0) * fs_bb)) + 1
    t = (np.arange(length) + phase) / fs_bb - PRE_CHIPS * tc
    w2 = -np.exp(-2j * np.pi * fc_hz * t0)
    out = np.zeros(length, complex)
    for n in range(n_chips):
        for d, w in ((0.0, 1.0), (t0, w2)):
            x = (t - d) / tc - n
            m = np.abs(x) <= PRE_CHIPS
            out[m] += w * chips[n] * _rrc_vec(x[m])
    out.setflags(write=False)
    return out


@lru_cache(maxsize=64)
def _spectra(ch_index: int, fc_hz: float, codes: tuple[int, ...], grid_hz: float, fs_bb: float):
    """(template length, energies, conjugated template spectra) of every code and sub-sample phase,
    shared by every detector of the same channel (read-only)."""
    temps = []
    for code in codes:
        for ph in (0.0, 0.5):
            temps.append(_template(ch_index, fc_hz, code, grid_hz, fs_bb, ph))
    L = max(t.size for t in temps)
    if L >= NFFT // 2:
        raise ValueError("template longer than half the FFT block")
    energy = np.array([np.sum(np.abs(t) ** 2) for t in temps])
    T = np.conj(sfft.fft(np.stack([np.pad(t, (0, NFFT - t.size)) for t in temps]), axis=1)).astype(np.complex64)
    energy.setflags(write=False)
    T.setflags(write=False)
    return L, energy, T


def tone_bins(X: np.ndarray, inband: np.ndarray) -> np.ndarray | None:
    """Bins of the block's spectrum ``X`` inside the template's band (``inband``) that stand
    TONE_DB over their neighbourhood (groups of TONE_GROUP bins, 47 Hz: median power / ln 2), and
    one bin either side; None when there are none (the usual case).

    A non-harmonic tone in the channel (the simulator's interferers: 10-30 dB over N0 in 1 Hz)
    correlates with every code's template at every lag (the preamble's code repeats every 127
    chips, so its spectrum has lines): it raises the second CFAR stage's noise-as-the-template-
    sees-it (dsp.cfar_gate) 2.5-4 times, which turned down bursts at lambda 37-61 in the
    substation channel (4 of 300 at 4.5 dB Eb/N0). Excised here, before the correlations, it is
    gone from both stages. A burst is spread over the band and never crosses 15 dB in a bin;
    white noise does with p = exp(-31.6) per bin."""
    hit = np.zeros(X.shape[0], np.bool_)
    if _tone_kernel(X, inband, TONE_GROUP, TONE_K / math.log(2.0), hit) == 0:
        return None
    return hit


@jit
def _select(a, k):
    """Reorder ``a`` in place so that a[k] is its (k+1)-th smallest value, a[:k] <= a[k] (quickselect)."""
    lo, hi = 0, a.shape[0] - 1
    while lo < hi:
        pivot = a[(lo + hi) // 2]
        i, j = lo, hi
        while i <= j:
            while a[i] < pivot:
                i += 1
            while a[j] > pivot:
                j -= 1
            if i <= j:
                a[i], a[j] = a[j], a[i]
                i += 1
                j -= 1
        if k <= j:
            hi = j
        elif k >= i:
            lo = i
        else:
            break
    return a[k]


@jit
def _tone_kernel(X, inband, group, k_over_ln2, hit):
    """The work of :func:`tone_bins` (a median per group, a compare per bin, the one-bin guard);
    returns the number of bins marked in ``hit``."""
    n = X.shape[0]
    pw = np.empty(n, np.float32)
    for i in range(n):
        pw[i] = X[i].real * X[i].real + X[i].imag * X[i].imag
    scratch = np.empty(group, np.float32)
    half = group // 2
    found = 0
    for g in range(n // group):
        scratch[:] = pw[g * group:(g + 1) * group]
        upper = _select(scratch, half)  # the median of an even count: mean of the two middle values
        lower = scratch[0]
        for i in range(1, half):
            if scratch[i] > lower:
                lower = scratch[i]
        lim = np.float32(k_over_ln2) * ((lower + upper) / np.float32(2.0))
        for i in range(g * group, (g + 1) * group):
            if inband[i] and pw[i] > lim:
                found += 1
                for j in range(max(i - 1, 0), min(i + 2, n)):
                    if inband[j]:
                        hit[j] = True
    if found == 0:
        return 0
    m = 0
    for i in range(n):
        if hit[i]:
            m += 1
    return m


def _rrc_vec(x: np.ndarray) -> np.ndarray:
    return np.array([rrc(float(v), P.RRC_BETA) for v in x])


@jit
def _statistic(r, den, ncode):
    """lambda = |r|^2 / den of both template phases of every code (rows 2 code + phase of ``r``),
    the larger of the two per lag (phase 0 on ties), which phase it was, and each code's maximum.
    Single precision, as the correlation."""
    hop = r.shape[1]
    lam_c = np.empty((ncode, hop), dtype=np.float32)
    best = np.empty((ncode, hop), dtype=np.int8)
    row_max = np.empty(ncode, dtype=np.float32)
    for ci in range(ncode):
        r0 = r[2 * ci]
        r1 = r[2 * ci + 1]
        d0 = den[2 * ci]
        d1 = den[2 * ci + 1]
        mx = np.float32(-np.inf)
        for i in range(hop):
            a = r0[i]
            b = r1[i]
            l0 = (a.real * a.real + a.imag * a.imag) / d0
            l1 = (b.real * b.real + b.imag * b.imag) / d1
            if l1 > l0:
                lam_c[ci, i] = l1
                best[ci, i] = 1
                v = l1
            else:
                lam_c[ci, i] = l0
                best[ci, i] = 0
                v = l0
            if v > mx:
                mx = v
        row_max[ci] = mx
    return lam_c, best, row_max


@dataclass
class _CodeSM:
    state: DetState = DetState.IDLE
    best_lambda: float = 0.0
    best_m: int = -1
    best_corr: complex = 0j
    best_phase: int = 0
    best_noise: float = 0.0
    best_win: np.ndarray | None = None  # baseband under the best lag's template window
    best_row: np.ndarray | None = None  # its template's correlator output over that block
    since_best: int = 0
    first_m: int = -1
    holdoff_until: int = -1


@dataclass
class DetectorState:
    buf: np.ndarray  # samples not yet consumed by a full block
    buf_start: int  # baseband index of buf[0]
    sms: list = field(default_factory=list)
    pending: list = field(default_factory=list)  # detections waiting for their burst to pass
    recent: list = field(default_factory=list)  # released or dropped ones, for the rival check
    n_tests: int = 0
    dropped: int = 0
    gated: int = 0  # crossings the second CFAR stage (dsp.cfar_gate) turned down
    tone_blocks: int = 0  # blocks with narrowband interference excised (:func:`tone_bins`)

    def copy(self) -> "DetectorState":
        return DetectorState(self.buf.copy(), self.buf_start, [(_CodeSM(**vars(s))) for s in self.sms],
                             list(self.pending), list(self.recent), self.n_tests, self.dropped, self.gated,
                             self.tone_blocks)


class PreambleDetector:
    """Streaming detector for one channel of one input."""

    def __init__(self, channel: P.Channel, grid_hz: float = 60.0, fs_bb: float = 48000.0 / DECIMATION,
                 threshold: float = THRESHOLD, codes: tuple[int, ...] = tuple(range(P.CODES_PER_CHANNEL))) -> None:
        if threshold <= 0:
            raise ValueError("threshold must be positive")
        self.channel, self.grid_hz, self.fs_bb, self.threshold, self.codes = channel, grid_hz, fs_bb, threshold, codes
        self.L, self.energy, self.T = _spectra(channel.index, channel.fc_hz, tuple(codes), grid_hz, fs_bb)
        self.inband = np.abs(sfft.fftfreq(NFFT, 1.0 / fs_bb)) <= channel.bandwidth_hz / 2  # the template's band
        self.hop = NFFT - self.L + 1
        self.burst_bb = int((P.burst_duration_s() + 1.0 / grid_hz) * fs_bb)
        self.reset()

    def reset(self) -> None:
        self.state = DetectorState(np.zeros(0, complex), 0, [_CodeSM() for _ in self.codes])

    def copy(self) -> "PreambleDetector":
        d = PreambleDetector.__new__(PreambleDetector)
        d.__dict__.update(self.__dict__)
        d.state = self.state.copy()
        return d

    def start_sample(self, m: float, sub_phase: int) -> float:
        """Input-rate index of the centre of chip 0 for a template that starts at baseband m."""
        return Channelizer.input_index(m) - DECIMATION * 0.5 * sub_phase + PRE_CHIPS * 48000.0 / P.CHIP_RATE_HZ

    def process(self, x: np.ndarray) -> list[Detection]:
        x = np.asarray(x)
        if x.ndim != 1 or x.dtype.kind != "c":
            raise ValueError(f"the detector takes one channel of complex baseband, got {x.dtype} {x.shape}")
        s = self.state
        s.buf = np.concatenate([s.buf, x.astype(complex)])
        out: list[Detection] = []
        while s.buf.size >= NFFT:
            out.extend(self._block(s.buf[:NFFT], s.buf_start))
            s.buf = s.buf[self.hop:]
            s.buf_start += self.hop
        return out

    def _skip(self, m0: int) -> None:
        for sm in self.state.sms:
            if sm.state == DetState.PEAK:
                sm.state = DetState.IDLE

    def _block(self, blk: np.ndarray, m0: int) -> list[Detection]:
        s = self.state
        b32 = blk.astype(np.complex64)
        p = b32.real * b32.real + b32.imag * b32.imag
        live = p[p > 0]  # blanked samples (and the comb's settling) are exact zeros
        if live.size < NFFT // 2:
            self._skip(m0)
            return []  # mostly blanked or silent: nothing reliable to detect
        X = sfft.fft(b32)
        hit = tone_bins(X, self.inband)
        if hit is not None:  # narrowband interference in the channel: out of the block, then the noise
            s.tone_blocks += 1
            X[hit] = 0.0
            zero = p == 0
            b32 = sfft.ifft(X)
            b32[zero] = 0.0
            p = b32.real * b32.real + b32.imag * b32.imag
            live = p[p > 0]
        noise = float(np.partition(live, live.size // 2)[live.size // 2] / math.log(2.0))
        r = sfft.ifft(X[None, :] * self.T, axis=1, overwrite_x=True)[:, : self.hop]
        ncode = len(self.codes)
        lam_c, best_phase, row_max = _statistic(r, (self.energy * noise).astype(np.float32), ncode)
        s.n_tests += 2 * lam_c.size
        found: list[Detection] = []
        for ci in range(ncode):
            sm = s.sms[ci]
            row = lam_c[ci]
            if sm.state == DetState.IDLE and not (row_max[ci] > self.threshold):
                continue
            i = 0
            hop = self.hop
            while i < hop:
                if sm.state == DetState.HOLDOFF:
                    i = max(i, sm.holdoff_until - m0)
                    if i >= hop:
                        break
                    sm.state = DetState.IDLE
                if sm.state == DetState.IDLE:
                    above = np.flatnonzero(row[i:] > self.threshold)
                    if above.size == 0:
                        break
                    i += int(above[0])
                    sm.state, sm.first_m, sm.best_lambda = DetState.PEAK, m0 + i, -1.0
                # PEAK: the maximum over [first_m, first_m + PEAK_SPAN]
                e = sm.first_m + PEAK_SPAN + 1 - m0
                seg = row[i:min(e, hop)]
                k = int(np.argmax(seg))
                if seg[k] > sm.best_lambda:
                    j = i + k
                    ph = int(best_phase[ci, j])
                    sm.best_lambda, sm.best_m, sm.best_phase = float(seg[k]), m0 + j, ph
                    sm.best_corr, sm.best_noise = complex(r[2 * ci + ph, j]), noise
                    sm.best_win, sm.best_row = b32[j:j + self.L].copy(), r[2 * ci + ph].copy()  # for the 2nd stage
                if e > hop:
                    break  # the window goes on in the next block
                if self._passes(ci, sm):
                    found.append(Detection(self.channel.index, self.codes[ci], self.start_sample(sm.best_m, sm.best_phase),
                                           sm.best_m, sm.best_lambda, sm.best_corr, sm.best_noise, sm.best_phase))
                    sm.state = DetState.HOLDOFF  # only past this peak's own echoes (+T0)
                    sm.holdoff_until = sm.best_m + PEAK_SPAN
                else:
                    sm.state = DetState.IDLE  # noise: no echoes to hold off
                i = e
        s.pending.extend(found)
        return self._release(m0 + self.hop)

    def flush(self) -> list[Detection]:
        """End of stream: release everything still pending (after the rival check)."""
        s = self.state
        for ci, sm in enumerate(s.sms):
            if sm.state == DetState.PEAK:
                if self._passes(ci, sm):
                    s.pending.append(Detection(self.channel.index, self.codes[ci], self.start_sample(sm.best_m, sm.best_phase),
                                               sm.best_m, sm.best_lambda, sm.best_corr, sm.best_noise, sm.best_phase))
                sm.state = DetState.IDLE
        return self._release(10**18)

    def _passes(self, ci: int, sm: _CodeSM) -> bool:
        """Second CFAR stage (dsp.cfar_gate): the peak re-normalised by the noise as its template
        sees it must still cross the threshold."""
        k = 2 * ci + sm.best_phase
        tp = _template(self.channel.index, self.channel.fc_hz, self.codes[ci], self.grid_hz, self.fs_bb, 0.5 * sm.best_phase)
        if gated_statistic(sm.best_win[:tp.size], tp, sm.best_row, float(self.energy[k]), sm.best_noise) > self.threshold:
            return True
        self.state.gated += 1
        return False

    def _release(self, now: int) -> list[Detection]:
        """Release detections whose burst has passed, unless a much stronger overlapping one exists."""
        s = self.state
        out = []
        still = []
        for d in s.pending:
            if d.m_peak + self.burst_bb > now:
                still.append(d)
                continue
            rivals = s.pending + s.recent
            if any(o is not d and abs(o.m_peak - d.m_peak) < self.burst_bb and d.lambda_peak < sidelobe_bound(o.lambda_peak)
                   for o in rivals):
                s.dropped += 1
                continue
            out.append(d)
        s.recent = [d for d in s.recent + out + [d for d in s.pending if d not in still and d not in out]
                    if d.m_peak > now - 3 * self.burst_bb]
        s.pending = still
        return sorted(out, key=lambda d: d.m_peak)
