"""Captures that describe themselves.

A capture is an audio file written with ``soundfile`` (libsndfile) plus a SigMF-style JSON
sidecar ``<stem>.sigmf-meta`` that says what is in it, and optionally a ground-truth file
``<stem>.truth.json`` written by the simulator.

Audio container: WAV when the capture has <= 8 channels and is expected to stay under 4 GiB,
otherwise RF64 (a WAV with 64-bit sizes; libsndfile reads it transparently). W64 and FLAC can be
forced; FLAC holds at most 8 channels and integer samples only. The audio file is named
``<stem>.wav`` (WAV and RF64), ``<stem>.w64`` or ``<stem>.flac``; the sidecar names it
(``core:dataset``).

Samples are written as ``block * scale`` (``scale`` e.g. 0.25 so that the fundamental plus
harmonics of a fully loaded input fit in +-1); for integer subtypes values outside [-1, 1) are
clipped and counted (``gla:clipped_samples``). A reader recovers per-unit current as
``samples / scale``.

Sidecar (JSON)::

    {
      "global": {
        "core:datatype": "ri24_le" | "rf32_le" | ...,   # sample type on disk
        "core:sample_rate": 48000.0,
        "core:num_channels": 12,
        "core:version": "1.0.0",
        "core:description": "...",
        "core:dataset": "<stem>.wav",                   # the audio file, next to the sidecar
        "gla:scale": 0.25,                              # file value = per-unit current * scale
        "gla:grid_hz": 60.0,
        "gla:subtype": "PCM_24", "gla:format": "WAV" | "RF64" | "W64" | "FLAC",
        "gla:num_frames": 480000,
        "gla:clipped_samples": 0, "gla:peak_abs": 0.43,  # after scaling
        "gla:sha256": "<hex digest of the audio file>",
        ... meta_extra ...
      },
      "captures": [{"core:sample_start": 0, "core:datetime": "2025-03-03T14:00:00.000000Z"}],
      "annotations": [],
      "gla:channels": [{"index": 0, "bus": 0, "feeder": 0, "feeder_in_bus": 0, "phase": "A",
                        "ct_polarity": 1}, ...]
    }

Ground truth (``<stem>.truth.json``): ``{"capture": {...}, "transmissions": [{...}, ...]}``.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import soundfile as sf

from .channel import PHASES, Layout, phase_index

__all__ = [
    "CaptureMeta",
    "CaptureWriter",
    "open_capture",
    "read_capture_meta",
    "read_truth",
    "write_truth",
]

SIGMF_VERSION = "1.0.0"
META_SUFFIX = ".sigmf-meta"
TRUTH_SUFFIX = ".truth.json"

#: soundfile subtype -> (SigMF datatype, bytes per sample, integer?)
SUBTYPES: dict[str, tuple[str, int, bool]] = {
    "PCM_16": ("ri16_le", 2, True),
    "PCM_24": ("ri24_le", 3, True),
    "PCM_32": ("ri32_le", 4, True),
    "FLOAT": ("rf32_le", 4, False),
    "DOUBLE": ("rf64_le", 8, False),
}
#: container -> file suffix
FORMATS: dict[str, str] = {"WAV": ".wav", "RF64": ".wav", "W64": ".w64", "FLAC": ".flac"}
_AUDIO_SUFFIXES = {".wav", ".rf64", ".w64", ".flac"}
WAV_LIMIT_BYTES = (1 << 32) - 1  #: RIFF sizes are 32-bit
_WAV_HEADER_RESERVE = 4096
MAX_WAV_CHANNELS = 8
MAX_FLAC_CHANNELS = 8


# ---------------------------------------------------------------------------------- helpers
def _stem(stem_or_path: str | os.PathLike) -> Path:
    """Capture stem from a stem, a sidecar, a truth file or an audio file path."""
    p = Path(stem_or_path)
    name = p.name
    for suf in (META_SUFFIX, TRUTH_SUFFIX):
        if name.endswith(suf):
            return p.with_name(name[: -len(suf)])
    if p.suffix.lower() in _AUDIO_SUFFIXES:
        return p.with_suffix("")
    return p


def _iso_utc(t: datetime | str | None) -> str:
    if t is None:
        t = datetime.now(timezone.utc)
    if isinstance(t, str):
        t = _parse_iso(t, "start_time_utc")
    if t.tzinfo is None:
        raise ValueError("start_time_utc must be timezone-aware (UTC)")
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_iso(s: str, what: str) -> datetime:
    try:
        t = datetime.fromisoformat(s.replace("Z", "+00:00") if s.endswith("Z") else s)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{what}: not an ISO 8601 time: {s!r}") from e
    if t.tzinfo is None:
        raise ValueError(f"{what}: ISO time without a timezone: {s!r}")
    return t.astimezone(timezone.utc)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _write_json_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, allow_nan=False) + "\n")
    os.replace(tmp, path)


def _channel_table(layout: Layout | Sequence[tuple[int, int, int | str]], n_inputs: int,
                   ct_polarity: Sequence[int] | None) -> list[dict]:
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
        row = {"index": i, "bus": b, "feeder": f}
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

    def __init__(self, path_stem: str | os.PathLike, fs: int, n_inputs: int,
                 layout: Layout | Sequence[tuple[int, int, int | str]],
                 subtype: str = "PCM_24", start_time_utc: datetime | str | None = None,
                 grid_hz: float = 60.0, scale: float = 0.25, meta_extra: dict | None = None,
                 *, container: str | None = None, expected_frames: int | None = None,
                 ct_polarity: Sequence[int] | None = None, description: str = ""):
        self.stem = _stem(path_stem)
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
        self.start_time_utc = _iso_utc(start_time_utc)
        self.channels = _channel_table(layout, self.n_inputs, ct_polarity)
        self.meta_extra = dict(meta_extra or {})
        for k in self.meta_extra:
            if k.startswith("core:") or k in _GLA_KEYS:
                raise ValueError(f"meta_extra may not override the sidecar key {k!r}")
        self.description = description or (
            f"Substation CT capture, {self.n_inputs} inputs at {self.fs} Hz, {self.grid_hz:g} Hz grid")
        self.container = self._pick_container(container, expected_frames)
        self.audio_path = self.stem.with_name(self.stem.name + FORMATS[self.container])
        self.meta_path = self.stem.with_name(self.stem.name + META_SUFFIX)
        self.frames = 0
        self.clipped = 0
        self.peak_abs = 0.0
        _, self._bytes_per_sample, self._integer = SUBTYPES[self.subtype]
        self._file: sf.SoundFile | None = None
        self._closed = False

    def _pick_container(self, container: str | None, expected_frames: int | None) -> str:
        bps = SUBTYPES[self.subtype][1]
        if container is None:
            too_big = (expected_frames is not None and
                       expected_frames * self.n_inputs * bps + _WAV_HEADER_RESERVE > WAV_LIMIT_BYTES)
            return "RF64" if self.n_inputs > MAX_WAV_CHANNELS or too_big else "WAV"
        c = container.upper()
        if c not in FORMATS:
            raise ValueError(f"container must be one of {sorted(FORMATS)}, got {container!r}")
        if c == "FLAC":
            if self.n_inputs > MAX_FLAC_CHANNELS:
                raise ValueError(f"FLAC holds at most {MAX_FLAC_CHANNELS} channels, the capture has "
                                 f"{self.n_inputs}: use RF64 or W64")
            if self.subtype not in ("PCM_16", "PCM_24"):
                raise ValueError(f"FLAC holds 16/24-bit integer samples only, not {self.subtype}")
        return c

    # context manager ------------------------------------------------------------------
    def __enter__(self) -> "CaptureWriter":
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
        self.stem.parent.mkdir(parents=True, exist_ok=True)
        self._file = sf.SoundFile(str(self.audio_path), mode="w", samplerate=self.fs,
                                  channels=self.n_inputs, subtype=self.subtype,
                                  format=self.container)

    def write(self, block: np.ndarray) -> None:
        """Append ``(n, n_inputs)`` samples (per-unit current; ``scale`` is applied here)."""
        if self._closed:
            raise ValueError("capture already closed")
        if self._file is None:
            self.open()
        x = np.asarray(block, dtype=np.float64)
        if x.ndim == 1 and self.n_inputs == 1:
            x = x[:, None]
        if x.ndim != 2 or x.shape[1] != self.n_inputs:
            raise ValueError(f"block must have shape (n, {self.n_inputs}), got {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError("block contains NaN or infinite samples")
        if self.container == "WAV":
            size = (self.frames + x.shape[0]) * self.n_inputs * self._bytes_per_sample
            if size + _WAV_HEADER_RESERVE > WAV_LIMIT_BYTES:
                raise ValueError(f"{self.audio_path.name}: a WAV file cannot exceed 4 GiB; pass "
                                 "expected_frames or container='RF64'")
        y = x * self.scale
        if x.size:
            self.peak_abs = max(self.peak_abs, float(np.max(np.abs(y))))
        if self._integer:
            top = 1.0 - 2.0 ** (1 - 8 * self._bytes_per_sample)
            over = (y > top) | (y < -1.0)
            n_over = int(np.count_nonzero(over))
            if n_over:
                self.clipped += n_over
                y = np.clip(y, -1.0, top)
        self._file.write(y)
        self.frames += x.shape[0]

    def _abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._closed = True

    def close(self) -> Path:
        """Close the audio file and write the sidecar; returns the sidecar path."""
        if self._closed:
            return self.meta_path
        if self._file is None:
            self.open()
        self._file.close()
        self._file = None
        self._closed = True
        glob = {
            "core:datatype": SUBTYPES[self.subtype][0],
            "core:sample_rate": float(self.fs),
            "core:num_channels": self.n_inputs,
            "core:version": SIGMF_VERSION,
            "core:description": self.description,
            "core:dataset": self.audio_path.name,
            "gla:scale": self.scale,
            "gla:grid_hz": self.grid_hz,
            "gla:subtype": self.subtype,
            "gla:format": self.container,
            "gla:num_frames": self.frames,
            "gla:clipped_samples": self.clipped,
            "gla:peak_abs": self.peak_abs,
            "gla:sha256": _sha256(self.audio_path),
        }
        glob.update(_jsonable(self.meta_extra, "meta_extra"))
        meta = {
            "global": glob,
            "captures": [{"core:sample_start": 0, "core:datetime": self.start_time_utc}],
            "annotations": [],
            "gla:channels": self.channels,
        }
        _write_json_atomic(self.meta_path, meta)
        return self.meta_path


_GLA_KEYS = {"gla:scale", "gla:grid_hz", "gla:subtype", "gla:format", "gla:num_frames",
             "gla:clipped_samples", "gla:peak_abs", "gla:sha256"}


# ----------------------------------------------------------------------------------- reader
@dataclass
class CaptureMeta:
    """A validated sidecar."""

    meta_path: Path
    audio_path: Path
    fs_hz: int
    n_channels: int
    n_frames: int
    scale: float
    grid_hz: float
    subtype: str
    format: str
    sha256: str
    start_time_utc: datetime
    channels: list[dict]
    raw: dict = field(repr=False)

    @property
    def duration_s(self) -> float:
        return self.n_frames / self.fs_hz


def read_capture_meta(stem_or_path: str | os.PathLike) -> CaptureMeta:
    """Read and validate ``<stem>.sigmf-meta``; ValueError names the file and the bad key."""
    stem = _stem(stem_or_path)
    path = stem.with_name(stem.name + META_SUFFIX)
    name = path.name
    if not path.is_file():
        raise ValueError(f"{path}: capture sidecar not found")
    try:
        raw = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{name}: not a readable JSON file: {e}") from e

    def bad(key: str, what: str) -> ValueError:
        return ValueError(f"{name}: {key}: {what}")

    def get(obj: dict, key: str, where: str, types, check=None, what: str = ""):
        if key not in obj:
            raise bad(f"{where}{key}", "missing")
        v = obj[key]
        if isinstance(v, bool) or not isinstance(v, types) or (check is not None and not check(v)):
            raise bad(f"{where}{key}", f"{what or 'wrong type'}, got {v!r}")
        return v

    if not isinstance(raw, dict):
        raise bad("(top level)", "must be a JSON object")
    g = get(raw, "global", "", dict)
    w = "global."
    datatype = get(g, "core:datatype", w, str)
    fs = get(g, "core:sample_rate", w, (int, float),
             lambda v: v > 0 and float(v).is_integer(), "must be a positive whole number of Hz")
    nch = get(g, "core:num_channels", w, int, lambda v: v >= 1, "must be an integer >= 1")
    get(g, "core:version", w, str)
    get(g, "core:description", w, str)
    scale = get(g, "gla:scale", w, (int, float), lambda v: v > 0 and math.isfinite(v),
                "must be a positive number")
    grid = get(g, "gla:grid_hz", w, (int, float), lambda v: v in (50, 60), "must be 50 or 60")
    subtype = get(g, "gla:subtype", w, str, lambda v: v in SUBTYPES, f"must be one of {sorted(SUBTYPES)}")
    if datatype != SUBTYPES[subtype][0]:
        raise bad(w + "core:datatype", f"{datatype!r} does not match gla:subtype {subtype!r} "
                                       f"(expected {SUBTYPES[subtype][0]!r})")
    fmt = get(g, "gla:format", w, str, lambda v: v in FORMATS, f"must be one of {sorted(FORMATS)}")
    sha = get(g, "gla:sha256", w, str,
              lambda v: len(v) == 64 and all(c in "0123456789abcdef" for c in v),
              "must be 64 lowercase hex digits")
    frames = get(g, "gla:num_frames", w, int, lambda v: v >= 0, "must be an integer >= 0")
    dataset = g.get("core:dataset", stem.name + FORMATS[fmt])
    if not isinstance(dataset, str) or not dataset or "/" in dataset or "\\" in dataset:
        raise bad(w + "core:dataset", f"must be a file name next to the sidecar, got {dataset!r}")

    caps = get(raw, "captures", "", list, lambda v: len(v) >= 1, "must be a non-empty list")
    if not isinstance(caps[0], dict):
        raise bad("captures[0]", "must be an object")
    get(caps[0], "core:sample_start", "captures[0].", int, lambda v: v == 0, "must be 0")
    dt = get(caps[0], "core:datetime", "captures[0].", str)
    try:
        start = _parse_iso(dt, "core:datetime")
    except ValueError as e:
        raise bad("captures[0].core:datetime", str(e)) from e
    get(raw, "annotations", "", list)

    chans = get(raw, "gla:channels", "", list, lambda v: len(v) == nch,
                f"must list {nch} channels (core:num_channels)")
    for i, c in enumerate(chans):
        where = f"gla:channels[{i}]."
        if not isinstance(c, dict):
            raise bad(f"gla:channels[{i}]", "must be an object")
        get(c, "index", where, int, lambda v: v == i, f"must be {i}")
        get(c, "bus", where, int, lambda v: v >= 0, "must be an integer >= 0")
        get(c, "feeder", where, int, lambda v: v >= 0, "must be an integer >= 0")
        get(c, "phase", where, str, lambda v: v in PHASES, "must be 'A', 'B' or 'C'")
        get(c, "ct_polarity", where, int, lambda v: v in (-1, 1), "must be 1 or -1")

    return CaptureMeta(meta_path=path, audio_path=path.with_name(dataset), fs_hz=int(fs),
                       n_channels=nch, n_frames=frames, scale=float(scale), grid_hz=float(grid),
                       subtype=subtype, format=fmt, sha256=sha, start_time_utc=start,
                       channels=chans, raw=raw)


def open_capture(stem_or_path: str | os.PathLike, *, verify_sha256: bool = False
                 ) -> tuple[sf.SoundFile, CaptureMeta]:
    """Open a capture for reading: ``(soundfile.SoundFile, CaptureMeta)``.

    Checks the audio file against the sidecar (channels, sample rate, subtype, container,
    frame count; the SHA-256 too with ``verify_sha256``) and raises ValueError naming the file
    when they disagree or the file is truncated or corrupt. The caller closes the SoundFile.
    """
    meta = read_capture_meta(stem_or_path)
    ap = meta.audio_path
    if not ap.is_file():
        raise ValueError(f"{ap}: audio file named by {meta.meta_path.name} not found")
    if verify_sha256:
        digest = _sha256(ap)
        if digest != meta.sha256:
            raise ValueError(f"{ap.name}: SHA-256 {digest} does not match the sidecar ({meta.sha256})")
    try:
        f = sf.SoundFile(str(ap), mode="r")
    except (sf.SoundFileError, RuntimeError, OSError) as e:
        raise ValueError(f"{ap}: cannot open the audio file (corrupt or truncated?): {e}") from e
    try:
        problems = []
        if f.channels != meta.n_channels:
            problems.append(f"has {f.channels} channels, the sidecar says {meta.n_channels}")
        if f.samplerate != meta.fs_hz:
            problems.append(f"sample rate {f.samplerate} Hz, the sidecar says {meta.fs_hz} Hz")
        if f.subtype != meta.subtype:
            problems.append(f"subtype {f.subtype}, the sidecar says {meta.subtype}")
        if f.format != meta.format:
            problems.append(f"container {f.format}, the sidecar says {meta.format}")
        if f.frames < meta.n_frames:
            problems.append(f"truncated: {f.frames} frames, the sidecar says {meta.n_frames}")
        elif f.frames > meta.n_frames:
            problems.append(f"{f.frames} frames, the sidecar says {meta.n_frames}")
        if problems:
            raise ValueError(f"{ap}: " + "; ".join(problems))
    except BaseException:
        f.close()
        raise
    return f, meta


# ------------------------------------------------------------------------------ ground truth
def _jsonable(obj: Any, where: str) -> Any:
    """Plain-JSON copy of ``obj`` (numpy scalars/arrays, datetimes, paths converted); a
    non-finite float raises ValueError naming where it is."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v, f"{where}.{k}") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist(), where)
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        if not math.isfinite(v):
            raise ValueError(f"{where}: non-finite number {v} cannot be stored in JSON")
        return v
    if isinstance(obj, datetime):
        return _iso_utc(obj)
    if isinstance(obj, Path):
        return str(obj)
    if obj is None or isinstance(obj, str):
        return obj
    if hasattr(obj, "item"):
        return _jsonable(obj.item(), where)
    raise ValueError(f"{where}: cannot store {type(obj).__name__} in JSON")


def write_truth(stem: str | os.PathLike, transmissions: list[dict], extra: dict | None = None) -> Path:
    """Write ``<stem>.truth.json`` = ``{"capture": extra, "transmissions": transmissions}``."""
    st = _stem(stem)
    path = st.with_name(st.name + TRUTH_SUFFIX)
    capture = {"stem": st.name}
    capture.update(extra or {})
    obj = {"capture": _jsonable(capture, "capture"),
           "transmissions": _jsonable(list(transmissions), "transmissions")}
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_json_atomic(path, obj)
    return path


def read_truth(stem: str | os.PathLike) -> dict:
    """Read ``<stem>.truth.json`` (checks the two top-level keys)."""
    st = _stem(stem)
    path = st.with_name(st.name + TRUTH_SUFFIX)
    try:
        obj = json.loads(path.read_text())
    except FileNotFoundError as e:
        raise ValueError(f"{path}: ground-truth file not found") from e
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path.name}: not a readable JSON file: {e}") from e
    if not isinstance(obj, dict):
        raise ValueError(f"{path.name}: top level must be a JSON object")
    if not isinstance(obj.get("capture"), dict):
        raise ValueError(f"{path.name}: capture: missing or not an object")
    if not isinstance(obj.get("transmissions"), list):
        raise ValueError(f"{path.name}: transmissions: missing or not a list")
    return obj
