"""Publishing: webhook delivery with retry, the Grid Map as a tree, GeoJSON and CSV."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from datetime import timedelta

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..core import csvsafe
from ..models import (
    Event,
    EventLog,
    Feeder,
    History,
    Hub,
    Meter,
    Section,
    Substation,
    Transformer,
    Webhook,
    WebhookDelivery,
)
from .clock import iso, utcnow
from .context import Platform
from .inventory import section_dict


# -- webhooks ----------------------------------------------------------------------------------
def signature(secret: str | None, body: bytes) -> str | None:
    if not secret:
        return None
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def deliver_once(pf: Platform, limit: int = 100) -> dict:
    """POST every due delivery once; failures are retried with exponential backoff
    (``webhook_backoff_s * 2**(attempt-1)``) until ``webhook_max_attempts``."""
    st = pf.settings
    now = utcnow()
    with pf.db.session() as s:
        rows = s.execute(
            select(WebhookDelivery, Webhook, EventLog)
            .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
            .join(EventLog, EventLog.seq == WebhookDelivery.seq)
            .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now)
            .order_by(WebhookDelivery.id)
            .limit(limit)
        ).all()
        jobs = [(d.id, w.url, w.secret, log.seq, log.action, log.snapshot, d.attempts) for d, w, log in rows]
    if not jobs:
        return {"delivered": 0, "failed": 0, "retrying": 0}
    results = []
    client = pf.http_client_factory() if pf.http_client_factory else httpx.Client(timeout=st.webhook_timeout_s)
    with client:
        for did, url, secret, seq, action, snap, attempts in jobs:
            body = json.dumps({"seq": seq, "action": action, "event": snap}, separators=(",", ":")).encode()
            headers = {
                "Content-Type": "application/json",
                "X-GLA-Event": snap.get("type", ""),
                "X-GLA-Delivery": str(did),
                "X-GLA-Seq": str(seq),
            }
            sig = signature(secret, body)
            if sig:
                headers["X-GLA-Signature"] = sig
            try:
                r = client.post(url, content=body, headers=headers)
                results.append((did, r.status_code, None if r.status_code < 300 else f"HTTP {r.status_code}", attempts))
            except httpx.HTTPError as e:
                results.append((did, None, f"{type(e).__name__}: {e}"[:300], attempts))
    out = {"delivered": 0, "failed": 0, "retrying": 0}
    with pf.db.write() as s:
        for did, code, err, attempts in results:
            d = s.get(WebhookDelivery, did)
            assert d is not None, "read above, and delivery rows are never deleted (only marked failed)"
            d.attempts = attempts + 1
            d.last_status_code = code
            d.last_error = err
            if err is None:
                d.status, d.delivered_at = "delivered", utcnow()
                out["delivered"] += 1
            elif d.attempts >= st.webhook_max_attempts:
                d.status = "failed"
                out["failed"] += 1
            else:
                d.next_attempt_at = utcnow() + timedelta(seconds=st.webhook_backoff_s * 2**attempts)
                out["retrying"] += 1
    return out


def delivery_dict(d: WebhookDelivery) -> dict:
    return {
        "id": d.id,
        "webhook_id": d.webhook_id,
        "seq": d.seq,
        "status": d.status,
        "attempts": d.attempts,
        "next_attempt_at": iso(d.next_attempt_at),
        "last_status_code": d.last_status_code,
        "last_error": d.last_error,
        "delivered_at": iso(d.delivered_at),
    }


def webhook_dict(w: Webhook) -> dict:
    return {
        "id": w.id,
        "url": w.url,
        "event_types": w.event_types,
        "min_confidence": w.min_confidence,
        "active": w.active,
        "has_secret": bool(w.secret),
        "created_at": iso(w.created_at),
    }


# -- the Grid Map -------------------------------------------------------------------------------
def _load(s: Session, substation_id: str | None):
    qh = select(Hub)
    qs = select(Substation)
    if substation_id:
        qh = qh.where(Hub.substation_id == substation_id)
        qs = qs.where(Substation.id == substation_id)
    hubs = s.scalars(qh.order_by(Hub.hub_id)).all()
    subs = {x.id: x for x in s.scalars(qs).all()}
    ids = [h.hub_id for h in hubs]
    meters: dict[int, list[Meter]] = {}
    for i in range(0, len(ids), 900):
        for m in s.scalars(select(Meter).where(Meter.hub_id.in_(ids[i : i + 900]))).all():
            assert m.hub_id is not None, "selected by hub_id"
            meters.setdefault(m.hub_id, []).append(m)
    trs = {t.id: t for t in s.scalars(select(Transformer)).all()}
    feeders = {(f.substation_id, f.feeder): f for f in s.scalars(select(Feeder)).all()}
    sections = {x.id: x for x in s.scalars(select(Section)).all()}
    return hubs, subs, meters, trs, feeders, sections


def gridmap_tree(s: Session, substation_id: str | None = None, include_inactive: bool = False) -> dict:
    hubs, subs, meters, trs, feeders, sections = _load(s, substation_id)
    tree: dict = {}
    unplaced = []
    for h in hubs:
        if h.map_feeder is None or h.substation_id is None:
            unplaced.append(h.hub_id)
            continue
        sub = tree.setdefault(h.substation_id, {})
        bus = sub.setdefault(h.map_bus or 0, {})
        fd = bus.setdefault(h.map_feeder, {})
        ph = fd.setdefault(h.map_phase or "?", [])
        tr = trs.get(h.transformer_id) if h.transformer_id else None
        ms = sorted(
            (m for m in meters.get(h.hub_id, []) if include_inactive or m.active),
            key=lambda m: (m.tan_index if m.tan_index is not None else 999, m.meter_id),
        )
        ph.append(
            {
                "tan_id": f"TAN-{h.hub_id}",
                "hub_id": h.hub_id,
                "transformer_id": h.transformer_id,
                "section_id": h.section_id,
                "mode": h.mode,
                "status": h.status,
                "map_source": h.map_source,
                "lat": h.lat if h.lat is not None else (tr.lat if tr else None),
                "lon": h.lon if h.lon is not None else (tr.lon if tr else None),
                "last_seen_at": iso(h.last_seen_at),
                "meters": [
                    {
                        "meter_id": m.meter_id,
                        "tan_index": m.tan_index,
                        "role": m.role,
                        "active": m.active,
                        "lat": m.lat,
                        "lon": m.lon,
                    }
                    for m in ms
                ],
            }
        )
    out_subs = []
    for sid in sorted(set(tree) | set(subs)):
        sub = subs.get(sid)
        buses = []
        for b in sorted(tree.get(sid, {})):
            fds = []
            for f in sorted(tree[sid][b]):
                fr = feeders.get((sid, f))
                secs = sorted(x.id for x in sections.values() if x.substation_id == sid and x.feeder == f)
                fds.append(
                    {
                        "feeder": f,
                        "name": fr.name if fr else None,
                        "sections": secs,
                        "phases": [{"phase": p, "tans": tree[sid][b][f][p]} for p in sorted(tree[sid][b][f])],
                    }
                )
            buses.append({"bus": b, "feeders": fds})
        out_subs.append(
            {
                "substation_id": sid,
                "name": sub.name if sub else None,
                "lat": sub.lat if sub else None,
                "lon": sub.lon if sub else None,
                "buses": buses,
            }
        )
    return {
        "generated_at": iso(utcnow()),
        "substations": out_subs,
        "unplaced_hubs": unplaced,
        "sections": [
            section_dict(x)
            for x in sorted(sections.values(), key=lambda x: x.id)
            if substation_id is None or x.substation_id == substation_id
        ],
    }


def geojson(
    s: Session,
    substation_id: str | None = None,
    kinds: Iterable[str] = ("substation", "transformer", "meter"),
    include_unlocated: bool = False,
) -> dict:
    hubs, subs, meters, trs, feeders, sections = _load(s, substation_id)
    kinds = set(kinds)
    feats = []

    def point(lat, lon):
        return None if lat is None or lon is None else {"type": "Point", "coordinates": [lon, lat]}

    if "substation" in kinds:
        for x in subs.values():
            g = point(x.lat, x.lon)
            if g or include_unlocated:
                feats.append(
                    {
                        "type": "Feature",
                        "id": f"substation/{x.id}",
                        "geometry": g,
                        "properties": {"kind": "substation", "substation_id": x.id, "name": x.name},
                    }
                )
    by_tr: dict[str, list[Hub]] = {}
    for h in hubs:
        if h.transformer_id:
            by_tr.setdefault(h.transformer_id, []).append(h)
    if "transformer" in kinds:
        for tid, hs in sorted(by_tr.items()):
            t = trs.get(tid)
            g = point(t.lat, t.lon) if t else None
            if not g and not include_unlocated:
                continue
            on = [h for h in hs if h.map_feeder is not None]
            feats.append(
                {
                    "type": "Feature",
                    "id": f"transformer/{tid}",
                    "geometry": g,
                    "properties": {
                        "kind": "transformer",
                        "transformer_id": tid,
                        "substation_id": t.substation_id if t else None,
                        "bus": t.bus if t else None,
                        "feeder": t.feeder if t else None,
                        "section_id": t.section_id if t else None,
                        "phases": "".join(sorted({h.map_phase for h in on if h.map_phase}))
                        or (t.phases if t else None),
                        "hubs": [h.hub_id for h in hs],
                        "energized": sections[t.section_id].energized if t and t.section_id in sections else None,
                    },
                }
            )
    if "meter" in kinds:
        for h in hubs:
            t = trs.get(h.transformer_id) if h.transformer_id else None
            for m in meters.get(h.hub_id, []):
                if not m.active:
                    continue
                lat = m.lat if m.lat is not None else (t.lat if t else None)
                lon = m.lon if m.lon is not None else (t.lon if t else None)
                g = point(lat, lon)
                if not g and not include_unlocated:
                    continue
                feats.append(
                    {
                        "type": "Feature",
                        "id": f"meter/{m.meter_id}",
                        "geometry": g,
                        "properties": {
                            "kind": "meter",
                            "meter_id": m.meter_id,
                            "hub_id": h.hub_id,
                            "tan_index": m.tan_index,
                            "role": m.role,
                            "substation_id": h.substation_id,
                            "bus": h.map_bus,
                            "feeder": h.map_feeder,
                            "phase": h.map_phase,
                            "transformer_id": h.transformer_id,
                            "section_id": h.section_id,
                            "location_source": "meter" if m.lat is not None else "transformer",
                            "last_seen_at": iso(m.last_seen_at),
                        },
                    }
                )
    return {
        "type": "FeatureCollection",
        "features": feats,
        "properties": {"generated_at": iso(utcnow()), "substation_id": substation_id},
    }


GRID_CSV_COLUMNS = [
    "substation_id",
    "bus",
    "feeder",
    "lateral",
    "section_id",
    "phase",
    "transformer_id",
    "transformer_lat",
    "transformer_lon",
    "transformer_topology",
    "hub_id",
    "hub_mode",
    "meter_id",
    "tan_index",
    "role",
    "active",
    "meter_lat",
    "meter_lon",
    "meter_account",
    "meter_address",
    "service_length_m",
    "last_seen_at",
]


def _csv(rows: Iterable[dict], columns: list[str]) -> str:
    """Every CSV export: text cells that a spreadsheet would run as a formula are neutralised
    (:func:`platform_api.core.csvsafe.write`)."""
    return csvsafe.write(columns, rows)


def gridmap_csv(s: Session, substation_id: str | None = None) -> str:
    """One row per meter with its whole path; the same columns the CSV import reads (no keys)."""
    hubs, subs, meters, trs, feeders, sections = _load(s, substation_id)
    rows = []
    for h in hubs:
        t = trs.get(h.transformer_id) if h.transformer_id else None
        sec = sections.get(h.section_id) if h.section_id else None
        for m in sorted(meters.get(h.hub_id, []), key=lambda m: m.tan_index if m.tan_index is not None else 999):
            rows.append(
                {
                    "substation_id": h.substation_id,
                    "bus": h.map_bus,
                    "feeder": h.map_feeder,
                    "lateral": sec.lateral if sec else None,
                    "section_id": h.section_id,
                    "phase": h.map_phase,
                    "transformer_id": h.transformer_id,
                    "transformer_lat": t.lat if t else None,
                    "transformer_lon": t.lon if t else None,
                    "transformer_topology": t.topology if t else None,
                    "hub_id": h.hub_id,
                    "hub_mode": h.mode,
                    "meter_id": m.meter_id,
                    "tan_index": m.tan_index,
                    "role": m.role,
                    "active": m.active,
                    "meter_lat": m.lat,
                    "meter_lon": m.lon,
                    "meter_account": m.account,
                    "meter_address": m.address,
                    "service_length_m": m.service_length_m,
                    "last_seen_at": iso(m.last_seen_at),
                }
            )
    return _csv(rows, GRID_CSV_COLUMNS)


HUB_CSV_COLUMNS = [
    "hub_id",
    "substation_id",
    "bus",
    "feeder",
    "phase",
    "section_id",
    "transformer_id",
    "mode",
    "status",
    "map_source",
    "own_meter_id",
    "meters",
    "last_seen_at",
    "last_report_at",
    "heard_feeder",
    "heard_phase",
    "heard_confidence",
]


def hubs_csv(s: Session, substation_id: str | None = None) -> str:
    hubs, _, meters, *_ = _load(s, substation_id)
    return _csv(
        (
            {
                "hub_id": h.hub_id,
                "substation_id": h.substation_id,
                "bus": h.map_bus,
                "feeder": h.map_feeder,
                "phase": h.map_phase,
                "section_id": h.section_id,
                "transformer_id": h.transformer_id,
                "mode": h.mode,
                "status": h.status,
                "map_source": h.map_source,
                "own_meter_id": h.own_meter_id,
                "meters": sum(1 for m in meters.get(h.hub_id, []) if m.active),
                "last_seen_at": iso(h.last_seen_at),
                "last_report_at": iso(h.last_report_at),
                "heard_feeder": h.heard_feeder,
                "heard_phase": h.heard_phase,
                "heard_confidence": h.heard_confidence,
            }
            for h in hubs
        ),
        HUB_CSV_COLUMNS,
    )


EVENT_CSV_COLUMNS = [
    "id",
    "substation_id",
    "type",
    "status",
    "confidence",
    "subject_type",
    "subject_id",
    "title",
    "occurred_at",
    "created_at",
    "updated_at",
    "observations",
    "evidence",
    "details",
]


def events_csv(s: Session, substation_id: str | None = None, limit: int = 100000) -> str:
    q = select(Event).order_by(Event.id).limit(limit)
    if substation_id:
        q = q.where(Event.substation_id == substation_id)
    return _csv(
        (
            {
                "id": e.id,
                "substation_id": e.substation_id,
                "type": e.type,
                "status": e.status,
                "confidence": round(e.confidence, 6),
                "subject_type": e.subject_type,
                "subject_id": e.subject_id,
                "title": e.title,
                "occurred_at": iso(e.occurred_at),
                "created_at": iso(e.created_at),
                "updated_at": iso(e.updated_at),
                "observations": e.observations,
                "evidence": " ".join(e.evidence or []),
                "details": json.dumps(e.details, separators=(",", ":")),
            }
            for e in s.scalars(q).all()
        ),
        EVENT_CSV_COLUMNS,
    )


HISTORY_CSV_COLUMNS = [
    "id",
    "at",
    "substation_id",
    "entity",
    "entity_id",
    "field",
    "old",
    "new",
    "cause",
    "event_id",
    "evidence",
]


def history_csv(s: Session, limit: int = 100000) -> str:
    return _csv(
        (
            {
                "id": h.id,
                "at": iso(h.at),
                "substation_id": h.substation_id,
                "entity": h.entity,
                "entity_id": h.entity_id,
                "field": h.field,
                "old": json.dumps(h.old),
                "new": json.dumps(h.new),
                "cause": h.cause,
                "event_id": h.event_id,
                "evidence": " ".join(h.evidence or []),
            }
            for h in s.scalars(select(History).order_by(History.id).limit(limit)).all()
        ),
        HISTORY_CSV_COLUMNS,
    )
