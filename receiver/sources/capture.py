"""Capture replay: :class:`CaptureSource` reads a capture (audio file + sidecar) as sample blocks.

The capture format (``docs/capture-format.md``) is read and checked by
:mod:`receiver.contracts.capture`; this module only turns the frames into blocks of ``block_s``,
as fast as they can be read or paced in real time, counting NaN/inf and clipped samples in
:class:`SourceStats`. A truncated audio file is replayed up to its last whole frame, then
:class:`CaptureTruncatedError` is raised (or only logged with ``strict=False``).
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import numpy as np
import soundfile as sf

from receiver.contracts.capture import CaptureError, CaptureMeta, open_capture
from receiver.sources.base import LogLimiter, SampleBlock, SourceStats, beyond_level

__all__ = ["CaptureSource", "CaptureTruncatedError"]

log = logging.getLogger("gla.ingest")


class CaptureTruncatedError(CaptureError):
    """Raised by :class:`CaptureSource` after the last readable block of a truncated capture."""


#: soundfile subtype -> (numpy dtype of a raw read, bytes per sample, integer?)
_SUBTYPE_INFO = {
    "PCM_S8": ("int8", 1, True),  # the two 8-bit types: SigMF recordings (ri8, ru8) only
    "PCM_U8": ("uint8", 1, True),
    "PCM_U16": ("uint16", 2, True),  # ru16/ru32 recordings, read by receiver.contracts.sigmf_data
    "PCM_U32": ("uint32", 4, True),
    "PCM_16": ("int16", 2, True),
    "PCM_24": ("int32", 3, True),
    "PCM_32": ("int32", 4, True),
    "FLOAT": ("float32", 4, False),
    "DOUBLE": ("float64", 8, False),
}


class CaptureSource:
    """Replay a capture (``<stem>.wav`` or a SigMF recording's ``<stem>.sigmf-data``, + ``<stem>.sigmf-meta``)
    as blocks of ``block_s``.

    ``first_sample`` counts from the start of the capture (``start_s`` skips into it);
    ``time_utc`` is the sidecar's start time plus ``first_sample / fs``. Samples are the file
    values divided by ``gla:scale``. ``realtime=True`` yields each block when its last sample
    would have arrived (``speed`` > 1 replays that many times faster); otherwise as fast as the
    file is read.

    Construction raises :class:`~receiver.contracts.capture.CaptureError` (a ValueError) naming
    the file when the sidecar is missing or invalid, or the audio file disagrees with it
    (channels, rate, subtype, container, more frames than the sidecar says) or cannot be opened.
    A **truncated** audio file (fewer frames than the sidecar says, a common result of a copy or
    a recording cut short) is not refused: a warning is logged at opening (``.truncated`` is
    True), every readable whole frame is yielded, and after the last good block
    :class:`CaptureTruncatedError` (a CaptureError naming the file and the frame counts) is
    raised, or only logged with ``strict=False``.

    ``.meta`` is the validated :class:`receiver.contracts.capture.CaptureMeta`; ``.channels`` its channel
    map (``index``, ``bus``, ``feeder``, ``phase``, ``ct_polarity`` per input).
    """

    def __init__(
        self,
        stem_or_path: str | os.PathLike,
        block_s: float = 1.0,
        realtime: bool = False,
        start_s: float = 0.0,
        duration_s: float | None = None,
        *,
        speed: float = 1.0,
        stream_id: str | None = None,
        clip_level: float | None = None,
        stop_event: Any = None,
        strict: bool = True,
        verify_sha256: bool = False,
    ) -> None:
        if not (block_s > 0 and math.isfinite(block_s)):
            raise ValueError(f"block_s must be a positive number, got {block_s!r}")
        if not (start_s >= 0 and math.isfinite(start_s)):
            raise ValueError(f"start_s must be >= 0, got {start_s!r}")
        if duration_s is not None and not (duration_s >= 0 and math.isfinite(duration_s)):
            raise ValueError(f"duration_s must be >= 0, got {duration_s!r}")
        if not (speed > 0):
            raise ValueError(f"speed must be > 0, got {speed!r}")
        f, meta = open_capture(stem_or_path, verify_sha256=verify_sha256, allow_truncated=True)
        self.truncated = f.frames < meta.n_frames
        if self.truncated:
            log.warning(
                "%s: truncated capture: %d of %d frames readable; replaying what is there",
                meta.audio_path,
                f.frames,
                meta.n_frames,
                extra={"event": "capture_truncated", "stream": meta.audio_path.name},
            )
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
        self.next_frame = self.first_frame  #: first frame of the next block (for __repr__)
        _, _, integer = _SUBTYPE_INFO[meta.subtype]
        self._integer = integer
        # clip level in file units: integer full scale is caught by the extremes check
        self._clip_file = (None if integer else 1.0) if clip_level is None else clip_level * meta.scale
        self._closed = threading.Event()
        self._iterating = False
        self._log = LogLimiter(self.stream_id)

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

    def __repr__(self) -> str:
        state = f", truncated at frame {self.readable_frames}" if self.truncated else ""
        state += ", closed" if self._closed.is_set() else ""
        return (
            f"CaptureSource({str(self.meta.audio_path)!r}, {self.n_channels} ch at {self.meta.fs_hz} Hz, "
            f"frames {self.first_frame}..{self.end_frame} of {self.meta.n_frames}, next {self.next_frame}, "
            f"blocks of {self.block_frames}{', realtime' if self.realtime else ''}{state})"
        )

    def __enter__(self) -> CaptureSource:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Stop (an iteration in progress ends before its next block) and close the file."""
        self._closed.set()
        if not self._iterating and self._file is not None:
            self._file.close()
            self._file = None

    def column_spec(self):
        """Where the workers can read their own columns of this capture's file
        (:class:`receiver.sources.columns.ColumnSpec`), or None (not integer PCM WAV/RF64)."""
        from receiver.sources.columns import column_spec

        if self._file is None:
            return None
        return column_spec(self.meta, self._file, self.readable_frames)

    def frame_ranges(self) -> Iterator[tuple[int, int, bool]]:
        """The blocks of :meth:`__iter__` without their samples, ``(first_frame, n, discontinuity)``:
        for readers of the file's columns (:meth:`column_spec`), who count the clipped samples
        themselves. The counters of blocks and samples, the stop and the truncation error are
        those of the iteration."""
        if self._file is None or self._closed.is_set():
            raise ValueError(f"{self.meta.audio_path}: source is closed")
        st = self.stats
        stop_at = min(self.end_frame, self.readable_frames)
        pos = self.next_frame = self.first_frame
        first = True
        while pos < stop_at and not self._stopped():
            n = min(self.block_frames, stop_at - pos)
            yield pos, n, first
            first = False
            st.blocks += 1
            st.samples += n
            pos += n
            self.next_frame = pos
        if self._stopped():
            return
        if self.truncated and self.end_frame > self.readable_frames and pos >= self.readable_frames:
            error = (
                f"{self.meta.audio_path}: truncated: only {self.readable_frames} of {self.meta.n_frames} frames "
                f"(the sidecar's gla:num_frames) could be read; replay stopped after frame {pos}"
            )
            if self.strict:
                raise CaptureTruncatedError(error)
            log.error("%s", error, extra={"event": "capture_truncated", "stream": self.stream_id})

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
        pos = self.next_frame = self.first_frame
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
                    big = beyond_level(y, self._clip_file)
                    clip = big if clip is None else clip | big
                nc = 0 if clip is None else int(np.count_nonzero(clip))
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
                blk = SampleBlock(
                    self.stream_id,
                    pos,
                    x,
                    float(fs),
                    meta.start_time_utc + timedelta(seconds=pos / fs),
                    discontinuity=first,
                )
                first = False
                st.blocks += 1
                st.samples += n
                pos += n
                self.next_frame = pos
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
            error = (
                f"{meta.audio_path}: truncated: only {self.readable_frames} of {meta.n_frames} frames "
                f"(the sidecar's gla:num_frames) could be read; replay stopped after frame {pos}"
            )
        if error is not None:
            if self.strict:  # the caller reports it
                raise CaptureTruncatedError(error)
            log.error("%s", error, extra={"event": "capture_truncated", "stream": self.stream_id})
