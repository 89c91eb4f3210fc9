"""Computing Platform against the simulator's ground truth: the demo scenario's traffic (every
frame, at its true feeder and phase) and the changes the platform must find in it."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from gridsim.scenario import load_builtin
from gridsim.simulate import _events
from gridsim.traffic import Scheduler, make_population
from platform_api.testing import FakeHub, bundles_for


def _demo_traffic():
    s = load_builtin("demo")
    sc, hc = s.scenario, s.hubs
    hubs = make_population(
        np.random.default_rng([sc.seed, 1]),
        seed=sc.seed,
        n_hubs=hc.count,
        buses=s.substation.buses,
        feeders_per_bus=s.substation.feeders_per_bus,
        laterals_per_feeder=hc.laterals_per_feeder,
        meters_per_hub=tuple(hc.meters_per_hub),
        level_db=tuple(hc.level_db),
        clock_ppm=hc.clock_ppm,
        cutoff_hz=(0.95 * s.substation.transformer_cutoff_hz, 1.3 * s.substation.transformer_cutoff_hz),
    )
    truth_hubs = [
        {
            "index": i,
            "hub_id": h.hub_id,
            "key_hex": h.key.hex(),
            "bus": h.bus,
            "feeder": h.feeder,
            "phase": "ABC"[h.phase],
            "lateral": h.lateral,
            "transformer_id": h.transformer_id,
            "meter_ids": h.meter_ids,
            "is_new": h.is_new,
        }
        for i, h in enumerate(hubs)
    ]
    events = _events(s)
    start = sc.start_time_utc.timestamp()
    sched = Scheduler(
        hubs,
        events,
        rng=np.random.default_rng([sc.seed, 2]),
        duration_s=sc.duration_s,
        start_unix=start,
        feeders_per_bus=s.substation.feeders_per_bus,
        report_period_s=86400.0 / hc.scheduled_reports_per_day,
        alert_rate_per_hub_per_day=hc.alert_rate_per_hub_per_day,
        jitter_s=hc.jitter_s,
    )
    return s, truth_hubs, hubs, sched.build(), start


def test_demo_scenario_changes_are_found(platform_make):
    s, truth_hubs, hubs, txs, start = _demo_traffic()
    p = platform_make(substation_id="demo", reports_per_day=s.hubs.scheduled_reports_per_day)
    p.import_model({"capture": {"hubs": truth_hubs}}, substation_id="demo")
    statuses: dict[str, int] = {}
    next_check = 8.0
    for tx in sorted(txs, key=lambda tx: tx.time_s):
        h = hubs[tx.hub_index]
        t = datetime.fromtimestamp(start + tx.time_s, tz=UTC)
        if tx.time_s >= next_check:  # the platform's background check, every 8 s of data time
            r = p.client.post("/api/v1/inference/check-missed", json={}, headers=p.admin)
            assert r.status_code == 200, r.text
            next_check = tx.time_s + 8.0
        fh = FakeHub(hub_id=h.hub_id, key=h.key)
        (b,) = bundles_for(
            fh,
            None,
            at=t,
            frames=[tx.frame],
            receiver_id="rx-1",
            substation_id="demo",
            channel=tx.channel,
            code=tx.code,
            bus=tx.bus,
            feeder=tx.feeder,
            phase="ABC"[tx.phase],
            seed=tx.tx_id,
        )
        b["slot"] = tx.slot
        r = p.post(b)
        assert r.status_code == 201, r.text
        st = r.json()["status"]
        statuses[st] = statuses.get(st, 0) + 1
    assert "rejected" not in statuses and statuses["accepted"] > 200 and statuses["duplicate"] > 0
    ev = p.client.get("/api/v1/events", params={"limit": 1000}).json()
    by = {}
    for e in ev:
        by.setdefault(e["type"], []).append(e)
    evs = {e.kind: e for e in s.events}
    assert {"switch_lateral", "outage", "tap"} <= set(evs), "the demo scenario stages one event of each kind"
    # the switched lateral: one switch-state change, nothing else on those hubs
    sl = evs["switch_lateral"]
    (sw,) = by["switch_state_change"]
    assert sw["subject_id"] == f"demo/f{sl.feeder}/l{sl.lateral}" and sw["status"] == "applied"
    assert sw["details"]["to_feeder"] == sl.to_feeder
    for h in truth_hubs:
        if h["feeder"] == sl.feeder and h["lateral"] == sl.lateral and not h["is_new"]:
            assert p.client.get(f"/api/v1/hubs/{h['hub_id']}").json()["map"]["feeder"] == sl.to_feeder
    assert not [e for e in by.get("hub_feeder_change", []) if e["status"] != "superseded"]
    # phase moves: exactly the hubs heard on another phase of their feeder than the truth map says
    # (the scenario's move_phase may name a hub already on that phase)
    expect = {
        str(tx.hub_id)
        for tx in txs
        if not truth_hubs[tx.hub_index]["is_new"]
        and tx.feeder == truth_hubs[tx.hub_index]["feeder"]
        and "ABC"[tx.phase] != truth_hubs[tx.hub_index]["phase"]
    }
    assert {e["subject_id"] for e in by.get("hub_phase_change", [])} == expect
    # the outage: reports missed during it make a suspected outage of that section (and of no
    # other), resolved on restoration, which is reported with its duration
    ou = evs["outage"]
    section = f"demo/f{ou.feeder}/l{ou.lateral}"
    (so,) = by["suspected_outage"]
    assert so["subject_id"] == section and so["status"] == "resolved"
    since = datetime.fromisoformat(so["details"]["since"].replace("Z", "+00:00")).timestamp() - start
    assert ou.from_s <= since <= ou.to_s
    assert len(so["details"]["silent_hubs"]) >= 2
    (rs,) = by["restoration"]
    assert rs["subject_id"] == section
    assert rs["details"]["outage_duration_s"] == pytest.approx(ou.to_s - ou.from_s, abs=1)
    # the tap (TAN anomaly from the hub)
    (tap,) = by["tan_anomaly"]
    assert tap["subject_id"] == str(truth_hubs[evs["tap"].hub]["hub_id"])
    assert tap["details"]["anomaly"] == "theft_suspicion"
    # new hubs: provisioned, placed where they are, their TANs built from pairing messages
    new = [h for h in truth_hubs if h["is_new"]]
    placed = {e["subject_id"] for e in by["new_hub"] if e["status"] == "applied"}
    assert placed == {str(h["hub_id"]) for h in new if any(tx.hub_id == h["hub_id"] for tx in txs)}
    for h in new:
        got = p.client.get(f"/api/v1/hubs/{h['hub_id']}").json()
        if str(h["hub_id"]) in placed:
            assert (got["map"]["feeder"], got["map"]["phase"]) == (h["feeder"], h["phase"])
    assert {e["subject_id"] for e in by["hub_provisioned"]} <= {str(h["hub_id"]) for h in new}
    assert len(by["tan_member_added"]) > 0
    # nothing else was invented
    assert set(by) <= {
        "switch_state_change",
        "hub_feeder_change",
        "hub_phase_change",
        "restoration",
        "tan_anomaly",
        "suspected_outage",
        "new_hub",
        "hub_provisioned",
        "tan_member_added",
        "tan_distress",
    }
