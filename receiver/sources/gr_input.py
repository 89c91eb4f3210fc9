"""GNU Radio raw items in: :class:`GrParser`, the stateful parse step of the ``framing="gr"``
stream (kept apart from :mod:`receiver.sources.assembler` to keep each module short).

What a raw gr-zeromq message cannot say by itself, this remembers across messages:

* **Absolute time from ``rx_time`` tags** (UHD's convention: a tuple of uint64 whole seconds
  and double fractional seconds since 1970 UTC, on the item it dates). Each tag re-anchors the
  clock: a message's time is the latest tag's time plus the items since that tag. A tag whose
  time disagrees with that count by more than 1.5 samples (an SDR overflow: samples were lost
  although GNU Radio's item offsets go on) flags the message as a discontinuity, so the receive
  chains restart and the bundles after it carry the new time. An offset that goes back (a
  flowgraph restart) without a tag of its own forgets the old anchor: no time is better than
  one from the previous run.
* **A wrong sink configuration**, refused with one line rather than taken as millions of gaps:
  a stream whose vector length is 1 (an ``Interleave`` block feeding the sink directly, so
  each item is one sample, not one frame of every channel: ``vlen_mismatch``), and a
  ``pass_tags`` setting that differs from the sink's (``pass_tags_mismatch``). Both are
  counted on :class:`~receiver.sources.base.SourceStats` and each such message is dropped.
"""

from __future__ import annotations

import logging

import numpy as np

from receiver.contracts import zmq_framing as zf
from receiver.sources.base import LogLimiter, SourceStats
from receiver.sources.messages import Message, parse_gr

__all__ = ["GrParser", "SinkMismatch", "rx_times_ns", "VLEN_ONE", "TIME_TOLERANCE_SAMPLES"]

#: the line logged when the stream's items look like single samples
VLEN_ONE = "the sink's vlen looks like 1"
#: a new rx_time tag that disagrees with the item count by more than this is a discontinuity
TIME_TOLERANCE_SAMPLES = 1.5
_GR_MAGIC = bytes((0xF0, 0x5F, zf.GR_HEADER_VERSION))


class SinkMismatch(zf.FramingError):
    """A message refused because the sink is configured otherwise than the receiver (its vector
    length, its ``pass_tags``): the text says what to change."""


def rx_times_ns(tags: list[zf.GrTag]) -> list[tuple[int, int]]:
    """``(item offset, UTC ns since 1970)`` of every well-formed ``rx_time`` tag, in offset
    order (a tuple of an integer number of seconds and a float fraction, as UHD writes it)."""
    out = []
    for t in tags:
        if t.key != "rx_time" or not isinstance(t.value, tuple) or len(t.value) != 2:
            continue
        secs, frac = t.value
        if isinstance(secs, bool) or not isinstance(secs, int) or not isinstance(frac, (int, float)):
            continue
        if not (secs >= 0 and np.isfinite(frac) and 0 <= frac < 1):
            continue
        out.append((int(t.offset), int(secs) * 1_000_000_000 + int(round(float(frac) * 1e9))))
    return sorted(out)


class GrParser:
    """Raw gr-zeromq messages -> :class:`Message`, with the state raw items need: the items
    counted so far (without ``pass_tags``), the ``rx_time`` anchor, and the detection of a sink
    whose vector length or ``pass_tags`` differs from the configuration. Raises
    :class:`~receiver.contracts.zmq_framing.FramingError` for a message to drop (the
    assembler counts it as a bad frame); the two mismatches are counted here as well."""

    def __init__(
        self,
        *,
        n_channels: int,
        sample_type: str,
        sample_rate_hz: float,
        pass_tags: bool,
        gr_scale: float | None,
        clip_level: float | None,
        stream_id: str,
        stats: SourceStats,
        log: LogLimiter,
        max_back_s: float = 2.0,
    ) -> None:
        self.n_channels, self.sample_type, self.fs = n_channels, sample_type, float(sample_rate_hz)
        self.dtype = zf.SAMPLE_TYPES[zf.SAMPLE_TYPE_CODES[sample_type]][1]
        self.pass_tags, self.gr_scale, self.clip_level = pass_tags, gr_scale, clip_level
        self.stream_id, self.stats, self._log = stream_id, stats, log
        self.max_back = max(1, int(round(max_back_s * self.fs)))  #: a jump back beyond: a restart
        self.count = 0  #: items counted (without pass_tags: the next message's first sample)
        self.anchor: tuple[int, int] | None = None  #: (item offset, UTC ns) of the last rx_time tag
        self._last_end: int | None = None  #: one past the last item of the last message parsed
        self._last_single: tuple[int, int] | None = None  #: (offset, values) of the last message
        self._single_streak = 0  #: messages in a row placed as if items were single samples

    def time_at(self, offset: int) -> int | None:
        """UTC ns of item ``offset`` from the last ``rx_time`` tag, or None."""
        if self.anchor is None:
            return None
        a_off, a_ns = self.anchor
        return a_ns + int(round((offset - a_off) * 1e9 / self.fs))

    def parse(self, data) -> Message:
        mv = memoryview(data).cast("B")
        try:
            m, tags = parse_gr(
                mv,
                n_channels=self.n_channels,
                dtype=self.dtype,
                sample_type=self.sample_type,
                sample_rate_hz=self.fs,
                pass_tags=self.pass_tags,
                next_offset=self.count,
                gr_scale=self.gr_scale,
                clip_level=self.clip_level,
                stream_id=self.stream_id,
            )
        except zf.FramingError as e:
            raise self._explain(mv, e) or e from None
        if self.pass_tags:
            # twice in a row: once can be a gap of exactly (n_channels - 1) x the message
            self._single_streak = self._single_streak + 1 if self._looks_single(m.first_sample) else 0
            self._last_single = (m.first_sample, m.n * self.n_channels)
            if self._single_streak >= 2:
                raise SinkMismatch(self._vlen_one(f"message offsets advance by {self.n_channels} x its items"))
        self.count = m.first_sample + m.n
        self._timestamp(m, rx_times_ns(tags))
        self._last_end = m.first_sample + m.n
        return m

    # time -----------------------------------------------------------------------------------
    def _timestamp(self, m: Message, rx: list[tuple[int, int]]) -> None:
        went_back = self._last_end is not None and self._last_end - m.first_sample > self.max_back
        if rx:
            off, ns = rx[0]
            expected = None if went_back else self.time_at(off)
            if expected is not None and abs(ns - expected) > TIME_TOLERANCE_SAMPLES * 1e9 / self.fs:
                m.flags |= zf.FLAG_DISCONTINUITY
                self._log(
                    logging.WARNING,
                    "time_jump",
                    "rx_time tag at item %d says %.6f s, %.6f s from the item count: a discontinuity",
                    off,
                    ns / 1e9,
                    (ns - expected) / 1e9,
                )
            self.anchor = (off, ns)
            m.time_ns = self.time_at(m.first_sample)
            self.anchor = rx[-1]
            return
        if went_back:
            self.anchor = None  # a flowgraph restart without a tag: the old run's time is wrong now
        m.time_ns = self.time_at(m.first_sample)

    # configuration mismatches ---------------------------------------------------------------
    def _looks_single(self, offset: int) -> bool:
        """True when this message starts where the last one would end if every item were one
        sample (and not where it ends counted in frames): a vector length of 1."""
        last = self._last_single
        if last is None or self.n_channels == 1:
            return False
        return offset == last[0] + last[1] and offset != last[0] + last[1] // self.n_channels

    def _vlen_one(self, why: str) -> str:
        self.stats.vlen_mismatch += 1
        return (
            f"{VLEN_ONE} ({why}; expected vectors of n_channels={self.n_channels}: put a Stream to "
            "Vector block before the ZMQ sink, or set its vlen)"
        )

    def _explain(self, mv: memoryview, e: zf.FramingError) -> SinkMismatch | None:
        """The configuration error a bad frame shows, if it shows one."""
        sample = self.dtype.itemsize
        frame = sample * self.n_channels
        tagged = bytes(mv[:3]) == _GR_MAGIC
        if self.pass_tags and not tagged and len(mv) % frame == 0:
            self.stats.pass_tags_mismatch += 1
            return SinkMismatch(
                "pass_tags mismatch: the receiver expects gr-zeromq's tag header (pass_tags = true) "
                "but this message has none: turn pass_tags on in the ZMQ sink, or set pass_tags = false"
            )
        if not self.pass_tags and tagged:
            try:
                zf.unpack_gr_tag_header(mv, sample)
            except zf.FramingError:
                pass
            else:
                self.stats.pass_tags_mismatch += 1
                return SinkMismatch(
                    "pass_tags mismatch: this message starts with gr-zeromq's tag header but the "
                    "receiver has pass_tags = false: set pass_tags = true (or turn it off in the sink)"
                )
        if self.n_channels == 1:
            return None
        try:
            if self.pass_tags:
                offset, _, hlen = zf.unpack_gr_tag_header(mv, sample)
                values = (len(mv) - hlen) // sample
            else:
                if len(mv) % sample:
                    return None
                offset, values = self.count, len(mv) // sample
        except zf.FramingError:
            return None
        if values % self.n_channels == 0:
            return None
        if self.pass_tags:
            self._last_single = (offset, values)
        return SinkMismatch(self._vlen_one(f"a message of {values} samples is not a whole number of frames"))
