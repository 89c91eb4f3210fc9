"""Computing Platform: ingest (credentials, validation, idempotency) and semantic decode."""

from __future__ import annotations

import copy
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from dsp.air import messages as M
from dsp.air.crc import crc16
from platform_api.models import BundleRow, Message, Reading, Report
from platform_api.testing import FakeHub, bundles_for, fleet, gridmodel, report, slot_time

T0 = slot_time(448_826_400)  # 2026-11-22T00:00:00.25Z


@pytest.fixture
def plat(platform):
    hubs = fleet(6, meters=(5, 5))
    platform.import_model(gridmodel(hubs))
    platform.hubs = hubs
    return platform


def _count(p, model, **where):
    with p.pf.db.session() as s:
        q = select(func.count()).select_from(model)
        for k, v in where.items():
            q = q.where(getattr(model, k) == v)
        return s.scalar(q)


# -- credentials ---------------------------------------------------------------------------------
def test_missing_and_unknown_token_are_401(plat):
    b = bundles_for(plat.hubs[0], report(plat.hubs[0], T0, 2), at=T0)[0]
    r = plat.client.post("/api/v1/bundles", json=b)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    r = plat.client.post("/api/v1/bundles", json=b, headers={"Authorization": "Bearer not-a-token"})
    assert r.status_code == 401
    assert _count(plat, BundleRow) == 0


def test_receiver_may_post_only_for_itself_and_its_substation(plat):
    h = plat.hubs[0]
    other = bundles_for(h, report(h, T0, 2), at=T0, substation_id="sub-2")[0]
    r = plat.post(other)
    assert r.status_code == 403 and "sub-1" in r.json()["detail"]
    forged = bundles_for(h, report(h, T0, 2), at=T0, receiver_id="rx-9")[0]
    r = plat.post(forged)
    assert r.status_code == 403 and "rx-9" in r.json()["detail"]
    # a platform credential is not a receiver
    plat.client.post(
        "/api/v1/receivers",
        json={
            "receiver_id": "plat-1",
            "substation_id": "sub-1",
            "role": "platform",
            "token": "platform-token-0123456789",
        },
        headers=plat.admin,
    )
    ok = bundles_for(h, report(h, T0, 2), at=T0)[0]
    r = plat.post(ok, headers={"Authorization": "Bearer platform-token-0123456789"})
    assert r.status_code == 403
    # a disabled receiver is refused; a rotated token replaces the old one
    assert plat.client.delete("/api/v1/receivers/rx-1", headers=plat.admin).json()["enabled"] is False
    assert plat.post(ok).status_code == 403
    tok = plat.client.post("/api/v1/receivers/rx-1/rotate", headers=plat.admin).json()["token"]
    assert plat.post(ok).status_code == 401
    assert plat.post(ok, headers={"Authorization": f"Bearer {tok}"}).status_code == 201


# -- validation ----------------------------------------------------------------------------------
CASES_422 = [
    (lambda b: b.pop("copies"), ["body", "copies"]),
    (lambda b: b.update(frame_hex="zz" * 32), ["body", "frame_hex"]),
    (lambda b: b.update(channel=-1), ["body", "channel"]),
    (lambda b: b.update(channel=99), ["body", "channel"]),
    (lambda b: b["copies"][0].update(phase="D"), ["body", "copies", 0, "phase"]),
    (lambda b: b.update(schema_version="2"), ["body", "schema_version"]),
    (lambda b: b.update(surprise=1), ["body", "surprise"]),
    (lambda b: b.update(bundle_id="short"), ["body", "bundle_id"]),
    (lambda b: b.update(bundle_id="has spaces in it!!"), ["body", "bundle_id"]),
    (lambda b: b.update(hub_id=b["hub_id"] + 1), ["body", "hub_id"]),
    (lambda b: b.update(counter=b["counter"] + 1), ["body", "counter"]),
    (lambda b: b.update(kind="alert"), ["body", "kind"]),
    (lambda b: b.update(frame_hex=None), ["body", "frame_hex"]),
    (lambda b: b["copies"][0].update(arrival_utc="1999-01-01T00:00:00Z"), ["body", "copies", 0, "arrival_utc"]),
    (lambda b: b.update(created_utc="2026-11-22T00:00:00"), ["body", "created_utc"]),
]


def test_422_names_the_field(plat):
    for mutate, loc in CASES_422:
        b = bundles_for(plat.hubs[0], report(plat.hubs[0], T0, 2), at=T0)[0]
        mutate(b)
        r = plat.post(b)
        assert r.status_code == 422, (loc, r.text)
        locs = [e["loc"] for e in r.json()["detail"]]
        assert any(list(x[: len(loc)]) == loc for x in locs), (loc, locs)
    assert _count(plat, BundleRow) == 0


# -- idempotency ---------------------------------------------------------------------------------
def test_same_bundle_twice_is_stored_once_and_answered_the_same(plat):
    h = plat.hubs[0]
    b = bundles_for(h, report(h, T0, 2), at=T0)[0]
    r1 = plat.post(b)
    r2 = plat.post(copy.deepcopy(b))
    assert r1.status_code == r2.status_code == 201
    assert r1.json() == r2.json() and r1.json()["status"] == "accepted"
    assert "idempotent-replayed" not in r1.headers and r2.headers["idempotent-replayed"] == "true"
    assert _count(plat, BundleRow) == 1 and _count(plat, Message) == 1 and _count(plat, Reading) == 2
    # the same id with another body is a conflict
    b2 = copy.deepcopy(b)
    b2["copies"][0]["snr_db"] += 1
    r3 = plat.post(b2)
    assert r3.status_code == 409 and b["bundle_id"] in r3.json()["detail"]
    got = plat.client.get(f"/api/v1/bundles/{b['bundle_id']}", params={"body": True}).json()
    assert got["status"] == "accepted" and got["response"] == r1.json() and got["bundle"]["bundle_id"] == b["bundle_id"]
    assert plat.client.get("/api/v1/bundles/0123456789abcdef0123").status_code == 404


def test_batch_answers_like_single_posts(plat):
    h = plat.hubs[1]
    bs = bundles_for(h, report(h, T0, 2), at=T0) + bundles_for(
        h, report(h, T0 + timedelta(seconds=8), 2), at=T0 + timedelta(seconds=8)
    )
    wrong = bundles_for(
        h, report(h, T0 + timedelta(seconds=16), 2), at=T0 + timedelta(seconds=16), substation_id="sub-2"
    )
    r = plat.client.post("/api/v1/bundles/batch", json={"bundles": bs + [bs[0]] + wrong}, headers=plat.auth)
    assert r.status_code == 200
    res = r.json()["results"]
    assert [x["http_status"] for x in res] == [201, 201, 201, 403]
    assert res[2]["replayed"] and res[2]["result"] == res[0]["result"]
    assert plat.client.post("/api/v1/bundles/batch", json={"bundles": bs}).status_code == 401
    assert plat.client.post("/api/v1/bundles/batch", json={"bundles": []}, headers=plat.auth).status_code == 422


def test_bundle_without_a_clean_copy_is_kept_for_statistics(plat):
    b = bundles_for(plat.hubs[0], report(plat.hubs[0], T0, 2), at=T0, crc_ok=False)[0]
    r = plat.post(b)
    assert r.status_code == 201 and r.json()["status"] == "no_frame"
    assert _count(plat, BundleRow, status="no_frame") == 1 and _count(plat, Message) == 0


# -- semantic decode -------------------------------------------------------------------------------
def _reframe(hexframe: str, mutate) -> str:
    fr = bytearray(bytes.fromhex(hexframe))
    mutate(fr)
    fr[30:32] = crc16(bytes(fr[:30])).to_bytes(2, "big")
    return fr.hex()


def _rejected(p, b, reason):
    r = p.post(b)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "rejected" and body["reason"] == reason, body
    rows = p.client.get("/api/v1/rejections", params={"reason": reason}).json()
    assert any(x["bundle_id"] == b["bundle_id"] for x in rows)
    return body


def test_tampered_forged_unknown_and_malformed_frames_are_rejected_with_the_reason(plat):
    h = plat.hubs[0]
    good = bundles_for(h, report(h, T0, 2), at=T0)[0]
    tampered = copy.deepcopy(good)
    tampered["frame_hex"] = _reframe(good["frame_hex"], lambda f: f.__setitem__(12, f[12] ^ 0x01))
    tampered["bundle_id"] = "tampered-" + good["bundle_id"][:20]
    assert "does not verify" in _rejected(plat, tampered, "auth")["detail"]
    # sealed with another key (a forger who knows the format but not the key)
    forger = FakeHub(hub_id=h.hub_id, key=bytes(16), counter=h.counter + 5)
    forged = bundles_for(forger, report(forger, T0, 2), at=T0)[0]
    _rejected(plat, forged, "auth")
    stranger = FakeHub(hub_id=4_000_000_001, key=bytes(range(16)))
    _rejected(plat, bundles_for(stranger, report(stranger, T0, 1), at=T0)[0], "unknown_hub")
    bad_crc = copy.deepcopy(good)
    fr = bytearray(bytes.fromhex(good["frame_hex"]))
    fr[31] ^= 0xFF
    bad_crc.update(frame_hex=fr.hex(), bundle_id="badcrc-" + good["bundle_id"][:20])
    _rejected(plat, bad_crc, "crc")
    reserved = copy.deepcopy(good)
    reserved.update(
        frame_hex=_reframe(good["frame_hex"], lambda f: f.__setitem__(0, (1 << 6) | (9 << 2))),
        kind=None,
        bundle_id="reserved-" + good["bundle_id"][:20],
    )
    _rejected(plat, reserved, "kind")
    v2 = copy.deepcopy(good)
    v2.update(
        frame_hex=_reframe(good["frame_hex"], lambda f: f.__setitem__(0, (2 << 6) | (4 << 2))),
        bundle_id="version2-" + good["bundle_id"][:20],
    )
    _rejected(plat, v2, "version")
    # nothing of these reached the Inventory
    assert plat.client.get(f"/api/v1/hubs/{h.hub_id}").json()["last_counter"] is None
    # the genuine one still decodes
    assert plat.post(good).json()["status"] == "accepted"


def test_replay_duplicate_and_late_frames(plat):
    h = plat.hubs[2]
    alert = M.Alert(M.AlertType.SAG, int(T0.timestamp()), 204.5, 3)
    frames = M.encode_message(alert, hub_id=h.hub_id, counter=h.next(), key=h.key)
    first = bundles_for(h, alert, at=T0, frames=frames, seed=1)[0]
    repeat = bundles_for(h, alert, at=T0 + timedelta(seconds=12), frames=frames, seed=2)[0]
    assert first["bundle_id"] != repeat["bundle_id"] and first["frame_hex"] == repeat["frame_hex"]
    a = plat.post(first).json()
    assert a["status"] == "accepted" and a["message"]["alert_type_name"] == "sag"
    d = plat.post(repeat).json()
    assert d["status"] == "duplicate" and "identical" in d["detail"]
    msgs = plat.client.get("/api/v1/messages", params={"hub_id": h.hub_id}).json()
    assert len(msgs) == 1 and msgs[0]["receptions"] == 2
    # later reports move the counter on
    for k in range(3):
        t = T0 + timedelta(seconds=40 + 8 * k)
        plat.send(h, report(h, t, 2), at=t)
    # a different frame under an already used counter: replay (or nonce reuse), rejected
    other = M.encode_message(
        M.Alert(M.AlertType.SWELL, int(T0.timestamp()), 260.0, 1),
        hub_id=h.hub_id,
        counter=frames and int.from_bytes(frames[0][5:8], "big"),
        key=h.key,
    )
    _rejected(plat, bundles_for(h, None, at=T0 + timedelta(seconds=80), frames=other, channel=2)[0], "replay")
    # a counter below the last one, never seen, inside the window: accepted late
    late_counter = h.counter - 10
    late = bundles_for(
        h, M.Alert(M.AlertType.SAG, int(T0.timestamp()), 200.0, 1), at=T0 + timedelta(seconds=90), counter=late_counter
    )[0]
    body = plat.post(late).json()
    assert body["status"] == "accepted" and "late" in body["detail"]
    # far below: outside the window, replay
    old = bundles_for(
        h,
        M.Alert(M.AlertType.SAG, int(T0.timestamp()), 200.0, 1),
        at=T0 + timedelta(seconds=95),
        counter=max(0, h.counter - 500),
    )[0]
    _rejected(plat, old, "replay")


def test_every_message_kind_is_parsed(plat):
    h = plat.hubs[3]
    t = T0
    kinds = {}
    for msg in [
        M.ProvisioningRequest(meter_id=h.meter_ids[0], capabilities=1),
        M.Pairing(meter_id=77_000_001, tan_index=5, relation=M.Relation.SUBORDINATE_SAME_PHASE),
        M.PairingLoss(meter_id=77_000_001, tan_index=5, reason=1),
        M.Alert(M.AlertType.DISTRESS, int(t.timestamp()), 240.0, 0, detail=2),
        report(h, t, 2),
        M.TanAnomaly(M.AnomalyType.METER_SWAP, 1, int(t.timestamp()), 120.0, 0.8),
    ]:
        t += timedelta(seconds=8)
        (ans,) = plat.send(h, msg, at=t)
        assert ans["status"] == "accepted", ans
        kinds[ans["kind"]] = ans["message"]
    assert kinds["provisioning_request"]["mode_name"] == "hub" and kinds["provisioning_request"]["capabilities"] == 1
    assert kinds["pairing"]["relation_name"] == "subordinate_same_phase"
    assert kinds["pairing_loss"]["reason_name"] == "removed"
    assert kinds["alert"]["alert_type_name"] == "distress" and kinds["alert"]["detail"] == 2
    assert kinds["scheduled_report"]["readings"][1]["v_rms"] == pytest.approx(239.7)
    assert kinds["tan_anomaly"]["anomaly_type_name"] == "meter_swap"
    assert kinds["tan_anomaly"]["confidence"] == pytest.approx(0.8, abs=0.01)
    assert {m["kind"] for m in plat.client.get("/api/v1/messages", params={"hub_id": h.hub_id}).json()} == set(kinds)


def test_segmented_report_is_reassembled_in_any_order(plat):
    h = plat.hubs[4]  # 5 meters: 3 segments
    msg = report(h, T0)
    bs = bundles_for(h, msg, at=T0)
    assert len(bs) == 3 and [int(b["frame_hex"][16:18], 16) for b in bs] == [0x03, 0x13, 0x23]
    answers = [plat.post(b).json() for b in (bs[2], bs[0], bs[1])]
    assert [a["report"]["segments_received"] for a in answers] == [1, 2, 3]
    assert [a["report"]["complete"] for a in answers] == [False, False, True]
    assert len({a["report"]["report_id"] for a in answers}) == 1
    assert answers[0]["report"]["first_counter"] == int(bs[0]["frame_hex"][10:16], 16)
    (rep,) = plat.client.get("/api/v1/reports", params={"hub_id": h.hub_id}).json()
    assert rep["complete"] and [r["tan_index"] for r in rep["readings"]] == [0, 1, 2, 3, 4]
    assert [r["meter_id"] for r in rep["readings"]] == h.meter_ids
    assert len(plat.client.get("/api/v1/readings", params={"hub_id": h.hub_id}).json()) == 5
    m = plat.client.get(f"/api/v1/meters/{h.meter_ids[4]}").json()
    assert m["last_v_rms"] == pytest.approx(238.8) and m["last_seen_at"]


def test_segment_that_disagrees_with_its_report_is_rejected(plat):
    h = plat.hubs[5]
    first = bundles_for(h, report(h, T0), at=T0)
    plat.post(first[0])
    # a second segment claiming another measurement time for the same report
    c = int(first[1]["frame_hex"][10:16], 16)
    bad_msg = M.ScheduledReport(report(h, T0).measurement_time_s + 900, [M.MeterReading(2, 230, 1, 0.9)])
    fr = M.encode_message(bad_msg, hub_id=h.hub_id, counter=c, key=h.key)[0]
    fr = bytearray(fr)
    # re-seal with segment fields 1 of 3: build the header by hand
    from dsp.air.frame import Header, build_frame

    hd = Header(kind=4, hub_id=h.hub_id, counter=c, seg_index=1, seg_count=3)
    sealed = M.seal(hd, bad_msg.pack(), h.key)
    b = bundles_for(h, None, at=T0 + timedelta(seconds=4), frames=[build_frame(hd, sealed)], channel=0)[0]
    _rejected(plat, b, "segment")


def test_fast_path_full_path_and_batch_agree(platform_make, platform_sqlite_url, tmp_path, platform_sqlite_template):
    """The ORM-free path for settled hubs, the full path, and batches (one transaction with a
    savepoint per bundle) must leave the same rows and give the same answers."""
    import shutil

    hubs = fleet(4, meters=(1, 5), seed=11)
    third = tmp_path / "third.db"
    shutil.copy(platform_sqlite_template, third)
    out = []
    for fast, url, batch in (
        (True, None, False),
        (False, platform_sqlite_url, False),
        (True, f"sqlite:///{third}", True),
    ):
        p = platform_make(database_url=url)
        p.pf.fast_path = fast
        p.import_model(gridmodel(hubs))
        hs = [FakeHub(**{**h.__dict__, "meter_ids": list(h.meter_ids)}) for h in hubs]
        stream = []
        for k in range(3):
            for n, h in enumerate(hs):
                t = T0 + timedelta(seconds=60 * k + 16 * n)
                stream += bundles_for(h, report(h, t), at=t, seed=k)
                al = M.Alert(M.AlertType.SWELL, int(t.timestamp()), 251.0, 2)
                frs = M.encode_message(al, hub_id=h.hub_id, counter=h.next(), key=h.key)
                for rep in range(2):
                    stream.append(bundles_for(h, al, at=t + timedelta(seconds=30 + 4 * rep), frames=frs, seed=rep)[0])
        stream.append(stream[3])  # a re-post
        if batch:
            r = p.client.post("/api/v1/bundles/batch", json={"bundles": stream}, headers=p.auth)
            answers = [x["result"] for x in r.json()["results"]]
            assert r.json()["results"][-1]["replayed"]
        else:
            answers = [p.post(b).json() for b in stream]
        with p.pf.db.session() as s:

            def rows(model, cols):
                return sorted(tuple(getattr(r, c) for c in cols) for r in s.scalars(select(model)).all())

            snap = {
                "messages": rows(Message, ["hub_id", "counter", "seg_index", "kind", "receptions", "late", "slot"]),
                "reports": rows(Report, ["hub_id", "first_counter", "seg_count", "received_mask", "complete", "slot"]),
                "readings": rows(Reading, ["hub_id", "meter_id", "tan_index", "v_rms"]),
                "bundles": rows(BundleRow, ["bundle_id", "status", "hub_id", "counter"]),
            }
            hub_state = [
                {k: v for k, v in hd.items() if k not in ("updated_at",)} for hd in p.client.get("/api/v1/hubs").json()
            ]
        out.append((answers, snap, hub_state))
    for other in out[1:]:
        assert out[0][0] == other[0]
        assert out[0][1] == other[1]
        assert out[0][2] == other[2]


def test_listings_and_filters(plat):
    h = plat.hubs[0]
    plat.send(h, report(h, T0, 2), at=T0)
    assert len(plat.client.get("/api/v1/bundles", params={"hub_id": h.hub_id, "status": "accepted"}).json()) == 1
    assert plat.client.get("/api/v1/bundles", params={"status": "bogus"}).status_code == 422
    assert (
        plat.client.get("/api/v1/messages", params={"kind": "scheduled_report", "limit": 1}).json()[0]["hub_id"]
        == h.hub_id
    )
    assert plat.client.get("/api/v1/reports", params={"complete": True}).json()[0]["complete"]
    assert plat.client.get("/api/v1/readings", params={"meter_id": h.meter_ids[0]}).json()[0]["tan_index"] == 0
    assert plat.client.get("/api/v1/readings", params={"hub_id": -1}).status_code == 422
    assert plat.client.get("/api/v1/rejections").json() == []


def test_concurrent_posts_commit_together_with_their_own_outcomes(plat):
    """Single posts that arrive together (SQLite: one group commit) are answered one by one."""
    import asyncio

    import httpx

    h = plat.hubs[0]
    good = []
    for k in range(6):
        t = T0 + timedelta(seconds=8 * k)
        good += bundles_for(h, report(h, t, 2), at=t)
    dup = copy.deepcopy(good[0])
    conflict = copy.deepcopy(good[1])
    conflict["copies"][0]["snr_db"] += 3
    other_sub = bundles_for(plat.hubs[1], report(plat.hubs[1], T0, 2), at=T0, substation_id="sub-2")[0]
    forged = bundles_for(
        FakeHub(hub_id=plat.hubs[2].hub_id, key=bytes(16), counter=5), report(plat.hubs[2], T0, 1), at=T0
    )[0]

    async def go():
        transport = httpx.ASGITransport(app=plat.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://platform") as c:
            first = await asyncio.gather(*[c.post("/api/v1/bundles", json=b, headers=plat.auth) for b in good[:3]])
            rest = await asyncio.gather(
                *[
                    c.post("/api/v1/bundles", json=b, headers=plat.auth)
                    for b in good[3:] + [dup, conflict, other_sub, forged]
                ]
            )
            return first + rest

    rs = asyncio.run(go())
    codes = [r.status_code for r in rs]
    assert codes == [201] * 7 + [409, 403, 201]
    assert [r.json()["status"] for r in rs[:6]] == ["accepted"] * 6
    assert rs[6].json() == rs[0].json() and rs[6].headers["idempotent-replayed"] == "true"
    assert rs[9].json()["reason"] == "auth"
    assert _count(plat, Message) == 6 and _count(plat, BundleRow) == 7
