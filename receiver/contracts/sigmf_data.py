"""Reading a SigMF recording's ``.sigmf-data`` file: headerless interleaved real samples.

:class:`RawRecording` reads every real SigMF datatype (``ri8``, ``ru8``, ``ri16``, ``ru16``,
``ri32``, ``ru32``, ``rf32``, ``rf64``, little or big endian) with numpy, and offers the part of
``soundfile.SoundFile``'s interface that :func:`receiver.contracts.capture.open_capture` and
:class:`receiver.sources.CaptureSource` use (``frames``, ``channels``, ``samplerate``,
``subtype``, ``format``, ``seek``, ``read``, ``close``). Integers are normalised to ±1 as
libsndfile normalises a WAV's: signed ``v / 2^(bits-1)``, unsigned ``(v - 2^(bits-1)) / 2^(bits-1)``
(the SigMF convention for unsigned samples: offset binary).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

__all__ = ["RawRecording"]


class RawRecording:
    """A ``.sigmf-data`` file opened for reading (``datatype`` without ``c``: real only)."""

    format = "RAW"

    def __init__(self, path: str | os.PathLike, datatype: str, subtype: str, channels: int, samplerate: int) -> None:
        base = datatype[1:].split("_")[0]  # "i16", "u8", "f32" ...
        kind, bits = base[0], int(base[1:])
        order = ">" if datatype.endswith("_be") else "<"
        self.dtype = np.dtype(f"{order}{'f' if kind == 'f' else kind}{bits // 8}")
        self._offset = 0.0 if kind != "u" else float(2 ** (bits - 1))
        self._gain = 1.0 if kind == "f" else 1.0 / 2 ** (bits - 1)
        self.subtype, self.channels, self.samplerate = subtype, int(channels), int(samplerate)
        self._f = open(path, "rb")  # noqa: SIM115  (closed by close(), as a SoundFile is)
        self.frames = os.fstat(self._f.fileno()).st_size // (self.dtype.itemsize * self.channels)
        self._pos = 0

    def seek(self, frame: int) -> int:
        self._pos = max(0, min(int(frame), self.frames))
        return self._pos

    def read(self, frames: int = -1, dtype: str = "float64", always_2d: bool = True, **_: Any) -> np.ndarray:
        """Up to ``frames`` frames from the position (all that are left for -1), ``(n, channels)``."""
        n = self.frames - self._pos if frames < 0 else max(0, min(int(frames), self.frames - self._pos))
        self._f.seek(self._pos * self.dtype.itemsize * self.channels)
        raw = np.fromfile(self._f, dtype=self.dtype, count=n * self.channels)
        n = raw.size // self.channels
        y = raw[: n * self.channels].astype(np.float64).reshape(n, self.channels)
        if self._offset:
            y -= self._offset
        if self._gain != 1.0:
            y *= self._gain
        self._pos += n
        return y.astype(dtype, copy=False)

    def close(self) -> None:
        self._f.close()

    @property
    def closed(self) -> bool:
        return self._f.closed

    def __enter__(self) -> RawRecording:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
