"""Capture files: hostile sidecars and audio files, read the way replay reads them.

A small good capture (3 inputs, 0.1 s, PCM_24 WAV written by :class:`gridsim.capture.CaptureWriter`)
is copied and spoiled (:func:`spoilt`): the sidecar's JSON with a value replaced (wrong type,
huge, negative, NaN, odd string), a key dropped, or its text truncated or replaced by garbage;
the audio file truncated (inside the header or the data), overwritten in places, replaced by
garbage, or missing. :func:`check_capture` then opens it with
:class:`receiver.sources.CaptureSource` (what ``gla replay`` runs), with and without
``verify_sha256``, and reads every block. Properties: the only exception is ValueError (the
project's capture errors, :class:`~receiver.sources.CaptureTruncatedError` included) and its
message names the capture's file; a capture cut inside its data still yields every whole frame
before the cut, unchanged.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import strategies as st

from . import Problem
from .http import get_at, paths, set_at

NAME, FS, NCH, FRAMES = "cap", 48000, 3, 4800
SIDECAR_VALUES: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from([float("nan"), float("inf"), -1, 0, 2**64, 10**30, True, None, "", "x", [], {}, 1.5]),
    st.integers(-(2**70), 2**70),
    st.text(max_size=30),
    st.floats(),
)


@cache
def template() -> tuple[Path, dict, np.ndarray]:
    """The good capture (written once per process): its directory, sidecar and samples as read."""
    import soundfile as sf

    from gridsim.capture import CaptureWriter
    from gridsim.channel import Layout

    d = Path(tempfile.mkdtemp(prefix="gla-hostile-capture-"))
    x = np.random.default_rng(3).normal(0, 0.05, (FRAMES, NCH))
    with CaptureWriter(d / NAME, FS, NCH, Layout(1, 1), start_time_utc="2026-11-22T00:00:00Z") as w:
        w.write(x)
    meta = json.loads((d / f"{NAME}.sigmf-meta").read_text())
    y, _ = sf.read(str(d / f"{NAME}.wav"), dtype="float64")
    return d, meta, y


@dataclass
class Spoilt:
    target: str  #: "sidecar" or "audio"
    how: str
    edit: Any  #: what to do (see apply)
    full_frames: int | None = None  #: audio cut in the data: whole frames still there

    def __repr__(self) -> str:
        return f"Spoilt({self.target}: {self.how})"


def _audio_layout() -> tuple[int, int]:
    d, _, _ = template()
    size = (d / f"{NAME}.wav").stat().st_size
    frame = NCH * 3
    return size - FRAMES * frame, frame  # data offset, bytes per frame


@st.composite
def spoilt(draw) -> Spoilt:
    _, meta, _ = template()
    kind = draw(st.sampled_from(["replace", "replace", "drop", "text", "truncate", "overwrite", "garbage", "missing"]))
    if kind in ("replace", "drop"):
        m = json.loads(json.dumps(meta))
        path = draw(st.sampled_from(paths(m)))
        if kind == "drop":
            del get_at(m, path[:-1])[path[-1]]
            how = f"sidecar: drop {'.'.join(map(str, path))}"
        else:
            v = draw(SIDECAR_VALUES)
            set_at(m, path, v)
            how = f"sidecar: {'.'.join(map(str, path))} = {str(v)[:40]!r}"
        return Spoilt("sidecar", how, json.dumps(m, allow_nan=True))
    if kind == "text":
        t = json.dumps(meta)
        if draw(st.booleans()):
            t = t[: draw(st.integers(0, len(t) - 1))]
            how = f"sidecar: cut to {len(t)} characters"
        else:
            t = draw(st.one_of(st.text(max_size=200), st.binary(max_size=200).map(lambda b: b.decode("latin-1"))))
            how = f"sidecar: replaced by {t[:40]!r}"
        return Spoilt("sidecar", how, t)
    off, frame = _audio_layout()
    size = off + FRAMES * frame
    if kind == "truncate":
        n = draw(st.integers(0, size - 1))
        full = (n - off) // frame if n >= off else None
        return Spoilt("audio", f"audio: cut to {n} of {size} bytes", ("cut", n), full)
    if kind == "overwrite":
        at = draw(st.integers(0, size - 1))
        b = draw(st.binary(min_size=1, max_size=64))
        return Spoilt("audio", f"audio: {len(b)} bytes overwritten at {at}", ("put", at, b))
    if kind == "garbage":
        b = draw(st.binary(max_size=2000))
        return Spoilt("audio", f"audio: replaced by {len(b)} random bytes", ("all", b))
    return Spoilt("audio", "audio: missing", ("missing",))


def _apply(s: Spoilt, d: Path) -> None:
    if s.target == "sidecar":
        (d / f"{NAME}.sigmf-meta").write_text(s.edit, encoding="utf-8", errors="surrogateescape")
        return
    p = d / f"{NAME}.wav"
    op = s.edit[0]
    if op == "missing":
        p.unlink()
    elif op == "all":
        p.write_bytes(s.edit[1])
    else:
        b = bytearray(p.read_bytes())
        if op == "cut":
            del b[s.edit[1] :]
        else:
            _, at, new = s.edit
            b[at : at + len(new)] = new
        p.write_bytes(bytes(b))


def read_all(stem: Path, verify: bool) -> np.ndarray:
    """Every block a replay would get, joined (file units: the samples times gla:scale)."""
    from receiver.sources import CaptureSource

    out = []
    with CaptureSource(stem, block_s=0.02, verify_sha256=verify) as src:
        scale = src.meta.scale
        for b in src:
            out.append(b.samples * scale)
    return np.concatenate(out) if out else np.zeros((0, NCH))


def check_capture(s: Spoilt) -> list[Problem]:
    from receiver.sources import CaptureTruncatedError

    src_dir, _, good = template()
    with tempfile.TemporaryDirectory(prefix="gla-hostile-") as tmp:
        d = Path(tmp)
        for f in src_dir.iterdir():
            shutil.copy(f, d / f.name)
        _apply(s, d)
        out: list[Problem] = []
        for verify in (False, True):
            try:
                read_all(d / NAME, verify)
            except (CaptureTruncatedError, ValueError) as e:
                if NAME not in str(e):
                    out.append(Problem("unclear_error", f"the error does not name the file: {e}"))
            except Exception as e:  # noqa: BLE001
                out.append(Problem("crash", f"verify_sha256={verify}: {type(e).__name__}: {e}"))
        if s.full_frames is not None and s.full_frames > 0:
            out += _check_prefix(d, s.full_frames, good)
        return out


def _check_prefix(d: Path, n: int, good: np.ndarray) -> list[Problem]:
    """A capture cut inside its data replays every whole frame before the cut, unchanged."""
    from receiver.sources import CaptureSource

    got = []
    try:
        with CaptureSource(d / NAME, block_s=0.02) as src:
            scale = src.meta.scale
            for b in src:
                got.append(b.samples * scale)
    except ValueError:
        pass  # the truncation error comes after the last good block
    y = np.concatenate(got) if got else np.zeros((0, NCH))
    if y.shape[0] < n or not np.allclose(y[:n], good[:n], atol=1e-6):
        return [Problem("lost", f"{y.shape[0]} frames replayed of the {n} whole frames before the cut")]
    return []
