"""Stream assembly: ZeroMQ messages in, as received; in-order sample blocks out.

:class:`StreamAssembler` does no I/O and starts no thread (:class:`ZmqSource` feeds it from its
socket; the tests feed it lists of bytes). It parses each message (:mod:`receiver.sources.messages`:
the GLA header, or GNU Radio raw items with the optional ``pass_tags`` header), follows one
stream, puts the messages back in order, fills or reports gaps, decodes the samples and turns
faults into counters.
Stream faults never raise and never shift samples; the rules, fault by fault, and the
counters they move are in the package docstring (:mod:`receiver.sources`). Logs go to the
``gla.ingest`` logger, at most one line per kind of event and stream every ``log_interval_s``.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from datetime import datetime

import numpy as np

from receiver.contracts import zmq_framing as zf
from receiver.sources.base import LogLimiter, SampleBlock, SourceStats, count_clipped
from receiver.sources.messages import Message, parse_gla, parse_gr

__all__ = ["StreamAssembler"]


_LOST_MEMORY = 4096


class StreamAssembler:
    """Messages in (as received), in-order :class:`SampleBlock` out; no I/O, no threads.

    ``feed(parts)`` takes one ZeroMQ message (its list of frames; with two frames the first is
    a topic and is ignored) and returns the blocks that became deliverable; ``flush()`` gives up
    on whatever is missing and delivers everything held. See :mod:`receiver.sources` for the rules.

    framing="gla": ordering by sequence number, shape from each header. ``n_channels`` /
    ``sample_rate_hz`` when given are pinned: messages that differ are dropped and counted as a
    shape change, and never adopted (the receiver's input map and chains are built for them);
    a shape change in what is not pinned (sample type always) is adopted after ``adopt_after``
    consecutive messages (None: never). ``stream_id`` when given filters; otherwise the first
    stream seen is followed and others are dropped (``foreign_dropped``).

    framing="gr": items of ``sample_type`` (float32 for a gr vector stream of float), one frame
    of ``n_channels`` per item; ``n_channels`` and ``sample_rate_hz`` are required. With
    ``pass_tags`` the header's offset orders messages and shows dropped data; without it sample
    indices count received items from the first message (a loss cannot be seen). ``gr_scale``:
    physical = raw / gr_scale (like the sidecar's gla:scale), and the clip level is 1/gr_scale.
    """

    def __init__(
        self,
        *,
        framing: str = "gla",
        n_channels: int | None = None,
        sample_rate_hz: float | None = None,
        sample_type: str = "float32",
        pass_tags: bool = False,
        stream_id: str | None = None,
        reorder_window: int = 8,
        max_gap_fill_s: float = 2.0,
        adopt_after: int | None = 16,
        clip_level: float | None = None,
        gr_scale: float | None = None,
        log_interval_s: float = 10.0,
        stats: SourceStats | None = None,
    ) -> None:
        if framing not in ("gla", "gr"):
            raise ValueError(f"framing must be 'gla' or 'gr', got {framing!r}")
        if reorder_window < 0:
            raise ValueError(f"reorder_window must be >= 0, got {reorder_window}")
        if not (max_gap_fill_s >= 0):
            raise ValueError(f"max_gap_fill_s must be >= 0, got {max_gap_fill_s}")
        if adopt_after is not None and adopt_after < 1:
            raise ValueError(f"adopt_after must be >= 1 or None, got {adopt_after}")
        if sample_type not in zf.SAMPLE_TYPE_CODES:
            raise ValueError(f"sample_type must be one of {sorted(zf.SAMPLE_TYPE_CODES)}, got {sample_type!r}")
        if framing == "gr":
            if not n_channels or n_channels < 1:
                raise ValueError("framing='gr' needs n_channels (the vector length of the gr stream)")
            if not sample_rate_hz or sample_rate_hz <= 0:
                raise ValueError("framing='gr' needs sample_rate_hz (raw items carry no rate)")
            if gr_scale is not None and not (gr_scale > 0):
                raise ValueError(f"gr_scale must be > 0, got {gr_scale}")
        self.framing, self.pass_tags = framing, bool(pass_tags)
        self.gr_dtype = zf.SAMPLE_TYPES[zf.SAMPLE_TYPE_CODES[sample_type]][1]
        self.gr_sample_type = sample_type
        self.gr_scale = gr_scale
        self.expected = (n_channels, sample_type if framing == "gr" else None, sample_rate_hz)
        self.stream_id = stream_id
        self.reorder_window = int(reorder_window)
        self.max_gap_fill_s = float(max_gap_fill_s)
        self.adopt_after = adopt_after
        self.clip_level = clip_level
        self.stats = stats if stats is not None else SourceStats()
        self._log = LogLimiter(stream_id or framing, log_interval_s)
        self.shape: tuple = self.expected  # current shape; None fields not known yet
        self._cand: tuple | None = None
        self._cand_run = 0
        self._started = False  # something delivered since construction
        self._gr_count = 0
        self.end_of_stream = False
        self._reset_keys()
        self._session: int | None = None

    # state --------------------------------------------------------------------------------
    def _reset_keys(self) -> None:
        self.next_key: int | None = None
        self.next_sample: int | None = None
        self._max_key: int | None = None
        self._buf: dict[int, Message] = {}
        self._lost: set[int] = set()
        self._lost_order: deque[int] = deque()
        self._lost_ranges: deque[tuple[int, int]] = deque(maxlen=256)
        self._skip: set[int] = set()  # sequence numbers dropped for their shape: not awaited
        self._behind_run = 0
        self._pending_disc = True

    @property
    def n_channels(self) -> int | None:
        return self.shape[0]

    @property
    def sample_rate_hz(self) -> float | None:
        return self.shape[2]

    @property
    def held(self) -> int:
        """Messages waiting in the reorder buffer."""
        return len(self._buf)

    def describe(self) -> str:
        """One line: framing, stream id, shape (channels, sample type, rate), where the stream is."""
        tags = " with tags" if self.framing == "gr" and self.pass_tags else ""
        stream = f", stream {self.stream_id!r}" if self.stream_id is not None else ""
        if self.end_of_stream:
            where = "ended (end-of-stream message)"
        elif self.next_key is None:
            where = "waiting for the first message"
        else:
            key = f"next seq {self.next_key}, " if self._by_seq else ""
            where = f"{key}next sample {self.next_sample}, {self.held} held"
        return f"{self.framing}{tags}{stream}, {_fmt_shape(self.shape)}, {where}"

    def __repr__(self) -> str:
        return f"StreamAssembler({self.describe()})"

    def _max_fill(self, fs: float) -> int:
        return int(round(self.max_gap_fill_s * fs))

    @property
    def _by_seq(self) -> bool:
        return self.framing == "gla"

    # parsing ------------------------------------------------------------------------------
    def _parse(self, parts: Sequence[bytes | memoryview]) -> Message | None:
        st = self.stats
        if not parts or len(parts) > 2:
            st.bad_frames += 1
            self._log(
                logging.WARNING,
                "bad_frame",
                "bad frame: a message of %d parts (expected 1, or topic + data)",
                len(parts),
            )
            return None
        data = parts[-1]
        try:
            if self.framing == "gla":
                return self._parse_gla(data)
            return self._parse_gr(data)
        except zf.FramingError as e:
            st.bad_frames += 1
            self._log(logging.WARNING, "bad_frame", "bad frame skipped: %s", e)
            return None

    def _parse_gla(self, data) -> Message | None:
        m = parse_gla(data, self.clip_level)
        if self.stream_id is None:
            self.stream_id = m.stream_id
            self._log.stream = m.stream_id or "gla"
        elif m.stream_id != self.stream_id:
            self.stats.foreign_dropped += 1
            self._log(
                logging.WARNING, "foreign", "dropped a message of stream %r (following %r)", m.stream_id, self.stream_id
            )
            return None
        return m

    def _parse_gr(self, data) -> Message:
        nch, _, fs = self.expected
        assert nch is not None and fs is not None  # framing='gr' needs both (checked in __init__)
        m = parse_gr(
            data,
            n_channels=nch,
            dtype=self.gr_dtype,
            sample_type=self.gr_sample_type,
            sample_rate_hz=fs,
            pass_tags=self.pass_tags,
            next_offset=self._gr_count,
            gr_scale=self.gr_scale,
            clip_level=self.clip_level,
            stream_id=self.stream_id or "gr",
        )
        self._gr_count = m.first_sample + m.n
        return m

    # feeding -------------------------------------------------------------------------------
    def feed(self, parts: Sequence[bytes | memoryview]) -> list[SampleBlock]:
        """One received message -> the blocks it makes deliverable (possibly none)."""
        self.stats.messages += 1
        m = self._parse(parts)
        out: list[SampleBlock] = []
        if m is None:
            return out
        if self.end_of_stream:  # the sender ended its stream earlier: this one starts a new one
            self.end_of_stream = False
            self._restart(m, out, "the stream starts again after its end-of-stream message")
            self._session = m.session
        if m.session is not None and self._session is not None and m.session != self._session:
            self._restart(m, out, f"sender restarted (session {self._session:#x} -> {m.session:#x})")
            self.shape = self.expected
            self._cand, self._cand_run = None, 0
        if m.session is not None:
            self._session = m.session
        if not self._check_shape(m, out):
            if self._by_seq and self.next_key is not None and m.key >= self.next_key:
                self._skip.add(m.key)  # its samples will not come: do not wait for it
                self._drain(out)
            return out
        self._accept(m, out)
        if m.flags & zf.FLAG_END_OF_STREAM:
            self._flush_into(out)
            self.end_of_stream = True
            self._reset_keys()
        return out

    def flush(self) -> list[SampleBlock]:
        """Give up on anything missing and deliver every held message, in order."""
        out: list[SampleBlock] = []
        self._flush_into(out)
        return out

    def _shape_matches(self, s: tuple) -> bool:
        return all(a is None or a == b for a, b in zip(self.shape, s))

    def _check_shape(self, m: Message, out: list[SampleBlock]) -> bool:
        st = self.stats
        if m.n == 0:  # no samples (an end-of-stream message, say): its shape does not matter
            return True
        if self._shape_matches(m.shape):
            self.shape = m.shape
            self._cand, self._cand_run = None, 0
            return True
        allowed = all(e is None or e == v for e, v in zip(self.expected, m.shape))
        if m.shape != self._cand:
            self._cand, self._cand_run = m.shape, 0
            st.channel_count_changes += 1
            if not allowed:
                then = f"; never adopted: the source was configured for {_fmt_shape(self.expected)}"
            elif self.adopt_after is None:
                then = ""
            else:
                then = f"; adopted after {self.adopt_after} in a row"
            self._log(
                logging.WARNING,
                "shape_change",
                "stream shape changed from %s to %s (channels, sample type, rate): dropping these messages%s",
                _fmt_shape(self.shape),
                _fmt_shape(m.shape),
                then,
            )
        self._cand_run += 1
        if allowed and self.adopt_after is not None and self._cand_run >= self.adopt_after:
            self._restart(m, out, f"adopting the new shape {_fmt_shape(m.shape)}")
            self.shape = m.shape
            self._cand, self._cand_run = None, 0
            return True
        st.wrong_shape_dropped += 1
        return False

    def _restart(self, m: Message, out: list[SampleBlock], why: str) -> None:
        """Deliver what is held, then re-anchor the stream on ``m``."""
        self._flush_into(out)
        if self._started:
            self.stats.resyncs += 1
        self._log(logging.WARNING, "resync", "resynchronising: %s", why)
        self._reset_keys()

    def _accept(self, m: Message, out: list[SampleBlock]) -> None:
        st = self.stats
        if self.next_key is None:
            self.next_key = m.key
            self._max_key = m.key
        if m.flags & zf.FLAG_DISCONTINUITY and m.key >= self.next_key and self._started:
            self._restart(m, out, "the sender flagged a discontinuity")
            self.next_key = self._max_key = m.key
        k = m.key
        if self._by_seq:
            behind = k < self.next_key
        else:
            behind = k + m.n <= self.next_key and not (m.n == 0 and k == self.next_key)
        if behind:
            self._behind_run += 1
            far = not self._by_seq and self.next_key - k > self._max_fill(m.shape[2])
            if far or (self.adopt_after is not None and self._behind_run >= self.adopt_after):
                self._restart(m, out, f"sample index/sequence went back from {self.next_key} to {k}")
                self.next_key = self._max_key = k
            else:
                if self._is_lost(k, m.n):
                    st.late_dropped += 1
                    self._log(
                        logging.WARNING,
                        "late",
                        "dropped a message that came after its gap was given up (key %d, expected %d)",
                        k,
                        self.next_key,
                    )
                else:
                    st.duplicates += 1
                    self._log(
                        logging.WARNING,
                        "duplicate",
                        "dropped a duplicate message (key %d, expected %d)",
                        k,
                        self.next_key,
                    )
                return
        self._behind_run = 0
        if k in self._buf:
            st.duplicates += 1
            self._log(logging.WARNING, "duplicate", "dropped a duplicate message (key %d, held)", k)
            return
        if self._max_key is not None and k < self._max_key:
            st.reordered += 1
            self._log(logging.INFO, "reordered", "message %d arrived after %d; delivered in order", k, self._max_key)
        self._max_key = k if self._max_key is None else max(self._max_key, k)
        if k == self.next_key or (not self._by_seq and k < self.next_key):
            self._deliver(m, out)
            self._drain(out)
            return
        self._buf[k] = m
        while len(self._buf) > self.reorder_window:
            self._give_up_one(out)

    def _is_lost(self, k: int, n: int) -> bool:
        if self._by_seq:
            return k in self._lost
        return any(a < k + n and k < b for a, b in self._lost_ranges)

    def _mark_lost(self, upto: int) -> None:
        a = self.next_key
        if a is None or upto <= a:
            return
        if self._by_seq:
            for k in range(max(a, upto - _LOST_MEMORY), upto):
                self._lost.add(k)
                self._lost_order.append(k)
            while len(self._lost_order) > _LOST_MEMORY:
                self._lost.discard(self._lost_order.popleft())
        else:
            self._lost_ranges.append((a, upto))

    def _give_up_one(self, out: list[SampleBlock]) -> None:
        k = min(self._buf)
        self._mark_lost(k)
        m = self._buf.pop(k)
        self._deliver(m, out)
        self._drain(out)

    def _drain(self, out: list[SampleBlock]) -> None:
        assert self.next_key is not None  # set by the message just accepted (or delivered)
        if self._by_seq:
            while True:
                if self.next_key in self._buf:
                    self._deliver(self._buf.pop(self.next_key), out)
                elif self.next_key in self._skip:
                    self._skip.discard(self.next_key)
                    self.next_key += 1
                else:
                    break
            if self._skip:
                self._skip = {k for k in self._skip if k > self.next_key}
        else:
            while self._buf and min(self._buf) <= self.next_key:
                m = self._buf.pop(min(self._buf))
                if m.key + m.n <= self.next_key and m.n:
                    self.stats.duplicates += 1
                else:
                    self._deliver(m, out)

    def _flush_into(self, out: list[SampleBlock]) -> None:
        while self._buf:
            self._give_up_one(out)

    def _time_at(self, m: Message, sample: int) -> datetime | None:
        fs = m.shape[2]
        if m.time_ns is not None:
            return zf.ns_to_time(m.time_ns + int(round((sample - m.first_sample) * 1e9 / fs)))
        return None

    def _deliver(self, m: Message, out: list[SampleBlock]) -> None:
        """Deliver ``m`` at its sample position (filling a gap before it, trimming an overlap)."""
        st = self.stats
        fs = m.shape[2]
        start, raw = m.first_sample, m.raw
        self.next_key = m.key + 1 if self._by_seq else max(self.next_key or 0, m.key + m.n)
        if self.next_sample is None:
            self.next_sample = start
        d = start - self.next_sample
        if d > 0:
            st.gaps += 1
            if d <= self._max_fill(fs):
                st.gap_samples += d
                self._log(
                    logging.WARNING,
                    "gap",
                    "gap of %d samples (%.3f s) at sample %d: filled with NaN",
                    d,
                    d / fs,
                    self.next_sample,
                )
                fill = np.full((d, m.shape[0]), np.nan)
                out.append(
                    SampleBlock(
                        m.stream_id,
                        self.next_sample,
                        fill,
                        fs,
                        self._time_at(m, self.next_sample),
                        discontinuity=self._pending_disc,
                        gap_fill=True,
                    )
                )
                self._pending_disc = False
                st.blocks += 1
            else:
                st.resyncs += 1
                self._pending_disc = True
                self._log(
                    logging.WARNING,
                    "resync",
                    "gap of %d samples (%.3f s) at sample %d, longer than "
                    "max_gap_fill_s=%g: continuing at sample %d (discontinuity)",
                    d,
                    d / fs,
                    self.next_sample,
                    self.max_gap_fill_s,
                    start,
                )
        elif d < 0:
            if start + m.n <= self.next_sample:
                if -d > self._max_fill(fs):
                    st.resyncs += 1
                    self._pending_disc = True
                    self._log(
                        logging.WARNING,
                        "resync",
                        "sample index went back from %d to %d: continuing there (discontinuity)",
                        self.next_sample,
                        start,
                    )
                else:
                    if m.n:
                        st.duplicates += 1
                        self._log(
                            logging.WARNING,
                            "duplicate",
                            "dropped message %d: its samples %d..%d were already delivered",
                            m.key,
                            start,
                            start + m.n,
                        )
                    return
            else:
                trim = -d
                st.duplicates += 1
                self._log(
                    logging.WARNING, "duplicate", "message %d overlaps delivered samples: %d rows trimmed", m.key, trim
                )
                raw = raw[trim:]
                start += trim
        n = raw.shape[0]
        if n == 0:
            return
        x = zf.decode_samples(raw, m.full_scale)
        if raw.dtype.kind == "f":
            nb = n * raw.shape[1] - int(np.count_nonzero(np.isfinite(x)))
            if nb:
                st.nonfinite += nb
                self._log(
                    logging.WARNING, "nonfinite", "%d NaN/inf samples in %d..%d (passed on)", nb, start, start + n
                )
        c = count_clipped(raw, x, m.clip_level)
        if c:
            st.clipped += c
            self._log(logging.WARNING, "clipped", "%d clipped samples in %d..%d", c, start, start + n)
        out.append(SampleBlock(m.stream_id, start, x, fs, self._time_at(m, start), discontinuity=self._pending_disc))
        self._pending_disc = False
        self._started = True
        self.next_sample = start + n
        st.blocks += 1
        st.samples += n


def _fmt_shape(s: tuple) -> str:
    nch, t, fs = s
    return f"({nch if nch is not None else '?'} ch, {t or '?'}, {fs if fs is not None else '?'} Hz)"
