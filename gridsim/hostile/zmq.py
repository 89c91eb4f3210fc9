"""ZeroMQ surface: hostile messages fed to the receiver's :class:`StreamAssembler`, alone and
interleaved with a real stream.

A clean GLA stream (:func:`clean_stream`: 24 messages of 3 channels, float32, one session) is fed
with hostile messages slipped in after chosen messages; :func:`check_interleaved` compares what
comes out with what the clean stream alone gives. Kinds of hostile message (:func:`hostile`):

- ``garbage``: random bytes; ``truncated``: a real message cut short (header or payload);
  ``flipped``: a real message with bytes overwritten and its CRC left stale; ``parts``: zero or
  three ZeroMQ frames. These fail the framing checks: the property is that they cost nothing.
- ``forged``: a real message with a header field changed (session, sequence number, shape,
  stream id, first sample, flags) and its CRC recomputed, as a buggy or hostile sender would
  send. Issue 17 item 4: such a message may cost at most its own samples.

:func:`check_gr` feeds random bytes to GNU Radio raw assemblers (with and without the
``pass_tags`` header): nothing may raise.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

from receiver.contracts import zmq_framing as zf
from receiver.sources.assembler import StreamAssembler

from . import Problem

N_MSG, NCH, PER, FS, SESSION = 24, 3, 480, 48000.0, 0x5EED
# header fields (offset, struct format) that a forger may change: see docs/zmq-framing.md
FIELDS = {
    "sample_type": (5, "<B"),
    "stream_id": (8, "16s"),
    "seq": (24, "<Q"),
    "first_sample": (32, "<Q"),
    "time_ns": (40, "<q"),
    "sample_rate_hz": (48, "<d"),
    "full_scale": (56, "<d"),
    "n_channels": (64, "<H"),
    "flags": (66, "<H"),
    "n_frames": (68, "<I"),
    "session": (72, "<I"),
}


def clean_stream() -> list[bytes]:
    rng = np.random.default_rng(17)
    out = []
    for i in range(N_MSG):
        x = (rng.standard_normal((PER, NCH)) * 0.01).astype(np.float32)
        h = zf.GlaHeader("rx-test", i, i * PER, FS, NCH, "float32", 1.0, None, 0, SESSION)
        out.append(zf.pack_message(h, x))
    return out


CLEAN = clean_stream()


def reseal(msg: bytes) -> bytes:
    """The message with its CRC recomputed (a forger's, or a buggy sender's, valid framing)."""
    b = bytearray(msg)
    hdr, payload = bytearray(b[: zf.HEADER_LEN]), bytes(b[zf.HEADER_LEN :])
    crc = zlib.crc32(payload, zlib.crc32(bytes(hdr[:76])))
    struct.pack_into("<I", hdr, 76, crc)
    return bytes(hdr) + payload


def assemble(stream: list[list[bytes]]) -> tuple[list, StreamAssembler]:
    a = StreamAssembler()
    out = []
    for parts in stream:
        out += a.feed(parts)
    out += a.flush()
    return out, a


def delivered(blocks) -> np.ndarray:
    """The clean stream's sample range as delivered: NaN where nothing (or a gap fill) came."""
    y = np.full((N_MSG * PER, NCH), np.nan)
    for b in blocks:
        if b.gap_fill or b.stream_id != "rx-test":
            continue
        lo, hi = max(b.first_sample, 0), min(b.end_sample, N_MSG * PER)
        if lo < hi:
            y[lo:hi] = b.samples[lo - b.first_sample : hi - b.first_sample]
    return y


def resyncs(blocks) -> int:
    """Blocks flagged as a discontinuity: each resets the receive chains (bursts in flight lost)."""
    return sum(1 for b in blocks if b.discontinuity)


_REF_BLOCKS = assemble([[m] for m in CLEAN])[0]
REFERENCE, REF_RESYNCS = delivered(_REF_BLOCKS), resyncs(_REF_BLOCKS)


@dataclass
class Hostile:
    after: int  #: slipped in after this clean message
    kind: str
    parts: list[bytes]
    what: str
    own: int = 0  #: samples a forged message the sender could have sent may cost (its own count)

    def __repr__(self) -> str:
        sizes = [len(p) for p in self.parts]
        return f"Hostile(after={self.after}, {self.kind}: {self.what}, parts of {sizes} bytes)"


@st.composite
def hostile(draw, kinds=("garbage", "truncated", "flipped", "parts", "forged")) -> Hostile:
    kind = draw(st.sampled_from(kinds))
    after = draw(st.integers(0, N_MSG - 1))
    src = CLEAN[draw(st.integers(0, N_MSG - 1))]
    if kind == "garbage":
        b = draw(st.binary(min_size=0, max_size=300))
        if draw(st.booleans()):
            b = b"GLAS" + b  # past the magic
        return Hostile(after, kind, [b], f"{len(b)} random bytes")
    if kind == "truncated":
        n = draw(st.integers(0, len(src) - 1))
        return Hostile(after, kind, [src[:n]], f"cut to {n} bytes")
    if kind == "flipped":
        b = bytearray(src)
        at = draw(st.integers(0, len(b) - 1))
        new = draw(st.binary(min_size=1, max_size=16))
        if bytes(b[at : at + len(new)]) == new[: len(b) - at]:
            new = bytes(x ^ 0xFF for x in new)
        b[at : at + len(new)] = new
        return Hostile(after, kind, [bytes(b[: len(src)])], f"{len(new)} bytes overwritten at {at}, CRC stale")
    if kind == "parts":
        n = draw(st.sampled_from([0, 3, 4]))
        return Hostile(after, kind, [src] * n, f"{n} frames")
    name = draw(st.sampled_from(sorted(FIELDS)))
    at, fmt = FIELDS[name]
    b = bytearray(src)
    size = struct.calcsize(fmt)
    old = bytes(b[at : at + size])
    new = draw(st.binary(min_size=size, max_size=size).filter(lambda v: v != old))
    b[at : at + size] = new
    msg = reseal(bytes(b))
    own = 0
    try:
        h, _ = zf.unpack_message(msg)
        same = (h.session, h.stream_id, h.n_channels, h.sample_type, h.sample_rate_hz) == (
            SESSION,
            "rx-test",
            NCH,
            "float32",
            FS,
        )
        if same:  # indistinguishable from the sender's own: it may cost as many samples as it has
            own = h.n_frames
    except zf.FramingError:
        pass
    return Hostile(after, kind, [msg], f"{name} {old.hex()} -> {new.hex()}, CRC recomputed", own)


def check_interleaved(hs: list[Hostile]) -> list[Problem]:
    """The clean stream with ``hs`` slipped in: nothing raises, and every clean sample comes out
    unchanged, but for as many as the forged messages the sender could have sent carry (one
    bad message costs at most its own samples; one of another session or shape costs none)."""
    stream: list[list[bytes]] = []
    for i, m in enumerate(CLEAN):
        stream.append([m])
        stream += [h.parts for h in hs if h.after == i]
    try:
        blocks, a = assemble(stream)
    except Exception as e:  # noqa: BLE001
        return [Problem("crash", f"{type(e).__name__}: {e}")]
    y = delivered(blocks)
    bad = ~((y == REFERENCE) | (np.isnan(y) & np.isnan(REFERENCE))).all(axis=1)
    n, out = int(bad.sum()), []
    if n > sum(h.own for h in hs):
        first = int(np.argmax(bad))
        out.append(Problem("lost", f"{n} clean samples lost or changed (first at {first}); {a.stats}"))
    extra = resyncs(blocks) - REF_RESYNCS
    if extra > 2 * sum(1 for h in hs if h.own):  # a sender's jump there and back
        out.append(Problem("lost", f"{extra} extra resynchronisations (bursts in flight lost); {a.stats}"))
    return out


def interleavings(kinds=("garbage", "truncated", "flipped", "parts", "forged")):
    return st.lists(hostile(kinds), min_size=1, max_size=4)


@st.composite
def gr_inputs(draw) -> tuple[bool, int, list[bytes]]:
    tags = draw(st.booleans())
    nch = draw(st.integers(1, 4))
    msgs = draw(st.lists(st.binary(max_size=200), min_size=1, max_size=6))
    if tags and draw(st.booleans()):  # a valid tag header in front of random items
        msgs = [zf.pack_gr_tag_header(draw(st.integers(0, 2**40)), []) + m for m in msgs]
    return tags, nch, msgs


def check_gr(x: tuple[bool, int, list[bytes]]) -> list[Problem]:
    """Random bytes to a GNU Radio raw assembler: bad messages are counted, nothing raises."""
    tags, nch, msgs = x
    a = StreamAssembler(framing="gr", n_channels=nch, sample_rate_hz=FS, pass_tags=tags)
    try:
        for m in msgs:
            a.feed([m])
        a.flush()
    except Exception as e:  # noqa: BLE001
        return [Problem("crash", f"{type(e).__name__}: {e}")]
    return []
