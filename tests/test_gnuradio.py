"""GNU Radio users: absolute time from rx_time tags (re-read at each tag, re-anchored after a
flowgraph restart), a sink whose vector length or pass_tags differs from the configuration
refused with one line, `gla config input`, and the example flowgraph (examples/gnuradio/) run
by GNU Radio against `gla receive`, giving the bundles `gla replay` gives."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from receiver.config_cmd import input_section
from receiver.contracts import zmq_framing as zf
from receiver.service import ReceiverConfig, load_config, run_service
from receiver.sources import StreamAssembler, stream_capture
from receiver.sources.gr_input import VLEN_ONE

ROOT = Path(__file__).resolve().parents[1]
CAP = ROOT / "captures" / "demo_small"
EXAMPLE = ROOT / "examples" / "gnuradio"
NCH, FS = 3, 1000.0
T0 = datetime(2025, 3, 3, 14, 0, tzinfo=UTC)


def _rx_time(offset: int, t: datetime) -> zf.GrTag:
    secs = int(t.timestamp())
    return zf.GrTag(offset, "rx_time", (zf.U64(secs), t.microsecond / 1e6))


def _msg(offset: int, n: int, tags=(), nch: int = NCH) -> bytes:
    x = np.arange(offset * nch, (offset + n) * nch, dtype="<f4")
    return zf.pack_gr_tag_header(offset, list(tags)) + x.tobytes()


def _asm(**kw) -> StreamAssembler:
    return StreamAssembler(framing="gr", n_channels=NCH, sample_rate_hz=FS, pass_tags=True, **kw)


# ----------------------------------------------------------------------------- rx_time tags
def test_rx_time_dates_every_block_and_each_new_tag_reanchors():
    asm = _asm()
    b = asm.feed([_msg(0, 100, [_rx_time(0, T0)])])
    b += asm.feed([_msg(100, 100)])
    assert [x.time_utc for x in b] == [T0, T0 + timedelta(seconds=0.1)]
    # a tag mid-message dates the message's first row from it
    b = asm.feed([_msg(200, 100, [_rx_time(250, T0 + timedelta(seconds=0.25))])])
    assert b[0].time_utc == T0 + timedelta(seconds=0.2) and not b[0].discontinuity
    # an SDR overflow: items go on but the tag says 1.5 s went by: a discontinuity, new time
    late = T0 + timedelta(seconds=1.8)
    b = asm.feed([_msg(300, 100, [_rx_time(300, late)])])
    assert b[0].discontinuity and b[0].time_utc == late and b[0].first_sample == 300
    b = asm.feed([_msg(400, 100)])
    assert b[0].time_utc == late + timedelta(seconds=0.1) and not b[0].discontinuity
    assert asm.stats.resyncs == 1 and asm.stats.gaps == 0


def test_a_flowgraph_restart_takes_its_own_time_or_none():
    asm = _asm()
    for k in range(30):  # 3 s of a first run
        asm.feed([_msg(100 * k, 100, [_rx_time(0, T0)] if k == 0 else [])])
    # the flowgraph restarts a minute later: offsets from 0 again, a new rx_time tag
    t1 = T0 + timedelta(minutes=1)
    out = []
    for k in range(4):
        out += asm.feed([_msg(100 * k, 100, [_rx_time(0, t1)] if k == 0 else [])])
    assert out and out[0].discontinuity and out[0].first_sample == 0
    assert [x.time_utc for x in out] == [t1 + timedelta(seconds=0.1 * k) for k in range(len(out))]
    # a restart without a tag: the old run's clock would date it wrongly, so no time at all
    asm2 = _asm()
    for k in range(30):
        asm2.feed([_msg(100 * k, 100, [_rx_time(0, T0)] if k == 0 else [])])
    out = [x for k in range(4) for x in asm2.feed([_msg(100 * k, 100)])]
    assert out and out[0].discontinuity and all(x.time_utc is None for x in out)


def test_malformed_rx_time_tags_are_ignored():
    asm = _asm()
    bad = [zf.GrTag(0, "rx_time", 5), zf.GrTag(0, "rx_time", (True, 0.5)), zf.GrTag(0, "rx_time", (zf.U64(1), 2.0))]
    b = asm.feed([_msg(0, 10, bad)])
    assert b[0].time_utc is None and asm.stats.bad_frames == 0


# ---------------------------------------------------------------- sink configuration refused
def test_vlen_one_is_refused_with_one_line_not_gaps(caplog):
    """An Interleave straight into the sink: items are single samples, offsets count samples."""
    asm = _asm()
    blocks = []
    off = 0
    for n in (4096, 3000, 4095, 6000, 4096):  # samples per work() call: mostly not whole frames
        x = np.zeros(n, dtype="<f4")
        blocks += asm.feed([zf.pack_gr_tag_header(off, []) + x.tobytes()])
        off += n
    assert asm.stats.vlen_mismatch >= 4 and asm.stats.gaps == 0 and asm.stats.gap_samples == 0
    assert sum(b.n_frames for b in blocks) <= 1000  # at most the first message, before it showed
    assert VLEN_ONE in caplog.text
    # without pass_tags the message sizes show it
    asm = StreamAssembler(framing="gr", n_channels=NCH, sample_rate_hz=FS)
    for n in (4096, 4096, 4096):
        asm.feed([np.zeros(n, dtype="<f4").tobytes()])
    assert asm.stats.vlen_mismatch == 3 and asm.stats.gaps == 0 and asm.stats.resyncs == 0


def test_pass_tags_mismatch_is_counted_both_ways(caplog):
    asm = _asm()
    for _ in range(3):
        asm.feed([np.zeros((10, NCH), dtype="<f4").tobytes()])
    assert asm.stats.pass_tags_mismatch == 3 and asm.stats.samples == 0
    assert "pass_tags mismatch" in caplog.text
    asm = StreamAssembler(framing="gr", n_channels=NCH, sample_rate_hz=FS)
    for k in range(3):
        asm.feed([_msg(10 * k, 10)])
    assert asm.stats.pass_tags_mismatch == 3 and asm.stats.samples == 0 and asm.stats.gaps == 0


# ------------------------------------------------------------------------ gla config input
def test_config_input_matches_the_sidecar_and_the_example_config():
    text = input_section(CAP)
    meta = json.loads(CAP.with_suffix(".sigmf-meta").read_text())
    assert f"scale = {1 / meta['global']['gla:scale']!r}" in text and "pass_tags = true" in text
    example = (EXAMPLE / "receiver.toml").read_text()
    assert text in example  # the shipped example is what the command writes
    cfg = load_config(EXAMPLE / "receiver.toml")  # and it runs as written
    assert cfg.input.n_channels == meta["global"]["core:num_channels"] and cfg.input.scale == 4.0
    assert [(c.index, c.bus, c.feeder, c.phase) for c in cfg.input.channels] == [
        (c["index"], c["bus"], c["feeder"], c["phase"]) for c in meta["global"]["gla:channels"]
    ]


def test_config_input_command_line(tmp_path):
    from receiver.cli import main

    out = tmp_path / "input.toml"
    assert main(["config", "input", str(CAP), "--to-file", str(out), "--sample-type", "int16"]) == 0
    text = out.read_text()  # integers are normalised to +-1 first: the same scale
    assert 'sample_type = "int16"' in text and "scale = 4.0" in text
    assert main(["config", "input", str(tmp_path / "nothing")]) == 2


# ---------------------------------------------------------------- the service after a restart
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _archived(data_dir: Path) -> list[dict]:
    return [json.loads(line) for f in sorted((data_dir / "archive").glob("*.jsonl")) for line in f.open()]


@pytest.mark.parametrize("tagged", [True, False])
def test_bundles_after_a_flowgraph_restart_are_dated_by_the_new_run(tmp_path, tagged):
    """Two runs of a flowgraph (item offsets from 0 each time) into one receiver: the second
    run's bundles carry its own time (its rx_time tag, or the receiver's clock), not the first
    run's clock continued (which dated them early by the first run's length)."""
    zport = _free_port()
    cfg = ReceiverConfig.model_validate(
        {
            "receiver": {"id": "rx-t", "substation_id": "sub-1", "workers": 0, "data_dir": str(tmp_path / "d")},
            "input": load_config(EXAMPLE / "receiver.toml").input.model_dump()
            | {"endpoint": f"tcp://127.0.0.1:{zport}", "scale": 1.0},  # CaptureSender: physical floats
            "http": {"listen": f"127.0.0.1:{_free_port()}"},
        }
    )
    stop = threading.Event()
    th = threading.Thread(target=run_service, args=(cfg,), kwargs={"stop": stop}, daemon=True)
    th.start()
    starts = [T0, T0 + timedelta(minutes=1)]
    walls = []
    for t in starts:
        walls.append(datetime.now(UTC))
        tags = {0: [_rx_time(0, t)]} if tagged else None
        stream_capture(CAP, f"tcp://127.0.0.1:{zport}", framing="gr", pass_tags=True, gr_tags=tags, block_s=0.1)
        time.sleep(2.5)
    deadline = time.monotonic() + 90  # a loaded machine: let the receiver catch up before stopping
    while len(_archived(tmp_path / "d")) < 8 and time.monotonic() < deadline:
        time.sleep(0.5)
    stop.set()
    th.join(timeout=60)
    runs = sorted({b["copies"][0]["arrival_utc"] for b in _archived(tmp_path / "d")})
    got = [datetime.fromisoformat(s.replace("Z", "+00:00")) for s in runs]
    assert len(got) == 8  # the capture's 4 bundles, in each run
    first, second = got[:4], got[4:]
    if tagged:
        assert [b - a for a, b in zip(first, second)] == [timedelta(minutes=1)] * 4
        assert first[0] - T0 == timedelta(seconds=0.300107)  # the first copy's start_sample / fs
    else:
        # the second run's samples were sent after walls[1], so they cannot be older than it
        # (the old clock continued dated them as the first run's: the same times)
        assert all(t > walls[0] for t in first) and all(t > walls[1] for t in second)


# ------------------------------------------------------------- the example flowgraph itself
def _gnuradio_python() -> str | None:
    """A Python that imports GNU Radio's ZeroMQ blocks: this one, or the system's (Debian's
    gnuradio package installs into /usr/bin/python3, outside a virtualenv)."""
    for py in (sys.executable, os.environ.get("GLA_GNURADIO_PYTHON"), "/usr/bin/python3"):
        if py and shutil.which(py):
            r = subprocess.run([py, "-c", "import gnuradio.zeromq"], capture_output=True)
            if r.returncode == 0:
                return py
    return None


def _bundle_keys(bundles: list[dict]) -> list[tuple]:
    """What must agree: channel, code, hub, frame, the inferred input, and every copy's input,
    position and time."""
    return sorted(
        (
            b["channel"],
            b["code"],
            b["hub_id"],
            b["frame_hex"],
            json.dumps(b.get("inferred"), sort_keys=True),
            tuple((c["input_index"], c["start_sample"], c["arrival_utc"], c["polarity"]) for c in b["copies"]),
        )
        for b in bundles
    )


def test_example_flowgraph_into_gla_receive_decodes_what_replay_decodes(tmp_path):
    py = _gnuradio_python()
    if py is None:
        pytest.skip("GNU Radio is not installed (no Python here imports gnuradio.zeromq): apt-get install gnuradio")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    gla = [sys.executable, "-m", "receiver.cli"]
    zport, hport = _free_port(), _free_port()
    cfg = (EXAMPLE / "receiver.toml").read_text()
    cfg = cfg.replace("tcp://127.0.0.1:5555", f"tcp://127.0.0.1:{zport}").replace(
        "127.0.0.1:9100", f"127.0.0.1:{hport}"
    )
    cfg = cfg.replace('"./gla-receiver-data"', json.dumps(str(tmp_path / "rx")))
    (tmp_path / "rx.toml").write_text(cfg)
    rx = subprocess.Popen([*gla, "receive", "--config", str(tmp_path / "rx.toml")], cwd=ROOT, env=env,
                          stdout=subprocess.DEVNULL, stderr=open(tmp_path / "rx.log", "w"))  # fmt: skip
    try:
        subprocess.run([*gla, "replay", str(CAP), "--out", str(tmp_path / "replay"), "--no-progress"],
                       cwd=ROOT, env=env, check=True, capture_output=True, timeout=300)  # fmt: skip
        # the flowgraph exactly as a user runs it: real time (the default speed), then it exits
        fg = subprocess.run([py, str(EXAMPLE / "gla_file_to_zmq.py"), "--address", f"tcp://127.0.0.1:{zport}"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)  # fmt: skip
        assert fg.returncode == 0, fg.stderr
        deadline = time.monotonic() + 60
        metrics = ""
        while time.monotonic() < deadline and "gla_stream_time_seconds 8.0" not in metrics:
            time.sleep(0.5)
            metrics = urllib.request.urlopen(f"http://127.0.0.1:{hport}/metrics", timeout=5).read().decode()
        assert "gla_stream_time_seconds 8.0" in metrics  # every sample arrived, the last ones too
        assert "gla_gaps_total 0.0" in metrics and "gla_bad_frames_total 0.0" in metrics
    finally:
        rx.send_signal(signal.SIGTERM)
        rx.wait(timeout=60)
    assert rx.returncode == 0, (tmp_path / "rx.log").read_text()[-2000:]
    replayed = [json.loads(line) for f in (tmp_path / "replay").rglob("*.jsonl") for line in f.open()]
    received = _archived(tmp_path / "rx")
    assert len(replayed) == 4 and _bundle_keys(received) == _bundle_keys(replayed)


def test_example_python_is_what_grcc_generates_from_the_grc(tmp_path):
    """The committed Python is the .grc compiled, so the two cannot drift apart (as sets of
    lines: grcc writes the connections in no fixed order)."""
    grcc = shutil.which("grcc")
    if grcc is None:
        pytest.skip("GNU Radio Companion's grcc is not installed (apt-get install gnuradio)")
    subprocess.run([grcc, str(EXAMPLE / "gla_file_to_zmq.grc"), "-o", str(tmp_path)], check=True, capture_output=True)
    for name in ("gla_file_to_zmq.py", "gla_file_to_zmq_epy_block_0.py"):
        got, want = ((d / name).read_text().splitlines() for d in (tmp_path, EXAMPLE))
        assert sorted(got) == sorted(want), name
