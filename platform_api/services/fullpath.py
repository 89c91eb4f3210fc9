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
from receiver.contracts.bundle import Bundle

from ..models import Hub, Rejection
from . import inference, outage, reports, semantics
from . import ingest_rows as rows
from .clock import aware, slot_of, utcnow
from .context import Platform
from .decode import KIND_NAMES, Reject, check_frame, fields_of, open_sealed
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
    msg = open_sealed(frame, h, bytes.fromhex(hub.key_hex))
    conn = s.connection()
    late = False
    if hub.last_counter is not None and h.counter <= hub.last_counter:
        prior = rows.prior_message(conn, h.hub_id, h.counter)
        if prior is not None:
            if prior[1] == bundle.frame_hex:
                row.update(status="duplicate", message_id=prior[0])
                body.update(status="duplicate", message=prior[2], detail=rows.count_duplicate(conn, prior))
                return
            raise Reject("replay", f"counter {h.counter} of hub {h.hub_id} was already used by another frame")
        if hub.last_counter - h.counter >= pf.settings.replay_window:
            raise Reject(
                "replay",
                f"counter {h.counter} is not above the last accepted ({hub.last_counter}) "
                f"and outside the replay window of {pf.settings.replay_window}",
            )
        late = True
    rep = None
    if isinstance(msg, M.ScheduledReport):
        rep = reports.segment_of(conn, hub.hub_id, h, msg)
    fields = fields_of(msg)
    mid = rows.insert_message(conn, bundle, h, KIND_NAMES[h.kind], arrival, slot, fields, loc, conf, late)
    row.update(status="accepted", message_id=mid)
    body.update(status="accepted", message=fields, detail="accepted late (inside the replay window)" if late else None)
    if hub.last_counter is None or h.counter > hub.last_counter:
        hub.last_counter = h.counter
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
        body["report"] = semantics.scheduled_report(s, pf, hub, h, msg, rep, slot=slot, **kw)
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
