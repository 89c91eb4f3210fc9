"""The capture format (a contract): captures that describe themselves.

This module reads and checks captures and their ground truth; the simulator writes them
(:class:`gridsim.capture.CaptureWriter`). It needs numpy and soundfile only.

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

Sidecar (JSON), SigMF 1.2 metadata of a non-conforming dataset (the audio file) with the
project's ``gla`` extension declared (:mod:`receiver.contracts.sigmf_layout`)::

    {
      "global": {
        "core:datatype": "ri32_le" | "ri16_le" | "rf32_le" | "rf64_le",  # as samples are read
        "core:sample_rate": 48000.0,
        "core:num_channels": 12,
        "core:version": "1.2.6",
        "core:description": "...",
        "core:dataset": "<stem>.wav",                   # the audio file, next to the sidecar
        "core:extensions": [{"name": "gla", "version": "1.0.0", "optional": false}],
        "gla:scale": 0.25,                              # file value = per-unit current * scale
        "gla:grid_hz": 60.0,
        "gla:subtype": "PCM_24", "gla:format": "WAV" | "RF64" | "W64" | "FLAC",
        "gla:num_frames": 480000,
        "gla:clipped_samples": 0, "gla:peak_abs": 0.43,  # after scaling
        "gla:sha256": "<hex digest of the audio file>",
        "gla:channels": [{"index": 0, "bus": 0, "feeder": 0, "feeder_in_bus": 0, "phase": "A",
                          "ct_polarity": 1}, ...],
        ... meta_extra ...
      },
      "captures": [{"core:sample_start": 0, "core:datetime": "2025-03-03T14:00:00.000000Z"}],
      "annotations": []
    }

A real SigMF recording (``STEM.sigmf-data``, no ``core:dataset``) is read too, with any real
datatype libsndfile reads raw; its ``gla`` keys are optional (defaults: ``gla:scale`` 1,
``gla:grid_hz`` 60, each input its own feeder phase on bus 0). Old sidecars (``gla:channels`` at
the top level, ``ri24_le``) are upgraded in memory when read.

Ground truth (``<stem>.truth.json``): ``{"capture": {...}, "transmissions": [{...}, ...]}``.

A capture is named by its stem or any of its files, as SigMF names a recording: ``STEM``,
``STEM.sigmf-meta``, ``STEM.sigmf-data``, the audio file or the truth file. Every problem with a
capture a user names (missing or misnamed, a sidecar that is not JSON or fails a check, an audio
file that disagrees with it, cannot be opened or read, a checksum mismatch) raises
:class:`CaptureError`, a ValueError whose message is one line naming the file and what is wrong;
``gla`` prints it without a traceback. Naming and the JSON reading live in
:mod:`receiver.contracts.capture_paths`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import soundfile as sf

from receiver.contracts.capture_paths import (
    DATA_SUFFIX,
    META_SUFFIX,
    TRUTH_SUFFIX,
    CaptureError,
    capture_stem,
    load_json,
    os_reason,
    sidecar_path,
)
from receiver.contracts.capture_truth import jsonable, read_truth, write_truth
from receiver.contracts.sigmf_data import RawRecording
from receiver.contracts.sigmf_layout import (
    DEFAULTS,
    SIGMF_VERSION,
    default_channels,
    is_old_layout,
    ncd_datatype,
    raw_subtype,
    upgrade_sidecar,
)

__all__ = [
    "DATA_SUFFIX",
    "META_SUFFIX",
    "SIGMF_VERSION",
    "TRUTH_SUFFIX",
    "CaptureError",
    "CaptureMeta",
    "capture_stem",
    "check_sha256",
    "jsonable",
    "open_capture",
    "read_capture_meta",
    "read_truth",
    "write_truth",
]

#: The phases of a three-phase input, in the order of the channel table's ``phase`` values.
PHASES = ("A", "B", "C")

#: soundfile subtype -> (SigMF datatype it is read as, bytes per sample on disk, integer?)
SUBTYPES: dict[str, tuple[str, int, bool]] = {
    st: (ncd_datatype(st), nbytes, integer)
    for st, nbytes, integer in (
        ("PCM_16", 2, True),
        ("PCM_24", 3, True),
        ("PCM_32", 4, True),
        ("FLOAT", 4, False),
        ("DOUBLE", 8, False),
    )
}
#: libsndfile RAW subtype of a SigMF recording -> bytes per sample
RAW_BYTES = {"PCM_S8": 1, "PCM_U8": 1, "PCM_16": 2, "PCM_U16": 2, "PCM_32": 4, "PCM_U32": 4, "FLOAT": 4, "DOUBLE": 8}
_MISSING = object()
#: container -> file suffix
FORMATS: dict[str, str] = {"WAV": ".wav", "RF64": ".wav", "W64": ".w64", "FLAC": ".flac"}
WAV_LIMIT_BYTES = (1 << 32) - 1  #: RIFF sizes are 32-bit
WAV_HEADER_RESERVE = 4096
MAX_WAV_CHANNELS = 8
MAX_FLAC_CHANNELS = 8
MAX_SAMPLE_RATE_HZ = (1 << 31) - 1  #: libsndfile keeps the rate in a C int
MAX_SIDECAR_BYTES = 64 << 20  #: a sidecar is a few kB; refuse to read gigabytes as one


# ---------------------------------------------------------------------------------- helpers
def iso_utc(t: datetime | str | None) -> str:
    if t is None:
        t = datetime.now(UTC)
    if isinstance(t, str):
        t = _parse_iso(t, "start_time_utc")
    if t.tzinfo is None:
        raise ValueError("start_time_utc must be timezone-aware (UTC)")
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_iso(s: str, what: str) -> datetime:
    try:
        t = datetime.fromisoformat(s.replace("Z", "+00:00") if s.endswith("Z") else s)
    except (TypeError, ValueError) as e:
        why = f" ({e})" if "range" in str(e) else " (years 1 to 9999)"
        raise ValueError(f"{what}: not an ISO 8601 time: {s!r}{why}") from e
    if t.tzinfo is None:
        raise ValueError(f"{what}: ISO time without a timezone: {s!r}")
    try:
        return t.astimezone(UTC)
    except OverflowError as e:
        raise ValueError(f"{what}: {s!r} is out of range in UTC (years 1 to 9999)") from e


def sha256_file(path: Path, algo: str = "sha256") -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_json_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, allow_nan=False) + "\n")
    os.replace(tmp, path)


GLA_KEYS = {
    "gla:scale",
    "gla:grid_hz",
    "gla:subtype",
    "gla:format",
    "gla:num_frames",
    "gla:clipped_samples",
    "gla:peak_abs",
    "gla:sha256",
    "gla:channels",
}


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
    sha256: str | None  #: None: a SigMF recording without gla:sha256
    start_time_utc: datetime
    channels: list[dict]
    raw: dict = field(repr=False)  #: the sidecar in the current layout (an old one upgraded)
    endian: str = "FILE"  #: byte order of a ``.sigmf-data`` file (``format == "RAW"``)
    sha512: str | None = None  #: SigMF's own checksum (``core:sha512``), if the sidecar has one

    @property
    def duration_s(self) -> float:
        return self.n_frames / self.fs_hz


def read_capture_meta(stem_or_path: str | os.PathLike) -> CaptureMeta:
    """Read and validate ``<stem>.sigmf-meta``; CaptureError names the file and the bad key.

    Reads the current layout, old-layout sidecars (upgraded in memory, see
    :func:`receiver.contracts.sigmf_layout.upgrade_sidecar`) and real SigMF recordings
    (``STEM.sigmf-data``, the gla extension optional: :data:`~receiver.contracts.sigmf_layout.DEFAULTS`).
    """
    path = sidecar_path(stem_or_path)
    stem = path.with_name(path.name[: -len(META_SUFFIX)])
    raw = load_json(path, MAX_SIDECAR_BYTES)

    def bad(key: str, what: str) -> CaptureError:
        return CaptureError(f"{path}: {key}: {what}")

    def get(obj: dict, key: str, where: str, types, check=None, what: str = "", default: Any = _MISSING):
        if key not in obj:
            if default is not _MISSING:
                return default
            raise bad(f"{where}{key}", "missing")
        v = obj[key]
        if isinstance(v, bool) or not isinstance(v, types) or (check is not None and not check(v)):
            raise bad(f"{where}{key}", f"{what or 'wrong type'}, got {v!r}")
        return v

    if not isinstance(raw, dict):
        raise bad("(top level)", "must be a JSON object")
    if is_old_layout(raw):  # its audio file was STEM + the container's suffix unless named
        fmt_old = raw["global"].get("gla:format") if isinstance(raw.get("global"), dict) else None
        raw = upgrade_sidecar(raw, stem.name + FORMATS[fmt_old] if fmt_old in FORMATS else None)
    g = get(raw, "global", "", dict)
    w = "global."
    datatype = get(g, "core:datatype", w, str)
    fs = get(
        g,
        "core:sample_rate",
        w,
        (int, float),
        lambda v: 0 < v <= MAX_SAMPLE_RATE_HZ and float(v).is_integer(),
        f"must be a positive whole number of Hz up to {MAX_SAMPLE_RATE_HZ}",
    )
    nch = get(g, "core:num_channels", w, int, lambda v: v >= 1, "must be an integer >= 1", default=1)
    get(g, "core:version", w, str)
    get(g, "core:description", w, str, default="")
    # a SigMF recording (STEM.sigmf-data) may lack the gla extension: DEFAULTS; a non-conforming
    # dataset (core:dataset: the audio file) needs it (declared optional: false)
    recording = "core:dataset" not in g
    scale = get(
        g,
        "gla:scale",
        w,
        (int, float),
        lambda v: v > 0 and math.isfinite(v),
        "must be a positive number",
        default=DEFAULTS["gla:scale"] if recording else _MISSING,
    )
    grid_default = DEFAULTS["gla:grid_hz"] if recording else _MISSING
    grid = get(g, "gla:grid_hz", w, (int, float), lambda v: v in (50, 60), "must be 50 or 60", grid_default)
    hex_digits = "must be 64 lowercase hex digits"
    is_hex = lambda v: len(v) == 64 and all(c in "0123456789abcdef" for c in v)  # noqa: E731
    frames_check = (lambda v: v >= 0, "must be an integer >= 0")
    endian = "FILE"
    if recording:  # a SigMF recording: STEM.sigmf-data holds the samples
        try:
            subtype, endian = raw_subtype(datatype)
        except ValueError as e:
            raise bad(w + "core:datatype", str(e)) from e
        fmt = "RAW"
        audio = stem.with_name(stem.name + DATA_SUFFIX)
        sha = get(g, "gla:sha256", w, str, is_hex, hex_digits, default=None)
        frames = get(g, "gla:num_frames", w, int, *frames_check, default=None)
        if frames is None:
            try:
                size = audio.stat().st_size
            except OSError as e:
                raise CaptureError(f"{audio}: the recording's data file: {os_reason(e)}") from e
            frames = size // (nch * RAW_BYTES[subtype])
    else:  # a non-conforming dataset: the audio file core:dataset names, described by gla keys
        subtype = get(g, "gla:subtype", w, str, lambda v: v in SUBTYPES, f"must be one of {sorted(SUBTYPES)}")
        if datatype != SUBTYPES[subtype][0]:
            raise bad(
                w + "core:datatype",
                f"{datatype!r} does not match gla:subtype {subtype!r} (expected {SUBTYPES[subtype][0]!r})",
            )
        fmt = get(g, "gla:format", w, str, lambda v: v in FORMATS, f"must be one of {sorted(FORMATS)}")
        sha = get(g, "gla:sha256", w, str, is_hex, hex_digits)
        frames = get(g, "gla:num_frames", w, int, *frames_check)
        dataset = g["core:dataset"]
        if not isinstance(dataset, str) or not dataset or "/" in dataset or "\\" in dataset:
            raise bad(w + "core:dataset", f"must be a file name next to the sidecar, got {dataset!r}")
        audio = path.with_name(dataset)

    caps = get(
        raw,
        "captures",
        "",
        list,
        lambda v: len(v) >= 1,
        "must hold a segment with core:datetime (bundles are stamped with UTC time)",
    )
    if not isinstance(caps[0], dict):
        raise bad("captures[0]", "must be an object")
    get(caps[0], "core:sample_start", "captures[0].", int, lambda v: v == 0, "must be 0")
    dt = get(caps[0], "core:datetime", "captures[0].", str)
    try:
        start = _parse_iso(dt, "core:datetime")
    except ValueError as e:
        raise bad("captures[0].core:datetime", str(e).removeprefix("core:datetime: ")) from e
    try:
        start + timedelta(seconds=frames / fs)
    except OverflowError as e:
        raise bad("captures[0].core:datetime", f"{dt!r}: the capture would end after the year 9999") from e
    get(raw, "annotations", "", list)

    chans = get(
        g,
        "gla:channels",
        w,
        list,
        lambda v: len(v) == nch,
        f"must list {nch} channels (core:num_channels)",
        default=None if recording else _MISSING,
    )
    if chans is None:
        chans = default_channels(nch)
    for i, c in enumerate(chans):
        where = f"{w}gla:channels[{i}]."
        if not isinstance(c, dict):
            raise bad(f"{w}gla:channels[{i}]", "must be an object")
        get(c, "index", where, int, lambda v, i=i: v == i, f"must be {i}")
        get(c, "bus", where, int, lambda v: v >= 0, "must be an integer >= 0")
        get(c, "feeder", where, int, lambda v: v >= 0, "must be an integer >= 0")
        get(c, "phase", where, str, lambda v: v in PHASES, "must be 'A', 'B' or 'C'")
        get(c, "ct_polarity", where, int, lambda v: v in (-1, 1), "must be 1 or -1")
    sha512 = g.get("core:sha512")

    return CaptureMeta(
        meta_path=path,
        audio_path=audio,
        fs_hz=int(fs),
        n_channels=nch,
        n_frames=frames,
        scale=float(scale),
        grid_hz=float(grid),
        subtype=subtype,
        format=fmt,
        sha256=sha,
        start_time_utc=start,
        channels=chans,
        raw=raw,
        endian=endian,
        sha512=sha512 if isinstance(sha512, str) else None,
    )


def check_sha256(meta: CaptureMeta) -> str:
    """Hash the audio file and compare with ``gla:sha256`` (or SigMF's ``core:sha512`` when a
    recording has only that); the digest, or CaptureError."""
    _check_audio_path(meta)
    key, want, algo = "gla:sha256", meta.sha256, "sha256"
    if want is None:
        if meta.sha512 is None:
            raise CaptureError(f"{meta.meta_path}: no checksum to verify (neither gla:sha256 nor core:sha512)")
        key, want, algo = "core:sha512", meta.sha512, "sha512"
    try:
        digest = sha256_file(meta.audio_path, algo)
    except OSError as e:
        raise CaptureError(f"{meta.audio_path}: cannot read the audio file: {os_reason(e)}") from e
    if digest != want:
        raise CaptureError(
            f"{meta.audio_path}: {algo.upper().replace('SHA', 'SHA-')} {digest} does not match "
            f"the sidecar's {key} {want} "
            "(the file was changed, damaged or cut short)"
        )
    return digest


def _check_audio_path(meta: CaptureMeta) -> None:
    ap = meta.audio_path
    if ap.is_dir():
        raise CaptureError(f"{ap}: is a directory, not the audio file named by {meta.meta_path.name}")
    if not ap.exists():
        raise CaptureError(f"{ap}: audio file named by {meta.meta_path.name} not found")


def open_capture(
    stem_or_path: str | os.PathLike, *, verify_sha256: bool = False, allow_truncated: bool = False
) -> tuple[sf.SoundFile | RawRecording, CaptureMeta]:
    """Open a capture for reading: ``(soundfile.SoundFile, CaptureMeta)``.

    Checks the audio file against the sidecar (channels, sample rate, subtype, container,
    frame count; the SHA-256 too with ``verify_sha256``, before anything else) and raises
    CaptureError naming the file when they disagree or the file is truncated or corrupt.
    ``allow_truncated`` lets a file with fewer frames than the sidecar says through (the caller
    compares ``f.frames`` with ``meta.n_frames``). The caller closes the SoundFile.
    """
    meta = read_capture_meta(stem_or_path)
    ap = meta.audio_path
    _check_audio_path(meta)
    if verify_sha256:
        check_sha256(meta)
    try:
        if meta.format == "RAW":  # a SigMF recording: headerless interleaved samples
            datatype = meta.raw["global"]["core:datatype"]
            f = RawRecording(ap, datatype, meta.subtype, meta.n_channels, meta.fs_hz)
        else:
            f = sf.SoundFile(str(ap), mode="r")
    except (sf.SoundFileError, RuntimeError, OSError) as e:
        try:
            size = ap.stat().st_size
            with open(ap, "rb"):
                pass
        except OSError as e2:
            raise CaptureError(f"{ap}: cannot open the audio file: {os_reason(e2)}") from e
        why = "empty file" if size == 0 else getattr(e, "error_string", None) or str(e)
        raise CaptureError(f"{ap}: cannot open the audio file (corrupt or truncated?): {why}") from e
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
        if f.frames < meta.n_frames and not (allow_truncated and not problems):
            problems.append(f"truncated: {f.frames} frames, the sidecar says {meta.n_frames}")
        elif f.frames > meta.n_frames:
            problems.append(f"{f.frames} frames, the sidecar says {meta.n_frames}")
        if problems:
            raise CaptureError(f"{ap}: " + "; ".join(problems))
    except BaseException:
        f.close()
        raise
    return f, meta
