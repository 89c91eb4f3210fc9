"""Tracking harmonic comb filter: removes the grid fundamental and all its harmonics.

Frequency tracking. The input is demodulated at the nominal grid frequency f_nom in fixed
blocks of B = fs / f_nom samples (one nominal cycle). Each block boundary b gets a phasor of
the fundamental over the two neighbouring blocks with a triangular window (its response has
double zeros at every multiple of f_nom, so the harmonics barely leak into it). The fundamental's
phase advances by 2 pi (f0 - f_nom) B / fs per block; the frequency estimate is the phase step of
the last block plus its trend (linear extrapolation over the last three steps), so it follows a
drifting grid with no lag for a linear drift. The fundamental stands ~85 dB above the noise,
so one block's phase is good to about 1e-6 rad: the estimate is limited by how fast the grid
moves, not by noise. The first estimate comes at the end of the fifth block (83 ms at 60 Hz).

Comb. With D = fs / f0_hat samples (fractional), the filter is two cascaded IIR combs

    H(z) = g [ (1 - z^-D) / (1 - rho z^-D) ]^2,   g = ((1 + rho) / 2)^2,   rho = 0.8 by default,

the fractional delays read by cubic Lagrange interpolation from ring buffers (weights change
only at block boundaries). Each harmonic k f0 sits in a double notch; a harmonic whose frequency
is off the notch by delta Hz is suppressed by about (2 pi delta D / fs / (1 - rho))^2, i.e. 60 dB
for delta ~ 70 mHz at any harmonic. Why rho = 0.8: real harmonics are not pure lines, their
amplitude and phase wander with the load (the simulator: 0.5 %/sqrt(s) and 0.01 rad/sqrt(s)); a
narrow notch rings on every change and leaves a residue: measured in the lowest channel (the
strongest harmonics) +6.0 dB of noise at rho = 0.9, +1.1 dB at 0.8, none at 0.7. A wider notch
costs the wanted signal more, since the receiver correlates with the transmitted shape: 0.04 dB
at 0.9, 0.16 dB at 0.8, 0.36 dB at 0.7 (the transmitter puts nothing on the harmonics,
docs/air-interface.md, or it would be far more). 0.8 is the best compromise of the three. Start-up ("gear
shifting"): rho ramps from 0 (a plain FIR comb, which settles in
one cycle) to its final value over the first 30 cycles, so the comb is locked within LOCK_S.

Precision. The filter (rings, Lagrange weights, arithmetic, output) runs in single precision,
which halves its memory traffic and doubles the vector width; the tracker (block sums, phases,
frequency) stays in double. The rounding error is ~146 dB under the fundamental: on the large
scenario's inputs it is 60-67 dB under what the comb lets through (the noise floor), i.e. it adds
~1e-6 to the noise. A float64 input is rounded to single precision as it enters the ring.

Non-finite input samples (and any that single precision cannot hold) are replaced by the comb's own
prediction (the value one grid period
earlier) and counted; they never reach the filter state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dsp.numba_settings import jit

RING = 4096
RAMP_BLOCKS = 30.0  # rho ramps up from 0 over the first 30 cycles (fast lock, then narrow notches)
LOCK_S = 0.25  # after this the residual is < -100 dBc (tests/test_comb.py); receivers gate on it
HIST = 8
RHO = 0.8  #: pole radius of both combs (see the module docstring)
# the tracker's state, one array (fewer kernel arguments: each costs the call ~0.1 us):
TRK_ACC = 0  #: [0:2] S1 of the previous block, re and im (the block sums: _block_sums)
TRK_FUND = 2  #: [2] RMS of the fundamental at the last block boundary
TRK_PHASE = 3  #: [3:3 + HIST] unwrapped phasor phases of the last HIST block boundaries
TRK = TRK_PHASE + HIST


@dataclass
class CombState:
    """Everything the comb carries between calls (explicit and small)."""

    n: int  # absolute index of the next sample
    rings: np.ndarray  # (3, RING) float32: ring buffers of the input, stage-1 and stage-2 outputs
    trk: np.ndarray  # (TRK,) the tracker: see TRK_ACC, TRK_FUND, TRK_PHASE
    n_blocks: int
    f0_hat_hz: float
    nonfinite: int

    def copy(self) -> CombState:
        return CombState(self.n, self.rings.copy(), self.trk.copy(), self.n_blocks, self.f0_hat_hz, self.nonfinite)


@jit
def _lagrange3(mu: float, w: np.ndarray) -> None:
    w[0] = -mu * (mu - 1.0) * (mu - 2.0) / 6.0
    w[1] = (mu + 1.0) * (mu - 1.0) * (mu - 2.0) / 2.0
    w[2] = -(mu + 1.0) * mu * (mu - 2.0) / 2.0
    w[3] = (mu + 1.0) * mu * (mu - 1.0) / 6.0


@jit(math="sums")
def _block_sums(xh, b0, block, lo):
    """Sums over one block of the input ring (starting at ring index ``b0``, wrapping): S0 =
    sum v lo[t] and S1 = sum v lo[t] t / block, as (S0.re, S0.im, S1.re, S1.im); ``lo`` holds
    the rows lo.re, lo.im, lo.re t / block, lo.im t / block. Always the same block-long sums
    in the same order, so the result does not depend on how the stream is cut; vectorised (the
    order of the additions is the compiler's, fixed for the block)."""
    ring = xh.shape[0]
    n1 = min(block, ring - b0)
    a0r, a0i, a1r, a1i = _dot4(xh[b0 : b0 + n1], lo[0][:n1], lo[1][:n1], lo[2][:n1], lo[3][:n1])
    if n1 < block:
        c0r, c0i, c1r, c1i = _dot4(xh[: block - n1], lo[0][n1:], lo[1][n1:], lo[2][n1:], lo[3][n1:])
        a0r += c0r
        a0i += c0i
        a1r += c1r
        a1i += c1i
    return a0r, a0i, a1r, a1i


@jit(math="sums")
def _dot4(v, r0, r1, r2, r3):
    """The dot products of ``v`` with each of ``r0`` .. ``r3`` (contiguous: vectorised)."""
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    for t in range(v.shape[0]):
        s0 += v[t] * r0[t]
        s1 += v[t] * r1[t]
        s2 += v[t] * r2[t]
        s3 += v[t] * r3[t]
    return s0, s1, s2, s3


@jit(math="reorder")
def _finite32(x):
    """Whether every sample of ``x`` is finite in single precision (a float64 sample beyond it is
    not): sum (v - v) is 0 then, NaN otherwise (vectorised; reassociation only, so v - v is
    not folded away)."""
    s = np.float32(0.0)
    for i in range(x.shape[0]):
        v = np.float32(x[i])
        s += v - v
    return s == 0.0


@jit
def comb_kernel(x, out, rings, trk, log, lo, n0, n_blocks, f0_hat, block, fs, f_nom, rho_final):
    """Filter ``x`` into ``out``; returns (n, n_blocks, f0_hat, nonfinite_count, nf): the f0 and
    fundamental RMS estimated at the end of each block completed here are ``log[0, :nf]`` and
    ``log[1, :nf]`` (``log`` holds at least len(x) // block + 2 columns).

    (The per-sample state lives in local variables (weights, phasor sums) and goes back to the
    arrays at the end: the compiler keeps them in registers. Rings, ``out``, weights and gains are
    single precision; ``lo`` and the block sums double.)"""
    xh = rings[0]
    y1h = rings[1]
    y2h = rings[2]
    mask = xh.shape[0] - 1
    rho = rho_final * min(1.0, n_blocks / RAMP_BLOCKS)
    g = ((1.0 + rho) / 2.0) ** 2
    w = np.empty(4)
    d = fs / f0_hat
    ip = math.floor(d)
    _lagrange3(1.0 - (d - ip), w)  # position n - d = (n - ip - 1) + (1 - frac)
    w0, w1, w2, w3 = np.float32(w[0]), np.float32(w[1]), np.float32(w[2]), np.float32(w[3])
    rho32 = np.float32(rho)
    g32 = np.float32(g)
    off = ip + 1
    bad = 0
    nf = 0
    a2 = complex(trk[TRK_ACC], trk[TRK_ACC + 1])
    ring = mask + 1
    nx = x.shape[0]
    j = n0 % block  # position in the current block (the nominal LO has period = one block)
    k = 0
    while k < nx:
        n = n0 + k
        # a run of samples that read only samples written before the run (off - 2 back at the
        # least), within one block (fixed weights) and without a wrap of the rings: the filter
        # of the whole run is a loop without dependencies between its iterations (vectorised)
        wi = n & mask
        ri = (n - off - 1) & mask
        run = min(nx - k, block - j, off - 2, ring - wi, ring - 3 - ri)
        if run >= 1:
            # one pass over the run (the three stages at once: each sample's taps were all
            # written before the run, so its iterations are independent and vectorised); a run
            # whose input is all finite (the usual case) takes the loop without the test
            xs = xh[ri : ri + run + 3]
            xw = xh[wi : wi + run]
            xin = x[k : k + run]
            ys = y1h[ri : ri + run + 3]
            yw = y1h[wi : wi + run]
            zs = y2h[ri : ri + run + 3]
            zw = y2h[wi : wi + run]
            o = out[k : k + run]
            if _finite32(xin):
                for t in range(run):
                    xd = w0 * xs[t] + w1 * xs[t + 1] + w2 * xs[t + 2] + w3 * xs[t + 3]
                    y1d = w0 * ys[t] + w1 * ys[t + 1] + w2 * ys[t + 2] + w3 * ys[t + 3]
                    y2d = w0 * zs[t] + w1 * zs[t + 1] + w2 * zs[t + 2] + w3 * zs[t + 3]
                    v = np.float32(xin[t])
                    y1 = v - xd + rho32 * y1d
                    y2 = y1 - y1d + rho32 * y2d
                    xw[t] = v
                    yw[t] = y1
                    zw[t] = y2
                    o[t] = g32 * y2
            else:
                for t in range(run):
                    xd = w0 * xs[t] + w1 * xs[t + 1] + w2 * xs[t + 2] + w3 * xs[t + 3]
                    v = np.float32(xin[t])
                    if not math.isfinite(v):
                        v = xd
                        bad += 1
                    y1d = w0 * ys[t] + w1 * ys[t + 1] + w2 * ys[t + 2] + w3 * ys[t + 3]
                    y2d = w0 * zs[t] + w1 * zs[t + 1] + w2 * zs[t + 2] + w3 * zs[t + 3]
                    y1 = v - xd + rho32 * y1d
                    y2 = y1 - y1d + rho32 * y2d
                    xw[t] = v
                    yw[t] = y1
                    zw[t] = y2
                    o[t] = g32 * y2
        else:  # the four taps straddle the end of the ring: one sample
            run = 1
            base = n - off
            i0 = (base - 1) & mask
            i1 = base & mask
            i2 = (base + 1) & mask
            i3 = (base + 2) & mask
            xd = w0 * xh[i0] + w1 * xh[i1] + w2 * xh[i2] + w3 * xh[i3]
            v = np.float32(x[k])
            if not math.isfinite(v):
                v = xd
                bad += 1
            y1d = w0 * y1h[i0] + w1 * y1h[i1] + w2 * y1h[i2] + w3 * y1h[i3]
            y2d = w0 * y2h[i0] + w1 * y2h[i1] + w2 * y2h[i2] + w3 * y2h[i3]
            y1 = v - xd + rho32 * y1d
            y2 = y1 - y1d + rho32 * y2d
            xh[wi] = v
            y1h[wi] = y1
            y2h[wi] = y2
            out[k] = g32 * y2
        k += run
        j += run
        if j == block:
            j = 0
            # fundamental phasor at the nominal frequency, triangular window over two blocks:
            # the sums of the block just completed, read back from the input ring
            a0r, a0i, a1r, a1i = _block_sums(xh, (n + run - block) & mask, block, lo)
            p = a2 + complex(a0r, a0i) - complex(a1r, a1i)  # rising half (previous block) + falling half (this block)
            a2 = complex(a1r, a1i)
            ph = math.atan2(p.imag, p.real)
            fund = math.sqrt(2.0) * abs(p) / block  # RMS of the fundamental
            trk[TRK_FUND] = fund
            if n_blocks > 0:
                prev = trk[TRK_PHASE + (n_blocks - 1) % HIST]
                ph = prev + ((ph - prev + math.pi) % (2.0 * math.pi) - math.pi)
            trk[TRK_PHASE + n_blocks % HIST] = ph
            n_blocks += 1
            if n_blocks >= 5:  # two full phasors behind us and a trend: estimate
                s1 = trk[TRK_PHASE + (n_blocks - 1) % HIST] - trk[TRK_PHASE + (n_blocks - 2) % HIST]
                s3 = trk[TRK_PHASE + (n_blocks - 3) % HIST] - trk[TRK_PHASE + (n_blocks - 4) % HIST]
                # the last step is centred half a block back and one more block passes before
                # the next update: extrapolate the linear trend of the steps by 1.5 blocks
                trend = (s1 - s3) / 2.0
                step = s1 + 1.5 * trend
                if abs(trend) > 0.05 * abs(s1) + 1e-4:  # a step, not a drift: do not extrapolate
                    step = s1
                f0_hat = f_nom + step * fs / (2.0 * math.pi * block)
                if abs(f0_hat - f_nom) > 0.5:  # no usable fundamental (dead CT?): hold nominal
                    f0_hat = f_nom
            d = fs / f0_hat
            ip = math.floor(d)
            _lagrange3(1.0 - (d - ip), w)
            w0, w1, w2, w3 = np.float32(w[0]), np.float32(w[1]), np.float32(w[2]), np.float32(w[3])
            off = ip + 1
            rho = rho_final * min(1.0, n_blocks / RAMP_BLOCKS)
            g = ((1.0 + rho) / 2.0) ** 2
            rho32 = np.float32(rho)
            g32 = np.float32(g)
            log[0, nf] = f0_hat
            log[1, nf] = fund
            nf += 1
    trk[TRK_ACC] = a2.real
    trk[TRK_ACC + 1] = a2.imag
    return n0 + x.shape[0], n_blocks, f0_hat, bad, nf


class HarmonicComb:
    """Streaming tracking comb for one input (see the module docstring)."""

    def __init__(self, fs_hz: float = 48000.0, grid_hz: float = 60.0, rho: float = RHO) -> None:
        if grid_hz not in (50.0, 60.0):
            raise ValueError(f"grid_hz must be 50 or 60, got {grid_hz}")
        if not 0.0 < rho < 1.0:
            raise ValueError(f"rho must be in (0, 1), got {rho}")
        block = fs_hz / grid_hz
        if block != int(block):
            raise ValueError(f"fs_hz={fs_hz} is not a whole number of samples per {grid_hz} Hz cycle")
        if 2 * block + 8 > RING:
            raise ValueError(f"fs_hz={fs_hz} too high for the comb's buffers (max {RING // 2 - 4} samples/cycle)")
        self.fs_hz, self.grid_hz, self.rho, self.block = float(fs_hz), float(grid_hz), float(rho), int(block)
        n = np.arange(self.block)
        lo = np.exp(-2j * np.pi * n / self.block)  # nominal fundamental, period = one block
        # with the triangular window's falling half (t / block), rows apart for the kernel
        self._lo = np.ascontiguousarray(
            np.stack([lo.real, lo.imag, lo.real * n / self.block, lo.imag * n / self.block])
        )
        self.reset()

    def reset(self) -> None:
        self.state = CombState(0, np.zeros((3, RING), np.float32), np.zeros(TRK), 0, self.grid_hz, 0)
        self._log = np.empty((2, 0))  # the kernel's per-block estimates of one call (reused, grown as needed)
        self.f0_log: list[float] = []  # estimate at the end of block log_start + i
        self.fund_log: list[float] = []
        self.log_start = 0

    def __repr__(self) -> str:
        s = self.state
        return (
            f"HarmonicComb({self.grid_hz:g} Hz grid at {self.fs_hz:g} Hz, rho {self.rho:g}, {self.block}-sample "
            f"blocks; at sample {s.n}, f0 {s.f0_hat_hz:.4f} Hz, {'locked' if self.locked else 'locking'}, "
            f"{s.nonfinite} non-finite)"
        )

    def copy(self) -> HarmonicComb:
        c = HarmonicComb.__new__(HarmonicComb)
        c.__dict__.update(self.__dict__)
        c.state = self.state.copy()
        c._log = np.empty((2, 0))  # (scratch of its own: a copy may run in another thread)
        c.f0_log = list(self.f0_log)
        c.fund_log = list(self.fund_log)
        return c

    def process(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim != 1:
            raise ValueError(f"the comb takes one input at a time: shape {x.shape}")
        if x.dtype.kind not in "fiu":
            raise ValueError(f"samples must be real numbers, got dtype {x.dtype}")
        if x.dtype != np.float32:  # float32 (a capture's own type) is read as it is
            x = x.astype(np.float64, copy=False)
        out = np.empty(x.shape, np.float32)
        s = self.state
        if self._log.shape[1] < x.size // self.block + 2:
            self._log = np.empty((2, x.size // self.block + 2))
        s.n, s.n_blocks, s.f0_hat_hz, bad, nf = comb_kernel(
            x,
            out,
            s.rings,
            s.trk,
            self._log,
            self._lo,
            s.n,
            s.n_blocks,
            s.f0_hat_hz,
            self.block,
            self.fs_hz,
            self.grid_hz,
            self.rho,
        )
        s.nonfinite += bad
        if nf:
            self.f0_log.extend(self._log[0, :nf].tolist())
            self.fund_log.extend(self._log[1, :nf].tolist())
        return out

    def trim_log(self, keep_blocks: int) -> None:
        """Forget all but the last ``keep_blocks`` entries of the per-block logs."""
        drop = len(self.f0_log) - keep_blocks
        if drop > 0:
            del self.f0_log[:drop]
            del self.fund_log[:drop]
            self.log_start += drop

    def at(self, sample: float) -> tuple[float, float]:
        """(grid frequency, fundamental RMS) as estimated just before input sample ``sample``:
        deterministic, whatever the block sizes and whenever it is asked."""
        b = int(sample // self.block) - 1 - self.log_start  # last block completed before it
        if not self.f0_log:
            return self.grid_hz, float("nan")
        b = min(max(b, 0), len(self.f0_log) - 1)
        return self.f0_log[b], self.fund_log[b]

    @property
    def locked(self) -> bool:
        return self.state.n >= LOCK_S * self.fs_hz

    @property
    def fundamental_rms(self) -> float:
        """RMS of the fundamental (same units as the input), from the tracker's phasor."""
        return float(self.state.trk[TRK_FUND])

    @property
    def f0_hz(self) -> float:
        return self.state.f0_hat_hz
