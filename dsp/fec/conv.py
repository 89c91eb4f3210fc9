"""K=7, rate-1/2 convolutional encoder (generators 171, 133 octal) and rate-2/3 puncturing.

Convention (docs/air-interface.md, "FEC"): the most significant bit of each octal generator
multiplies the *current* input bit, the least significant bit the input six steps back. For
each input bit the encoder emits the G1=171 parity bit first, then the G2=133 parity bit. These
are the generators of the CCSDS / NASA "standard" K=7 code (CCSDS additionally inverts the G2
output; we do not); libfec's ``viterbi27`` writes the same generators bit-reversed (0x4f, 0x6d)
with the newest bit in the LSB of its shift register, and scikit-commpy's
``Trellis(..., polynomial_format='LSB')`` reproduces our encoder (its default 'MSB' reading is
the time-reversed code).

The encoder is a streaming object (``process``/``reset``/``copy``) over the pure kernel
:func:`conv_encode_kernel`; :func:`encode_frame` terminates the trellis with six zero bits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dsp.air import params as P
from dsp.numba_settings import jit

G1 = P.CONV_G1_OCT
G2 = P.CONV_G2_OCT
K = P.CONV_K
N_STATES = 1 << (K - 1)

#: Puncturing pattern for rate 2/3, per pair of input bits: rows G1, G2.
PUNCTURE_2_3 = np.array([[1, 1], [1, 0]], dtype=np.uint8)


@jit
def _parity(x: int) -> int:
    x ^= x >> 4
    x ^= x >> 2
    x ^= x >> 1
    return x & 1


@jit
def conv_encode_kernel(bits: np.ndarray, state: int, g1: int, g2: int):
    """Encode ``bits`` starting from shift-register ``state`` (6 bits, newest input in bit 5).

    Returns (coded bits, 2 per input, G1 first; final state).
    """
    n = bits.shape[0]
    out = np.empty(2 * n, dtype=np.uint8)
    for i in range(n):
        w = (int(bits[i]) << 6) | state  # bit 6 = current input, bit 0 = oldest
        out[2 * i] = _parity(w & g1)
        out[2 * i + 1] = _parity(w & g2)
        state = w >> 1
    return out, state


def _check_bits(bits) -> np.ndarray:
    arr = np.asarray(bits)
    if arr.ndim != 1:
        raise ValueError(f"bits must be one-dimensional, got shape {arr.shape}")
    if arr.size and (arr.min() < 0 or arr.max() > 1):
        raise ValueError("bits must be 0 or 1")
    return arr.astype(np.uint8, copy=False)


@dataclass
class ConvEncoderState:
    register: int = 0


class ConvEncoder:
    """Streaming K=7 encoder: output does not depend on how the input is cut into blocks."""

    def __init__(self) -> None:
        self.state = ConvEncoderState()

    def process(self, bits) -> np.ndarray:
        out, self.state.register = conv_encode_kernel(_check_bits(bits), self.state.register, G1, G2)
        return out

    def reset(self) -> None:
        self.state = ConvEncoderState()

    def copy(self) -> ConvEncoder:
        c = ConvEncoder()
        c.state = ConvEncoderState(self.state.register)
        return c


def encode_frame(bits) -> np.ndarray:
    """Encode a whole frame from the zero state and append the 6-bit zero tail."""
    arr = _check_bits(bits)
    padded = np.concatenate([arr, np.zeros(P.CONV_TAIL_BITS, dtype=np.uint8)])
    out, _ = conv_encode_kernel(padded, 0, G1, G2)
    return out


def puncture(coded: np.ndarray, fec: P.FecRate) -> np.ndarray:
    """Apply the puncturing of ``fec`` to rate-1/2 coded bits (or soft values)."""
    coded = np.asarray(coded)
    if fec == P.FecRate.R1_2:
        return coded.copy()
    if fec != P.FecRate.R2_3:
        raise ValueError(f"unknown FEC rate {fec!r}")
    if coded.size % 4:
        raise ValueError(f"rate-2/3 puncturing needs a multiple of 4 coded bits, got {coded.size}")
    keep = np.tile(PUNCTURE_2_3.T.reshape(-1).astype(bool), coded.size // 4)
    return coded[keep]


def depuncture(values: np.ndarray, fec: P.FecRate, n_coded: int) -> np.ndarray:
    """Re-insert erasures (0.0) where :func:`puncture` removed bits; returns float64 soft values."""
    values = np.asarray(values, dtype=np.float64)
    if fec == P.FecRate.R1_2:
        if values.size != n_coded:
            raise ValueError(f"expected {n_coded} soft values, got {values.size}")
        return values.copy()
    if fec != P.FecRate.R2_3:
        raise ValueError(f"unknown FEC rate {fec!r}")
    keep = np.tile(PUNCTURE_2_3.T.reshape(-1).astype(bool), n_coded // 4)
    if values.size != int(keep.sum()):
        raise ValueError(f"expected {int(keep.sum())} punctured soft values, got {values.size}")
    out = np.zeros(n_coded, dtype=np.float64)
    out[keep] = values
    return out
