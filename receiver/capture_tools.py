"""``gla capture``: work on a capture's files without decoding it.

    gla capture upgrade STEM [STEM ...]   rewrite old-layout sidecars as SigMF 1.2 metadata
    gla capture check STEM [STEM ...]     read and check sidecars (and, with --sha256, the audio)
    gla capture export STEM --out FOLDER  write a conforming SigMF recording (rf32_le .sigmf-data)

``upgrade`` moves ``gla:channels`` into ``global``, replaces ``ri24_le`` by the legal datatype the
samples are read as and declares the ``gla`` extension (:mod:`receiver.contracts.sigmf_layout`).
The audio file is not touched: its ``gla:sha256`` stays valid. A sidecar already in the current
layout is left as it is. The receiver reads old sidecars as well; upgrading makes them pass
SigMF's own validator.

``export`` writes ``FOLDER/STEM.sigmf-data`` + ``FOLDER/STEM.sigmf-meta``: the file values as
32-bit floats (exact for 16- and 24-bit captures), the sidecar's ``gla`` keys (scale, grid,
channel map, ...) with the extension declared optional, ``core:sha512`` of the data: a recording
any SigMF reader maps, which ``gla replay`` decodes to the same bundles as the capture. The
ground truth (``STEM.truth.json``), if there is one, is copied beside it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np

from receiver.contracts.capture import check_sha256, open_capture, read_capture_meta, write_json_atomic
from receiver.contracts.capture_paths import (
    DATA_SUFFIX,
    META_SUFFIX,
    TRUTH_SUFFIX,
    CaptureError,
    load_json,
    sidecar_path,
)
from receiver.contracts.sigmf_layout import GLA_EXTENSION, GLA_EXTENSION_VERSION, is_old_layout, upgrade_sidecar

__all__ = ["add_parser", "export", "upgrade"]

#: sidecar keys that describe the non-conforming audio file, not a .sigmf-data recording
_CONTAINER_KEYS = {"core:dataset", "core:extensions", "gla:subtype", "gla:format", "gla:sha256", "gla:num_frames"}
_EXPORT_BLOCK_FRAMES = 1 << 16


def upgrade(stem: str) -> bool:
    """Rewrite ``STEM.sigmf-meta`` in the current layout if it is an old one; True if rewritten.
    The sidecar is checked first (read_capture_meta), so a broken one is refused, not rewritten."""
    meta = read_capture_meta(stem)
    path = sidecar_path(stem)
    raw = load_json(path)
    if not isinstance(raw, dict) or not is_old_layout(raw):
        return False
    write_json_atomic(path, upgrade_sidecar(raw, meta.audio_path.name))
    return True


def export(stem: str, out: str | Path) -> Path:
    """Write the capture as a conforming SigMF recording in ``out``; returns the new sidecar.
    Refuses to overwrite (CaptureError) and checks the audio file against its gla:sha256 first."""
    meta = read_capture_meta(stem)
    if meta.sha256 is not None or meta.sha512 is not None:
        check_sha256(meta)
    f, meta = open_capture(stem)
    folder = Path(out)
    name = meta.meta_path.name[: -len(META_SUFFIX)]
    data, side = folder / (name + DATA_SUFFIX), folder / (name + META_SUFFIX)
    with f:
        for p in (data, side):
            if p.exists():
                raise CaptureError(f"{p}: already exists; export into another --out folder")
        folder.mkdir(parents=True, exist_ok=True)
        h = hashlib.sha512()
        tmp = data.with_name(data.name + ".tmp")
        with open(tmp, "wb") as w:
            f.seek(0)
            while True:
                y = f.read(_EXPORT_BLOCK_FRAMES, dtype="float32", always_2d=True)
                if y.shape[0] == 0:
                    break
                b = np.ascontiguousarray(y, dtype="<f4").tobytes()
                h.update(b)
                w.write(b)
        tmp.replace(data)
    g = {k: v for k, v in meta.raw["global"].items() if k not in _CONTAINER_KEYS}
    g.update(
        {
            "core:datatype": "rf32_le",
            "core:sha512": h.hexdigest(),
            "core:extensions": [{"name": GLA_EXTENSION, "version": GLA_EXTENSION_VERSION, "optional": True}],
            "gla:channels": meta.channels,
        }
    )
    rest = {k: v for k, v in meta.raw.items() if k not in ("global", "annotations")}
    write_json_atomic(side, {"global": g, **rest, "annotations": []})
    truth = meta.meta_path.with_name(name + TRUTH_SUFFIX)
    if truth.is_file():  # a simulated capture's ground truth, so that the replay is scored too
        shutil.copyfile(truth, folder / truth.name)
    return side


def _cmd_export(args: argparse.Namespace) -> int:
    side = export(args.capture, args.out)
    print(f"{side.with_suffix(DATA_SUFFIX)} + {side.name}: a SigMF recording (rf32_le)")
    return 0


def _cmd_upgrade(args: argparse.Namespace) -> int:
    for stem in args.captures:
        done = upgrade(stem)
        print(f"{sidecar_path(stem)}: {'upgraded to SigMF 1.2' if done else 'already current'}")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    for stem in args.captures:
        m = read_capture_meta(stem)
        if args.sha256:
            check_sha256(m)
        what = "SigMF recording" if m.format == "RAW" else f"{m.format} {m.subtype}"
        old = ", old layout (gla capture upgrade)" if is_old_layout(json.loads(m.meta_path.read_text())) else ""
        print(f"{m.meta_path}: ok: {m.n_channels} inputs x {m.duration_s:.1f} s at {m.fs_hz} Hz, {what}{old}")
    return 0


def add_parser(sub: argparse._SubParsersAction, add, parents: list) -> None:
    """Add ``gla capture {upgrade,check}`` to the CLI (``add`` is the CLI's parser factory)."""
    c = add(
        sub,
        "capture",
        parents=parents,
        help="check or upgrade a capture's sidecar",
        description="Check a capture's sidecar, or rewrite an old-layout one as SigMF 1.2 metadata (the audio "
        "file is not touched; its gla:sha256 stays valid).",
    )
    cs = c.add_subparsers(dest="capture_command", required=True, metavar="ACTION")
    u = add(cs, "upgrade", parents=parents, help="rewrite old-layout sidecars as SigMF 1.2 metadata")
    u.add_argument("captures", nargs="+", metavar="STEM", help="capture stem or any of its files")
    u.set_defaults(func=_cmd_upgrade)
    k = add(cs, "check", parents=parents, help="read and check sidecars")
    k.add_argument("captures", nargs="+", metavar="STEM", help="capture stem or any of its files")
    k.add_argument("--sha256", action="store_true", help="hash the audio file too and compare with the sidecar")
    k.set_defaults(func=_cmd_check)
    e = add(cs, "export", parents=parents, help="write a conforming SigMF recording (rf32_le .sigmf-data)")
    e.add_argument("capture", metavar="STEM", help="capture stem or any of its files")
    e.add_argument("--out", required=True, metavar="FOLDER", help="folder for STEM.sigmf-data and STEM.sigmf-meta")
    e.set_defaults(func=_cmd_export)
