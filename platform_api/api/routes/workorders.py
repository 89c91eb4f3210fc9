"""Work orders: planned grid work, recorded so the theft analysis does not raise what it explains."""

from __future__ import annotations

import secrets
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from sqlalchemy import select

from ...models import WorkOrderRow
from ...schemas.common import ID_PATTERN
from ...schemas.theft import WorkOrderIn, WorkOrderOut
from ...services.clock import utcnow
from ...services.theft import work_order_dict
from ..deps import DB, PF, Limit, Offset, check_time, invalid, not_found, parse_time, require_admin
from ..strict_route import StrictJSONRoute

router = APIRouter(route_class=StrictJSONRoute, tags=["theft"])
OrderId = Annotated[str, Path(min_length=1, max_length=64, pattern=ID_PATTERN)]
TimeQ = Annotated[str | None, Query(max_length=40, description="ISO 8601 time")]
ADMIN: dict[int | str, dict[str, Any]] = {
    401: {"description": "admin token required"},
    403: {"description": "this credential may not use operator routes"},
}


@router.post(
    "/api/v1/workorders",
    response_model=WorkOrderOut,
    status_code=201,
    dependencies=[Depends(require_admin)],
    summary="Record a work order (planned grid work)",
    responses={
        **ADMIN,
        409: {"description": "an order with this id exists"},
        422: {"description": "names the bad field"},
    },
)
def create_work_order(pf: PF, body: WorkOrderIn) -> dict:
    """Anomalies the work explains (by `kind`, or the `explains` list) on its meters, or on every
    meter of its transformers, whose onset lies between one hour before `start_at` and one day
    after `end_at`, are recorded as *suppressed* by the theft analysis instead of being published
    as theft alerts; an alert already published that the order explains is withdrawn at the next
    analysis. At least one meter or transformer is required."""
    start = check_time(body.start_at, ["body", "start_at"])
    end = check_time(body.end_at, ["body", "end_at"])
    if end < start:
        raise invalid(["body", "end_at"], "end_at must not be before start_at")
    if not body.meter_ids and not body.transformer_ids:
        raise invalid(["body", "meter_ids"], "name at least one meter (meter_ids) or transformer (transformer_ids)")
    order_id = body.order_id or f"wo-{secrets.token_hex(6)}"
    with pf.db.write() as s:
        if s.get(WorkOrderRow, order_id) is not None:
            raise HTTPException(status_code=409, detail=f"work order {order_id} already exists")
        row = WorkOrderRow(
            id=order_id,
            kind=body.kind,
            start_at=start,
            end_at=end,
            meter_ids=sorted(set(body.meter_ids)),
            transformer_ids=sorted(set(body.transformer_ids)),
            explains=None if body.explains is None else sorted(set(body.explains)),
            note=body.note,
            status="active",
            created_at=utcnow(),
        )
        s.add(row)
        s.flush()
        return work_order_dict(row)


@router.get("/api/v1/workorders", response_model=list[WorkOrderOut], summary="Work orders, newest first")
def list_work_orders(
    s: DB,
    meter_id: Annotated[int | None, Query(ge=0, le=2**32 - 1)] = None,
    transformer_id: Annotated[str | None, Query(max_length=64, pattern=ID_PATTERN)] = None,
    since: TimeQ = None,
    until: TimeQ = None,
    status: Annotated[Literal["active", "cancelled"] | None, Query()] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[dict]:
    """`meter_id` / `transformer_id`: orders naming it; `since` / `until`: orders whose window
    overlaps [since, until]."""
    q = select(WorkOrderRow)
    t0, t1 = parse_time(since, ["query", "since"]), parse_time(until, ["query", "until"])
    if t0 is not None:
        q = q.where(WorkOrderRow.end_at >= t0)
    if t1 is not None:
        q = q.where(WorkOrderRow.start_at <= t1)
    if status:
        q = q.where(WorkOrderRow.status == status)
    rows = s.scalars(q.order_by(WorkOrderRow.created_at.desc(), WorkOrderRow.id)).all()
    if meter_id is not None:
        rows = [w for w in rows if meter_id in (w.meter_ids or [])]
    if transformer_id is not None:
        rows = [w for w in rows if transformer_id in (w.transformer_ids or [])]
    return [work_order_dict(w) for w in rows[offset : offset + limit]]


@router.get(
    "/api/v1/workorders/{order_id}",
    response_model=WorkOrderOut,
    summary="One work order",
    responses={404: {"description": "no such work order"}},
)
def get_work_order(s: DB, order_id: OrderId) -> dict:
    w = s.get(WorkOrderRow, order_id)
    if w is None:
        raise not_found(f"work order {order_id}")
    return work_order_dict(w)


@router.delete(
    "/api/v1/workorders/{order_id}",
    response_model=WorkOrderOut,
    dependencies=[Depends(require_admin)],
    summary="Cancel a work order",
    responses={**ADMIN, 404: {"description": "no such work order"}},
)
def cancel_work_order(pf: PF, order_id: OrderId) -> dict:
    """The order is kept (status `cancelled`) and suppresses nothing from the next analysis on;
    cancelling a cancelled order changes nothing."""
    with pf.db.write() as s:
        w = s.get(WorkOrderRow, order_id)
        if w is None:
            raise not_found(f"work order {order_id}")
        if w.status != "cancelled":
            w.status, w.cancelled_at = "cancelled", utcnow()
        s.flush()
        return work_order_dict(w)
