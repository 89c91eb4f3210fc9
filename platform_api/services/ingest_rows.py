"""The rows ingest writes for every bundle (``bundles``, ``messages``), as Core statements on the
models' tables, shared by both paths of :mod:`.ingest`.

Each function takes ``conn``: anything with SQLAlchemy's ``execute(statement, parameters)``, i.e.
``session.connection()`` on the full path or a :class:`platform_api.core.compiled.Cursor` on the
fast path. Column names and types come from the models only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select, update

from receiver.contracts.bundle import Bundle

from ..models import BundleRow, Message
from .clock import aware, utcnow

_B = cast(Table, BundleRow.__table__)
_M = cast(Table, Message.__table__)

BUNDLE_EXISTS = select(_B.c.bundle_id).where(_B.c.bundle_id == bindparam("bundle_id"))
BUNDLE_INSERT = insert(_B)
MESSAGE_INSERT = insert(_M).returning(_M.c.id)
PRIOR_MESSAGE = select(_M.c.id, _M.c.frame_hex, _M.c.fields, _M.c.bundle_id).where(
    _M.c.hub_id == bindparam("hub_id"), _M.c.key_epoch == bindparam("key_epoch"), _M.c.counter == bindparam("counter")
)
COUNT_RECEPTION = update(_M).where(_M.c.id == bindparam("message_id")).values(receptions=_M.c.receptions + 1)

Loc = tuple[str, int, int, str]  # substation, bus, feeder, phase


def location(bundle: Bundle) -> tuple[Loc | None, float]:
    """Where the receiver heard the bundle (None when it could not tell) and its confidence."""
    inf = bundle.inferred
    if inf is None or inf.ambiguous:
        return None, 0.0
    loc = inf.location
    return (bundle.substation_id, loc.bus, loc.feeder, loc.phase), float(inf.confidence)


def bundle_exists(conn, bundle_id: str) -> bool:
    return conn.execute(BUNDLE_EXISTS, {"bundle_id": bundle_id}).first() is not None


def bundle_row(bundle: Bundle, text: str, digest: str, arrival: datetime, slot: int) -> dict[str, Any]:
    """The ``bundles`` row of a bundle without a frame; the caller fills in what its frame gave
    (hub_id, counter, kind, status, reason, message_id) and the answer (``response``)."""
    inf = bundle.inferred
    return {
        "bundle_id": bundle.bundle_id,
        "receiver_id": bundle.receiver_id,
        "substation_id": bundle.substation_id,
        "body_sha256": digest,
        "body": text,
        "received_at": utcnow(),
        "created_utc": aware(bundle.created_utc),
        "arrival_utc": arrival,
        "channel": bundle.channel,
        "code": bundle.code,
        "slot": slot,
        "crc_ok": bundle.crc_ok,
        "hub_id": None,
        "counter": None,
        "kind": None,
        "status": "no_frame",
        "reason": None,
        "message_id": None,
        "best_snr_db": bundle.copies[0].snr_db,
        "inferred_bus": inf.location.bus if inf else None,
        "inferred_feeder": inf.location.feeder if inf else None,
        "inferred_phase": inf.location.phase if inf else None,
        "inferred_confidence": inf.confidence if inf else None,
        "ambiguous": inf.ambiguous if inf else None,
        "response": {},
    }


def insert_bundle(conn, row: dict[str, Any]) -> None:
    """Last of a bundle's statements, so it is one INSERT with its outcome."""
    conn.execute(BUNDLE_INSERT, row)


def insert_message(
    conn,
    bundle: Bundle,
    h,
    kind: str,
    arrival: datetime,
    slot: int,
    fields: dict,
    loc: Loc | None,
    conf: float,
    late: bool,
    key_epoch: int,
) -> int:
    return conn.execute(
        MESSAGE_INSERT,
        {
            "hub_id": h.hub_id,
            "key_epoch": key_epoch,
            "counter": h.counter,
            "seg_index": h.seg_index,
            "seg_count": h.seg_count,
            "kind": kind,
            "frame_hex": bundle.frame_hex,
            "bundle_id": bundle.bundle_id,
            "substation_id": bundle.substation_id,
            "arrival_utc": arrival,
            "slot": slot,
            "fields": fields,
            "bus": loc[1] if loc else None,
            "feeder": loc[2] if loc else None,
            "phase": loc[3] if loc else None,
            "confidence": conf if loc else None,
            "receptions": 1,
            "late": late,
        },
    ).scalar_one()


def prior_message(conn, hub_id: int, key_epoch: int, counter: int) -> tuple | None:
    """``(id, frame_hex, fields, bundle_id)`` of the hub's message with this counter under the key
    of ``key_epoch``, if any."""
    return conn.execute(PRIOR_MESSAGE, {"hub_id": hub_id, "key_epoch": key_epoch, "counter": counter}).first()


def count_duplicate(conn, prior: tuple) -> str:
    """Count one more reception of the message ``prior``; returns the answer's ``detail``."""
    conn.execute(COUNT_RECEPTION, {"message_id": prior[0]})
    return f"identical to message {prior[0]} (bundle {prior[3]}): counted, not re-applied"
