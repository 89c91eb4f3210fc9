"""Frame builder: header + encrypted body -> CRC -> FEC -> puncturing -> interleaving -> symbols.

Frame (32 bytes, sent MSB first; docs/air-interface.md, "Frame"):

    byte 0      version (2 bits, =1) | kind (4 bits) | flags (2 bits, 0)
    bytes 1-4   hub id, unsigned big-endian (in clear: the platform finds the key by it)
    bytes 5-7   message counter, unsigned big-endian (replay protection, CCM nonce)
    byte 8      segment index (high nibble) | segment count (low nibble, 1..15)
    bytes 9-25  AES-128-CCM ciphertext (17 bytes)
    bytes 26-29 CCM tag (4 bytes)
    bytes 30-31 CRC-16/IBM-3740 of bytes 0-29, big-endian
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from . import params as P
from .bits import bits_to_bytes, bytes_to_bits
from .codes import preamble_bits
from .conv import encode_frame, puncture
from .crc import crc16
from .interleave import interleave
from .modulator import spread


class FrameError(ValueError):
    """A frame that cannot be built or parsed; the message names what is wrong."""


@dataclass(frozen=True)
class Header:
    kind: int
    hub_id: int
    counter: int
    seg_index: int = 0
    seg_count: int = 1
    version: int = P.AIR_VERSION
    flags: int = 0

    def validate(self) -> None:
        checks = [
            (0 <= self.version < 4, f"version {self.version} does not fit 2 bits"),
            (0 <= self.kind < 16, f"kind {self.kind} does not fit 4 bits"),
            (0 <= self.flags < 4, f"flags {self.flags} do not fit 2 bits"),
            (0 <= self.hub_id < 2**32, f"hub_id {self.hub_id} does not fit 32 bits"),
            (0 <= self.counter < 2**24, f"counter {self.counter} does not fit 24 bits"),
            (1 <= self.seg_count <= 15, f"seg_count {self.seg_count} not in 1..15"),
            (0 <= self.seg_index < self.seg_count, f"seg_index {self.seg_index} not below seg_count {self.seg_count}"),
        ]
        for ok, why in checks:
            if not ok:
                raise FrameError(why)

    def pack(self) -> bytes:
        self.validate()
        b0 = (self.version << 6) | (self.kind << 2) | self.flags
        return (bytes([b0]) + struct.pack(">I", self.hub_id) + self.counter.to_bytes(3, "big")
                + bytes([(self.seg_index << 4) | self.seg_count]))

    @classmethod
    def unpack(cls, data: bytes) -> "Header":
        if len(data) < P.HEADER_BYTES:
            raise FrameError(f"header needs {P.HEADER_BYTES} bytes, got {len(data)}")
        b0 = data[0]
        return cls(version=b0 >> 6, kind=(b0 >> 2) & 0xF, flags=b0 & 3,
                   hub_id=struct.unpack(">I", data[1:5])[0], counter=int.from_bytes(data[5:8], "big"),
                   seg_index=data[8] >> 4, seg_count=data[8] & 0xF)


def build_frame(header: Header, sealed_body: bytes) -> bytes:
    """Assemble the 32-byte frame; ``sealed_body`` is ciphertext + tag (21 bytes)."""
    want = P.CIPHERTEXT_BYTES + P.TAG_BYTES
    if len(sealed_body) != want:
        raise FrameError(f"sealed body must be {want} bytes, got {len(sealed_body)}")
    head = header.pack() + bytes(sealed_body)
    return head + crc16(head).to_bytes(2, "big")


@dataclass(frozen=True)
class ParsedFrame:
    header: Header
    sealed_body: bytes
    crc_ok: bool
    raw: bytes


def parse_frame(frame: bytes) -> ParsedFrame:
    if len(frame) != P.FRAME_BYTES:
        raise FrameError(f"a frame is {P.FRAME_BYTES} bytes, got {len(frame)}")
    crc_ok = crc16(frame[:-2]) == int.from_bytes(frame[-2:], "big")
    return ParsedFrame(Header.unpack(frame[: P.HEADER_BYTES]), bytes(frame[P.HEADER_BYTES:-2]), crc_ok, bytes(frame))


# ----------------------------------------------------------------------------------------------
# Bits -> coded bits -> symbols -> chips
# ----------------------------------------------------------------------------------------------

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


def burst_symbols(frame: bytes, modulation: P.Modulation = P.Modulation.BPSK,
                  fec: P.FecRate = P.FecRate.R1_2) -> np.ndarray:
    """Preamble (64 BPSK symbols) followed by the data symbols."""
    return np.concatenate([preamble_symbols(), map_symbols(frame_coded_bits(frame, fec), modulation)])


def burst_chips(frame: bytes, channel: int, code: int, modulation: P.Modulation = P.Modulation.BPSK,
                fec: P.FecRate = P.FecRate.R1_2) -> np.ndarray:
    return spread(burst_symbols(frame, modulation, fec), channel, code)


def frame_from_bits(bits: np.ndarray) -> bytes:
    """Decoded information bits (256) back to the frame bytes."""
    bits = np.asarray(bits)
    if bits.size != P.FRAME_BITS:
        raise FrameError(f"a frame has {P.FRAME_BITS} information bits, got {bits.size}")
    return bits_to_bytes(bits)
