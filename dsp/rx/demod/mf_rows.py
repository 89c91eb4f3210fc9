"""The chip matched filter of one burst on many inputs at once, for the measurements.

A decoded burst is measured on every input of its bus
(:func:`dsp.rx.demod.measure.measure_known_many`): the same chips, the same clock offset and the
same start on every input, so the direct path's chip windows and pulse taps (the table reads of
:func:`~dsp.rx.demod.matched_filter.mf_generic_into`) are the same for all of them, and so is
the derotation by the carrier offset. Here they are made once (:func:`derotation`,
:func:`path_positions`, :func:`chip_taps`) and applied to every input's samples
(:func:`derotate_rows`, :func:`accumulate_rows`), a block of chips at a time
(:func:`path_rows`). The delayed path's delay T0 comes from each input's own grid frequency,
so its taps are made per input (:func:`mf_rows_kernel`).

The numbers are those of the per-input matched filter to the bit. That filter is compiled with
reordered sums (profile "sums"): the compiler splits each chip's two sums into vector lanes and
adds the lanes up in an order of its own. :func:`accumulate_rows` (profile "exact") makes that
order explicit with fused multiply-adds: for a window of n samples (n // 2 pairs of an even and
an odd sample, summed separately) pairs 16 at a time in 16 lanes while n >= 32, then 4 at a time
in 4 lanes while at least 4 pairs are left, each time the lanes added pairwise (lane l with
lane l + half) down to one, then pair by pair, then the odd sample. That is what LLVM makes of
the loop for AVX-512 (read from its IR); :func:`check` compares the two on random samples with
chip windows of 3 to 81 samples (and shorter ones clipped at the ends), and :func:`rows_match`
is False on a machine where they differ (the measurements then take the per-input filter: the
same numbers, no saving). Per 18-input request at 48 kHz the filter takes ~2.9 ms of CPU
against ~3.9 ms input by input (the delayed path's taps, made per input, are most of it).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from dsp.numba_settings import fma, jit, jit_enabled
from dsp.rx.demod.carrier import derotate
from dsp.rx.demod.matched_filter import chip_window, mf_kernel
from dsp.rx.demod.pulse import DEC, RRC_PULSE, chip_grid

U = np.uint64  # (an index that is never negative: no wraparound test)
#: Chips whose taps are made at a time (their taps, ~32 KB, stay in the cache while used).
CHIP_BLOCK = 128


@jit
def derotation(n, m_first, c0, tau0, df, fs):
    """The phasors :func:`~dsp.rx.demod.carrier.derotate` multiplies ``r[i]`` by, i < n: the same
    expressions, made once for every input."""
    out = np.empty(n, dtype=np.complex128)
    w = -2.0 * math.pi * df
    step = np.empty(64, dtype=np.complex128)
    for t in range(64):
        a = (w * (DEC * t)) / fs
        step[t] = complex(math.cos(a), math.sin(a))
    for i0 in range(0, n, 64):
        a = (w * (DEC * (m_first + i0) + c0 - tau0)) / fs
        h = complex(math.cos(a), math.sin(a))
        for i in range(i0, min(n, i0 + 64)):
            out[i] = h * step[i - i0]
    return out


@jit
def derotate_rows(rows, ph, xr, xi):
    """Every input's samples derotated, ``rows[b, i] * ph[i]`` as derotate makes them (``ph``
    empty: no carrier offset, no product), their real and imaginary parts one row per input."""
    nb, n = rows.shape
    rot = ph.shape[0] > 0
    for b in range(nb):
        for i in range(n):
            v = rows[b, i] * ph[i] if rot else rows[b, i]
            xr[b, i] = v.real
            xi[b, i] = v.imag


@jit(math="sums")
def path_positions(grid, tau0, n_chips, pulse, p, nr, J, F):
    """Path ``p``'s table position of every sample its chips read: 2 j (the place in ``td``) in
    ``J`` and the fraction in ``F``, with the expressions (and the fastmath profile) of
    :func:`~dsp.rx.demod.matched_filter.mf_generic_into`."""
    n_first, c0, spc, t0_samples, period, shift = grid
    tab, td, tab_res, tab_span, span = pulse
    inv = 1.0 / spc
    du = DEC * inv * tab_res
    tau = tau0 + p * t0_samples
    u0 = ((DEC * n_first + c0 - tau) * inv + tab_span) * tab_res
    first, _ = chip_window(tau, spc, span, c0, n_first)
    _, last = chip_window(tau + (n_chips - 1) * spc, spc, span, c0, n_first)
    for i in range(max(first, 0), min(last, nr - 1) + 1):
        u = u0 + i * du
        j = math.floor(u)
        J[i] = np.uint64(2 * j)
        F[i] = u - j


@jit(math="sums")
def chip_taps(grid, tau0, pulse, p, nr, J, F, k0, k1, los, ns, taps):
    """Chips k0 .. k1 - 1 of path ``p``: their windows (first sample ``los[k - k0]``,
    ``ns[k - k0]`` samples, clipped to the ``nr`` samples) and pulse taps (``taps[k - k0,
    :ns[k - k0]]``) from the positions of :func:`path_positions`, as
    :func:`~dsp.rx.demod.matched_filter.mf_generic_into` reads them."""
    n_first, c0, spc, t0_samples, period, shift = grid
    tab, td, tab_res, tab_span, span = pulse
    res2 = np.uint64(2 * tab_res)
    for k in range(k0, k1):
        lo, hi = chip_window(tau0 + k * spc + p * t0_samples, spc, span, c0, n_first)
        lo = max(lo, 0)
        n = max(min(hi, nr - 1) + 1 - lo, 0)
        los[k - k0] = lo
        ns[k - k0] = n
        off = np.uint64(k) * res2
        for t in range(n):
            i = np.uint64(lo + t)
            v = J[i] - off
            taps[k - k0, t] = td[v] + td[v + np.uint64(1)] * F[i]


@jit
def accumulate_rows(xr, xi, rows, los, ns, taps, z, p, k0):
    """z[b, p, k0 + k] = the matched filter of chip k0 + k on input b (its samples ``xr[b]``,
    ``xi[b]``) with the windows (first sample ``los[k]``, ``ns[k]`` samples) and taps
    ``taps[k, :ns[k]]`` of :func:`chip_taps`, for the inputs b in ``rows``: summed in the per-input filter's order
    (the module docstring), in one function (a call per chip would count references to its
    arrays). Unsigned indices: no wraparound tests."""
    lanes = np.empty((4, 16))
    for b in rows:
        for k in range(los.shape[0]):
            lo = los[k]
            n = ns[k]
            npair = n // 2
            s0 = 0.0  # the even samples' real and imaginary parts, the odd ones'
            s1 = 0.0
            s2 = 0.0
            s3 = 0.0
            t = 0
            if n >= 32:  # 16 lanes (two vectors of 8), the first from 0, the others from -0
                t = npair & ~15
                for v in range(4):
                    lanes[v, 0] = 0.0
                    for q in range(1, 16):
                        lanes[v, q] = -0.0
                for tt in range(t):
                    q = tt & 15
                    i0 = lo + 2 * tt
                    lanes[0, q] = fma(xr[b, U(i0)], taps[k, U(2 * tt)], lanes[0, q])
                    lanes[1, q] = fma(xi[b, U(i0)], taps[k, U(2 * tt)], lanes[1, q])
                    lanes[2, q] = fma(xr[b, U(i0 + 1)], taps[k, U(2 * tt + 1)], lanes[2, q])
                    lanes[3, q] = fma(xi[b, U(i0 + 1)], taps[k, U(2 * tt + 1)], lanes[3, q])
                h = 8
                while h >= 1:
                    for v in range(4):
                        for q in range(h):
                            lanes[v, q] = lanes[v, q] + lanes[v, q + h]
                    h //= 2
                s0 = lanes[0, 0]
                s1 = lanes[1, 0]
                s2 = lanes[2, 0]
                s3 = lanes[3, 0]
            if n >= 8 and npair - t >= 4:  # 4 lanes, the first from the sum so far, the others from -0
                t4 = npair & ~3
                a0, a1, a2, a3 = s0, -0.0, -0.0, -0.0
                b0, b1, b2, b3 = s1, -0.0, -0.0, -0.0
                c0, c1, c2, c3 = s2, -0.0, -0.0, -0.0
                d0, d1, d2, d3 = s3, -0.0, -0.0, -0.0
                for tt in range(t, t4, 4):
                    i0 = lo + 2 * tt
                    j = 2 * tt
                    a0 = fma(xr[b, U(i0)], taps[k, U(j)], a0)
                    b0 = fma(xi[b, U(i0)], taps[k, U(j)], b0)
                    c0 = fma(xr[b, U(i0 + 1)], taps[k, U(j + 1)], c0)
                    d0 = fma(xi[b, U(i0 + 1)], taps[k, U(j + 1)], d0)
                    a1 = fma(xr[b, U(i0 + 2)], taps[k, U(j + 2)], a1)
                    b1 = fma(xi[b, U(i0 + 2)], taps[k, U(j + 2)], b1)
                    c1 = fma(xr[b, U(i0 + 3)], taps[k, U(j + 3)], c1)
                    d1 = fma(xi[b, U(i0 + 3)], taps[k, U(j + 3)], d1)
                    a2 = fma(xr[b, U(i0 + 4)], taps[k, U(j + 4)], a2)
                    b2 = fma(xi[b, U(i0 + 4)], taps[k, U(j + 4)], b2)
                    c2 = fma(xr[b, U(i0 + 5)], taps[k, U(j + 5)], c2)
                    d2 = fma(xi[b, U(i0 + 5)], taps[k, U(j + 5)], d2)
                    a3 = fma(xr[b, U(i0 + 6)], taps[k, U(j + 6)], a3)
                    b3 = fma(xi[b, U(i0 + 6)], taps[k, U(j + 6)], b3)
                    c3 = fma(xr[b, U(i0 + 7)], taps[k, U(j + 7)], c3)
                    d3 = fma(xi[b, U(i0 + 7)], taps[k, U(j + 7)], d3)
                s0 = (a0 + a2) + (a1 + a3)
                s1 = (b0 + b2) + (b1 + b3)
                s2 = (c0 + c2) + (c1 + c3)
                s3 = (d0 + d2) + (d1 + d3)
                t = t4
            for tt in range(t, npair):  # pair by pair
                i0 = lo + 2 * tt
                s0 = fma(xr[b, U(i0)], taps[k, U(2 * tt)], s0)
                s1 = fma(xi[b, U(i0)], taps[k, U(2 * tt)], s1)
                s2 = fma(xr[b, U(i0 + 1)], taps[k, U(2 * tt + 1)], s2)
                s3 = fma(xi[b, U(i0 + 1)], taps[k, U(2 * tt + 1)], s3)
            if n % 2:
                s0 = fma(xr[b, U(lo + n - 1)], taps[k, U(n - 1)], s0)
                s1 = fma(xi[b, U(lo + n - 1)], taps[k, U(n - 1)], s1)
            z[b, p, k0 + k] = complex(s0 + s2, s1 + s3)


@jit
def path_rows(xr, xi, rows, grid, tau0, n_chips, pulse, p, J, F, los, ns, taps, z):
    """z[b, p, :] for the inputs b in ``rows``, path ``p``'s taps made for them all
    (:func:`path_positions`, then :func:`chip_taps` and :func:`accumulate_rows` a block of
    chips at a time: the block's taps stay in the cache while every input uses them)."""
    nr = xr.shape[1]
    block = los.shape[0]
    path_positions(grid, tau0, n_chips, pulse, p, nr, J, F)
    for k0 in range(0, n_chips, block):
        k1 = min(k0 + block, n_chips)
        chip_taps(grid, tau0, pulse, p, nr, J, F, k0, k1, los, ns, taps)
        accumulate_rows(xr, xi, rows, los[: k1 - k0], ns[: k1 - k0], taps, z, p, k0)


@jit
def mf_rows_kernel(xr, xi, n_first, c0, spc, t0s, tau0, n_chips, pulse, los, ns, taps, z):
    """z[b, p, k] of every input b (:func:`mf_rows_grid`): the direct path's taps made once for
    all, the delayed path's (T0 = ``t0s[b]`` input samples) for each input."""
    nb, nr = xr.shape
    J = np.zeros(nr, dtype=np.uint64)
    F = np.zeros(nr)
    path_rows(xr, xi, np.arange(nb), (n_first, c0, spc, t0s[0], 0, 0), tau0, n_chips, pulse, 0, J, F, los, ns, taps, z)
    one = np.zeros(1, np.int64)
    for b in range(nb):
        one[0] = b
        path_rows(xr, xi, one, (n_first, c0, spc, t0s[b], 0, 0), tau0, n_chips, pulse, 1, J, F, los, ns, taps, z)


def path_taps(grid, tau0: float, n_chips: int, pulse, p: int, nr: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(los, ns, taps) of every chip of path ``p`` (:func:`chip_taps`): what the filter of
    ``nr`` samples reads, for a look at it."""
    J, F = np.zeros(nr, dtype=np.uint64), np.zeros(nr)
    path_positions(grid, float(tau0), int(n_chips), pulse, p, nr, J, F)
    los, ns = np.empty(n_chips, np.int64), np.empty(n_chips, np.int64)
    taps = np.empty((n_chips, window_cap(grid[2], pulse[4])))
    chip_taps(grid, float(tau0), pulse, p, nr, J, F, 0, n_chips, los, ns, taps)
    return los, ns, taps


def window_cap(spc: float, span: float) -> int:
    """Room for the longest chip window (samples) at ``spc`` input samples per chip."""
    return int(2.0 * span * spc / DEC) + 4


def mf_rows_grid(
    rows: np.ndarray, grids: list[tuple], tau0: float, ph: np.ndarray, n_chips: int, pulse=RRC_PULSE
) -> np.ndarray:
    """Matched-filter outputs z[b, p, k] of both paths for every input b of ``rows`` ((inputs,
    n) complex128) derotated by the phasors ``ph`` (:func:`derotation`; empty: none), input b's
    chip grid ``grids[b]`` (:func:`~dsp.rx.demod.pulse.chip_grid`, no chip classes: period 0),
    which differ in the delay of the second path only: ``mf_kernel(derotate(rows[b]), grids[b],
    tau0, n_chips, pulse)`` for each b, to the bit where :func:`rows_match`."""
    nb, nr = rows.shape
    xr = np.empty((nb, nr))
    xi = np.empty((nb, nr))
    derotate_rows(rows, ph, xr, xi)
    z = np.empty((nb, 2, n_chips), dtype=np.complex128)
    cap = window_cap(grids[0][2], pulse[4])
    los = np.empty(CHIP_BLOCK, np.int64)
    ns = np.empty(CHIP_BLOCK, np.int64)
    taps = np.empty((CHIP_BLOCK, cap))
    t0s = np.array([g[3] for g in grids])
    n_first, c0, spc = grids[0][:3]
    mf_rows_kernel(xr, xi, int(n_first), float(c0), float(spc), t0s, float(tau0), int(n_chips), pulse, los, ns, taps, z)
    return z


def check(seed: int = 0) -> bool:
    """Whether :func:`mf_rows_grid` gives the per-input filter's outputs to the bit, on random
    samples (some exactly 0, as blanked ones), for chip windows of every length from 0 to past
    80 samples (several sample rates and clock offsets; windows clipped at both ends)."""
    rng = np.random.default_rng(seed)
    for spc0 in (66.0 + 2.0 / 3.0, 133.0 + 1.0 / 3.0, 200.0, 20.0, 9.0):
        for eps in (3.1e-5, -1.17e-4):
            spc = spc0 / (1.0 + eps)
            n_chips = 40
            nr = int((n_chips + 20) * spc / DEC) + int(3 * spc0) + 40
            rows = rng.standard_normal((3, 2 * nr)).view(np.complex128)
            rows[1, 10:30] = 0.0
            m_first = int(rng.integers(-40, 40))
            c0 = 31.0
            tau0 = DEC * m_first + c0 + float(rng.uniform(-4.0, 2.0)) * spc
            grids = [chip_grid(m_first, c0, spc, float(rng.uniform(2.0, 3.0)) * spc0) for _ in range(3)]
            df = 0.37 if eps > 0 else 0.0  # (no carrier offset: no derotation)
            ph = derotation(nr, m_first, c0, tau0, df, 48000.0) if df else np.empty(0, np.complex128)
            z = mf_rows_grid(rows, grids, tau0, ph, n_chips)
            for b in range(3):
                r = derotate(rows[b], m_first, c0, tau0, df, 48000.0) if df else rows[b]
                if not np.array_equal(z[b], mf_kernel(r, grids[b], tau0, n_chips, RRC_PULSE)):
                    return False
    return True


@functools.cache
def rows_match() -> bool:
    """:func:`check`, once per process (False without JIT: plain Python rounds its sums in
    order, without the fused multiply-adds)."""
    return jit_enabled() and check()
