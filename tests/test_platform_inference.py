"""Computing Platform: change inference as events with confidence and a threshold policy."""

from __future__ import annotations

from datetime import timedelta

import pytest

from dsp.air import messages as M
from platform_api.testing import FakeHub, fleet, gridmodel, report, slot_time

T0 = slot_time(448_826_400)


def at(k: int):
    return T0 + timedelta(seconds=8 * k)


def events(p, **params):
    return p.client.get("/api/v1/events", params=params).json()


def hub(p, h):
    return p.client.get(f"/api/v1/hubs/{h.hub_id}").json()


def lateral(n: int, feeder: int = 1, lat: int = 2, first_id: int = 2_000_000) -> list[FakeHub]:
    hs = fleet(n, first_id=first_id, meters=(2, 2))
    for i, h in enumerate(hs):
        h.feeder, h.lateral, h.phase = feeder, lat, "ABC"[i % 3]
    return hs


def test_new_hub_is_placed_once_confident(platform):
    (h,) = fleet(1)
    platform.import_model(gridmodel([h], on_map=False))
    assert hub(platform, h)["map"] is None
    a = platform.send(h, M.ProvisioningRequest(meter_id=h.meter_ids[0]), at=at(1), feeder=2, phase="B")[0]
    (ev,) = events(platform, type="new_hub")
    assert (
        ev["status"] == "suspected" and ev["confidence"] == pytest.approx(0.97) and ev["evidence"] == [a["bundle_id"]]
    )
    assert hub(platform, h)["map"] is None and hub(platform, h)["candidate"]["feeder"] == 2
    b = platform.send(h, report(h, at(2), 1), at=at(2), feeder=2, phase="B")[0]
    (ev,) = events(platform, type="new_hub")
    assert ev["status"] == "applied" and ev["confidence"] == pytest.approx(1 - 0.03**2)
    assert ev["evidence"] == [a["bundle_id"], b["bundle_id"]] and ev["observations"] == 2
    got = hub(platform, h)
    assert got["map"] == {"bus": 0, "feeder": 2, "phase": "B", "source": "inference"} and got["candidate"] is None
    hist = platform.client.get(f"/api/v1/hubs/{h.hub_id}/history").json()
    row = next(r for r in hist if r["field"] == "map_feeder")
    assert row["cause"] == "inference" and row["event_id"] == ev["id"] and row["evidence"] == ev["evidence"]
    assert row["old"] is None and row["new"] == 2


def test_phase_change_needs_confidence_and_observations(platform):
    hs = fleet(2)
    platform.import_model(gridmodel(hs))
    h = hs[0]
    other = "C" if h.phase != "C" else "A"
    # weak and ambiguous evidence: a candidate, not published
    platform.send(h, report(h, at(1), 1), at=at(1), phase=other, confidence=0.3)
    platform.send(h, report(h, at(2), 1), at=at(2), phase=other, confidence=0.99, ambiguous=True)
    assert events(platform, type="hub_phase_change") == []
    (cand,) = events(platform, type="hub_phase_change", status="candidate")
    assert cand["confidence"] == pytest.approx(0.3)
    assert platform.client.get("/api/v1/events/log").json() == []
    # heard back where the map says: withdrawn
    platform.send(h, report(h, at(3), 1), at=at(3))
    assert events(platform, type="hub_phase_change", status="withdrawn")
    assert hub(platform, h)["candidate"] is None
    # strong evidence twice: applied
    platform.send(h, report(h, at(4), 1), at=at(4), phase=other, confidence=0.95)
    (ev,) = events(platform, type="hub_phase_change", status="suspected")
    assert hub(platform, h)["map"]["phase"] == h.phase
    platform.send(h, report(h, at(5), 1), at=at(5), phase=other, confidence=0.95)
    ev = platform.client.get(f"/api/v1/events/{ev['id']}").json()
    assert ev["status"] == "applied" and ev["details"]["to"]["phase"] == other
    assert hub(platform, h)["map"]["phase"] == other
    log = platform.client.get("/api/v1/events/log").json()
    assert [x["action"] for x in log if x["event_id"] == ev["id"]] == ["created", "updated", "applied"]


def test_switch_of_a_lateral_is_one_event(platform):
    sec = lateral(4, feeder=1, lat=2)
    bystander = lateral(1, feeder=1, lat=0, first_id=3_000_000)
    platform.import_model(gridmodel(sec + bystander))
    # the first hub of the lateral heard on feeder 2: a suspected move, waiting for its section
    platform.send(sec[0], report(sec[0], at(1), 2), at=at(1), feeder=2)
    platform.send(sec[0], report(sec[0], at(2), 2), at=at(2), feeder=2)
    (lone,) = events(platform, type="hub_feeder_change")
    assert lone["status"] == "suspected" and lone["details"]["waiting_for_section"] is True
    assert hub(platform, sec[0])["map"]["feeder"] == 1
    # a second hub of the same lateral on feeder 2: one switch-state change, applied
    platform.send(sec[1], report(sec[1], at(3), 2), at=at(3), feeder=2)
    (sw,) = events(platform, type="switch_state_change")
    assert sw["status"] == "applied" and sw["subject_id"] == "sub-1/f1/l2"
    assert sw["details"]["from_feeder"] == 1 and sw["details"]["to_feeder"] == 2
    assert sw["details"]["hubs_heard"] == sorted([sec[0].hub_id, sec[1].hub_id])
    assert sw["confidence"] > 0.99 and len(sw["evidence"]) == 3
    lone = platform.client.get(f"/api/v1/events/{lone['id']}").json()
    assert lone["status"] == "superseded" and lone["superseded_by"] == sw["id"]
    # every hub of the lateral moved, heard or not; the bystander did not
    for h in sec:
        m = hub(platform, h)["map"]
        assert m["feeder"] == 2 and m["phase"] == h.phase
    assert hub(platform, bystander[0])["map"]["feeder"] == 1
    (s,) = [x for x in platform.client.get("/api/v1/gridmap/sections").json() if x["section_id"] == "sub-1/f1/l2"]
    assert s["feeder"] == 2 and s["normal_feeder"] == 1 and s["switched"]
    # the rest of the lateral reporting from feeder 2 confirms, no more events
    platform.send(sec[2], report(sec[2], at(4), 2), at=at(4), feeder=2)
    platform.send(sec[3], report(sec[3], at(5), 2), at=at(5), feeder=2)
    assert len(events(platform, type="switch_state_change")) == 1
    assert (
        len(
            [
                e
                for e in events(platform)
                if e["type"] in ("hub_feeder_change", "switch_state_change") and e["status"] != "superseded"
            ]
        )
        == 1
    )
    tr = [
        r
        for r in platform.client.get("/api/v1/history", params={"entity": "transformer"}).json()
        if r["field"] == "feeder"
    ]
    assert len(tr) == 4 and all(r["event_id"] == sw["id"] for r in tr)


def test_lone_hub_moving_feeder_is_applied_once_its_section_is_heard(platform):
    sec = lateral(3, feeder=1, lat=1)
    platform.import_model(gridmodel(sec))
    mover = sec[0]
    for k in (1, 2):
        platform.send(mover, report(mover, at(k), 2), at=at(k), feeder=3, phase="A")
    (ev,) = events(platform, type="hub_feeder_change")
    assert ev["status"] == "suspected"
    platform.send(sec[1], report(sec[1], at(3), 2), at=at(3))  # a neighbour where the map says
    ev = platform.client.get(f"/api/v1/events/{ev['id']}").json()
    assert ev["status"] == "applied"
    got = hub(platform, mover)
    assert got["map"]["feeder"] == 3 and got["section_id"] is None
    assert hub(platform, sec[1])["map"]["feeder"] == 1 and events(platform, type="switch_state_change") == []


def test_pairing_and_pairing_loss_change_tan_membership(platform):
    a, b = fleet(2, meters=(2, 2))
    platform.import_model(gridmodel([a, b]))
    r = platform.send(
        a, M.Pairing(meter_id=90_000_001, tan_index=2, relation=M.Relation.SUBORDINATE_SAME_PHASE), at=at(1)
    )[0]
    (ev,) = events(platform, type="tan_member_added")
    assert ev["status"] == "applied" and ev["confidence"] == 1.0 and ev["evidence"] == [r["bundle_id"]]
    assert r["effects"]["change"] == "tan_member_added"
    assert [m["meter_id"] for m in hub(platform, a)["tan"]][-1] == 90_000_001
    # the same meter now announced by hub b: it moved TAN (another transformer or phase)
    platform.send(b, M.Pairing(meter_id=90_000_001, tan_index=2, relation=M.Relation.SPARE_HUB_SAME_PHASE), at=at(2))
    (mv,) = events(platform, type="meter_moved_tan")
    assert mv["details"]["previous_hub_id"] == a.hub_id and mv["details"]["hub_id"] == b.hub_id
    m = platform.client.get("/api/v1/meters/90000001").json()
    assert m["hub_id"] == b.hub_id and m["role"] == "spare_hub" and m["active"]
    # re-announcing is not a change
    platform.send(b, M.Pairing(meter_id=90_000_001, tan_index=2, relation=M.Relation.SPARE_HUB_SAME_PHASE), at=at(3))
    assert len(events(platform, type="meter_moved_tan")) == 1
    platform.send(b, M.PairingLoss(meter_id=90_000_001, tan_index=2, reason=2), at=at(4))
    (lost,) = events(platform, type="tan_member_lost")
    assert lost["details"]["reason"] == "moved_away"
    m = platform.client.get("/api/v1/meters/90000001").json()
    assert not m["active"] and m["unpair_reason"] == "moved_away"
    assert {x["cause"] for x in platform.client.get("/api/v1/meters/90000001/history").json()} == {
        "pairing",
        "pairing_loss",
    }
    # a report naming TAN index 2 no longer maps to that meter
    rep = platform.send(b, M.ScheduledReport(int(at(5).timestamp()), [M.MeterReading(2, 230.0, 1.0, 0.9)]), at=at(5))[0]
    assert rep["status"] == "accepted"
    rd = platform.client.get("/api/v1/readings", params={"hub_id": b.hub_id}).json()
    assert rd[0]["meter_id"] is None


def _outage_setup(p):
    sec = lateral(4, feeder=2, lat=1)
    other = lateral(2, feeder=3, lat=0, first_id=3_000_000)
    p.import_model(gridmodel(sec + other))
    for k, h in enumerate(sec + other):
        p.send(h, report(h, at(k), 2), at=at(k))
    return sec, other


def test_missed_reports_are_a_suspected_outage_by_section_and_restoration(platform_make):
    p = platform_make(reports_per_day=96)  # a report every 225 slots (15 min)
    sec, other = _outage_setup(p)
    later = T0 + timedelta(minutes=16)
    for k, h in enumerate(other):
        p.send(h, report(h, later + timedelta(seconds=8 * k), 2), at=later + timedelta(seconds=8 * k))
    r = p.client.post(
        "/api/v1/inference/check-missed", json={"now": (T0 + timedelta(minutes=17)).isoformat()}, headers=p.admin
    )
    assert r.status_code == 200
    (res,) = r.json()
    assert sorted(res["silent_hubs"]) == sorted(h.hub_id for h in sec)
    (ev,) = events(p, type="suspected_outage")
    assert ev["subject_id"] == "sub-1/f2/l1" and ev["details"]["silent_hubs"] == sorted(h.hub_id for h in sec)
    assert ev["confidence"] == pytest.approx(1 - 2**-4) and ev["status"] == "suspected"
    assert all(hub(p, h)["status"] == "silent" for h in sec) and hub(p, other[0])["status"] == "active"
    (s,) = [x for x in p.client.get("/api/v1/gridmap/sections").json() if x["section_id"] == "sub-1/f2/l1"]
    assert not s["energized"]
    # checking again does not duplicate it
    p.client.post(
        "/api/v1/inference/check-missed", json={"now": (T0 + timedelta(minutes=18)).isoformat()}, headers=p.admin
    )
    assert len(events(p, type="suspected_outage")) == 1
    # half of the section heard again: restored
    back = T0 + timedelta(minutes=20)
    p.send(sec[0], report(sec[0], back, 2), at=back)
    assert events(p, type="restoration") == []
    p.send(sec[1], report(sec[1], back + timedelta(seconds=8), 2), at=back + timedelta(seconds=8))
    (rs,) = events(p, type="restoration")
    assert rs["details"]["outage_event_id"] == ev["id"] and rs["status"] == "info"
    assert p.client.get(f"/api/v1/events/{ev['id']}").json()["status"] == "resolved"
    (s,) = [x for x in p.client.get("/api/v1/gridmap/sections").json() if x["section_id"] == "sub-1/f2/l1"]
    assert s["energized"]


def test_restoration_and_outage_alerts(platform_make):
    p = platform_make()
    sec = lateral(3, feeder=1, lat=3)
    p.import_model(gridmodel(sec))
    t = at(10)
    # last gasps from two hubs: a suspected outage with certainty per alerting hub
    for k, h in enumerate(sec[:2]):
        p.send(h, M.Alert(M.AlertType.OUTAGE, int(t.timestamp()), 0.0, 0), at=t + timedelta(seconds=4 * k))
    (out,) = events(p, type="suspected_outage")
    assert out["details"]["alerting_hubs"] == sorted(h.hub_id for h in sec[:2])
    assert out["confidence"] == pytest.approx(1 - 0.2**2)
    # restoration alerts carry the outage duration
    t2 = t + timedelta(seconds=60)
    for k, h in enumerate(sec):
        p.send(h, M.Alert(M.AlertType.RESTORATION, int(t2.timestamp()), 240.0, 62), at=t2 + timedelta(seconds=8 * k))
    (rs,) = events(p, type="restoration")
    assert rs["details"]["hubs"] == sorted(h.hub_id for h in sec) and rs["details"]["outage_duration_s"] == 62
    assert rs["confidence"] == pytest.approx(1 - 0.2**3) and rs["details"]["outage_event_id"] == out["id"]
    assert p.client.get(f"/api/v1/events/{out['id']}").json()["status"] == "resolved"


def test_tan_anomaly_and_distress_are_open_events(platform):
    (h,) = fleet(1, meters=(3, 3))
    platform.import_model(gridmodel([h]))
    platform.send(h, M.TanAnomaly(M.AnomalyType.THEFT_SUSPICION, 2, int(at(1).timestamp()), 4500.0, 0.9), at=at(1))
    (ev,) = events(platform, type="tan_anomaly")
    assert ev["status"] == "open" and ev["details"]["meter_id"] == h.meter_ids[2]
    assert ev["details"]["unaccounted_w"] == 4500.0 and ev["confidence"] == pytest.approx(0.9, abs=0.01)
    platform.send(h, M.TanAnomaly(M.AnomalyType.THEFT_SUSPICION, 2, int(at(2).timestamp()), 4600.0, 0.95), at=at(2))
    assert len(events(platform, type="tan_anomaly")) == 1  # the same anomaly, updated
    platform.send(h, M.Alert(M.AlertType.DISTRESS, int(at(3).timestamp()), 240.0, 0), at=at(3))
    assert events(platform, type="tan_distress")[0]["status"] == "open"
    r = platform.client.post(f"/api/v1/events/{ev['id']}/resolve", json={"note": "crew sent"}, headers=platform.admin)
    assert r.json()["status"] == "resolved" and r.json()["details"]["operator_note"] == "crew sent"
    assert platform.client.post(f"/api/v1/events/{ev['id']}/resolve", headers=platform.admin).status_code == 409


def test_policy_and_operator_decisions(platform):
    hs = fleet(3)
    platform.import_model(gridmodel(hs))
    pol = platform.client.get("/api/v1/inference/policy").json()
    assert pol["report_threshold"] == 0.5 and pol["act_threshold"] == 0.9 and pol["min_observations"] == 2
    bad = platform.client.put(
        "/api/v1/inference/policy", json={**pol, "report_threshold": 0.95}, headers=platform.admin
    )
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "report_threshold"]
    assert (
        platform.client.put(
            "/api/v1/inference/policy", json={**pol, "min_observations": 0}, headers=platform.admin
        ).status_code
        == 422
    )
    new = platform.client.put(
        "/api/v1/inference/policy",
        json={**pol, "min_observations": 3, "type_act_threshold": {"hub_phase_change": 0.999}},
        headers=platform.admin,
    )
    assert new.status_code == 200 and new.json()["min_observations"] == 3
    h = hs[0]
    other = "B" if h.phase != "B" else "A"
    platform.send(h, report(h, at(1), 1), at=at(1), phase=other, confidence=0.7)
    (ev,) = events(platform, type="hub_phase_change")
    assert ev["status"] == "suspected"
    r = platform.client.post(f"/api/v1/events/{ev['id']}/confirm", json={"note": "field check"}, headers=platform.admin)
    assert r.status_code == 200 and r.json()["status"] == "applied"
    assert hub(platform, h)["map"]["phase"] == other
    assert platform.client.post(f"/api/v1/events/{ev['id']}/confirm", headers=platform.admin).status_code == 409
    h2 = hs[1]
    platform.send(h2, report(h2, at(2), 1), at=at(2), feeder=h2.feeder + 1, confidence=0.8)
    (ev2,) = events(platform, type="hub_feeder_change")
    d = platform.client.post(f"/api/v1/events/{ev2['id']}/dismiss", headers=platform.admin)
    assert d.json()["status"] == "dismissed" and hub(platform, h2)["candidate"] is None
    assert platform.client.post("/api/v1/events/999999/confirm", headers=platform.admin).status_code == 404
    assert platform.client.get("/api/v1/events/999999").status_code == 404
    assert platform.client.get("/api/v1/events/0").status_code == 422
    assert events(platform, min_confidence=0.99) == []
    assert {e["type"] for e in events(platform, status=["applied", "dismissed"])} == {
        "hub_phase_change",
        "hub_feeder_change",
    }
