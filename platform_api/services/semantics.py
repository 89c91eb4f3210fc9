"""What each message kind means for the Inventory, the Grid Map and the events."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dsp.air import messages as M

from ..models import Hub, HubPolicy, Meter
from . import outage, reports
from .changes import bump_tan, change, record, upsert_event
from .context import Platform
from .decode import LOSS_REASONS
from .forwarding import enqueue_readings
from .inventory import MODES, RELATION_ROLES
from .provisioning import CapacityError, assign

ANOMALY = {1: "theft_suspicion", 2: "meter_order_change", 3: "meter_swap", 4: "geolocation_change"}


def _ts(sec: int) -> datetime:
    return datetime.fromtimestamp(sec, tz=UTC)


def scheduled_report(
    s: Session,
    pf: Platform,
    hub: Hub,
    header,
    msg: M.ScheduledReport,
    rep: reports.StoredReport | None,
    *,
    bundle_id: str,
    arrival: datetime,
    slot: int,
    sub: str,
    key_epoch: int,
) -> dict:
    rep = reports.store(
        s.connection(),
        pf,
        hub.hub_id,
        hub.tan_version or 0,
        header,
        msg,
        rep,
        slot=slot,
        arrival=arrival,
        sub=sub,
        key_epoch=key_epoch,
    )
    if hub.last_report_slot is None or rep.slot >= hub.last_report_slot:
        hub.last_report_slot = rep.slot
        hub.last_report_at = arrival
    if rep.complete and pf.forwarding and "readings" in pf.settings.forward:
        enqueue_readings(s, pf, hub, rep, sub)
    return rep.answer()


def provisioning_request(
    s: Session, pf: Platform, hub: Hub, msg: M.ProvisioningRequest, *, bundle_id: str, arrival: datetime, sub: str
) -> dict:
    kw: dict[str, Any] = dict(
        entity="hub", entity_id=hub.hub_id, cause="provisioning_request", evidence=[bundle_id], substation_id=sub
    )
    change(s, hub, "mode", MODES.get(msg.mode, f"mode{msg.mode}"), **kw)
    change(s, hub, "hw_version", msg.hw_version, **kw)
    change(s, hub, "fw_version", msg.fw_version, **kw)
    change(s, hub, "capabilities", msg.capabilities, **kw)
    change(s, hub, "own_meter_id", msg.meter_id, **kw)
    hub.provision_requested_at = arrival
    _pair(s, pf, hub, msg.meter_id, 0, "hub", bundle_id=bundle_id, arrival=arrival, sub=sub, announce=False)
    out: dict[str, Any] = {"provisioned": False}
    if pf.settings.auto_provision:
        has = s.scalars(select(HubPolicy.id).where(HubPolicy.hub_id == hub.hub_id).limit(1)).first()
        if has is None:
            if hub.substation_id is None:
                hub.substation_id = sub
            try:
                (pol,) = assign(s, pf, [hub], substation_id=sub, reason=f"provisioning request {bundle_id}")
            except CapacityError as e:
                upsert_event(
                    s,
                    pf,
                    type="provisioning_failed",
                    key=f"provisioning:{hub.hub_id}",
                    confidence=1.0,
                    title=f"hub {hub.hub_id} cannot be provisioned: {e}",
                    details={"hub_id": hub.hub_id},
                    evidence=[bundle_id],
                    subject_type="hub",
                    subject_id=hub.hub_id,
                    substation_id=sub,
                    occurred_at=arrival,
                    status="open",
                )
                return out
            s.flush()
            upsert_event(
                s,
                pf,
                type="hub_provisioned",
                key=f"provisioned:{hub.hub_id}:{pol.version}",
                confidence=1.0,
                title=f"hub {hub.hub_id} provisioned: channel {pol.channel}, slot offset {pol.slot_offset}",
                details={
                    "hub_id": hub.hub_id,
                    "channel": pol.channel,
                    "slot_offset": pol.slot_offset,
                    "slots_per_report": pol.slots_per_report,
                    "period_slots": pol.period_slots,
                },
                evidence=[bundle_id],
                subject_type="hub",
                subject_id=hub.hub_id,
                substation_id=sub,
                occurred_at=arrival,
                status="applied",
            )
            out = {
                "provisioned": True,
                "policy_version": pol.version,
                "channel": pol.channel,
                "slot_offset": pol.slot_offset,
            }
    return out


def _pair(
    s: Session,
    pf: Platform,
    hub: Hub,
    meter_id: int,
    tan_index: int,
    role: str,
    *,
    bundle_id: str,
    arrival: datetime,
    sub: str,
    announce: bool = True,
) -> dict:
    m = s.get(Meter, meter_id)
    kw: dict[str, Any] = dict(
        entity="meter", entity_id=meter_id, cause="pairing", evidence=[bundle_id], substation_id=sub
    )
    etype = "tan_member_added"
    prev_hub = None
    if m is None:
        m = Meter(
            meter_id=meter_id,
            substation_id=sub,
            hub_id=hub.hub_id,
            tan_index=tan_index,
            role=role,
            active=True,
            paired_at=arrival,
            source="pairing",
            created_at=arrival,
        )
        s.add(m)
        record(
            s,
            entity="meter",
            entity_id=meter_id,
            field="hub_id",
            old=None,
            new=hub.hub_id,
            cause="pairing",
            evidence=[bundle_id],
            substation_id=sub,
        )
    else:
        if m.hub_id == hub.hub_id and m.active and m.tan_index == tan_index and m.role == role:
            return {"meter_id": meter_id, "change": None}
        if m.hub_id is not None and m.hub_id != hub.hub_id and m.active:
            etype = "meter_moved_tan"
            prev_hub = m.hub_id
        change(s, m, "hub_id", hub.hub_id, **kw)
        change(s, m, "tan_index", tan_index, **kw)
        change(s, m, "role", role, **kw)
        change(s, m, "active", True, **kw)
        change(s, m, "substation_id", sub, **kw)
        m.paired_at = arrival
        m.unpaired_at = None
        m.unpair_reason = None
    bump_tan(s, hub.hub_id, prev_hub)
    if role in ("spare_hub", "proxy_hub"):
        other = s.scalars(select(Hub).where(Hub.own_meter_id == meter_id)).first()
        if other is not None and other.hub_id != hub.hub_id:
            change(
                s,
                other,
                "mode",
                "subordinate" if role == "spare_hub" else "proxy",
                entity="hub",
                entity_id=other.hub_id,
                cause="pairing",
                evidence=[bundle_id],
                substation_id=sub,
            )
    if announce:
        title = (
            f"meter {meter_id} moved from the TAN of hub {prev_hub} to hub {hub.hub_id}"
            if prev_hub is not None
            else f"meter {meter_id} joined the TAN of hub {hub.hub_id} as {role}"
        )
        upsert_event(
            s,
            pf,
            type=etype,
            key=f"tan:{meter_id}:{bundle_id}",
            confidence=1.0,
            title=title,
            details={
                "meter_id": meter_id,
                "hub_id": hub.hub_id,
                "tan_index": tan_index,
                "role": role,
                "previous_hub_id": prev_hub,
                "transformer_id": hub.transformer_id,
            },
            evidence=[bundle_id],
            subject_type="meter",
            subject_id=meter_id,
            substation_id=sub,
            occurred_at=arrival,
            status="applied",
        )
    return {"meter_id": meter_id, "change": etype, "previous_hub_id": prev_hub}


def pairing(s: Session, pf: Platform, hub: Hub, msg: M.Pairing, *, bundle_id: str, arrival: datetime, sub: str) -> dict:
    role = RELATION_ROLES.get(msg.relation, f"relation{msg.relation}")
    return _pair(s, pf, hub, msg.meter_id, msg.tan_index, role, bundle_id=bundle_id, arrival=arrival, sub=sub)


def pairing_loss(
    s: Session, pf: Platform, hub: Hub, msg: M.PairingLoss, *, bundle_id: str, arrival: datetime, sub: str
) -> dict:
    m = s.get(Meter, msg.meter_id)
    reason = LOSS_REASONS.get(msg.reason, f"reason{msg.reason}")
    if m is None or m.hub_id != hub.hub_id or not m.active:
        return {"meter_id": msg.meter_id, "change": None, "note": "not an active member of this TAN"}
    kw: dict[str, Any] = dict(
        entity="meter", entity_id=m.meter_id, cause="pairing_loss", evidence=[bundle_id], substation_id=sub
    )
    change(s, m, "active", False, **kw)
    change(s, m, "unpair_reason", reason, **kw)
    bump_tan(s, hub.hub_id)
    m.unpaired_at = arrival
    upsert_event(
        s,
        pf,
        type="tan_member_lost",
        key=f"tan:{m.meter_id}:{bundle_id}",
        confidence=1.0,
        title=f"meter {m.meter_id} left the TAN of hub {hub.hub_id} ({reason})",
        details={"meter_id": m.meter_id, "hub_id": hub.hub_id, "tan_index": msg.tan_index, "reason": reason},
        evidence=[bundle_id],
        subject_type="meter",
        subject_id=m.meter_id,
        substation_id=sub,
        occurred_at=arrival,
        status="applied",
    )
    return {"meter_id": m.meter_id, "change": "tan_member_lost"}


def alert(s: Session, pf: Platform, hub: Hub, msg: M.Alert, *, bundle_id: str, arrival: datetime, sub: str) -> dict:
    t = _ts(msg.event_time_s)
    if msg.alert_type == M.AlertType.OUTAGE:
        outage.outage_alert(s, pf, hub, bundle_id, t)
    elif msg.alert_type == M.AlertType.RESTORATION:
        outage.restoration_alert(s, pf, hub, bundle_id, t, msg.duration_s)
    elif msg.alert_type == M.AlertType.DISTRESS:
        upsert_event(
            s,
            pf,
            type="tan_distress",
            key=f"distress:{hub.hub_id}",
            confidence=1.0,
            title=f"hub {hub.hub_id} could not partition its TAN (distress alert)",
            details={"hub_id": hub.hub_id, "detail": msg.detail, "event_time": t.isoformat()},
            evidence=[bundle_id],
            subject_type="hub",
            subject_id=hub.hub_id,
            substation_id=sub,
            occurred_at=t,
            status="open",
        )
    return {}


def tan_anomaly(
    s: Session, pf: Platform, hub: Hub, msg: M.TanAnomaly, *, bundle_id: str, arrival: datetime, sub: str
) -> dict:
    name = ANOMALY.get(msg.anomaly_type, f"anomaly{msg.anomaly_type}")
    m = s.scalars(
        select(Meter).where(Meter.hub_id == hub.hub_id, Meter.tan_index == msg.tan_index, Meter.active.is_(True))
    ).first()
    upsert_event(
        s,
        pf,
        type="tan_anomaly",
        key=f"anomaly:{hub.hub_id}:{msg.tan_index}:{name}",
        confidence=msg.confidence,
        title=f"{name.replace('_', ' ')} reported by hub {hub.hub_id} for TAN index {msg.tan_index}",
        details={
            "hub_id": hub.hub_id,
            "anomaly": name,
            "tan_index": msg.tan_index,
            "meter_id": m.meter_id if m else None,
            "unaccounted_w": msg.unaccounted_w,
            "time": _ts(msg.time_s).isoformat(),
        },
        evidence=[bundle_id],
        subject_type="hub",
        subject_id=hub.hub_id,
        substation_id=sub,
        occurred_at=_ts(msg.time_s),
        status="open",
    )
    return {}
