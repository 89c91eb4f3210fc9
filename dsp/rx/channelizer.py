"""Channelizer: comb-filtered real input at fs -> complex baseband of every channel at fs / 32.

Stage A shifts the middle of the channel plan to 0 Hz and decimates by 8 (48 kHz -> 6 kHz) with a
Kaiser FIR (61 taps, flat over the plan's +-1.41 kHz, 63.8 dB down from 4.59 kHz where aliases
would fold into the plan), computed every 8th input sample. Its mixer rides in its taps: mixing
x[m] by exp(-j w m) and filtering with h is exp(-j w n) times x filtered with h[t] exp(j w t), so
each output is a dot product of the real input with fixed complex taps, turned once by the mixer
at its own index n (no mixed copy of the 48 kHz input is ever made). Stage B shifts each channel
to 0 Hz and decimates by 4 (-> 1.5 kHz, 2.08 samples per chip) with a second Kaiser FIR (41 taps,
flat to +-450 Hz, 63.7 dB down from 1.05 kHz; both designed for 65 dB with the Kaiser formula).
Both mixers read exact periodic tables indexed by the absolute sample number, so the output does
not depend on how the input is cut, and the carrier phase of every channel is referenced to
absolute time.

Precision. The filters run in single precision (the comb's output type; taps, buffers and sums),
the mixer tables and the stage-A turn in double. Against the plain double-precision reference
(tests/naive.py) the outputs differ by ~1e-7 of their scale, ~140 dB under the signal and far
under the noise the comb leaves. Single precision and the mixer in the taps together took the
channelizer (blanker included) from 4.4 to 3.3 ns per input sample (one paired measurement on
this project's AVX-512 machine).

Impulse blanking follows the filters: :mod:`dsp.rx.blanker` (switching transients and their comb
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
from scipy.special import i0

from dsp.air import params as P
from dsp.numba_settings import jit
from dsp.rx import blanker
from dsp.rx.comb import RHO as COMB_RHO

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
    """The taps of stage A (cut-off 3 kHz at fs) and stage B (750 Hz at fs / 8): Kaiser windows
    for STOP_DB, as ``scipy.signal.firwin(taps, cutoff, window=("kaiser",
    scipy.signal.kaiser_beta(STOP_DB)), fs=...)`` makes them (:func:`kaiser_lowpass`)."""
    return kaiser_lowpass(TAPS_A, 3000.0, fs_hz, STOP_DB), kaiser_lowpass(TAPS_B, 750.0, fs_hz / DEC_A, STOP_DB)


def kaiser_lowpass(numtaps: int, cutoff_hz: float, fs_hz: float, stop_db: float) -> np.ndarray:
    """Linear-phase low-pass FIR by the Kaiser window method, unit gain at 0 Hz: the values of
    ``scipy.signal.firwin(numtaps, cutoff_hz, window=("kaiser", kaiser_beta(stop_db)),
    fs=fs_hz)`` by the same arithmetic, bit for bit (tests/test_channelizer.py checks it), here
    so that the receiver does not import scipy.signal (about 1.2 s of start-up: it pulls in
    scipy.stats, scipy.interpolate, scipy.optimize and scipy.spatial for these few lines)."""
    a = stop_db  # scipy.signal.kaiser_beta (Oppenheim & Schafer)
    if a > 50:
        beta = 0.1102 * (a - 8.7)
    elif a > 21:
        beta = 0.5842 * (a - 21) ** 0.4 + 0.07886 * (a - 21)
    else:
        beta = 0.0
    right = np.float64(cutoff_hz) / float(0.5 * fs_hz)  # the band edge as a fraction of Nyquist
    if not 0.0 < right < 1.0:
        raise ValueError(f"cut-off {cutoff_hz} Hz: must be between 0 and fs / 2 = {fs_hz / 2} Hz")
    if numtaps < 2:
        raise ValueError(f"{numtaps} taps: a low-pass filter needs at least 2")
    m = np.arange(0, numtaps, dtype=np.float64) - 0.5 * (numtaps - 1)
    # (firwin's sum over the band's edges, 0 + right sinc - 0: the terms that change no bit left out)
    h = 0 + right * _sinc(right * m)
    # the symmetric Kaiser window (scipy.signal.windows.kaiser)
    n = np.arange(0, numtaps, dtype=np.float64)
    alpha = (numtaps - 1) / 2.0
    h *= i0(beta * np.sqrt(1 - ((n - alpha) / alpha) ** 2.0)) / i0(np.asarray(beta, dtype=np.float64))
    h /= np.sum(h)  # unit gain at 0 Hz (firwin's sum of h cos(pi m 0), every cosine exactly 1)
    return h


def _sinc(x: np.ndarray) -> np.ndarray:
    """sin(pi x) / (pi x), as scipy's firwin computes it (x = 0 taken as machine epsilon)."""
    y = np.pi * np.where(x.astype(bool), x, np.asarray(np.finfo(x.dtype).eps, dtype=x.dtype))
    return np.sin(y) / y


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
    # stage A's mixer moved into its taps: tap s (oldest first) delays by la - 1 - s samples, so
    # it carries exp(+j w (la - 1 - s)); the output is then turned by lo_a at its own index
    la = har.size
    ga = har * np.conj(lo_a[(la - 1 - np.arange(la)) % lo_a.size])
    hbr = np.ascontiguousarray(np.pad(hb[::-1], (pad_b, 0))).astype(np.float32)
    # stage B's mixer for stage-A output ma (input index 8 ma + 7, centre GD_A earlier); it
    # repeats every pb / gcd(pb, 8) outputs
    pb = lo_b.shape[1]
    nb = pb // int(np.gcd(pb, DEC_A))
    lo_bq = lo_b[:, (DEC_A * np.arange(nb) + DEC_A - 1 - GD_A) % pb]
    # stage A's turn for output ma (input index 8 ma + 7): it repeats every pa / gcd(pa, 8) outputs
    pa = lo_a.size
    na_ = pa // int(np.gcd(pa, DEC_A))
    lo_aq = lo_a[(DEC_A * np.arange(na_) + DEC_A - 1) % pa]
    # (real and imaginary parts as the rows of one array each: fewer kernel arguments)
    mix = (
        np.ascontiguousarray(np.stack([ga.real, ga.imag]), np.float32),
        np.ascontiguousarray(np.stack([lo_aq.real, lo_aq.imag])),
        np.ascontiguousarray(np.stack([lo_bq.real, lo_bq.imag])),
    )
    for a in (ha, hb, lo_a, lo_b, har, hbr, *mix):
        a.setflags(write=False)
    return ha, hb, lo_a, lo_b, har, hbr, mix


@dataclass
class ChannelizerState:
    n: int  # absolute input index of the next sample
    hist_a: np.ndarray  # (taps A - 1,): the last input samples
    hist_b: np.ndarray  # (channels, re/im, taps B - 1): the last stage-B inputs (mixed per channel)

    def copy(self) -> ChannelizerState:
        return ChannelizerState(self.n, self.hist_a.copy(), self.hist_b.copy())


@jit(math="sums")
def _dot_pair(a, ha, b, hb):
    """(sum a[t] ha[t], sum b[t] hb[t]) in single precision: one filter output, either real taps on
    the real and imaginary parts (stage B) or complex taps on real data (stage A)."""
    acc_a = np.float32(0.0)
    acc_b = np.float32(0.0)
    for t in range(ha.shape[0]):
        acc_a += a[t] * ha[t]
        acc_b += b[t] * hb[t]
    return acc_a, acc_b


@jit(math="reorder")
def _finite(x):
    """Whether every sample of ``x`` is finite: sum (x - x) is 0 then, NaN otherwise (vectorised;
    reassociation only, so x - x is not folded away)."""
    s = 0.0
    for i in range(x.shape[0]):
        s += x[i] - x[i]
    return s == 0.0


@jit
def channelize_kernel(x, n0, ga, hbr, lo_a, lo_b, hist_a, hist_b, out):
    """Filter ``x`` (input samples n0 ...) into ``out`` (channels, max); returns the number of
    outputs written, or -1 (and nothing changed) if ``x`` holds a non-finite sample.

    Stage A filters the input (single precision) with the complex taps ``ga`` (rows re, im: the
    low-pass taps times the mixer, oldest sample first, padded in front with zeros to a multiple
    of 16, the vectorised loop's step) at every input index n = 8 ma + 7 and turns each output by
    the mixer at n, ``lo_a[:, ma % period]`` (rows re, im: the mixer's exact table at the indices
    8 ma + 7 over its period; a second pass over the outputs, vectorised); an output
    whose window reaches back before this call reads the last ``ga.shape[1] - 1`` input samples of
    the previous call (``hist_a``) from a short buffer. Stage B mixes the stage-A outputs per
    channel with ``lo_b`` (re, im; channel; ma modulo its period) into a linear buffer behind their
    history (``hist_b``) and filters it with the real taps ``hbr`` at every ma = 4 mb + 3. Each
    output is the same fixed sequence of operations whatever the cut of the stream. (The dot products are
    compiled with reassociation and fused
    multiply-add allowed, so that they are vectorised: the sums are in another order than a
    plain loop's, a few ulp, always the same. No other fast-math flag: the channelizer never
    sees a non-finite sample: the comb replaces them, and this kernel checks first.)"""
    gar = ga[0]
    gai = ga[1]
    lo_ar = lo_a[0]
    lo_ai = lo_a[1]
    lo_br = lo_b[0]
    lo_bi = lo_b[1]
    la = gar.shape[0]
    lb = hbr.shape[0]
    nch = lo_br.shape[0]
    pa = lo_ar.shape[0]
    pb = lo_br.shape[1]
    nx = x.shape[0]
    if not _finite(x):
        return -1
    # stage A: the input filtered with the mixer-carrying taps at every input index n = 8 ma + 7,
    # each output turned by lo_a[n]; an output whose window reaches back before this call reads
    # a short buffer of the history and the call's first samples instead of x
    nh = la - 1
    head = np.empty(2 * nh, np.float32)
    head[:nh] = hist_a
    for i in range(nh):
        head[nh + i] = x[i] if i < nx else 0.0
    if nx >= nh:
        hist_a[:] = x[nx - nh :]
    else:
        hist_a[:] = head[nx : nx + nh]
    first = DEC_A - 1 - n0 % DEC_A  # offset of the first stage-A output (input index 8 ma + 7)
    ma0 = (n0 + first) // DEC_A
    na = (nx - first + DEC_A - 1) // DEC_A if nx > first else 0
    # stage B per channel: stage-A outputs mixed to the channel, behind their history
    vr = np.empty(lb - 1 + na, np.float32)
    vi = np.empty(lb - 1 + na, np.float32)
    ar = np.empty(na, np.float32)
    ai = np.empty(na, np.float32)
    k_x = min(na, max(0, (nh - first + DEC_A - 1) // DEC_A))  # the first output whose window is all in x
    for k in range(k_x):
        e = first + DEC_A * k  # the output's newest sample, in x
        u = head[e : nh + e + 1]
        ar[k], ai[k] = _dot_pair(u, gar, u, gai)
    for k in range(k_x, na):
        e = first + DEC_A * k
        u = x[e - nh : e + 1]
        ar[k], ai[k] = _dot_pair(u, gar, u, gai)
    # each output turned by the mixer at its own index (in double precision, stored in single)
    q = ma0 % pa
    t = 0
    while t < na:
        seg = min(na - t, pa - q)
        sr = ar[t : t + seg]
        si = ai[t : t + seg]
        cr = lo_ar[q : q + seg]
        ci = lo_ai[q : q + seg]
        for u in range(seg):
            dr = sr[u]
            di = si[u]
            sr[u] = dr * cr[u] - di * ci[u]
            si[u] = dr * ci[u] + di * cr[u]
        t += seg
        q = 0
    fb = DEC_B - 1 - ma0 % DEC_B  # offset of the first stage-B output (ma = 4 mb + 3)
    nb = (na - fb + DEC_B - 1) // DEC_B if na > fb else 0
    for c in range(nch):
        vr[: lb - 1] = hist_b[c, 0]
        vi[: lb - 1] = hist_b[c, 1]
        q = ma0 % pb
        t = 0
        while t < na:
            seg = min(na - t, pb - q)
            dr = vr[lb - 1 + t : lb - 1 + t + seg]
            di = vi[lb - 1 + t : lb - 1 + t + seg]
            sr = ar[t : t + seg]
            si = ai[t : t + seg]
            cr = lo_br[c, q : q + seg]
            ci = lo_bi[c, q : q + seg]
            for u in range(seg):
                dr[u] = sr[u] * cr[u] - si[u] * ci[u]
                di[u] = sr[u] * ci[u] + si[u] * cr[u]
            t += seg
            q = 0
        hist_b[c, 0] = vr[na:]
        hist_b[c, 1] = vi[na:]
        for k in range(nb):
            e = fb + DEC_B * k  # the window's first sample in vr, vi
            yr, yi = _dot_pair(vr[e : e + lb], hbr, vi[e : e + lb], hbr)
            out[c, k] = complex(yr, yi)
    return nb


class Channelizer:
    """Streaming channelizer for one input; ``process`` returns (channels, n_out) complex64."""

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
        self.ha, self.hb, self.lo_a, self.lo_b, self._har, self._hbr, self._mix = _tables(
            tuple(fcs), self.f_mid_hz, self.fs_hz
        )
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
        self.state = ChannelizerState(
            0, np.zeros(self._har.size - 1, np.float32), np.zeros((nch, 2, self._hbr.size - 1), np.float32)
        )
        self.blanker.reset()

    def __repr__(self) -> str:
        fcs = ", ".join(f"{c.fc_hz:g}" for c in self.plan.channels)
        return (
            f"Channelizer({self.n_channels} channels at {fcs} Hz, {self.fs_hz:g} -> {self.out_rate_hz:g} Hz; "
            f"at input sample {self.state.n}, baseband sample {self.m_out})"
        )

    def copy(self) -> Channelizer:
        c = Channelizer.__new__(Channelizer)
        c.__dict__.update(self.__dict__)
        c.state = self.state.copy()
        c.blanker = self.blanker.copy()
        return c

    def process(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim != 1 or x.dtype.kind not in "fiu":
            raise ValueError(f"the channelizer takes one real input at a time: {x.dtype} {x.shape}")
        if x.dtype != np.float32:  # the filters run in single precision, the comb's output type
            x = x.astype(np.float32)
        s = self.state
        out = np.empty((self.n_channels, x.size // DECIMATION + 2), np.complex64)  # (single-precision sums)
        ga, lo_a, lo_b = self._mix
        w = channelize_kernel(x, s.n, ga, self._hbr, lo_a, lo_b, s.hist_a, s.hist_b, out)
        if w < 0:  # nothing of this block was taken: the state is as before
            raise ValueError(
                "non-finite samples (or beyond single precision): the comb (dsp.rx.comb) replaces "
                "them before the channelizer"
            )
        s.n += x.size
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
