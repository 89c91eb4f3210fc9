"""Reading some columns of a capture's audio file directly: each replay worker decodes its own inputs.

A PCM WAV/RF64 capture stores frames of ``n_channels`` interleaved integers after the ``data``
chunk's header. :class:`ColumnSpec` (small, picklable: it goes to the worker processes) locates
them; :meth:`ColumnSpec.open` gives a :class:`ColumnReader` that reads a range of frames with
one ``readinto`` into a reused buffer (no memory map: the pages of a multi-GB file would count
in the process's resident set) and decodes only its columns, one row per input, float32, with
the arithmetic of ``soundfile.read(dtype="float64") / scale`` followed by the float32
conversion the pipeline does (the same values, exactly: :func:`column_spec` checks it on the
first frames and returns None for a file it cannot read this way). Full-scale samples of the
columns are counted (the clipped counter of :class:`receiver.sources.base.SourceStats`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dsp.numba_settings import jit

__all__ = ["ColumnSpec", "ColumnReader", "column_spec"]

#: subtype -> bytes per sample (integer PCM only: no NaN to count, full scale is the extremes)
_PCM_BYTES = {"PCM_16": 2, "PCM_24": 3, "PCM_32": 4}


@dataclass(frozen=True)
class ColumnSpec:
    path: str
    data_offset: int  # byte offset of frame 0
    n_channels: int
    sample_bytes: int
    readable_frames: int
    scale: float  # file value / scale = physical value (the sidecar's gla:scale)

    def open(self, columns: list[int]) -> ColumnReader:
        return ColumnReader(self, columns)


class ColumnReader:
    """Frames of some columns of a capture (see the module docstring)."""

    def __init__(self, spec: ColumnSpec, columns: list[int]) -> None:
        self.spec = spec
        self.columns = np.asarray(columns, np.int64)
        self.frame_bytes = spec.n_channels * spec.sample_bytes
        self._f = open(spec.path, "rb", buffering=0)  # noqa: SIM115 (held for the reader's life)
        self._buf = bytearray()

    def close(self) -> None:
        self._f.close()

    def read(self, first_frame: int, n: int) -> tuple[np.ndarray, int]:
        """Frames ``first_frame`` .. ``+ n`` of the columns: ((columns, n) float32, full-scale
        samples among them). Raises OSError on a short read."""
        nb = n * self.frame_bytes
        if len(self._buf) < nb:
            self._buf = bytearray(nb)
        view = memoryview(self._buf)[:nb]
        self._f.seek(self.spec.data_offset + first_frame * self.frame_bytes)
        got = 0
        while got < nb:
            k = self._f.readinto(view[got:])
            if not k:
                raise OSError(f"{self.spec.path}: short read at frame {first_frame} ({got} of {nb} bytes)")
            got += k
        raw = np.frombuffer(self._buf, np.uint8, nb)
        out = np.empty((self.columns.size, n), np.float32)
        clipped = _decode(raw, self.spec.n_channels, self.spec.sample_bytes, self.columns, self.spec.scale, out)
        return out, int(clipped)


@jit
def _decode(raw, n_channels, sample_bytes, columns, scale, out):
    """Little-endian signed integers of ``columns`` -> out[j, i] = float32(v / 2**(bits-1) / scale)
    (what soundfile's float64 read divided by the scale gives, as float32: the first division
    is by a power of two, exact as the multiplication here); the count of samples at either end
    of the integer range. A row at a time (one write stream), the 24-bit case unrolled."""
    n = out.shape[1]
    fb = n_channels * sample_bytes
    bits = 8 * sample_bytes
    inv_full = 1.0 / 2.0 ** (bits - 1)
    top = (1 << (bits - 1)) - 1
    bottom = -(1 << (bits - 1))
    wrap = 1 << bits
    clipped = 0
    for j in range(columns.size):
        row = out[j]
        p = columns[j] * sample_bytes
        if sample_bytes == 3:
            for i in range(n):
                v = np.int64(raw[p]) | (np.int64(raw[p + 1]) << 8) | (np.int64(raw[p + 2]) << 16)
                if v > 8388607:
                    v -= 16777216
                if v == 8388607 or v == -8388608:
                    clipped += 1
                row[i] = np.float32((v * inv_full) / scale)
                p += fb
        else:
            for i in range(n):
                v = np.int64(0)
                for b in range(sample_bytes):
                    v |= np.int64(raw[p + b]) << (8 * b)
                if v > top:
                    v -= wrap
                if v == top or v == bottom:
                    clipped += 1
                row[i] = np.float32((v * inv_full) / scale)
                p += fb
    return clipped


def _data_offset(path: Path) -> int | None:
    """Byte offset of the ``data`` chunk's contents of a RIFF/RF64 WAVE file (None if not one)."""
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE":
            return None
        pos = 12
        size_total = path.stat().st_size
        while pos + 8 <= size_total:
            f.seek(pos)
            ck = f.read(8)
            cid, size = ck[:4], struct.unpack("<I", ck[4:8])[0]
            if cid == b"data":
                return pos + 8
            pos += 8 + size + (size & 1)
    return None


def column_spec(meta, soundfile_handle, readable_frames: int) -> ColumnSpec | None:
    """A :class:`ColumnSpec` of a capture (its :class:`receiver.contracts.capture.CaptureMeta`
    and the open SoundFile), or None when its audio cannot be read by columns (not integer PCM
    in WAV/RF64, or the first frames decode to other values than soundfile's)."""
    nbytes = _PCM_BYTES.get(meta.subtype)
    if nbytes is None or meta.format not in ("WAV", "RF64") or readable_frames <= 0:
        return None
    off = _data_offset(Path(meta.audio_path))
    if off is None:
        return None
    spec = ColumnSpec(str(meta.audio_path), off, int(meta.n_channels), nbytes, int(readable_frames), float(meta.scale))
    n = min(4096, readable_frames)
    pos = soundfile_handle.tell()
    try:
        soundfile_handle.seek(0)
        want = (soundfile_handle.read(n, dtype="float64", always_2d=True) / meta.scale).astype(np.float32).T
    finally:
        soundfile_handle.seek(pos)
    r = spec.open(list(range(meta.n_channels)))
    try:
        got, _ = r.read(0, n)
    except OSError:
        return None
    finally:
        r.close()
    return spec if np.array_equal(got, want) else None
