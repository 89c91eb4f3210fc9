"""Inventory and Grid Map helpers shared by ingest, inference, imports and the API."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import Feeder, Hub, Meter, Section, Substation, Transformer
from .clock import iso
from .context import Platform

PHASES = ("A", "B", "C")
MODES = {0: "hub", 1: "subordinate", 2: "proxy"}
RELATION_ROLES = {0: "subordinate", 1: "spare_hub", 2: "proxy_hub", 3: "subordinate_other_phase"}

Loc = tuple[str, int, int, str]  # substation, bus, feeder, phase
# where the Grid Map puts a hub: an import may give a feeder without bus, phase or substation
MapLoc = tuple[str | None, int | None, int, str | None]


def section_key(substation_id: str, feeder: int, lateral: int) -> str:
    return f"{substation_id}/f{feeder}/l{lateral}"


def ensure_substation(s: Session, pf: Platform | None, substation_id: str, source: str = "reports") -> Substation:
    if pf is not None and substation_id in pf.known_substations:
        return None  # type: ignore[return-value]
    sub = s.get(Substation, substation_id)
    if sub is None:
        sub = Substation(id=substation_id, source=source)
        s.add(sub)
        s.flush()
    if pf is not None:
        pf.known_substations.add(substation_id)
    return sub


def ensure_feeder(s: Session, substation_id: str, bus: int, feeder: int, source: str = "reports") -> Feeder:
    f = s.scalars(select(Feeder).where(Feeder.substation_id == substation_id, Feeder.feeder == feeder)).first()
    if f is None:
        f = Feeder(substation_id=substation_id, bus=bus, feeder=feeder, source=source)
        s.add(f)
        s.flush()
    return f


def map_loc(hub: Hub) -> MapLoc | None:
    if hub.map_feeder is None:
        return None
    return (hub.substation_id, hub.map_bus, hub.map_feeder, hub.map_phase)


def loc_dict(loc: MapLoc | None) -> dict | None:
    if loc is None:
        return None
    return {"substation_id": loc[0], "bus": loc[1], "feeder": loc[2], "phase": loc[3]}


def tan_meters(s: Session, hub_id: int, active_only: bool = False) -> list[Meter]:
    q = select(Meter).where(Meter.hub_id == hub_id)
    if active_only:
        q = q.where(Meter.active.is_(True))
    return list(s.scalars(q.order_by(Meter.tan_index)).all())


def meter_dict(m: Meter) -> dict:
    return {
        "meter_id": m.meter_id,
        "substation_id": m.substation_id,
        "hub_id": m.hub_id,
        "tan_index": m.tan_index,
        "role": m.role,
        "active": m.active,
        "lat": m.lat,
        "lon": m.lon,
        "paired_at": iso(m.paired_at),
        "unpaired_at": iso(m.unpaired_at),
        "unpair_reason": m.unpair_reason,
        "last_seen_at": iso(m.last_seen_at),
        "last_v_rms": m.last_v_rms,
        "last_i_rms": m.last_i_rms,
        "last_power_factor": m.last_power_factor,
        "account": m.account,
        "address": m.address,
        "service_length_m": m.service_length_m,
        "source": m.source,
    }


def hub_dict(hub: Hub, meters: list[Meter] | None = None) -> dict:
    d: dict[str, Any] = {
        "hub_id": hub.hub_id,
        "substation_id": hub.substation_id,
        "has_key": bool(hub.key_hex),
        "mode": hub.mode,
        "status": hub.status,
        "own_meter_id": hub.own_meter_id,
        "transformer_id": hub.transformer_id,
        "section_id": hub.section_id,
        "map": None
        if hub.map_feeder is None
        else {"bus": hub.map_bus, "feeder": hub.map_feeder, "phase": hub.map_phase, "source": hub.map_source},
        "heard": None
        if hub.heard_feeder is None
        else {
            "substation_id": hub.heard_substation,
            "bus": hub.heard_bus,
            "feeder": hub.heard_feeder,
            "phase": hub.heard_phase,
            "confidence": hub.heard_confidence,
        },
        "lat": hub.lat,
        "lon": hub.lon,
        "hw_version": hub.hw_version,
        "fw_version": hub.fw_version,
        "capabilities": hub.capabilities,
        "first_seen_at": iso(hub.first_seen_at),
        "last_seen_at": iso(hub.last_seen_at),
        "last_counter": hub.last_counter,
        "key_epoch": hub.key_epoch or 0,
        "has_next_key": bool(hub.next_key_hex),
        "previous_key_until": iso(hub.prev_key_until) if hub.prev_key_hex else None,
        "last_report_at": iso(hub.last_report_at),
        "last_report_slot": hub.last_report_slot,
        "candidate": None
        if hub.cand_feeder is None
        else {
            "substation_id": hub.cand_substation,
            "bus": hub.cand_bus,
            "feeder": hub.cand_feeder,
            "phase": hub.cand_phase,
            "confidence": hub.cand_confidence,
            "observations": hub.cand_observations,
            "since": iso(hub.cand_since),
            "event_id": hub.cand_event_id,
        },
        "updated_at": iso(hub.updated_at),
    }
    if meters is not None:
        d["tan"] = [meter_dict(m) for m in meters]
    return d


def transformer_dict(t: Transformer) -> dict:
    return {
        "transformer_id": t.id,
        "substation_id": t.substation_id,
        "section_id": t.section_id,
        "bus": t.bus,
        "feeder": t.feeder,
        "phases": t.phases,
        "name": t.name,
        "lat": t.lat,
        "lon": t.lon,
        "source": t.source,
    }


def section_dict(sec: Section) -> dict:
    return {
        "section_id": sec.id,
        "substation_id": sec.substation_id,
        "normal_feeder": sec.normal_feeder,
        "lateral": sec.lateral,
        "bus": sec.bus,
        "feeder": sec.feeder,
        "energized": sec.energized,
        "switched": sec.feeder != sec.normal_feeder,
        "updated_at": iso(sec.updated_at),
    }
