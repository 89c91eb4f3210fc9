"""Concentrator mode: merge what substation platforms forward into the utility-wide map.

Each item is applied once (``received_forwards`` keys on origin + item id). Map snapshots upsert
the hub (without its key), its TAN meters, transformer and feeder section; when two substations
report the same hub (a section switched between substations) the newer snapshot wins and the move
is kept in the history with the forward as evidence. Events are stored with their origin
substation and id and re-published here (SSE, webhooks), so data-centre applications subscribe
once for the whole utility.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from ..models import Event, Hub, Meter, Reading, ReceivedForward, Section, Substation, Transformer
from .changes import bump_tan, change, publish, record
from .clock import utcnow
from .context import Platform
from .inventory import ensure_feeder


def _dt(v: str | None) -> datetime | None:
    return None if not v else datetime.fromisoformat(v.replace("Z", "+00:00"))


def merge(s: Session, pf: Platform, origin: str, substation_id: str, items: list[dict]) -> dict:
    sub = s.get(Substation, substation_id)
    if sub is None:
        sub = Substation(id=substation_id, source="forward")
        s.add(sub)
    sub.last_contact_at = utcnow()
    applied = dup = 0
    for it in items:
        key = (origin, int(it["id"]))
        if s.get(ReceivedForward, key) is not None:
            dup += 1
            continue
        s.add(ReceivedForward(origin=origin, item_id=int(it["id"]), at=utcnow()))
        ev = f"forward:{origin}:{it['id']}"
        p = it["payload"]
        if it["type"] == "map":
            _merge_map(s, substation_id, p, ev)
        elif it["type"] == "event":
            _merge_event(s, pf, substation_id, p)
        elif it["type"] == "readings":
            rows = [
                {
                    "report_id": 0,
                    "substation_id": substation_id,
                    "hub_id": p["hub_id"],
                    "measurement_time_s": p["measurement_time_s"],
                    "tan_index": r["tan_index"],
                    "meter_id": r.get("meter_id"),
                    "v_rms": r["v_rms"],
                    "i_rms": r["i_rms"],
                    "power_factor": r["power_factor"],
                }
                for r in p.get("readings", [])
            ]
            if rows:
                s.execute(insert(Reading), rows)
        applied += 1
    return {"applied": applied, "duplicates": dup}


def _merge_map(s: Session, sub: str, p: dict, evidence: str) -> None:
    h = p["hub"]
    changed_at = _dt(p.get("changed_at")) or utcnow()
    kw: dict[str, Any] = dict(cause="forward", evidence=[evidence], substation_id=sub)
    sec = p.get("section")
    if sec:
        sec_row = s.get(Section, sec["section_id"])
        if sec_row is None:
            sec_row = Section(
                id=sec["section_id"],
                substation_id=sec["substation_id"],
                normal_feeder=sec["normal_feeder"],
                lateral=sec["lateral"],
                bus=sec["bus"],
                feeder=sec["feeder"],
                energized=sec["energized"],
            )
            s.add(sec_row)
        else:
            for f in ("feeder", "bus", "energized"):
                change(s, sec_row, f, sec[f], entity="section", entity_id=sec_row.id, **kw)
    tr = p.get("transformer")
    if tr:
        tr_row = s.get(Transformer, tr["transformer_id"])
        if tr_row is None:
            tr_row = Transformer(id=tr["transformer_id"], source="forward")
            s.add(tr_row)
        for f in ("substation_id", "section_id", "bus", "feeder", "phases", "name", "lat", "lon"):
            change(s, tr_row, f, tr[f], entity="transformer", entity_id=tr_row.id, **kw)
    hub = s.get(Hub, h["hub_id"])
    if hub is None:
        hub = Hub(hub_id=h["hub_id"], status=h.get("status") or "active", created_at=utcnow())
        s.add(hub)
        record(s, entity="hub", entity_id=h["hub_id"], field="created", old=None, new={"substation_id": sub}, **kw)
    elif hub.substation_id not in (None, sub) and hub.updated_at and hub.updated_at > changed_at:
        return  # an older snapshot from the substation the hub has left
    m = h.get("map") or {}
    for f, v in (
        ("substation_id", sub),
        ("mode", h.get("mode")),
        ("transformer_id", h.get("transformer_id")),
        ("section_id", h.get("section_id")),
        ("own_meter_id", h.get("own_meter_id")),
        ("map_bus", m.get("bus")),
        ("map_feeder", m.get("feeder")),
        ("map_phase", m.get("phase")),
        ("map_source", m.get("source")),
        ("lat", h.get("lat")),
        ("lon", h.get("lon")),
    ):
        change(s, hub, f, v, entity="hub", entity_id=hub.hub_id, **kw)
    hub.status = h.get("status") or hub.status
    hub.last_seen_at = _dt(h.get("last_seen_at")) or hub.last_seen_at
    hub.last_report_at = _dt(h.get("last_report_at")) or hub.last_report_at
    heard = h.get("heard") or {}
    hub.heard_substation, hub.heard_bus = heard.get("substation_id"), heard.get("bus")
    hub.heard_feeder, hub.heard_phase, hub.heard_confidence = (
        heard.get("feeder"),
        heard.get("phase"),
        heard.get("confidence"),
    )
    hub.updated_at = changed_at
    if m.get("feeder") is not None:
        ensure_feeder(s, sub, m.get("bus") or 0, m["feeder"], source="forward")
    s.flush()
    bump_tan(
        s,
        hub.hub_id,
        *[
            x.hub_id
            for x in s.scalars(
                select(Meter).where(Meter.meter_id.in_([md["meter_id"] for md in h.get("tan", [])] or [-1]))
            ).all()
        ],
    )
    for md in h.get("tan", []):
        mt = s.get(Meter, md["meter_id"])
        if mt is None:
            mt = Meter(meter_id=md["meter_id"], source="forward", created_at=utcnow())
            s.add(mt)
        for f in ("hub_id", "tan_index", "role", "active", "lat", "lon"):
            change(s, mt, f, md[f], entity="meter", entity_id=mt.meter_id, **kw)
        mt.substation_id = sub
        mt.last_seen_at = _dt(md.get("last_seen_at")) or mt.last_seen_at
        mt.last_v_rms, mt.last_i_rms, mt.last_power_factor = (
            md.get("last_v_rms"),
            md.get("last_i_rms"),
            md.get("last_power_factor"),
        )


def _merge_event(s: Session, pf: Platform, sub: str, p: dict) -> None:
    e = p["event"]
    ev = s.scalars(select(Event).where(Event.origin_substation == sub, Event.origin_event_id == e["id"])).first()
    now = utcnow()
    if ev is None:
        ev = Event(origin_substation=sub, origin_event_id=e["id"], created_at=now, published=True)
        s.add(ev)
    ev.substation_id = e.get("substation_id") or sub
    ev.type, ev.status, ev.confidence = e["type"], e["status"], e["confidence"]
    ev.key = f"{sub}:{e.get('key')}"
    ev.subject_type, ev.subject_id = e.get("subject_type"), e.get("subject_id")
    ev.title, ev.details, ev.evidence = e["title"], e.get("details") or {}, e.get("evidence") or []
    ev.observations = e.get("observations") or 1
    ev.occurred_at = _dt(e.get("occurred_at"))
    ev.updated_at = now
    publish(s, pf, ev, p.get("action", "updated"))
