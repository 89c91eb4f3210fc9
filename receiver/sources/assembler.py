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

from receiver.contracts import zmq_framing as zf
from receiver.sources.aside import Aside, Ident
from receiver.sources.base import LogLimiter, SampleBlock, SourceStats
from receiver.sources.gr_input import GrParser, SinkMismatch
from receiver.sources.messages import Message, parse_gla
from receiver.sources.placement import LOST_MEMORY as _LOST_MEMORY
from receiver.sources.placement import Placement

__all__ = ["StreamAssembler"]

_KINDS = {
    "foreign": "another stream id",
    "shape": "another shape",
    "session": "another session",
    "rewind": "its position went back",
}


class StreamAssembler(Placement):
    """Messages in (as received), in-order :class:`SampleBlock` out; no I/O, no threads.

    ``feed(parts)`` takes one ZeroMQ message (its list of frames; with two frames the first is
    a topic and is ignored) and returns the blocks that became deliverable; ``flush()`` gives up
    on whatever is missing and delivers everything held (``final=False``, for a silence, keeps
    what is held aside). See :mod:`receiver.sources` for the rules.

    framing="gla": ordering by sequence number, shape from each header. ``n_channels`` /
    ``sample_rate_hz`` when given are pinned: messages that differ are dropped and counted as a
    shape change, and never adopted (the receiver's input map and chains are built for them).
    ``stream_id`` when given filters (``foreign_dropped``); otherwise the first stream heard is
    followed. A message that does not continue the followed stream (another session, shape not
    pinned, stream id not configured, or a ``seq`` going back that is not a copy of a delivered
    message) is held aside (:mod:`receiver.sources.aside`) and adopted as a new segment when
    ``adopt_after`` (3) of its identity arrive in a row (None: never); until then, and if that
    never happens, the followed stream goes on untouched. A rejected message consumes no state.

    framing="gr": items of ``sample_type`` (float32 for a gr vector stream of float), one frame
    of ``n_channels`` per item; ``n_channels`` and ``sample_rate_hz`` are required. With
    ``pass_tags`` the header's offset orders messages and shows dropped data (a jump back by
    more than ``max_gap_fill_s`` is held aside like a new session); without it sample indices
    count received items from the first message, a loss cannot be seen, and a malformed message
    makes the next block a discontinuity. ``gr_scale``: physical = raw / gr_scale (like the
    sidecar's gla:scale); integer items are clipped at the ends of their range, float items only
    against an explicit ``clip_level`` (a float stream has no full scale).
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
        adopt_after: int | None = 3,
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
        self._pinned_stream = stream_id is not None
        self._aside = Aside(adopt_after, capacity=max(16, 2 * (adopt_after or 0)))
        self._started = False  # something delivered since construction
        self._mismatch = False  # the last message was refused for a sink configuration mismatch
        #: why the latest message was refused for the sink's settings (pass_tags, vlen), None when
        #: it was not: /healthz and /metrics show it while it lasts
        self.tags_mismatch: str | None = None
        self._gr: GrParser | None = None
        if framing == "gr":
            assert n_channels is not None and sample_rate_hz is not None  # checked above
            self._gr = GrParser(
                n_channels=n_channels,
                sample_type=sample_type,
                sample_rate_hz=sample_rate_hz,
                pass_tags=self.pass_tags,
                gr_scale=gr_scale,
                clip_level=clip_level,
                stream_id=stream_id or "gr",
                stats=self.stats,
                log=self._log,
                max_back_s=self.max_gap_fill_s,
            )
        self.end_of_stream = False
        self._eos_key: int | None = None  # GLA: seq of the end-of-stream message honoured
        self._eos_seen = False  # an end-of-stream message was delivered in sequence (reset with the keys)
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
        self._seen: dict[int, int | None] = {}  # GLA: seq -> CRC of the messages delivered (bounded)
        self._pending_disc = True
        self._eos_seen = False

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

    @property
    def held_aside(self) -> int:
        """Messages held aside until their new session, shape or stream is confirmed."""
        return len(self._aside)

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
        if len(self._aside):
            where += f", held aside: {self._aside.describe()}"
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
            m = self._parse_gla(data) if self.framing == "gla" else self._parse_gr(data)
            self.tags_mismatch = None
            return m
        except SinkMismatch as e:  # the configuration, not the network: no loss to account for
            st.bad_frames += 1
            self._mismatch = True
            self.tags_mismatch = str(e)
            self._log(logging.ERROR, "sink_mismatch", "%s", e)
            return None
        except zf.FramingError as e:
            st.bad_frames += 1
            self._log(logging.WARNING, "bad_frame", "bad frame skipped: %s", e)
            return None

    def _parse_gla(self, data) -> Message | None:
        return parse_gla(data, self.clip_level)

    def _parse_gr(self, data) -> Message:
        assert self._gr is not None  # framing == "gr"
        return self._gr.parse(data)

    # feeding -------------------------------------------------------------------------------
    def feed(self, parts: Sequence[bytes | memoryview]) -> list[SampleBlock]:
        """One received message -> the blocks it makes deliverable (possibly none)."""
        self.stats.messages += 1
        self._mismatch = False
        m = self._parse(parts)
        out: list[SampleBlock] = []
        if m is None:
            if not self._mismatch:
                self._unseen_loss()
            return out
        if not self._allowed(m):
            return out
        if self.end_of_stream and self._after_end(m):
            return out
        if self.next_key is None and (not self._by_seq or self.stream_id in (None, m.stream_id)):
            self._anchor(m, out)  # nothing followed yet, or the followed stream ended: start here
            return out
        kind = self._differs(m)
        if kind is None:
            taken = self._take(m, out)
            if taken == "taken":
                self._count_dropped(self._aside.interrupt())
                return out
            if taken == "dropped":
                return out
            kind = "rewind"
        self._hold_aside(m, kind, out)
        return out

    def flush(self, *, final: bool = True) -> list[SampleBlock]:
        """Give up on anything missing and deliver every held message, in order. ``final``: the
        stream is over, so the messages held aside unconfirmed are dropped too (a silence that
        is not the end, ``final=False``, keeps them: a restarted sender may still confirm)."""
        out: list[SampleBlock] = []
        self._flush_into(out)
        self._end_if_delivered(out)
        if final:
            self._count_dropped(self._aside.drop_all())
        return out

    def _unseen_loss(self) -> None:
        """A malformed message without sequence numbers (GNU Radio raw without ``pass_tags``): its
        samples are lost and nothing else can show it, so the next block starts a new segment
        rather than joining its neighbours end to end."""
        if self.framing != "gr" or self.pass_tags or not self._started or self._pending_disc:
            return
        self._pending_disc = True
        self.stats.gaps += 1
        self.stats.resyncs += 1
        self._log(
            logging.WARNING,
            "unseen_loss",
            "a malformed message without sample offsets: its samples are lost, the stream continues "
            "as a new segment at sample %d (discontinuity; gr-zeromq pass_tags would measure the gap)",
            self._gr.count if self._gr else 0,
        )

    def _allowed(self, m: Message) -> bool:
        """False (counted, no state touched) for what the configuration rules out: another stream
        id than the configured one, a shape against the pinned channel count or rate."""
        if self._by_seq and self._pinned_stream and m.stream_id != self.stream_id:
            self.stats.foreign_dropped += 1
            self._log(
                logging.WARNING, "foreign", "dropped a message of stream %r (following %r)", m.stream_id, self.stream_id
            )
            return False
        if m.n and not all(e is None or e == v for e, v in zip(self.expected, m.shape)):
            self.stats.wrong_shape_dropped += 1
            self._log(
                logging.WARNING,
                "shape_change",
                "dropped a message of shape %s: the source was configured for %s (never adopted)",
                _fmt_shape(m.shape),
                _fmt_shape(self.expected),
            )
            return False
        return True

    def _ident(self, m: Message, rewind: bool = False) -> Ident:
        shape = m.shape if m.n else self.shape
        return Ident(m.stream_id if self._by_seq else "gr", m.session, shape, rewind)

    def _differs(self, m: Message) -> str | None:
        """How ``m`` differs from the followed stream (the counter its drop would go to), or None."""
        if self._by_seq and m.stream_id != self.stream_id:
            return "foreign"
        if m.n and not self._shape_matches(m.shape):
            return "shape"
        if m.session is not None and m.session != self._session:
            return "session"
        return None

    def _shape_matches(self, s: tuple) -> bool:
        return all(a is None or a == b for a, b in zip(self.shape, s))

    def _anchor(self, m: Message, out: list[SampleBlock]) -> None:
        """Follow ``m``'s stream from here, with what was held aside for the same identity."""
        if self.end_of_stream:
            self.end_of_stream = False
            if self._started:
                self.stats.resyncs += 1
            self._log(logging.WARNING, "resync", "the stream starts again after its end-of-stream message")
        held = self._aside.take(self._ident(m)) + [m]
        self._follow(m, held, out)

    def _follow(self, m: Message, msgs: list[Message], out: list[SampleBlock]) -> None:
        self.end_of_stream = False
        self.stream_id = m.stream_id if self._by_seq else self.stream_id
        self._log.stream = self.stream_id or self.framing
        self._session = m.session
        shaped = [x for x in msgs if x.n]
        if shaped:
            self.shape = shaped[0].shape
        for x in sorted(msgs, key=lambda x: x.key):
            self._take(x, out)

    def _hold_aside(self, m: Message, kind: str, out: list[SampleBlock]) -> None:
        ident = self._ident(m, rewind=kind == "rewind")
        if ident not in self._aside:
            then = "never adopted" if self.adopt_after is None else f"adopted after {self.adopt_after} in a row"
            self._log(
                logging.WARNING,
                "held_aside",
                "holding aside message %d (%s: %s, session %s): %s; following %s",
                m.key,
                _KINDS[kind],
                _fmt_shape(ident.shape),
                "-" if m.session is None else f"{m.session:#x}",
                then,
                self.describe(),
            )
        cand, dropped, repeated = self._aside.add(ident, kind, m)
        self._count_dropped(dropped)
        if repeated:
            self.stats.duplicates += 1
            return
        if cand is None:
            return
        sess = "-" if m.session is None else f"{m.session:#x}"
        self._restart(out, f"adopting {_KINDS[cand.kind]}: {_fmt_shape(ident.shape)}, session {sess}")
        self._count_dropped(self._aside.drop_all())
        if any(x.n for x in cand.messages.values()) and not all(a == b for a, b in zip(self.shape, ident.shape)):
            self.stats.channel_count_changes += 1
        self._follow(m, list(cand.messages.values()), out)

    def _count_dropped(self, dropped: list[tuple[str, Message]]) -> None:
        st = self.stats
        for kind, _ in dropped:
            if kind == "foreign":
                st.foreign_dropped += 1
            elif kind == "shape":
                st.wrong_shape_dropped += 1
            else:
                st.unconfirmed_dropped += 1
        if dropped:
            self._log(
                logging.WARNING,
                "unconfirmed",
                "dropped %d messages held aside and never confirmed (%s)",
                len(dropped),
                ", ".join(sorted({k for k, _ in dropped})),
            )

    def _take(self, m: Message, out: list[SampleBlock]) -> str:
        """``m`` into the followed stream: "taken" (delivered or held for reordering), "dropped"
        (a duplicate or too late) or "rewind" (behind the stream and new: held aside)."""
        ended = self.end_of_stream
        r = self._accept(m, out)
        if ended and r == "taken":
            self._resume(m.key, "continues the stream after its end")
        self._end_if_delivered(out)
        return r

    def _deliver(self, m: Message, out: list[SampleBlock]) -> None:
        if m.flags & zf.FLAG_DISCONTINUITY and not self._pending_disc:
            # flagged but held for reordering: its discontinuity counts in sequence, when it is
            # delivered (at once it would give up the messages before it)
            self.stats.resyncs += 1
            self._pending_disc = True
            self._log(logging.WARNING, "resync", "resynchronising: the sender flagged a discontinuity")
        super()._deliver(m, out)
        if not m.flags & zf.FLAG_END_OF_STREAM:
            return
        if self._buf:  # messages after it already came: the sender did not end there
            self._log(
                logging.WARNING,
                "false_eos",
                "ignored the end-of-stream flag of message %d: %d later messages already came",
                m.key,
                len(self._buf),
            )
            return
        self._eos_seen = True
        self._eos_key = m.key

    def _end_if_delivered(self, out: list[SampleBlock]) -> None:
        """End the stream once its end-of-stream message was delivered *in sequence*: one held
        ahead for reordering waits for the messages before it (honouring it at once would give
        them up), and one with later messages already held is ignored. The position is kept
        (see :meth:`_after_end`)."""
        if self._eos_seen:
            self._eos_seen = False
            self.end_of_stream = True

    def _after_end(self, m: Message) -> bool:
        """The first messages after an end-of-stream; True when ``m`` was consumed here.

        Another session, shape or stream id: a restarted sender, the stream starts again at once
        (returns False with the position forgotten, ``feed`` anchors). The same session: the
        position was kept and ``m`` goes through the ordinary rules (a copy is a duplicate, a
        position going back is held aside); one that continues the stream shows that the end was
        not the sender's, and the stream goes on (:meth:`_take`). The end-of-stream message's own sequence number with
        other content and no end-of-stream flag: the genuine message that a forged or corrupted
        end-of-stream copy stood in for; the stream goes on, the message is a duplicate (its
        place was delivered)."""
        new = self._seen.get(m.key) != m.digest
        if m.key == self._eos_key and new and not m.flags & zf.FLAG_END_OF_STREAM:
            self.stats.duplicates += 1
            self._resume(m.key, "came again without the end-of-stream flag")
            return True
        if self.next_key is None:  # the position is already forgotten: ``feed`` anchors
            return False
        if not self._by_seq or self._eos_key is None or self._differs(m) is not None:
            self._eos_key = None
            self._reset_keys()
        return False

    def _resume(self, key: int, why: str) -> None:
        self.end_of_stream = False
        self._eos_key = None
        self._log(
            logging.WARNING,
            "false_eos",
            "message %d %s: that end-of-stream was not the sender's (forged or corrupted), the stream goes on",
            key,
            why,
        )

    def _restart(self, out: list[SampleBlock], why: str) -> None:
        """Deliver what is held, then forget the stream's position (the next message anchors)."""
        self._flush_into(out)
        if self._started:
            self.stats.resyncs += 1
        self._log(logging.WARNING, "resync", "resynchronising: %s", why)
        self._reset_keys()

    def _accept(self, m: Message, out: list[SampleBlock]) -> str:
        st = self.stats
        if self.next_key is None:
            self.next_key = m.key
            self._max_key = m.key
        if m.flags & zf.FLAG_DISCONTINUITY and m.key == self.next_key and self.next_sample is not None:
            self._restart(out, "the sender flagged a discontinuity")
            self.next_key = self._max_key = m.key
        k = m.key
        if self._by_seq:
            behind = k < self.next_key
        else:
            behind = k + m.n <= self.next_key and not (m.n == 0 and k == self.next_key)
        if behind:
            if self._is_lost(k, m.n):
                st.late_dropped += 1
                self._log(
                    logging.WARNING,
                    "late",
                    "dropped a message that came after its gap was given up (key %d, expected %d)",
                    k,
                    self.next_key,
                )
                return "dropped"
            if self._by_seq:
                new = self._seen.get(k) != m.digest  # not a copy of what was delivered
            else:
                new = self.next_key - k > self._max_fill(m.shape[2])  # far back: a flowgraph restart?
            if new:
                return "rewind"
            st.duplicates += 1
            self._log(
                logging.WARNING, "duplicate", "dropped a duplicate message (key %d, expected %d)", k, self.next_key
            )
            return "dropped"
        if k in self._buf:
            st.duplicates += 1
            self._log(logging.WARNING, "duplicate", "dropped a duplicate message (key %d, held)", k)
            return "dropped"
        if self._max_key is not None and k < self._max_key:
            st.reordered += 1
            self._log(logging.INFO, "reordered", "message %d arrived after %d; delivered in order", k, self._max_key)
        self._max_key = k if self._max_key is None else max(self._max_key, k)
        if k == self.next_key or (not self._by_seq and k < self.next_key):
            self._deliver(m, out)
            self._drain(out)
            return "taken"
        self._buf[k] = m
        while len(self._buf) > self.reorder_window:
            self._give_up_one(out)
        return "taken"

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
                else:
                    break
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


def _fmt_shape(s: tuple) -> str:
    nch, t, fs = s
    return f"({nch if nch is not None else '?'} ch, {t or '?'}, {fs if fs is not None else '?'} Hz)"
