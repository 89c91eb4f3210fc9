"""AMI interval data import, the theft analysis run, and its findings."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from ...core import csvsafe
from ...models import AmiReading, TheftFinding
from ...schemas.common import ID_PATTERN
from ...schemas.theft import AmiImportOut, AmiReadingOut, TheftFindingOut, TheftRunOut
from ...services import ami, theft
from ...services.imports import ImportProblem
from ...services.redact import shown
from ..deps import DB, PF, Admin, Limit, Offset, invalid, not_found, parse_time, require_admin
from ..strict_route import StrictJSONRoute
from .workorders import ADMIN, TimeQ

router = APIRouter(route_class=StrictJSONRoute, tags=["theft"])
MAX_CSV_BYTES = 64 * 1024 * 1024
TransformerQ = Annotated[str | None, Query(max_length=64, pattern=ID_PATTERN, description="one service transformer")]

AMI_EXAMPLE = (
    "meter_id,timestamp,v_rms,i_rms,pf\n"
    "50001,2025-03-03T00:15:00Z,241.37,18.42,0.97\n"
    "50002,2025-03-03T00:15:00Z,240.90,2.05,-0.88\n"
)


def _store(pf, data, ids, raw: bytes) -> dict:
    try:
        with pf.db.write() as s:
            return ami.store(s, data, ids, raw=raw, substation_id=pf.settings.substation_id)
    except IntegrityError:  # PostgreSQL: the same readings uploaded concurrently
        raise HTTPException(
            status_code=409, detail="another upload wrote some of these readings; post the file again"
        ) from None


@router.post(
    "/api/v1/ami/readings",
    response_model=AmiImportOut,
    dependencies=[Depends(require_admin)],
    summary="Import AMI interval data (CSV): V, I and power factor per meter and interval",
    responses={**ADMIN, 413: {"description": "larger than 64 MiB"}, 422: {"description": "names line and column"}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"text/csv": {"schema": {"type": "string"}, "example": AMI_EXAMPLE}},
        }
    },
)
async def import_ami(
    request: Request,
    pf: PF,
    assume_utc: Annotated[bool, Query(description="read ISO times without a zone as UTC")] = False,
):
    """Header `meter_id,timestamp,v_rms,i_rms,pf` (any order, case-insensitive, other columns
    ignored); `timestamp` is the end of the interval, Unix seconds or ISO 8601 with a zone;
    `meter_id` the Inventory's meter id. The whole file is checked first: an error is a 422 naming
    `["body", "line N", "column"]` and stores nothing. A reading of the same meter and time already
    stored with the same values is left alone (a re-upload changes nothing), with other values it
    is replaced. Readings of meters not in the Inventory are stored and listed."""
    raw = await request.body()
    if len(raw) > MAX_CSV_BYTES:
        raise HTTPException(status_code=413, detail=f"the CSV is larger than {MAX_CSV_BYTES} bytes; split it")
    try:
        text = csvsafe.decode(raw)
    except csvsafe.CsvProblem as e:
        raise invalid(e.loc, e.msg) from None
    try:
        data, ids = await run_in_threadpool(ami.parse, text, assume_utc=assume_utc)
    except ImportProblem as e:
        raise invalid(e.loc, e.msg) from None
    return await run_in_threadpool(_store, pf, data, ids, raw)


@router.get("/api/v1/ami/readings", response_model=list[AmiReadingOut], summary="Imported AMI readings")
def list_ami(
    s: DB,
    meter_id: Annotated[int | None, Query(ge=0, le=2**32 - 1)] = None,
    since: TimeQ = None,
    until: TimeQ = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[dict]:
    """In time order; `since`/`until` bound the interval end."""
    q = select(AmiReading)
    if meter_id is not None:
        q = q.where(AmiReading.meter_id == meter_id)
    t0, t1 = parse_time(since, ["query", "since"]), parse_time(until, ["query", "until"])
    if t0 is not None:
        q = q.where(AmiReading.measurement_time_s >= int(t0.timestamp()))
    if t1 is not None:
        q = q.where(AmiReading.measurement_time_s <= int(t1.timestamp()))
    rows = s.scalars(q.order_by(AmiReading.measurement_time_s, AmiReading.meter_id).offset(offset).limit(limit)).all()
    return [ami.reading_dict(r) for r in rows]


@router.post(
    "/api/v1/theft/analyse",
    response_model=TheftRunOut,
    dependencies=[Depends(require_admin)],
    summary="Run the theft analysis on the V/I series the platform holds",
    responses={**ADMIN, 404: {"description": "no such transformer"}},
)
def analyse(
    pf: PF,
    transformer_id: TransformerQ = None,
    days: Annotated[float, Query(gt=0, le=366, description="data analysed: the last days of each area")] = 14.0,
    margin_s: Annotated[
        int, Query(ge=0, le=30 * 86400, description="how long after its end a work order still explains anomalies")
    ] = 86400,
):
    """Per service transformer of the Grid Map: the series of its active meters from scheduled
    reports and AMI readings, the analysis its `topology` asks for (radial by default, bus,
    feeder), work-order suppression, and one `theft_alert` event per new alert (published on
    `/api/v1/events/stream` and to webhooks; never twice for the same anomaly). Areas with too
    little data are listed as skipped with the reason."""
    try:
        return theft.run(pf, transformer_id=transformer_id, days=days, margin_s=margin_s)
    except theft.UnknownTransformer:
        raise not_found(f"transformer {transformer_id}") from None


@router.get(
    "/api/v1/theft/alerts",
    response_model=list[TheftFindingOut],
    summary="Findings of the theft analysis: alerts, and anomalies work orders explain",
)
def list_alerts(
    s: DB,
    admin: Admin,
    status: Annotated[
        Literal["alert", "suppressed", "all"],
        Query(description="alert (published as theft_alert events), suppressed (explained by work orders), or all"),
    ] = "alert",
    transformer_id: TransformerQ = None,
    meter_id: Annotated[int | None, Query(ge=0, le=2**32 - 1)] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[dict]:
    q = select(TheftFinding)
    if status != "all":
        q = q.where(TheftFinding.status == status)
    if transformer_id:
        q = q.where(TheftFinding.transformer_id == transformer_id)
    rows = s.scalars(q.order_by(TheftFinding.id.desc())).all()
    if meter_id is not None:
        rows = [f for f in rows if meter_id in (f.meter_ids or [])]
    return shown([theft.finding_dict(f) for f in rows[offset : offset + limit]], admin)
