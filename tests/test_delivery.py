"""Durable spool and delivery to the Computing Platform (issue [3/6] item 5).

The deliverer runs against the real platform app served by uvicorn on 127.0.0.1 (an ephemeral
port) in a thread, with a receiver token registered through the receivers route (the
``platform`` fixture, :class:`platform_api.testing.Harness`). Backoff is checked against small
ASGI test doubles driven step by step with an explicit clock.
"""

from __future__ import annotations

import json
import logging
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import httpx
import pytest

from platform_api.testing import bundles_for, fleet, gridmodel, report, slot_time
from receiver.delivery import Deliverer, deliver_all
from receiver.spool import Spool, SpoolError, SpoolFull
from tests.test_service_metrics import parse

ROOT = Path(__file__).resolve().parents[1]
S0 = 448_826_400  # 2026-11-22


def _bundle(i: int, pad: int = 0) -> dict:
    """A small schema-free bundle for spool-only tests."""
    return {"bundle_id": f"b{i:031d}", "n": i, "pad": "x" * pad}


def _wait(pred, timeout: float = 15.0, every: float = 0.02) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(every)
    return pred()


@pytest.fixture
def spool(tmp_path):
    s = Spool(tmp_path / "spool.db", synchronous="NORMAL")
    yield s
    s.close()


# -- the spool -----------------------------------------------------------------------------------
def test_spool_put_due_mark_round_trip(spool):
    t0 = 1_800_000_000.0
    assert spool.put(_bundle(0), now=t0) is True
    assert spool.put_many([_bundle(i) for i in range(1, 5)], now=t0 + 1) == 4
    assert spool.depth() == 5 and spool.total() == 5
    assert spool.oldest_pending_age_s(now=t0 + 10) == pytest.approx(10.0)
    due = spool.due(3, now=t0 + 2)
    assert [d.bundle_id for d in due] == [_bundle(i)["bundle_id"] for i in range(3)]  # FIFO
    assert json.loads(due[0].body) == _bundle(0) and due[0].attempts == 0
    assert spool.due(10, now=t0 + 0.5)[-1].bundle_id == _bundle(0)["bundle_id"]  # not yet created ones are not due

    assert (
        spool.mark_delivered([due[0].bundle_id, due[1].bundle_id], 201, response='{"status":"accepted"}', now=t0 + 3)
        == 2
    )
    assert spool.mark_failed(due[2].bundle_id, "connect: refused", t0 + 100) == 1
    assert spool.mark_rejected(_bundle(3)["bundle_id"], 422, response="body.channel: too big", now=t0 + 3) == 1
    assert spool.mark_delivered(due[0].bundle_id, 201) == 0  # only pending rows change

    assert spool.counts() == {"pending": 2, "delivered": 2, "rejected": 1}
    assert [d.bundle_id for d in spool.due(10, now=t0 + 50)] == [_bundle(4)["bundle_id"]]  # the failed one waits
    assert spool.next_due() == pytest.approx(t0 + 1)
    later = spool.due(10, now=t0 + 100)
    assert [d.bundle_id for d in later] == [_bundle(2)["bundle_id"], _bundle(4)["bundle_id"]]
    assert later[0].attempts == 1
    row = spool.get(_bundle(2)["bundle_id"])
    assert row["status"] == "pending" and row["last_error"] == "connect: refused" and row["attempts"] == 1
    rej = spool.rows("rejected")
    assert len(rej) == 1 and rej[0]["http_status"] == 422 and "channel" in rej[0]["response"]
    assert spool.get(_bundle(0)["bundle_id"])["delivered"] == pytest.approx(t0 + 3)
    # release makes backed-off rows due at once
    assert spool.release(now=t0 + 60) == 1
    assert len(spool.due(10, now=t0 + 60)) == 2


def test_spool_put_is_idempotent(spool):
    b = _bundle(7)
    assert spool.put(b) is True
    assert spool.put(b) is False
    assert spool.put({**b, "n": 999}) is False  # same id, other body: the first stays
    assert spool.put_many([b, _bundle(8), _bundle(8)]) == 1
    assert spool.total() == 2 and spool.depth() == 2
    assert json.loads(spool.get(b["bundle_id"])["body"])["n"] == 7
    # a pydantic Bundle and JSON text are accepted too
    from receiver.contracts.bundle import Bundle

    hub = fleet(1)[0]
    t = slot_time(S0)
    d = bundles_for(hub, report(hub, t, 1), at=t)[0]
    assert spool.put(Bundle.model_validate(d)) is True
    assert spool.put(json.dumps(d)) is False
    with pytest.raises(ValueError):
        spool.put({"no": "id"})


def test_spool_full_on_a_tiny_budget_loses_nothing(tmp_path):
    s = Spool(tmp_path / "tiny.db", max_bytes=96 * 1024, synchronous="NORMAL")
    accepted = []
    with pytest.raises(SpoolFull) as ei:
        for i in range(200):
            s.put(_bundle(i, pad=3000))
            accepted.append(i)
    assert 3 < len(accepted) < 200
    assert "budget" in str(ei.value) and ei.value.max_bytes == 96 * 1024
    assert s.total() == len(accepted) == s.depth()  # the refused one left no trace
    # pending rows are never dropped to make room: still full
    with pytest.raises(SpoolFull):
        s.put(_bundle(500, pad=3000))
    # once delivered, rows may be dropped (oldest first) to take new ones
    ids = [d.bundle_id for d in s.due(100)]
    s.mark_delivered(ids[:4], 201)
    assert s.put(_bundle(500, pad=3000)) is True
    assert s.depth() == len(accepted) - 4 + 1
    assert all(s.contains(i) for i in ids[4:])
    s.close()
    # the budget holds across a reopen
    s = Spool(tmp_path / "tiny.db", max_bytes=96 * 1024)
    assert s.depth() == len(accepted) - 3
    s.close()


def test_disk_full_error_becomes_spool_full(tmp_path):
    s = Spool(tmp_path / "disk.db", synchronous="NORMAL")
    s.put(_bundle(0))
    c = s._conn()
    pages = c.execute("PRAGMA page_count").fetchone()[0]
    c.execute(f"PRAGMA max_page_count={pages}")  # SQLite now answers 'database or disk is full'
    with pytest.raises(SpoolFull) as ei:
        for i in range(1, 50):
            s.put(_bundle(i, pad=5000))
    assert "disk is full" in str(ei.value)
    assert isinstance(ei.value.__cause__, sqlite3.OperationalError)
    n = s.total()
    c.execute("PRAGMA max_page_count=1073741823")  # room again: the caller's retry succeeds
    assert s.put(_bundle(99, pad=5000)) is True and s.total() == n + 1
    s.close()


def test_spool_persists_across_reopen_and_kill9(tmp_path):
    path = tmp_path / "p.db"
    s = Spool(path)
    s.put_many([_bundle(i) for i in range(5)])
    s.mark_delivered(_bundle(0)["bundle_id"], 201)
    s.mark_failed(_bundle(1)["bundle_id"], "timeout", 123.0)
    s.close()
    s = Spool(path)
    assert s.counts() == {"pending": 4, "delivered": 1, "rejected": 0}
    assert s.get(_bundle(1)["bundle_id"])["next_attempt"] == 123.0
    s.close()
    # a writer killed with SIGKILL right after put() returned: the bundle is there
    code = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(ROOT)!r})
        from receiver.spool import Spool
        s = Spool({str(path)!r})
        for i in range(100, 140):
            s.put({{"bundle_id": "k%031d" % i}})
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    p = subprocess.run([sys.executable, "-c", code], timeout=60)
    assert p.returncode == -9
    s = Spool(path)
    assert s.depth() == 4 + 40 and s.contains(f"k{139:031d}")
    # a reader in another process sees the same
    r = Spool(path, readonly=True)
    assert r.depth() == 44
    with pytest.raises(SpoolError):
        r.put(_bundle(1000))
    r.close()
    s.close()


def test_spool_threads_and_housekeeping(tmp_path):
    s = Spool(tmp_path / "t.db", synchronous="NORMAL")
    errors = []

    def writer(k):
        try:
            for i in range(50):
                s.put(_bundle(k * 1000 + i))
                s.put(_bundle(i))  # contended duplicates
        except Exception as e:  # pragma: no cover
            errors.append(e)

    th = [threading.Thread(target=writer, args=(k,)) for k in range(1, 5)]
    for t in th:
        t.start()
    depths = [s.depth() for _ in range(20)]
    for t in th:
        t.join()
    assert not errors and s.total() == 4 * 50 + 50 and depths == sorted(depths)
    now = time.time()
    ids = s.ids("pending")
    s.mark_delivered(ids[:100], 201, now=now - 10 * 86400)
    s.mark_delivered(ids[100:150], 201, now=now - 86400)
    s.mark_rejected(ids[150:160], 422, now=now - 30 * 86400)
    assert s.purge(older_than_days=7, now=now) == 100
    assert s.counts() == {"pending": 90, "delivered": 50, "rejected": 10}
    s.close()


# -- the platform, served ------------------------------------------------------------------------
class Served:
    """An ASGI app served by uvicorn in a thread on a socket bound to 127.0.0.1 (port 0)."""

    def __init__(self, app, sock: socket.socket | None = None) -> None:
        import uvicorn

        self.sock = sock or _bound()
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def start(self) -> Served:
        self.thread.start()
        assert _wait(lambda: self.server.started, 10), "uvicorn did not start"
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


def _bound() -> socket.socket:
    """Bound but not listening: connections are refused until uvicorn listens on it."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    return s


@pytest.fixture
def plat(platform):
    hubs = fleet(4, meters=(1, 2))
    platform.import_model(gridmodel(hubs))
    platform.hubs = hubs
    yield platform


@pytest.fixture
def served(plat):
    srv = Served(plat.app).start()
    yield srv
    srv.stop()


def _real_bundles(plat, n: int, first: int = 0) -> list[dict]:
    out = []
    for i in range(first, first + n):
        hub = plat.hubs[i % len(plat.hubs)]
        t = slot_time(S0 + i)
        out.append(
            bundles_for(hub, report(hub, t, 1), at=t, receiver_id=plat.receiver_id, substation_id=plat.substation_id)[0]
        )
    return out


def _stored(plat) -> dict[str, str]:
    from platform_api.models import BundleRow

    with plat.pf.db.session() as s:
        return {r.bundle_id: r.status for r in s.query(BundleRow).all()}


def _fast(**kw) -> dict:
    return {"backoff_initial_s": 0.05, "backoff_max_s": 0.2, "idle_poll_s": 0.05, "timeout_s": 5.0, **kw}


def test_all_delivered_once_and_replays_are_harmless(plat, served, spool):
    bundles = _real_bundles(plat, 30)
    d = Deliverer(spool, served.url, plat.token, batch=8, **_fast()).start()
    for b in bundles[:10]:
        assert d.submit(b) is True
    spool.put_many(bundles[10:])
    d.wake()
    assert _wait(lambda: spool.depth() == 0)
    d.stop()
    st = d.stats()
    stored = _stored(plat)
    assert set(stored) == {b["bundle_id"] for b in bundles}
    assert set(stored.values()) == {"accepted"}
    assert st["delivered"] == 30 and st["replayed"] == 0 and st["posted"] == 30 and st["batch_endpoint"] is True
    assert st["platform_status"] == {"accepted": 30} and st["last_success_time"] and st["spool_depth"] == 0
    assert json.loads(spool.get(bundles[0]["bundle_id"])["response"])["status"] == "accepted"
    # the same bundles again (e.g. a receiver restarted before marking them): replays, nothing new
    spool.requeue(spool.ids())
    d2 = Deliverer(spool, served.url + "/api/v1/bundles", plat.token, batch=8, **_fast()).start()
    assert _wait(lambda: spool.depth() == 0)
    d2.stop()
    assert d2.stats()["replayed"] == 30 and len(_stored(plat)) == 30
    # one by one (no batch route used) gives the same
    spool.requeue(spool.ids()[:3])
    out = deliver_all(spool, served.url, plat.token, batch=1)
    assert out["complete"] and out["replayed"] == 3 and out["requests"] == 3
    _, m = parse(d.prometheus())
    assert m["gla_delivery_delivered_total"] == 30 and m["gla_spool_depth"] == 0
    assert m['gla_delivery_failures_total{reason="connect"}'] == 0
    # every 2xx is timed from the spool to the answer, every post from sending to the answer
    assert m["gla_delivery_latency_seconds_count"] == 30 and m["gla_delivery_latency_seconds_sum"] > 0
    assert m["gla_delivery_request_seconds_count"] == d.stats()["requests"] > 0


def test_platform_down_then_up_everything_arrives(plat, spool):
    sock = _bound()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    bundles = _real_bundles(plat, 20)
    d = Deliverer(spool, url, plat.token, batch=5, **_fast()).start()
    for b in bundles[:12]:
        d.submit(b)
    assert _wait(lambda: d.stats()["failures"]["connect"] >= 3)
    assert spool.depth() == 12 and _stored(plat) == {}
    srv = Served(plat.app, sock).start()
    try:
        for b in bundles[12:]:
            d.submit(b)
        assert _wait(lambda: spool.depth() == 0)
    finally:
        d.stop()
        srv.stop()
    st = d.stats()
    assert set(_stored(plat)) == {b["bundle_id"] for b in bundles}
    assert st["retries"] >= 5 and st["delivered"] == 20 and st["failures"]["connect"] >= 3
    assert st["last_error"].startswith("connect") and st["consecutive_failures"] == 0
    assert all(spool.get(b["bundle_id"])["attempts"] >= 2 for b in bundles[:5])


def test_unknown_token_stops_posting_and_keeps_the_spool(plat, served, spool, caplog):
    bundles = _real_bundles(plat, 6)
    spool.put_many(bundles)
    d = Deliverer(spool, served.url, "not-the-token", batch=4, **_fast())
    with caplog.at_level(logging.ERROR, logger="gla.delivery"):
        d.start()
        assert _wait(lambda: d.halted is not None)
        time.sleep(0.2)
    requests = d.stats()["requests"]
    assert requests == 1 and "401" in d.halted and d.stats()["failures"]["auth"] == 1
    assert spool.depth() == 6 and all(spool.get(b["bundle_id"])["attempts"] == 0 for b in bundles)
    assert _stored(plat) == {}
    rec = [r for r in caplog.records if getattr(r, "event", None) == "delivery_halted"]
    assert rec and rec[0].depth == 6
    assert parse(d.prometheus())[1]["gla_delivery_halted"] == 1
    d.resume(token=plat.token)  # the operator fixed the credentials
    assert _wait(lambda: spool.depth() == 0)
    d.stop()
    assert len(_stored(plat)) == 6 and d.halted is None


def test_wrong_substation_is_403_and_halts(plat, served, spool):
    hub = plat.hubs[0]
    t = slot_time(S0)
    b = bundles_for(hub, report(hub, t, 1), at=t, substation_id="sub-9")[0]
    spool.put(b)
    out = deliver_all(spool, served.url, plat.token, max_wait_s=10)
    assert not out["complete"] and out["halted"].startswith("HTTP 403") and "sub-1" in out["halted"]
    assert spool.depth() == 1


def test_schema_error_is_rejected_kept_and_not_retried(plat, served, spool):
    bundles = _real_bundles(plat, 9)
    bad = dict(bundles[2], channel=99)  # valid for the receiver's model, refused by the platform's limits
    spool.put_many(bundles[:2] + [bad] + bundles[3:6])
    d = Deliverer(spool, served.url, plat.token, batch=10, **_fast()).start()
    assert _wait(lambda: spool.depth() == 0)
    time.sleep(0.2)
    st = d.stats()
    assert st["rejected"] == 1 and st["delivered"] == 5
    assert st["requests"] == 1  # the batch answered per bundle: 422 for one, 201 for the others
    row = spool.get(bad["bundle_id"])
    assert row["status"] == "rejected" and row["http_status"] == 422 and "channel" in row["response"]
    assert json.loads(row["body"])["channel"] == 99  # kept for inspection
    # a bundle the platform's model refuses fails the whole batch: posted one by one to find it
    bad2 = dict(bundles[7], copies=[])
    spool.put_many([bundles[6], bad2, bundles[8]])
    d.wake()
    assert _wait(lambda: spool.depth() == 0)
    time.sleep(0.2)
    d.stop()
    st = d.stats()
    assert st["requests"] == 1 + 1 + 3 and st["rejected"] == 2 and st["delivered"] == 7
    row = spool.get(bad2["bundle_id"])
    assert row["status"] == "rejected" and "copies" in row["response"]
    stored = _stored(plat)
    assert bad["bundle_id"] not in stored and bad2["bundle_id"] not in stored and len(stored) == 7


def test_conflict_is_delivered_with_an_error_logged(plat, served, spool, caplog):
    b = _real_bundles(plat, 1)[0]
    assert plat.post(b).status_code == 201
    other = json.loads(json.dumps(b))
    other["copies"][0]["snr_db"] += 1.0
    spool.put(other)
    with caplog.at_level(logging.ERROR, logger="gla.delivery"):
        out = deliver_all(spool, served.url, plat.token)
    assert out["complete"] and out["conflicts"] == 1 and out["delivered"] == 0
    row = spool.get(b["bundle_id"])
    assert row["status"] == "delivered" and row["http_status"] == 409 and "different body" in row["response"]
    assert any(
        getattr(r, "event", None) == "delivery_conflict" and r.bundle_id == b["bundle_id"] for r in caplog.records
    )


def test_full_spool_holds_bundles_in_memory_until_delivery_makes_room(plat, served, tmp_path):
    s = Spool(tmp_path / "small.db", max_bytes=160 * 1024, synchronous="NORMAL")
    bundles = _real_bundles(plat, 80)
    d = Deliverer(s, served.url, plat.token, batch=10, **_fast())
    held = [d.submit(b) for b in bundles]  # not started: the spool fills up
    assert held.count(False) > 0 and d.stats()["overflow"] == held.count(False)
    assert d.stats()["failures"]["spool"] >= 1
    d.start()
    assert _wait(lambda: d.stats()["overflow"] == 0 and s.depth() == 0, timeout=30)
    d.stop()
    assert set(_stored(plat)) == {b["bundle_id"] for b in bundles}
    s.close()


# -- backoff against test doubles (ASGI apps), with an explicit clock -----------------------------
class Flaky:
    """ASGI app: answers ``script`` status codes in turn (then 201), records what it got."""

    def __init__(self, script=(), batch: bool = True, poison: str | None = None, retry_after: str | None = None):
        self.script = list(script)
        self.batch = batch
        self.poison = poison
        self.retry_after = retry_after
        self.calls: list[tuple[str, int]] = []
        self.stored: dict[str, int] = {}

    async def __call__(self, scope, receive, send):
        assert scope["type"] == "http"
        body = b""
        while True:
            m = await receive()
            body += m.get("body", b"")
            if not m.get("more_body"):
                break
        path = scope["path"]
        if path.endswith("/batch") and not self.batch:
            return await self._send(send, 404, {"detail": "Not Found"})
        data = json.loads(body)
        items = data["bundles"] if path.endswith("/batch") else [data]
        self.calls.append((path, len(items)))
        if self.script:
            code = self.script.pop(0)
            hdr = [(b"retry-after", self.retry_after.encode())] if self.retry_after and code in (429, 503) else []
            return await self._send(send, code, {"detail": "injected"}, hdr)
        if not path.endswith("/batch") and data["bundle_id"] == self.poison:
            return await self._send(send, 500, {"detail": "platform bug"})
        res = []
        for b in items:
            replayed = b["bundle_id"] in self.stored
            self.stored[b["bundle_id"]] = self.stored.get(b["bundle_id"], 0) + 1
            res.append(
                {
                    "bundle_id": b["bundle_id"],
                    "http_status": 201,
                    "replayed": replayed,
                    "result": {"bundle_id": b["bundle_id"], "status": "accepted"},
                }
            )
        if path.endswith("/batch"):
            return await self._send(send, 200, {"results": res})
        hdr = [(b"idempotent-replayed", b"true")] if res[0]["replayed"] else []
        return await self._send(send, 201, res[0]["result"], hdr)

    @staticmethod
    async def _send(send, code, obj, headers=()):
        raw = json.dumps(obj).encode()
        await send(
            {
                "type": "http.response.start",
                "status": code,
                "headers": [(b"content-type", b"application/json"), *headers],
            }
        )
        await send({"type": "http.response.body", "body": raw})


def _client(app) -> httpx.Client:
    from starlette.testclient import TestClient

    return TestClient(app, base_url="http://test")


def test_backoff_doubles_with_5xx_and_resets(spool):
    app = Flaky(script=[500, 503, 502, 500, 500, 500])
    spool.put_many([_bundle(i) for i in range(4)], now=0.0)
    d = Deliverer(
        spool, "http://test", "tok", batch=10, backoff_initial_s=1.0, backoff_max_s=8.0, jitter=0.0, client=_client(app)
    )
    now, waits = 10.0, []
    for _ in range(6):
        w = d.step(now=now)
        waits.append(w)
        assert d.step(now=now + w / 2) == pytest.approx(w / 2)  # no request before the backoff ends
        now += w
    assert waits == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]  # doubling, capped at backoff_max_s
    assert len(app.calls) == 6 and spool.depth() == 4
    assert d.stats()["failures"]["http_5xx"] == 6 and d.stats()["retries"] == 5 * 4
    assert spool.get(_bundle(0)["bundle_id"])["attempts"] == 6
    assert d.step(now=now) == 0.0  # the platform answers again
    assert spool.depth() == 0 and d.stats()["consecutive_failures"] == 0 and d.stats()["delivered"] == 4
    # after a success the next failure starts from the initial delay again
    app.script = [503]
    spool.put(_bundle(10), now=now)
    assert d.step(now=now + 1) == 1.0


def test_backoff_jitter_and_retry_after(spool):
    app = Flaky(script=[429, 503, 503, 503, 503], retry_after="3")
    spool.put(_bundle(0), now=0.0)
    d = Deliverer(
        spool, "http://test", "tok", backoff_initial_s=0.5, backoff_max_s=2.0, jitter=0.5, client=_client(app)
    )
    w = d.step(now=1.0)
    assert w == pytest.approx(2.0)  # Retry-After 3 s, capped at backoff_max_s
    ws = []
    now = 1.0 + w
    for _ in range(4):
        ws.append(d.step(now=now))
        now += ws[-1]
    assert all(0.5 * min(2.0, 0.5 * 2**k) <= x for k, x in enumerate(ws, start=1))
    assert all(x <= 2.0 for x in ws) and d.stats()["failures"]["http_429"] == 1


def test_poison_bundle_backs_off_alone_and_batch_route_is_optional(spool):
    ids = [_bundle(i)["bundle_id"] for i in range(5)]
    app = Flaky(batch=False, poison=ids[1])
    spool.put_many([_bundle(i) for i in range(5)], now=0.0)
    d = Deliverer(spool, "http://test", "tok", batch=10, backoff_initial_s=1.0, jitter=0.0, client=_client(app))
    assert d.step(now=1.0) == 0.0
    assert d.stats()["batch_endpoint"] is False  # 404 on /batch: one by one from now on
    assert spool.depth() == 1 and spool.get(ids[1])["status"] == "pending"
    assert spool.get(ids[1])["next_attempt"] == pytest.approx(2.0)
    assert set(app.stored) == set(ids) - {ids[1]}
    assert d.step(now=1.5) > 0  # nothing due yet: no request
    n = len(app.calls)
    d.step(now=2.0)
    assert len(app.calls) == n + 1 and spool.get(ids[1])["attempts"] == 2
    assert spool.get(ids[1])["next_attempt"] == pytest.approx(4.0)


def test_timeouts_are_retried_and_halve_the_batch(spool):
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        n = len(json.loads(request.content).get("bundles", [0]))
        calls.append(n)
        if len(calls) <= 2:
            raise httpx.ReadTimeout("slow", request=request)
        res = [
            {"bundle_id": b["bundle_id"], "http_status": 201, "replayed": True}
            for b in json.loads(request.content)["bundles"]
        ]
        return httpx.Response(200, json={"results": res})

    spool.put_many([_bundle(i) for i in range(40)], now=0.0)
    d = Deliverer(
        spool,
        "http://test",
        "tok",
        batch=40,
        backoff_initial_s=0.1,
        jitter=0.0,
        client=httpx.Client(transport=httpx.MockTransport(handler)),
    )
    now = 1.0
    for _ in range(12):
        if spool.depth() == 0:
            break
        now += d.step(now=now)
    assert spool.depth() == 0 and calls[:3] == [40, 20, 10]
    assert d.stats()["failures"]["timeout"] == 2 and d.stats()["replayed"] == 40


def test_deliver_all_progress_and_unreachable(spool, capsys):
    spool.put_many([_bundle(i) for i in range(3)])
    sock = _bound()  # nobody listens
    t = time.monotonic()
    out = deliver_all(
        spool,
        f"http://127.0.0.1:{sock.getsockname()[1]}",
        "tok",
        timeout_s=1,
        max_wait_s=0.6,
        backoff_initial_s=0.05,
        progress=True,
    )
    sock.close()
    assert time.monotonic() - t < 5
    assert not out["complete"] and out["pending"] == 3 and out["failures"]["connect"] >= 2
    app = Flaky()
    out = deliver_all(spool, "http://test", "tok", client=_client(app), progress=True)
    assert out["complete"] and out["delivered"] == 3 and len(app.stored) == 3
    assert "posting" in capsys.readouterr().err


def test_clock_going_back_does_not_strand_bundles(spool):
    app = Flaky()
    spool.put_many([_bundle(i) for i in range(3)], now=10_000.0)  # accepted "in the future"
    d = Deliverer(spool, "http://test", "tok", backoff_max_s=5.0, client=_client(app))
    assert d.step(now=100.0) == 0.0  # released: due now
    d.step(now=100.0)
    assert spool.depth() == 0 and len(app.stored) == 3
    assert spool.oldest_pending_age_s(now=100.0) == 0.0


def test_replay_post_spools_each_bundle_as_it_is_made_and_delivers_them(plat, served, tmp_path, capsys):
    """`gla replay --post`: every bundle goes into the spool as the replay makes it (before its
    archive line), and all of them reach the platform once."""
    from receiver.cli import main
    from receiver.spool import Spool

    truth = json.loads(Path("captures/demo_small.truth.json").read_text())
    plat.import_model({"capture": truth["capture"]})  # the capture's hubs and keys: every frame decoded
    out = tmp_path / "out"
    argv = ["replay", "captures/demo_small", "--workers", "0", "--no-progress", "--out", str(out)]
    argv += ["--post", served.url, "--token", plat.token, "--receiver-id", plat.receiver_id]
    argv += ["--substation-id", plat.substation_id]
    assert main(argv) == 0, capsys.readouterr().err
    sp = Spool(out / "spool.sqlite")
    try:
        made = sp.total()
        assert made >= 4 and sp.counts().get("delivered") == made
    finally:
        sp.close()
    assert len(_stored(plat)) == made
