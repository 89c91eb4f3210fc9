"""Channelizer: comb-filtered real input at fs -> complex baseband of every channel at fs / 32.

Stage A shifts the middle of the channel plan to 0 Hz and decimates by 8 (48 kHz -> 6 kHz) with a
Kaiser FIR (61 taps, flat over the plan's +-1.41 kHz, 63.8 dB down from 4.59 kHz where aliases
would fold into the plan), as a polyphase filter whose taps carry the mixer. Stage B shifts each channel
to 0 Hz and decimates by 4 (-> 1.5 kHz, 2.08 samples per chip) with a second Kaiser FIR (41 taps,
flat to +-450 Hz, 63.7 dB down from 1.05 kHz; both designed for 65 dB with the Kaiser formula).
Both mixers read exact periodic tables indexed by the absolute sample number, so the output does
not depend on how the input is cut, and the carrier phase of every channel is referenced to
absolute time: output sample m of a channel is the baseband value at input sample
32 m + 31 - DELAY - 32 BLANK_HALF = 32 m - 671 (DELAY = 30 + 8 * 20 = 190; see
:meth:`Channelizer.input_index`).

Impulse blanking: a switching transient is far above the noise at baseband. Each channel keeps a
slow estimate of its noise power; a sample above BLANK_K^2 times that estimate zeroes itself and
the BLANK_HALF samples on each side (the output is delayed by BLANK_HALF samples for this).
(Output sample m is then the baseband value at input sample 32 m - 264 - 32 * BLANK_HALF.) Wanted
bursts sit below the noise per sample, so they never trigger it; blanked samples are counted.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

import numpy as np
from scipy import signal

from . import params as P
from ._jit import jit

STOP_DB = 65.0  # noise, neighbouring channels and comb residue alias 65 dB down: far under the noise
DEC_A = 8
DEC_B = 4
DECIMATION = DEC_A * DEC_B
TAPS_A = 61
TAPS_B = 41
GD_A = (TAPS_A - 1) // 2
DELAY = GD_A + DEC_A * (TAPS_B - 1) // 2
BLANK_K = 4.5  # threshold in noise RMS (Gaussian noise alone exceeds it with p = exp(-20): < 0.02/hour)
BLANK_HALF = 16
NOISE_ALPHA = 1.0 / 3000.0  # noise power tracker: ~2 s time constant at 1.5 kHz
WARMUP = 96  # outputs (64 ms): the noise estimate starts from their median (robust to an impulse)


def _lo_table(freq_hz: float, fs_hz: float) -> np.ndarray:
    """exp(-j 2 pi f n / fs) over one exact period (f / fs must be a simple fraction)."""
    fr = Fraction(freq_hz / fs_hz).limit_denominator(200000)
    if abs(float(fr) - freq_hz / fs_hz) > 1e-12:
        raise ValueError(f"{freq_hz} Hz is not a rational fraction of {fs_hz} Hz")
    period = fr.denominator
    n = np.arange(period)
    return np.exp(-2j * np.pi * fr.numerator * n / period)


def design(fs_hz: float) -> tuple[np.ndarray, np.ndarray]:
    beta = signal.kaiser_beta(STOP_DB)
    ha = signal.firwin(TAPS_A, 3000.0, window=("kaiser", beta), fs=fs_hz)
    hb = signal.firwin(TAPS_B, 750.0, window=("kaiser", beta), fs=fs_hz / DEC_A)
    return ha, hb


@lru_cache(maxsize=16)
def _tables(fcs: tuple[float, ...], f_mid_hz: float, fs_hz: float):
    """Filters and mixer tables, shared by every channelizer of the same plan (read-only)."""
    ha, hb = design(fs_hz)
    lo_a = _lo_table(f_mid_hz, fs_hz)
    # polyphase stage A: output ma is at input index 8 ma + 7; its mixer phase repeats with
    # period lcm(P_a, 8) / 8 outputs
    pa = lo_a.size
    nq = int(np.lcm(pa, DEC_A) // DEC_A)
    t = np.arange(TAPS_A)
    hq = np.stack([ha * lo_a[(DEC_A * q + DEC_A - 1 - t) % pa] for q in range(nq)])
    tabs = [_lo_table(fc - f_mid_hz, fs_hz) for fc in fcs]
    period = int(np.lcm.reduce([t.size for t in tabs]))
    lo_b = np.stack([np.tile(t, period // t.size) for t in tabs])
    # the kernel's layout: real and imaginary parts apart, oldest sample's tap first
    # padded with zero taps (in front: older samples) to a multiple of 16, the vectorised loop's step
    pad_a, pad_b = -TAPS_A % 16, -TAPS_B % 16
    hqr = np.ascontiguousarray(np.pad(hq.real[:, ::-1], ((0, 0), (pad_a, 0))))
    hqi = np.ascontiguousarray(np.pad(hq.imag[:, ::-1], ((0, 0), (pad_a, 0))))
    hbr = np.ascontiguousarray(np.pad(hb[::-1], (pad_b, 0)))
    for a in (ha, hb, lo_a, hq, lo_b, hqr, hqi, hbr):
        a.setflags(write=False)
    return ha, hb, lo_a, hq, lo_b, hqr, hqi, hbr


@dataclass
class ChannelizerState:
    n: int  # absolute input index of the next sample
    hist_a: np.ndarray  # doubled ring of real input samples
    hist_b: np.ndarray  # (channels, re/im, doubled ring) of stage-B inputs (mixed per channel)
    m_a: int  # stage-A outputs produced so far
    delay_line: np.ndarray  # (channels, 2*BLANK_HALF+1) complex, pending outputs
    blank_left: np.ndarray  # (channels,) samples still to blank
    noise_pow: np.ndarray  # (channels,) running noise power estimate
    warm: np.ndarray  # (channels,) outputs collected so far during warm-up
    warm_buf: np.ndarray  # (channels, WARMUP) their powers
    m_out: int  # outputs produced so far (per channel; all channels in step)
    blanked: np.ndarray  # (channels,) counters

    def copy(self) -> "ChannelizerState":
        return ChannelizerState(self.n, self.hist_a.copy(), self.hist_b.copy(), self.m_a, self.delay_line.copy(),
                                self.blank_left.copy(), self.noise_pow.copy(), self.warm.copy(), self.warm_buf.copy(),
                                self.m_out, self.blanked.copy())


@jit(fastmath={"reassoc", "contract"})
def channelize_kernel(x, n0, hqr, hqi, hbr, lo_b, xbuf, bbuf, m_a, delay_line, blank_left, noise_pow, warm, warm_buf,
                      m_out, blanked, out, k2, alpha):
    """Returns (n, m_a, m_out, number of outputs written into ``out`` (channels, max)).

    Stage A is polyphase: ``hqr[q] + j hqi[q]`` are the taps already multiplied by the mixer
    (output phase q = stage-A output index modulo the mixer period), so the real input is
    filtered directly. ``xbuf`` / ``bbuf`` (channels, re/im, ring) are doubled ring buffers (each
    value written twice, R apart) so that every filter reads one contiguous run; the taps are
    stored oldest sample first (``hqr[q, s]`` multiplies the sample la - 1 - s back).

    Compiled with reassociation (and fused multiply-add) allowed, so that the dot products
    are vectorised: the sums are in another order than a plain loop's (a few ulp), always the
    same for a given output, whatever the cut of the stream. No other fast-math flag: the
    channelizer never sees a non-finite sample (the comb replaces them, ``process`` checks)."""
    ra = xbuf.shape[0] // 2
    rb = bbuf.shape[2] // 2
    la = hqr.shape[1]
    lb = hbr.shape[0]
    nq = hqr.shape[0]
    nch = lo_b.shape[0]
    pb = lo_b.shape[1]
    dl = delay_line.shape[1]
    w = 0
    n = n0
    # ring positions and phases kept as counters (no integer division per sample)
    q = m_a % nq  # phase of the next stage-A output
    ib = m_a % rb - 1  # ring slot of the last stage-A output
    pha = m_a % DEC_B - 1
    jb = (n0 + (DEC_A - 1 - n0 % DEC_A) - GD_A) % pb  # mixer phase of the next stage-A output
    slot = m_out % dl
    nx = x.shape[0]
    k0 = 0
    while k0 < nx:
        # a run of input up to the end of the ring: copied into the upper copy, then the
        # stage-A outputs that fall in it (their windows read the lower copy above their own
        # slot: the previous lap's samples), then into the lower copy
        ia0 = (n0 + k0) % ra
        run = min(nx - k0, ra - ia0)
        for t in range(run):
            xbuf[ia0 + ra + t] = x[k0 + t]
        first = (DEC_A - 1 - (n0 + k0) % DEC_A)  # offset of the first output (input index 8 m + 7)
        k0 += run
        for ia in range(ia0 + first, ia0 + run, DEC_A):
            # stage A output at input index n: sum_t x[n - t] hq[q, t]
            xs = xbuf[ia + ra - (la - 1):ia + ra + 1]
            hr = hqr[q]
            hi = hqi[q]
            acc_r = 0.0
            acc_i = 0.0
            for t in range(la):
                acc_r += xs[t] * hr[t]
                acc_i += xs[t] * hi[t]
            m_a += 1
            q += 1
            if q == nq:
                q = 0
            ib += 1
            if ib == rb:
                ib = 0
            for c in range(nch):
                lo = lo_b[c, jb]
                vr = acc_r * lo.real - acc_i * lo.imag
                vi = acc_r * lo.imag + acc_i * lo.real
                bbuf[c, 0, ib] = vr
                bbuf[c, 0, ib + rb] = vr
                bbuf[c, 1, ib] = vi
                bbuf[c, 1, ib + rb] = vi
            jb += DEC_A
            if jb >= pb:
                jb -= pb
            pha += 1
            if pha == DEC_B:
                pha = 0
            if pha != DEC_B - 1:
                continue
            for c in range(nch):
                zr = bbuf[c, 0, ib + rb - (lb - 1):ib + rb + 1]
                zi = bbuf[c, 1, ib + rb - (lb - 1):ib + rb + 1]
                yr = 0.0
                yi = 0.0
                for t in range(lb):
                    yr += hbr[t] * zr[t]
                    yi += hbr[t] * zi[t]
                yb = complex(yr, yi)
                p = yr * yr + yi * yi
                np_est = noise_pow[c]
                if warm[c] < WARMUP:  # first outputs of signal: collect, then start from their median
                    if p > 0.0:
                        warm_buf[c, warm[c]] = p
                        warm[c] += 1
                        if warm[c] == WARMUP:
                            noise_pow[c] = np.median(warm_buf[c]) / math.log(2.0)
                elif p > k2 * np_est:
                    blank_left[c] = dl  # blank the pending samples and the coming ones
                    for i in range(dl):
                        if delay_line[c, i] != 0:
                            blanked[c] += 1
                        delay_line[c, i] = 0.0
                    noise_pow[c] = np_est + alpha * (k2 - 1.0) * np_est  # lets a real rise of the floor through
                else:
                    noise_pow[c] = np_est + alpha * (p - np_est)
                outv = delay_line[c, slot]
                if blank_left[c] > 0:
                    blank_left[c] -= 1
                    if yb != 0:
                        blanked[c] += 1
                    yb = 0.0
                delay_line[c, slot] = yb
                out[c, w] = outv
            m_out += 1
            slot += 1
            if slot == dl:
                slot = 0
            w += 1
        for t in range(run):
            xbuf[ia0 + t] = xbuf[ia0 + ra + t]
    return n0 + x.shape[0], m_a, m_out, w


class Channelizer:
    """Streaming channelizer for one input; ``process`` returns (channels, n_out) complex128."""

    def __init__(self, plan: P.ChannelPlan, fs_hz: float = 48000.0, blank_k: float = BLANK_K) -> None:
        if fs_hz != 48000.0:
            raise ValueError(f"the channelizer is designed for 48 kHz input, got fs_hz={fs_hz}")
        if not blank_k > 0:
            raise ValueError(f"blank_k must be positive, got {blank_k}")
        self.plan, self.fs_hz, self.blank_k = plan, float(fs_hz), float(blank_k)
        self.out_rate_hz = fs_hz / DECIMATION
        fcs = [c.fc_hz for c in plan.channels]
        self.f_mid_hz = (min(fcs) + max(fcs)) / 2
        for c in plan.channels:
            if abs(c.fc_hz - self.f_mid_hz) + c.bandwidth_hz / 2 > 1500.0:
                raise ValueError(f"channel {c.index} at {c.fc_hz} Hz is outside the channelizer's +-1.5 kHz span")
        self.ha, self.hb, self.lo_a, self.hq, self.lo_b, self._hqr, self._hqi, self._hbr = _tables(tuple(fcs), self.f_mid_hz, self.fs_hz)
        self.reset()

    @property
    def n_channels(self) -> int:
        return self.lo_b.shape[0]

    @staticmethod
    def input_index(m):
        """Input sample index (at fs) whose baseband value is output sample ``m``."""
        return DECIMATION * m + (DECIMATION - 1) - DELAY - DECIMATION * BLANK_HALF

    def reset(self) -> None:
        nch = self.n_channels
        dl = BLANK_HALF
        self.state = ChannelizerState(0, np.zeros(2 * 128), np.zeros((nch, 2, 2 * 64)), 0,
                                      np.zeros((nch, dl), complex), np.zeros(nch, np.int64), np.zeros(nch),
                                      np.zeros(nch, np.int64), np.zeros((nch, WARMUP)), 0, np.zeros(nch, np.int64))

    def copy(self) -> "Channelizer":
        c = Channelizer.__new__(Channelizer)
        c.__dict__.update(self.__dict__)
        c.state = self.state.copy()
        return c

    def process(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim != 1 or x.dtype.kind not in "fiu":
            raise ValueError(f"the channelizer takes one real input at a time: {x.dtype} {x.shape}")
        x = x.astype(np.float64, copy=False)
        if not np.all(np.isfinite(x)):
            raise ValueError("non-finite samples: the comb (dsp.comb) replaces them before the channelizer")
        s = self.state
        out = np.empty((self.n_channels, x.size // DECIMATION + 2), complex)
        s.n, s.m_a, s.m_out, w = channelize_kernel(
            x, s.n, self._hqr, self._hqi, self._hbr, self.lo_b, s.hist_a, s.hist_b, s.m_a, s.delay_line, s.blank_left,
            s.noise_pow, s.warm, s.warm_buf, s.m_out, s.blanked, out, self.blank_k**2, NOISE_ALPHA)
        return out[:, :w]

    @property
    def noise_power(self) -> np.ndarray:
        return self.state.noise_pow.copy()
