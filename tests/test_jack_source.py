"""The JACK source: an audio interface read through a JACK server.

End to end on JACK's dummy driver (Debian's jackd2, real time): a client plays demo_small's
twelve inputs into twelve output ports, `run_service` with ``[input] source = "jack"`` reads
them, and its bundles are those of `gla replay captures/demo_small` (the same frames, channels,
codes, hubs, copies on the same inputs at the same sample positions less the start offset, the
same inferred input). Also: the one-line refusals (no server, wrong rate, ports), and the ring
between JACK's thread and the pipeline (missed cycles and overflows counted as gaps, filled or
resynchronised like the ZeroMQ source's), which needs no server.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from receiver.service import ReceiverConfig, load_config, run_service
from receiver.sources.base import SourceError
from receiver.sources.jack_capture import FRAME_TIME_MOD, CycleRing
from receiver.sources.jack_source import _Delivery

ROOT = Path(__file__).resolve().parents[1]
CAP = ROOT / "captures" / "demo_small"
META = json.loads((ROOT / "captures" / "demo_small.sigmf-meta").read_text())
CHANNELS = [{k: c[k] for k in ("index", "bus", "feeder", "phase")} for c in META["global"]["gla:channels"]]


def _jack_missing() -> str | None:
    if shutil.which("jackd") is None:
        return "jackd is not installed (Debian: apt install jackd2)"
    try:
        import jack  # noqa: F401
    except (ImportError, OSError) as e:
        return f"the JACK binding is not installed (pip install 'gla-receiver[jack]'): {e}"
    return None


needs_jack = pytest.mark.skipif(_jack_missing() is not None, reason=str(_jack_missing()))


# --- the ring, without a server ----------------------------------------------------------------
def _cycle(t: int, n: int, nch: int = 2) -> list[np.ndarray]:
    return [np.arange(t, t + n, dtype=np.float32) + 1000 * c for c in range(nch)]


class _Reader:
    """What JackSource._run does with the ring, without the server: blocks through the delivery."""

    def __init__(self, ring: CycleRing, block: int, clip_level: float | None = None) -> None:
        from receiver.sources.base import SourceStats

        self.ring, self.block, self.clip_level = ring, block, clip_level
        self.stats = SourceStats()
        self.delivery = _Delivery(self.stats, max_gap_fill_s=2.0, stream_id="jack:test", log_interval_s=10.0)
        self.pos = 0

    def drain(self) -> list:
        from receiver.sources.messages import Message

        out: list = []
        while True:
            gap, raw = self.ring.read(self.block)
            self.pos += gap
            if raw is None:
                return out
            m = Message(self.pos, self.pos, raw, (raw.shape[1], "float32", 48000.0), 4.0, self.clip_level, None, "j")
            self.delivery._deliver(m, out)
            self.pos += raw.shape[0]


def test_ring_keeps_the_sample_clock_through_missed_cycles_overflow_and_wrap():
    ring = CycleRing(2, 4096)
    t0 = FRAME_TIME_MOD - 2048  # the 32-bit frame time wraps during the test
    for k in range(3):
        ring.write((t0 + 1024 * k) % FRAME_TIME_MOD, _cycle(1024 * k, 1024))
    # a cycle missed by the server (frame time jumps by two periods)
    ring.write((t0 + 1024 * 4) % FRAME_TIME_MOD, _cycle(1024 * 4, 1024))
    assert ring.counter("missed_frames") == 1024 and ring.available == 4096  # the ring is full
    ring.write((t0 + 1024 * 5) % FRAME_TIME_MOD, _cycle(1024 * 5, 1024))  # overflow: dropped
    assert ring.counter("overflow_frames") == 1024 and ring.available == 4096
    reader = _Reader(ring, 1500)
    blocks = reader.drain()
    ring.write((t0 + 1024 * 6) % FRAME_TIME_MOD, _cycle(1024 * 6, 1024))  # (wrapped ring position)
    blocks += reader.drain()
    stats = reader.stats
    x = np.concatenate([b.samples for b in blocks])
    assert [b.first_sample for b in blocks] == list(np.cumsum([0] + [b.n_frames for b in blocks[:-1]]))
    assert x.shape == (7 * 1024, 2)
    got = x[:, 0] / 4.0  # physical = raw x scale
    want = np.arange(7 * 1024, dtype=float)
    lost = np.zeros(7 * 1024, bool)
    lost[3 * 1024 : 4 * 1024] = lost[5 * 1024 : 6 * 1024] = True
    assert np.isnan(got[lost]).all() and np.array_equal(got[~lost], want[~lost])
    assert np.array_equal(x[~lost, 1] / 4.0, want[~lost] + 1000)
    assert blocks[0].discontinuity and not any(b.discontinuity for b in blocks[1:])
    assert [b.gap_fill for b in blocks].count(True) == 2
    assert stats.gaps == 2 and stats.gap_samples == 2048 and stats.resyncs == 0
    assert stats.samples == 5 * 1024


def test_a_gap_longer_than_max_gap_fill_resynchronises():
    ring = CycleRing(1, 8192)
    ring.write(0, [np.full(1024, 0.5, np.float32)])
    ring.write(1024 + 48000 * 3, [np.full(1024, 1.0, np.float32)])  # 3 s missed
    reader = _Reader(ring, 4096, clip_level=4.0)
    blocks = reader.drain()
    stats = reader.stats
    assert [(b.first_sample, b.discontinuity, b.gap_fill) for b in blocks] == [
        (0, True, False),
        (1024 + 48000 * 3, True, False),
    ]
    # a long gap counts its samples too (gla_gap_samples_total), though it is not filled
    assert stats.gaps == 1 and stats.resyncs == 1 and stats.gap_samples == 48000 * 3
    # clipping: |raw| >= 1 (JACK's full scale) is physical 4.0 at scale 4
    assert stats.clipped == 1024


# --- configuration ------------------------------------------------------------------------------
def _config(tmp_path: Path, server: str, http_port: int, **jack) -> ReceiverConfig:
    return ReceiverConfig.model_validate(
        {
            "receiver": {"id": "rx-jack", "substation_id": "sub-1", "workers": 2, "data_dir": str(tmp_path / "data")},
            "input": {
                "source": "jack",
                "n_channels": 12,
                "sample_rate_hz": META["global"]["core:sample_rate"],
                "scale": 1.0 / META["global"]["gla:scale"],  # the file's values, as JACK carries them
                "channels": CHANNELS,
                "jack": {"server": server, "client_name": "gla-test", **jack},
            },
            "http": {"listen": f"127.0.0.1:{http_port}"},
        }
    )


def _example(source: str, extra: str = "") -> str:
    """deploy/receiver.example.toml with another source (and no token file: none exists here)."""
    text = (ROOT / "deploy" / "receiver.example.toml").read_text()
    assert 'source = "zmq"' in text and 'endpoint = "tcp://127.0.0.1:5555"' in text
    text = text.replace('source = "zmq"', f"source = {source!r}{extra}")
    if source == "jack":
        text = text.replace('endpoint = "tcp://127.0.0.1:5555"', "")
    return text.replace('token_file = "/etc/gla/receiver.token"', "")


def test_config_needs_an_endpoint_for_zmq_only_and_one_port_per_input(tmp_path):
    p = tmp_path / "rx.toml"
    p.write_text(_example("jack"))
    cfg = load_config(p)
    assert cfg.input.source == "jack" and cfg.input.endpoint is None and cfg.input.jack.ports is None
    assert cfg.input.jack.buffer_s == 10.0 and cfg.input.jack.client_name == "gla-receiver"
    p.write_text(_example("zmq").replace('endpoint = "tcp://127.0.0.1:5555"', ""))
    with pytest.raises(ValueError, match="endpoint is required for source = 'zmq'"):
        load_config(p)
    p.write_text(_example("jack", '\njack = { ports = ["system:capture_1"] }'))
    with pytest.raises(ValueError, match="jack.ports: 1 ports for n_channels = 12"):
        load_config(p)
    p.write_text(_example("alsa"))
    with pytest.raises(ValueError, match="input.source: Input should be 'zmq' or 'jack'"):
        load_config(p)


def test_gla_receive_without_a_jack_server_is_one_line_and_status_2(tmp_path, capsys):
    from receiver.cli import main

    p = tmp_path / "rx.toml"
    text = _example("jack", f'\njack = {{ server = "none-{uuid.uuid4().hex[:8]}" }}')
    text = text.replace('"/var/lib/gla-receiver"', repr(str(tmp_path)))
    p.write_text(text.replace('listen = "127.0.0.1:9100"', f'listen = "127.0.0.1:{_free_port()}"'))
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        assert main(["receive", "--config", str(p)]) == 2
    finally:  # (the command installs its JSON log handler on the root logger)
        root.handlers[:] = handlers
        root.setLevel(level)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gla receive: error: input")
    assert "jackd" in err[0] or "JACK" in err[0]


def test_without_the_jack_binding_the_refusal_says_what_to_install(monkeypatch):
    from receiver.sources.jack_capture import import_jack

    monkeypatch.setitem(sys.modules, "jack", None)  # as if JACK-Client were not installed
    with pytest.raises(SourceError, match=r"needs the JACK binding: pip install 'gla-receiver\[jack\]'"):
        import_jack()


# --- on JACK's dummy driver ---------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def jack_server(tmp_path_factory):
    """A dummy-driver JACK server of its own (a unique name: tests never share one)."""
    import jack

    jack.set_error_function(lambda m: None)  # (libjack's "cannot connect" while jackd starts)
    name = f"gla-test-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    logf = tmp_path_factory.mktemp("jackd") / "jackd.log"
    with open(logf, "w") as fh:
        proc = subprocess.Popen(
            ["jackd", "-n", name, "-d", "dummy", "-r", "48000", "-p", "1024"],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env={**os.environ, "JACK_NO_AUDIO_RESERVATION": "1"},
        )
    deadline = time.monotonic() + 20
    while True:
        try:
            jack.Client("probe", no_start_server=True, servername=name).close()
            break
        except jack.JackError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"jackd did not start: {logf.read_text()[-1500:]}")
            time.sleep(0.2)
    yield name
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@needs_jack
def test_refusals_name_what_was_wrong(jack_server):
    from receiver.sources.jack_source import JackSource

    with pytest.raises(SourceError, match="runs at 48000 Hz"):
        JackSource(n_channels=2, sample_rate_hz=44100, server=jack_server)
    with pytest.raises(SourceError, match="2 physical capture ports for 12 inputs"):
        JackSource(n_channels=12, sample_rate_hz=48000, server=jack_server)
    with pytest.raises(SourceError, match=r"ports\[1\] = 'nowhere:out': no such port"):
        JackSource(n_channels=2, sample_rate_hz=48000, server=jack_server, ports=["system:capture_1", "nowhere:out"])
    # the physical capture ports by default: the dummy driver's silence, counted, no gap
    with JackSource(n_channels=2, sample_rate_hz=48000, server=jack_server, block_s=0.05) as src:
        assert src.ports == ["system:capture_1", "system:capture_2"]
        blocks = []
        for b in src:
            blocks.append(b)
            if len(blocks) == 5:
                break
    assert [b.first_sample for b in blocks] == [k * 2400 for k in range(5)]
    assert all(not np.any(b.samples) for b in blocks) and blocks[0].time_utc is not None
    assert src.stats.samples == 5 * 2400 and src.stats.gaps == 0


def _player(server: str, *args: str) -> tuple[subprocess.Popen, list[str]]:
    """tests/jack_player.py playing demo_small into ``server``, and its output ports."""
    p = subprocess.Popen(
        [sys.executable, "-m", "tests.jack_player", "--server", server, "--name", "player", *args, str(CAP)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert p.stdout is not None
    ready = json.loads(p.stdout.readline())
    assert len(ready["ready"]) == 12, ready
    return p, ready["ready"]


@needs_jack
def test_the_samples_played_are_the_samples_received_exactly(jack_server):
    """2 s of demo_small through JACK: after the silence before the player started (whole JACK
    periods), every sample is the file's value x scale, bit for bit; nothing lost or repeated."""
    import soundfile as sf

    from receiver.sources.jack_source import JackSource

    want = sf.read(str(CAP) + ".wav", dtype="float64", frames=96000)[0] / META["global"]["gla:scale"]
    player, ports = _player(jack_server, "--seconds", "2")
    try:
        src = JackSource(
            n_channels=12, sample_rate_hz=48000, server=jack_server, ports=ports, scale=4.0, client_name="exact"
        )
        blocks, offset = [], None
        for b in src:
            blocks.append(b)
            if offset is None:
                rows = np.flatnonzero(np.any(np.concatenate([x.samples for x in blocks]) != 0, axis=1))
                offset = int(rows[0]) if rows.size else None
                assert blocks[-1].end_sample < 20 * 48000, "the player never played"
            if offset is not None and blocks[-1].end_sample >= offset + len(want):
                break
        src.close()
    finally:
        player.kill()
        player.wait()
    assert offset is not None and offset % 1024 == 0  # the player starts at a period
    x = np.concatenate([b.samples for b in blocks])
    assert [b.first_sample for b in blocks] == [k * src.block_frames for k in range(len(blocks))]
    assert np.array_equal(x[offset : offset + len(want)], want) and not np.any(x[:offset])
    assert src.stats.gaps == 0 and src.stats.samples == x.shape[0] and src.stats.clipped == 0
    assert blocks[0].discontinuity and not any(b.discontinuity or b.gap_fill for b in blocks[1:])


def _same(b: dict) -> tuple:
    """What a bundle says, less its timing: the frame, channel, code, hub, the inputs with a copy
    (best first) and the inferred input."""
    inf = b.get("inferred") or {}
    return (
        b["channel"],
        b["code"],
        b["hub_id"],
        b["crc_ok"],
        b["frame_hex"],
        [c["input_index"] for c in b["copies"]],
        json.dumps(inf.get("location"), sort_keys=True),
    )


def _measured(b: dict) -> tuple:
    """A bundle with its measurements (positions, levels, SNR...), less the receiver and clock."""
    skip = {"bundle_id", "receiver_id", "created_utc", "slot", "arrival_utc"}

    def strip(d):
        return {k: strip(v) if isinstance(v, dict) else v for k, v in d.items() if k not in skip}

    return _same(b), [strip(c) for c in b["copies"]], strip(b.get("inferred") or {})


def _service_bundles_of(x: np.ndarray) -> list[dict]:
    """The bundles the service's loop (run_service: the pipeline with two workers measuring,
    the grouper) makes of samples ``x`` (n, 12), fed in blocks of 0.1 s as the JACK source does."""
    from dsp.air import params as P
    from receiver.grouping import Grouper, InputInfo
    from receiver.pipeline import Pipeline

    plan = P.ChannelPlan.default(float(META["global"]["gla:grid_hz"]))
    inputs = [InputInfo(c["index"], c["bus"], c["feeder"], c["phase"]) for c in CHANNELS]
    g = Grouper(plan, inputs, receiver_id="rx-ref", substation_id="sub-1", fs_hz=48000.0)
    pipe = Pipeline(plan, 12, 48000.0, workers=2, measure_in_workers=True)
    g.measurer = pipe
    try:
        for pos in range(0, len(x), 4800):
            pipe.feed(pos, x[pos : pos + 4800])
            for o in pipe.outputs():
                g.add_output(o)
        for o in pipe.flush():
            g.add_output(o)
        g.flush()
        while g.waiting:
            got = pipe.wait_idle("the last measurements")
            assert got
            for o in got:
                g.add_output(o)
    finally:
        for o in pipe.close():
            g.add_output(o)
    return [json.loads(b.model_dump_json()) for b in g.bundles]


@needs_jack
def test_service_on_jack_makes_the_bundles_of_a_replay(jack_server, tmp_path):
    """demo_small played in real time into JACK, `run_service` reading it: the bundles of the
    same samples fed to the service's pipeline directly (the silence before the player started,
    then the capture), measurements included; and the bundles of `gla replay` (frame, channel,
    code, hub, inputs, inferred input; positions shifted by the silence)."""
    import soundfile as sf

    from receiver.replay import replay

    player, ports = _player(jack_server)
    try:
        hport = _free_port()
        cfg = _config(tmp_path, jack_server, hport, ports=ports, buffer_s=60.0)
        stop = threading.Event()
        result: dict = {}
        t_start, wall_start = time.monotonic(), datetime.now(UTC)
        th = threading.Thread(target=lambda: result.update(run_service(cfg, stop=stop)), daemon=True)
        th.start()
        assert player.stdout is not None
        done = json.loads(player.stdout.readline())["done"]  # the capture was played (real time: 8 s)
        need_s = time.monotonic() - t_start + 1.0  # stream time by which the receiver has it all
        deadline = time.monotonic() + 120
        metrics = ""
        while time.monotonic() < deadline and th.is_alive():
            time.sleep(0.3)
            try:
                metrics = urllib.request.urlopen(f"http://127.0.0.1:{hport}/metrics", timeout=5).read().decode()
            except OSError:  # not listening yet: the pipeline is starting
                continue
            line = [x for x in metrics.splitlines() if x.startswith("gla_stream_time_seconds ")]
            if line and float(line[0].split()[1]) >= need_s:
                break
        stop.set()
        th.join(timeout=60)
        assert not th.is_alive()
    finally:
        player.kill()
        player.wait()
    assert done["frames"] == 384000 and done["channels"] == 12
    src = result["source"]
    assert src["gaps"] == 0 and src["gap_samples"] == 0 and src["resyncs"] == 0, src
    assert src["samples"] >= done["frames"] and src["clipped"] == 0 and src["nonfinite"] == 0
    assert "gla_gap_samples_total 0.0" in metrics and "gla_xruns_total" in metrics
    assert "gla_samples_in_total" in metrics
    key = lambda b: (b["copies"][0]["start_sample"], b["channel"])  # noqa: E731
    got = sorted(
        (
            json.loads(line)
            for f in sorted((Path(cfg.receiver.data_dir) / "archive").glob("*.jsonl"))
            for line in f.read_text().splitlines()
        ),
        key=key,
    )
    want = sorted((json.loads(b.model_dump_json()) for b in replay(CAP, progress=False, workers=2).bundles), key=key)
    assert len(want) == 4 and got, (got, want)
    # the silence before the player started: whole JACK periods (the copies' positions are
    # estimates of chains that ran on that silence first: within a sample of the replay's)
    shift = np.median(
        [g["copies"][0]["start_sample"] - w["copies"][0]["start_sample"] for g, w in zip(got[-2:], want[-2:])]
    )
    offset = int(round(shift / 1024)) * 1024
    assert offset > 0 and abs(shift - offset) <= 1
    # exactly the bundles of the same samples through the service's pipeline
    x = sf.read(str(CAP) + ".wav", dtype="float64")[0] / META["global"]["gla:scale"]
    x = np.vstack([np.zeros((offset, 12)), x, np.zeros((src["samples"] - offset - len(x), 12))])
    ref = sorted(_service_bundles_of(x), key=key)
    assert [_measured(b) for b in got] == [_measured(b) for b in ref]
    # and those of `gla replay`: the same frames, channels, codes, hubs, inputs, inferred input
    # at the same positions less the silence; all of them but, at some lengths of silence, the
    # first burst, 0.3 s after the capture's start (the chains' start-up: 6 periods of silence
    # before it lose it, in the service's pipeline as here)
    for b in got:
        assert any(_same(b) == _same(w) and abs(key(b)[0] - offset - key(w)[0]) <= 1 for w in want), b
    assert len(got) == 4 or (len(got) == 3 and got[0]["frame_hex"] == want[1]["frame_hex"])
    # the time is the wall clock's (the capture's own start time is in 2025)
    arrivals = [datetime.fromisoformat(c["arrival_utc"]) for b in got for c in b["copies"]]
    assert all(wall_start - timedelta(seconds=1) < t < datetime.now(UTC) for t in arrivals)
