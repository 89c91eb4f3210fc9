"""Computing Platform: the theft analysis wired into the app (issue [5/6]): work orders, AMI CSV
import, the analysis run on the series the platform holds, theft_alert events (deduplicated), and
work-order suppression.

The AMI data are synthesised with the physics of a radial area (each meter on its own service
drop): V_meter = V_secondary - R_i * I_i (active) - X_i * I_i (reactive), minus R_i * I_tap for the
meter whose service line carries an unmetered tap, and the transformer's drop of the tap's current
on every meter; 15-minute averages of 1-minute loads over three days, measured with the accuracy
class of tests/test_theft.py (0.1 % voltage, 0.25 % current, fixed gains, rounding).
"""

from __future__ import annotations

import json
from datetime import UTC

import numpy as np
import pytest

from platform_api.services import theft as theft_service
from platform_api.testing import FakeHub, report
from tests.test_theft import DAY, T0, loads, measure

PERIOD_MIN = 15
TAPPED = 70003
TAP_START = int(1.5 * DAY)  # minutes: after the first day, the analysis' baseline
HUBS = {
    "T-100": (9001, [70001, 70002, 70003, 70004, 70005]),  # tapped at 70003
    "T-200": (9002, [80001, 80002, 80003, 80004]),  # clean
    "T-300": (9003, [90001, 90002]),
}  # no data


def grid_model(key_hex: str | None = None) -> dict:
    trs, hubs = [], []
    for k, (tid, (hub_id, meters)) in enumerate(HUBS.items()):
        lat, lon = 37.55 + 0.01 * k, -77.44
        trs.append(
            {
                "transformer_id": tid,
                "substation_id": "sub-1",
                "bus": 0,
                "feeder": 1,
                "lateral": k,
                "phases": "A",
                "lat": lat,
                "lon": lon,
                **({"topology": "radial"} if k == 0 else {}),
            }
        )
        hub = {
            "hub_id": hub_id,
            "substation_id": "sub-1",
            "bus": 0,
            "feeder": 1,
            "lateral": k,
            "phase": "A",
            "transformer_id": tid,
            "meters": [
                {
                    "meter_id": m,
                    "tan_index": j,
                    "role": "hub" if j == 0 else "subordinate",
                    "account": f"ACC-{m}",
                    "address": f"{10 + j} Elm Street",
                    "lat": lat + 1e-4 * (j + 1),
                    "lon": lon,
                    "service_length_m": 40.0,
                }
                for j, m in enumerate(meters)
            ],
        }
        if key_hex and k == 0:
            hub["key_hex"] = key_hex
        hubs.append(hub)
    return {
        "format": "gla-gridmodel/1",
        "substations": [{"substation_id": "sub-1", "lat": 37.5, "lon": -77.4}],
        "transformers": trs,
        "hubs": hubs,
    }


def area_csv(
    seed: int, meter_ids: list[int], *, tap_meter: int | None = None, tap_w: float = 3000.0, days: int = 3
) -> str:
    """AMI CSV of one radial area: 15-minute averages, physics as in the module doc."""
    rng = np.random.default_rng(seed)
    n, t_n = len(meter_ids), days * DAY
    p, q = loads(rng, t_n, n)  # active and reactive current per house, A, 1-minute steps
    r = rng.uniform(0.02, 0.06, n)  # service loop resistance, ohm
    x = 0.25 * r
    tap = np.zeros(t_n)
    if tap_meter is not None:
        tap[TAP_START:] = tap_w / 240.0
    v_secondary = 240.0 * (1 + 0.01 * np.sin(np.arange(t_n) / DAY * 2 * np.pi)) - 0.02 * (p.sum(axis=1) + tap)
    v = v_secondary[:, None] - r * p - x * q
    if tap_meter is not None:
        k = meter_ids.index(tap_meter)
        v[:, k] -= r[k] * tap

    def avg(a):
        return a.reshape(t_n // PERIOD_MIN, PERIOD_MIN, -1).mean(axis=1)

    v, p, q = avg(v), avg(p), avg(q)
    i = np.hypot(p, q)
    vm, im, pfm = measure(rng, v, i, p / i)
    times = T0 + 60 * PERIOD_MIN * (1 + np.arange(v.shape[0]))  # interval ends
    lines = [
        f"{m},{int(t)},{vm[a, k]:.2f},{im[a, k]:.2f},{pfm[a, k]:.2f}"
        for a, t in enumerate(times)
        for k, m in enumerate(meter_ids)
    ]
    return "meter_id,timestamp,v_rms,i_rms,pf\n" + "\n".join(lines) + "\n"


def upload(p, text: str, **kw):
    return p.client.post(
        "/api/v1/ami/readings",
        content=text.encode() if isinstance(text, str) else text,
        headers={"Content-Type": "text/csv", **p.admin, **kw.pop("headers", {})},
        **kw,
    )


def setup_areas(p, key_hex: str | None = None) -> None:
    p.import_model(grid_model(key_hex))
    for tid, seed, tap in (("T-100", 1, TAPPED), ("T-200", 2, None)):
        r = upload(p, area_csv(seed, HUBS[tid][1], tap_meter=tap))
        assert r.status_code == 200, r.text
        assert r.json()["inserted"] == 3 * 96 * len(HUBS[tid][1]) and r.json()["unknown_meter_ids"] == []


def analyse(p, **params) -> dict:
    r = p.client.post("/api/v1/theft/analyse", params=params, headers=p.admin)
    assert r.status_code == 200, r.text
    return r.json()


def by_tr(run: dict) -> dict:
    return {x["transformer_id"]: x for x in run["results"]}


def theft_events(p, **params) -> list[dict]:
    r = p.client.get("/api/v1/events", params={"type": "theft_alert", **params}, headers=p.admin)
    assert r.status_code == 200, r.text
    return r.json()


def theft_log(p) -> list[dict]:
    return [
        e
        for e in p.client.get("/api/v1/events/log", params={"limit": 1000}, headers=p.admin).json()
        if e["event"]["type"] == "theft_alert"
    ]


# ---------------------------------------------------------------------------------- work orders
def test_work_orders_create_list_get_cancel(platform):
    c = platform.client
    body = {
        "order_id": "WO-1",
        "kind": "meter_exchange",
        "start_at": "2026-11-22T08:00:00Z",
        "end_at": "2026-11-22T12:00:00+01:00",
        "meter_ids": [70003, 70003],
        "note": "new meter",
    }
    r = c.post("/api/v1/workorders", json=body, headers=platform.admin)
    assert r.status_code == 201, r.text
    wo = r.json()
    assert wo["order_id"] == "WO-1" and wo["meter_ids"] == [70003] and wo["status"] == "active"
    assert wo["end_at"] == "2026-11-22T11:00:00Z" and wo["explains"] is None
    assert c.post("/api/v1/workorders", json=body, headers=platform.admin).status_code == 409
    r = c.post(
        "/api/v1/workorders",
        json={
            "kind": "transformer",
            "start_at": "2026-11-25T00:00:00Z",
            "end_at": "2026-11-25T00:00:00Z",
            "transformer_ids": ["T-200"],
            "explains": ["theft_suspicion"],
        },
        headers=platform.admin,
    )
    assert r.status_code == 201, r.text
    other = r.json()["order_id"]
    assert other.startswith("wo-") and r.json()["explains"] == ["theft_suspicion"]

    def ids(**params):
        r = c.get("/api/v1/workorders", params=params)
        assert r.status_code == 200, r.text
        return [w["order_id"] for w in r.json()]

    assert sorted(ids()) == sorted(["WO-1", other])
    assert ids(meter_id=70003) == ["WO-1"] and ids(meter_id=1) == []
    assert ids(transformer_id="T-200") == [other]
    assert ids(since="2026-11-23T00:00:00Z") == [other] and ids(until="2026-11-23T00:00:00Z") == ["WO-1"]
    assert ids(since="2026-11-22T10:00:00Z", until="2026-11-22T10:30:00Z") == ["WO-1"]
    assert c.get(f"/api/v1/workorders/{other}").json()["transformer_ids"] == ["T-200"]
    r = c.delete("/api/v1/workorders/WO-1", headers=platform.admin)
    assert r.status_code == 200 and r.json()["status"] == "cancelled" and r.json()["cancelled_at"]
    again = c.delete("/api/v1/workorders/WO-1", headers=platform.admin).json()
    assert again["status"] == "cancelled" and again["cancelled_at"] == r.json()["cancelled_at"]
    assert ids(status="cancelled") == ["WO-1"] and ids(status="active") == [other]
    for bad in ("WO-404", "nope"):
        assert c.get(f"/api/v1/workorders/{bad}").status_code == 404
        assert c.delete(f"/api/v1/workorders/{bad}", headers=platform.admin).status_code == 404
    assert c.get("/api/v1/workorders", params={"since": "yesterday"}).status_code == 422


@pytest.mark.parametrize(
    "change,loc",
    [
        ({"kind": "burglary"}, ["body", "kind"]),
        ({"end_at": "2026-11-22T07:00:00Z"}, ["body", "end_at"]),
        ({"meter_ids": [], "transformer_ids": []}, ["body", "meter_ids"]),
        ({"start_at": "2026-11-22T08:00:00"}, ["body", "start_at"]),
        ({"start_at": "1990-01-01T00:00:00Z"}, ["body", "start_at"]),
        ({"meter_ids": [2**32]}, ["body", "meter_ids", 0]),
        ({"transformer_ids": ["T 1"]}, ["body", "transformer_ids", 0]),
        ({"explains": ["everything"]}, ["body", "explains", 0]),
        ({"order_id": "a/b c"}, ["body", "order_id"]),
        ({"colour": "red"}, ["body", "colour"]),
    ],
)
def test_work_order_errors_name_the_field(platform, change, loc):
    body = {
        "kind": "service_line",
        "start_at": "2026-11-22T08:00:00Z",
        "end_at": "2026-11-22T12:00:00Z",
        "meter_ids": [70003],
        **change,
    }
    r = platform.client.post("/api/v1/workorders", json=body, headers=platform.admin)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == loc, r.json()
    assert platform.client.get("/api/v1/workorders").json() == []


def test_operator_routes_need_the_admin_token(platform_make):
    p = platform_make(admin_token="admin-secret-0123456789")
    p.client.post(
        "/api/v1/workorders",
        json={
            "order_id": "WO-9",
            "kind": "other",
            "start_at": "2026-11-22T08:00:00Z",
            "end_at": "2026-11-22T09:00:00Z",
            "meter_ids": [1],
        },
        headers=p.admin,
    )
    csv = "meter_id,timestamp,v_rms,i_rms,pf\n1,1795305600,240,1,0.9\n"
    calls = [
        (
            "POST",
            "/api/v1/workorders",
            {
                "json": {
                    "kind": "other",
                    "start_at": "2026-11-22T08:00:00Z",
                    "end_at": "2026-11-22T09:00:00Z",
                    "meter_ids": [1],
                }
            },
        ),
        ("DELETE", "/api/v1/workorders/WO-9", {}),
        ("POST", "/api/v1/ami/readings", {"content": csv, "headers": {"Content-Type": "text/csv"}}),
        ("POST", "/api/v1/theft/analyse", {}),
    ]
    for method, path, kw in calls:
        headers = kw.pop("headers", {})
        for auth, want in (({}, 401), ({"Authorization": "Bearer wrong"}, 401), (p.auth, 403)):
            r = p.client.request(method, path, headers={**headers, **auth}, **kw)
            assert r.status_code == want, (method, path, auth, r.text)
    assert p.client.get("/api/v1/workorders/WO-9").json()["status"] == "active"
    assert p.client.get("/api/v1/ami/readings").json() == []
    for path in ("/api/v1/workorders", "/api/v1/ami/readings", "/api/v1/theft/alerts"):  # read routes are open
        assert p.client.get(path).status_code == 200


# ---------------------------------------------------------------------------------- AMI import
GOOD = (
    "meter_id,timestamp,v_rms,i_rms,pf\n70001,2026-11-22T00:15:00Z,240.10,10.00,0.95\n70002,1795306500,239.9,5,-0.9\n"
)


@pytest.mark.parametrize(
    "text,loc,words",
    [
        ("meter_id,timestamp,v_rms,i_rms\n70001,1795306500,240,1\n", ["body", "line 1"], "pf"),
        (GOOD + "70003,1795306500,abc,1,0.9\n", ["body", "line 4", "v_rms"], "not a number"),
        (GOOD + "70003,1795306500,240,1,1.5\n", ["body", "line 4", "pf"], "range"),
        (GOOD + "70003,2026-11-22T00:15:00,240,1,0.9\n", ["body", "line 4", "timestamp"], "time zone"),
        (GOOD + "70001,1795306500,240,1,0.9\n", ["body", "line 4", "timestamp"], "line 2"),
        (GOOD + "M-7,1795306500,240,1,0.9\n", ["body", "line 4", "meter_id"], "Inventory meter id"),
        (GOOD + "# comment\n\n99999999999,1795306500,240,1,0.9\n", ["body", "line 6", "meter_id"], "integer"),
        (GOOD + "70003,99999999999,240,1,0.9\n", ["body", "line 4", "timestamp"], "2200"),
        (GOOD + "70003,1e300,240,1,0.9\n", ["body", "line 4", "timestamp"], "range"),
        (GOOD + "70003,1795306500\n", ["body", "line 4"], "fields"),
        ("meter_id,timestamp,v_rms,i_rms,pf\n", ["body"], "no readings"),
        ("", ["body"], "header"),
        (b"meter_id,timestamp,v_rms,i_rms,pf\n\xff\xfe,1,2,3,4\n", ["body", "line 2"], "UTF-8"),
        ("meter_id,timestamp,v_rms,i_rms,pf\n70001,1795306500,240,1,0.9\x00\n", ["body", "line 2"], "NUL"),
    ],
)
def test_ami_import_rejects_bad_files_and_stores_nothing(platform, text, loc, words):
    r = upload(platform, text)
    assert r.status_code == 422, r.text
    (err,) = r.json()["detail"]
    assert err["loc"] == loc and words in err["msg"], err
    assert platform.client.get("/api/v1/ami/readings").json() == []


def test_ami_import_is_idempotent_and_replaces_corrections(platform):
    platform.import_model(grid_model())
    r = upload(platform, GOOD)
    assert r.status_code == 200, r.text
    first = r.json()
    assert (first["rows"], first["inserted"], first["updated"], first["unchanged"]) == (2, 2, 0, 0)
    assert first["meters"] == 2 and first["unknown_meter_ids"] == []
    assert (first["first_time_s"], first["last_time_s"]) == (1795306500, 1795306500)
    again = upload(platform, GOOD).json()
    assert (again["inserted"], again["updated"], again["unchanged"]) == (0, 0, 2)
    corrected = upload(platform, GOOD.replace("239.9", "239.7") + "123,1795306500,230,1,1\n").json()
    assert (corrected["inserted"], corrected["updated"], corrected["unchanged"]) == (1, 1, 1)
    assert corrected["unknown_meter_ids"] == [123]
    rows = platform.client.get("/api/v1/ami/readings", params={"meter_id": 70002}).json()
    assert [(x["v_rms"], x["power_factor"], x["import_id"]) for x in rows] == [(239.7, -0.9, corrected["import_id"])]
    assert len(platform.client.get("/api/v1/ami/readings").json()) == 3
    assert platform.client.get("/api/v1/ami/readings", params={"since": "2026-11-22T00:16:00Z"}).json() == []
    assert len(platform.client.get("/api/v1/ami/readings", params={"until": "2026-11-22T00:15:00Z"}).json()) == 3
    assert platform.client.get("/api/v1/ami/readings", params={"until": "soon"}).status_code == 422
    imports = platform.client.get("/api/v1/imports").json()
    assert [i["format"] for i in imports[:3]] == ["ami_csv"] * 3


# ------------------------------------------------------------------------------------ analysis
def test_tap_raises_one_theft_alert_with_account_address_and_coordinates(platform):
    setup_areas(platform)
    hook = platform.client.post(
        "/api/v1/webhooks",
        json={"url": "http://127.0.0.1:9/hook", "event_types": ["theft_alert"]},
        headers=platform.admin,
    )
    assert hook.status_code == 201, hook.text
    run = analyse(platform)
    res = by_tr(run)
    assert set(res) == {"T-100", "T-200", "T-300"} and run["transformers"] == 3 and run["analysed"] == 2
    assert res["T-300"]["skipped"] == "no readings"
    assert res["T-100"]["analysis"] == "radial" and res["T-100"]["times"] == 3 * 96 and res["T-100"]["meters"] == 5
    assert res["T-100"]["alerts_new"] >= 1 and res["T-200"]["anomalies"] == 0 and res["T-200"]["alerts_new"] == 0
    assert run["alerts_new"] == res["T-100"]["alerts_new"] and run["suppressed"] == 0

    events = theft_events(platform)
    assert events and all(e["details"]["transformer_id"] == "T-100" for e in events)
    ev = events[-1]  # the first raised
    d = ev["details"]
    assert ev["status"] == "open" and ev["subject_type"] == "meter" and ev["subject_id"] == str(TAPPED)
    assert d["meter_ids"] == [TAPPED] and d["kind"] == "unmetered_load" and d["analysis"] == "radial"
    assert d["account"] == f"ACC-{TAPPED}" and d["address"] == "12 Elm Street"
    assert d["lat"] == pytest.approx(37.55 + 3e-4) and d["lon"] == pytest.approx(-77.44)
    assert d["transformer_lat"] == pytest.approx(37.55) and d["transformer_lon"] == pytest.approx(-77.44)
    (m,) = d["meters"]
    assert m["meter_id"] == TAPPED and m["hub_id"] == 9001 and m["tan_index"] == 2 and m["phase"] == "A"
    assert 1.0 < d["unaccounted_kw"] < 6.0 and d["unaccounted_w"] == pytest.approx(d["unaccounted_kw"] * 1000, abs=0.1)
    assert ev["confidence"] > 0.9 and d["evidence"]["extra_drop_v"] > 0
    onset = T0 + 60 * TAP_START
    assert abs(d["start_time_s"] - onset) <= 3 * 3600 and d["started_at"].endswith("Z")
    assert any(x.startswith("theft:") for x in ev["evidence"]) and any(x.startswith("import:") for x in ev["evidence"])
    assert f"ACC-{TAPPED}" not in ev["title"] and "12 Elm Street" in ev["title"]

    # through the event stream (the publication log SSE and webhooks read)
    log = theft_log(platform)
    assert len(log) == len(events) and {e["action"] for e in log} == {"created"}
    with platform.client.stream(
        "GET", "/api/v1/events/stream", params={"after": 0, "max_events": 1, "timeout_s": 10, "type": ["theft_alert"]}
    ) as r:
        text = "".join(r.iter_text())
    (frame,) = [f for f in text.split("\n\n") if f.startswith("id:")]
    data = json.loads(frame.split("data: ", 1)[1])
    assert data["event"]["type"] == "theft_alert" and data["event"]["details"]["meter_ids"] == [TAPPED]
    deliveries = platform.client.get(f"/api/v1/webhooks/{hook.json()['id']}/deliveries").json()
    assert len(deliveries) == len(events)

    # the findings
    alerts = platform.client.get("/api/v1/theft/alerts").json()
    assert len(alerts) == len(events) and all(a["status"] == "alert" and a["event_id"] for a in alerts)
    assert platform.client.get("/api/v1/theft/alerts", params={"meter_id": TAPPED}).json() == alerts
    assert platform.client.get("/api/v1/theft/alerts", params={"transformer_id": "T-200"}).json() == []
    assert platform.client.get("/api/v1/theft/alerts", params={"status": "suppressed"}).json() == []

    # re-running publishes nothing again
    again = analyse(platform)
    assert again["alerts_new"] == 0 and again["alerts_known"] == run["alerts_new"]
    assert len(theft_log(platform)) == len(log) and len(theft_events(platform)) == len(events)
    assert len(platform.client.get("/api/v1/theft/alerts").json()) == len(alerts)

    # one transformer; an unknown one
    one = analyse(platform, transformer_id="T-200")
    assert [x["transformer_id"] for x in one["results"]] == ["T-200"] and one["alerts_new"] == 0
    r = platform.client.post("/api/v1/theft/analyse", params={"transformer_id": "T-999"}, headers=platform.admin)
    assert r.status_code == 404
    assert platform.client.post("/api/v1/theft/analyse", params={"days": 0}, headers=platform.admin).status_code == 422


def test_work_order_suppresses_then_cancelled_raises_then_new_order_withdraws(platform):
    setup_areas(platform)
    onset = T0 + 60 * TAP_START
    c = platform.client
    r = c.post(
        "/api/v1/workorders",
        json={
            "order_id": "WO-SL",
            "kind": "service_line",
            "start_at": _iso(onset - 1800),
            "end_at": _iso(onset + 1800),
            "meter_ids": [TAPPED],
        },
        headers=platform.admin,
    )
    assert r.status_code == 201, r.text
    c.post(
        "/api/v1/workorders",
        json={
            "order_id": "WO-OTHER",
            "kind": "service_line",
            "start_at": _iso(onset - 1800),
            "end_at": _iso(onset + 1800),
            "meter_ids": [70001],
        },
        headers=platform.admin,
    )
    run = analyse(platform)
    assert run["alerts_new"] == 0 and run["suppressed"] >= 1
    assert theft_events(platform) == [] and theft_log(platform) == []
    assert c.get("/api/v1/theft/alerts").json() == []
    sup = c.get("/api/v1/theft/alerts", params={"status": "suppressed"}, headers=platform.admin).json()
    assert sup and all(
        x["work_order_ids"] == ["WO-SL"] and x["meter_ids"] == [TAPPED] and x["event_id"] is None for x in sup
    )
    assert sup[0]["alert"]["account"] == f"ACC-{TAPPED}"

    # cancelled: the anomaly is raised at the next run
    assert c.delete("/api/v1/workorders/WO-SL", headers=platform.admin).status_code == 200
    run = analyse(platform)
    assert run["alerts_new"] >= 1 and run["suppressed"] == 0
    (ev, *_) = theft_events(platform)
    assert ev["details"]["meter_ids"] == [TAPPED] and ev["status"] == "open"

    # a transformer order recorded later explains it: the alert is withdrawn, and published as such
    c.post(
        "/api/v1/workorders",
        json={
            "order_id": "WO-TR",
            "kind": "transformer",
            "start_at": _iso(onset - 3600),
            "end_at": _iso(onset + 3600),
            "transformer_ids": ["T-100"],
        },
        headers=platform.admin,
    )
    run = analyse(platform)
    assert run["withdrawn"] >= 1 and run["alerts_new"] == 0
    assert {e["status"] for e in theft_events(platform, status="withdrawn")} == {"withdrawn"}
    assert theft_events(platform, status="open") == []
    assert "withdrawn" in {e["action"] for e in theft_log(platform)}
    assert all(
        x["work_order_ids"] == ["WO-TR"] for x in c.get("/api/v1/theft/alerts", params={"status": "suppressed"}).json()
    )


def test_clean_areas_raise_nothing(platform):
    model = grid_model()
    model["transformers"][1]["topology"] = "feeder"  # the topology-agnostic analysis on T-200
    platform.import_model(model)
    for tid, seed in (("T-100", 5), ("T-200", 6)):
        assert upload(platform, area_csv(seed, HUBS[tid][1])).status_code == 200
    run = analyse(platform)
    assert [x["analysis"] for x in run["results"]] == ["radial", "feeder", "radial"]
    assert run["analysed"] == 2 and run["alerts_new"] == 0 and run["suppressed"] == 0
    assert all(x["anomalies"] == 0 and x["warnings"] == [] for x in run["results"] if x["skipped"] is None)
    assert (
        theft_events(platform) == []
        and platform.client.get("/api/v1/theft/alerts", params={"status": "all"}).json() == []
    )


def test_series_joins_scheduled_reports_and_ami_readings(platform):
    hub = FakeHub(
        hub_id=9001,
        key=bytes(range(16)),
        feeder=1,
        phase="A",
        transformer_id="T-100",
        meter_ids=HUBS["T-100"][1],
        counter=5,
    )
    platform.import_model(grid_model(hub.key.hex()))
    from datetime import datetime

    at = datetime.fromtimestamp(T0 + 7200 + 60, tz=UTC)
    platform.send(hub, report(hub, at, n=3), at=at)  # readings of TAN indices 0..2 at T0 + 7200
    csv = "meter_id,timestamp,v_rms,i_rms,pf\n" + "".join(
        f"{m},{T0 + 900 * k},{239 + 0.1 * j:.2f},{3 + j},0.95\n"
        for k in range(12)
        for j, m in enumerate(HUBS["T-100"][1])
    )
    assert upload(platform, csv).status_code == 200
    with platform.pf.db.session() as s:
        (area,) = theft_service.areas(s, "T-100")
        got = theft_service.assemble(s, area, 14)
    assert got.skipped is None and got.series.n_meters == 5
    k = list(got.series.time_s).index(T0 + 7200)  # the report's measurement time (an AMI time too)
    assert got.series.v_rms[k].tolist()[:3] == pytest.approx([239.0, 239.1, 239.2])  # AMI wins a shared minute
    assert got.series.n_times == 12
    # without the AMI reading at that time, the report's values are used
    with platform.pf.db.write() as s:
        from platform_api.models import AmiReading

        s.query(AmiReading).filter(AmiReading.measurement_time_s == T0 + 7200).delete()
    with platform.pf.db.session() as s:
        got = theft_service.assemble(s, area, 14)
    k = list(got.series.time_s).index(T0 + 7200)
    assert got.series.v_rms[k].tolist()[:3] == pytest.approx([240.0, 239.7, 239.4])
    assert np.isnan(got.series.v_rms[k, 3:]).all()
    meters = {m.meter_id: m for m in got.series.meters}
    assert meters["70002"].account == "ACC-70002" and meters["70002"].phase == "a"
    assert meters["70002"].service_length_m == 40.0
    run = analyse(platform, transformer_id="T-100")
    assert run["results"][0]["times"] == 12 and run["alerts_new"] == 0


def test_import_carries_meter_account_and_transformer_topology(platform):
    model = grid_model()
    model["transformers"][1]["topology"] = "bus"
    platform.import_model(model)
    m = platform.client.get("/api/v1/meters/70003", headers=platform.admin).json()
    assert (m["account"], m["address"], m["service_length_m"]) == ("ACC-70003", "12 Elm Street", 40.0)
    text = platform.client.get("/api/v1/export/gridmap.csv", headers=platform.admin).text
    assert "transformer_topology" in text.splitlines()[0] and ",bus," in text and "ACC-70003" in text
    r = platform.client.post("/api/v1/import/csv", content=text, headers={"Content-Type": "text/csv", **platform.admin})
    assert r.status_code == 200, r.text
    assert r.json()["counts"]["meters_updated"] == 0 and r.json()["counts"]["transformers"] == 0
    bad = dict(model, transformers=[dict(model["transformers"][0], topology="mesh")])
    r = platform.client.post("/api/v1/import/json", json=bad, headers=platform.admin)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "topology"
    assert by_tr(analyse(platform))["T-200"]["analysis"] == "bus"


def test_background_worker_runs_the_analysis_when_asked(platform_make):
    p = platform_make(theft_interval_s=0.001)
    setup_areas(p)
    worker = p.app.state.worker
    worker._last_theft = 0.0
    out = worker.run_once()
    assert out["theft"]["alerts_new"] >= 1 and theft_events(p)
    off = platform_make(database_url=None)
    assert "theft" not in off.app.state.worker.run_once()


def _iso(t: int) -> str:
    from datetime import datetime

    return datetime.fromtimestamp(t, tz=UTC).isoformat().replace("+00:00", "Z")
