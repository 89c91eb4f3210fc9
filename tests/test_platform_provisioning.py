"""Computing Platform: channel plan, slot/code assignment, per-hub policy, channel statistics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dsp.air import messages as M
from platform_api.services import provisioning as prov
from platform_api.testing import bundles_for, fleet, gridmodel, report, slot_time

T0 = slot_time(448_826_400)


def future(hours: float = 2) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat()


def test_default_plan_and_alert_channel(platform):
    r = platform.client.get("/api/v1/provisioning/channel-plan").json()
    act = r["active"]
    assert act["version"] is None and act["grid_hz"] == 60 and act["reports_per_day"] == 2
    assert [(c["index"], c["fc_hz"], c["role"]) for c in act["channels"]] == [
        (0, 1170.0, "scheduled"),
        (1, 2130.0, "scheduled"),
        (2, 3090.0, "alert"),
    ]
    assert act["channels"][0]["band_hz"] == [720.0, 1620.0] and act["channels"][0]["codes"] == 4
    assert r["pending"] is None
    assert r["alert_channel"]["access"] == "slotted_aloha" and r["alert_channel"]["channels"] == [2]
    assert r["alert_channel"]["codes"] == [0, 1, 2, 3]


def test_default_capacity_is_12000_hubs_twice_a_day():
    plan = {"reports_per_day": 2.0, **prov.default_plan_dict()}
    sm = prov.SlotMap(prov.scheduled_channels(plan), prov.period_slots(plan["reports_per_day"]))
    assert sm.period == 10_800
    got = [sm.allocate(1) for _ in range(12_000)]
    assert len(set(got)) == 12_000
    assert sm.used(0) == sm.used(1) == 6_000
    assert (sm.used(0) + sm.used(1)) / (2 * sm.period) == pytest.approx(0.5556, abs=1e-4)
    for _ in range(21_600 - 12_000):
        sm.allocate(1)
    with pytest.raises(prov.CapacityError):
        sm.allocate(1)


def test_report_slot_arithmetic():
    class P:  # a policy-like object
        slot_offset, period_slots, slots_per_report, activation_slot = 100, 10_800, 2, 0

    day0 = 448_826_400 - 448_826_400 % 21_600
    assert prov.next_report_slots(P, day0, 3) == [day0 + 100, day0 + 10_900, day0 + 21_700]
    assert prov.last_due_slot(P, day0 + 50) == day0 - 21_600 + 10_900
    assert prov.last_due_slot(P, day0 + 10_950) == day0 + 10_900


def test_provisioning_request_assigns_slots_and_policy_is_readable(platform):
    (h,) = fleet(1, meters=(3, 3))
    platform.import_model(gridmodel([h]))
    assert platform.client.get(f"/api/v1/hubs/{h.hub_id}/policy").json()["provisioned"] is False
    (ans,) = platform.send(h, M.ProvisioningRequest(meter_id=h.meter_ids[0], capabilities=1), at=T0)
    assert ans["effects"]["provisioned"] is True
    pol = platform.client.get(f"/api/v1/hubs/{h.hub_id}/policy").json()
    cur = pol["current"]
    assert pol["provisioned"] and cur["channel"] in (0, 1) and cur["code_rule"] == "slot_index mod 2"
    assert cur["slots_per_report"] == 2 and cur["period_slots"] == 10_800 and len(cur["slots_of_day"]) == 4
    assert cur["slots_of_day"][2] - cur["slots_of_day"][0] == 10_800
    assert cur["next_report_slots"][0] % 21_600 in (cur["slot_offset"], cur["slot_offset"] + 10_800)
    assert pol["alert"]["repeats"] == 3 and pol["channel_plan"]["grid_hz"] == 60
    assert [e["type"] for e in platform.client.get("/api/v1/events").json()] == ["hub_provisioned"]
    # a repeat of the request does not provision again
    platform.send(h, M.ProvisioningRequest(meter_id=h.meter_ids[0], capabilities=1), at=T0 + timedelta(seconds=8))
    assert platform.client.get(f"/api/v1/hubs/{h.hub_id}/policy").json()["current"]["version"] == 1


def test_policy_change_is_announced_for_a_future_activation(platform):
    hs = fleet(3, meters=(1, 1))
    platform.import_model(gridmodel(hs))
    r = platform.client.post("/api/v1/provisioning/assign", json={}, headers=platform.admin)
    assert r.status_code == 200 and r.json()["assigned"] == 3
    assert r.json()["capacity"]["provisioned_hubs"] == 3
    h = hs[0]
    cur = platform.client.get(f"/api/v1/hubs/{h.hub_id}/policy").json()["current"]
    other = 1 - cur["channel"]
    soon = (datetime.now(UTC) + timedelta(seconds=30)).isoformat()
    bad = platform.client.put(
        f"/api/v1/hubs/{h.hub_id}/policy", json={"channel": other, "activation_time": soon}, headers=platform.admin
    )
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "activation_time"]
    bad = platform.client.put(
        f"/api/v1/hubs/{h.hub_id}/policy",
        json={"modulation": "qpsk", "activation_time": future()},
        headers=platform.admin,
    )
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "modulation"]
    bad = platform.client.put(
        f"/api/v1/hubs/{h.hub_id}/policy", json={"channel": 2, "activation_time": future()}, headers=platform.admin
    )
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "channel"]
    taken = platform.client.get(f"/api/v1/hubs/{hs[1].hub_id}/policy").json()["current"]
    bad = platform.client.put(
        f"/api/v1/hubs/{h.hub_id}/policy",
        json={"channel": taken["channel"], "slot_offset": taken["slot_offset"], "activation_time": future()},
        headers=platform.admin,
    )
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "slot_offset"]
    ok = platform.client.put(
        f"/api/v1/hubs/{h.hub_id}/policy",
        json={"channel": other, "fec": "2/3", "activation_time": future(3), "reason": "test"},
        headers=platform.admin,
    )
    assert ok.status_code == 200, ok.text
    body = ok.json()
    assert body["current"]["channel"] == cur["channel"] and body["pending"]["channel"] == other
    assert body["pending"]["fec"] == "2/3" and body["pending"]["version"] == 2
    act = datetime.fromisoformat(body["pending"]["activation_time"].replace("Z", "+00:00"))
    assert act > datetime.now(UTC) + timedelta(hours=2)
    assert body["pending"]["activation_slot"] == int(-(-act.timestamp() // 4))
    assert (
        platform.client.put("/api/v1/hubs/12345/policy", json={"fec": "1/2"}, headers=platform.admin).status_code == 404
    )


def test_channel_plan_change_validation_and_announcement(platform):
    hs = fleet(2, meters=(1, 1))
    platform.import_model(gridmodel(hs))
    platform.client.post(
        "/api/v1/provisioning/assign", json={"hub_ids": [h.hub_id for h in hs]}, headers=platform.admin
    )
    url = "/api/v1/provisioning/channel-plan"
    overlap = [
        {"index": 0, "fc_hz": 1170, "role": "scheduled"},
        {"index": 1, "fc_hz": 1500, "role": "scheduled"},
        {"index": 2, "fc_hz": 3090, "role": "alert"},
    ]
    r = platform.client.put(url, json={"channels": overlap, "activation_time": future()}, headers=platform.admin)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "channels"] and "overlap" in r.text
    low = [{"index": 0, "fc_hz": 900, "role": "scheduled"}, {"index": 2, "fc_hz": 3090, "role": "alert"}]
    r = platform.client.put(url, json={"channels": low, "activation_time": future()}, headers=platform.admin)
    assert r.status_code == 422 and "11th harmonic" in r.text
    no_alert = [{"index": 0, "fc_hz": 1170, "role": "scheduled"}]
    assert (
        platform.client.put(
            url, json={"channels": no_alert, "activation_time": future()}, headers=platform.admin
        ).status_code
        == 422
    )
    r = platform.client.put(
        url, json={"reports_per_day": 2, "activation_time": "2020-01-01T00:00:00Z"}, headers=platform.admin
    )
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "activation_time"]
    r = platform.client.put(
        url, json={"reports_per_day": 4, "activation_time": future(5), "note": "four a day"}, headers=platform.admin
    )
    assert r.status_code == 200 and r.json()["policies_changed"] == 2
    g = platform.client.get(url).json()
    assert g["active"]["version"] is None and g["pending"]["reports_per_day"] == 4
    pol = platform.client.get(f"/api/v1/hubs/{hs[0].hub_id}/policy").json()
    assert (
        pol["pending"]["period_slots"] == 5_400 and pol["pending"]["activation_time"] == g["pending"]["activation_time"]
    )
    assert [r["entity"] for r in platform.client.get("/api/v1/history", params={"entity": "plan"}).json()] == ["plan"]


def test_channel_statistics_recommend_and_apply_a_rebalance(platform):
    hs = fleet(8, meters=(1, 1))
    platform.import_model(gridmodel(hs))
    platform.client.post("/api/v1/provisioning/assign", json={}, headers=platform.admin)
    chans = {h.hub_id: platform.client.get(f"/api/v1/hubs/{h.hub_id}/policy").json()["current"]["channel"] for h in hs}
    assert set(chans.values()) == {0, 1}
    t = T0
    for k in range(40):
        h = hs[k % 8]
        t += timedelta(seconds=4)
        ch = chans[h.hub_id]
        good = ch == 0 or k % 4 == 0  # channel 1 loses three bursts of four
        for b in bundles_for(h, report(h, t, 1), at=t, channel=ch, crc_ok=good):
            assert platform.post(b).status_code == 201
    st = platform.client.get("/api/v1/provisioning/channel-stats", params={"min_samples": 10}).json()
    by = {c["channel"]: c for c in st["channels"]}
    assert by[0]["success_rate"] == 1.0 and by[1]["success_rate"] < 0.5
    assert {(c["channel"], c["code"]) for c in st["codes"]} <= {(0, 0), (0, 1), (1, 0), (1, 1)}
    assert all(c["no_frame"] + c["decoded"] == c["bundles"] for c in st["codes"])
    rec = st["recommendation"]
    assert rec["action"] == "move" and rec["better_channel"] == 0 and rec["worse_channel"] == 1
    alt = platform.client.get("/api/v1/provisioning/channel-stats", params={"min_samples": 1000}).json()
    assert alt["recommendation"]["action"] == "none"
    r = platform.client.post(
        "/api/v1/provisioning/rebalance",
        json={"action": "alternate", "activation_time": future()},
        headers=platform.admin,
    )
    assert r.status_code == 200 and r.json()["action"] == "alternate" and r.json()["policies_changed"] == 8
    pend = platform.client.get(f"/api/v1/hubs/{hs[0].hub_id}/policy").json()["pending"]
    assert pend["rotation"]["odd_reports_channel"] == 1 - chans[hs[0].hub_id]
    r = platform.client.post(
        "/api/v1/provisioning/rebalance", json={"action": "move", "activation_time": future(4)}, headers=platform.admin
    )
    assert r.json()["policies_changed"] == 4
    assert platform.client.get("/api/v1/provisioning/channel-stats", params={"since": "yesterday"}).status_code == 422


def test_capacity_endpoint(platform):
    platform.import_model(gridmodel(fleet(5, meters=(1, 4))))
    platform.client.post("/api/v1/provisioning/assign", json={}, headers=platform.admin)
    c = platform.client.get("/api/v1/provisioning/capacity", params={"alerts_per_hub_per_day": 6}).json()
    assert c["slots_per_period_total"] == 21_600 and c["max_hubs_one_frame_reports"] == 21_600
    assert c["provisioned_hubs"] == 5 and 0 < c["utilization"] < 0.01
    assert 0.99 < c["alert_channel"]["expected_success"] <= 1.0
    assert (
        platform.client.post("/api/v1/provisioning/assign", json={"hub_ids": [1]}, headers=platform.admin).status_code
        == 422
    )
