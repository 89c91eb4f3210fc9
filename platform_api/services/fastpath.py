"""The common case of ingest without the ORM: a scheduled report (one frame or a segment) or a
sag/swell alert from a settled hub heard where the Grid Map says (or not located), with nothing
pending, and identical repeats of any accepted frame.

Most of a substation's traffic is exactly this (12,000 hubs x 2 reports a day), and it changes
nothing but the hub's reception state. It is written with the same Core statements as the full
path (:mod:`.ingest_rows`, :mod:`.reports`, and the hub's columns below, all from the models'
tables), run on a pooled DB-API connection through :class:`platform_api.core.compiled.Cursor`:
no ORM session, no per-statement ``Result``. Anything else (another kind, a counter not above the
highest of the window (:mod:`.antireplay`) unless an identical repeat, a counter near exhaustion,
a frame under another key, a location other than the map's, a candidate, a silent hub, ...)
returns ``None`` and goes through the full path (:mod:`.fullpath`), which makes every decision.
``tests`` check that both paths leave the same rows and give the same answers.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, update

from dsp.air import messages as M
from dsp.air import params as P
from receiver.contracts.bundle import Bundle

from ..core.compiled import Cursor
from ..models import Hub
from . import antireplay, reports
from . import ingest_rows as rows
from .clock import aware, slot_of
from .context import Platform
from .decode import KIND_NAMES, Reject, check_frame, fields_of, open_sealed
from .inference import section_may_be_pending

_H = cast(Table, Hub.__table__)
HUB_COLS = (
    "hub_id",
    "substation_id",
    "key_hex",
    "status",
    "map_bus",
    "map_feeder",
    "map_phase",
    "section_id",
    "last_counter",
    "key_epoch",
    "replay_bitmap",
    "first_seen_at",
    "last_seen_at",
    "last_report_slot",
    "cand_feeder",
    "tan_version",
)
HUB_STATE = select(*(_H.c[c] for c in HUB_COLS)).where(_H.c.hub_id == bindparam("hub_id")).with_for_update()
HUB_UPDATE = update(_H).where(_H.c.hub_id == bindparam("where_hub_id"))  # SET: the columns given

SAVEPOINT = "gla_bundle"


def try_ingest(
    conn, pf: Platform, bundle: Bundle, text: str, digest: str, arrival: datetime, slot: int, loc, conf: float
) -> dict | None:
    """The answer, or None to take the full path (the caller rolls back what was written)."""
    if not bundle.frame_hex or (pf.forwarding and "readings" in pf.settings.forward):
        return None
    frame = bytes.fromhex(bundle.frame_hex)
    # other kinds: only their identical repeats are handled here
    kind_ok = (frame[0] >> 2) & 0xF in (M.Kind.SCHEDULED_REPORT, M.Kind.ALERT)
    try:
        h = check_frame(frame)
    except Reject:
        return None
    row = conn.execute(HUB_STATE, {"hub_id": h.hub_id}).first()
    if row is None:
        return None
    hub = dict(zip(HUB_COLS, row))
    if not hub["key_hex"]:
        return None
    try:
        msg = open_sealed(frame, h, bytes.fromhex(hub["key_hex"]))
    except Reject:
        return None
    kind = KIND_NAMES[h.kind]
    answer: dict[str, Any] = {
        "bundle_id": bundle.bundle_id,
        "status": "accepted",
        "reason": None,
        "detail": None,
        "hub_id": h.hub_id,
        "counter": h.counter,
        "kind": kind,
        "message": None,
        "report": None,
        "effects": None,
        "events": [],
    }
    epoch, bitmap = hub["key_epoch"], antireplay.from_db(hub["replay_bitmap"])
    verdict = antireplay.classify(hub["last_counter"], bitmap, h.counter)
    if verdict != "new":
        prior = rows.prior_message(conn, h.hub_id, epoch, h.counter) if verdict == "seen" else None
        if prior is None or prior[1] != bundle.frame_hex:
            return None  # late, old or replay: the full path decides
        answer.update(status="duplicate", detail=rows.count_duplicate(conn, prior), message=prior[2])
        _insert_bundle(conn, bundle, text, digest, arrival, slot, h, kind, prior[0], answer)
        return answer
    if not kind_ok or h.counter >= P.COUNTER_LOW_WATER:
        return None
    if isinstance(msg, M.Alert) and msg.alert_type not in (M.AlertType.SAG, M.AlertType.SWELL):
        return None
    if (
        hub["status"] != "active"
        or hub["map_feeder"] is None
        or hub["cand_feeder"] is not None
        or hub["substation_id"] is None
    ):
        return None
    here = loc is not None and loc == (hub["substation_id"], hub["map_bus"], hub["map_feeder"], hub["map_phase"])
    if loc is not None and not here:
        return None
    if here and hub["section_id"] and section_may_be_pending(conn, pf, hub["section_id"]):
        return None
    rep = None
    if isinstance(msg, M.ScheduledReport):
        try:
            rep = reports.segment_of(conn, h.hub_id, epoch, h, msg)
        except Reject:
            return None  # an inconsistent segment: rejected by the full path
    fields = fields_of(msg)
    mid = rows.insert_message(conn, bundle, h, kind, arrival, slot, fields, loc, conf, late=False, key_epoch=epoch)
    answer["message"] = fields
    # the hub's reception state, as the full path sets it
    highest, bitmap = antireplay.slide(hub["last_counter"], bitmap, h.counter)
    state: dict[str, Any] = {
        "where_hub_id": h.hub_id,
        "last_counter": highest,
        "replay_bitmap": antireplay.to_db(bitmap),
        "updated_at": arrival,
    }
    if hub["first_seen_at"] is None:
        state["first_seen_at"] = arrival
    if hub["last_seen_at"] is None or arrival >= hub["last_seen_at"]:
        state.update(last_seen_at=arrival, last_bundle_id=bundle.bundle_id)
    if isinstance(msg, M.ScheduledReport):
        rep = reports.store(
            conn,
            pf,
            h.hub_id,
            hub["tan_version"] or 0,
            h,
            msg,
            rep,
            slot=slot,
            arrival=arrival,
            sub=bundle.substation_id,
            key_epoch=epoch,
        )
        answer["report"] = rep.answer()
        if hub["last_report_slot"] is None or rep.slot >= hub["last_report_slot"]:
            state.update(last_report_slot=rep.slot, last_report_at=arrival)
    else:
        answer["effects"] = {}  # a sag or swell alert changes nothing
    if loc is not None:
        state.update(
            heard_substation=loc[0],
            heard_bus=loc[1],
            heard_feeder=loc[2],
            heard_phase=loc[3],
            heard_confidence=conf,
            last_confirmed_at=arrival,
        )
    conn.execute(HUB_UPDATE, state)
    _insert_bundle(conn, bundle, text, digest, arrival, slot, h, kind, mid, answer)
    return answer


def _insert_bundle(
    conn,
    bundle: Bundle,
    text: str,
    digest: str,
    arrival: datetime,
    slot: int,
    h,
    kind: str,
    message_id: int,
    answer: dict,
) -> None:
    row = rows.bundle_row(bundle, text, digest, arrival, slot)
    row.update(
        hub_id=h.hub_id, counter=h.counter, kind=kind, status=answer["status"], message_id=message_id, response=answer
    )
    rows.insert_bundle(conn, row)


def _times(bundle: Bundle) -> tuple[datetime, int]:
    arrival = aware(bundle.copies[0].arrival_utc)
    return arrival, bundle.slot if bundle.slot is not None else slot_of(arrival)


def run_one(pf: Platform, bundle: Bundle, text: str, digest: str) -> dict | None:
    """:func:`try_ingest` in its own transaction (the caller holds the writer lock); None: not
    applicable (a re-post, or a case for the full path), nothing written."""
    dbapi = pf.db.engine.raw_connection()
    try:
        conn = Cursor(dbapi, pf.db.statements)
        if rows.bundle_exists(conn, bundle.bundle_id):
            dbapi.rollback()
            return None  # a re-post: the full path answers it from the stored row
        arrival, slot = _times(bundle)
        loc, conf = rows.location(bundle)
        body = try_ingest(conn, pf, bundle, text, digest, arrival, slot, loc, conf)
        if body is None:
            dbapi.rollback()
        else:
            dbapi.commit()
        return body
    except BaseException:
        dbapi.rollback()
        raise
    finally:
        dbapi.close()


def run_many(pf: Platform, prepared: list, k: int) -> tuple[int, list[tuple[int, dict]]]:
    """Take ``prepared[k:]`` (``(index, bundle, text, digest)``) through :func:`try_ingest` in one
    transaction, a savepoint each, until one needs the full path. Returns the position of that one
    and the ``(index, answer)`` of those done."""
    done: list[tuple[int, dict]] = []
    with pf.db.writer_lock():
        dbapi = pf.db.engine.raw_connection()
        try:
            conn = Cursor(dbapi, pf.db.statements)
            if pf.db.is_sqlite:
                # sqlite3 opens its implicit transaction only before DML: without this BEGIN the
                # first SAVEPOINT would open the transaction and its RELEASE commit it (an fsync
                # per bundle instead of one per group)
                conn.exec_driver_sql("BEGIN")
            while k < len(prepared):
                i, b, text, digest = prepared[k]
                if rows.bundle_exists(conn, b.bundle_id):
                    break
                conn.exec_driver_sql(f"SAVEPOINT {SAVEPOINT}")
                try:
                    arrival, slot = _times(b)
                    loc, conf = rows.location(b)
                    body = try_ingest(conn, pf, b, text, digest, arrival, slot, loc, conf)
                except pf.db.dbapi_integrity_error:
                    body = None
                if body is None:
                    conn.exec_driver_sql(f"ROLLBACK TO SAVEPOINT {SAVEPOINT}")
                    conn.exec_driver_sql(f"RELEASE SAVEPOINT {SAVEPOINT}")
                    break
                conn.exec_driver_sql(f"RELEASE SAVEPOINT {SAVEPOINT}")
                done.append((i, body))
                k += 1
            dbapi.commit()
        except BaseException:
            dbapi.rollback()
            raise
        finally:
            dbapi.close()
    return k, done
