"""Writing captures: the multichannel audio file and its sidecar, from the simulator's blocks.

The format itself (sidecar keys, containers, subtypes, the ground-truth file) is a contract
that the receiver reads as well: :mod:`receiver.contracts.capture`.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import struct
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from dsp.numba_settings import jit
from receiver.contracts.capture import (
    FORMATS,
    GLA_KEYS,
    MAX_FLAC_CHANNELS,
    MAX_WAV_CHANNELS,
    META_SUFFIX,
    SIGMF_VERSION,
    SUBTYPES,
    WAV_HEADER_RESERVE,
    WAV_LIMIT_BYTES,
    capture_stem,
    iso_utc,
    jsonable,
    sha256_file,
    write_json_atomic,
    write_truth,
)
from receiver.contracts.sigmf_layout import GLA_EXTENSION, GLA_EXTENSION_VERSION

from .channel import PHASES, Layout, phase_index


@jit
def _scale_block(x, scale, top, out):
    """out = x * scale in one pass, with the peak |out| and the count of samples over [-1, top].
    Returns (peak_abs, n_over), n_over = -1 on a non-finite sample."""
    peak = 0.0
    n_over = 0
    for r in range(x.shape[0]):
        for c in range(x.shape[1]):
            v = x[r, c]
            if not math.isfinite(v):
                return peak, -1
            y = v * scale
            out[r, c] = y
            a = abs(y)
            if a > peak:
                peak = a
            if y > top or y < -1.0:
                n_over += 1
    return peak, n_over


@jit
def _clip_round(y, top):
    """``y`` clipped to [-1, top] and rounded to the 32-bit integer libsndfile makes of it (as
    int64), and 1 if it was clipped (else 0)."""
    over = 0
    if y > top:
        over, y = 1, top
    elif y < -1.0:
        over, y = 1, -1.0
    return np.int64(np.rint(y * 2147483648.0)), over


@jit
def _quantise_block(x, scale, top, out):
    """out = round(clip(x * scale, -1, top) * 2**31) as int32, in one pass, with the peak |x * scale|
    and the count of samples over [-1, top] (n_over = -1 on a non-finite sample). libsndfile
    (1.2) turns a double into 16/24/32-bit PCM as exactly this rounded 32-bit value shifted right,
    and an int32 by the same shift, so writing ``out`` makes the same bytes as writing the
    doubles, without libsndfile's slower per-sample double conversion."""
    peak = 0.0
    n_over = 0
    for r in range(x.shape[0]):
        for c in range(x.shape[1]):
            v = x[r, c]
            if not math.isfinite(v):
                return peak, -1
            y = v * scale
            peak = max(peak, abs(y))
            q, over = _clip_round(y, top)
            n_over += over
            out[r, c] = np.int32(q)
    return peak, n_over


@jit
def _quantise_pack(x, scale, top, shift, nbytes, out):
    """The same rounding as :func:`_quantise_block`, with each 32-bit value shifted right by
    ``shift`` and stored as ``nbytes`` little-endian bytes into ``out`` (uint8, frame-interleaved):
    exactly the sample bytes libsndfile writes for 16/24-bit PCM, made in the one pass."""
    peak = 0.0
    n_over = 0
    k = 0
    for r in range(x.shape[0]):
        for c in range(x.shape[1]):
            v = x[r, c]
            if not math.isfinite(v):
                return peak, -1
            y = v * scale
            peak = max(peak, abs(y))
            q, over = _clip_round(y, top)
            n_over += over
            q >>= shift
            for b in range(nbytes):
                out[k] = np.uint8((q >> (8 * b)) & 0xFF)
                k += 1
    return peak, n_over


# RF64 header fields that depend on the length (little-endian u64 at these offsets)
_RF64_RIFF_SIZE_AT, _RF64_DATA_SIZE_AT, _RF64_FRAMES_AT = 20, 28, 36


def _rf64_header(fs: int, n_inputs: int, subtype: str, frames: int) -> bytes | None:
    """The RF64 header libsndfile writes for ``frames`` frames of 16/24-bit PCM, or None if its
    layout is not the one this module patches. Made by libsndfile itself (one frame, in memory)
    with the three length fields set for ``frames``; tests check whole files against libsndfile."""
    buf = io.BytesIO()
    with sf.SoundFile(buf, mode="w", samplerate=fs, channels=n_inputs, subtype=subtype, format="RF64") as f:
        f.write(np.zeros((1, n_inputs), dtype=np.int32))
    one = buf.getvalue()
    bps = SUBTYPES[subtype][1]
    at = one.find(b"data\xff\xff\xff\xff")
    if one[:4] != b"RF64" or one[12:16] != b"ds64" or at < 0:
        return None
    head = bytearray(one[: at + 8])
    data1 = n_inputs * bps
    fields = struct.unpack_from("<QQQ", head, _RF64_RIFF_SIZE_AT)
    if fields != (len(head) - 8 + data1 + (data1 & 1), data1, 1) or len(one) != len(head) + data1 + (data1 & 1):
        return None
    data = frames * n_inputs * bps
    struct.pack_into("<QQQ", head, _RF64_RIFF_SIZE_AT, len(head) - 8 + data + (data & 1), data, frames)
    return bytes(head)


__all__ = ["CaptureWriter", "write_truth"]


def _channel_table(
    layout: Layout | Sequence[tuple[int, int, int | str]], n_inputs: int, ct_polarity: Sequence[int] | None
) -> list[dict]:
    if isinstance(layout, Layout):
        if layout.n_inputs != n_inputs:
            raise ValueError(f"layout has {layout.n_inputs} inputs but n_inputs={n_inputs}")
        fpb = layout.feeders_per_bus
        rows = layout.inputs
    else:
        rows = [(int(b), int(f), phase_index(p)) for b, f, p in layout]
        if len(rows) != n_inputs:
            raise ValueError(f"layout lists {len(rows)} inputs but n_inputs={n_inputs}")
        fpb = None
    pol = [1] * n_inputs if ct_polarity is None else [int(x) for x in ct_polarity]
    if len(pol) != n_inputs or any(x not in (-1, 1) for x in pol):
        raise ValueError(f"ct_polarity must be {n_inputs} values of +-1")
    out = []
    for i, (b, f, p) in enumerate(rows):
        row: dict[str, Any] = {"index": i, "bus": b, "feeder": f}
        if fpb is not None:
            row["feeder_in_bus"] = f - b * fpb
        row.update(phase=PHASES[p], ct_polarity=pol[i])
        out.append(row)
    return out


# ----------------------------------------------------------------------------------- writer
class CaptureWriter:
    """Write a multichannel capture and its sidecar.

    Use as a context manager; :meth:`write` takes ``(n, n_inputs)`` float64 blocks in per-unit
    current. The sidecar is written by :meth:`close` (on a clean exit from the ``with`` block);
    if the block raises, the audio file is closed and no sidecar is written.

    ``container``: None picks WAV (<= 8 channels and ``expected_frames`` known to fit in 4 GiB, or
    unknown) or RF64; "WAV", "RF64", "W64", "FLAC" force one. Writing past 4 GiB into a WAV raises
    ValueError before anything is lost (pass ``expected_frames`` or ``container="RF64"``).
    """

    def __init__(
        self,
        path_stem: str | os.PathLike,
        fs: int,
        n_inputs: int,
        layout: Layout | Sequence[tuple[int, int, int | str]],
        subtype: str = "PCM_24",
        start_time_utc: datetime | str | None = None,
        grid_hz: float = 60.0,
        scale: float = 0.25,
        meta_extra: dict | None = None,
        *,
        container: str | None = None,
        expected_frames: int | None = None,
        ct_polarity: Sequence[int] | None = None,
        description: str = "",
    ):
        self.stem = capture_stem(path_stem)
        self.fs = int(fs)
        self.n_inputs = int(n_inputs)
        if self.fs <= 0 or self.fs != fs:
            raise ValueError(f"fs must be a positive integer, got {fs!r}")
        if self.n_inputs < 1:
            raise ValueError(f"n_inputs must be >= 1, got {n_inputs}")
        subtype = subtype.upper()
        if subtype not in SUBTYPES:
            raise ValueError(f"subtype must be one of {sorted(SUBTYPES)}, got {subtype!r}")
        self.subtype = subtype
        if not (scale > 0 and math.isfinite(scale)):
            raise ValueError(f"scale must be a positive number, got {scale!r}")
        self.scale = float(scale)
        if grid_hz not in (50, 60):
            raise ValueError(f"grid_hz must be 50 or 60, got {grid_hz!r}")
        self.grid_hz = float(grid_hz)
        self.start_time_utc = iso_utc(start_time_utc)
        self.channels = _channel_table(layout, self.n_inputs, ct_polarity)
        self.meta_extra = dict(meta_extra or {})
        for k in self.meta_extra:
            if k.startswith("core:") or k in GLA_KEYS:
                raise ValueError(f"meta_extra may not override the sidecar key {k!r}")
        self.description = description or (
            f"Substation CT capture, {self.n_inputs} inputs at {self.fs} Hz, {self.grid_hz:g} Hz grid"
        )
        self.container = self._pick_container(container, expected_frames)
        self.audio_path = self.stem.with_name(self.stem.name + FORMATS[self.container])
        self.meta_path = self.stem.with_name(self.stem.name + META_SUFFIX)
        self.frames = 0
        self.clipped = 0
        self.peak_abs = 0.0
        _, self._bytes_per_sample, self._integer = SUBTYPES[self.subtype]
        self._file: sf.SoundFile | None = None
        self._closed = False
        self._expected_frames = expected_frames
        # RF64 with 16/24-bit PCM and a known length: the bytes are packed and written here, and
        # hashed as they are written (no read-back); anything else goes through libsndfile
        self._raw: Any = None
        self._hash: Any = None

    def _pick_container(self, container: str | None, expected_frames: int | None) -> str:
        bps = SUBTYPES[self.subtype][1]
        if container is None:
            too_big = (
                expected_frames is not None
                and expected_frames * self.n_inputs * bps + WAV_HEADER_RESERVE > WAV_LIMIT_BYTES
            )
            return "RF64" if self.n_inputs > MAX_WAV_CHANNELS or too_big else "WAV"
        c = container.upper()
        if c not in FORMATS:
            raise ValueError(f"container must be one of {sorted(FORMATS)}, got {container!r}")
        if c == "FLAC":
            if self.n_inputs > MAX_FLAC_CHANNELS:
                raise ValueError(
                    f"FLAC holds at most {MAX_FLAC_CHANNELS} channels, the capture has {self.n_inputs}: use RF64 or W64"
                )
            if self.subtype not in ("PCM_16", "PCM_24"):
                raise ValueError(f"FLAC holds 16/24-bit integer samples only, not {self.subtype}")
        return c

    # context manager ------------------------------------------------------------------
    def __enter__(self) -> CaptureWriter:
        self.open()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._abort()

    def open(self) -> None:
        if self._file is not None:
            return
        if self._raw is not None:
            return
        self.stem.parent.mkdir(parents=True, exist_ok=True)
        if self.container == "RF64" and self.subtype in ("PCM_16", "PCM_24") and self._expected_frames:
            head = _rf64_header(self.fs, self.n_inputs, self.subtype, int(self._expected_frames))
            if head is not None:
                self._raw = open(self.audio_path, "wb")  # noqa: SIM115 (closed by close/_abort)
                self._raw.write(head)
                self._hash = hashlib.sha256(head)
                return
        self._file = sf.SoundFile(
            str(self.audio_path),
            mode="w",
            samplerate=self.fs,
            channels=self.n_inputs,
            subtype=self.subtype,
            format=self.container,
        )

    def write(self, block: np.ndarray) -> None:
        """Append ``(n, n_inputs)`` samples (per-unit current; ``scale`` is applied here)."""
        if self._closed:
            raise ValueError("capture already closed")
        if self._file is None and self._raw is None:
            self.open()
        x = np.asarray(block, dtype=np.float64)
        if x.ndim == 1 and self.n_inputs == 1:
            x = x[:, None]
        if x.ndim != 2 or x.shape[1] != self.n_inputs:
            raise ValueError(f"block must have shape (n, {self.n_inputs}), got {x.shape}")
        if self.container == "WAV":
            size = (self.frames + x.shape[0]) * self.n_inputs * self._bytes_per_sample
            if size + WAV_HEADER_RESERVE > WAV_LIMIT_BYTES:
                raise ValueError(
                    f"{self.audio_path.name}: a WAV file cannot exceed 4 GiB; pass expected_frames or container='RF64'"
                )
        # scale, finite check, peak and clip count in one pass; integer PCM quantised here too
        top = 1.0 - 2.0 ** (1 - 8 * self._bytes_per_sample) if self._integer else math.inf
        y: np.ndarray
        if self._raw is not None:
            buf = np.empty(x.size * self._bytes_per_sample, dtype=np.uint8)
            shift = 32 - 8 * self._bytes_per_sample
            x = np.ascontiguousarray(x)
            peak, n_over = _quantise_pack(x, self.scale, top, shift, self._bytes_per_sample, buf)
            if n_over < 0:
                raise ValueError("block contains NaN or infinite samples")
            self.peak_abs = max(self.peak_abs, peak)
            self.clipped += n_over
            self._raw.write(buf.data)
            self._hash.update(buf.data)
            self.frames += x.shape[0]
            return
        assert self._file is not None  # open() created it
        if self._integer:
            y = np.empty(x.shape, dtype=np.int32)
            peak, n_over = _quantise_block(np.ascontiguousarray(x), self.scale, top, y)
        else:
            y = np.empty(x.shape)
            peak, n_over = _scale_block(np.ascontiguousarray(x), self.scale, top, y)
        if n_over < 0:
            raise ValueError("block contains NaN or infinite samples")
        self.peak_abs = max(self.peak_abs, peak)
        if n_over:
            self.clipped += n_over
            if not self._integer:
                y = np.clip(y, -1.0, top)
        self._file.write(y)
        self.frames += x.shape[0]

    def _abort(self) -> None:
        if self._raw is not None:
            self._raw.close()
            self._raw = None
        if self._file is not None:
            self._file.close()
            self._file = None
        self._closed = True

    def _close_audio(self) -> str:
        """Close the audio file; returns its SHA-256."""
        if self._file is not None:
            self._file.close()
            self._file = None
            return sha256_file(self.audio_path)
        raw, self._raw = self._raw, None
        data = self.frames * self.n_inputs * self._bytes_per_sample
        with raw:
            if data & 1:  # RIFF chunks are padded to an even length
                raw.write(b"\0")
                self._hash.update(b"\0")
            if self.frames == self._expected_frames:
                return str(self._hash.hexdigest())
            head = _rf64_header(self.fs, self.n_inputs, self.subtype, self.frames)
            assert head is not None  # the same layout as at open()
            raw.seek(0)
            raw.write(head)
        return sha256_file(self.audio_path)

    def close(self) -> Path:
        """Close the audio file and write the sidecar; returns the sidecar path."""
        if self._closed:
            return self.meta_path
        if self._file is None and self._raw is None:
            self.open()
        digest = self._close_audio()
        self._closed = True
        glob = {
            "core:datatype": SUBTYPES[self.subtype][0],
            "core:sample_rate": float(self.fs),
            "core:num_channels": self.n_inputs,
            "core:version": SIGMF_VERSION,
            "core:description": self.description,
            "core:dataset": self.audio_path.name,  # a non-conforming dataset: the audio file
            # a reader must know the gla keys to read the audio file: not optional
            "core:extensions": [{"name": GLA_EXTENSION, "version": GLA_EXTENSION_VERSION, "optional": False}],
            "gla:scale": self.scale,
            "gla:grid_hz": self.grid_hz,
            "gla:subtype": self.subtype,
            "gla:format": self.container,
            "gla:num_frames": self.frames,
            "gla:clipped_samples": self.clipped,
            "gla:peak_abs": self.peak_abs,
            "gla:sha256": digest,
            "gla:channels": self.channels,
        }
        glob.update(jsonable(self.meta_extra, "meta_extra"))
        meta = {
            "global": glob,
            "captures": [{"core:sample_start": 0, "core:datetime": self.start_time_utc}],
            "annotations": [],
        }
        write_json_atomic(self.meta_path, meta)
        return self.meta_path
