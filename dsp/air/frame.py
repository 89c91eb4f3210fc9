"""The frame codec (a contract: no numba): header, 32-byte frame with its CRC, and back.

What happens to a frame on the air (FEC, puncturing, interleaving, symbols, chips) is the
transmitter's: :mod:`dsp.tx.burst`.

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

from dsp.air import params as P
from dsp.air.bits import bits_to_bytes
from dsp.air.crc import crc16


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
        return (
            bytes([b0])
            + struct.pack(">I", self.hub_id)
            + self.counter.to_bytes(3, "big")
            + bytes([(self.seg_index << 4) | self.seg_count])
        )

    @classmethod
    def unpack(cls, data: bytes) -> Header:
        if len(data) < P.HEADER_BYTES:
            raise FrameError(f"header needs {P.HEADER_BYTES} bytes, got {len(data)}")
        b0 = data[0]
        return cls(
            version=b0 >> 6,
            kind=(b0 >> 2) & 0xF,
            flags=b0 & 3,
            hub_id=struct.unpack(">I", data[1:5])[0],
            counter=int.from_bytes(data[5:8], "big"),
            seg_index=data[8] >> 4,
            seg_count=data[8] & 0xF,
        )


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
    return ParsedFrame(Header.unpack(frame[: P.HEADER_BYTES]), bytes(frame[P.HEADER_BYTES : -2]), crc_ok, bytes(frame))


def frame_from_bits(bits: np.ndarray) -> bytes:
    """Decoded information bits (256) back to the frame bytes."""
    bits = np.asarray(bits)
    if bits.size != P.FRAME_BITS:
        raise FrameError(f"a frame has {P.FRAME_BITS} information bits, got {bits.size}")
    return bits_to_bytes(bits)
