"""Secure by default: no state-changing route and no customer-data export answers an anonymous
request, the admin credential is made at first start (mode 0600, its place logged once, never its
value), and the platform binds 127.0.0.1 unless told otherwise."""

from __future__ import annotations

import logging
import os
import re
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from platform_api.core.admin import AdminTokenError, describe_database, ensure_admin_token, token_path
from platform_api.core.config import Settings
from platform_api.main import create_app
from platform_api.testing import (
    CUSTOMER_DATA_PREFIXES,
    anonymous_probe,
    anonymous_state_changing_routes,
    fleet,
    gridmodel,
)

ROOT = Path(__file__).resolve().parents[1]


def _app(tmp_path: Path, **kw):
    """A platform with no configuration but its database file (GLA_ADMIN_TOKEN unset)."""
    return create_app(Settings(database_url=f"sqlite:///{tmp_path / 'platform.db'}", background=False, **kw))


def test_every_state_changing_route_and_export_refuses_an_anonymous_request(tmp_path):
    app = _app(tmp_path)
    probe = anonymous_probe(app)
    # the walk covers every route that changes state, including any left out of the OpenAPI schema
    changing = {
        f"{m} {r.path}" for r in app.routes if isinstance(r, APIRoute) for m in r.methods if m not in ("GET", "HEAD")
    }
    assert changing <= set(probe), changing - set(probe)
    exports = [k for k in probe if k.startswith("GET ")]
    assert len(exports) >= 4 and all(k.split(" ", 1)[1].startswith(CUSTOMER_DATA_PREFIXES) for k in exports)
    assert len(probe) >= 30
    # 401 from the credential check, not 422 from a body or a parameter
    assert {k: v for k, v in probe.items() if v != 401} == {}
    assert anonymous_state_changing_routes(app) == []
    app.state.platform.db.dispose()


def test_the_benchmark_counts_zero_on_an_unconfigured_platform():
    assert anonymous_state_changing_routes() == []


def test_operator_routes_refuse_a_receiver_token_and_take_the_made_credential(platform_make):
    p = platform_make()
    assert p.pf.admin_token and p.admin["Authorization"] == f"Bearer {p.pf.admin_token}"
    hubs = fleet(2, seed=3)
    model = gridmodel(hubs)
    model["hubs"][0]["meters"][0].update(account="ACC-0042", address="1 Elm Street")
    c = p.client
    assert c.post("/api/v1/import/json", json=model).status_code == 401
    assert c.post("/api/v1/import/json", json=model, headers=p.auth).status_code == 403
    assert c.post("/api/v1/import/json", json=model, headers={"Authorization": "Bearer nope"}).status_code == 401
    assert c.post("/api/v1/import/json", json=model, headers=p.admin).status_code == 200
    # the export with accounts and addresses: the credential is needed
    assert c.get("/api/v1/export/gridmap.csv").status_code == 401
    assert c.get("/api/v1/export/gridmap.csv", headers=p.auth).status_code == 403
    r = c.get("/api/v1/export/gridmap.csv", headers=p.admin)
    assert r.status_code == 200 and "ACC-0042" in r.text and "1 Elm Street" in r.text


def test_admin_credential_is_made_once_with_mode_0600_and_only_its_place_logged(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="gla.platform")
    app = _app(tmp_path)
    path = tmp_path / "admin-token"
    token = path.read_text().strip()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert app.state.platform.admin_token == token and len(token) >= 32
    text = caplog.text
    assert f"created the admin credential in {path}" in text
    assert f"database: SQLite file {tmp_path / 'platform.db'}" in text
    assert token not in text
    with TestClient(app) as c:
        assert c.get("/api/v1/receivers").status_code == 401
        assert c.get("/api/v1/receivers", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    app.state.platform.db.dispose()
    # the second start reads the same file and says nothing about it
    caplog.clear()
    app2 = _app(tmp_path)
    assert app2.state.platform.admin_token == token
    assert "admin credential" not in caplog.text and token not in caplog.text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    app2.state.platform.db.dispose()


def test_explicit_admin_token_wins_and_no_file_is_made(tmp_path):
    app = _app(tmp_path, admin_token="operator-secret-0123456789")
    assert app.state.platform.admin_token == "operator-secret-0123456789"
    assert not (tmp_path / "admin-token").exists()
    app.state.platform.db.dispose()


def test_token_file_places_and_bad_files(tmp_path, monkeypatch):
    pg = "postgresql+psycopg://gla:s3cret@db.example:5432/gla"
    assert token_path(Settings(database_url=pg, state_dir=str(tmp_path))) == tmp_path / "admin-token"
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    assert token_path(Settings(database_url=pg)) == tmp_path / "state" / "admin-token"
    assert "s3cret" not in describe_database(pg) and "db.example" in describe_database(pg)
    assert token_path(Settings(database_url="sqlite://")) is None  # in memory: a throwaway platform
    f = tmp_path / "tok"
    assert token_path(Settings(database_url=pg, admin_token_file=str(f))) == f
    f.write_text("\n")
    with pytest.raises(AdminTokenError, match=f"admin token file {re.escape(str(f))}: must hold one token"):
        ensure_admin_token(Settings(database_url=pg, admin_token_file=str(f)))
    # a token file made under a permissive umask is still 0600
    old = os.umask(0)
    try:
        made = ensure_admin_token(Settings(database_url=pg, admin_token_file=str(tmp_path / "new" / "t")))
    finally:
        os.umask(old)
    assert made.created and stat.S_IMODE((tmp_path / "new" / "t").stat().st_mode) == 0o600


def test_systemd_unit_binds_loopback_and_says_how_to_open_it():
    unit = (ROOT / "deploy" / "gla-platform.service").read_text()
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    assert "--host 127.0.0.1" in exec_start and "0.0.0.0" not in exec_start
    assert "--host 0.0.0.0" in unit  # the comment that says how to open it
    assert "/var/lib/gla-platform/admin-token" in unit


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(tmp_path: Path, port: int) -> tuple[subprocess.Popen, str]:
    """``python -m platform_api --port P`` with no configuration but its database; its log up to
    uvicorn's 'running' line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GLA_")}
    env.update(GLA_DATABASE_URL=f"sqlite:///{tmp_path / 'db' / 'platform.db'}", GLA_BACKGROUND="0")
    proc = subprocess.Popen(
        [sys.executable, "-m", "platform_api", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    lines = []
    end = time.monotonic() + 60
    assert proc.stderr is not None
    while time.monotonic() < end:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        if "Uvicorn running" in line:
            break
    return proc, "".join(lines)


def test_gla_platform_binds_loopback_and_logs_database_credential_and_dashboard(tmp_path):
    port = _free_port()
    token_file = tmp_path / "db" / "admin-token"
    proc, log = _start(tmp_path, port)
    try:
        assert "Uvicorn running on http://127.0.0.1:" in log, log
        assert f"database: SQLite file {tmp_path / 'db' / 'platform.db'}" in log
        assert f"created the admin credential in {token_file}" in log
        assert f"dashboard: http://127.0.0.1:{port}/dashboard" in log
        assert token_file.read_text().strip() not in log
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    proc, log = _start(tmp_path, port)
    try:
        assert "Uvicorn running" in log and "admin credential" not in log, log
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


# -- customer data (accounts, addresses) is withheld from anonymous readers ------------------------
def _plant(p) -> tuple[list[str], dict[str, str]]:
    """The theft test's areas with distinctive accounts and addresses (the inventory import), a
    theft alert (its title names the address), a later change of one address (history rows with
    the old and new value), a webhook and a work order; returns the planted strings and a value
    for each path parameter of the GET routes."""
    from tests.test_platform_theft import HUBS, TAPPED, area_csv, grid_model, upload

    def plant(model: dict, version: str) -> dict:
        for hub in model["hubs"]:
            for m in hub["meters"]:
                m["account"] = f"ZQACCT{m['meter_id']}{version}"
                m["address"] = f"{m['meter_id']} Quillfeather Lane {version}"
        return model

    p.import_model(plant(grid_model(), "A"))
    for tid, seed, tap in (("T-100", 1, TAPPED), ("T-200", 2, None)):
        assert upload(p, area_csv(seed, HUBS[tid][1], tap_meter=tap)).status_code == 200
    c = p.client
    assert c.post("/api/v1/theft/analyse", headers=p.admin).json()["alerts_new"] >= 1
    model = plant(grid_model(), "A")
    model["hubs"][0]["meters"][2].update(account=f"ZQACCT{TAPPED}B", address=f"{TAPPED} Quillfeather Lane B")
    p.import_model(model)  # the tapped meter moves house: history rows with old and new values
    hook = c.post("/api/v1/webhooks", json={"url": "http://127.0.0.1:9/hook"}, headers=p.admin).json()
    wo: dict[str, Any] = {"order_id": "WO-Q", "kind": "meter_exchange", "start_at": "2026-11-22T08:00:00Z"}
    wo.update(end_at="2026-11-22T09:00:00Z", meter_ids=[90001])
    assert c.post("/api/v1/workorders", json=wo, headers=p.admin).status_code == 201
    events = c.get("/api/v1/events", params={"type": "theft_alert"}, headers=p.admin).json()
    planted = [f"ZQACCT{m}A" for _, ms in HUBS.values() for m in ms] + [f"Quillfeather Lane {v}" for v in "AB"]
    planted.append(f"ZQACCT{TAPPED}B")
    params = {
        "meter_id": str(TAPPED),
        "hub_id": str(HUBS["T-100"][0]),
        "event_id": str(events[-1]["id"]),
        "webhook_id": str(hook["id"]),
        "order_id": "WO-Q",
        "receiver_id": p.receiver_id,
    }
    return planted, params


def _get_walk(p, params: dict[str, str], headers: dict) -> dict[str, tuple[int, str]]:
    """``{"/path?query": (status, body)}`` of every GET route of ``app.openapi()`` (path parameters
    from ``params``), plus the filters that pick the theft alerts out; the event stream read from
    its first publication for one second."""
    c = p.client
    out: dict[str, tuple[int, str]] = {}
    extra: dict[str, list[dict[str, Any]]] = {
        "/api/v1/events": [{"type": "theft_alert"}, {"status": ["open", "candidate"]}],
        "/api/v1/events/log": [{"limit": 1000}],
        "/api/v1/events/stream": [{"after": 0, "timeout_s": 1}],
        "/api/v1/history": [{"entity": "meter", "limit": 1000}],
        "/api/v1/meters": [{"limit": 1000}],
        "/api/v1/theft/alerts": [{"status": "all"}],
    }
    for path, ops in p.app.openapi()["paths"].items():
        if "get" not in ops:
            continue
        url = path
        for prm in ops["get"].get("parameters", []):
            if prm["in"] == "path":
                url = url.replace("{" + prm["name"] + "}", params.get(prm["name"], "1"))
        queries: list[dict[str, Any]] = [{}] * (path != "/api/v1/events/stream") + extra.get(path, [])
        for q in queries:
            r = c.get(url, params=q, headers=headers)
            out[f"{url}?{'&'.join(f'{k}={v}' for k, v in q.items())}"] = (r.status_code, r.text)
    return out


def test_no_anonymous_get_shows_an_account_or_address(platform):
    p = platform
    planted, params = _plant(p)
    anon = _get_walk(p, params, {})
    assert len({k.split("?")[0] for k in anon}) >= 40
    assert not [k for k, (st, _) in anon.items() if st >= 500], anon
    leaks = {k: [s for s in planted if s in body] for k, (_, body) in anon.items()}
    assert not any(leaks.values()), " ".join(k for k, v in leaks.items() if v)
    # the theft alert is still there, named by its meter, without the address
    (ev, *_) = p.client.get("/api/v1/events", params={"type": "theft_alert"}).json()
    assert ev["title"].startswith("possible theft") and str(params["meter_id"]) in ev["title"]
    assert ev["details"]["account"] is None and ev["details"]["address"] is None
    assert anon["/api/v1/events/stream?after=0&timeout_s=1"][1].count("event: created") >= 1
    # the credential shows them as before
    admin = _get_walk(p, params, p.admin)
    shown = {k for k, (_, body) in admin.items() if any(s in body for s in planted)}
    for route in (
        f"/api/v1/meters/{params['meter_id']}?",
        "/api/v1/meters?",
        f"/api/v1/hubs/{params['hub_id']}?",
        f"/api/v1/meters/{params['meter_id']}/history?",
        "/api/v1/events?type=theft_alert",
        f"/api/v1/events/{params['event_id']}?",
        "/api/v1/events/log?limit=1000",
        "/api/v1/events/stream?after=0&timeout_s=1",
        "/api/v1/theft/alerts?",
        "/api/v1/export/gridmap.csv?",
    ):
        assert route in shown, route
    ev = p.client.get(f"/api/v1/events/{params['event_id']}", headers=p.admin).json()
    assert "Quillfeather Lane A" in ev["title"] and ev["details"]["account"].startswith("ZQACCT")
    anon_ev = p.client.get(f"/api/v1/events/{params['event_id']}").json()
    assert anon_ev["title"] == ev["title"].replace(f" at {ev['details']['address']}", "")
    assert anon_ev["details"]["meter_ids"] == ev["details"]["meter_ids"]
    # a receiver's credential is not the operator's; an unknown token is refused
    assert "ZQACCT" not in p.client.get("/api/v1/meters", headers=p.auth).text
    assert p.client.get("/api/v1/meters", headers={"Authorization": "Bearer nope-nope"}).status_code == 401


def test_withhold_nulls_customer_fields_and_takes_their_values_out_of_texts():
    from platform_api.services.redact import shown, withhold

    ev = {
        "type": "theft_alert",
        "title": "possible theft (unmetered load): meter 70003 at 7 Elm Street on transformer T-7, about 3.7 kW",
        "details": {
            "account": "7",
            "address": "7 Elm Street",
            "meters": [{"meter_id": 70003, "account": "7", "address": "7 Elm Street", "lat": 1.0}],
            "detail": "tap near 7 Elm Street (account 7), 3.7 kW",
            "meter_ids": [70003],
        },
    }
    out = withhold(ev)
    assert out["title"] == "possible theft (unmetered load): meter 70003 on transformer T-7, about 3.7 kW"
    d = out["details"]
    assert d["account"] is None and d["address"] is None and d["meter_ids"] == [70003]
    assert d["meters"] == [{"meter_id": 70003, "account": None, "address": None, "lat": 1.0}]
    assert d["detail"] == "tap near (withheld) (account (withheld)), 3.7 kW"  # whole values only: 70003, T-7, 3.7 stay
    assert ev["details"]["account"] == "7" and shown(ev, True) is ev  # the input is left alone
    rows = [
        {"entity": "meter", "field": "address", "old": "1 Oak Road", "new": "2 Oak Road"},
        {"entity": "meter", "field": "created", "old": None, "new": {"account": "A-1", "hub_id": 5}},
        {"entity": "hub", "field": "map_phase", "old": "A", "new": "B"},
    ]
    assert withhold(rows) == [
        {"entity": "meter", "field": "address", "old": None, "new": None},
        {"entity": "meter", "field": "created", "old": None, "new": {"account": None, "hub_id": 5}},
        {"entity": "hub", "field": "map_phase", "old": "A", "new": "B"},
    ]
