"""Forwarding from a substation platform to the concentrator (transactional outbox + sender).

What is forwarded is the policy ``GLA_FORWARD`` (default ``events,map``):

- ``events``: every publication of an event (created, raised, applied, resolved ...);
- ``map``: a snapshot of each hub whose Inventory or Grid Map entry changed (with its TAN meters,
  transformer and feeder section; never its key);
- ``readings``: each completed scheduled report.

Items are written in the same transaction as the change, so nothing is forwarded that was not
committed and nothing committed is lost; the sender posts them in order, in batches, to
``POST {GLA_CONCENTRATOR_URL}/api/v1/concentrator/forward`` with ``GLA_CONCENTRATOR_TOKEN`` and
retries with exponential backoff. The concentrator drops items it has already merged.
"""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ..models import Hub, OutboxItem, Section, Transformer
from .clock import iso, utcnow
from .context import Platform
from .inventory import hub_dict, section_dict, tan_meters, transformer_dict
from .reports import StoredReport


def hub_snapshot(s: Session, hub: Hub) -> dict:
    tr = s.get(Transformer, hub.transformer_id) if hub.transformer_id else None
    sec = s.get(Section, hub.section_id) if hub.section_id else None
    return {
        "hub": hub_dict(hub, tan_meters(s, hub.hub_id)),
        "transformer": transformer_dict(tr) if tr else None,
        "section": section_dict(sec) if sec else None,
        "changed_at": iso(utcnow()),
    }


def enqueue_map(s: Session, pf: Platform, hub_ids: list[int]) -> None:
    s.flush()
    for hub_id in hub_ids:
        hub = s.get(Hub, hub_id)
        if hub is None:
            continue
        s.add(OutboxItem(item_type="map", payload=hub_snapshot(s, hub), status="pending", next_attempt_at=utcnow()))


def before_commit(pf: Platform, session: Session) -> None:
    """Session hook (wired by create_app): a snapshot of each hub the transaction changed."""
    dirty = session.info.pop("dirty_hubs", None)
    if dirty and pf.forwarding and "map" in pf.settings.forward:
        enqueue_map(session, pf, sorted(dirty))


def enqueue_readings(s: Session, pf: Platform, hub: Hub, rep: StoredReport, sub: str) -> None:
    s.add(
        OutboxItem(
            item_type="readings",
            status="pending",
            next_attempt_at=utcnow(),
            payload={
                "hub_id": hub.hub_id,
                "substation_id": sub,
                "first_counter": rep.first_counter,
                "measurement_time_s": rep.measurement_time_s,
                "readings": rep.readings,
            },
        )
    )


def _client(pf: Platform) -> httpx.Client:
    if pf.http_client_factory is not None:
        return pf.http_client_factory()
    return httpx.Client(timeout=pf.settings.webhook_timeout_s)


def forward_once(pf: Platform) -> dict:
    """Send one batch of due outbox items; returns what happened."""
    st = pf.settings
    if not pf.forwarding:
        return {"sent": 0, "pending": 0, "error": None, "enabled": False}
    now = utcnow()
    with pf.db.session() as s:
        items = s.scalars(
            select(OutboxItem)
            .where(OutboxItem.status == "pending", OutboxItem.next_attempt_at <= now)
            .order_by(OutboxItem.id)
            .limit(st.forward_batch)
        ).all()
        batch = [{"id": it.id, "type": it.item_type, "payload": it.payload} for it in items]
        attempts = max((it.attempts for it in items), default=0)
    if not batch:
        return {"sent": 0, "pending": 0, "error": None, "enabled": True}
    assert st.concentrator_url, "pf.forwarding (checked above) needs a concentrator_url"
    url = st.concentrator_url.rstrip("/") + "/api/v1/concentrator/forward"
    body = {"origin": st.identity, "substation_id": st.substation_id, "sent_at": iso(now), "items": batch}
    headers = {"Authorization": f"Bearer {st.concentrator_token or ''}"}
    error = None
    try:
        with _client(pf) as c:
            r = c.post(url, json=body, headers=headers)
        if r.status_code >= 300:
            error = f"HTTP {r.status_code}: {r.text[:200]}"
    except httpx.HTTPError as e:
        error = f"{type(e).__name__}: {e}"[:300]
    ids = [b["id"] for b in batch]
    with pf.db.write() as s:
        if error is None:
            s.execute(update(OutboxItem).where(OutboxItem.id.in_(ids)).values(status="sent", sent_at=utcnow()))
        else:
            delay = min(3600.0, st.webhook_backoff_s * 2**attempts)
            s.execute(
                update(OutboxItem)
                .where(OutboxItem.id.in_(ids))
                .values(
                    attempts=OutboxItem.attempts + 1,
                    last_error=error,
                    next_attempt_at=utcnow() + timedelta(seconds=delay),
                )
            )
    return {"sent": 0 if error else len(ids), "pending": len(ids) if error else 0, "error": error, "enabled": True}


def status(s: Session, pf: Platform) -> dict:
    counts = dict(s.execute(select(OutboxItem.status, func.count()).group_by(OutboxItem.status)).all())
    last_err = s.scalars(
        select(OutboxItem.last_error)
        .where(OutboxItem.status == "pending", OutboxItem.last_error.is_not(None))
        .order_by(OutboxItem.id)
        .limit(1)
    ).first()
    return {
        "enabled": pf.forwarding,
        "concentrator_url": pf.settings.concentrator_url,
        "identity": pf.settings.identity,
        "policy": pf.settings.forward,
        "pending": counts.get("pending", 0),
        "sent": counts.get("sent", 0),
        "last_error": last_err,
    }
