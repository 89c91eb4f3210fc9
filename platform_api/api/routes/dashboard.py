"""The operator's view, and the receivers' health reports it shows.

* ``GET /`` and ``GET /dashboard``: one self-contained page (``platform_api/static/dashboard.*``: no
  CDN, no web fonts, no map tiles) that polls the JSON API every few seconds and shows the Grid
  Map as a tree and as an SVG map, recent bundles with their ranked copies, events and theft
  alerts with their evidence, and receiver health.
* ``POST /api/v1/receivers/{receiver_id}/health``: a Substation Receiver reports how it is doing
  (``receiver/service.py``'s ``_HealthPoster`` sends this body every 10 s), with its own bearer
  token: a receiver may report only for itself.
* ``GET /api/v1/receivers/health``: the latest report of every receiver, with its age.

Health reports are kept **in memory** on ``app.state`` (the latest per receiver, plus a count):
they are a live gauge, re-sent every few seconds, and worthless after a restart. With several
uvicorn worker processes each worker holds the reports that reached it.

This router must come before the ``receivers`` router, whose ``/api/v1/receivers/{receiver_id}``
would otherwise take ``/api/v1/receivers/health`` for a receiver called ``health``.
"""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path as FsPath
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import FileResponse, RedirectResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from ...models import Receiver
from ...services.clock import iso, utcnow
from ...services.ingest import Principal
from ..deps import DB, SubQ, check_time, invalid, principal
from ..strict_route import StrictJSONRoute

router = APIRouter(route_class=StrictJSONRoute)

STATIC = FsPath(__file__).resolve().parents[2] / "static"
#: files the page may load, and their media types (nothing else under static/ is served)
ASSETS = {"dashboard.js": "text/javascript; charset=utf-8", "dashboard.css": "text/css; charset=utf-8"}
NO_CACHE = {"Cache-Control": "no-cache"}
#: a receiver posts every 10 s: a report older than this means it stopped (or cannot reach us)
STALE_AFTER_S = 60.0

RxId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9._:/@-]+$",
        description="the receiver's id (its token must be this receiver's)",
    ),
]
BIG = 2**62


# -- the page ------------------------------------------------------------------------------------
def _page() -> FileResponse:
    return FileResponse(STATIC / "dashboard.html", media_type="text/html; charset=utf-8", headers=NO_CACHE)


@router.get("/", include_in_schema=False)
def root() -> FileResponse:
    return _page()


@router.get("/dashboard", include_in_schema=False)
def dashboard() -> FileResponse:
    return _page()


@router.get("/dashboard/", include_in_schema=False)
def dashboard_slash() -> RedirectResponse:
    # the page loads its assets and the API by relative URLs, which need the page at .../dashboard
    return RedirectResponse("../dashboard", status_code=307)


@router.get("/dashboard/{name}", include_in_schema=False)
def asset(name: str) -> FileResponse:
    if name not in ASSETS:
        raise HTTPException(status_code=404, detail="not found")
    return FileResponse(STATIC / name, media_type=ASSETS[name], headers=NO_CACHE)


# -- receiver health -----------------------------------------------------------------------------
class ReceiverHealthIn(BaseModel):
    """What a Substation Receiver says about itself (``receiver/service.py``, every 10 s)."""

    model_config = ConfigDict(
        extra="forbid",
        allow_inf_nan=False,
        json_schema_extra={
            "example": {
                "lag_s": 0.8,
                "gaps": 1,
                "gap_samples": 480,
                "spool_depth": 3,
                "samples_in": 172800000,
                "bundles": 5120,
                "crc_failures": 41,
                "stream_time_s": 3600.0,
                "reported_at": "2026-11-22T00:00:10Z",
            }
        },
    )

    lag_s: float = Field(ge=0, le=1e9, description="seconds since the newest block of samples was processed")
    gaps: int = Field(ge=0, le=BIG, description="gaps in the input stream so far")
    gap_samples: int = Field(ge=0, le=BIG, description="samples missing in those gaps")
    spool_depth: int = Field(ge=0, le=BIG, description="bundles waiting for delivery to the platform")
    samples_in: int = Field(ge=0, le=BIG, description="input samples per channel received")
    bundles: int = Field(ge=0, le=BIG, description="bundles made so far")
    crc_failures: int = Field(ge=0, le=BIG, description="bundles without a clean frame")
    stream_time_s: float = Field(ge=0, le=1e12, description="stream time of the newest sample processed")
    reported_at: datetime = Field(description="the receiver's clock when it made the report (with time zone)")


class ReceiverHealthOut(BaseModel):
    receiver_id: str
    substation_id: str | None = None
    enabled: bool | None = Field(default=None, description="the credential is enabled (null: not registered)")
    reports: int = Field(description="reports received since the platform started")
    received_at: str | None = Field(default=None, description="when the platform got the latest report")
    age_s: float | None = Field(default=None, description="seconds since then (null: never reported)")
    stale: bool = Field(description=f"no report for {STALE_AFTER_S:g} s, or none at all")
    lag_s: float | None = None
    gaps: int | None = None
    gap_samples: int | None = None
    spool_depth: int | None = None
    samples_in: int | None = None
    bundles: int | None = None
    crc_failures: int | None = None
    stream_time_s: float | None = None
    reported_at: str | None = None


class _Store:
    """The latest report per receiver (in memory, thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latest: dict[str, dict] = {}
        self.count: dict[str, int] = {}

    def put(self, receiver_id: str, substation_id: str, report: dict) -> dict:
        with self.lock:
            self.count[receiver_id] = self.count.get(receiver_id, 0) + 1
            self.latest[receiver_id] = {**report, "substation_id": substation_id, "received_at": utcnow()}
            return dict(self.latest[receiver_id])

    def snapshot(self) -> tuple[dict[str, dict], dict[str, int]]:
        with self.lock:
            return {k: dict(v) for k, v in self.latest.items()}, dict(self.count)


def _store(request: Request) -> _Store:
    st = getattr(request.app.state, "receiver_health", None)
    if st is None:
        with _INIT:
            st = getattr(request.app.state, "receiver_health", None)
            if st is None:
                st = request.app.state.receiver_health = _Store()
    return st


_INIT = threading.Lock()


def _out(rid: str, rep: dict | None, n: int, sub: str | None, enabled: bool | None, now: datetime) -> dict:
    out = {
        "receiver_id": rid,
        "substation_id": sub,
        "enabled": enabled,
        "reports": n,
        "received_at": None,
        "age_s": None,
        "stale": True,
    }
    if rep is not None:
        age = max(0.0, (now - rep["received_at"]).total_seconds())
        out.update({k: rep[k] for k in ReceiverHealthIn.model_fields if k != "reported_at"})
        out.update(
            substation_id=sub or rep["substation_id"],
            received_at=iso(rep["received_at"]),
            age_s=round(age, 3),
            stale=age > STALE_AFTER_S,
            reported_at=iso(rep["reported_at"]),
        )
    return out


@router.post(
    "/api/v1/receivers/{receiver_id}/health",
    status_code=201,
    response_model=ReceiverHealthOut,
    tags=["receivers"],
    summary="A receiver reports its health (lag, gaps, spool depth)",
    responses={
        401: {"description": "missing or unknown token"},
        403: {"description": "the token is not this receiver's (or is disabled)"},
        422: {"description": "the report does not validate; detail[].loc names the field"},
    },
)
def post_health(
    request: Request, receiver_id: RxId, body: ReceiverHealthIn, p: Annotated[Principal, Depends(principal)]
) -> dict:
    """Authenticate with the receiver's own bearer token (the one it posts bundles with). The
    platform keeps the latest report per receiver in memory and shows it on the dashboard."""
    if p.id != receiver_id:
        raise HTTPException(
            status_code=403, detail=f"this token belongs to {p.id}, which may not report for receiver {receiver_id}"
        )
    if p.role != "receiver":
        raise HTTPException(status_code=403, detail=f"credential {p.id} is a {p.role}, not a receiver")
    if body.reported_at.tzinfo is None:
        raise invalid(["body", "reported_at"], "time needs a time zone (UTC)")
    rep = body.model_dump()
    rep["reported_at"] = check_time(body.reported_at, ["body", "reported_at"])
    st = _store(request)
    st.put(receiver_id, p.substation_id, rep)
    latest, count = st.snapshot()
    return _out(receiver_id, latest[receiver_id], count[receiver_id], p.substation_id, True, utcnow())


@router.get(
    "/api/v1/receivers/health",
    response_model=list[ReceiverHealthOut],
    tags=["receivers"],
    summary="The latest health report of every receiver, with its age",
)
def list_health(
    request: Request,
    s: DB,
    substation_id: SubQ = None,
    include_silent: Annotated[bool, Query(description="also registered receivers that never reported")] = True,
) -> list[dict]:
    """One row per receiver: the registered, enabled receivers (those that never reported with
    `age_s` null and `stale` true) and any that reported since the platform started."""
    latest, count = _store(request).snapshot()
    q = select(Receiver).where(Receiver.role == "receiver")
    if substation_id:
        q = q.where(Receiver.substation_id == substation_id)
    creds = {r.id: r for r in s.scalars(q).all()}
    now = utcnow()
    out = []
    for rid in sorted(set(latest) | (set(creds) if include_silent else set())):
        r, rep = creds.get(rid), latest.get(rid)
        if rep is None and (r is None or not r.enabled):
            continue
        if r is not None:
            sub = r.substation_id
        else:
            assert rep is not None  # a receiver with neither credentials nor a report was skipped above
            sub = rep["substation_id"]
        if substation_id and sub != substation_id:
            continue
        out.append(_out(rid, rep, count.get(rid, 0), sub, r.enabled if r is not None else None, now))
    return out
