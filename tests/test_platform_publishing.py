"""Computing Platform: SSE, webhooks (with retry, to a local receiver), concentrator forwarding,
receivers, health."""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dsp.air import messages as M
from platform_api.testing import fleet, gridmodel, report, slot_time

T0 = slot_time(448_826_400)


class Sink:
    """A local webhook receiver: fails the first ``fail`` requests with 500, records the rest."""

    def __init__(self, fail: int = 0) -> None:
        self.got: list[tuple[dict[str, str], bytes]] = []
        self.fail, self.calls = fail, 0
        sink = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                sink.calls += 1
                if sink.calls <= sink.fail:
                    self.send_response(500)
                    self.end_headers()
                    return
                sink.got.append((dict(self.headers), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sink():
    s = Sink(fail=2)
    yield s
    s.close()


def _pairing(p, h, k=1):
    return p.send(h, M.Pairing(meter_id=91_000_000 + k, tan_index=5 + k), at=T0 + timedelta(seconds=8 * k))


def test_webhook_delivery_with_retry_and_signature(platform_make, sink):
    p = platform_make(webhook_backoff_s=0)
    (h,) = fleet(1)
    p.import_model(gridmodel([h]))
    w = p.client.post(
        "/api/v1/webhooks",
        json={"url": sink.url, "secret": "s3cret", "event_types": ["tan_member_added"]},
        headers=p.admin,
    )
    assert w.status_code == 201 and w.json()["has_secret"] and "secret" not in w.json()
    wid = w.json()["id"]
    _pairing(p, h)
    p.send(h, M.TanAnomaly(1, 0, int(T0.timestamp()), 10.0, 0.9), at=T0 + timedelta(seconds=30))  # not subscribed
    for expect in (
        {"delivered": 0, "failed": 0, "retrying": 1},
        {"delivered": 0, "failed": 0, "retrying": 1},
        {"delivered": 1, "failed": 0, "retrying": 0},
    ):
        assert p.client.post("/api/v1/forwarding/flush", headers=p.admin).json()["webhooks"] == expect
    ((headers, body),) = sink.got
    sig = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert headers["X-GLA-Signature"] == sig and headers["X-GLA-Event"] == "tan_member_added"
    msg = json.loads(body)
    assert msg["action"] == "created" and msg["event"]["type"] == "tan_member_added" and msg["seq"] >= 1
    (d,) = p.client.get(f"/api/v1/webhooks/{wid}/deliveries").json()
    assert d["status"] == "delivered" and d["attempts"] == 3 and d["last_status_code"] == 204
    assert p.client.get(f"/api/v1/webhooks/{wid}").json()["event_types"] == ["tan_member_added"]
    assert [x["id"] for x in p.client.get("/api/v1/webhooks").json()] == [wid]
    assert p.client.delete(f"/api/v1/webhooks/{wid}", headers=p.admin).json()["active"] is False
    for path in (f"/api/v1/webhooks/{wid + 7}", f"/api/v1/webhooks/{wid + 7}/deliveries"):
        assert p.client.get(path).status_code == 404
    assert p.client.delete(f"/api/v1/webhooks/{wid + 7}", headers=p.admin).status_code == 404
    assert p.client.post("/api/v1/webhooks", json={"url": "ftp://x"}, headers=p.admin).status_code == 422


def test_webhook_gives_up_after_max_attempts_and_background_delivers(platform_make):
    dead = Sink(fail=10**6)
    live = Sink()
    try:
        p = platform_make(
            webhook_backoff_s=0,
            webhook_max_attempts=2,
            background=True,
            background_interval_s=0.05,
            missed_check_interval_s=3600,
        )
        (h,) = fleet(1)
        p.import_model(gridmodel([h]))
        bad = p.client.post("/api/v1/webhooks", json={"url": dead.url}, headers=p.admin).json()["id"]
        p.client.post("/api/v1/webhooks", json={"url": live.url, "min_confidence": 0.5}, headers=p.admin)
        _pairing(p, h)
        deadline = time.time() + 10
        while time.time() < deadline and (not live.got or dead.calls < 2):
            time.sleep(0.05)
        assert live.got and dead.calls == 2
        time.sleep(0.2)
        (d,) = p.client.get(f"/api/v1/webhooks/{bad}/deliveries").json()
        assert d["status"] == "failed" and d["attempts"] == 2 and d["last_status_code"] == 500
    finally:
        dead.close()
        live.close()


def test_sse_stream_and_event_log(platform):
    (h,) = fleet(1)
    platform.import_model(gridmodel([h]))
    _pairing(platform, h, 1)
    _pairing(platform, h, 2)
    with platform.client.stream(
        "GET", "/api/v1/events/stream", params={"after": 0, "max_events": 2, "timeout_s": 10}
    ) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        text = "".join(r.iter_text())
    frames = [f for f in text.split("\n\n") if f.startswith("id:")]
    assert len(frames) == 2
    ids = [int(f.split("\n")[0][4:]) for f in frames]
    data = [json.loads(f.split("data: ", 1)[1]) for f in frames]
    assert [d["event"]["type"] for d in data] == ["tan_member_added"] * 2 and ids == [d["seq"] for d in data]
    # resume with Last-Event-ID: only what came after
    _pairing(platform, h, 3)
    with platform.client.stream(
        "GET",
        "/api/v1/events/stream",
        params={"max_events": 1, "timeout_s": 10},
        headers={"Last-Event-ID": str(ids[-1])},
    ) as r:
        text = "".join(r.iter_text())
    (f,) = [f for f in text.split("\n\n") if f.startswith("id:")]
    assert json.loads(f.split("data: ", 1)[1])["event"]["details"]["meter_id"] == 91_000_003
    # a filter that matches nothing ends on the timeout with no events
    with platform.client.stream(
        "GET", "/api/v1/events/stream", params={"after": 0, "type": ["restoration"], "timeout_s": 0.3}
    ) as r:
        assert "id:" not in "".join(r.iter_text())
    log = platform.client.get("/api/v1/events/log", params={"after": ids[0]}).json()
    assert [x["seq"] for x in log] == [ids[1], ids[1] + 1]
    assert platform.client.get("/api/v1/events/stream", params={"timeout_s": -1}).status_code == 422


class _Keep:
    def __init__(self, c):
        self.c = c

    def __enter__(self):
        return self.c

    def __exit__(self, *a):
        return False


def test_concentrator_merges_substations(platform_make, tmp_path, platform_sqlite_template):
    conc = platform_make(mode="concentrator")
    for sub in ("sub-1", "sub-2"):
        r = conc.client.post(
            "/api/v1/receivers",
            json={
                "receiver_id": f"platform-{sub}",
                "substation_id": sub,
                "role": "platform",
                "token": f"token-for-{sub}-0123456789",
            },
            headers=conc.admin,
        )
        assert r.status_code == 201
    subs = {}
    for sub in ("sub-1", "sub-2"):
        db = tmp_path / f"{sub}.db"
        shutil.copy(platform_sqlite_template, db)
        p = platform_make(
            database_url=f"sqlite:///{db}",
            substation_id=sub,
            receiver_id=f"rx-{sub}",
            token=f"rx-token-{sub}-0123456789",
            concentrator_url="http://concentrator",
            concentrator_token=f"token-for-{sub}-0123456789",
            forward=["events", "map", "readings"],
        )
        p.pf.http_client_factory = lambda: _Keep(conc.client)
        subs[sub] = p
    hs1, hs2 = fleet(3, first_id=5_000_000), fleet(2, first_id=6_000_000)
    subs["sub-1"].import_model(gridmodel(hs1, substation_id="sub-1"))
    subs["sub-2"].import_model(gridmodel(hs2, substation_id="sub-2"))
    # hub hs1[0] is transferred to substation 2 (its key is loaded there, it is heard there)
    wanderer = hs1[0]
    subs["sub-2"].client.put(
        f"/api/v1/hubs/{wanderer.hub_id}",
        json={"key_hex": wanderer.key.hex(), "substation_id": "sub-2"},
        headers=subs["sub-2"].admin,
    )
    _pairing(subs["sub-1"], hs1[1])
    subs["sub-1"].send(hs1[2], report(hs1[2], T0, 2), at=T0)
    for k in (1, 2):
        subs["sub-2"].send(
            wanderer, report(wanderer, T0 + timedelta(minutes=k), 1), at=T0 + timedelta(minutes=k), feeder=7, phase="C"
        )
    st = subs["sub-1"].client.get("/api/v1/forwarding").json()
    assert st["enabled"] and st["pending"] > 0 and st["identity"] == "platform-sub-1"
    for sub in ("sub-1", "sub-2"):
        f = subs[sub].client.post("/api/v1/forwarding/flush", headers=subs[sub].admin).json()["forwarding"]
        assert f["error"] is None and f["sent"] > 0
        assert subs[sub].client.get("/api/v1/forwarding").json()["pending"] == 0
    tree = conc.client.get("/api/v1/gridmap").json()
    placed = {
        s["substation_id"]: sorted(
            t["hub_id"] for b in s["buses"] for f in b["feeders"] for p in f["phases"] for t in p["tans"]
        )
        for s in tree["substations"]
    }
    assert placed["sub-1"] == sorted(h.hub_id for h in hs1[1:])
    assert placed["sub-2"] == sorted([wanderer.hub_id] + [h.hub_id for h in hs2])
    w = conc.client.get(f"/api/v1/hubs/{wanderer.hub_id}").json()
    assert w["map"]["feeder"] == 7 and not w["has_key"]
    moves = [
        r for r in conc.client.get(f"/api/v1/hubs/{wanderer.hub_id}/history").json() if r["field"] == "substation_id"
    ]
    assert moves[0]["old"] == "sub-1" and moves[0]["new"] == "sub-2" and moves[0]["cause"] == "forward"
    evs = conc.client.get("/api/v1/events").json()
    assert {(e["origin_substation"], e["type"]) for e in evs} >= {("sub-1", "tan_member_added"), ("sub-2", "new_hub")}
    assert conc.client.get("/api/v1/readings", params={"hub_id": hs1[2].hub_id}).json()
    assert {s["substation_id"] for s in conc.client.get("/api/v1/concentrator/substations").json()} == {
        "sub-1",
        "sub-2",
    }
    # a retried batch is merged once
    batch = {
        "origin": "platform-sub-1",
        "substation_id": "sub-1",
        "items": [{"id": 1, "type": "event", "payload": {"action": "created", "event": evs[0]}}],
    }
    hdr = {"Authorization": "Bearer token-for-sub-1-0123456789"}
    assert conc.client.post("/api/v1/concentrator/forward", json=batch, headers=hdr).json() == {
        "applied": 0,
        "duplicates": 1,
    }
    # credentials: none 401, a receiver 403, another substation 403; a substation platform is no concentrator
    assert conc.client.post("/api/v1/concentrator/forward", json=batch).status_code == 401
    assert conc.client.post("/api/v1/concentrator/forward", json=batch, headers=conc.auth).status_code == 403
    other = {**batch, "substation_id": "sub-2"}
    assert conc.client.post("/api/v1/concentrator/forward", json=other, headers=hdr).status_code == 403
    assert (
        subs["sub-1"].client.post("/api/v1/concentrator/forward", json=batch, headers=subs["sub-1"].auth).status_code
        == 404
    )


def test_forwarding_retries_when_the_concentrator_is_down(platform_make):
    p = platform_make(concentrator_url="http://127.0.0.1:9", concentrator_token="x" * 20, webhook_backoff_s=0)
    (h,) = fleet(1)
    p.import_model(gridmodel([h]))
    f = p.client.post("/api/v1/forwarding/flush", headers=p.admin).json()["forwarding"]
    assert f["sent"] == 0 and f["pending"] > 0 and f["error"]
    st = p.client.get("/api/v1/forwarding").json()
    assert st["pending"] > 0 and st["last_error"]


def test_receivers_health_and_info(platform_make, tmp_path):
    creds = tmp_path / "receivers.json"
    creds.write_text(
        json.dumps([{"receiver_id": "rx-file", "substation_id": "sub-1", "token": "file-token-0123456789"}])
    )
    p = platform_make(receivers_file=str(creds))
    ids = [r["receiver_id"] for r in p.client.get("/api/v1/receivers", headers=p.admin).json()]
    assert ids == ["rx-1", "rx-file"]
    assert p.client.get("/api/v1/receivers/rx-file", headers=p.admin).json()["substation_id"] == "sub-1"
    assert p.client.get("/api/v1/receivers/rx-file", headers=p.admin).json()["last_used_at"] is None
    p.client.post("/api/v1/bundles", json={}, headers={"Authorization": "Bearer file-token-0123456789"})
    assert p.client.get("/api/v1/receivers/rx-file", headers=p.admin).json()["last_used_at"]
    assert p.client.get("/api/v1/receivers/nope", headers=p.admin).status_code == 404
    assert p.client.post("/api/v1/receivers/nope/rotate", headers=p.admin).status_code == 404
    assert p.client.delete("/api/v1/receivers/nope", headers=p.admin).status_code == 404
    r = p.client.post("/api/v1/receivers", json={"receiver_id": "rx-file", "substation_id": "sub-1"}, headers=p.admin)
    assert r.status_code == 409
    r = p.client.post("/api/v1/receivers", json={"receiver_id": "rx-new", "substation_id": "sub-1"}, headers=p.admin)
    assert r.status_code == 201 and r.json()["token"].startswith("gla_")
    r = p.client.post(
        "/api/v1/receivers",
        json={"receiver_id": "rx-dup", "substation_id": "sub-1", "token": "file-token-0123456789"},
        headers=p.admin,
    )
    assert r.status_code == 409
    assert (
        p.client.post(
            "/api/v1/receivers", json={"receiver_id": "bad id", "substation_id": "s"}, headers=p.admin
        ).status_code
        == 422
    )
    assert p.client.get("/healthz").json() == {"status": "ok"}
    ready = p.client.get("/readyz").json()
    assert ready["status"] == "ok" and ready["revision"] == ready["head"]
    info = p.client.get("/api/v1/info").json()
    assert info["mode"] == "substation" and info["bundle_schema_version"] == "1" and info["air_interface_version"] == 1
    exp = p.client.get("/api/v1/export/events.csv", headers=p.admin)
    assert exp.status_code == 200 and exp.text.startswith("id,substation_id,type")
    assert p.client.get("/api/v1/export/history.csv", headers=p.admin).text.startswith("id,at,")


def test_openapi_documents_itself(platform):
    spec = platform.client.get("/openapi.json").json()
    ops = [(p, m, o) for p, v in spec["paths"].items() for m, o in v.items()]
    assert len(ops) >= 50
    assert all(o.get("summary") for _, _, o in ops)
    assert "examples" in spec["paths"]["/api/v1/bundles"]["post"]["requestBody"]["content"]["application/json"]
    assert {"GridModel", "SimulatorTruth", "Bundle", "EventOut"} <= set(spec["components"]["schemas"])
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["type"] == "http"
