"""Bit order helpers: bytes are sent most significant bit first."""

from __future__ import annotations

import numpy as np


def bytes_to_bits(data: bytes) -> np.ndarray:
    """MSB-first unpacking into a uint8 array of 0/1."""
    return np.unpackbits(np.frombuffer(bytes(data), dtype=np.uint8))


def bits_to_bytes(bits: np.ndarray) -> bytes:
    bits = np.asarray(bits, dtype=np.uint8)
    if bits.size % 8:
        raise ValueError(f"bit count {bits.size} is not a multiple of 8")
    if np.any(bits > 1):
        raise ValueError("bits must be 0 or 1")
    return np.packbits(bits).tobytes()
