"""A full disk loses nothing and kills nothing: the receiver's spool comes first, archive lines are
whole or absent (a torn tail is repaired on start), a full disk makes the receiver degraded
(bundles held in memory up to a bound, /healthz 503, a metric, a log line) and it recovers by
itself when room returns.

Each scenario runs on a real small tmpfs when this process may mount one (root), and always with
``ENOSPC`` injected (``gridsim.hostile.disk_full.InjectedDisk``: short write then ENOSPC on
``os.write`` under the data directory, SQLite's "database or disk is full" on its connections).
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from gridsim.hostile.disk_full import InjectedDisk, TmpfsDisk, run
from platform_api.testing import bundles_for, fleet, report, slot_time
from receiver.archive import ArchiveWriteError, BundleArchive, read_archive
from receiver.contracts.bundle import Bundle
from receiver.sink import BundleSink
from receiver.spool import Spool

ROOT = Path(__file__).resolve().parents[1]


def _bundles(n: int) -> list[Bundle]:
    hubs = fleet(4, meters=(1, 2))
    out = []
    for i in range(n):
        hub, t = hubs[i % 4], slot_time(448_826_400 + i)
        out.append(Bundle.model_validate(bundles_for(hub, report(hub, t, 1), at=t)[0]))
    return out


@pytest.fixture(params=["tmpfs", "injected"])
def disk(request, tmp_path):
    if request.param == "tmpfs":
        try:
            d = TmpfsDisk(tmp_path / "data", size_bytes=1 << 20)
        except OSError as e:
            pytest.skip(f"no tmpfs here ({e}); the injected variant runs instead")
    else:
        d = InjectedDisk(tmp_path / "data")
    yield d
    d.close()


def _wait(pred, timeout: float = 30.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


# -- the archive ---------------------------------------------------------------------------------
def test_archive_lines_are_whole_or_absent_on_a_full_disk(disk):
    bs = _bundles(6)
    a = BundleArchive(disk.path / "archive")
    a.write(bs[0])
    path = a.path_for(bs[0])
    before = path.read_bytes()
    disk.fill()
    failed = 0
    for b in bs[1:4]:  # the first may still fit in the file's last page (tmpfs)
        try:
            a.write(b)
        except ArchiveWriteError as e:
            failed += 1
            assert e.errno == 28
        data = path.read_bytes()
        assert data.endswith(b"\n") and data.startswith(before)  # never a torn line
    assert failed >= 2
    disk.free()
    a.write(bs[4])
    a.close()
    got = [x.bundle_id for x in read_archive(path)]
    assert got[0] == bs[0].bundle_id and got[-1] == bs[4].bundle_id and len(got) == len(set(got))


def test_a_torn_tail_is_cut_back_on_start(tmp_path, caplog):
    bs = _bundles(3)
    a = BundleArchive(tmp_path)
    a.write(bs[0])
    a.close()
    path = a.path_for(bs[0])
    whole = path.read_bytes()
    with open(path, "ab") as f:  # a crash in the middle of a line
        f.write(bs[1].model_dump_json().encode()[:100])
    with caplog.at_level(logging.WARNING, logger="gla.archive"):
        a = BundleArchive(tmp_path)
    assert path.read_bytes() == whole and a.repaired_bytes == 100
    assert any(getattr(r, "event", None) == "archive_torn_tail" and r.bytes_dropped == 100 for r in caplog.records)
    a.write(bs[2])
    a.close()
    assert [x.bundle_id for x in read_archive(path)] == [bs[0].bundle_id, bs[2].bundle_id]


# -- the sink: spool first, degraded, bounded, recovers --------------------------------------------
def test_full_disk_holds_bundles_in_order_and_counts_what_the_bound_drops(disk, caplog):
    bs = _bundles(12)
    spool = Spool(disk.path / "spool.sqlite")
    a = BundleArchive(disk.path / "archive")
    sink = BundleSink(spool, a, hold_max=4, retry_initial_s=0.02, retry_max_s=0.1)
    with caplog.at_level(logging.INFO, logger="gla.receiver"):
        sink.accept(bs[0])
        assert spool.ids() == [bs[0].bundle_id] and sink.degraded is None
        disk.fill()
        for b in bs[1:7]:  # 4 held, 2 dropped
            sink.accept(b)
        st = sink.state()
        assert st["degraded"] and st["reason"] == "disk_full" and st["held"] == 4 and st["dropped"] == 2
        time.sleep(0.3)  # the retries meet the full disk and back off
        assert sink.degraded == "disk_full" and spool.ids() == [bs[0].bundle_id]
        disk.free()
        assert _wait(lambda: sink.degraded is None and sink.stats()["held"] == 0)
        for b in bs[7:]:
            sink.accept(b)
    kept = [bs[0], *bs[1:5], *bs[7:]]
    assert spool.ids() == [b.bundle_id for b in kept]  # in order, nothing but the two dropped missing
    a.close()
    archived = [x.bundle_id for f in sorted(a.dir.glob("*.jsonl")) for x in read_archive(f)]
    assert archived == [b.bundle_id for b in kept]
    events = [getattr(r, "event", None) for r in caplog.records]
    assert events.count("degraded_enter") == 1 and events.count("degraded_leave") == 1
    drops = [r for r in caplog.records if getattr(r, "event", None) == "bundles_dropped"]
    assert drops and drops[0].levelno == logging.ERROR and "BUNDLES LOST" in drops[0].getMessage()
    assert sink.stats()["dropped"] == 2 and sink.close() == 0
    spool.close()


def test_archive_full_while_the_spool_takes_bundles_catches_up(tmp_path):
    """The archive on another (full) disk: bundles are spooled (first) and the archive writes
    them from the spool's copies when room returns."""
    bs = _bundles(5)
    disk = InjectedDisk(tmp_path / "archive-disk")
    try:
        spool = Spool(tmp_path / "spool.sqlite")
        a = BundleArchive(disk.path)
        sink = BundleSink(spool, a, retry_initial_s=0.02, retry_max_s=0.1)
        disk.fill()
        for b in bs[:3]:
            sink.accept(b)
        assert spool.ids() == [b.bundle_id for b in bs[:3]]  # durable in the spool regardless
        assert sink.degraded == "disk_full" and sink.state()["unarchived"] == 3
        disk.free()
        assert _wait(lambda: sink.degraded is None)
        for b in bs[3:]:
            sink.accept(b)
        a.close()
        assert [x.bundle_id for f in a.dir.glob("*.jsonl") for x in read_archive(f)] == [b.bundle_id for b in bs]
        sink.close()
        spool.close()
    finally:
        disk.close()


# -- the whole path: a replayed capture, a full disk mid-run, a live platform ------------------------
@pytest.mark.parametrize("mode", ["tmpfs", "injected"])
def test_replay_through_a_full_disk_delivers_every_bundle_once(mode, tmp_path):
    try:
        res = run(mode, passes=3, workdir=str(tmp_path / "bench"))
    except OSError as e:
        if mode == "tmpfs":
            pytest.skip(f"no tmpfs here ({e}); the injected variant runs instead")
        raise
    assert res["mode"] == mode
    assert res["bundles_made"] >= 8 and res["bundles_made_twice"] == 0
    assert res["bundles_delivered"] == res["bundles_made"]
    assert res["bundles_lost_disk_full"] == 0 and res["bundles_duplicated_disk_full"] == 0
    assert res["platform_rows"] == res["bundles_made"]
    assert res["archive_complete"] and res["archived"] == res["archived_distinct"] == res["bundles_made"]
    assert res["degraded_reasons"] == ["disk_full"] and res["held_total"] >= 1 and res["recovered"]
    assert res["dropped"] == 0 and res["lost_in_memory_at_stop"] == 0


# -- the service: /healthz, /metrics, logs ---------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:  # not listening yet
        return 0, ""


def test_service_on_a_full_disk_is_degraded_503_and_recovers(disk, caplog):
    from receiver.service import ReceiverConfig, run_service
    from receiver.sources import stream_capture

    meta = json.loads((ROOT / "captures" / "demo_small.sigmf-meta").read_text())
    chans = [{k: c[k] for k in ("index", "bus", "feeder", "phase")} for c in meta["global"]["gla:channels"]]
    zport, hport = _free_port(), _free_port()
    cfg = ReceiverConfig.model_validate(
        {
            "receiver": {"id": "rx-disk", "substation_id": "sub-1", "workers": 0, "data_dir": str(disk.path)},
            "input": {"endpoint": f"tcp://127.0.0.1:{zport}", "n_channels": 12, "channels": chans},
            "http": {"listen": f"127.0.0.1:{hport}"},
        }
    )
    stop = threading.Event()
    result: dict = {}
    th = threading.Thread(target=lambda: result.update(run_service(cfg, stop=stop)), daemon=True)
    base = f"http://127.0.0.1:{hport}"
    with caplog.at_level(logging.INFO, logger="gla.receiver"):
        th.start()
        assert _wait(lambda: (disk.path / "spool.sqlite").exists() and _get(base + "/healthz")[0] == 200, 180)
        disk.fill()
        stream_capture(ROOT / "captures" / "demo_small", f"tcp://127.0.0.1:{zport}", pattern="push", block_s=0.1)
        assert _wait(lambda: _get(base + "/healthz")[0] == 503, 60)
        code, body = _get(base + "/healthz")
        h = json.loads(body)
        assert code == 503 and h["status"] == "degraded: disk_full" and h["degraded"]["held"] >= 1
        metrics = _get(base + "/metrics")[1]
        assert 'gla_receiver_degraded{reason="disk_full"} 1.0' in metrics
        assert "gla_receiver_bundles_held_total" in metrics and "gla_receiver_bundles_dropped_total 0.0" in metrics
        assert _wait(lambda: json.loads(_get(base + "/healthz")[1])["bundles"] == 4, 60)
        disk.free()
        assert _wait(lambda: _get(base + "/healthz")[0] == 200, 30)  # by itself
        metrics = _get(base + "/metrics")[1]
        assert 'gla_receiver_degraded{reason="disk_full"} 0.0' in metrics
        stop.set()
        th.join(60)
    assert not th.is_alive()
    events = [getattr(r, "event", None) for r in caplog.records]
    assert "degraded_enter" in events and "degraded_leave" in events
    sp = Spool(disk.path / "spool.sqlite")
    spooled = sp.ids()
    sp.close()
    archived = [x.bundle_id for f in (disk.path / "archive").glob("*.jsonl") for x in read_archive(f)]
    assert len(spooled) == result["bundles"]["bundles"] == 4 and sorted(archived) == sorted(spooled)
