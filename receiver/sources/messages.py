"""One received ZeroMQ message, parsed: :class:`Message`, what :class:`StreamAssembler` orders.

:func:`parse_gla` reads the GLA framing, :func:`parse_gr` GNU Radio raw items (with or without
gr-zeromq's ``pass_tags`` header), both through :mod:`receiver.contracts.zmq_framing`, and raise
its :class:`~receiver.contracts.zmq_framing.FramingError` for a malformed message. The samples
stay raw (a view of the message's bytes): they are decoded only when the message is delivered.
Stateless: which stream to follow and where raw items start are the assembler's business.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from receiver.contracts import zmq_framing as zf

__all__ = ["Message", "parse_gla", "parse_gr"]


@dataclass
class Message:
    key: int  #: ordering key: sequence number (GLA) or first sample (GNU Radio)
    first_sample: int
    raw: np.ndarray  #: (n, n_channels) wire samples
    shape: tuple[int, str, float]  #: (n_channels, sample type, sample rate)
    full_scale: float  #: decode factor, see zmq_framing.decode_samples
    clip_level: float | None  #: physical clip level for floats (None: no float clip check)
    time_ns: int | None
    stream_id: str
    session: int | None = None
    flags: int = 0
    #: the GLA header's CRC-32 (covers header and samples): tells a replayed copy of a delivered
    #: message from a different message that reuses its sequence number; None for GNU Radio raw
    digest: int | None = None

    @property
    def n(self) -> int:
        return int(self.raw.shape[0])


def parse_gla(data, clip_level: float | None) -> Message:
    """A GLA message. ``clip_level``: the physical clip level; None: the header's full scale
    for float samples (integers are checked at the ends of their range)."""
    h, raw = zf.unpack_message(data)
    if clip_level is not None:
        level = clip_level
    elif raw.dtype.kind == "f" and h.full_scale > 0:
        level = h.full_scale
    else:
        level = None
    return Message(
        h.seq,
        h.first_sample,
        raw,
        (h.n_channels, h.sample_type, h.sample_rate_hz),
        h.full_scale,
        level,
        h.time_ns,
        h.stream_id,
        h.session,
        h.flags,
        struct.unpack_from("<I", data, 76)[0],
    )


def parse_gr(
    data,
    *,
    n_channels: int,
    dtype: np.dtype,
    sample_type: str,
    sample_rate_hz: float,
    pass_tags: bool,
    next_offset: int,
    gr_scale: float | None,
    clip_level: float | None,
    stream_id: str,
) -> tuple[Message, list[zf.GrTag]]:
    """GNU Radio raw items of ``dtype``, ``n_channels`` per item. With ``pass_tags`` the header's
    offset is the first sample; without it the message starts at ``next_offset`` (the items
    counted so far). physical = raw / ``gr_scale``. Integer items are clipped at either end of
    their range; float items only against an explicit ``clip_level``: a GNU Radio float stream
    has no full scale (it does not saturate, and its floats are usually physical values already),
    so ``gr_scale`` is a unit conversion, never a clip level. Returns the message and its tags
    (none without ``pass_tags``)."""
    nch = n_channels
    item = nch * dtype.itemsize
    mv = memoryview(data).cast("B")
    if pass_tags:
        offset, tags, hlen = zf.unpack_gr_tag_header(mv, item)
    else:
        hlen, tags = 0, []
        if len(mv) % item:
            raise zf.FramingError(
                f"gr payload: {len(mv)} bytes is not a multiple of the item size {item} ({nch} x {sample_type})"
            )
        offset = next_offset
    n = (len(mv) - hlen) // item
    raw = np.frombuffer(mv, dtype=dtype, count=n * nch, offset=hlen).reshape(n, nch)
    full = 1.0 / gr_scale if gr_scale else 1.0
    m = Message(offset, offset, raw, (nch, sample_type, float(sample_rate_hz)), full, clip_level, None, stream_id)
    return m, tags
