"""Events (inferred changes), their stream, and the threshold policy for acting on them."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from ...models import Event, EventLog, Hub, Section, Substation
from ...schemas.events import STATUSES, CheckMissedIn, CheckMissedOut, EventAction, EventOut, LogEntry
from ...services import inference, outage
from ...services.changes import OPEN, change, event_dict, set_status
from ...services.clock import iso, utcnow
from ...services.policy import InferencePolicy
from ...services.redact import shown
from ..deps import DB, PF, Admin, Limit, Offset, SubQ, invalid, not_found, parse_time, require_admin
from ..strict_route import StrictJSONRoute

router = APIRouter(route_class=StrictJSONRoute, tags=["events"])
EventId = Annotated[int, Path(ge=1, le=2**31 - 1)]
TypeQ = Annotated[list[str] | None, Query(max_length=20, description="event types to include")]


@router.get("/api/v1/events", response_model=list[EventOut], summary="Inferred changes, newest first")
def list_events(
    s: DB,
    admin: Admin,
    substation_id: SubQ = None,
    type: TypeQ = None,
    status: Annotated[list[str] | None, Query(max_length=10, description=", ".join(STATUSES))] = None,
    min_confidence: Annotated[float, Query(ge=0, le=1)] = 0.0,
    subject_id: Annotated[str | None, Query(max_length=96, pattern=r"^[A-Za-z0-9._:/@-]+$")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[dict]:
    """Candidates (below the report threshold) are included only when asked for with
    `status=candidate`."""
    q = select(Event).where(Event.confidence >= min_confidence)
    if substation_id:
        q = q.where(Event.substation_id == substation_id)
    if type:
        q = q.where(Event.type.in_(type))
    if status:
        q = q.where(Event.status.in_(status))
    else:
        q = q.where(Event.status != "candidate")
    if subject_id:
        q = q.where(Event.subject_id == subject_id)
    rows = s.scalars(q.order_by(Event.id.desc()).offset(offset).limit(limit)).all()
    return shown([event_dict(e) for e in rows], admin)


@router.get(
    "/api/v1/events/log",
    response_model=list[LogEntry],
    summary="Publications in order (what SSE and webhooks deliver), for polling clients",
)
def event_log(
    s: DB,
    admin: Admin,
    after: Annotated[int, Query(ge=0, le=2**62, description="last seq seen")] = 0,
    limit: Limit = 100,
) -> list[dict]:
    rows = s.scalars(select(EventLog).where(EventLog.seq > after).order_by(EventLog.seq).limit(limit)).all()
    return [
        {"seq": r.seq, "event_id": r.event_id, "action": r.action, "at": iso(r.at), "event": shown(r.snapshot, admin)}
        for r in rows
    ]


@router.get(
    "/api/v1/events/stream",
    summary="Server-sent events: every publication of an event",
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "`id: <seq>`, `event: <action>`, `data: {seq, action, event}`",
        }
    },
)
async def stream(
    request: Request,
    pf: PF,
    admin: Admin,
    after: Annotated[
        int | None, Query(ge=0, le=2**62, description="start after this seq (default: Last-Event-ID, else now)")
    ] = None,
    type: TypeQ = None,
    min_confidence: Annotated[float, Query(ge=0, le=1)] = 0.0,
    timeout_s: Annotated[float | None, Query(gt=0, le=86400, description="close after this long")] = None,
    max_events: Annotated[int | None, Query(ge=1, le=100000, description="close after this many")] = None,
    last_event_id: Annotated[str | None, Header(max_length=24, pattern=r"^[0-9]*$")] = None,
):
    """A `text/event-stream` of event publications (created, raised, updated, applied, resolved,
    superseded, ...). Reconnect with the `Last-Event-ID` header (or `after`) to resume without
    loss: the stream is read from the publication log. A comment line is sent every 15 s."""
    start = after
    if start is None and last_event_id:
        start = int(last_event_id)
    if start is None:

        def _tail() -> int:
            with pf.db.session() as s:
                return s.scalar(select(EventLog.seq).order_by(EventLog.seq.desc()).limit(1)) or 0

        start = await run_in_threadpool(_tail)
    types = set(type or [])

    def _fetch(last: int) -> list[tuple[int, str, dict]]:
        with pf.db.session() as s:
            rows = s.scalars(select(EventLog).where(EventLog.seq > last).order_by(EventLog.seq).limit(500)).all()
            return [(r.seq, r.action, r.snapshot) for r in rows]

    async def gen():
        last, sent = start, 0
        t0 = time.monotonic()
        beat = t0
        yield f"retry: 2000\n: stream after seq {last}\n\n"
        while True:
            rows = await run_in_threadpool(_fetch, last)
            for seq, action, snap in rows:
                last = seq
                if types and snap.get("type") not in types:
                    continue
                if snap.get("confidence", 0) < min_confidence:
                    continue
                event = shown(snap, admin)
                data = json.dumps({"seq": seq, "action": action, "event": event}, separators=(",", ":"))
                yield f"id: {seq}\nevent: {action}\ndata: {data}\n\n"
                sent += 1
                if max_events and sent >= max_events:
                    return
            now = time.monotonic()
            if timeout_s is not None and now - t0 >= timeout_s:
                return
            if now - beat >= 15:
                beat = now
                yield ": keep-alive\n\n"
            if await request.is_disconnected():
                return
            await asyncio.sleep(pf.settings.sse_poll_s)

    return StreamingResponse(
        gen(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )


@router.get(
    "/api/v1/events/{event_id}",
    response_model=EventOut,
    summary="One event",
    responses={404: {"description": "no such event"}},
)
def get_event(s: DB, admin: Admin, event_id: EventId) -> dict:
    e = s.get(Event, event_id)
    if e is None:
        raise not_found(f"event {event_id}")
    return shown(event_dict(e), admin)


def _act(pf, event_id: int, action: str, note: str | None) -> dict:
    with pf.db.write() as s:
        e = s.get(Event, event_id)
        if e is None:
            raise not_found(f"event {event_id}")
        if e.status not in OPEN:
            raise HTTPException(status_code=409, detail=f"event {event_id} is {e.status}, not open")
        extra = {"operator_note": note} if note else {}
        if action == "confirm":
            if e.type == "suspected_outage":
                sec = s.get(Section, e.subject_id) if e.subject_type == "section" else None
                if sec is not None:
                    change(
                        s,
                        sec,
                        "energized",
                        False,
                        entity="section",
                        entity_id=sec.id,
                        cause="operator",
                        evidence=["operator", f"event:{e.id}"],
                        event_id=e.id,
                        substation_id=e.substation_id,
                    )
                set_status(s, pf, e, "applied", details={**extra, "confirmed_by": "operator"})
            else:
                try:
                    inference.force(s, pf, e, utcnow())
                except inference.NothingToApply as x:
                    raise HTTPException(status_code=409, detail=str(x)) from None
                if extra:
                    e.details = {**e.details, **extra}
        elif action == "dismiss":
            set_status(s, pf, e, "dismissed", details=extra)
            if e.subject_type == "hub" and e.type in ("new_hub", "hub_phase_change", "hub_feeder_change"):
                hub = s.get(Hub, int(e.subject_id))
                if hub is not None and hub.cand_event_id == e.id:
                    inference.clear_candidate(hub)
        else:
            set_status(s, pf, e, "resolved", details=extra)
        s.flush()
        return event_dict(e)


ACTION_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"description": "no such event"},
    409: {"description": "not open, or nothing to apply"},
    401: {"description": "admin token required"},
}


@router.post(
    "/api/v1/events/{event_id}/confirm",
    response_model=EventOut,
    dependencies=[Depends(require_admin)],
    summary="Operator: apply a suspected change now",
    responses=ACTION_RESPONSES,
)
def confirm(pf: PF, event_id: EventId, body: EventAction | None = None) -> dict:
    """For hub and switch events the Grid Map is changed as inference would have done at the act
    threshold; a suspected outage is marked applied (its section de-energized)."""
    return _act(pf, event_id, "confirm", body.note if body else None)


@router.post(
    "/api/v1/events/{event_id}/dismiss",
    response_model=EventOut,
    dependencies=[Depends(require_admin)],
    summary="Operator: dismiss an open event",
    responses=ACTION_RESPONSES,
)
def dismiss(pf: PF, event_id: EventId, body: EventAction | None = None) -> dict:
    return _act(pf, event_id, "dismiss", body.note if body else None)


@router.post(
    "/api/v1/events/{event_id}/resolve",
    response_model=EventOut,
    dependencies=[Depends(require_admin)],
    summary="Operator: mark an open event resolved",
    responses=ACTION_RESPONSES,
)
def resolve(pf: PF, event_id: EventId, body: EventAction | None = None) -> dict:
    return _act(pf, event_id, "resolve", body.note if body else None)


@router.get("/api/v1/inference/policy", response_model=InferencePolicy, summary="The threshold policy")
def get_policy(pf: PF, s: DB) -> InferencePolicy:
    return pf.policy.get(s)


@router.put(
    "/api/v1/inference/policy",
    response_model=InferencePolicy,
    dependencies=[Depends(require_admin)],
    summary="Change the threshold policy",
    responses={401: {"description": "admin token required"}},
)
def put_policy(pf: PF, body: InferencePolicy) -> InferencePolicy:
    if body.report_threshold > body.act_threshold:
        raise invalid(["body", "report_threshold"], "report_threshold must not exceed act_threshold")
    with pf.db.write() as s:
        return pf.policy.put(s, body)


@router.post(
    "/api/v1/inference/check-missed",
    response_model=list[CheckMissedOut],
    dependencies=[Depends(require_admin)],
    summary="Look for scheduled reports that did not arrive",
    responses={401: {"description": "admin token required"}},
)
def check_missed(pf: PF, body: CheckMissedIn | None = None) -> list[dict]:
    """Runs the missed-report check now (the background thread runs it every
    `missed_check_interval_s`), at `now` or at each substation's data time, and raises or
    updates suspected outages grouped by feeder section."""
    body = body or CheckMissedIn()
    now = parse_time(body.now, ["body", "now"])
    with pf.db.session() as s:
        subs = [body.substation_id] if body.substation_id else list(s.scalars(select(Substation.id)).all())
    out = []
    for sid in subs:
        with pf.db.write() as s:
            out.append(outage.check_missed(s, pf, sid, now))
    return out
