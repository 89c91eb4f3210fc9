"""The operator's view: the receiver-health routes, and the page as a person sees it in Chromium.

The browser test uses Debian's ``chromium`` (``/usr/bin/chromium``, installed by ``.ci/run``) and
is skipped with a message where it is absent; it installs nothing. It starts the platform with
uvicorn on 127.0.0.1 (ephemeral port, a temporary SQLite database), loads a Grid Map with
coordinates, a few bundles, a theft alert and a receiver health report through the HTTP API,
then reads the DOM Chromium rendered and a screenshot.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from dsp.air import messages as M
from platform_api.testing import bundles_for, fleet, gridmodel, report, slot_time
from tests.test_platform_theft import HUBS, TAPPED, area_csv, grid_model

ROOT = Path(__file__).resolve().parents[1]
T0 = slot_time(448_826_400)
CHROMIUM = os.environ.get("GLA_CHROMIUM", "/usr/bin/chromium")


def health_body(**kw) -> dict:
    body = {
        "lag_s": 1.25,
        "gaps": 2,
        "gap_samples": 960,
        "spool_depth": 7,
        "samples_in": 4_800_000,
        "bundles": 120,
        "crc_failures": 3,
        "stream_time_s": 100.0,
        "reported_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    }
    body.update(kw)
    return body


# -- (a) the receiver-health routes ----------------------------------------------------------------
def test_receiver_health_report_and_listing(platform):
    c = platform.client
    # a registered receiver that has not reported yet is listed as such
    rows = c.get("/api/v1/receivers/health").json()
    assert [(r["receiver_id"], r["age_s"], r["stale"], r["reports"]) for r in rows] == [("rx-1", None, True, 0)]

    r = c.post("/api/v1/receivers/rx-1/health", json=health_body(), headers=platform.auth)
    assert r.status_code == 201, r.text
    got = r.json()
    assert got["receiver_id"] == "rx-1" and got["substation_id"] == "sub-1" and got["spool_depth"] == 7
    assert got["reports"] == 1 and got["stale"] is False and got["age_s"] < 5

    r = c.post("/api/v1/receivers/rx-1/health", json=health_body(spool_depth=11, lag_s=0.5), headers=platform.auth)
    assert r.status_code == 201
    (row,) = c.get("/api/v1/receivers/health").json()
    assert row["spool_depth"] == 11 and row["lag_s"] == 0.5 and row["reports"] == 2  # the latest report
    assert row["gaps"] == 2 and row["gap_samples"] == 960 and row["crc_failures"] == 3
    assert 0 <= row["age_s"] < 5 and row["received_at"].endswith("Z") and row["reported_at"].endswith("Z")
    assert c.get("/api/v1/receivers/health", params={"substation_id": "elsewhere"}).json() == []
    # /api/v1/receivers/health is not taken for a receiver called "health"
    assert "/api/v1/receivers/health" in c.get("/openapi.json").json()["paths"]


def test_receiver_health_auth(platform):
    c = platform.client
    url = "/api/v1/receivers/rx-1/health"
    assert c.post(url, json=health_body()).status_code == 401
    assert c.post(url, json=health_body(), headers={"Authorization": "Bearer nope-nope-nope"}).status_code == 401
    r = c.post(
        "/api/v1/receivers",
        json={"receiver_id": "rx-2", "substation_id": "sub-1", "token": "test-token-rx-2-0123456789"},
        headers=platform.admin,
    )
    assert r.status_code == 201
    other = {"Authorization": "Bearer test-token-rx-2-0123456789"}
    # a receiver may report only for itself
    r = c.post(url, json=health_body(), headers=other)
    assert r.status_code == 403 and "rx-2" in r.json()["detail"]
    assert c.post("/api/v1/receivers/rx-2/health", json=health_body(), headers=other).status_code == 201
    # a platform credential is not a receiver
    c.post(
        "/api/v1/receivers",
        json={
            "receiver_id": "plat-9",
            "substation_id": "sub-9",
            "role": "platform",
            "token": "test-token-plat-9-0123456789",
        },
        headers=platform.admin,
    )
    r = c.post(
        "/api/v1/receivers/plat-9/health",
        json=health_body(),
        headers={"Authorization": "Bearer test-token-plat-9-0123456789"},
    )
    assert r.status_code == 403
    # a disabled credential
    c.delete("/api/v1/receivers/rx-2", headers=platform.admin)
    platform.pf.invalidate_auth()
    assert c.post("/api/v1/receivers/rx-2/health", json=health_body(), headers=other).status_code == 403
    rows = {r["receiver_id"]: r for r in c.get("/api/v1/receivers/health").json()}
    assert set(rows) == {"rx-1", "rx-2"} and rows["rx-1"]["age_s"] is None  # rx-1 never reported
    assert rows["rx-2"]["enabled"] is False and rows["rx-2"]["reports"] == 1  # reported before it was disabled


@pytest.mark.parametrize(
    "change,loc",
    [
        ({"spool_depth": -1}, ["body", "spool_depth"]),
        ({"lag_s": "soon"}, ["body", "lag_s"]),
        ({"gaps": 1.5}, ["body", "gaps"]),
        ({"reported_at": "yesterday"}, ["body", "reported_at"]),
        ({"reported_at": "2026-11-22T00:00:00"}, ["body", "reported_at"]),  # no time zone
        ({"reported_at": "1970-01-01T00:00:00Z"}, ["body", "reported_at"]),  # out of range
        ({"colour": "blue"}, ["body", "colour"]),
        ({"spool_depth": None}, ["body", "spool_depth"]),
    ],
)
def test_receiver_health_validation(platform, change, loc):
    r = platform.client.post("/api/v1/receivers/rx-1/health", json=health_body(**change), headers=platform.auth)
    assert r.status_code == 422, r.text
    assert any(list(d["loc"]) == loc for d in r.json()["detail"]), r.json()


def test_receiver_health_missing_field_and_bad_id(platform):
    body = health_body()
    del body["samples_in"]
    r = platform.client.post("/api/v1/receivers/rx-1/health", json=body, headers=platform.auth)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "samples_in"]
    r = platform.client.post("/api/v1/receivers/bad%20id/health", json=health_body(), headers=platform.auth)
    assert r.status_code == 422


def test_dashboard_page_and_assets_are_served(platform):
    c = platform.client
    for path in ("/", "/dashboard"):
        r = c.get(path)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert "dashboard/dashboard.js" in r.text and "Receiver health" in r.text
        assert "http://" not in r.text and "https://" not in r.text  # nothing from elsewhere
    js = c.get("/dashboard/dashboard.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert "gridmap.geojson" in js.text and "receivers/health" in js.text
    css = c.get("/dashboard/dashboard.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    for text in (js.text, css.text):
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text)  # no CDN, fonts or tiles
        assert "@import" not in text and "@font-face" not in text
    assert c.get("/dashboard/dashboard.html").status_code == 404
    assert c.get("/dashboard/..%2Fmain.py").status_code == 404
    assert "/" not in c.get("/openapi.json").json()["paths"]


# -- (b) the page in headless Chromium ---------------------------------------------------------------
def _text(dom: str) -> str:
    dom = re.sub(r"(?is)<(script|style|noscript)\b.*?</\1>", " ", dom)
    return " ".join(html.unescape(re.sub(r"(?s)<[^>]+>", " ", dom)).split())


def _row(dom: str, attr: str, value: str) -> str:
    m = re.search(rf'(?s)<tr\b[^>]*\b{attr}="{re.escape(value)}"[^>]*>(.*?)</tr>', dom)
    assert m, f"no row with {attr}={value!r} on the page"
    return _text(m.group(1))


@pytest.fixture
def live_platform(tmp_path):
    """uvicorn on 127.0.0.1, port chosen by the OS, a fresh SQLite database; yields (url, admin token)."""
    admin = "admin-token-for-the-dashboard-test"
    env = {
        **os.environ,
        "GLA_DATABASE_URL": f"sqlite:///{tmp_path / 'platform.db'}",
        "GLA_ADMIN_TOKEN": admin,
        "GLA_SUBSTATION_ID": "sub-1",
        "GLA_BACKGROUND": "0",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("GLA_RECEIVERS_FILE", None)
    log = tmp_path / "uvicorn.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "platform_api.main:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--log-level",
                "info",
                "--no-access-log",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        url, deadline = None, time.monotonic() + 30
        while url is None:
            m = re.search(r"Uvicorn running on (http://127\.0\.0\.1:\d+)", log.read_text(errors="replace"))
            if m:
                url = m.group(1)
            elif proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"uvicorn did not start:\n{log.read_text(errors='replace')[-3000:]}")
            else:
                time.sleep(0.1)
        yield url, admin
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _chromium(*args: str, profile: Path, timeout: float = 45) -> subprocess.CompletedProcess:
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, start_new_session=True)


def _load(url: str, admin: str) -> dict:
    """A Grid Map with coordinates, bundles as the receiver posts them, a theft alert, a health report."""
    hubs = fleet(12, seed=11, feeders=3, laterals=2, meters=(1, 3))
    token = "rx-elm-1-token-0123456789abcdef"
    a = {"Authorization": f"Bearer {admin}"}
    rx = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, timeout=20) as c:
        r = c.post(
            "/api/v1/receivers", json={"receiver_id": "rx-elm-1", "substation_id": "sub-1", "token": token}, headers=a
        )
        assert r.status_code == 201, r.text
        model = gridmodel(hubs)
        model["substations"][0]["name"] = "Elm Street substation"
        r = c.post("/api/v1/import/json", json=model, headers=a)
        assert r.status_code == 200, r.text
        posted: list[tuple[dict, str]] = []  # (bundle, what the page should show as inferred location)

        def send(bs: list[dict]) -> None:
            for b in bs:
                r = c.post("/api/v1/bundles", json=b, headers=rx)
                assert r.status_code == 201 and r.json()["status"] == "accepted", r.text
                loc = b["inferred"]["location"]
                posted.append((b, f"F{loc['feeder']} · {loc['phase']}"))

        kw: dict[str, Any] = {"receiver_id": "rx-elm-1", "substation_id": "sub-1"}
        for i, hub in enumerate(hubs[:8]):
            t = T0 + timedelta(seconds=8 * i)
            send(bundles_for(hub, report(hub, t), at=t, **kw))
        moved = hubs[8]
        other = "C" if moved.phase != "C" else "A"
        for k in range(2):  # heard twice, clearly, on another phase: a phase change
            t = T0 + timedelta(seconds=80 + 8 * k)
            send(bundles_for(moved, report(moved, t), at=t, phase=other, confidence=0.95, **kw))
        t = T0 + timedelta(seconds=100)
        send(bundles_for(hubs[9], report(hubs[9], t), at=t, confidence=0.55, ambiguous=True, **kw))
        thief = hubs[10]
        t = T0 + timedelta(seconds=112)
        send(
            bundles_for(
                thief,
                M.TanAnomaly(
                    anomaly_type=1, tan_index=0, time_s=int(t.timestamp()), unaccounted_w=850.0, confidence=0.9
                ),
                at=t,
                **kw,
            )
        )
        _load_theft(c, a)
        r = c.post("/api/v1/receivers/rx-elm-1/health", json=health_body(spool_depth=7, lag_s=1.4), headers=rx)
        assert r.status_code == 201, r.text
        events = c.get("/api/v1/events").json()
        n_dots = sum(
            1
            for f in c.get("/api/v1/gridmap.geojson").json()["features"]
            if f["properties"]["kind"] == "transformer" and f["geometry"]
        )
    return {
        "hubs": hubs,
        "posted": posted,
        "events": events,
        "n_dots": n_dots,
        "moved": moved,
        "thief": thief,
        "tapped": TAPPED,
    }


def _load_theft(c: httpx.Client, a: dict) -> None:
    """The platform's own theft analysis: AMI interval data of a radial area with a tapped meter
    (accounts ``ACC-<meter>``, addresses ``<n> Elm Street``)."""
    theft_model = grid_model()
    theft_model["substations"][0]["name"] = "Elm Street substation"
    r = c.post("/api/v1/import/json", json=theft_model, headers=a)
    assert r.status_code == 200, r.text
    r = c.post(
        "/api/v1/ami/readings",
        content=area_csv(1, HUBS["T-100"][1], tap_meter=TAPPED).encode(),
        headers={"Content-Type": "text/csv", **a},
    )
    assert r.status_code == 200, r.text
    r = c.post("/api/v1/theft/analyse", headers=a)
    assert r.status_code == 200 and r.json()["alerts_new"] >= 1, r.text


@pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK),
    reason=f"headless browser test skipped: {CHROMIUM} not found (Debian package 'chromium'; "
    f".ci/run installs it: apt-get install -y chromium)",
)
def test_dashboard_in_headless_chromium(live_platform, tmp_path):
    url, admin = live_platform
    data = _load(url, admin)
    profile = tmp_path / "chromium-profile"

    # the operator's view: the admin token given in the address' fragment (kept in sessionStorage)
    run = _chromium("--virtual-time-budget=8000", "--dump-dom", f"{url}/#token={admin}", profile=profile)
    dom = run.stdout
    assert "<svg" in dom, f"chromium rendered no map (rc={run.returncode}):\n{run.stderr[-2000:]}"
    text = _text(dom)

    # the header: one line with counts
    assert "GLA Computing Platform · sub-1" in text
    n_alerts = sum(1 for e in data["events"] if e["type"] == "theft_alert") + 1
    assert "15 transformers" in text and "15 hubs" in text and f"{n_alerts} theft alerts" in text
    assert "1/1 receivers up" in text
    # the tree: substation -> bus -> feeder -> phase -> transformer -> meters
    tree = _text(re.search(r'(?s)<div id="tree".*?</section>', dom).group(0))
    assert "Elm Street substation" in tree and "sub-1" in tree
    for h in data["hubs"]:
        assert f"Feeder {h.feeder}" in tree and f"Phase {h.phase}" in tree and h.transformer_id in tree
        for m in h.meter_ids:
            assert f"meter {m}" in tree
    # the map: an inline SVG with one dot per transformer with coordinates, coloured by feeder
    assert data["n_dots"] == 15
    dots = re.findall(r'<circle\b[^>]*class="tx-dot[^"]*"[^>]*>', dom)
    assert len(dots) == data["n_dots"]
    colours = {re.search(r'data-feeder="(\d+)"', d).group(1): re.search(r'fill="([^"]+)"', d).group(1) for d in dots}
    assert len(set(colours.values())) == len(colours) == len({h.feeder for h in data["hubs"]} | {1})
    thief = data["thief"]
    tip = next(
        html.unescape(re.search(r'aria-label="([^"]*)"', d).group(1))
        for d in dots
        if f'data-transformer="{thief.transformer_id}"' in d
    )
    assert f"hub {thief.hub_id}" in tip and str(thief.meter_ids[0]) in tip  # hubs and meters in the tooltip
    # the bundles, newest first, each with the inferred feeder/phase; the newest with its ranked copies
    for b, loc in data["posted"]:
        row = _row(dom, "data-bundle", b["bundle_id"])
        assert loc in row and str(b["hub_id"]) in row, (loc, row)
        assert f"{round(100 * b['inferred']['confidence'])} %" in row
        assert ("ambiguous" in row) == b["inferred"]["ambiguous"]
    newest = data["posted"][-1][0]
    copies = _text(re.search(rf'(?s)<tr\b[^>]*data-copies-of="{newest["bundle_id"]}".*?</table>', dom).group(0))
    for k, cp in enumerate(newest["copies"]):
        assert (
            f"#{k + 1}" in copies
            and f"{cp['level_db']:.1f} dB" in copies
            and f"F{cp['feeder']} · {cp['phase']}" in copies
        )
    assert "CRC ok" in copies and "CRC fail" in copies and "−1" in copies
    # events and the theft alert, with their evidence
    titles = {e["type"]: e for e in data["events"]}
    assert {"tan_anomaly", "hub_phase_change"} <= set(titles)
    assert titles["hub_phase_change"]["title"] in text
    theft = _row(dom, "data-event", str(titles["tan_anomaly"]["id"]))
    assert str(thief.hub_id) in theft and "850 W" in theft and "90 %" in theft
    assert titles["tan_anomaly"]["evidence"][0][:8] in theft and "hub" in theft
    found = _row(dom, "data-event", str(titles["theft_alert"]["id"]))  # the platform's analysis
    assert str(data["tapped"]) in found and "platform (radial)" in found and f"ACC-{data['tapped']}" in found
    assert re.search(r"\d+ W", found)
    assert titles["hub_phase_change"]["evidence"][0][:8] in _row(
        dom, "data-event", str(titles["hub_phase_change"]["id"])
    )
    # receiver health
    rx = _row(dom, "data-receiver", "rx-elm-1")
    assert re.search(r"Spool depth", text) and " 7 " in f" {rx} " and "ok" in rx and "1.4 s" in rx
    assert 'id="errors"' in dom and re.search(r'<div id="errors"[^>]*hidden', dom), "the page reported an API error"

    # what a person sees: a screenshot
    png = tmp_path / "dashboard.png"
    run = _chromium(
        "--virtual-time-budget=8000", f"--screenshot={png}", "--window-size=1400,1000", url + "/", profile=profile
    )
    assert png.is_file() and png.stat().st_size > 20_000, run.stderr[-2000:]
    from matplotlib.image import imread

    img = imread(str(png))
    assert img.shape[:2] == (1000, 1400)
    rgb = (img[..., :3] * 255).astype(int)
    assert rgb.std() > 20  # not blank
    assert len({tuple(p) for p in rgb[::7, ::7].reshape(-1, 3)}) > 50  # text, dots, tables: many colours
    keep = os.environ.get("GLA_DASHBOARD_SCREENSHOT")
    if keep:
        shutil.copy(png, keep)


SKIP_NO_CHROMIUM = pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK), reason=f"headless browser test skipped: {CHROMIUM} not found"
)


@SKIP_NO_CHROMIUM
def test_dashboard_shows_customer_details_only_when_signed_in(live_platform, tmp_path):
    url, admin = live_platform
    with httpx.Client(base_url=url, timeout=20) as c:
        _load_theft(c, {"Authorization": f"Bearer {admin}"})
        (alert,) = c.get("/api/v1/events", params={"type": "theft_alert"}).json()[:1]
    account, address = f"ACC-{TAPPED}", "12 Elm Street"

    # anonymous: the alert is listed by meter, without account or address, and the page says why
    run = _chromium("--virtual-time-budget=8000", "--dump-dom", url + "/dashboard", profile=tmp_path / "p1")
    dom = run.stdout
    row = _row(dom, "data-event", str(alert["id"]))
    assert str(TAPPED) in row and "platform (radial)" in row, row
    assert account not in dom and address not in dom and "ACC-" not in dom
    assert "Sign in to see customer details" in _text(dom)
    assert re.search(r'<input[^>]*id="token"', dom) and re.search(r'<div id="errors"[^>]*hidden', dom)

    # with the token (the fragment is stored in sessionStorage and taken out of the address)
    run = _chromium(
        "--virtual-time-budget=8000", "--dump-dom", f"{url}/dashboard#token={admin}", profile=tmp_path / "p2"
    )
    dom = run.stdout
    row = _row(dom, "data-event", str(alert["id"]))
    assert account in row and address in row, row
    assert "Sign in to see customer details" not in _text(dom) and "Sign out" in _text(dom)
    assert admin not in dom  # not in the page (nor in the address it shows)

    # a wrong token: refused, said, forgotten; the page shows what anyone may see
    run = _chromium(
        "--virtual-time-budget=8000", "--dump-dom", f"{url}/dashboard#token=wrong-token", profile=tmp_path / "p3"
    )
    text = _text(run.stdout)
    assert "token not accepted" in text and account not in run.stdout
