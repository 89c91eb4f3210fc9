"""The receiver's spool and archive files torn or spoilt, then opened again as a restart does
(issue 17 item 8). Generators and properties: gridsim/hostile/spool.py."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from hypothesis import given

from gridsim.hostile import ci_settings, spool
from receiver.archive import read_archive
from receiver.cli import main as main_cli
from receiver.replay_post import OutFolder, identity
from receiver.spool import Spool, SpoolDamaged

DEMO = Path(__file__).resolve().parents[1] / "captures" / "demo_small"


@ci_settings(100)
@given(t=spool.wal_tears())
def test_a_torn_wal_keeps_every_acknowledged_bundle(t):
    assert spool.check_wal_torn(t) == []


@ci_settings(100)
@given(g=spool.archive_garbage(utf8=True))
def test_an_archive_garbage_line_is_refused_naming_file_and_line(g):
    assert spool.check_archive_garbage(g) == []


@ci_settings(100, shrink=False)
@given(t=spool.spoilt_files())
def test_a_spoilt_spool_refuses_naming_the_file_or_keeps_everything(t):
    assert spool.check_spoilt(t) == []


@ci_settings(100, shrink=False)
@given(cut=spool.archive_cuts())
def test_a_torn_archive_tail_is_repaired_on_restart(cut):
    assert spool.check_archive_torn(cut) == []


@ci_settings(100, shrink=False)
@given(g=spool.archive_garbage(utf8=False))
def test_a_non_utf8_archive_line_is_refused_naming_the_file(g):
    assert spool.check_archive_garbage(g) == []


def _spoilt_copy(tmp_path: Path, cut: int | None = None, data: bytes | None = None) -> Path:
    """The template spool (main file + WAL with frames) copied to ``tmp_path``, its main file cut
    at ``cut`` bytes or replaced by ``data``; returns the main file's path."""
    snap, _ = spool.spool_template()
    for f in snap.iterdir():
        shutil.copy(f, tmp_path / f.name)
    main = tmp_path / spool.SPOOL
    if cut is not None:
        main.write_bytes(main.read_bytes()[:cut])
    if data is not None:
        main.write_bytes(data)
    return main


@pytest.mark.parametrize("cut", [0, 1, 99])
def test_a_main_file_cut_to_nothing_beside_a_wal_is_refused_and_the_wal_kept(tmp_path, cut):
    """SQLite opens a 0-byte main file as an empty database even when its -wal holds committed
    frames: the spool must not start empty in its place (and must not touch the WAL)."""
    main = _spoilt_copy(tmp_path, cut=cut)
    wal = main.with_name(main.name + "-wal")
    before = wal.read_bytes()
    with pytest.raises(SpoolDamaged, match=re.escape(str(main)) + r": the spool file is damaged.*move .* aside"):
        Spool(main)
    assert wal.read_bytes() == before and main.stat().st_size == cut


def test_a_spool_failing_quick_check_is_refused_in_one_line(tmp_path):
    main = _spoilt_copy(tmp_path, cut=4096)
    with pytest.raises(SpoolDamaged) as e:
        Spool(main)
    assert "quick_check" in str(e.value) and str(main) in str(e.value) and "\n" not in str(e.value)


def test_a_damaged_spool_is_one_line_and_status_2_for_gla(tmp_path, capsys):
    """``gla replay --post`` opens the spool in its --out directory: a damaged one is one line
    naming the file and exit status 2, no traceback (the service's start-up goes the same way)."""
    out = tmp_path / "out"
    out.mkdir()
    main = _spoilt_copy(out, data=b"this is not a database" * 10)
    ident = identity(DEMO.with_suffix(".sigmf-meta"), DEMO.with_suffix(".wav"), receiver_id="rx-replay")
    OutFolder(out, {**ident, "substation_id": "sub-1", "duration_s": None}, None).start()  # this replay's folder
    argv = ["replay", str(DEMO), "--post", "http://127.0.0.1:9", "--token", "t", "--out", str(out), "--no-progress"]
    rc = main_cli(argv)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("gla replay: error: ") and str(main) in err


def test_read_archive_names_file_and_line_of_bad_utf8_and_bad_json(tmp_path):
    good = spool.archive_template().split(b"\n")
    p = tmp_path / "bundles-2026-11-22.jsonl"
    for bad, why in ((b'{"bundle_id": "\xff"}', "not UTF-8"), (b'{"bundle_id": ', "Invalid JSON")):
        p.write_bytes(b"\n".join([*good[:3], bad, *good[3:]]))
        with pytest.raises(ValueError, match=re.escape(f"{p}:4: not a bundle") + ".*" + why):
            read_archive(p)
