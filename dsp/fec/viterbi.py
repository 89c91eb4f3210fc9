"""Soft-decision Viterbi decoder for the K=7, rate-1/2 code of :mod:`dsp.fec.conv` (171/133 octal).

Soft input convention
---------------------
One float per coded bit, in transmission order (G1 parity then G2 parity for every trellis
step). A positive value means "bit 0 more likely" (it is the real part of a BPSK symbol, bit
``b`` being sent as ``1 - 2b``); 0.0 is an erasure (what :func:`dsp.fec.conv.depuncture` inserts).
The branch metric is the correlation ``sum(soft * (1 - 2 * expected_bit))``, maximised: this is
the maximum-likelihood metric on an AWGN channel (squared Euclidean distance up to constants).

The trellis (normative, shared with ``tests/naive.py``)
-------------------------------------------------------
The encoder state is the 6-bit shift register of :func:`dsp.fec.conv.conv_encode_kernel`: the newest
input bit in bit 5, the oldest in bit 0. Input ``b`` takes state ``s`` to ``(b << 5) | (s >> 1)``
and emits ``parity(((b << 6) | s) & G)`` for G = G1, then G2. The two predecessors of state
``n`` are ``p = ((n & 31) << 1) | x`` for ``x`` = 0, 1 and the decoded bit is ``n >> 5``.

Add-compare-select, exactly (the reference in ``tests/naive.py`` performs the same float64
operations in the same order, so decisions match bit for bit, ties included):

* candidate(p -> n) = pm[p] + (s0 * (1 - 2 e0) + s1 * (1 - 2 e1)), all float64;
* the survivor is the predecessor with ``x = 1`` only if its candidate is *strictly* greater;
  on equal metrics the predecessor with the lower state index (``x = 0``) wins;
* after every step all metrics are normalised by subtracting the new metric of state 0, so
  they never drift (state 0 is reachable at every step from a known start);
* the start state is 0 (metric 0.0); the other states start at ``NEG`` = -1e300, a finite
  "minus infinity" (soft values are limited to ``|x| <= MAX_ABS_SOFT`` = 1e100 so it can never
  be confused with a real metric);
* a terminated frame is traced back from state 0; the streaming decoder traces back from the
  best state (largest metric, lowest index on ties).

Implementation: the 64-state trellis is 32 butterflies. Predecessors ``2j`` and ``2j+1`` feed
states ``j`` (input 0) and ``j+32`` (input 1); both generators tap the current and the oldest
bit, so the four branch metrics of butterfly ``j`` are ``+m, -m, -m, +m`` with
``m = s0 * A[j] + s1 * B[j]`` (``A``, ``B`` = +-1 tables). The 64 decisions of a step are packed
into one 64-bit word (bit ``n`` = ``x`` of the survivor into state ``n``).

Streaming (:class:`ViterbiDecoder`): decisions go into a ring buffer. Bits are released in
blocks of ``block`` steps at fixed absolute positions: when ``traceback + block`` undecided
steps are held, the decoder traces back from the best current state and releases the oldest
``block`` bits, each of which therefore had at least ``traceback`` steps of look-ahead. The
release points depend only on the number of steps since :meth:`ViterbiDecoder.reset`, so the
output does not depend on how the input is cut into calls (odd chunks are fine: a dangling
soft value waits for its partner).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dsp.air import params as P
from dsp.fec import conv
from dsp.numba_settings import jit

K = P.CONV_K
N_STATES = 1 << (K - 1)  # 64
N_BFLY = N_STATES // 2  # 32
TAIL = P.CONV_TAIL_BITS
#: "Minus infinity" start metric of the states other than the start state (finite on purpose).
NEG = -1e300
#: Largest accepted soft magnitude: keeps every metric far from NEG and from overflow.
MAX_ABS_SOFT = 1e100


def _parity_py(x: int) -> int:
    return bin(x).count("1") & 1


def _make_tables() -> tuple[np.ndarray, np.ndarray]:
    """Signs (1 - 2e) of the G1 / G2 outputs on the branch 2j -> j (input 0), j = 0..31."""
    a = np.empty(N_BFLY, dtype=np.float64)
    b = np.empty(N_BFLY, dtype=np.float64)
    for j in range(N_BFLY):
        w = 2 * j  # (input 0 << 6) | state 2j
        a[j] = 1.0 - 2.0 * _parity_py(w & conv.G1)
        b[j] = 1.0 - 2.0 * _parity_py(w & conv.G2)
    return a, b


_SIGN_G1, _SIGN_G2 = _make_tables()


def _check_butterfly_symmetry() -> None:
    # The +m/-m/-m/+m butterfly relies on both generators tapping the current and oldest bit.
    for g in (conv.G1, conv.G2):
        if not (g >> (K - 1)) & 1 or not g & 1:
            raise RuntimeError("butterfly structure needs generators with both end taps set")


_check_butterfly_symmetry()


# ------------------------------------------------------------------------------ kernels
@jit
def _acs_step(s0, s1, old, new, sa, sb):
    """One trellis step: fill ``new`` (normalised, new[0] == 0) from ``old``; return decisions.

    Bit n of the returned int64 word is 1 when the survivor into state n comes from the odd
    predecessor ((n & 31) << 1) | 1.
    """
    word = np.int64(0)  # numpy scalars: bit 63 wraps to the sign bit in pure Python too
    for j in range(N_BFLY):
        m = s0 * sa[j] + s1 * sb[j]
        a = old[2 * j]
        b = old[2 * j + 1]
        c00 = a + m  # 2j   -> j
        c10 = b - m  # 2j+1 -> j
        c01 = a - m  # 2j   -> j+32
        c11 = b + m  # 2j+1 -> j+32
        if c10 > c00:
            new[j] = c10
            word |= np.int64(1) << np.int64(j)
        else:
            new[j] = c00
        if c11 > c01:
            new[j + N_BFLY] = c11
            word |= np.int64(1) << np.int64(j + N_BFLY)
        else:
            new[j + N_BFLY] = c01
    n0 = new[0]
    for s in range(N_STATES):
        new[s] = new[s] - n0
    return word


@jit
def _init_metrics(pm, known_start):
    for s in range(N_STATES):
        pm[s] = NEG if known_start else 0.0
    pm[0] = 0.0


@jit
def _best_state(pm):
    best = 0
    for s in range(1, N_STATES):
        if pm[s] > pm[best]:
            best = s
    return best


@jit
def viterbi_decode_kernel(soft, n_bits_with_tail):
    """Decode a whole terminated frame: start state 0, end forced to state 0.

    ``soft`` holds ``2 * n_bits_with_tail`` float64 values (see the module docstring for the
    convention). Returns the ``n_bits_with_tail`` decoded input bits (uint8), tail included.
    """
    n = n_bits_with_tail
    if soft.shape[0] != 2 * n:
        raise ValueError("viterbi_decode_kernel: soft must hold exactly 2 * n_bits_with_tail values")
    pm = np.empty(N_STATES, dtype=np.float64)
    tmp = np.empty(N_STATES, dtype=np.float64)
    _init_metrics(pm, True)
    dec = np.empty(n, dtype=np.int64)
    sa = _SIGN_G1
    sb = _SIGN_G2
    for t in range(n):
        dec[t] = _acs_step(soft[2 * t], soft[2 * t + 1], pm, tmp, sa, sb)
        pm, tmp = tmp, pm
    out = np.empty(n, dtype=np.uint8)
    s = 0
    for t in range(n - 1, -1, -1):
        out[t] = s >> 5
        s = ((s & 31) << 1) | ((dec[t] >> s) & 1)
    return out


@jit
def _stream_kernel(soft, pm, ring, n_steps, n_out, traceback, block):
    """Run ACS over ``soft`` (even length), releasing blocks as described in the module doc.

    Updates ``pm`` and ``ring`` in place; returns (released bits, n_steps, n_out).
    """
    mask = ring.shape[0] - 1
    n = soft.shape[0] // 2
    total = n_steps + n
    ready = total - traceback - n_out
    n_blocks = ready // block if ready > 0 else 0
    out = np.empty(n_blocks * block, dtype=np.uint8)
    k = 0
    cur = pm
    nxt = np.empty(N_STATES, dtype=np.float64)
    sa = _SIGN_G1
    sb = _SIGN_G2
    for i in range(n):
        ring[n_steps & mask] = _acs_step(soft[2 * i], soft[2 * i + 1], cur, nxt, sa, sb)
        cur, nxt = nxt, cur
        n_steps += 1
        if n_steps - traceback - n_out >= block:
            s = _best_state(cur)
            lim = n_out + block
            for t in range(n_steps - 1, n_out - 1, -1):
                if t < lim:
                    out[k + t - n_out] = s >> 5
                s = ((s & 31) << 1) | ((ring[t & mask] >> s) & 1)
            n_out = lim
            k += block
    if n % 2:  # the latest metrics are in the scratch buffer
        for s in range(N_STATES):
            pm[s] = cur[s]
    return out, n_steps, n_out


@jit
def _stream_flush_kernel(pm, ring, n_steps, n_out, end_state):
    """Release every undecided step, tracing back from ``end_state`` (-1: the best state)."""
    mask = ring.shape[0] - 1
    out = np.empty(n_steps - n_out, dtype=np.uint8)
    s = _best_state(pm) if end_state < 0 else end_state
    for t in range(n_steps - 1, n_out - 1, -1):
        out[t - n_out] = s >> 5
        s = ((s & 31) << 1) | ((ring[t & mask] >> s) & 1)
    return out


# ---------------------------------------------------------------------------- validation
def _check_soft(soft, *, even: bool = True, what: str = "soft") -> np.ndarray:
    if not isinstance(soft, np.ndarray):
        soft = np.asarray(soft)
    if soft.dtype.kind != "f":
        raise ValueError(f"{what} must be a float array (float64 soft values), got dtype {soft.dtype}")
    if soft.ndim != 1:
        raise ValueError(f"{what} must be one-dimensional, got shape {soft.shape}")
    if even and soft.size % 2:
        raise ValueError(f"{what} must hold an even number of values (2 per trellis step), got {soft.size}")
    arr = np.ascontiguousarray(soft, dtype=np.float64)
    if arr.size:
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{what} contains NaN or infinite values")
        if np.max(np.abs(arr)) > MAX_ABS_SOFT:
            raise ValueError(f"{what} magnitudes must not exceed {MAX_ABS_SOFT:g}")
    return arr


def _check_count(n, what: str) -> int:
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)):
        raise ValueError(f"{what} must be an integer, got {n!r}")
    if n < 0:
        raise ValueError(f"{what} must be non-negative, got {n}")
    return int(n)


# ------------------------------------------------------------------------- convenience API
def decode_terminated(soft) -> np.ndarray:
    """Decode a terminated frame of any length; returns all input bits, tail included."""
    arr = _check_soft(soft)
    return viterbi_decode_kernel(arr, arr.size // 2)


def decode_frame(soft, n_info_bits: int) -> np.ndarray:
    """Decode one terminated rate-1/2 frame (depuncture first) and strip the 6 tail bits.

    ``soft`` must hold ``2 * (n_info_bits + 6)`` values. Returns uint8 bits.
    """
    n_info_bits = _check_count(n_info_bits, "n_info_bits")
    arr = _check_soft(soft)
    n = n_info_bits + TAIL
    if arr.size != 2 * n:
        raise ValueError(
            f"expected {2 * n} soft values for {n_info_bits} information bits (+{TAIL} tail bits), got {arr.size}"
        )
    return viterbi_decode_kernel(arr, n)[:n_info_bits]


def reencode_errors(soft, bits) -> int:
    """Pre-FEC bit errors: re-encode decoded ``bits`` (information bits, no tail) with
    :func:`dsp.fec.conv.encode_frame` and count the non-erased soft values whose sign disagrees."""
    arr = _check_soft(soft)
    b = np.asarray(bits)
    if b.ndim != 1:
        raise ValueError(f"bits must be one-dimensional, got shape {b.shape}")
    if 2 * (b.size + TAIL) != arr.size:
        raise ValueError(
            f"{b.size} information bits encode to {2 * (b.size + TAIL)} coded bits, "
            f"but {arr.size} soft values were given"
        )
    coded = conv.encode_frame(b)
    return int(np.count_nonzero((arr > 0) & (coded == 1)) + np.count_nonzero((arr < 0) & (coded == 0)))


# ------------------------------------------------------------------------------ streaming
@dataclass
class ViterbiState:
    """Everything a :class:`ViterbiDecoder` carries between calls."""

    pm: np.ndarray  #: (64,) float64 path metrics, normalised so that pm[0] == 0 after a step
    ring: np.ndarray  #: (2**k,) int64 packed decision words; step t lives at t % ring.size
    n_steps: int = 0  #: trellis steps processed since reset
    n_out: int = 0  #: bits released since reset (always <= n_steps)
    pending: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float64))  #: odd leftover

    def copy(self) -> ViterbiState:
        return ViterbiState(self.pm.copy(), self.ring.copy(), self.n_steps, self.n_out, self.pending.copy())


class ViterbiDecoder:
    """Streaming soft Viterbi decoder.

    ``process(soft)`` returns the bits decided so far (each with at least ``traceback`` steps of
    look-ahead; bits are released in blocks of ``block``), ``flush(terminated=True)`` returns
    the rest (tracing back from state 0 if the stream ended with the zero tail, else from the
    best state) and resets the decoder for the next stream. ``known_start=False`` starts with
    all states equally likely (joining a stream mid-way).

    With ``traceback`` at least the frame length (in steps), ``process`` + ``flush()`` returns
    exactly what :func:`viterbi_decode_kernel` returns for the frame.
    """

    def __init__(self, traceback: int = 96, block: int = 32, known_start: bool = True) -> None:
        traceback = _check_count(traceback, "traceback")
        block = _check_count(block, "block")
        if traceback < 1 or block < 1:
            raise ValueError("traceback and block must be >= 1")
        self.traceback = traceback
        self.block = block
        self.known_start = bool(known_start)
        cap = 1
        while cap < traceback + block:
            cap <<= 1
        self._cap = cap
        self.reset()

    def reset(self) -> None:
        pm = np.empty(N_STATES, dtype=np.float64)
        _init_metrics(pm, self.known_start)
        self.state = ViterbiState(pm=pm, ring=np.zeros(self._cap, dtype=np.int64))

    def __repr__(self) -> str:
        s = self.state
        return (
            f"ViterbiDecoder(traceback {self.traceback}, block {self.block}, "
            f"{'known' if self.known_start else 'unknown'} start; {s.n_steps} steps, {s.n_out} bits out)"
        )

    def copy(self) -> ViterbiDecoder:
        c = ViterbiDecoder.__new__(ViterbiDecoder)
        c.traceback, c.block, c.known_start, c._cap = self.traceback, self.block, self.known_start, self._cap
        c.state = self.state.copy()
        return c

    def process(self, soft) -> np.ndarray:
        arr = _check_soft(soft, even=False)
        st = self.state
        if st.pending.size:
            arr = np.concatenate([st.pending, arr])
        usable = arr.size - (arr.size % 2)
        out, st.n_steps, st.n_out = _stream_kernel(
            arr[:usable], st.pm, st.ring, st.n_steps, st.n_out, self.traceback, self.block
        )
        st.pending = arr[usable:].copy()
        return out

    def flush(self, terminated: bool = True) -> np.ndarray:
        st = self.state
        if st.pending.size:
            raise ValueError("flush: an odd number of soft values was fed (half a trellis step is pending)")
        out = _stream_flush_kernel(st.pm, st.ring, st.n_steps, st.n_out, 0 if terminated else -1)
        self.reset()
        return out
