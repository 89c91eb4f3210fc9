"""The receiver service's /metrics (prometheus_client, parsed back with its parser) and /healthz:
a GNU Radio sink whose pass_tags disagrees with [input] pass_tags is shown on both (not 200
"ok" while every message is refused); the metric names kept; one registry per service."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from receiver.metrics import ServiceMetrics
from receiver.service import ReceiverConfig, run_service
from receiver.sources import stream_capture

ROOT = Path(__file__).resolve().parents[1]
CAP = ROOT / "captures" / "demo_small"

#: the names /metrics exported before prometheus_client (dashboards and alerts use them)
KEPT = {
    "gla_samples_in_total",
    "gla_gaps_total",
    "gla_gap_samples_total",
    "gla_duplicates_total",
    "gla_reordered_total",
    "gla_bad_frames_total",
    "gla_foreign_dropped_total",
    "gla_wrong_shape_dropped_total",
    "gla_unconfirmed_dropped_total",
    "gla_resyncs_total",
    "gla_nonfinite_total",
    "gla_clipped_total",
    "gla_bundles_total",
    "gla_bundles_crc_ok_total",
    "gla_crc_failures_total",
    "gla_stale_outputs_dropped_total",
    "gla_spool_depth",
    "gla_stream_time_seconds",
    "gla_lag_seconds",
    "gla_receiver_degraded",
    "gla_receiver_bundles_held",
    "gla_receiver_bundles_held_total",
    "gla_receiver_bundles_dropped_total",
    "gla_archive_unwritten_bundles",
    "gla_archive_gap_bundles_total",
}


def parse(text: str) -> tuple[dict[str, str], dict[str, float]]:
    """Prometheus text -> ({family: type}, {sample name{labels}: value}), by prometheus_client's parser."""
    types, samples = {}, {}
    for fam in text_string_to_metric_families(text):
        types[fam.name] = fam.type
        for s in fam.samples:
            lab = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            samples[s.name + (f"{{{lab}}}" if lab else "")] = s.value
    return types, samples


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.headers["Content-Type"], r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read().decode()


def _gr_config(tmp_path: Path, zport: int, hport: int, pass_tags: bool) -> ReceiverConfig:
    meta = json.loads(CAP.with_suffix(".sigmf-meta").read_text())
    chans = [{k: c[k] for k in ("index", "bus", "feeder", "phase")} for c in meta["global"]["gla:channels"]]
    return ReceiverConfig.model_validate(
        {
            "receiver": {"id": "rx-tags", "substation_id": "sub-test", "workers": 0, "data_dir": str(tmp_path / "d")},
            "input": {
                "endpoint": f"tcp://127.0.0.1:{zport}",
                "framing": "gr",
                "n_channels": 12,
                "sample_rate_hz": 48000,
                "pass_tags": pass_tags,
                "channels": chans,
            },
            "http": {"listen": f"127.0.0.1:{hport}"},
        }
    )


@pytest.mark.parametrize("sink_tags", [False, True])
def test_pass_tags_mismatch_is_shown_on_healthz_and_metrics(tmp_path, sink_tags):
    zport, hport = _free_port(), _free_port()
    cfg = _gr_config(tmp_path, zport, hport, pass_tags=not sink_tags)
    stop = threading.Event()
    th = threading.Thread(target=run_service, args=(cfg,), kwargs={"stop": stop}, daemon=True)
    th.start()
    base = f"http://127.0.0.1:{hport}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the listener is up before the first message
            try:
                _get(base + "/healthz")
                break
            except OSError:
                time.sleep(0.1)
        stream_capture(
            CAP, f"tcp://127.0.0.1:{zport}", pattern="push", framing="gr", pass_tags=sink_tags, duration_s=1.0
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            code, ctype, text = _get(base + "/metrics")
            types, m = parse(text)
            if m.get("gla_messages_total", 0) >= 10:
                break
            time.sleep(0.1)
        assert code == 200 and ctype.startswith("text/plain; version=0.0.4")
        assert m["gla_pass_tags_mismatch_total"] == m["gla_messages_total"] == 10
        assert m["gla_bad_frames_total"] == 10 and m["gla_samples_in_total"] == 0
        assert m["gla_input_pass_tags_mismatch"] == 1.0 and types["gla_pass_tags_mismatch"] == "counter"
        code, _, body = _get(base + "/healthz")
        health = json.loads(body)
        assert code == 503
        want = (
            "starts with gr-zeromq's tag header but the receiver has pass_tags = false"
            if sink_tags
            else "expects gr-zeromq's tag header (pass_tags = true) but this message has none"
        )
        assert health["status"].startswith("input: ") and want in health["status"]
        assert health["input"]["problem"] in health["status"]
    finally:
        stop.set()
        th.join(timeout=30)
    assert not th.is_alive()


def test_each_service_has_its_own_registry():
    """Two services in one process: no duplicated-timeseries error, separate histograms."""
    a, b = ServiceMetrics(), ServiceMetrics()
    a.bundle_latency.observe(0.5)
    ta, tb = parse(a.render()[0].decode())[1], parse(b.render()[0].decode())[1]
    assert ta["gla_bundle_latency_seconds_count"] == 1 and tb["gla_bundle_latency_seconds_count"] == 0
    assert ta['gla_bundle_latency_seconds_bucket{le="0.5"}'] == 1
    assert a.render()[1] == "text/plain; version=0.0.4; charset=utf-8"
