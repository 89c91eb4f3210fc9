"""The full path of ingest: every decision, with the ORM session (the hub row locked), for any
bundle the fast path (:mod:`.fastpath`) declines. Stores the bundle's rows with the same
statements as the fast path (:mod:`.ingest_rows`, :mod:`.reports`) and applies what the message
means (:mod:`.semantics`, :mod:`.outage`, :mod:`.inference`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert
from sqlalchemy.orm import Session

from dsp.air import messages as M
from dsp.air import params as P
from receiver.contracts.bundle import Bundle

from ..models import Hub, Rejection
from . import antireplay, inference, outage, reports, semantics
from . import ingest_rows as rows
from .changes import record, upsert_event
from .clock import aware, slot_of, utcnow
from .context import Platform
from .decode import KIND_NAMES, Reject, check_frame, fields_of
from .inventory import ensure_substation

_REJECTION_INSERT = insert(cast(Table, Rejection.__table__))


def process(s: Session, pf: Platform, bundle: Bundle, text: str, digest: str) -> dict:
    """Store and decode a new bundle in the session's transaction; returns the answer."""
    sub = bundle.substation_id
    arrival = aware(bundle.copies[0].arrival_utc)
    slot = bundle.slot if bundle.slot is not None else slot_of(arrival)
    loc, conf = rows.location(bundle)
    ensure_substation(s, pf, sub)
    row = rows.bundle_row(bundle, text, digest, arrival, slot)
    body: dict = {
        "bundle_id": bundle.bundle_id,
        "status": "no_frame",
        "reason": None,
        "detail": None,
        "hub_id": None,
        "counter": None,
        "kind": None,
        "message": None,
        "report": None,
        "effects": None,
        "events": [],
    }
    if not bundle.frame_hex:
        body["detail"] = "no copy passed CRC: stored for channel statistics only"
    else:
        frame = bytes.fromhex(bundle.frame_hex)
        hub_id = int.from_bytes(frame[1:5], "big")
        counter = int.from_bytes(frame[5:8], "big")
        kind = KIND_NAMES.get((frame[0] >> 2) & 0xF)
        row.update(hub_id=hub_id, counter=counter, kind=kind)
        body.update(hub_id=hub_id, counter=counter, kind=kind)
        try:
            _decode(s, pf, bundle, row, body, frame, arrival, slot, loc, conf)
        except Reject as r:
            row.update(status="rejected", reason=r.reason)
            body.update(status="rejected", reason=r.reason, detail=r.detail)
            s.connection().execute(
                _REJECTION_INSERT,
                {
                    "bundle_id": bundle.bundle_id,
                    "receiver_id": bundle.receiver_id,
                    "substation_id": sub,
                    "hub_id": hub_id,
                    "counter": counter,
                    "kind": kind,
                    "reason": r.reason,
                    "detail": r.detail[:300],
                    "at": utcnow(),
                },
            )
    body["events"] = sorted(set(s.info.pop("events", [])))
    row["response"] = body
    rows.insert_bundle(s.connection(), row)
    return body


def _decode(
    s: Session,
    pf: Platform,
    bundle: Bundle,
    row: dict,
    body: dict,
    frame: bytes,
    arrival: datetime,
    slot: int,
    loc,
    conf: float,
) -> None:
    h = check_frame(frame)
    hub = s.get(Hub, h.hub_id, with_for_update=True)
    if hub is None or not hub.key_hex:
        raise Reject("unknown_hub", f"hub {h.hub_id} has no key in the Inventory")
    now = utcnow()
    op = antireplay.open_frame(hub, frame, h, now)
    msg = op.msg
    conn = s.connection()
    verdict = antireplay.classify(op.highest, op.bitmap, h.counter)
    # a clear bit may still have a message: one accepted before the window was kept (migration 0003)
    prior = rows.prior_message(conn, h.hub_id, op.epoch, h.counter) if verdict != "new" else None
    if prior is not None and prior[1] == bundle.frame_hex:
        # a copy of an accepted message (another receiver, an alert repeat): counted, not re-applied
        row.update(status="duplicate", message_id=prior[0])
        body.update(status="duplicate", message=prior[2], detail=rows.count_duplicate(conn, prior))
        return
    if prior is not None or verdict == "seen":
        raise Reject("replay", f"counter {h.counter} of hub {h.hub_id} was already used by another frame")
    if verdict == "old":
        raise Reject(
            "replay",
            f"counter {h.counter} is not above the last accepted ({op.highest}) and outside the "
            f"{antireplay.WINDOW}-counter window (key epoch {op.epoch})",
        )
    late = verdict == "late"
    if op.role == "next":
        old_epoch = hub.key_epoch
        antireplay.promote(hub, now, pf.settings.key_grace_s)
        record(
            s,
            entity="hub",
            entity_id=hub.hub_id,
            field="key_epoch",
            old=old_epoch,
            new=hub.key_epoch,
            cause="key_rotation",
            evidence=[bundle.bundle_id],
            substation_id=hub.substation_id or bundle.substation_id,
        )
    rep = None
    if isinstance(msg, M.ScheduledReport):
        rep = reports.segment_of(conn, hub.hub_id, op.epoch, h, msg)
    fields = fields_of(msg)
    mid = rows.insert_message(
        conn, bundle, h, KIND_NAMES[h.kind], arrival, slot, fields, loc, conf, late, key_epoch=op.epoch
    )
    row.update(status="accepted", message_id=mid)
    detail = "accepted late (inside the replay window)" if late else None
    if op.role == "previous":
        detail = f"accepted under the previous key (epoch {op.epoch}, in its grace)" + (", late" if late else "")
    elif op.role == "next":
        detail = f"first frame under the next key: key epoch {op.epoch} is now current"
    body.update(status="accepted", message=fields, detail=detail)
    antireplay.accepted(hub, op, h.counter)
    if h.counter >= P.COUNTER_LOW_WATER and op.role != "previous" and not hub.next_key_hex:
        upsert_event(
            s,
            pf,
            type="key_exhausting",
            key=f"key_exhausting:{hub.hub_id}:{hub.key_epoch}",
            confidence=1.0,
            title=f"hub {hub.hub_id} has {P.COUNTER_MAX - h.counter} counters left under its key: install its next key",
            details={"hub_id": hub.hub_id, "key_epoch": hub.key_epoch, "counter": h.counter},
            evidence=[bundle.bundle_id],
            subject_type="hub",
            subject_id=hub.hub_id,
            substation_id=bundle.substation_id,
            occurred_at=arrival,
            status="open",
        )
    if hub.first_seen_at is None:
        hub.first_seen_at = arrival
    if hub.last_seen_at is None or arrival >= hub.last_seen_at:
        hub.last_seen_at = arrival
        hub.last_bundle_id = bundle.bundle_id
    if hub.substation_id is None:
        hub.substation_id = bundle.substation_id
    if hub.status == "inventory":
        hub.status = "active" if hub.map_feeder is not None else "new"
    hub.updated_at = arrival
    kw: dict[str, Any] = dict(bundle_id=bundle.bundle_id, arrival=arrival, sub=bundle.substation_id)
    outage.heard(s, pf, hub, bundle.bundle_id, arrival)
    if isinstance(msg, M.ScheduledReport):
        body["report"] = semantics.scheduled_report(s, pf, hub, h, msg, rep, slot=slot, key_epoch=op.epoch, **kw)
    elif isinstance(msg, M.ProvisioningRequest):
        body["effects"] = semantics.provisioning_request(s, pf, hub, msg, **kw)
    elif isinstance(msg, M.Pairing):
        body["effects"] = semantics.pairing(s, pf, hub, msg, **kw)
    elif isinstance(msg, M.PairingLoss):
        body["effects"] = semantics.pairing_loss(s, pf, hub, msg, **kw)
    elif isinstance(msg, M.Alert):
        body["effects"] = semantics.alert(s, pf, hub, msg, **kw)
    elif isinstance(msg, M.TanAnomaly):
        body["effects"] = semantics.tan_anomaly(s, pf, hub, msg, **kw)
    inference.observe(s, pf, hub, loc, conf, bundle.bundle_id, arrival)
