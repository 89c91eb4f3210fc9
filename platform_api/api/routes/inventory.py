"""The Inventory (hubs, their TANs' meters) and the history of every change."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from sqlalchemy import func, select

from ...models import BundleRow, History, Hub, Meter, Substation
from ...schemas.inventory import HistoryOut, HubOut, HubPut, KeyStateOut, MeterOut, NextKeyPut, SubstationOut
from ...services import antireplay
from ...services.changes import change, record
from ...services.clock import iso, utcnow
from ...services.inventory import ensure_feeder, ensure_substation, hub_dict, meter_dict, tan_meters
from ...services.redact import shown
from ...services.redecode import redecode_unknown_hub
from ..deps import DB, PF, Admin, Limit, Offset, SubQ, not_found, require_admin
from ..strict_route import StrictJSONRoute

router = APIRouter(route_class=StrictJSONRoute, tags=["inventory"])
HubId = Annotated[int, Path(ge=0, le=2**32 - 1, description="hub id (uint32, in clear in every frame)")]
MeterId = Annotated[int, Path(ge=0, le=2**32 - 1)]


@router.get("/api/v1/hubs", response_model=list[HubOut], summary="List Remote Hubs")
def list_hubs(
    s: DB,
    admin: Admin,
    substation_id: SubQ = None,
    feeder: Annotated[int | None, Query(ge=0, le=100_000)] = None,
    phase: Annotated[Literal["A", "B", "C"] | None, Query()] = None,
    status: Annotated[Literal["inventory", "new", "active", "silent"] | None, Query()] = None,
    on_map: bool | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[dict]:
    """Hubs with where the Grid Map puts them (`map`), where they were last heard (`heard`) and any
    evidence for another place not yet acted on (`candidate`). Keys are never returned."""
    q = select(Hub)
    if substation_id:
        q = q.where(Hub.substation_id == substation_id)
    if feeder is not None:
        q = q.where(Hub.map_feeder == feeder)
    if phase:
        q = q.where(Hub.map_phase == phase)
    if status:
        q = q.where(Hub.status == status)
    if on_map is not None:
        q = q.where(Hub.map_feeder.is_not(None) if on_map else Hub.map_feeder.is_(None))
    return shown([hub_dict(h) for h in s.scalars(q.order_by(Hub.hub_id).offset(offset).limit(limit)).all()], admin)


@router.get(
    "/api/v1/hubs/{hub_id}",
    response_model=HubOut,
    summary="One hub with its TAN",
    responses={404: {"description": "unknown hub"}},
)
def get_hub(s: DB, admin: Admin, hub_id: HubId) -> dict:
    h = s.get(Hub, hub_id)
    if h is None:
        raise not_found(f"hub {hub_id}")
    return shown(hub_dict(h, tan_meters(s, hub_id)), admin)


@router.put(
    "/api/v1/hubs/{hub_id}",
    response_model=HubOut,
    dependencies=[Depends(require_admin)],
    summary="Enter or correct a hub (operator)",
    responses={401: {"description": "admin token required"}},
)
def put_hub(pf: PF, hub_id: HubId, body: HubPut) -> dict:
    """Creates the hub if needed. Every changed attribute goes to the history with cause
    `operator`; a location entered here is the Grid Map's until inference finds otherwise."""
    with pf.db.write() as s:
        h = s.get(Hub, hub_id)
        ev = ["operator"]
        if h is None:
            h = Hub(hub_id=hub_id, status="inventory", created_at=utcnow(), updated_at=utcnow(), cand_observations=0)
            s.add(h)
            record(
                s,
                entity="hub",
                entity_id=hub_id,
                field="created",
                old=None,
                new={"source": "operator"},
                cause="operator",
                evidence=ev,
                substation_id=body.substation_id,
            )
        sub = body.substation_id or h.substation_id or pf.settings.substation_id
        kw: dict[str, Any] = dict(entity="hub", entity_id=hub_id, cause="operator", evidence=ev, substation_id=sub)
        if body.key_hex:
            had = h.key_hex
            try:
                replaced = antireplay.replace_current(h, body.key_hex)
            except antireplay.KeyReuse as e:
                raise HTTPException(status_code=409, detail=str(e)) from None
            if replaced:
                record(s, field="key", old="set" if had else None, new="changed" if had else "set", **kw)
        ensure_substation(s, pf, sub, source="operator")
        change(s, h, "substation_id", sub, **kw)
        for f in ("mode", "lat", "lon", "transformer_id"):
            v = getattr(body, f)
            if v is not None:
                change(s, h, f, v, **kw)
        if body.feeder is not None or body.phase is not None:
            feeder = body.feeder if body.feeder is not None else h.map_feeder
            phase = body.phase or h.map_phase
            bus = body.bus if body.bus is not None else (h.map_bus or 0)
            if feeder is not None:
                ensure_feeder(s, sub, bus, feeder, source="operator")
                change(s, h, "map_bus", bus, **kw)
                change(s, h, "map_feeder", feeder, **kw)
                change(s, h, "map_phase", phase, **kw)
                change(s, h, "map_source", "operator", **kw)
        h.updated_at = utcnow()
        s.flush()
        out = hub_dict(h, tan_meters(s, hub_id))
    if body.key_hex:  # frames that arrived before this key are decoded now
        redecode_unknown_hub(pf, [hub_id])
    return out


def _key_state(h: Hub) -> dict:
    return {
        "hub_id": h.hub_id,
        "key_epoch": h.key_epoch or 0,
        "has_key": bool(h.key_hex),
        "has_next_key": bool(h.next_key_hex),
        "previous_key_until": iso(h.prev_key_until) if h.prev_key_hex else None,
        "last_counter": h.last_counter,
    }


@router.put(
    "/api/v1/hubs/{hub_id}/next-key",
    response_model=KeyStateOut,
    dependencies=[Depends(require_admin)],
    summary="Install a hub's next key (key rotation, operator)",
    responses={
        401: {"description": "admin token required"},
        404: {"description": "unknown hub"},
        409: {"description": "the hub has no current key, or has used this key before"},
    },
)
def put_next_key(pf: PF, hub_id: HubId, body: NextKeyPut) -> dict:
    """The key the hub will switch to (docs/air-interface.md section 13). Frames that do not verify
    under the current key are tried under it; the first that verifies makes it current (key epoch
    + 1, counters from 0) and keeps the old key for `GLA_KEY_GRACE_S` for late copies. Installing
    again before the hub switches replaces the pending key; a key the hub used before is refused."""
    with pf.db.write() as s:
        h = s.get(Hub, hub_id, with_for_update=True)
        if h is None:
            raise not_found(f"hub {hub_id}")
        if not h.key_hex:
            raise HTTPException(
                status_code=409, detail=f"hub {hub_id} has no current key: set it with PUT /api/v1/hubs/{hub_id}"
            )
        try:
            antireplay.install_next(h, body.key_hex)
        except antireplay.KeyReuse as e:
            raise HTTPException(status_code=409, detail=str(e)) from None
        record(
            s,
            entity="hub",
            entity_id=hub_id,
            field="next_key",
            old=None,
            new={"installed_for_epoch": (h.key_epoch or 0) + 1},
            cause="operator",
            evidence=["operator"],
            substation_id=h.substation_id,
        )
        h.updated_at = utcnow()
        return _key_state(h)


@router.delete(
    "/api/v1/hubs/{hub_id}/next-key",
    response_model=KeyStateOut,
    dependencies=[Depends(require_admin)],
    summary="Withdraw a hub's next key before the hub uses it (operator)",
    responses={401: {"description": "admin token required"}, 404: {"description": "unknown hub"}},
)
def delete_next_key(pf: PF, hub_id: HubId) -> dict:
    """Frames under the withdrawn key are then rejected (`auth`). Idempotent."""
    with pf.db.write() as s:
        h = s.get(Hub, hub_id, with_for_update=True)
        if h is None:
            raise not_found(f"hub {hub_id}")
        if h.next_key_hex:
            h.next_key_hex = None
            record(
                s,
                entity="hub",
                entity_id=hub_id,
                field="next_key",
                old={"installed_for_epoch": (h.key_epoch or 0) + 1},
                new=None,
                cause="operator",
                evidence=["operator"],
                substation_id=h.substation_id,
            )
            h.updated_at = utcnow()
        return _key_state(h)


@router.get(
    "/api/v1/hubs/{hub_id}/history",
    response_model=list[HistoryOut],
    summary="History of one hub",
    responses={404: {"description": "unknown hub"}},
)
def hub_history(s: DB, admin: Admin, hub_id: HubId, limit: Limit = 100, offset: Offset = 0) -> list[dict]:
    if s.get(Hub, hub_id) is None:
        raise not_found(f"hub {hub_id}")
    return shown(_history(s, "hub", str(hub_id), None, limit, offset), admin)


@router.get("/api/v1/meters", response_model=list[MeterOut], summary="Meters and their TAN membership")
def list_meters(
    s: DB,
    admin: Admin,
    hub_id: Annotated[int | None, Query(ge=0, le=2**32 - 1)] = None,
    active: bool | None = None,
    substation_id: SubQ = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[dict]:
    q = select(Meter)
    if hub_id is not None:
        q = q.where(Meter.hub_id == hub_id)
    if active is not None:
        q = q.where(Meter.active.is_(active))
    if substation_id:
        q = q.where(Meter.substation_id == substation_id)
    rows = s.scalars(q.order_by(Meter.meter_id).offset(offset).limit(limit)).all()
    return shown([meter_dict(m) for m in rows], admin)


@router.get(
    "/api/v1/meters/{meter_id}",
    response_model=MeterOut,
    summary="One meter",
    responses={404: {"description": "unknown meter"}},
)
def get_meter(s: DB, admin: Admin, meter_id: MeterId) -> dict:
    m = s.get(Meter, meter_id)
    if m is None:
        raise not_found(f"meter {meter_id}")
    return shown(meter_dict(m), admin)


@router.get(
    "/api/v1/meters/{meter_id}/history",
    response_model=list[HistoryOut],
    summary="History of one meter",
    responses={404: {"description": "unknown meter"}},
)
def meter_history(s: DB, admin: Admin, meter_id: MeterId, limit: Limit = 100, offset: Offset = 0) -> list[dict]:
    if s.get(Meter, meter_id) is None:
        raise not_found(f"meter {meter_id}")
    return shown(_history(s, "meter", str(meter_id), None, limit, offset), admin)


def _history(s, entity, entity_id, cause, limit, offset, substation_id=None) -> list[dict]:
    q = select(History)
    if entity:
        q = q.where(History.entity == entity)
    if entity_id:
        q = q.where(History.entity_id == entity_id)
    if cause:
        q = q.where(History.cause == cause)
    if substation_id:
        q = q.where(History.substation_id == substation_id)
    rows = s.scalars(q.order_by(History.id.desc()).offset(offset).limit(limit)).all()
    return [
        {
            "id": h.id,
            "at": iso(h.at),
            "substation_id": h.substation_id,
            "entity": h.entity,
            "entity_id": h.entity_id,
            "field": h.field,
            "old": h.old,
            "new": h.new,
            "cause": h.cause,
            "event_id": h.event_id,
            "evidence": h.evidence or [],
        }
        for h in rows
    ]


@router.get("/api/v1/history", response_model=list[HistoryOut], summary="The change history, newest first")
def history(
    s: DB,
    admin: Admin,
    entity: Annotated[
        Literal["hub", "meter", "transformer", "section", "feeder", "substation", "policy", "plan"] | None, Query()
    ] = None,
    entity_id: Annotated[str | None, Query(max_length=96, pattern=r"^[A-Za-z0-9._:/@-]+$")] = None,
    cause: Annotated[
        Literal[
            "import",
            "inference",
            "pairing",
            "pairing_loss",
            "provisioning_request",
            "provisioning",
            "operator",
            "key_rotation",
            "forward",
        ]
        | None,
        Query(),
    ] = None,
    substation_id: SubQ = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[dict]:
    """Every change to the Inventory, the Grid Map and provisioning, with its time, its cause, the
    event that decided it and its evidence (bundle ids, `import:<id>`, `forward:<origin>:<item>`)."""
    return shown(_history(s, entity, entity_id, cause, limit, offset, substation_id), admin)


@router.get(
    "/api/v1/substations",
    response_model=list[SubstationOut],
    tags=["gridmap"],
    summary="Substations known to this platform (all of them at the concentrator)",
)
def substations(s: DB) -> list[dict]:
    out = []
    for x in s.scalars(select(Substation).order_by(Substation.id)).all():
        n = s.scalar(select(func.count()).select_from(Hub).where(Hub.substation_id == x.id)) or 0
        m = (
            s.scalar(
                select(func.count()).select_from(Hub).where(Hub.substation_id == x.id, Hub.map_feeder.is_not(None))
            )
            or 0
        )
        t = s.scalar(select(func.max(BundleRow.arrival_utc)).where(BundleRow.substation_id == x.id))
        out.append(
            {
                "substation_id": x.id,
                "name": x.name,
                "lat": x.lat,
                "lon": x.lon,
                "source": x.source,
                "hubs": n,
                "hubs_on_map": m,
                "data_time": iso(t),
                "last_contact_at": iso(x.last_contact_at),
            }
        )
    return out
