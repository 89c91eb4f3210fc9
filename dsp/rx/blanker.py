"""Impulse blanker on each channel's baseband: blanks switching transients and their comb echoes,
leaves bursts alone however strong they are.

A switching transient is far above the noise at baseband, and the harmonic comb (dsp.rx.comb,
``H(z) = g [(1 - z^-D) / (1 - rho z^-D)]^2``) turns it into a train of echoes one grid period
apart: echo k carries the coefficient c_k of u^k in ``(1 - u)^2 / (1 - rho u)^2`` (c_1 = -0.4,
c_2 = -0.28, ..., a zero near k = 9, then a second bump near -37 dB around k = 12-16 at
rho = 0.8). A 50 dB transient's echoes stay above the noise for about 0.5 s.

A strong burst is also far above the noise, but it stays up for its whole length (3.3 s), at an
envelope within a few dB of its peaks. The blanker tells the two apart by looking ahead (and
back): every sample whose power exceeds ``k^2`` times the noise power (a *trigger*) is classified
``DECIDE`` samples after it arrived:

1. **echo** of a transient already classified: its power is within the comb's echo envelope of
   one of the last ``SLOTS`` transients (``P0 * 10 max_{j >= k-1} c_j^2`` at k grid periods after
   it; measured echoes of a 50 dB transient stay 6-10 dB inside it) -> blanked;
2. **sustained** (a burst): the mean power over periods 4-7 after it, or over periods 4-7 before
   it, is at least ``SUSTAIN_DB`` (-12 dB) of its local peak -> kept (an impulse's own echoes there
   are 18 dB or more below its peak);
3. otherwise a new **transient** -> blanked, and remembered for rule 1.

A transient's trigger zeroes itself and ``BLANK_HALF`` samples on each side (the slopes of its
lobe), an echo's trigger ``ECHO_HALF`` (echoes are weaker; blanking their whole lobes would take
most of a burst's preamble that starts just after a transient: the echoes left under the
threshold are the detector's second CFAR stage's business, dsp.rx.cfar_gate). Output is delayed by
``DELAY = DECIDE + BLANK_HALF`` samples (0.15 s). The noise power is tracked from the samples
under the threshold (an exponential average, ~2 s), starting from the median of the first
``WARMUP`` non-zero samples; a sustained trigger lets it rise slowly (a real rise of the floor
gets through, a burst barely moves it); a transient does not move it.

Everything is indexed by the absolute baseband sample number, so the output does not depend on
how the stream is cut.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dsp.numba_settings import jit

BLANK_K = 4.5  #: trigger threshold in noise RMS (Gaussian noise alone: p = exp(-20) per sample)
BLANK_HALF = 16  #: samples blanked on each side of a transient's trigger
ECHO_HALF = 2  #: samples blanked on each side of an echo's trigger (echo lobes are smooth and weaker)
DECIDE = 210  #: a trigger is classified this many samples after it arrived (7 periods at 50 Hz)
DELAY = DECIDE + BLANK_HALF  #: output delay of the blanker (samples)
RING = 512  #: >= DECIDE + 7 periods + 2 (the look-back window)
SUSTAIN_DB = -12.0  #: window mean over peak at or above this: a burst
ECHO_MARGIN = 10.0  #: the echo envelope is taken this much (10 dB) above the comb's coefficients
SLOTS = 4  #: transients remembered per channel (their echoes overlap)
ECHO_PERIODS = 64  #: echoes followed for about one second
NOISE_ALPHA = 1.0 / 3000.0  #: noise power tracker: ~2 s time constant at 1.5 kHz
RISE_ALPHA = NOISE_ALPHA / 8.0  #: how fast a sustained rise moves the noise estimate
WARMUP = 96  #: outputs (64 ms): the noise estimate starts from their median (robust to an impulse)


def echo_envelope(rho: float, periods: int = ECHO_PERIODS, margin: float = ECHO_MARGIN) -> np.ndarray:
    """``env[k]``: the most power (relative to the transient) an echo seen k periods after it can
    carry: ``margin * max_{j >= k - 1} c_j^2`` with c_j the comb's echo coefficients."""
    if not 0.0 <= rho < 1.0:
        raise ValueError(f"rho must be in [0, 1), got {rho}")
    n = periods + 2
    # (1 - u)^2 / (1 - rho u)^2 as a power series in u
    den = np.array([(j + 1) * rho**j for j in range(n)])
    c = den.copy()
    c[1:] -= 2 * den[:-1]
    c[2:] += den[:-2]
    c2 = c**2
    tail = np.maximum.accumulate(c2[::-1])[::-1]  # max over j >= index
    env = np.array([tail[max(k - 1, 0)] for k in range(periods)]) * margin
    return env


@dataclass
class BlankerState:
    a: int  # absolute index of the next input sample
    ring: np.ndarray  # (channels, RING) complex: the last RING inputs
    pring: np.ndarray  # (channels, RING) their powers
    cring: np.ndarray  # (channels, RING) cumulative sums of the powers (through that sample)
    noise_pow: np.ndarray  # (channels,)
    warm: np.ndarray  # (channels,) int64 non-zero samples collected for the warm-up
    warm_buf: np.ndarray  # (channels, WARMUP)
    zring: np.ndarray  # (channels, RING) uint8: 1 where a sample not yet output is to be zeroed
    imp_p0: np.ndarray  # (channels, SLOTS) peak power of the transients remembered (0: none)
    imp_i0: np.ndarray  # (channels, SLOTS) int64 their indices
    blanked: np.ndarray  # (channels,) int64 non-zero samples zeroed
    triggers: np.ndarray  # (channels, 3) int64: echo, sustained, transient

    def copy(self) -> BlankerState:
        return BlankerState(
            self.a,
            *(
                getattr(self, f).copy()
                for f in (
                    "ring",
                    "pring",
                    "cring",
                    "noise_pow",
                    "warm",
                    "warm_buf",
                    "zring",
                    "imp_p0",
                    "imp_i0",
                    "blanked",
                    "triggers",
                )
            ),
        )


@jit
def _echo_bound(p0, i0, i, period, env):
    """(largest echo power the remembered transients allow at sample i, the slot of the weakest)."""
    best = 0.0
    weakest = 0
    low = np.inf
    for j in range(p0.shape[0]):
        b = 0.0
        if p0[j] > 0.0:
            k = (i - i0[j]) // period
            if k < env.shape[0]:
                b = p0[j] * env[k]
        if b > best:
            best = b
        if b < low:
            low = b
            weakest = j
    return best, weakest


@jit
def blank_kernel(
    y,
    a0,
    ring,
    pring,
    cring,
    noise_pow,
    warm,
    warm_buf,
    zring,
    imp_p0,
    imp_i0,
    blanked,
    triggers,
    out,
    k2,
    period,
    env,
    sustain,
):
    """Blank ``y`` (channels, n) into ``out`` (channels, n); returns the number of outputs written
    (outputs lag the inputs by DELAY samples)."""
    nch, n = y.shape
    mask = RING - 1
    w1 = 4 * period
    w2 = 7 * period
    wlen = float(w2 - w1 + 1)
    w = 0
    for c in range(nch):
        # one channel at a time (they are independent), its running values in local variables
        rc = ring[c]
        pc = pring[c]
        cc = cring[c]
        zc = zring[c]
        oc = out[c]
        npw = noise_pow[c]
        nwarm = warm[c]
        cprev = cc[(a0 - 1) & mask] if a0 > 0 else 0.0
        nblank = 0
        w = 0
        for t in range(n):
            a = a0 + t
            s = a & mask
            v = y[c, t]
            vr = np.float64(v.real)  # (double precision whatever the input's type)
            vi = np.float64(v.imag)
            p = vr * vr + vi * vi
            rc[s] = v
            pc[s] = p
            cprev = cprev + p
            cc[s] = cprev
            i = a - DECIDE  # the sample classified now
            if i >= 0:
                pi = pc[i & mask]
                if nwarm < WARMUP:
                    if pi > 0.0:
                        warm_buf[c, nwarm] = pi
                        nwarm += 1
                        if nwarm == WARMUP:
                            npw = np.median(warm_buf[c]) / math.log(2.0)
                elif pi > k2 * npw:
                    pref = pi  # local peak: the trigger and the BLANK_HALF samples after it
                    for j in range(1, BLANK_HALF + 1):
                        q = pc[(i + j) & mask]
                        if q > pref:
                            pref = q
                    kind = 2  # transient
                    live, weakest = _echo_bound(imp_p0[c], imp_i0[c], i, period, env)
                    if pref <= live:
                        kind = 0  # echo
                    if kind == 2:
                        fut = (cc[(i + w2) & mask] - cc[(i + w1 - 1) & mask]) / wlen
                        lo = i - w2 - 1
                        past = (
                            (cc[(i - w1) & mask] - (cc[lo & mask] if lo >= 0 else 0.0)) / wlen if i - w1 >= 0 else 0.0
                        )
                        if max(fut, past) >= sustain * pref:
                            kind = 1
                    triggers[c, kind] += 1
                    if kind == 1:
                        npw = npw + RISE_ALPHA * (k2 - 1.0) * npw
                    else:
                        if kind == 2:  # remember it in place of the transient with the weakest echoes now
                            imp_p0[c, weakest] = pref
                            imp_i0[c, weakest] = i
                        h = BLANK_HALF if kind == 2 else ECHO_HALF
                        for j in range(i - h, i + h + 1):
                            zc[j & mask] = 1
                else:
                    npw = npw + NOISE_ALPHA * (pi - npw)
            o = a - DELAY  # the sample output now
            if o >= 0:
                vo = rc[o & mask]
                if zc[o & mask]:
                    zc[o & mask] = 0
                    if vo != 0:
                        nblank += 1
                    vo = 0.0
                oc[w] = vo
                w += 1
        noise_pow[c] = npw
        warm[c] = nwarm
        blanked[c] += nblank
    return w


class ImpulseBlanker:
    """Streaming impulse blanker over the baseband of all channels of one input."""

    def __init__(
        self, n_channels: int, period_samples: int, rho: float, blank_k: float = BLANK_K, sustain_db: float = SUSTAIN_DB
    ) -> None:
        if not blank_k > 0:
            raise ValueError(f"blank_k must be positive, got {blank_k}")
        if not 1 <= period_samples <= (RING - DECIDE - 2) // 7 or 7 * period_samples > DECIDE:
            raise ValueError(f"period_samples={period_samples}: the look-ahead covers grid periods of 1-30 samples")
        if n_channels < 1:
            raise ValueError(f"n_channels must be >= 1, got {n_channels}")
        self.n_channels, self.period, self.rho = int(n_channels), int(period_samples), float(rho)
        self.blank_k, self.sustain = float(blank_k), 10.0 ** (sustain_db / 10.0)
        self.env = echo_envelope(rho)
        self.reset()

    def reset(self) -> None:
        nch = self.n_channels
        z = lambda *s: np.zeros(s)  # noqa: E731
        zi = lambda *s: np.zeros(s, np.int64)  # noqa: E731
        self.state = BlankerState(
            0,
            np.zeros((nch, RING), complex),
            z(nch, RING),
            z(nch, RING),
            z(nch),
            zi(nch),
            z(nch, WARMUP),
            np.zeros((nch, RING), np.uint8),
            z(nch, SLOTS),
            zi(nch, SLOTS),
            zi(nch),
            zi(nch, 3),
        )

    def __repr__(self) -> str:
        s = self.state
        return (
            f"ImpulseBlanker({self.n_channels} channels, k {self.blank_k:g}, {self.period}-sample grid period, "
            f"{DELAY} samples late; at baseband sample {s.a}, {int(s.blanked.sum())} blanked)"
        )

    def copy(self) -> ImpulseBlanker:
        b = ImpulseBlanker.__new__(ImpulseBlanker)
        b.__dict__.update(self.__dict__)
        b.state = self.state.copy()
        return b

    def flush(self) -> np.ndarray:
        """End of stream: decide on what is held back (its look-ahead cut short) and return it.
        (Zeros are fed through; the blanker is spent afterwards: ``reset`` before reuse.)"""
        return self.process(np.zeros((self.n_channels, DELAY), complex))

    def process(self, y: np.ndarray) -> np.ndarray:
        """(channels, n) complex baseband in; the same (and of the same type: complex64 stays
        complex64, anything else becomes complex128), DELAY samples late, blanked, out."""
        y = np.asarray(y)
        if y.dtype != np.complex64:  # (the channelizer's output type, read as it is: the same values)
            y = y.astype(np.complex128, copy=False)
        if y.ndim != 2 or y.shape[0] != self.n_channels:
            raise ValueError(f"expected ({self.n_channels}, n) baseband, got shape {y.shape}")
        s = self.state
        out = np.empty_like(y)
        w = blank_kernel(
            y,
            s.a,
            s.ring,
            s.pring,
            s.cring,
            s.noise_pow,
            s.warm,
            s.warm_buf,
            s.zring,
            s.imp_p0,
            s.imp_i0,
            s.blanked,
            s.triggers,
            out,
            self.blank_k**2,
            self.period,
            self.env,
            self.sustain,
        )
        s.a += y.shape[1]
        return out[:, :w]
