"""History of every change (with time, cause and evidence) and the life cycle of events."""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..models import Event, EventLog, History, Hub, OutboxItem, Webhook, WebhookDelivery
from .clock import iso, utcnow
from .context import Platform

OPEN = ("candidate", "suspected", "open")
EVIDENCE_CAP = 200


def _jsonable(v: Any) -> Any:
    if isinstance(v, datetime):
        return iso(v)
    return v


def record(
    s: Session,
    *,
    entity: str,
    entity_id: Any,
    field: str,
    old: Any,
    new: Any,
    cause: str,
    evidence: Iterable[str] = (),
    event_id: int | None = None,
    substation_id: str | None = None,
    at: datetime | None = None,
) -> None:
    """Append one history row (no-op when nothing changed)."""
    old, new = _jsonable(old), _jsonable(new)
    if old == new:
        return
    s.add(
        History(
            at=at or utcnow(),
            substation_id=substation_id,
            entity=entity,
            entity_id=str(entity_id),
            field=field,
            old=old,
            new=new,
            cause=cause,
            event_id=event_id,
            evidence=list(evidence)[:EVIDENCE_CAP],
        )
    )
    if entity == "hub":
        s.info.setdefault("dirty_hubs", set()).add(int(entity_id))


def change(
    s: Session,
    obj: Any,
    field: str,
    new: Any,
    *,
    entity: str,
    entity_id: Any,
    cause: str,
    evidence: Iterable[str] = (),
    event_id: int | None = None,
    substation_id: str | None = None,
) -> bool:
    """Set ``obj.field = new`` and record it; True when it changed."""
    old = getattr(obj, field)
    if old == new:
        return False
    setattr(obj, field, new)
    record(
        s,
        entity=entity,
        entity_id=entity_id,
        field=field,
        old=old,
        new=new,
        cause=cause,
        evidence=evidence,
        event_id=event_id,
        substation_id=substation_id,
    )
    return True


def bump_tan(s: Session, *hub_ids: int | None) -> None:
    """TAN membership of these hubs changed (invalidates every process's tan_index cache)."""
    ids = sorted({int(x) for x in hub_ids if x is not None})
    for i in range(0, len(ids), 900):
        s.execute(
            update(Hub)
            .where(Hub.hub_id.in_(ids[i : i + 900]))
            .values(tan_version=Hub.tan_version + 1)
            .execution_options(synchronize_session=False)
        )


def mark_hub_dirty(s: Session, hub_id: int) -> None:
    s.info.setdefault("dirty_hubs", set()).add(int(hub_id))


# -- events ----------------------------------------------------------------------------------------
def event_dict(ev: Event) -> dict:
    return {
        "id": ev.id,
        "substation_id": ev.substation_id,
        "type": ev.type,
        "status": ev.status,
        "confidence": round(float(ev.confidence), 6),
        "key": ev.key,
        "subject_type": ev.subject_type,
        "subject_id": ev.subject_id,
        "title": ev.title,
        "details": ev.details or {},
        "evidence": ev.evidence or [],
        "observations": ev.observations,
        "occurred_at": iso(ev.occurred_at),
        "created_at": iso(ev.created_at),
        "updated_at": iso(ev.updated_at),
        "superseded_by": ev.superseded_by,
        "origin_substation": ev.origin_substation,
        "origin_event_id": ev.origin_event_id,
    }


def find_open(s: Session, key: str) -> Event | None:
    return s.scalars(
        select(Event).where(Event.key == key, Event.status.in_(OPEN)).order_by(Event.id.desc()).limit(1)
    ).first()


def _merge_evidence(old: list | None, new: Iterable[str]) -> list:
    out = list(old or [])
    seen = set(out)
    for b in new:
        if b not in seen:
            out.append(b)
            seen.add(b)
    return out[-EVIDENCE_CAP:]


def upsert_event(
    s: Session,
    pf: Platform,
    *,
    type: str,
    key: str,
    confidence: float,
    title: str,
    details: dict,
    evidence: Iterable[str] = (),
    observations: int | None = None,
    subject_type: str | None = None,
    subject_id: Any = None,
    substation_id: str | None = None,
    occurred_at: datetime | None = None,
    status: str | None = None,
    replace_evidence: bool = False,
) -> Event:
    """Create the open event with this ``key`` or update it; publish when it crosses the report
    threshold or changes while published. ``status`` forces a status (else candidate/suspected)."""
    pol = pf.policy.get(s)
    now = utcnow()
    confidence = max(0.0, min(1.0, float(confidence)))
    ev = find_open(s, key)
    evidence = list(evidence)
    if ev is None:
        ev = Event(
            substation_id=substation_id,
            type=type,
            key=key,
            confidence=confidence,
            title=title,
            details=details,
            evidence=evidence[-EVIDENCE_CAP:],
            observations=observations or max(1, len(evidence)),
            subject_type=subject_type,
            subject_id=None if subject_id is None else str(subject_id),
            occurred_at=occurred_at or now,
            created_at=now,
            updated_at=now,
            status="candidate",
            published=False,
        )
        s.add(ev)
        s.flush()
        action = "created"
    else:
        ev.confidence = confidence
        ev.title = title
        ev.details = details
        ev.evidence = evidence[-EVIDENCE_CAP:] if replace_evidence else _merge_evidence(ev.evidence, evidence)
        ev.observations = observations if observations is not None else ev.observations + 1
        ev.updated_at = now
        action = "updated"
    new_status = status or "suspected"
    if new_status in OPEN and confidence < pol.report_threshold:
        new_status = "candidate"
    ev.status = new_status
    if not ev.published and (confidence >= pol.report_threshold or new_status not in OPEN):
        ev.published = True
        publish(s, pf, ev, "raised" if action == "updated" else "created")
    elif ev.published:
        publish(s, pf, ev, action if new_status in OPEN else new_status)
    s.info.setdefault("events", []).append(ev.id)
    return ev


def set_status(
    s: Session, pf: Platform, ev: Event, status: str, *, details: dict | None = None, superseded_by: int | None = None
) -> Event:
    ev.status = status
    ev.updated_at = utcnow()
    if details:
        ev.details = {**(ev.details or {}), **details}
    if superseded_by is not None:
        ev.superseded_by = superseded_by
    if ev.published:
        publish(s, pf, ev, status)
    s.info.setdefault("events", []).append(ev.id)
    return ev


def publish(s: Session, pf: Platform, ev: Event, action: str) -> None:
    """Log one publication: SSE reads the log, webhooks get a delivery each, the concentrator an
    outbox item; all in the caller's transaction (nothing is published that is not committed)."""
    s.flush()
    snap = event_dict(ev)
    log = EventLog(event_id=ev.id, action=action, at=utcnow(), snapshot=snap)
    s.add(log)
    s.flush()
    for hook in active_webhooks(s, pf):
        if ("*" in hook["types"] or ev.type in hook["types"]) and ev.confidence >= hook["min_confidence"]:
            s.add(
                WebhookDelivery(
                    webhook_id=hook["id"], seq=log.seq, status="pending", attempts=0, next_attempt_at=utcnow()
                )
            )
    if pf.forwarding and "events" in pf.settings.forward and ev.origin_substation is None:
        s.add(
            OutboxItem(
                item_type="event", payload={"action": action, "event": snap}, status="pending", next_attempt_at=utcnow()
            )
        )
    s.info["publish"] = True


def active_webhooks(s: Session, pf: Platform) -> list[dict]:
    """The active webhooks, cached for 2 s (``pf.invalidate_webhooks()`` after a change)."""
    at, hooks = pf.webhooks_cache
    if time.monotonic() - at < 2.0:
        return hooks
    rows = s.scalars(select(Webhook).where(Webhook.active.is_(True))).all()
    hooks = [{"id": w.id, "types": list(w.event_types or ["*"]), "min_confidence": w.min_confidence} for w in rows]
    pf.webhooks_cache = (time.monotonic(), hooks)
    return hooks


def after_commit(pf: Platform, session: Session) -> None:
    """Session hook (wired by create_app): a commit that published something wakes the worker."""
    if session.info.pop("publish", False):
        pf.wakeup.set()
