"""`gla` explains itself: every option of every command has help text and shows its default,
``--out`` is a folder wherever a command writes files, ``gla --version`` comes from the package
metadata, and the exit statuses (0 done, 1 failed work, 2 bad usage) are documented in every
``--help`` and given as documented."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest

from gridsim.capture import CaptureWriter
from receiver.cli import EXIT_CODES, build_parser, main

ROOT = Path(__file__).resolve().parents[1]
FLAGS = (argparse._StoreTrueAction, argparse._CountAction, argparse._HelpAction, argparse._VersionAction)


def _commands() -> dict[str, argparse.ArgumentParser]:
    p = build_parser()
    (sub,) = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
    return {"": p, **sub.choices}


def _help_of(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """The text ``--help`` prints for ``action`` (its invocation and help, joined over lines)."""
    f = parser._get_formatter()
    f.add_argument(action)
    return " ".join(f.format_help().split())


@pytest.mark.parametrize("name", list(_commands()))
def test_every_option_says_what_it_does_and_its_default(name):
    parser = _commands()[name]
    seen = 0
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            continue
        text = _help_of(parser, a)
        assert a.help and len(a.help) > 8, f"gla {name} {a.option_strings or a.dest}: no help text"
        seen += 1
        if not a.option_strings or isinstance(a, FLAGS) or a.required:
            continue
        assert "default" in text, f"gla {name} {a.option_strings}: the help does not show the default: {text}"
        if a.default not in (None, argparse.SUPPRESS):
            assert f"(default: {a.default})" in text or "default:" in text, text
    assert seen
    page = parser.format_help()
    assert "exit status:" in page and "2    bad usage" in page


@pytest.mark.parametrize("name", [n for n in _commands() if n])
def test_out_is_a_folder_wherever_it_is_an_option(name):
    parser = _commands()[name]
    for a in parser._actions:
        if "--out" in a.option_strings:
            assert a.metavar == "FOLDER" and "folder" in a.help.lower()


def test_version_comes_from_the_package_metadata(capsys):
    with pytest.raises(SystemExit) as ei:
        main(["--version"])
    assert ei.value.code == 0
    assert capsys.readouterr().out.strip() == f"gla {version('gla-receiver')}"


def test_the_exit_statuses_are_documented():
    doc = (ROOT / "docs" / "cli.md").read_text()
    for status in ("0", "1", "2", "130"):
        assert re.search(rf"^\|\s*{status}\s*\|", doc, re.M), f"docs/cli.md: exit status {status} missing"
    assert "0    the work was done" in EXIT_CODES


@pytest.fixture
def cap(tmp_path) -> Path:
    stem = tmp_path / "c"
    with CaptureWriter(stem, 48000, 2, [(0, 0, 0), (0, 0, 1)], start_time_utc="2025-03-03T14:00:00Z") as w:
        w.write(0.01 * np.random.default_rng(1).standard_normal((4800, 2)))
    return stem


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        rc = main(list(argv))
    except SystemExit as e:  # argparse's own refusals
        rc = int(e.code or 0)
    out, err = capsys.readouterr()
    return rc, out, err


def test_status_0_the_work_was_done(cap, tmp_path, capsys):
    rc, out, err = _run(capsys, "replay", str(cap), "--workers", "0", "--no-progress", "--out", str(tmp_path / "o"))
    assert rc == 0, err
    assert (tmp_path / "o" / "replay.json").exists()


def test_status_1_the_work_failed(cap, capsys):
    wav = cap.with_name("c.wav")
    with open(wav, "r+b") as fh:
        fh.truncate(wav.stat().st_size - 1)
    rc, out, err = _run(capsys, "replay", str(cap), "--workers", "0", "--no-progress")
    assert rc == 1 and out.startswith("replayed")  # what was readable is decoded and kept
    (line,) = [ln for ln in err.splitlines() if ln.startswith("gla replay: error:")]
    assert "truncated" in line


@pytest.mark.parametrize(
    "argv,pattern",
    [
        (["replay"], r"the following arguments are required: capture"),
        (["replay", "CAP", "--no-such-option"], r"unrecognized arguments: --no-such-option"),
        (["replay", "CAP", "--import-truth"], r"--import-truth: needs --post URL"),
        (["replay", "CAP", "--out", "OUT_OF_ANOTHER"], r"holds another replay \(receiver_id 'rx-other'"),
        (["simulate", "--out", "O", "--duration", "0"], r"must be a positive number"),
    ],
    ids=["missing-argument", "unknown-option", "import-without-post", "out-of-another-replay", "bad-number"],
)
def test_status_2_bad_usage_in_one_line(cap, tmp_path, capsys, argv, pattern):
    other = tmp_path / "other"
    if "OUT_OF_ANOTHER" in argv:  # a folder holding the replay of another receiver id
        main(["replay", str(cap), "--workers", "0", "--no-progress", "--receiver-id", "rx-other", "--out", str(other)])
        capsys.readouterr()
    subst = {"CAP": str(cap), "OUT_OF_ANOTHER": str(other), "O": str(tmp_path / "o")}
    rc, out, err = _run(capsys, *[subst.get(a, a) for a in argv])
    assert rc == 2
    assert "Traceback" not in err
    assert re.search(pattern, err), err
    assert len([ln for ln in err.splitlines() if "error:" in ln]) == 1


def test_simulate_writes_into_the_out_folder(tmp_path, capsys):
    rc, out, err = _run(
        capsys,
        "simulate",
        "--scenario",
        "demo_small",
        "--duration",
        "0.2",
        "--out",
        str(tmp_path / "sim"),
        "--show",
        "0",
        "--no-progress",
    )
    assert rc == 0, err
    names = sorted(p.name for p in (tmp_path / "sim").iterdir())
    assert names == ["demo_small.sigmf-meta", "demo_small.truth.json", "demo_small.wav"]


def test_a_process_shows_no_traceback_unless_debug(tmp_path):
    def gla(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "receiver.cli", *argv], cwd=ROOT, capture_output=True, text=True, timeout=120
        )

    p = gla("replay", str(tmp_path / "missing"))
    assert p.returncode == 2 and "Traceback" not in p.stderr and p.stderr.count("\n") == 1
    p = gla("--debug", "replay", str(tmp_path / "missing"))
    assert p.returncode == 2 and "Traceback" in p.stderr


def test_a_platform_refusing_its_admin_credential_is_one_line_and_status_2(tmp_path):
    empty = tmp_path / "admin-token"
    empty.write_text("\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GLA_")}
    env["GLA_ADMIN_TOKEN_FILE"] = str(empty)
    p = subprocess.run(  # a process: the platform sets up logging for itself
        [sys.executable, "-m", "receiver.cli", "platform", "--database-url", f"sqlite:///{tmp_path / 'p.db'}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 2 and "Traceback" not in p.stderr
    (line,) = [ln for ln in p.stderr.splitlines() if "error:" in ln]
    assert line.startswith(f"gla platform: error: admin token file {empty}: must hold one token")
