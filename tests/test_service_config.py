"""The receiver's configuration (pydantic-settings: the TOML file, each key overridable by a
GLA_RECEIVER_* variable) and the shipped example config, run as written: its token_file names a
file that is not there, which was a traceback at start-up; now the receiver runs, spools, and says
why it does not post on /healthz."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from receiver.metrics import ServiceMetrics
from receiver.platform_link import PlatformLink
from receiver.service import PlatformSection, ReceiverConfig, load_config
from receiver.sources import stream_capture
from receiver.spool import Spool
from tests.test_service_metrics import _free_port, parse

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "deploy" / "receiver.example.toml"
CAP = ROOT / "captures" / "demo_small"


def test_the_example_config_loads_with_every_key_it_names():
    raw = tomllib.loads(EXAMPLE.read_text())
    cfg = load_config(EXAMPLE).model_dump()
    for section, keys in raw.items():
        for key, value in keys.items():
            if key != "channels":
                assert cfg[section][key] == value, (section, key)
    assert [c["index"] for c in cfg["input"]["channels"]] == list(range(12))


def test_environment_overrides_a_key_and_errors_are_one_line_naming_it(tmp_path, monkeypatch):
    monkeypatch.setenv("GLA_RECEIVER_PLATFORM__TOKEN", "tok-from-env")
    monkeypatch.setenv("GLA_RECEIVER_HTTP__LISTEN", "127.0.0.1:9999")
    cfg = load_config(EXAMPLE)
    assert cfg.platform.token == "tok-from-env" and cfg.http.listen == "127.0.0.1:9999"
    assert cfg.platform.token_file == "/etc/gla/receiver.token"  # the rest of the section is the file's
    # model_validate (tests, benchmarks) and ReceiverConfig.model_validate take their arguments only
    direct = ReceiverConfig.model_validate(tomllib.loads(EXAMPLE.read_text()))
    assert direct.platform.token is None and direct.http.listen == "127.0.0.1:9100"
    monkeypatch.setenv("GLA_RECEIVER_INPUT__N_CHANNELS", "twelve")
    with pytest.raises(ValueError) as e:
        load_config(EXAMPLE)
    assert str(e.value).startswith("GLA_RECEIVER_INPUT__N_CHANNELS='twelve': Input should be a valid integer")
    monkeypatch.delenv("GLA_RECEIVER_INPUT__N_CHANNELS")
    bad = tmp_path / "bad.toml"
    bad.write_text(
        EXAMPLE.read_text().replace('pattern = "pull"', 'pattern = "push"').replace("workers = 2", "workrs = 2")
    )
    with pytest.raises(ValueError) as e:
        load_config(bad)
    msg = str(e.value)
    assert "\n" not in msg and f"{bad}: receiver.workrs: Extra inputs are not permitted" in msg
    assert f"{bad}: input.pattern: Input should be 'pull' or 'sub'" in msg
    bad.write_text("[receiver\n")
    with pytest.raises(ValueError, match=f"^{bad}: "):
        load_config(bad)


def test_a_token_file_that_cannot_be_read_is_a_problem_named_not_a_crash(tmp_path):
    spool = Spool(tmp_path / "spool.sqlite")
    tf = tmp_path / "token"
    metrics = ServiceMetrics()
    link = PlatformLink(
        PlatformSection(url="http://127.0.0.1:9", token_file=str(tf)), "rx-1", spool, metrics, retry_s=0.0
    )
    link.try_start()
    assert link.deliverer is None and link.problem is not None
    assert link.problem.startswith(f"platform.token_file {tf}: cannot read it (No such file or directory)")
    tf.write_text("\n")
    link.try_start()
    assert link.deliverer is None and link.problem == f"platform.token_file {tf}: empty: bundles are only spooled"
    tf.write_text("tok-0123456789\n")
    link.try_start()  # the file is there now: posting starts
    try:
        assert link.problem is None and link.deliverer is not None and link.deliverer.token == "tok-0123456789"
        # the deliverer's metrics join the service's /metrics when it starts
        types = dict.fromkeys(parse(metrics.render()[0].decode())[0])
        assert "gla_delivery_latency_seconds" in types and "gla_delivery_posted" in types
    finally:
        link.stop(drain_s=0.0)
        spool.close()
    none = PlatformLink(PlatformSection(url="http://127.0.0.1:9"), "rx-1", None, ServiceMetrics())
    none.try_start()
    assert none.deliverer is None and "without platform.token or platform.token_file" in (none.problem or "")


@pytest.mark.skipif(Path("/etc/gla/receiver.token").exists(), reason="this machine has the example's token file")
def test_the_example_config_runs_as_written(tmp_path):
    """`gla receive --config deploy/receiver.example.toml`: the shipped file unchanged; where this
    test's receiver keeps its data and which ports it uses are given by GLA_RECEIVER_* variables."""
    zport, hport = _free_port(), _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GLA_RECEIVER_")}
    env.update(
        GLA_RECEIVER_RECEIVER__DATA_DIR=str(tmp_path / "data"),
        GLA_RECEIVER_INPUT__ENDPOINT=f"tcp://127.0.0.1:{zport}",
        GLA_RECEIVER_HTTP__LISTEN=f"127.0.0.1:{hport}",
    )
    cmd = [sys.executable, "-m", "receiver.cli", "receive", "--config", str(EXAMPLE), "--max-seconds", "8"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        health = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{hport}/healthz", timeout=5)
            except urllib.error.HTTPError as e:  # 503: the token file is not there
                health = json.loads(e.read())
                break
            except OSError:
                time.sleep(0.2)
        assert health is not None, proc.stderr.read() if proc.poll() is not None else "no answer"
        assert health["status"].startswith("platform: platform.token_file /etc/gla/receiver.token: cannot read it")
        stream_capture(CAP, f"tcp://127.0.0.1:{zport}", pattern="push", framing="gla", block_s=0.1)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    logged = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert any(r.get("event") == "platform_token" and r["level"] == "ERROR" for r in logged)
    sp = Spool(tmp_path / "data" / "spool.sqlite")
    assert sp.depth() == 4  # decoded and kept, for when the token is there
    sp.close()
