"""Naming a capture and reading its JSON files, with the one error type users see.

A capture is named as SigMF names a recording: by its stem, ``STEM.sigmf-meta``,
``STEM.sigmf-data``, its audio file or its truth file (:func:`capture_stem`).
:func:`sidecar_path` finds the sidecar a user's name points at, or says in one line what is there
instead; :func:`load_json` reads a sidecar or truth file and names the line and column of a
syntax error. Every refusal is a :class:`CaptureError`; :mod:`receiver.contracts.capture`
re-exports it with the rest of the capture contract (``docs/capture-format.md``).
"""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path
from typing import Any

__all__ = ["CaptureError", "capture_stem", "load_json", "os_reason", "sidecar_path"]

META_SUFFIX = ".sigmf-meta"
DATA_SUFFIX = ".sigmf-data"  #: SigMF's name for the recording's data file; names the capture too
TRUTH_SUFFIX = ".truth.json"
_AUDIO_SUFFIXES = {".wav", ".rf64", ".w64", ".flac"}


class CaptureError(ValueError):
    """A capture cannot be used as given; the message is one line naming the file and why."""


def os_reason(e: OSError) -> str:
    """``permission denied`` / ``is a directory`` ... from an OSError, without the path again."""
    return (e.strerror or type(e).__name__).lower()


def capture_stem(stem_or_path: str | os.PathLike) -> Path:
    """Capture stem from a stem, a sidecar, a truth file or an audio file path."""
    p = Path(stem_or_path)
    name = p.name
    for suf in (META_SUFFIX, DATA_SUFFIX, TRUTH_SUFFIX):
        if name.endswith(suf):
            return p.with_name(name[: -len(suf)])
    if p.suffix.lower() in _AUDIO_SUFFIXES:
        return p.with_suffix("")
    return p


def _hint(folder: Path, name: str) -> str:
    """What is there instead: `` (x.wav is there without its sidecar)`` or `` (captures there: a, b)``."""
    try:
        names = sorted(q.name for q in folder.iterdir())
    except OSError:
        return ""
    orphans = [n for n in names if n.startswith(name + ".") and Path(n).suffix.lower() in _AUDIO_SUFFIXES]
    if name and orphans:
        return f" ({orphans[0]} is there without its sidecar)"
    stems = [n[: -len(META_SUFFIX)] for n in names if n.endswith(META_SUFFIX)]
    if not stems:
        return " (no captures there)"
    near = difflib.get_close_matches(name, stems, n=3, cutoff=0.5)
    near += [x for x in difflib.get_close_matches(name.split(".")[0], stems, n=3, cutoff=0.5) if x not in near]
    near = near[:3] or stems[:3]
    more = f", {len(stems) - len(near)} more" if len(stems) > len(near) else ""
    return f" (captures there: {', '.join(near)}{more})"


def sidecar_path(stem_or_path: str | os.PathLike) -> Path:
    """The sidecar a user's capture name points at; CaptureError if there is none."""
    given = Path(stem_or_path)
    how = f"a capture is named by its stem, STEM{META_SUFFIX}, STEM{DATA_SUFFIX} or its audio file"
    if given.is_dir() and not given.name.endswith(META_SUFFIX):
        raise CaptureError(f"{given}: is a directory; {how}{_hint(given, '')}")
    if given.suffix == ".sigmf" and given.is_file():
        raise CaptureError(f"{given}: a SigMF archive (tar); unpack it and name the capture in it")
    stem = capture_stem(given)
    path = stem.with_name(stem.name + META_SUFFIX)
    if path.is_dir():
        raise CaptureError(f"{path}: is a directory, not a capture sidecar")
    if not path.exists():
        named = "" if path == given else f" (looked for {path.name})"
        raise CaptureError(f"{given}: capture sidecar not found{named}; {how}{_hint(path.parent, stem.name)}")
    return path


def load_json(path: Path, limit_bytes: int | None = None) -> Any:
    """The JSON value in ``path``; CaptureError naming the file, line and column otherwise."""
    try:
        size = path.stat().st_size
        if limit_bytes is not None and size > limit_bytes:
            raise CaptureError(f"{path}: {size} bytes, too large for a sidecar (limit {limit_bytes})")
        data = path.read_bytes()
    except OSError as e:
        raise CaptureError(f"{path}: cannot read the file: {os_reason(e)}") from e
    if not data.strip():
        raise CaptureError(f"{path}: empty file, not JSON")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CaptureError(f"{path}: not JSON (not UTF-8 text: byte {data[e.start]:#04x} at offset {e.start})") from e
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise CaptureError(f"{path}: not JSON (line {e.lineno}, column {e.colno}: {e.msg})") from e
    except RecursionError as e:
        raise CaptureError(f"{path}: not JSON this reader accepts (nested too deeply)") from e
