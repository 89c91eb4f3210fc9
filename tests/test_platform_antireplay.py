"""Computing Platform: the anti-replay window and the key life cycle of docs/air-interface.md
section 13 (a 64-counter sliding window per hub and key epoch, key rotation with a grace for the
previous key), with copies of one message from several receivers still merged."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text

from dsp.air import messages as M
from dsp.air import params as P
from dsp.air.frame import FrameError
from platform_api.core.db import make_engine, migrate
from platform_api.models import Event, Hub, Message, Report
from platform_api.services import antireplay
from platform_api.testing import FakeHub, bundles_for, fleet, gridmodel, report, slot_time

T0 = slot_time(448_826_400)  # 2026-11-22T00:00:00.25Z
RX2 = "test-token-rx-2-0123456789"


@pytest.fixture
def plat(platform):
    hubs = fleet(3, meters=(5, 5))
    platform.import_model(gridmodel(hubs))
    platform.hubs = hubs
    return platform


def _alert(t, v=204.5) -> M.Alert:
    return M.Alert(M.AlertType.SAG, int(t.timestamp()), v, 3)


def _at(k: int):
    return T0 + timedelta(seconds=8 * k)


def _second_receiver(p) -> dict:
    r = p.client.post(
        "/api/v1/receivers", json={"receiver_id": "rx-2", "substation_id": "sub-1", "token": RX2}, headers=p.admin
    )
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {RX2}"}


def _post(p, bundle, headers=None) -> dict:
    r = p.post(bundle, headers=headers or p.auth)
    assert r.status_code == 201, r.text
    return r.json()


def _count(p, model, **where) -> int:
    with p.pf.db.session() as s:
        q = select(func.count()).select_from(model)
        for k, v in where.items():
            q = q.where(getattr(model, k) == v)
        return s.scalar(q) or 0


# -- the window as a function -------------------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 400), min_size=1, max_size=120))
def test_window_accepts_each_counter_once_and_nothing_older_than_64(counters):
    """Against the plain definition: accept iff above every accepted counter, or less than 64 below
    the highest and never accepted."""
    highest, bitmap, seen = None, 0, set()
    for c in counters:
        want = not seen or c > max(seen) or (max(seen) - c < P.REPLAY_WINDOW and c not in seen)
        verdict = antireplay.classify(highest, bitmap, c)
        assert (verdict in ("new", "late")) == want, (c, sorted(seen)[-5:], verdict)
        if want:
            highest, bitmap = antireplay.slide(highest, bitmap, c)
            seen.add(c)
            assert antireplay.from_db(antireplay.to_db(bitmap)) == bitmap and -(2**63) <= antireplay.to_db(bitmap)
        elif c in seen and max(seen) - c < P.REPLAY_WINDOW:
            assert verdict == "seen"


def test_a_hub_never_passes_the_last_counter_under_one_key():
    key = M.hub_key(1, 5)
    last = M.encode_message(_alert(T0), hub_id=5, counter=P.COUNTER_MAX, key=key)
    assert int.from_bytes(last[0][5:8], "big") == P.COUNTER_MAX
    with pytest.raises(FrameError, match="next key"):
        M.encode_message(report(FakeHub(5, key, meter_ids=[1, 2, 3]), T0), hub_id=5, counter=P.COUNTER_MAX, key=key)
    assert M.hub_key(1, 5, 1) != key and M.hub_key(1, 5, 0) == key


# -- the window on the platform -----------------------------------------------------------------
def test_out_of_order_messages_inside_the_window_are_accepted_once_each(plat):
    h = plat.hubs[0]
    base = h.counter
    plat.send(h, _alert(T0), at=T0, counter=base + 20)
    order = [base + 3, base + 17, base, base + 9]
    for k, c in enumerate(order):
        (b,) = bundles_for(h, _alert(_at(k + 1), 200.0 + k), at=_at(k + 1), counter=c)
        a = _post(plat, b)
        assert a["status"] == "accepted" and "late" in a["detail"], a
        # the same message again (a copy, or a recording of it) is counted, not applied twice
        d = _post(
            plat,
            bundles_for(h, None, at=_at(k + 1) + timedelta(seconds=2), frames=[bytes.fromhex(b["frame_hex"])], seed=9)[
                0
            ],
        )
        assert d["status"] == "duplicate"
        # another frame under a counter already used: a replay (or a nonce reused), dropped
        (other,) = bundles_for(h, _alert(_at(k + 1), 250.0), at=_at(k + 1) + timedelta(seconds=3), counter=c)
        assert _post(plat, other)["reason"] == "replay"
    assert _count(plat, Message, hub_id=h.hub_id) == 1 + len(order)
    hub = plat.client.get(f"/api/v1/hubs/{h.hub_id}").json()
    assert hub["last_counter"] == base + 20 and hub["key_epoch"] == 0


def test_older_than_the_window_is_dropped(plat):
    h = plat.hubs[1]
    top = h.counter + 100
    plat.send(h, _alert(T0), at=T0, counter=top)
    inside = bundles_for(h, _alert(_at(1), 201.0), at=_at(1), counter=top - (P.REPLAY_WINDOW - 1))[0]
    assert _post(plat, inside)["status"] == "accepted"
    outside = bundles_for(h, _alert(_at(2), 202.0), at=_at(2), counter=top - P.REPLAY_WINDOW)[0]
    a = _post(plat, outside)
    assert a["status"] == "rejected" and a["reason"] == "replay" and "64-counter window" in a["detail"]
    # an accepted message far behind the window is still recognised as a copy
    first = bundles_for(h, _alert(_at(3), 203.0), at=_at(3), counter=top + 1)[0]
    _post(plat, first)
    plat.send(h, _alert(_at(4)), at=_at(4), counter=top + 1000)
    again = bundles_for(h, None, at=_at(5), frames=[bytes.fromhex(first["frame_hex"])], seed=4)[0]
    assert _post(plat, again)["status"] == "duplicate"


def test_copies_and_segments_from_two_receivers_merge(plat):
    """Copies of one message (same counter) from several receivers, and the segments of one report
    in any order, make one message and one report: the window counts messages, not copies."""
    rx2 = _second_receiver(plat)
    h = plat.hubs[2]  # 5 meters: 3 segments
    msg = report(h, T0)
    mine = bundles_for(h, msg, at=T0)
    h.counter -= 3  # the same frames, heard by the other receiver
    theirs = bundles_for(h, msg, at=T0, receiver_id="rx-2", seed=5)
    assert [b["frame_hex"] for b in mine] == [b["frame_hex"] for b in theirs]
    plat.send(h, _alert(_at(20)), at=_at(20))  # a later message first: the report arrives late
    answers = [
        _post(plat, theirs[2], rx2),
        _post(plat, mine[2]),
        _post(plat, mine[0]),
        _post(plat, theirs[0], rx2),
        _post(plat, theirs[1], rx2),
        _post(plat, mine[1]),
    ]
    assert [a["status"] for a in answers] == ["accepted", "duplicate", "accepted", "duplicate", "accepted", "duplicate"]
    (rep,) = plat.client.get("/api/v1/reports", params={"hub_id": h.hub_id}).json()
    assert rep["complete"] and [r["tan_index"] for r in rep["readings"]] == [0, 1, 2, 3, 4]
    msgs = [m for m in plat.client.get("/api/v1/messages", params={"hub_id": h.hub_id}).json() if m["seg_count"] == 3]
    assert len(msgs) == 3 and all(m["receptions"] == 2 for m in msgs)


# -- key rotation -------------------------------------------------------------------------------
def _next(p, hub_id: int, key: bytes, headers=None):
    return p.client.put(
        f"/api/v1/hubs/{hub_id}/next-key", json={"key_hex": key.hex()}, headers=p.admin if headers is None else headers
    )


def test_rotation_accepts_the_next_key_from_0_and_persists(platform_make):
    p = platform_make()
    h = fleet(1, meters=(1, 1))[0]
    p.import_model(gridmodel([h]))
    rx2 = _second_receiver(p)
    h.counter = 500
    old_first_bundle = bundles_for(h, _alert(_at(0), 199.0), at=_at(0))[0]
    old_first = _post(p, old_first_bundle)
    for k in range(1, 3):
        p.send(h, _alert(_at(k), 200.0 + k), at=_at(k))
    h.counter += 20  # messages nobody heard
    old_late = bundles_for(h, _alert(_at(3), 210.0), at=_at(3), counter=h.counter - 10)[0]  # held up somewhere
    new = replace(h, key=M.hub_key(7, h.hub_id, 1), counter=0)
    r = _next(p, h.hub_id, new.key)
    assert r.status_code == 200 and r.json()["has_next_key"] and r.json()["key_epoch"] == 0, r.text
    # still on the current key until the hub switches
    p.send(h, _alert(_at(4), 211.0), at=_at(4))
    first = bundles_for(new, _alert(_at(5)), at=_at(5))[0]
    assert first["counter"] == 0
    a = _post(p, first)
    assert a["status"] == "accepted" and "epoch 1" in a["detail"], a
    assert _post(p, _copy(new, first, "rx-2"), rx2)["status"] == "duplicate"
    hub = p.client.get(f"/api/v1/hubs/{h.hub_id}").json()
    assert hub["key_epoch"] == 1 and not hub["has_next_key"] and hub["previous_key_until"] and hub["last_counter"] == 0
    # the old key in its grace: a late message once, a copy as a copy, nothing older than its window
    assert _post(p, old_late)["status"] == "accepted"
    assert _post(p, _copy(h, old_late, "rx-2"), rx2)["status"] == "duplicate"
    assert _post(p, bundles_for(h, _alert(_at(6)), at=_at(6), counter=h.counter - 80)[0])["reason"] == "replay"
    assert old_first["status"] == "accepted"
    assert _post(p, _copy(h, old_first_bundle, "rx-1"))["status"] == "duplicate"
    p.send(new, _alert(_at(7), 212.0), at=_at(7))  # counter 1 under the new key
    listed = p.client.get("/api/v1/messages", params={"hub_id": h.hub_id, "limit": 1000}).json()
    assert sorted(m["counter"] for m in listed if m["key_epoch"] == 1) == [0, 1]  # counters count per epoch
    assert all(m["counter"] >= 500 for m in listed if m["key_epoch"] == 0)
    p.close()

    q = platform_make()  # a restart on the same database
    hub = q.client.get(f"/api/v1/hubs/{h.hub_id}").json()
    assert hub["key_epoch"] == 1 and hub["last_counter"] == 1
    replay = bundles_for(new, _alert(_at(8), 213.0), at=_at(8), counter=0)[0]  # another frame under counter 0
    assert _post(q, replay)["reason"] == "replay"
    assert _post(q, bundles_for(new, _alert(_at(9)), at=_at(9))[0])["status"] == "accepted"
    assert (
        _count(q, Message, hub_id=h.hub_id, key_epoch=1) == 3 and _count(q, Message, hub_id=h.hub_id, key_epoch=0) == 5
    )
    hist = q.client.get(f"/api/v1/hubs/{h.hub_id}/history").json()
    assert any(x["field"] == "key_epoch" and x["new"] == 1 and x["cause"] == "key_rotation" for x in hist)


def _copy(hub: FakeHub, bundle: dict, receiver_id: str) -> dict:
    """Another reception of ``bundle``'s frame (another receiver, another copy)."""
    at = T0 + timedelta(seconds=4 * (int(bundle["slot"]) - 448_826_400) + 1)
    return bundles_for(hub, None, at=at, frames=[bytes.fromhex(bundle["frame_hex"])], receiver_id=receiver_id, seed=77)[
        0
    ]


def test_previous_key_after_its_grace_is_a_replay(platform_make):
    p = platform_make(key_grace_s=0)
    h = fleet(1, meters=(1, 1))[0]
    p.import_model(gridmodel([h]))
    p.send(h, _alert(T0), at=T0)
    late = bundles_for(h, _alert(_at(1), 201.0), at=_at(1), counter=h.counter - 2)[0]
    new = replace(h, key=M.hub_key(7, h.hub_id, 1), counter=0)
    assert _next(p, h.hub_id, new.key).status_code == 200
    assert p.send(new, _alert(_at(2)), at=_at(2))[0]["status"] == "accepted"
    a = _post(p, late)
    assert a["reason"] == "replay" and "grace ended" in a["detail"], a


def test_next_key_needs_the_admin_and_is_never_a_used_key(platform_make):
    p = platform_make(admin_token="admin-secret-0123456789")
    h = fleet(1, meters=(1, 1))[0]
    p.import_model(gridmodel([h]))
    k1 = M.hub_key(7, h.hub_id, 1)
    assert _next(p, h.hub_id, k1, headers={}).status_code == 401
    assert _next(p, h.hub_id, k1, headers=p.auth).status_code == 403  # a receiver's credential
    assert _next(p, 999, k1).status_code == 404
    assert _next(p, h.hub_id, h.key).status_code == 409  # the current key
    assert p.client.delete(f"/api/v1/hubs/{h.hub_id}/next-key").status_code == 401
    assert _next(p, h.hub_id, k1).status_code == 200
    p.send(replace(h, key=k1, counter=0), _alert(T0), at=T0)  # promoted
    assert _next(p, h.hub_id, h.key).status_code == 409  # retired
    r = p.client.put(f"/api/v1/hubs/{h.hub_id}", json={"key_hex": h.key.hex()}, headers=p.admin)
    assert r.status_code == 409 and "never reused" in r.json()["detail"]
    # a Grid Map re-import from before the rotation does not bring the old key back
    p.import_model(gridmodel([h]))
    assert p.client.get(f"/api/v1/hubs/{h.hub_id}").json()["key_epoch"] == 1
    assert p.send(replace(h, key=k1, counter=1), _alert(_at(1)), at=_at(1))[0]["status"] == "accepted"
    k2 = M.hub_key(7, h.hub_id, 2)
    assert _next(p, h.hub_id, k2).json()["has_next_key"]
    r = p.client.delete(f"/api/v1/hubs/{h.hub_id}/next-key", headers=p.admin)
    assert r.status_code == 200 and not r.json()["has_next_key"]
    assert _post(p, bundles_for(replace(h, key=k2, counter=0), _alert(_at(2)), at=_at(2))[0])["reason"] == "auth"


def test_a_replaced_key_starts_a_new_epoch_from_counter_0(plat):
    """An operator replacing a hub's key (a replaced or compromised hub): counters restart at 0."""
    h = plat.hubs[0]
    for k in range(3):
        plat.send(h, _alert(_at(k), 200.0 + k), at=_at(k), counter=h.counter + 70)
    fresh = replace(h, key=bytes(range(16)), counter=0)
    r = plat.client.put(f"/api/v1/hubs/{h.hub_id}", json={"key_hex": fresh.key.hex()}, headers=plat.admin)
    assert r.status_code == 200 and r.json()["key_epoch"] == 1 and r.json()["last_counter"] is None
    a = plat.send(fresh, report(fresh, _at(5)), at=_at(5))
    assert all(x["status"] == "accepted" for x in a) and a[0]["counter"] == 0, a
    # no grace for a replaced key
    assert _post(plat, bundles_for(h, _alert(_at(6)), at=_at(6))[0])["reason"] == "auth"


def test_counter_near_exhaustion_raises_an_event(plat):
    h = plat.hubs[1]
    plat.send(h, _alert(T0), at=T0, counter=P.COUNTER_LOW_WATER + 5)
    with plat.pf.db.session() as s:
        (ev,) = s.scalars(select(Event).where(Event.type == "key_exhausting")).all()
        assert ev.subject_id == str(h.hub_id) and "install its next key" in ev.title
        assert s.get(Hub, h.hub_id).last_counter == P.COUNTER_LOW_WATER + 5


# -- a database from before the window was kept -------------------------------------------------
def test_upgrade_keeps_the_messages_accepted_before(tmp_path, platform_make):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    eng = make_engine(url)
    migrate(eng, "0002")
    h = fleet(1, meters=(1, 1))[0]
    frames = {
        c: M.encode_message(_alert(T0, 200.0 + c), hub_id=h.hub_id, counter=c, key=h.key)[0] for c in (40, 45, 50)
    }
    with eng.begin() as c:
        c.execute(
            text(
                "INSERT INTO hubs (hub_id, key_hex, mode, status, last_counter, tan_version, cand_observations, "
                "created_at, updated_at) VALUES (:id, :k, 'hub', 'inventory', 50, 0, 0, :t, :t)"
            ),
            {"id": h.hub_id, "k": h.key.hex(), "t": T0},
        )
        for n, (ctr, fr) in enumerate(frames.items()):
            c.execute(
                text(
                    "INSERT INTO messages (hub_id, counter, seg_index, seg_count, kind, frame_hex, bundle_id, "
                    "substation_id, arrival_utc, fields, receptions, late) VALUES "
                    "(:h, :c, 0, 1, 'alert', :f, :b, 'sub-1', :t, '{}', 1, 0)"
                ),
                {"h": h.hub_id, "c": ctr, "f": fr.hex(), "b": f"old-{n}", "t": T0},
            )
    eng.dispose()
    p = platform_make(database_url=url)  # migrates to head
    assert p.client.get(f"/api/v1/hubs/{h.hub_id}").json()["key_epoch"] == 0
    copy = bundles_for(h, None, at=_at(1), frames=[frames[45]])[0]
    assert _post(p, copy)["status"] == "duplicate"
    other = bundles_for(h, _alert(_at(2), 230.0), at=_at(2), counter=45)[0]
    assert _post(p, other)["reason"] == "replay"
    assert _post(p, bundles_for(h, _alert(_at(3), 231.0), at=_at(3), counter=47)[0])["status"] == "accepted"
    assert _count(p, Report) == 0 and _count(p, Message, hub_id=h.hub_id) == 4
