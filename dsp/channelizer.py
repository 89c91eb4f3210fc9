"""Channelizer: comb-filtered real input at fs -> complex baseband of every channel at fs / 32.

Stage A shifts the middle of the channel plan to 0 Hz and decimates by 8 (48 kHz -> 6 kHz) with a
Kaiser FIR (61 taps, flat over the plan's +-1.41 kHz, 63.8 dB down from 4.59 kHz where aliases
would fold into the plan), computed every 8th input sample on the mixed input. Stage B shifts each channel
to 0 Hz and decimates by 4 (-> 1.5 kHz, 2.08 samples per chip) with a second Kaiser FIR (41 taps,
flat to +-450 Hz, 63.7 dB down from 1.05 kHz; both designed for 65 dB with the Kaiser formula).
Both mixers read exact periodic tables indexed by the absolute sample number, so the output does
not depend on how the input is cut, and the carrier phase of every channel is referenced to
absolute time.

Impulse blanking follows the filters: :mod:`dsp.blanker` (switching transients and their comb
echoes are zeroed; bursts, however strong, are not). It holds back the newest ``blanker.DELAY``
baseband samples (0.15 s) until it has decided on them; output sample m of a channel (counted
from the start of the stream) is the baseband value at input sample ``32 m + 31 - DELAY``
(DELAY = 30 + 8 * 20 = 190; see :meth:`Channelizer.input_index`).
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

import numpy as np
from scipy import signal

from . import blanker
from . import params as P
from ._jit import jit
from .comb import RHO as COMB_RHO

STOP_DB = 65.0  # noise, neighbouring channels and comb residue alias 65 dB down: far under the noise
DEC_A = 8
DEC_B = 4
DECIMATION = DEC_A * DEC_B
TAPS_A = 61
TAPS_B = 41
GD_A = (TAPS_A - 1) // 2
DELAY = GD_A + DEC_A * (TAPS_B - 1) // 2


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
    tabs = [_lo_table(fc - f_mid_hz, fs_hz) for fc in fcs]
    period = int(np.lcm.reduce([t.size for t in tabs]))
    lo_b = np.stack([np.tile(t, period // t.size) for t in tabs])
    # the kernel's layout: real and imaginary parts apart, oldest sample's tap first
    # padded with zero taps (in front: older samples) to a multiple of 16, the vectorised loop's step
    pad_a, pad_b = -TAPS_A % 16, -TAPS_B % 16
    har = np.ascontiguousarray(np.pad(ha[::-1], (pad_a, 0)))
    hbr = np.ascontiguousarray(np.pad(hb[::-1], (pad_b, 0)))
    for a in (ha, hb, lo_a, lo_b, har, hbr):
        a.setflags(write=False)
    return ha, hb, lo_a, lo_b, har, hbr


@dataclass
class ChannelizerState:
    n: int  # absolute input index of the next sample
    hist_a: np.ndarray  # (re/im, doubled ring) of mixed input samples
    hist_b: np.ndarray  # (channels, re/im, doubled ring) of stage-B inputs (mixed per channel)
    m_a: int  # stage-A outputs produced so far
    m_out: int  # filter outputs produced so far (per channel; all channels in step)

    def copy(self) -> "ChannelizerState":
        return ChannelizerState(self.n, self.hist_a.copy(), self.hist_b.copy(), self.m_a, self.m_out)


@jit(fastmath={"reassoc", "contract"})
def channelize_kernel(x, n0, lo_a, hr, hbr, lo_b, xbuf, bbuf, m_a, m_out, out):
    """Returns (n, m_a, m_out, number of outputs written into ``out`` (channels, max)).

    Stage A mixes each input sample with ``lo_a`` (one exact period, indexed by the absolute
    sample number) into the rings ``xbuf`` (re/im), then filters them with the real taps ``hr``
    (the same values as the polyphase form with the mixer in the taps, a table 200 times as large
    that did not stay in the cache). ``xbuf`` / ``bbuf`` (channels, re/im, ring) are doubled ring
    buffers (each value written twice, R apart) so that every filter reads one contiguous run; the
    taps are stored oldest sample first (``hr[s]`` multiplies the sample la - 1 - s back).

    Compiled with reassociation (and fused multiply-add) allowed, so that the dot products
    are vectorised: the sums are in another order than a plain loop's (a few ulp), always the
    same for a given output, whatever the cut of the stream. No other fast-math flag: the
    channelizer never sees a non-finite sample (the comb replaces them, ``process`` checks)."""
    ra = xbuf.shape[1] // 2
    rb = bbuf.shape[2] // 2
    la = hr.shape[0]
    lb = hbr.shape[0]
    nch = lo_b.shape[0]
    pb = lo_b.shape[1]
    pa = lo_a.shape[0]
    w = 0
    ib = m_a % rb - 1
    pha = m_a % DEC_B - 1
    jb = (n0 + (DEC_A - 1 - n0 % DEC_A) - GD_A) % pb
    nx = x.shape[0]
    k0 = 0
    while k0 < nx:
        ia0 = (n0 + k0) % ra
        run = min(nx - k0, ra - ia0)
        qa = (n0 + k0) % pa
        xr = xbuf[0]
        xi = xbuf[1]
        for t in range(run):
            lo = lo_a[qa]
            v = x[k0 + t]
            xr[ia0 + ra + t] = v * lo.real
            xi[ia0 + ra + t] = v * lo.imag
            qa += 1
            if qa == pa:
                qa = 0
        first = (DEC_A - 1 - (n0 + k0) % DEC_A)
        k0 += run
        for ia in range(ia0 + first, ia0 + run, DEC_A):
            sr = xr[ia + ra - (la - 1):ia + ra + 1]
            si = xi[ia + ra - (la - 1):ia + ra + 1]
            acc_r = 0.0
            acc_i = 0.0
            for t in range(la):
                acc_r += sr[t] * hr[t]
                acc_i += si[t] * hr[t]
            m_a += 1
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
                out[c, w] = complex(yr, yi)
            m_out += 1
            w += 1
        for t in range(run):
            xr[ia0 + t] = xr[ia0 + ra + t]
            xi[ia0 + t] = xi[ia0 + ra + t]
    return n0 + x.shape[0], m_a, m_out, w

class Channelizer:
    """Streaming channelizer for one input; ``process`` returns (channels, n_out) complex128."""

    def __init__(self, plan: P.ChannelPlan, fs_hz: float = 48000.0, blank_k: float = blanker.BLANK_K) -> None:
        if fs_hz != 48000.0:
            raise ValueError(f"the channelizer is designed for 48 kHz input, got fs_hz={fs_hz}")
        self.plan, self.fs_hz, self.blank_k = plan, float(fs_hz), float(blank_k)
        self.out_rate_hz = fs_hz / DECIMATION
        fcs = [c.fc_hz for c in plan.channels]
        self.f_mid_hz = (min(fcs) + max(fcs)) / 2
        for c in plan.channels:
            if abs(c.fc_hz - self.f_mid_hz) + c.bandwidth_hz / 2 > 1500.0:
                raise ValueError(f"channel {c.index} at {c.fc_hz} Hz is outside the channelizer's +-1.5 kHz span")
        self.ha, self.hb, self.lo_a, self.lo_b, self._har, self._hbr = _tables(tuple(fcs), self.f_mid_hz, self.fs_hz)
        period = self.out_rate_hz / plan.grid_hz
        if period != int(period):
            raise ValueError(f"grid {plan.grid_hz} Hz is not a whole number of baseband samples per cycle")
        self.blanker = blanker.ImpulseBlanker(len(fcs), int(period), COMB_RHO, blank_k)
        self.reset()

    @property
    def n_channels(self) -> int:
        return self.lo_b.shape[0]

    @staticmethod
    def input_index(m):
        """Input sample index (at fs) whose baseband value is output sample ``m``."""
        return DECIMATION * m + (DECIMATION - 1) - DELAY

    def reset(self) -> None:
        nch = self.n_channels
        self.state = ChannelizerState(0, np.zeros((2, 2 * 128)), np.zeros((nch, 2, 2 * 64)), 0, 0)
        self.blanker.reset()

    def copy(self) -> "Channelizer":
        c = Channelizer.__new__(Channelizer)
        c.__dict__.update(self.__dict__)
        c.state = self.state.copy()
        c.blanker = self.blanker.copy()
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
        s.n, s.m_a, s.m_out, w = channelize_kernel(x, s.n, self.lo_a, self._har, self._hbr, self.lo_b, s.hist_a,
                                                    s.hist_b, s.m_a, s.m_out, out)
        return self.blanker.process(out[:, :w])

    def flush(self) -> np.ndarray:
        """End of stream: the samples the blanker still holds back (see :meth:`ImpulseBlanker.flush`)."""
        return self.blanker.flush()

    @property
    def m_out(self) -> int:
        """Output samples produced so far (per channel)."""
        return max(0, self.blanker.state.a - blanker.DELAY)

    @property
    def blanked(self) -> np.ndarray:
        """Non-zero baseband samples zeroed by the impulse blanker, per channel."""
        return self.blanker.state.blanked.copy()

    @property
    def noise_power(self) -> np.ndarray:
        return self.blanker.state.noise_pow.copy()
