"""What every sample source gives the receiver: :class:`SampleBlock`, :class:`SourceStats`, :class:`Source`.

A source is an iterable of :class:`SampleBlock` (rows = sample instants, columns = inputs,
float64 in the capture's physical units: per-unit current) with a :class:`SourceStats` of
counters, ``n_channels``, ``sample_rate_hz``, ``close()`` and context-manager support. The
pipeline sees nothing else of a source, so a capture replay and a live stream are interchangeable.

Also here, shared by the sources: :class:`LogLimiter` (the ``gla.ingest`` logger, at most one
line per kind of event every ``log_interval_s``) and the clipping counters
(:func:`beyond_level`, :func:`count_clipped`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["SampleBlock", "SourceStats", "Source", "SourceError", "LogLimiter", "beyond_level", "count_clipped"]

#: one logger for every source (its name predates the package; deployments filter on it)
log = logging.getLogger("gla.ingest")


# --------------------------------------------------------------------------------- data types
class SourceError(ValueError):
    """A live source that cannot start for what it was given: its configuration, a missing
    package or server. The message is one line naming what was wrong."""


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
    #: samples missing in gaps: filled with NaN rows up to max_gap_fill_s, skipped beyond it
    gap_samples: int = 0
    duplicates: int = 0  #: messages dropped (or trimmed) as already delivered
    reordered: int = 0  #: messages that arrived out of order and were delivered in order
    late_dropped: int = 0  #: messages that arrived after their gap had been given up
    channel_count_changes: int = 0  #: changes of shape adopted (channel count, sample type or rate)
    wrong_shape_dropped: int = 0  #: messages dropped because of their shape (pinned, or never confirmed)
    nonfinite: int = 0  #: NaN/inf sample values received (not counting gap fill)
    clipped: int = 0  #: sample values at or beyond full scale
    resyncs: int = 0  #: times the stream was re-anchored (discontinuity)
    bad_frames: int = 0  #: malformed messages skipped
    messages: int = 0  #: messages received (ZeroMQ sources)
    foreign_dropped: int = 0  #: GLA messages of another stream id (configured, or never confirmed), dropped
    #: messages of another session, or whose clock went back, held aside and never confirmed
    unconfirmed_dropped: int = 0
    stalls: int = 0  #: times no message came for rcv_timeout_ms (ZeroMQ sources), no cycle for a while (JACK)
    xruns: int = 0  #: xruns the JACK server reported (JACK sources; samples lost count as gaps)
    #: of gap_samples, those skipped by gaps longer than max_gap_fill_s (not NaN-filled: the
    #: stream resynced past them)
    skipped_samples: int = 0
    #: GNU Radio raw messages dropped because the sink's vector length looks like 1 (an Interleave
    #: straight into the sink): each item one sample, not one frame of every channel
    vlen_mismatch: int = 0
    #: GNU Radio raw messages dropped because the sink's pass_tags differs from the configuration
    pass_tags_mismatch: int = 0

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

    def __enter__(self) -> Source: ...

    def __exit__(self, *exc: Any) -> None: ...


# ---------------------------------------------------------------------- shared by the sources
class LogLimiter:
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


def beyond_level(x: np.ndarray, level: float) -> np.ndarray:
    """Finite values with |x| >= level (inf is counted as non-finite, not as clipped)."""
    a = np.abs(x)
    return (a >= level) & (a < np.inf)


def count_clipped(raw: np.ndarray, x: np.ndarray, level: float | None) -> int:
    """Clipped values of a message: integer ``raw`` at either end of its range, and (when
    ``level`` is given) decoded values ``x`` with ``|x| >= level``."""
    if raw.dtype.kind in "iu":
        info = np.iinfo(raw.dtype)
        m = (raw == info.min) | (raw == info.max)
        if level is not None:
            m |= beyond_level(x, level)
        return int(np.count_nonzero(m))
    if level is None:
        return 0
    return int(np.count_nonzero(beyond_level(x, level)))
