"""Liveness, readiness, what this instance is, and its Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text

from dsp.air import params as P
from receiver.contracts.bundle import SCHEMA_VERSION

from ... import __version__
from ...core.db import current_revision, head_revision
from ...core.metrics import CONTENT_TYPE
from ...schemas.health import Health, Info, Ready
from ..deps import PF

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="Liveness")
def healthz() -> dict:
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=Ready,
    summary="Readiness: database reachable and at the head migration",
    responses={503: {"description": "database unreachable or not migrated"}},
)
def readyz(pf: PF):
    try:
        with pf.db.engine.connect() as c:
            c.execute(text("SELECT 1"))
        rev, head = current_revision(pf.db.engine), head_revision()
    except Exception as e:  # noqa: BLE001 - any failure means not ready
        return JSONResponse(
            {"status": "unavailable", "database": f"{type(e).__name__}", "revision": None, "head": None},
            status_code=503,
        )
    ok = rev == head
    body = {"status": "ok" if ok else "migrating", "database": "ok", "revision": rev, "head": head}
    return body if ok else JSONResponse(body, status_code=503)


@router.get("/api/v1/info", response_model=Info, summary="What this instance is")
def info(pf: PF) -> dict:
    st = pf.settings
    return {
        "name": "gla-platform",
        "version": __version__,
        "mode": st.mode,
        "substation_id": st.substation_id,
        "bundle_schema_version": SCHEMA_VERSION,
        "air_interface_version": P.AIR_VERSION,
        "database_backend": pf.db.engine.dialect.name,
        "forwarding": pf.forwarding,
        "background": st.background,
    }


@router.get(
    "/metrics",
    summary="Prometheus metrics: request latency per route",
    response_class=Response,
    responses={200: {"description": "the Prometheus text format 0.0.4", "content": {"text/plain": {}}}},
)
def metrics(request: Request) -> Response:
    """`gla_platform_request_duration_seconds{method,route,status}` (a histogram of every HTTP
    request, by route template) and `gla_platform_info{version,mode}`. Read-only and free of
    customer data, so open like `/healthz` (bind the platform to a private address)."""
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE)
