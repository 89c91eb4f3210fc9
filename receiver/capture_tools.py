"""``gla capture``: work on a capture's files without decoding it.

    gla capture upgrade STEM [STEM ...]   rewrite old-layout sidecars as SigMF 1.2 metadata
    gla capture check STEM [STEM ...]     read and check sidecars (and, with --sha256, the audio)

``upgrade`` moves ``gla:channels`` into ``global``, replaces ``ri24_le`` by the legal datatype the
samples are read as and declares the ``gla`` extension (:mod:`receiver.contracts.sigmf_layout`).
The audio file is not touched: its ``gla:sha256`` stays valid. A sidecar already in the current
layout is left as it is. The receiver reads old sidecars as well; upgrading makes them pass
SigMF's own validator.
"""

from __future__ import annotations

import argparse
import json

from receiver.contracts.capture import check_sha256, read_capture_meta, write_json_atomic
from receiver.contracts.capture_paths import load_json, sidecar_path
from receiver.contracts.sigmf_layout import is_old_layout, upgrade_sidecar

__all__ = ["add_parser", "upgrade"]


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
