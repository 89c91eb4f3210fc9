"""Computing Platform: Inventory and Grid Map import, history, tree, GeoJSON and CSV."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from platform_api.testing import fleet, gridmodel, slot_time

ROOT = Path(__file__).resolve().parents[1]
T0 = slot_time(448_826_400)


def test_import_gridmodel_builds_inventory_and_map_with_history(platform):
    hubs = fleet(5, meters=(2, 3))
    res = platform.import_model(gridmodel(hubs))
    c = res["counts"]
    assert (
        c["hubs_created"] == 5 and c["transformers"] == 5 and c["meters_created"] == sum(len(h.meter_ids) for h in hubs)
    )
    h = hubs[0]
    got = platform.client.get(f"/api/v1/hubs/{h.hub_id}").json()
    assert got["has_key"] and "key_hex" not in got
    assert got["map"] == {"bus": 0, "feeder": h.feeder, "phase": h.phase, "source": "import"}
    assert got["section_id"] == f"sub-1/f{h.feeder}/l{h.lateral}" and got["transformer_id"] == h.transformer_id
    assert [m["meter_id"] for m in got["tan"]] == h.meter_ids and got["tan"][0]["role"] == "hub"
    hist = platform.client.get(f"/api/v1/hubs/{h.hub_id}/history").json()
    assert hist[-1]["field"] == "created" and hist[-1]["evidence"] == [f"import:{res['import_id']}"]
    assert hist[-1]["new"]["key"] == "set"  # keys never enter the history
    # a second import that moves the hub and changes its key: one row per changed attribute
    m = gridmodel(hubs)
    m["hubs"][0].update(phase="C" if h.phase != "C" else "A", key_hex="ff" * 16)
    res2 = platform.import_model(m)
    assert res2["counts"]["hubs_updated"] == 1
    rows = platform.client.get(
        "/api/v1/history", params={"entity": "hub", "entity_id": str(h.hub_id), "cause": "import"}
    ).json()
    fields = {r["field"] for r in rows if r["evidence"] == [f"import:{res2['import_id']}"]}
    assert fields == {"map_phase", "key"}
    assert all("ff" * 16 not in json.dumps(r) for r in rows)
    assert [i["import_id"] for i in platform.client.get("/api/v1/imports").json()] == [
        res2["import_id"],
        res["import_id"],
    ]


def test_import_simulator_truth(platform):
    truth = json.loads((ROOT / "captures" / "demo_small.truth.json").read_text())
    res = platform.import_model(truth, substation_id="demo")
    hubs = truth["capture"]["hubs"]
    assert res["format"] == "simulator" and res["counts"]["hubs_created"] == len(hubs)
    h = hubs[0]
    got = platform.client.get(f"/api/v1/hubs/{h['hub_id']}").json()
    assert got["substation_id"] == "demo" and got["map"]["feeder"] == h["feeder"] and got["map"]["phase"] == h["phase"]
    assert [m["meter_id"] for m in got["tan"]] == h["meter_ids"]
    assert got["section_id"] == f"demo/f{h['feeder']}/l{h['lateral']}"
    # the frames in the truth decode with the imported keys
    tx = truth["transmissions"][0]
    from platform_api.testing import FakeHub, bundles_for

    fh = FakeHub(hub_id=tx["hub_id"], key=bytes.fromhex(h["key_hex"]), feeder=tx["feeder"], phase=tx["phase"])
    p2 = platform
    p2.substation_id = "demo"
    p2.client.post(
        "/api/v1/receivers",
        json={"receiver_id": "rx-demo", "substation_id": "demo", "token": "demo-token-0123456789"},
        headers=p2.admin,
    )
    b = bundles_for(
        fh,
        None,
        at=T0,
        frames=[bytes.fromhex(tx["frame_hex"])],
        receiver_id="rx-demo",
        substation_id="demo",
        channel=tx["channel"],
        bus=tx["bus"],
    )[0]
    r = p2.post(b, headers={"Authorization": "Bearer demo-token-0123456789"}).json()
    assert r["status"] == "accepted" and r["message"] == tx["fields"]


def test_simulator_new_hubs_enter_inventory_not_map(platform):
    truth = {
        "capture": {
            "hubs": [
                {
                    "hub_id": 11,
                    "key_hex": "00" * 16,
                    "bus": 0,
                    "feeder": 1,
                    "phase": "A",
                    "lateral": 0,
                    "transformer_id": 5,
                    "meter_ids": [1, 2],
                    "is_new": False,
                },
                {
                    "hub_id": 12,
                    "key_hex": "11" * 16,
                    "bus": 0,
                    "feeder": 2,
                    "phase": "B",
                    "lateral": 1,
                    "transformer_id": 6,
                    "meter_ids": [3, 4],
                    "is_new": True,
                },
            ]
        }
    }
    platform.import_model(truth)
    assert platform.client.get("/api/v1/hubs/11").json()["map"]["feeder"] == 1
    new = platform.client.get("/api/v1/hubs/12").json()
    assert new["map"] is None and new["has_key"] and new["status"] == "inventory"
    assert [h["hub_id"] for h in platform.client.get("/api/v1/hubs", params={"on_map": False}).json()] == [12]
    assert platform.client.get("/api/v1/gridmap").json()["unplaced_hubs"] == [12]


def test_import_csv_and_export_round_trip(platform):
    text = (
        "substation_id,bus,feeder,lateral,phase,transformer_id,transformer_lat,transformer_lon,hub_id,hub_key_hex,"
        "meter_id,tan_index,role,meter_lat,meter_lon\n"
        "sub-1,0,1,2,A,T-100,37.55,-77.44,700,000102030405060708090a0b0c0d0e0f,5001,0,hub,,\n"
        "sub-1,0,1,2,A,T-100,37.55,-77.44,700,,5002,1,subordinate,37.5501,-77.4402\n"
        "sub-1,0,3,0,C,T-101,37.56,-77.45,701,0f0e0d0c0b0a09080706050403020100,5003,0,hub,,\n"
    )
    r = platform.client.post("/api/v1/import/csv", content=text, headers={**platform.admin, "Content-Type": "text/csv"})
    assert r.status_code == 200, r.text
    assert r.json()["counts"]["hubs_created"] == 2 and r.json()["counts"]["meters_created"] == 3
    out = platform.client.get("/api/v1/export/gridmap.csv", headers=platform.admin)
    assert out.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(out.text)))
    assert [(r["hub_id"], r["meter_id"], r["feeder"], r["phase"], r["lateral"]) for r in rows] == [
        ("700", "5001", "1", "A", "2"),
        ("700", "5002", "1", "A", "2"),
        ("701", "5003", "3", "C", "0"),
    ]
    assert "hub_key_hex" not in out.text
    # re-importing the export changes nothing
    r2 = platform.client.post("/api/v1/import/csv", content=out.text, headers=platform.admin)
    assert r2.status_code == 200 and r2.json()["counts"]["hubs_updated"] == 0 and r2.json()["counts"]["history"] == 0
    hubs_csv = list(
        csv.DictReader(io.StringIO(platform.client.get("/api/v1/export/hubs.csv", headers=platform.admin).text))
    )
    assert [h["hub_id"] for h in hubs_csv] == ["700", "701"] and hubs_csv[0]["meters"] == "2"


@pytest.mark.parametrize(
    "body, loc",
    [
        ({"hubs": [{"hub_id": -1}]}, ["body", "hubs", 0, "hub_id"]),
        ({"hubs": [{"hub_id": 1, "key_hex": "xyz"}]}, ["body", "hubs", 0, "key_hex"]),
        ({"hubs": [{"hub_id": 1, "feeder": 2}]}, ["body", "hubs", 0, "phase"]),
        ({"hubs": [{"hub_id": 1}, {"hub_id": 1}]}, ["body", "hubs", 1, "hub_id"]),
        (
            {"hubs": [{"hub_id": 1, "meters": [{"meter_id": 5}]}, {"hub_id": 2, "meters": [{"meter_id": 5}]}]},
            ["body", "hubs", 1, "meters", 0, "meter_id"],
        ),
        ({"transformers": [{"transformer_id": "bad id!"}]}, ["body", "transformers", 0, "transformer_id"]),
        ({"capture": {"hubs": [{"hub_id": 1}]}}, ["body", "capture", "hubs", 0, "key_hex"]),
        ({"format": "other"}, ["body", "format"]),
    ],
)
def test_import_json_422_names_the_field(platform, body, loc):
    r = platform.client.post("/api/v1/import/json", json=body, headers=platform.admin)
    assert r.status_code == 422, r.text
    assert list(r.json()["detail"][0]["loc"])[: len(loc)] == loc


def test_import_errors_csv_and_non_json(platform):
    r = platform.client.post(
        "/api/v1/import/json", content=b"{not json", headers={**platform.admin, "Content-Type": "application/json"}
    )
    assert r.status_code == 422
    r = platform.client.post("/api/v1/import/csv", content="meter_id\n1\n", headers=platform.admin)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "header"]
    r = platform.client.post("/api/v1/import/csv", content="hub_id,phase\nx,A\n", headers=platform.admin)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "line 2", "hub_id"]
    r = platform.client.post(
        "/api/v1/import/csv", content="hub_id,phase,feeder\n1,A,1\n1,B,1\n", headers=platform.admin
    )
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "line 3", "phase"]
    r = platform.client.post("/api/v1/import/csv", content="hub_id,colour\n1,red\n", headers=platform.admin)
    assert r.status_code == 422


def test_gridmap_tree_geojson_sections(platform):
    hubs = fleet(8, meters=(1, 2))
    platform.import_model(gridmodel(hubs))
    tree = platform.client.get("/api/v1/gridmap").json()
    (sub,) = tree["substations"]
    assert sub["substation_id"] == "sub-1" and sub["lat"] == 37.5
    tans = [t for b in sub["buses"] for f in b["feeders"] for p in f["phases"] for t in p["tans"]]
    assert sorted(t["hub_id"] for t in tans) == sorted(h.hub_id for h in hubs)
    f0 = sub["buses"][0]["feeders"][0]
    assert all(p["phase"] in "ABC" for p in f0["phases"]) and f0["sections"]
    gj = platform.client.get("/api/v1/gridmap.geojson")
    assert gj.headers["content-type"].startswith("application/geo+json")
    fc = gj.json()
    kinds = {}
    for f in fc["features"]:
        kinds.setdefault(f["properties"]["kind"], []).append(f)
        assert f["geometry"]["type"] == "Point" and len(f["geometry"]["coordinates"]) == 2
    assert len(kinds["substation"]) == 1 and len(kinds["transformer"]) == 8
    assert len(kinds["meter"]) == sum(len(h.meter_ids) for h in hubs)
    m = kinds["meter"][0]["properties"]
    assert m["location_source"] == "transformer" and m["phase"] in "ABC" and m["section_id"]
    only = platform.client.get("/api/v1/gridmap.geojson", params={"kinds": ["substation"]}).json()
    assert [f["properties"]["kind"] for f in only["features"]] == ["substation"]
    secs = platform.client.get("/api/v1/gridmap/sections").json()
    assert all(s["energized"] and not s["switched"] for s in secs)
    subs = platform.client.get("/api/v1/substations").json()
    assert subs[0]["hubs"] == 8 and subs[0]["hubs_on_map"] == 8


def test_geojson_without_coordinates(platform):
    platform.import_model(gridmodel(fleet(2), with_coords=False))
    assert [f["properties"]["kind"] for f in platform.client.get("/api/v1/gridmap.geojson").json()["features"]] == [
        "substation"
    ]
    fc = platform.client.get("/api/v1/gridmap.geojson", params={"include_unlocated": True}).json()
    assert any(f["geometry"] is None for f in fc["features"])


def test_operator_put_hub_and_404s(platform):
    r = platform.client.put(
        "/api/v1/hubs/4242", json={"key_hex": "00" * 16, "feeder": 2, "phase": "B"}, headers=platform.admin
    )
    assert r.status_code == 200 and r.json()["map"] == {"bus": 0, "feeder": 2, "phase": "B", "source": "operator"}
    r = platform.client.put("/api/v1/hubs/4242", json={"phase": "C"}, headers=platform.admin)
    assert r.json()["map"]["phase"] == "C"
    causes = {x["cause"] for x in platform.client.get("/api/v1/hubs/4242/history").json()}
    assert causes == {"operator"}
    assert platform.client.put("/api/v1/hubs/4242", json={"phase": "X"}, headers=platform.admin).status_code == 422
    for path in (
        "/api/v1/hubs/1",
        "/api/v1/hubs/1/history",
        "/api/v1/meters/1",
        "/api/v1/meters/1/history",
        "/api/v1/hubs/1/policy",
    ):
        assert platform.client.get(path).status_code == 404, path
    assert platform.client.get("/api/v1/hubs/99999999999").status_code == 422
    assert platform.client.get("/api/v1/meters", params={"hub_id": 4242}).json() == []


def test_admin_token_protects_operator_routes(platform_make):
    p = platform_make(admin_token="admin-secret-token")
    model = gridmodel(fleet(1))
    assert p.client.post("/api/v1/import/json", json=model).status_code == 401
    assert p.client.post("/api/v1/import/json", json=model, headers={"Authorization": "Bearer nope"}).status_code == 401
    assert p.client.post("/api/v1/import/json", json=model, headers=p.auth).status_code == 403
    assert p.client.post("/api/v1/import/json", json=model, headers=p.admin).status_code == 200
    assert p.client.get("/api/v1/receivers").status_code == 401
    assert p.client.get("/api/v1/receivers", headers=p.admin).json()[0]["receiver_id"] == "rx-1"
    assert p.client.get("/api/v1/hubs").status_code == 200  # reads are open
