"""`gla` refuses a bad capture, or a bad argument, in one line on stderr, with no traceback.

Every way a user's capture can be wrong (missing or misnamed, a sidecar that is not JSON or has a
missing or wrong-typed field, a channel count or rate that does not fit, a date out of range, an
audio file that is empty, cut short, a directory, unreadable or in another sample format) gives
``gla replay: error: FILE: WHAT`` and exit status 2 (``--debug`` adds the traceback);
``gla replay --verify`` checks ``gla:sha256`` before decoding. Most cases run ``gla``'s ``main``
in-process; a few run it as a process, to see the interpreter's own output too.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from gridsim.capture import CaptureWriter
from receiver.cli import main
from receiver.contracts.capture import CaptureError, open_capture, read_capture_meta

ROOT = Path(__file__).resolve().parents[1]
FS_HZ = 48000
N_INPUTS = 3
N_FRAMES = 9600  # 0.2 s


def _write_capture(stem: Path, fs_hz: int = FS_HZ, start: str = "2025-03-03T14:00:00Z") -> Path:
    rng = np.random.default_rng(1)
    with CaptureWriter(
        stem, fs_hz, N_INPUTS, [(0, 0, p) for p in range(N_INPUTS)], start_time_utc=start, subtype="PCM_24"
    ) as w:
        w.write(0.01 * rng.standard_normal((N_FRAMES * fs_hz // FS_HZ, N_INPUTS)))
    return stem


@pytest.fixture
def cap(tmp_path) -> Path:
    """A good 3-input, 0.2 s capture: ``tmp_path/c.wav`` + ``c.sigmf-meta``; returns the stem."""
    return _write_capture(tmp_path / "c")


def _meta(stem: Path) -> Path:
    return stem.with_name(stem.name + ".sigmf-meta")


def _wav(stem: Path) -> Path:
    return stem.with_name(stem.name + ".wav")


def _edit_meta(stem: Path, edit) -> None:
    m = json.loads(_meta(stem).read_text())
    edit(m)
    _meta(stem).write_text(json.dumps(m))


def _set_datetime(value: str):
    return lambda stem: _edit_meta(stem, lambda m: m["captures"][0].update({"core:datetime": value}))


def _fewer_channels(m: dict) -> None:
    m["global"]["core:num_channels"] = 2
    m["global"]["gla:channels"] = m["global"]["gla:channels"][:2]


def _as_directory(path: Path) -> None:
    path.unlink()
    path.mkdir()


def _other_sample_format(stem: Path) -> None:  # a valid WAV, but 8-bit unsigned: not what the sidecar says
    x, fs = sf.read(str(_wav(stem)), always_2d=True)
    sf.write(str(_wav(stem)), x, fs, subtype="PCM_U8", format="WAV")


# (case id, how to spoil the capture (stem -> None), what to name on the command line, regex of the error)
BAD_CAPTURES = [
    ("missing", lambda s: None, lambda s: s.with_name("nothing"), r"nothing: capture sidecar not found"),
    ("misnamed", lambda s: None, lambda s: s.with_name("c.wa"), r"c\.wa: .*looked for c\.wa\.sigmf-meta.*there: c\b"),
    ("sidecar-missing", lambda s: _meta(s).unlink(), None, r"c: capture sidecar not found.*c\.wav is there without"),
    ("directory-given", lambda s: None, lambda s: s.parent, r": is a directory; a capture is named by its stem"),
    ("sigmf-archive", lambda s: s.with_name("c.sigmf").write_bytes(b"x"), lambda s: s.with_name("c.sigmf"), r"tar"),
    (
        "not-json",
        lambda s: _meta(s).write_text('{\n  "global": {\n    x\n'),
        None,
        r"c\.sigmf-meta: not JSON \(line 3, column 5",
    ),
    ("sidecar-empty", lambda s: _meta(s).write_text(""), None, r"c\.sigmf-meta: empty file"),
    ("sidecar-not-utf8", lambda s: _meta(s).write_bytes(b"\xff\xfe{}"), None, r"c\.sigmf-meta: not JSON \(not UTF-8"),
    ("sidecar-nested", lambda s: _meta(s).write_text("[" * 100_000), None, r"c\.sigmf-meta: not JSON .*nested"),
    ("sidecar-list", lambda s: _meta(s).write_text("[1, 2]"), None, r"\(top level\): must be a JSON object"),
    ("sidecar-directory", lambda s: _as_directory(_meta(s)), None, r"c\.sigmf-meta: is a directory"),
    (
        "field-missing",
        lambda s: _edit_meta(s, lambda m: m["global"].pop("gla:scale")),
        None,
        r"c\.sigmf-meta: global\.gla:scale: missing",
    ),
    (
        "field-wrong-type",
        lambda s: _edit_meta(s, lambda m: m["global"].update({"core:sample_rate": "48k"})),
        None,
        r"global\.core:sample_rate: must be a positive whole number of Hz.*'48k'",
    ),
    (
        "field-absurd-rate",
        lambda s: _edit_meta(s, lambda m: m["global"].update({"core:sample_rate": 1e300})),
        None,
        r"global\.core:sample_rate: must be a positive whole number of Hz up to",
    ),
    (
        "datetime-wrong-type",
        lambda s: _edit_meta(s, lambda m: m["captures"][0].update({"core:datetime": 5})),
        None,
        r"captures\[0\]\.core:datetime: wrong type",
    ),
    (
        "wrong-channel-count",
        lambda s: _edit_meta(s, _fewer_channels),
        None,
        r"c\.wav: has 3 channels, the sidecar says 2",
    ),
    (
        "rate-disagrees",
        lambda s: _edit_meta(s, lambda m: m["global"].update({"core:sample_rate": 44100.0})),
        None,
        r"c\.wav: sample rate 48000 Hz, the sidecar says 44100 Hz",
    ),
    ("year-0", _set_datetime("0000-03-03T14:00:00.000000Z"), None, r"core:datetime: .*year 0 is out of range"),
    ("year-99999", _set_datetime("99999-03-03T14:00:00Z"), None, r"core:datetime: not an ISO 8601 time.*1 to 9999"),
    ("year-1-east", _set_datetime("0001-01-01T00:00:00+01:00"), None, r"core:datetime: .*out of range in UTC"),
    ("ends-after-9999", _set_datetime("9999-12-31T23:59:59.999Z"), None, r"would end after the year 9999"),
    ("audio-missing", lambda s: _wav(s).unlink(), None, r"c\.wav: audio file named by c\.sigmf-meta not found"),
    ("audio-empty", lambda s: _wav(s).write_bytes(b""), None, r"c\.wav: cannot open the audio file.*empty file"),
    ("audio-garbage", lambda s: _wav(s).write_bytes(b"\x00" * 4000), None, r"c\.wav: cannot open the audio file"),
    ("audio-directory", lambda s: _as_directory(_wav(s)), None, r"c\.wav: is a directory"),
    ("sample-format", _other_sample_format, None, r"c\.wav: subtype PCM_U8, the sidecar says PCM_24"),
    (
        "unknown-subtype",
        lambda s: _edit_meta(s, lambda m: m["global"].update({"gla:subtype": "ULAW"})),
        None,
        r"global\.gla:subtype: must be one of",
    ),
]


def _spoil(cap: Path, spoil, name) -> Path:
    spoil(cap)
    return cap if name is None else name(cap)


def _run_main(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def _assert_one_line_error(err: str, pattern: str, command: str = "replay") -> None:
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"gla {command}: error: "), err
    assert re.search(pattern, lines[0]), (pattern, lines[0])


@pytest.mark.parametrize("spoil,name,pattern", [c[1:] for c in BAD_CAPTURES], ids=[c[0] for c in BAD_CAPTURES])
def test_bad_capture_is_one_line_and_status_2(cap, capsys, spoil, name, pattern):
    target = _spoil(cap, spoil, name)
    rc, out, err = _run_main(capsys, "replay", str(target), "--workers", "0", "--no-progress")
    assert rc == 2
    assert "replayed" not in out  # refused before decoding
    _assert_one_line_error(err, pattern)


@pytest.mark.parametrize("spoil,name,pattern", [c[1:] for c in BAD_CAPTURES], ids=[c[0] for c in BAD_CAPTURES])
def test_the_reader_raises_capture_error(cap, spoil, name, pattern):
    target = _spoil(cap, spoil, name)
    with pytest.raises(CaptureError, match=pattern) as ei:
        f, _ = open_capture(target)
        f.close()
    assert "\n" not in str(ei.value)


def test_rate_the_receiver_does_not_take(tmp_path, capsys):
    stem = _write_capture(tmp_path / "slow", fs_hz=44100)
    open_capture(stem)[0].close()  # a consistent capture ...
    rc, out, err = _run_main(capsys, "replay", str(stem), "--workers", "0", "--no-progress")
    assert rc == 2  # ... the receive chain cannot take
    _assert_one_line_error(err, r"slow\.sigmf-meta: core:sample_rate 44100 Hz: the receive chain takes 48000 Hz")


@pytest.mark.parametrize(
    "truth,pattern",
    [
        ("{oops", r"c\.truth\.json: not JSON \(line 1, column 2"),
        ('{"capture": {}, "transmissions": [{"tx_id": 0}]}', r"c\.truth\.json: transmissions\[0\]: missing channel"),
    ],
    ids=["not-json", "missing-keys"],
)
def test_bad_truth_file(cap, capsys, truth, pattern):
    cap.with_name("c.truth.json").write_text(truth)
    rc, out, err = _run_main(capsys, "replay", str(cap), "--workers", "0", "--no-progress")
    assert rc == 2 and "replayed" not in out
    _assert_one_line_error(err, pattern)


def test_sidecar_permission_denied_injected(cap, capsys, monkeypatch):
    """The OS refusing the sidecar (injected: the tests may run as root, which chmod cannot stop)."""
    real = pathlib.Path.read_bytes
    meta = _meta(cap)

    def read_bytes(self):
        if self == meta:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(pathlib.Path, "read_bytes", read_bytes)
    rc, _, err = _run_main(capsys, "replay", str(cap), "--workers", "0")
    assert rc == 2
    _assert_one_line_error(err, r"c\.sigmf-meta: cannot read the file: permission denied")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads a file whatever its mode")
@pytest.mark.parametrize("which", ["sidecar", "audio"])
def test_permission_denied(cap, capsys, which):
    path = _meta(cap) if which == "sidecar" else _wav(cap)
    path.chmod(0)
    try:
        rc, _, err = _run_main(capsys, "replay", str(cap), "--workers", "0")
    finally:
        path.chmod(0o644)
    assert rc == 2
    _assert_one_line_error(err, re.escape(path.name) + r": cannot .*permission denied")


@pytest.mark.parametrize("suffix", ["", ".sigmf-meta", ".sigmf-data", ".wav"])
def test_sigmf_names_of_a_capture_are_accepted(cap, suffix):
    """A capture is named by its stem, STEM.sigmf-meta, STEM.sigmf-data (SigMF's data file) or its audio file."""
    meta = read_capture_meta(str(cap) + suffix)
    assert meta.meta_path == _meta(cap) and meta.audio_path == _wav(cap)


def test_truncated_data_file_keeps_what_was_read(cap, capsys):
    wav = _wav(cap)
    with open(wav, "r+b") as fh:  # not a whole number of frames
        fh.truncate(wav.stat().st_size - 7)  # 9 bytes a frame: 9599 whole frames and 2 bytes
    rc, out, err = _run_main(capsys, "replay", str(cap), "--workers", "0", "--no-progress")
    assert rc == 1 and out.startswith("replayed")
    assert "Traceback" not in err
    assert f"gla replay: error: {wav}: truncated: only {N_FRAMES - 1} of {N_FRAMES} frames" in err


def test_verify_matches(cap, capsys):
    rc, out, err = _run_main(capsys, "replay", str(cap), "--verify", "--workers", "0", "--no-progress")
    assert rc == 0, err
    first, second = out.splitlines()[:2]
    assert first.startswith(f"{_wav(cap)}: verified, SHA-256 ") and "matches the sidecar's gla:sha256" in first
    assert second.startswith("replayed")


@pytest.mark.parametrize("damage", ["one-byte-changed", "sidecar-digest-changed", "truncated"])
def test_verify_refuses_a_mismatch_before_decoding(cap, capsys, damage):
    wav = _wav(cap)
    if damage == "one-byte-changed":
        data = bytearray(wav.read_bytes())
        data[-1] ^= 1
        wav.write_bytes(bytes(data))
    elif damage == "sidecar-digest-changed":
        _edit_meta(cap, lambda m: m["global"].update({"gla:sha256": "0" * 64}))
    else:  # a truncated file would otherwise replay what is there; --verify refuses it
        with open(wav, "r+b") as fh:
            fh.truncate(wav.stat().st_size // 2)
    rc, out, err = _run_main(capsys, "replay", str(cap), "--verify", "--workers", "0", "--no-progress")
    assert rc == 2 and out == ""
    _assert_one_line_error(err, r"c\.wav: SHA-256 [0-9a-f]{64} does not match the sidecar's gla:sha256")


def test_debug_shows_the_traceback(cap, capsys):
    _meta(cap).write_text("{")
    for argv in (["--debug", "replay", str(cap)], ["replay", str(cap), "--debug"]):
        rc, _, err = _run_main(capsys, *argv)
        assert rc == 2
        assert "Traceback" in err and "CaptureError" in err
        assert err.rstrip().splitlines()[-1].startswith("gla replay: error: ")


# ------------------------------------------------------------------ other commands, bad arguments
@pytest.mark.parametrize(
    "argv,pattern",
    [
        (["replay", "CAP", "--post", "localhost:8000"], r"--post localhost:8000: not an http:// or https:// URL"),
        (["replay", "CAP", "--post", "http://127.0.0.1:9", "--token-file", "NOFILE"], r"--token-file .*cannot read"),
        (["replay", "CAP", "--out", "AFILE/out", "--workers", "0"], r"Not a directory: .*afile"),
        (["receive", "--config", "NOFILE"], r"NOFILE: .*No such file"),
        (["receive", "--config", "BADTOML"], r"BADTOML: "),
        (["simulate", "--scenario", "no_such_scenario", "--out", "OUT"], r"no built-in scenario 'no_such_scenario'"),
        (["simulate", "--scenario", "BADTOML", "--out", "OUT"], r"invalid TOML"),
        (["platform", "--database-url", "nonsense://u:secret@h/db"], r"--database-url \.\.\.h/db: .*nonsense"),
    ],
    ids=[
        "post-url",
        "token-file",
        "out-not-a-directory",
        "config-missing",
        "config-bad-toml",
        "scenario-missing",
        "scenario-bad",
        "db-url",
    ],
)
def test_other_commands_refuse_bad_arguments_in_one_line(cap, tmp_path, capsys, argv, pattern):
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("x = [\n")
    (tmp_path / "afile").write_text("")
    subst = {
        "AFILE/out": str(tmp_path / "afile" / "out"),
        "CAP": str(cap),
        "NOFILE": str(tmp_path / "nofile"),
        "BADTOML": str(bad_toml),
        "OUT": str(tmp_path / "o"),
    }
    argv = [subst.get(a, a) for a in argv]
    pattern = pattern.replace("NOFILE", re.escape(str(tmp_path / "nofile"))).replace(
        "BADTOML", re.escape(str(bad_toml))
    )
    rc, out, err = _run_main(capsys, *argv)
    assert rc == 2 and "replayed" not in out
    _assert_one_line_error(err, pattern, command=argv[0])
    assert "secret" not in err


@pytest.mark.parametrize(
    "argv", [["replay", "x", "--duration", "-1"], ["replay", "x", "--workers", "-2"], ["platform", "--port", "99999"]]
)
def test_bad_numbers_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as ei:
        main(argv)
    assert ei.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"gla {argv[0]}: error: argument" in err


# ----------------------------------------------------------------------------- as a process
def _gla(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "receiver.cli", *argv], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize("case", ["not-json", "verify-mismatch", "missing-audio", "truncated"])
def test_gla_process_exit_status_and_no_traceback(cap, case):
    status = 2
    if case == "not-json":
        _meta(cap).write_text('{\n  "global": {\n    x\n')
        pattern = r"c\.sigmf-meta: not JSON \(line 3, column 5"
    elif case == "verify-mismatch":
        _edit_meta(cap, lambda m: m["global"].update({"gla:sha256": "f" * 64}))
        pattern = r"does not match the sidecar's gla:sha256"
    elif case == "missing-audio":
        shutil.move(_wav(cap), cap.with_name("elsewhere.wav"))
        pattern = r"c\.wav: audio file named by c\.sigmf-meta not found"
    else:
        with open(_wav(cap), "r+b") as fh:
            fh.truncate(_wav(cap).stat().st_size - 1)
        pattern, status = r"c\.wav: truncated: only", 1
    p = _gla(
        "replay", str(cap), "--workers", "0", "--no-progress", *(["--verify"] if case == "verify-mismatch" else [])
    )
    assert p.returncode == status, p.stderr
    assert "Traceback" not in p.stderr
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("gla replay: error: ")]
    assert len(errors) == 1 and re.search(pattern, errors[0]), p.stderr
    if status == 2:
        assert p.stderr.strip() == errors[0] and p.stdout == ""
