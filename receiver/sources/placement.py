"""Where a delivered message's samples go: :class:`Placement`, the delivery step of
:class:`~receiver.sources.assembler.StreamAssembler` (kept apart to keep each module short).

A message is placed at its sample position: a gap before it becomes a NaN block (``gap_fill``)
up to ``max_gap_fill_s`` or else a discontinuity, an overlap with what was delivered is trimmed,
the raw samples are decoded to float64 physical units and NaN/inf and clipped values counted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

import numpy as np

from receiver.contracts import zmq_framing as zf
from receiver.sources.base import LogLimiter, SampleBlock, SourceStats, count_clipped
from receiver.sources.messages import Message

__all__ = ["Placement", "LOST_MEMORY"]

#: how many sequence numbers (given up, or delivered) the assembler remembers
LOST_MEMORY = 4096


class Placement:
    """The delivery step; the state it reads and moves is the assembler's."""

    stats: SourceStats
    next_key: int | None
    next_sample: int | None
    _seen: dict[int, int | None]
    _pending_disc: bool
    _started: bool
    max_gap_fill_s: float
    _log: LogLimiter
    _max_fill: Callable[[float], int]

    @property
    def _by_seq(self) -> bool:
        raise NotImplementedError

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
        if self._by_seq:
            self.next_key = m.key + 1
            self._seen[m.key] = m.digest
            if len(self._seen) > LOST_MEMORY:
                del self._seen[next(iter(self._seen))]
        else:
            self.next_key = max(self.next_key or 0, m.key + m.n)
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
                st.gap_samples += d  # missing all the same: skipped, not filled
                st.resyncs += 1
                st.skipped_samples += d
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
