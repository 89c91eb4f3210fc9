"""A frame on the air: bits -> FEC -> puncturing -> interleaving -> symbols -> chips.

The transmitter's half of docs/air-interface.md ("Coding", "Modulation", "Spreading"); the
frame itself (header, body, CRC) is the codec's: :mod:`dsp.air.frame`.
"""

from __future__ import annotations

import numpy as np

from dsp.air import params as P
from dsp.air.bits import bytes_to_bits
from dsp.air.codes import preamble_bits
from dsp.air.frame import FrameError
from dsp.air.interleave import interleave
from dsp.fec.conv import encode_frame, puncture
from dsp.tx.modulator import spread


def frame_coded_bits(frame: bytes, fec: P.FecRate = P.FecRate.R1_2) -> np.ndarray:
    """The transmitted coded bits in air order (encoded, punctured, interleaved)."""
    if len(frame) != P.FRAME_BYTES:
        raise FrameError(f"a frame is {P.FRAME_BYTES} bytes, got {len(frame)}")
    coded = encode_frame(bytes_to_bits(frame))
    return interleave(puncture(coded, fec))


def map_symbols(bits: np.ndarray, modulation: P.Modulation) -> np.ndarray:
    """BPSK: b -> 1 - 2b. QPSK: (b0, b1) -> ((1 - 2 b0) + j (1 - 2 b1)) / sqrt 2 (odd count: pad 0)."""
    bits = np.asarray(bits, dtype=np.float64)
    if modulation == P.Modulation.BPSK:
        return (1.0 - 2.0 * bits).astype(np.complex128)
    if modulation == P.Modulation.QPSK:
        if bits.size % 2:
            bits = np.concatenate([bits, [0.0]])
        return ((1.0 - 2.0 * bits[0::2]) + 1j * (1.0 - 2.0 * bits[1::2])) / np.sqrt(2.0)
    raise FrameError(f"unknown modulation {modulation!r}")


def preamble_symbols() -> np.ndarray:
    return (1.0 - 2.0 * preamble_bits().astype(np.float64)).astype(np.complex128)


def burst_symbols(
    frame: bytes, modulation: P.Modulation = P.Modulation.BPSK, fec: P.FecRate = P.FecRate.R1_2
) -> np.ndarray:
    """Preamble (64 BPSK symbols) followed by the data symbols."""
    return np.concatenate([preamble_symbols(), map_symbols(frame_coded_bits(frame, fec), modulation)])


def burst_chips(
    frame: bytes, channel: int, code: int, modulation: P.Modulation = P.Modulation.BPSK, fec: P.FecRate = P.FecRate.R1_2
) -> np.ndarray:
    return spread(burst_symbols(frame, modulation, fec), channel, code)
