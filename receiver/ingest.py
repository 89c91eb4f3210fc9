"""Sample sources of the receiver: capture replay and ZeroMQ streams behind one interface.

Every source is an iterable of :class:`SampleBlock` (rows = sample instants, columns = inputs,
float64 in the capture's physical units: per-unit current) with a :class:`SourceStats` of
counters, ``n_channels``, ``sample_rate_hz``, ``close()`` and context-manager support.

* :class:`CaptureSource` replays a capture of :mod:`gridsim.capture` (audio file + sidecar),
  as fast as it can be read or paced in real time.
* :class:`ZmqSource` receives a stream over ZeroMQ (PULL or SUB) in the GLA framing
  (``docs/zmq-framing.md``) or as GNU Radio gr-zeromq ``push_sink``/``pub_sink`` raw items
  (optionally with the ``pass_tags`` header).
* :class:`CaptureSender` / :func:`stream_capture` replay a capture over ZeroMQ (PUSH or PUB),
  with optional fault injection; used by the tests, the demo and the benchmarks.

Stream faults never raise and never shift samples (the ordering logic is in
:class:`StreamAssembler`, which does no I/O):

========================  =================================================================
fault                     handling
========================  =================================================================
malformed message         skipped, ``bad_frames``
gap (samples missing)     NaN rows up to ``max_gap_fill_s`` (``gaps``, ``gap_samples``; the
                          comb bridges NaN, sample indices stay exact); a longer gap: the
                          stream continues at the new position (``gaps``, ``resyncs``) and
                          the next block has ``discontinuity=True``
duplicate                 dropped, ``duplicates`` (same sequence number, or a sample range
                          already delivered; a partial overlap is trimmed)
reordered                 held in a buffer of ``reorder_window`` messages and delivered in
                          order (``reordered``); arriving after its gap was given up:
                          dropped, ``late_dropped``
changed shape             (channel count, sample type or sample rate) dropped
                          (``wrong_shape_dropped``), ``channel_count_changes`` once per
                          change; after ``adopt_after`` consecutive messages of the new shape
                          it is adopted (``resyncs``, ``discontinuity``), unless it contradicts
                          the ``n_channels`` / ``sample_rate_hz`` the source was given
sender restart            (new session id, DISCONTINUITY flag, indices going far back)
                          ``resyncs``, ``discontinuity``
NaN / inf samples         passed through, ``nonfinite`` (the receive chain replaces them)
clipping                  counted in ``clipped``: integer samples at either end of their
                          range, floats with ``|x| >= clip level`` (default: full scale)
========================  =================================================================

Logs go to the ``gla.ingest`` logger with ``extra={"event": ..., "stream": ...}``, at most one
line per kind of event and stream every ``log_interval_s`` (the rest are counted in the next
line).
"""
from __future__ import annotations

import logging
import math
import os
import secrets
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, Callable, Iterable, Iterator, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np
import soundfile as sf
import zmq

from receiver.contracts.capture import CaptureMeta, open_capture, read_capture_meta

from receiver.contracts import zmq_framing as zf

__all__ = [
    "SampleBlock", "SourceStats", "Source", "CaptureSource", "CaptureTruncatedError", "ZmqSource",
    "StreamAssembler", "CaptureSender", "SendReport", "stream_capture",
]

log = logging.getLogger("gla.ingest")


# --------------------------------------------------------------------------------- data types
@dataclass
class SampleBlock:
    stream_id: str
    first_sample: int  #: absolute index (in the stream's own sample clock) of row 0
    samples: np.ndarray  #: (n, n_channels) float64, physical units
    sample_rate_hz: float
    time_utc: datetime | None  #: time of row 0 when the source knows it
    #: True when row 0 does not continue the previous block of this source: the first block,
    #: and the first block after every resync (a jump of first_sample, a new shape, a sender
    #: restart). Receive chains must be reset.
    discontinuity: bool = False
    #: True when every row is NaN filling a gap (no received data)
    gap_fill: bool = False

    @property
    def n_frames(self) -> int:
        return int(self.samples.shape[0])

    @property
    def n_channels(self) -> int:
        return int(self.samples.shape[1])

    @property
    def end_sample(self) -> int:
        """Index one past the last row."""
        return self.first_sample + self.n_frames


@dataclass
class SourceStats:
    """Counters of one source (all monotonic; export as Prometheus counters)."""

    blocks: int = 0  #: blocks yielded (including gap-fill blocks)
    samples: int = 0  #: received rows (sample instants) yielded; gap fill not included
    gaps: int = 0  #: gaps in the sample index (filled or not)
    gap_samples: int = 0  #: NaN rows inserted to fill gaps
    duplicates: int = 0  #: messages dropped (or trimmed) as already delivered
    reordered: int = 0  #: messages that arrived out of order and were delivered in order
    late_dropped: int = 0  #: messages that arrived after their gap had been given up
    channel_count_changes: int = 0  #: changes of shape (channel count, sample type or rate)
    wrong_shape_dropped: int = 0  #: messages dropped because of their shape
    nonfinite: int = 0  #: NaN/inf sample values received (not counting gap fill)
    clipped: int = 0  #: sample values at or beyond full scale
    resyncs: int = 0  #: times the stream was re-anchored (discontinuity)
    bad_frames: int = 0  #: malformed messages skipped
    messages: int = 0  #: messages received (ZeroMQ sources)
    foreign_dropped: int = 0  #: GLA messages of another stream id, dropped
    stalls: int = 0  #: times no message came for rcv_timeout_ms (ZeroMQ sources)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@runtime_checkable
class Source(Protocol):
    stats: SourceStats

    @property
    def n_channels(self) -> int | None: ...

    @property
    def sample_rate_hz(self) -> float | None: ...

    def __iter__(self) -> Iterator[SampleBlock]: ...

    def close(self) -> None: ...

    def __enter__(self) -> "Source": ...

    def __exit__(self, *exc: Any) -> None: ...


class CaptureTruncatedError(ValueError):
    """Raised by :class:`CaptureSource` after the last readable block of a truncated capture."""


class _LogLimiter:
    """At most one log line per (kind) every ``interval_s``; suppressed ones are counted."""

    def __init__(self, stream: str, interval_s: float = 10.0) -> None:
        self.stream, self.interval_s = stream, interval_s
        self._last: dict[str, float] = {}
        self._skipped: dict[str, int] = {}

    def __call__(self, level: int, kind: str, msg: str, *args: Any) -> None:
        now = time.monotonic()
        t = self._last.get(kind)
        if t is not None and now - t < self.interval_s:
            self._skipped[kind] = self._skipped.get(kind, 0) + 1
            return
        self._last[kind] = now
        n = self._skipped.pop(kind, 0)
        if n:
            msg += f" ({n} more {kind} events since the last report)"
        log.log(level, "%s: " + msg, self.stream, *args, extra={"event": kind, "stream": self.stream})


def _beyond(x: np.ndarray, level: float) -> np.ndarray:
    """Finite values with |x| >= level (inf is counted as non-finite, not as clipped)."""
    a = np.abs(x)
    return (a >= level) & (a < np.inf)


def _count_clipped(raw: np.ndarray, x: np.ndarray, level: float | None) -> int:
    if raw.dtype.kind in "iu":
        info = np.iinfo(raw.dtype)
        m = (raw == info.min) | (raw == info.max)
        if level is not None:
            m |= _beyond(x, level)
        return int(np.count_nonzero(m))
    if level is None:
        return 0
    return int(np.count_nonzero(_beyond(x, level)))


# ----------------------------------------------------------------------------- capture replay
class CaptureSource:
    """Replay a capture (``<stem>.wav`` + ``<stem>.sigmf-meta``) as blocks of ``block_s``.

    ``first_sample`` counts from the start of the capture (``start_s`` skips into it);
    ``time_utc`` is the sidecar's start time plus ``first_sample / fs``. Samples are the file
    values divided by ``gla:scale``. ``realtime=True`` yields each block when its last sample
    would have arrived (``speed`` > 1 replays that many times faster); otherwise as fast as the
    file is read.

    Construction raises ValueError naming the file when the sidecar is missing or invalid, or
    the audio file disagrees with it (channels, rate, subtype, container, more frames than the
    sidecar says) or cannot be opened. A **truncated** audio file (fewer frames than the sidecar
    says, a common result of a copy or a recording cut short) is not refused: a warning is
    logged at opening (``.truncated`` is True), every readable whole frame is yielded, and after
    the last good block :class:`CaptureTruncatedError` (a ValueError naming the file and the
    frame counts) is raised, or only logged with ``strict=False``.

    ``.meta`` is the validated :class:`gridsim.capture.CaptureMeta`; ``.channels`` its channel
    map (``index``, ``bus``, ``feeder``, ``phase``, ``ct_polarity`` per input).
    """

    def __init__(self, stem_or_path: str | os.PathLike, block_s: float = 1.0, realtime: bool = False,
                 start_s: float = 0.0, duration_s: float | None = None, *, speed: float = 1.0,
                 stream_id: str | None = None, clip_level: float | None = None,
                 stop_event: Any = None, strict: bool = True, verify_sha256: bool = False) -> None:
        if not (block_s > 0 and math.isfinite(block_s)):
            raise ValueError(f"block_s must be a positive number, got {block_s!r}")
        if not (start_s >= 0 and math.isfinite(start_s)):
            raise ValueError(f"start_s must be >= 0, got {start_s!r}")
        if duration_s is not None and not (duration_s >= 0 and math.isfinite(duration_s)):
            raise ValueError(f"duration_s must be >= 0, got {duration_s!r}")
        if not (speed > 0):
            raise ValueError(f"speed must be > 0, got {speed!r}")
        self.truncated = False
        try:
            f, meta = open_capture(stem_or_path, verify_sha256=verify_sha256)
        except ValueError as e:
            f, meta = self._open_truncated(stem_or_path, e)
            self.truncated = True
        self._file: sf.SoundFile | None = f
        self.meta: CaptureMeta = meta
        self.stats = SourceStats()
        self.stream_id = stream_id or meta.meta_path.name[: -len(".sigmf-meta")]
        self.block_frames = max(1, int(round(block_s * meta.fs_hz)))
        self.realtime, self.speed, self.strict = bool(realtime), float(speed), bool(strict)
        self.stop_event = stop_event
        fs = meta.fs_hz
        self.first_frame = min(int(round(start_s * fs)), meta.n_frames)
        end = meta.n_frames if duration_s is None else self.first_frame + int(round(duration_s * fs))
        self.end_frame = min(end, meta.n_frames)
        self.readable_frames = int(f.frames)
        _, _, integer = _SUBTYPE_INFO[meta.subtype]
        self._integer = integer
        # clip level in file units: integer full scale is caught by the extremes check
        self._clip_file = (None if integer else 1.0) if clip_level is None else clip_level * meta.scale
        self._closed = threading.Event()
        self._iterating = False
        self._log = _LogLimiter(self.stream_id)

    @staticmethod
    def _open_truncated(stem_or_path, err: ValueError) -> tuple[sf.SoundFile, CaptureMeta]:
        meta = read_capture_meta(stem_or_path)  # raises its own clear error for a bad sidecar
        try:
            f = sf.SoundFile(str(meta.audio_path), mode="r")
        except Exception:
            raise err from None
        if not (f.frames < meta.n_frames and f.channels == meta.n_channels and f.samplerate == meta.fs_hz
                and f.subtype == meta.subtype and f.format == meta.format):
            f.close()
            raise err
        log.warning("%s: truncated capture: %d of %d frames readable; replaying what is there",
                    meta.audio_path, f.frames, meta.n_frames,
                    extra={"event": "capture_truncated", "stream": meta.audio_path.name})
        return f, meta

    # Source interface -----------------------------------------------------------------------
    @property
    def n_channels(self) -> int:
        return self.meta.n_channels

    @property
    def sample_rate_hz(self) -> float:
        return float(self.meta.fs_hz)

    @property
    def channels(self) -> list[dict]:
        return self.meta.channels

    @property
    def total_frames(self) -> int:
        """Frames this source will yield if nothing goes wrong (for progress bars)."""
        return max(0, self.end_frame - self.first_frame)

    def __enter__(self) -> "CaptureSource":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Stop (an iteration in progress ends before its next block) and close the file."""
        self._closed.set()
        if not self._iterating and self._file is not None:
            self._file.close()
            self._file = None

    def _stopped(self) -> bool:
        return self._closed.is_set() or (self.stop_event is not None and self.stop_event.is_set())

    def __iter__(self) -> Iterator[SampleBlock]:
        if self._file is None or self._closed.is_set():
            raise ValueError(f"{self.meta.audio_path}: source is closed")
        if self._iterating:
            raise RuntimeError(f"{self.meta.audio_path}: this source is already being iterated")
        self._iterating = True
        return self._run(self._file)

    def _run(self, f: sf.SoundFile) -> Iterator[SampleBlock]:
        meta, st = self.meta, self.stats
        fs, scale = meta.fs_hz, meta.scale
        top = 1.0 - 2.0 ** (1 - 8 * _SUBTYPE_INFO[meta.subtype][1]) if self._integer else None
        stop_at = min(self.end_frame, self.readable_frames)
        pos = self.first_frame
        first = True
        t0 = time.monotonic()
        error: str | None = None
        try:
            f.seek(pos)
            while pos < stop_at and not self._stopped():
                n = min(self.block_frames, stop_at - pos)
                try:
                    y = f.read(n, dtype="float64", always_2d=True)
                except (sf.SoundFileError, RuntimeError, OSError) as e:
                    error = f"{meta.audio_path}: read error at frame {pos}: {e}"
                    break
                if y.shape[0] == 0:
                    error = f"{meta.audio_path}: no data at frame {pos} (file shorter than it says)"
                    break
                n = y.shape[0]
                if not self._integer:
                    nb = n * y.shape[1] - int(np.count_nonzero(np.isfinite(y)))
                    if nb:
                        st.nonfinite += nb
                        self._log(logging.WARNING, "nonfinite", "%d NaN/inf samples in frames %d..%d", nb, pos, pos + n)
                clip = (y >= top) | (y <= -1.0) if self._integer else None
                if self._clip_file is not None:
                    big = _beyond(y, self._clip_file)
                    clip = big if clip is None else clip | big
                nc = int(np.count_nonzero(clip))
                if nc:
                    st.clipped += nc
                    self._log(logging.WARNING, "clipped", "%d clipped samples in frames %d..%d", nc, pos, pos + n)
                x = y / scale
                if self.realtime:
                    due = t0 + (pos + n - self.first_frame) / fs / self.speed
                    while not self._stopped():
                        wait = due - time.monotonic()
                        if wait <= 0:
                            break
                        time.sleep(min(wait, 0.05))
                    if self._stopped():
                        break
                blk = SampleBlock(self.stream_id, pos, x, float(fs),
                                  meta.start_time_utc + timedelta(seconds=pos / fs), discontinuity=first)
                first = False
                st.blocks += 1
                st.samples += n
                pos += n
                yield blk
                if n < self.block_frames and pos < stop_at:
                    error = f"{meta.audio_path}: short read at frame {pos}"
                    break
        finally:
            self._iterating = False
            if self._closed.is_set() and self._file is not None:
                self._file.close()
                self._file = None
        if self._stopped():
            return
        if error is None and self.truncated and self.end_frame > self.readable_frames and pos >= self.readable_frames:
            error = (f"{meta.audio_path}: truncated: only {self.readable_frames} of {meta.n_frames} frames "
                     f"(the sidecar's gla:num_frames) could be read; replay stopped after frame {pos}")
        if error is not None:
            log.error("%s", error, extra={"event": "capture_truncated", "stream": self.stream_id})
            if self.strict:
                raise CaptureTruncatedError(error)


#: soundfile subtype -> (numpy dtype of a raw read, bytes per sample, integer?)
_SUBTYPE_INFO = {"PCM_16": ("int16", 2, True), "PCM_24": ("int32", 3, True), "PCM_32": ("int32", 4, True),
                 "FLOAT": ("float32", 4, False), "DOUBLE": ("float64", 8, False)}


# --------------------------------------------------------------------------- stream assembly
@dataclass
class _Msg:
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

    @property
    def n(self) -> int:
        return int(self.raw.shape[0])


_LOST_MEMORY = 4096


class StreamAssembler:
    """Messages in (as received), in-order :class:`SampleBlock` out; no I/O, no threads.

    ``feed(parts)`` takes one ZeroMQ message (its list of frames; with two frames the first is
    a topic and is ignored) and returns the blocks that became deliverable; ``flush()`` gives up
    on whatever is missing and delivers everything held. See the module docstring for the rules.

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

    def __init__(self, *, framing: str = "gla", n_channels: int | None = None,
                 sample_rate_hz: float | None = None, sample_type: str = "float32",
                 pass_tags: bool = False, stream_id: str | None = None, reorder_window: int = 8,
                 max_gap_fill_s: float = 2.0, adopt_after: int | None = 16,
                 clip_level: float | None = None, gr_scale: float | None = None,
                 log_interval_s: float = 10.0, stats: SourceStats | None = None) -> None:
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
        self._log = _LogLimiter(stream_id or framing, log_interval_s)
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
        self._buf: dict[int, _Msg] = {}
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

    def _max_fill(self, fs: float) -> int:
        return int(round(self.max_gap_fill_s * fs))

    @property
    def _by_seq(self) -> bool:
        return self.framing == "gla"

    # parsing ------------------------------------------------------------------------------
    def _parse(self, parts: Sequence[bytes | memoryview]) -> _Msg | None:
        st = self.stats
        if not parts or len(parts) > 2:
            st.bad_frames += 1
            self._log(logging.WARNING, "bad_frame", "bad frame: a message of %d parts (expected 1, or topic + data)",
                      len(parts))
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

    def _parse_gla(self, data) -> _Msg | None:
        h, raw = zf.unpack_message(data)
        if self.stream_id is None:
            self.stream_id = h.stream_id
            self._log.stream = h.stream_id or "gla"
        elif h.stream_id != self.stream_id:
            self.stats.foreign_dropped += 1
            self._log(logging.WARNING, "foreign", "dropped a message of stream %r (following %r)",
                      h.stream_id, self.stream_id)
            return None
        if self.clip_level is not None:
            level = self.clip_level
        elif raw.dtype.kind == "f" and h.full_scale > 0:
            level = h.full_scale
        else:
            level = None
        return _Msg(h.seq, h.first_sample, raw, (h.n_channels, h.sample_type, h.sample_rate_hz),
                    h.full_scale, level, h.time_ns, h.stream_id, h.session, h.flags)

    def _parse_gr(self, data) -> _Msg | None:
        nch, _, fs = self.expected
        item = nch * self.gr_dtype.itemsize
        mv = memoryview(data).cast("B")
        if self.pass_tags:
            offset, _tags, hlen = zf.unpack_gr_tag_header(mv, item)
        else:
            hlen = 0
            if len(mv) % item:
                raise zf.FramingError(f"gr payload: {len(mv)} bytes is not a multiple of the item size "
                                      f"{item} ({nch} x {self.gr_sample_type})")
            offset = self._gr_count
        n = (len(mv) - hlen) // item
        self._gr_count = offset + n
        raw = np.frombuffer(mv, dtype=self.gr_dtype, count=n * nch, offset=hlen).reshape(n, nch)
        full = 1.0 / self.gr_scale if self.gr_scale else 1.0
        level = self.clip_level
        if level is None and self.gr_scale and raw.dtype.kind == "f":
            level = full
        return _Msg(offset, offset, raw, (nch, self.gr_sample_type, float(fs)), full, level, None,
                    self.stream_id or "gr")

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

    def _check_shape(self, m: _Msg, out: list[SampleBlock]) -> bool:
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
            self._log(logging.WARNING, "shape_change", "stream shape changed from %s to %s (channels, sample "
                      "type, rate): dropping these messages%s", _fmt_shape(self.shape), _fmt_shape(m.shape), then)
        self._cand_run += 1
        if allowed and self.adopt_after is not None and self._cand_run >= self.adopt_after:
            self._restart(m, out, f"adopting the new shape {_fmt_shape(m.shape)}")
            self.shape = m.shape
            self._cand, self._cand_run = None, 0
            return True
        st.wrong_shape_dropped += 1
        return False

    def _restart(self, m: _Msg, out: list[SampleBlock], why: str) -> None:
        """Deliver what is held, then re-anchor the stream on ``m``."""
        self._flush_into(out)
        if self._started:
            self.stats.resyncs += 1
        self._log(logging.WARNING, "resync", "resynchronising: %s", why)
        self._reset_keys()

    def _accept(self, m: _Msg, out: list[SampleBlock]) -> None:
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
            far = (not self._by_seq and self.next_key - k > self._max_fill(m.shape[2]))
            if far or (self.adopt_after is not None and self._behind_run >= self.adopt_after):
                self._restart(m, out, f"sample index/sequence went back from {self.next_key} to {k}")
                self.next_key = self._max_key = k
            else:
                if self._is_lost(k, m.n):
                    st.late_dropped += 1
                    self._log(logging.WARNING, "late", "dropped a message that came after its gap was given up "
                              "(key %d, expected %d)", k, self.next_key)
                else:
                    st.duplicates += 1
                    self._log(logging.WARNING, "duplicate", "dropped a duplicate message (key %d, expected %d)",
                              k, self.next_key)
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

    def _time_at(self, m: _Msg, sample: int) -> datetime | None:
        fs = m.shape[2]
        if m.time_ns is not None:
            return zf.ns_to_time(m.time_ns + int(round((sample - m.first_sample) * 1e9 / fs)))
        return None

    def _deliver(self, m: _Msg, out: list[SampleBlock]) -> None:
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
                self._log(logging.WARNING, "gap", "gap of %d samples (%.3f s) at sample %d: filled with NaN",
                          d, d / fs, self.next_sample)
                fill = np.full((d, m.shape[0]), np.nan)
                out.append(SampleBlock(m.stream_id, self.next_sample, fill, fs, self._time_at(m, self.next_sample),
                                       discontinuity=self._pending_disc, gap_fill=True))
                self._pending_disc = False
                st.blocks += 1
            else:
                st.resyncs += 1
                self._pending_disc = True
                self._log(logging.WARNING, "resync", "gap of %d samples (%.3f s) at sample %d, longer than "
                          "max_gap_fill_s=%g: continuing at sample %d (discontinuity)",
                          d, d / fs, self.next_sample, self.max_gap_fill_s, start)
        elif d < 0:
            if start + m.n <= self.next_sample:
                if -d > self._max_fill(fs):
                    st.resyncs += 1
                    self._pending_disc = True
                    self._log(logging.WARNING, "resync", "sample index went back from %d to %d: continuing "
                              "there (discontinuity)", self.next_sample, start)
                else:
                    if m.n:
                        st.duplicates += 1
                        self._log(logging.WARNING, "duplicate", "dropped message %d: its samples %d..%d were "
                                  "already delivered", m.key, start, start + m.n)
                    return
            else:
                trim = -d
                st.duplicates += 1
                self._log(logging.WARNING, "duplicate", "message %d overlaps delivered samples: %d rows trimmed",
                          m.key, trim)
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
                self._log(logging.WARNING, "nonfinite", "%d NaN/inf samples in %d..%d (passed on)",
                          nb, start, start + n)
        c = _count_clipped(raw, x, m.clip_level)
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


# ---------------------------------------------------------------------------------- ZeroMQ in
_POLL_SLICE_MS = 100


class ZmqSource:
    """Receive a sample stream over ZeroMQ (see :class:`StreamAssembler` for the stream rules).

    ``pattern``: "pull" or "sub" (with ``topic`` as the subscription prefix). The socket
    connects to ``endpoint`` (gr-zeromq and :class:`CaptureSender` sinks bind); ``bind=True``
    binds instead (``tcp://127.0.0.1:*`` picks a free port; ``.endpoint`` tells which).
    ``framing``: "gla" (docs/zmq-framing.md) or "gr" (raw gr-zeromq items of ``sample_type``,
    vector length ``n_channels``; ``pass_tags`` when the sink has it on).

    ``n_channels`` / ``sample_rate_hz``: required for "gr"; for "gla" optional and, when given,
    pinned (a stream of another channel count or rate is dropped and counted, never adopted).

    Iterating blocks in the iterating thread; it ends when ``close()`` is called (from any
    thread) or ``stop_event.is_set()``, checked at least every 100 ms, when no message came for
    ``idle_timeout_s`` (None: never), or at the sender's end-of-stream message with
    ``stop_at_eos``. When no message came for ``rcv_timeout_ms`` the messages held for
    reordering are delivered (``stalls`` is counted once per silence). At the end held messages
    are delivered. A ZeroMQ error ends the iteration with a logged error, never an exception.
    """

    def __init__(self, endpoint: str, *, pattern: str = "pull", framing: str = "gla",
                 n_channels: int | None = None, sample_rate_hz: float | None = None,
                 sample_type: str = "float32", pass_tags: bool = False, topic: bytes | str = b"",
                 rcv_timeout_ms: int = 1000, reorder_window: int = 8, max_gap_fill_s: float = 2.0,
                 stop_event: Any = None, bind: bool = False, stream_id: str | None = None,
                 adopt_after: int | None = 16, clip_level: float | None = None,
                 gr_scale: float | None = None, idle_timeout_s: float | None = None,
                 stop_at_eos: bool = False, rcvhwm: int | None = None,
                 context: zmq.Context | None = None, log_interval_s: float = 10.0) -> None:
        if pattern not in ("pull", "sub"):
            raise ValueError(f"pattern must be 'pull' or 'sub', got {pattern!r}")
        if rcv_timeout_ms <= 0:
            raise ValueError(f"rcv_timeout_ms must be > 0, got {rcv_timeout_ms}")
        self.assembler = StreamAssembler(framing=framing, n_channels=n_channels, sample_rate_hz=sample_rate_hz,
                                         sample_type=sample_type, pass_tags=pass_tags, stream_id=stream_id,
                                         reorder_window=reorder_window, max_gap_fill_s=max_gap_fill_s,
                                         adopt_after=adopt_after, clip_level=clip_level, gr_scale=gr_scale,
                                         log_interval_s=log_interval_s)
        self.stats = self.assembler.stats
        self.pattern, self.framing = pattern, framing
        self.rcv_timeout_s = rcv_timeout_ms / 1000.0
        self.idle_timeout_s = idle_timeout_s
        self.stop_at_eos = bool(stop_at_eos)
        self.stop_event = stop_event
        self._closed = threading.Event()
        self._iterating = False
        self._lock = threading.Lock()
        ctx = context or zmq.Context.instance()
        sock = ctx.socket(zmq.PULL if pattern == "pull" else zmq.SUB)
        try:
            sock.setsockopt(zmq.LINGER, 0)
            if rcvhwm is not None:
                sock.setsockopt(zmq.RCVHWM, int(rcvhwm))
            if pattern == "sub":
                sock.setsockopt(zmq.SUBSCRIBE, topic.encode() if isinstance(topic, str) else bytes(topic))
            if bind:
                sock.bind(endpoint)
                self.endpoint = sock.getsockopt(zmq.LAST_ENDPOINT).decode()
            else:
                sock.connect(endpoint)
                self.endpoint = endpoint
        except zmq.ZMQError as e:
            sock.close(0)
            raise ValueError(f"{endpoint}: cannot {'bind' if bind else 'connect'} a {pattern} socket: {e}") from e
        self._sock: zmq.Socket | None = sock

    @property
    def n_channels(self) -> int | None:
        return self.assembler.n_channels

    @property
    def sample_rate_hz(self) -> float | None:
        return self.assembler.sample_rate_hz

    @property
    def stream_id(self) -> str | None:
        return self.assembler.stream_id

    def __enter__(self) -> "ZmqSource":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Stop receiving. Safe from any thread; the iterating thread ends within 100 ms."""
        self._closed.set()
        with self._lock:
            if not self._iterating and self._sock is not None:
                self._sock.close(0)
                self._sock = None

    def _stopped(self) -> bool:
        return self._closed.is_set() or (self.stop_event is not None and self.stop_event.is_set())

    def __iter__(self) -> Iterator[SampleBlock]:
        with self._lock:
            if self._iterating:
                raise RuntimeError("this ZmqSource is already being iterated")
            if self._sock is None:
                raise ValueError(f"{self.endpoint}: source is closed")
            self._iterating = True
        return self._run()

    def _run(self) -> Iterator[SampleBlock]:
        sock = self._sock
        asm = self.assembler
        slice_ms = max(1, min(_POLL_SLICE_MS, int(self.rcv_timeout_s * 1000)))
        last = time.monotonic()
        stalled = False
        try:
            while not self._stopped():
                try:
                    ready = sock.poll(slice_ms, zmq.POLLIN)
                except zmq.ZMQError as e:
                    if not self._stopped():
                        log.error("%s: ZeroMQ poll failed: %s", self.endpoint, e,
                                  extra={"event": "zmq_error", "stream": self.endpoint})
                    break
                if ready:
                    for _ in range(64):  # a bounded burst, then look at the stop flags again
                        try:
                            parts = sock.recv_multipart(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                        last = time.monotonic()
                        if stalled:
                            stalled = False
                            log.info("%s: data again", self.endpoint,
                                     extra={"event": "resumed", "stream": self.endpoint})
                        yield from asm.feed(parts)
                        if asm.end_of_stream and self.stop_at_eos:
                            return
                    continue
                idle = time.monotonic() - last
                if idle >= self.rcv_timeout_s and not stalled:
                    stalled = True
                    self.stats.stalls += 1
                    log.warning("%s: no data for %.1f s%s", self.endpoint, idle,
                                f"; delivering {asm.held} held messages" if asm.held else "",
                                extra={"event": "stall", "stream": self.endpoint})
                    yield from asm.flush()
                if self.idle_timeout_s is not None and idle >= self.idle_timeout_s:
                    break
            yield from asm.flush()
        except zmq.ZMQError as e:
            if not self._stopped():
                log.error("%s: ZeroMQ receive failed: %s", self.endpoint, e,
                          extra={"event": "zmq_error", "stream": self.endpoint})
        finally:
            with self._lock:
                self._iterating = False
                if self._closed.is_set() and self._sock is not None:
                    self._sock.close(0)
                    self._sock = None


# --------------------------------------------------------------------------------- ZeroMQ out
@dataclass
class SendReport:
    endpoint: str
    messages: int = 0  #: ZeroMQ messages sent (duplicates included, drops excluded)
    frames: int = 0  #: sample frames in the messages sent
    clipped: int = 0  #: samples saturated by an integer sample type
    elapsed_s: float = 0.0
    subscribed: bool = True  #: PUB: a subscriber was seen before sending


def _as_delays(reorder: Iterable[int] | Mapping[int, int]) -> dict[int, int]:
    if isinstance(reorder, Mapping):
        return {int(k): int(v) for k, v in reorder.items()}
    out = {}
    for r in reorder:
        if isinstance(r, tuple):
            out[int(r[0])] = int(r[1])
        else:
            out[int(r)] = 1
    return out


class CaptureSender:
    """Replay a capture over ZeroMQ in the GLA framing or as GNU Radio raw items.

    ``pattern``: "push" or "pub" (an XPUB socket, so that :meth:`run` can wait up to
    ``wait_subscriber_s`` for a subscriber before sending: nothing is lost to a late joiner).
    The socket binds ``endpoint`` by default (``tcp://127.0.0.1:*`` picks a free port;
    ``.endpoint`` tells which); ``bind=False`` connects. Message ``i`` carries frames
    ``[i*B, (i+1)*B)`` of the replayed range (``B = block_s * fs``; GLA ``seq = i``,
    ``first_sample`` counts from the start of the capture).

    GLA: samples are sent as ``sample_type`` with ``full_scale = 1/gla:scale`` (the file values,
    normalised to +-1 of full scale), the capture's start time, and an empty end-of-stream
    message at the end (``eos``). "gr": items of ``sample_type`` in physical units (divided by
    ``gla:scale``), with gr-zeromq's tag header (offset = first frame index, tags from
    ``gr_tags[i]``) when ``pass_tags``.

    Fault injection for tests, by message index: ``drop`` (not sent), ``duplicate`` (sent twice),
    ``reorder`` (index, or ``{index: d}`` / ``(index, d)``: sent after message ``index + d``),
    ``corrupt`` (its bytes cut in half: a malformed message), ``reshape`` (``{index: n}``: only
    the first ``n`` channels), ``mutate(index, x) -> x`` (change the physical samples before
    encoding: NaN, clipping).
    """

    def __init__(self, stem: str | os.PathLike, endpoint: str, *, pattern: str = "push", framing: str = "gla",
                 block_s: float = 0.1, realtime: bool = False, stream_id: str | None = None,
                 drop: Iterable[int] = (), duplicate: Iterable[int] = (),
                 reorder: Iterable[int] | Mapping[int, int] = (), corrupt: Iterable[int] = (),
                 reshape: Mapping[int, int] | None = None,
                 mutate: Callable[[int, np.ndarray], np.ndarray] | None = None,
                 sample_type: str = "float32", pass_tags: bool = False,
                 gr_tags: Mapping[int, Sequence[zf.GrTag]] | None = None, topic: bytes | str = b"",
                 bind: bool = True, start_s: float = 0.0, duration_s: float | None = None,
                 session: int | None = None, eos: bool = True, send_timeout_ms: int = 10000,
                 wait_subscriber_s: float = 5.0, stop_event: Any = None, speed: float = 1.0,
                 context: zmq.Context | None = None) -> None:
        if pattern not in ("push", "pub"):
            raise ValueError(f"pattern must be 'push' or 'pub', got {pattern!r}")
        if framing not in ("gla", "gr"):
            raise ValueError(f"framing must be 'gla' or 'gr', got {framing!r}")
        if sample_type not in zf.SAMPLE_TYPE_CODES:
            raise ValueError(f"sample_type must be one of {sorted(zf.SAMPLE_TYPE_CODES)}, got {sample_type!r}")
        self.source = CaptureSource(stem, block_s=block_s, start_s=start_s, duration_s=duration_s)
        self.pattern, self.framing, self.sample_type = pattern, framing, sample_type
        self.realtime, self.speed = bool(realtime), float(speed)
        self.stream_id = stream_id if stream_id is not None else self.source.stream_id[:16]
        self.drop, self.duplicate, self.corrupt = set(drop), set(duplicate), set(corrupt)
        self.reorder = _as_delays(reorder)
        self.reshape = dict(reshape or {})
        self.mutate = mutate
        self.pass_tags = bool(pass_tags)
        self.gr_tags = dict(gr_tags or {})
        self.topic = topic.encode() if isinstance(topic, str) else bytes(topic)
        self.session = secrets.randbits(32) if session is None else int(session)
        self.eos = bool(eos)
        self.send_timeout_ms = int(send_timeout_ms)
        self.wait_subscriber_s = float(wait_subscriber_s)
        self.stop_event = stop_event
        ctx = context or zmq.Context.instance()
        sock = ctx.socket(zmq.PUSH if pattern == "push" else zmq.XPUB)
        try:
            sock.setsockopt(zmq.LINGER, 2000)
            sock.setsockopt(zmq.SNDTIMEO, self.send_timeout_ms)
            if bind:
                sock.bind(endpoint)
                self.endpoint = sock.getsockopt(zmq.LAST_ENDPOINT).decode()
            else:
                sock.connect(endpoint)
                self.endpoint = endpoint
        except zmq.ZMQError as e:
            sock.close(0)
            self.source.close()
            raise ValueError(f"{endpoint}: cannot {'bind' if bind else 'connect'} a {pattern} socket: {e}") from e
        self._sock: zmq.Socket | None = sock

    # message construction (no socket) --------------------------------------------------------
    def _encode(self, i: int, blk: SampleBlock) -> list[bytes]:
        meta = self.source.meta
        x = blk.samples
        if self.mutate is not None:
            x = np.asarray(self.mutate(i, x.copy()), dtype=np.float64)
        if i in self.reshape:
            x = x[:, : self.reshape[i]]
        if self.framing == "gla":
            full = 1.0 / meta.scale
            raw, clipped = zf.encode_samples(x, self.sample_type, full)
            self._clipped += clipped
            h = zf.GlaHeader(self.stream_id, i, blk.first_sample, blk.sample_rate_hz, x.shape[1],
                             self.sample_type, full, zf.time_to_ns(blk.time_utc), 0, self.session)
            msg = zf.pack_message(h, raw)
        else:
            # floats: physical units; integers: normalised like the file (receiver: gr_scale=gla:scale)
            raw, clipped = zf.encode_samples(x, self.sample_type,
                                             0.0 if self.sample_type.startswith("float") else 1.0 / meta.scale)
            self._clipped += clipped
            msg = raw.tobytes()
            if self.pass_tags:
                msg = zf.pack_gr_tag_header(blk.first_sample, self.gr_tags.get(i, ())) + msg
        if i in self.corrupt:
            msg = msg[: len(msg) // 2]
        return [self.topic, msg] if self.topic else [msg]

    def messages(self) -> Iterator[tuple[int, list[bytes], int]]:
        """``(index, frames, n_frames)`` in sending order, faults applied (no socket used)."""
        self._clipped = 0
        held: dict[int, list[tuple[int, list[bytes], int]]] = {}
        last, end = -1, self.source.first_frame
        for i, blk in enumerate(self.source):
            last, end = i, blk.end_sample
            if i not in self.drop:
                item = (i, self._encode(i, blk), blk.n_frames)
                if i in self.reorder:
                    held.setdefault(i + self.reorder[i], []).append(item)
                else:
                    yield item
                    if i in self.duplicate:
                        yield item
            for item in held.pop(i, []):
                yield item
                if item[0] in self.duplicate:
                    yield item
        for k in sorted(held):
            yield from held[k]
        if self.eos and self.framing == "gla":
            meta = self.source.meta
            n = last + 1
            h = zf.GlaHeader(self.stream_id, n, end, float(meta.fs_hz), meta.n_channels, self.sample_type,
                             1.0 / meta.scale, None, zf.FLAG_END_OF_STREAM, self.session)
            raw = np.zeros((0, meta.n_channels), dtype=zf.SAMPLE_TYPES[zf.SAMPLE_TYPE_CODES[self.sample_type]][1])
            msg = zf.pack_message(h, raw)
            yield n, ([self.topic, msg] if self.topic else [msg]), 0

    # sending ----------------------------------------------------------------------------------
    def _stopped(self) -> bool:
        return self.stop_event is not None and self.stop_event.is_set()

    def _wait_subscriber(self, sock: zmq.Socket) -> bool:
        deadline = time.monotonic() + self.wait_subscriber_s
        while not self._stopped():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if sock.poll(int(min(left, 0.1) * 1000) + 1, zmq.POLLIN):
                ev = sock.recv()
                if ev[:1] == b"\x01":
                    return True
        return False

    def run(self) -> SendReport:
        """Send the whole capture (blocking); raises TimeoutError when a PUSH peer does not take a
        message within ``send_timeout_ms``. Closes the socket at the end."""
        sock = self._sock
        if sock is None:
            raise ValueError("sender already used")
        rep = SendReport(self.endpoint)
        t0 = time.monotonic()
        fs = self.source.sample_rate_hz
        try:
            if self.pattern == "pub":
                rep.subscribed = self._wait_subscriber(sock)
                if not rep.subscribed:
                    log.warning("%s: no subscriber after %.1f s: publishing anyway", self.endpoint,
                                self.wait_subscriber_s, extra={"event": "no_subscriber", "stream": self.stream_id})
            sent_frames = 0
            for i, parts, n in self.messages():
                if self._stopped():
                    break
                if self.realtime:
                    sent_frames = max(sent_frames, (i + 1) * self.source.block_frames)
                    due = t0 + sent_frames / fs / self.speed
                    while not self._stopped() and time.monotonic() < due:
                        time.sleep(min(0.05, max(0.0, due - time.monotonic())))
                try:
                    sock.send_multipart(parts)
                except zmq.Again as e:
                    raise TimeoutError(f"{self.endpoint}: no receiver took message {i} within "
                                       f"{self.send_timeout_ms} ms") from e
                rep.messages += 1
                rep.frames += n
        finally:
            rep.clipped = getattr(self, "_clipped", 0)
            rep.elapsed_s = time.monotonic() - t0
            self.close()
        return rep

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
        self.source.close()

    def __enter__(self) -> "CaptureSender":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def stream_capture(stem: str | os.PathLike, endpoint: str, *, pattern: str = "push", framing: str = "gla",
                   block_s: float = 0.1, realtime: bool = False, stream_id: str | None = None,
                   drop: Iterable[int] = (), duplicate: Iterable[int] = (),
                   reorder: Iterable[int] | Mapping[int, int] = (), **kw: Any) -> SendReport:
    """Replay a capture over ZeroMQ (blocking); see :class:`CaptureSender` for the options."""
    sender = CaptureSender(stem, endpoint, pattern=pattern, framing=framing, block_s=block_s, realtime=realtime,
                           stream_id=stream_id, drop=drop, duplicate=duplicate, reorder=reorder, **kw)
    return sender.run()
