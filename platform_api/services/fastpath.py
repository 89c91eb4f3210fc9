"""The common case of ingest without the ORM: a one-frame scheduled report from a known hub heard
where the Grid Map says (or not located), with nothing pending.

Most of a substation's traffic is exactly this (12,000 hubs x 2 reports a day), and it changes
nothing but the hub's reception state, so it is written with plain DB-API statements inside the
one transaction on a pooled DB-API connection (no ORM session at all). Anything else (another kind, a segment, a counter not above
the last, a location other than the map's, a candidate, a silent hub, ...) returns ``None`` and
goes through the full path in :mod:`.ingest`, which makes every decision. ``tests`` check that
both paths leave the same rows and give the same answers.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Optional

from dsp.air import messages as M
from receiver.contracts.bundle import Bundle

from .clock import aware, utcnow
from .context import Platform
from .decode import KIND_NAMES, Reject, check_frame, fields_of, open_sealed

_HUB_COLS = ("hub_id", "substation_id", "key_hex", "status", "map_bus", "map_feeder", "map_phase", "section_id",
             "last_counter", "first_seen_at", "last_seen_at", "last_report_slot", "cand_feeder", "tan_version")


class Raw:
    """DB-API cursor on the session's connection, with ``?`` placeholders on both backends."""

    def __init__(self, dbapi_conn, pg: bool) -> None:
        self.pg = pg
        self.cur = dbapi_conn.cursor()

    def all(self, sql: str, args: tuple) -> list[tuple]:
        self.cur.execute(self.q(sql), args)
        return self.cur.fetchall()

    def q(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.pg else sql

    def one(self, sql: str, args: tuple) -> Optional[tuple]:
        self.cur.execute(self.q(sql), args)
        return self.cur.fetchone()

    def run(self, sql: str, args: tuple) -> None:
        self.cur.execute(self.q(sql), args)

    def many(self, sql: str, rows: list[tuple]) -> None:
        self.cur.executemany(self.q(sql), rows)

    def t(self, v: datetime | None) -> Any:
        """A timestamp as SQLAlchemy stores it: aware on PostgreSQL, naive UTC text on SQLite."""
        if v is None:
            return None
        v = aware(v)
        if self.pg:
            return v
        return v.astimezone(timezone.utc).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")

    def j(self, v: Any) -> str:
        return json.dumps(v)

    def jcast(self) -> str:
        return "?::json" if self.pg else "?"

    def b(self, v: bool) -> Any:
        return bool(v) if self.pg else int(bool(v))

    def tparse(self, v: Any) -> datetime | None:
        if v is None:
            return None
        if isinstance(v, str):
            v = datetime.fromisoformat(v)
        return v.replace(tzinfo=timezone.utc) if v.tzinfo is None else v


def bundle_exists(raw: Raw, bundle_id: str) -> bool:
    return raw.one("SELECT 1 FROM bundles WHERE bundle_id = ?", (bundle_id,)) is not None


def _json(v: Any) -> Any:
    return json.loads(v) if isinstance(v, str) else v


def try_ingest(raw: Raw, pf: Platform, bundle: Bundle, text: str, digest: str, arrival: datetime,
               slot: int, loc, conf: float) -> Optional[dict]:
    """The answer, or None to take the full path. Handles: scheduled reports (segmented or not) and
    sag/swell alerts from a settled hub, and identical repeats of any accepted frame."""
    if not bundle.frame_hex or (pf.forwarding and "readings" in pf.settings.forward):
        return None
    frame = bytes.fromhex(bundle.frame_hex)
    # other kinds: only their identical repeats are handled here
    kind_ok = (frame[0] >> 2) & 0xF in (M.Kind.SCHEDULED_REPORT, M.Kind.ALERT)
    try:
        h = check_frame(frame)
    except Reject:
        return None
    row = raw.one("SELECT " + ", ".join(_HUB_COLS) + " FROM hubs WHERE hub_id = ?" + (" FOR UPDATE" if raw.pg else ""),
                  (h.hub_id,))
    if row is None:
        return None
    hub = dict(zip(_HUB_COLS, row))
    if not hub["key_hex"]:
        return None
    try:
        msg = open_sealed(frame, h, bytes.fromhex(hub["key_hex"]))
    except Reject:
        return None
    sub = bundle.substation_id
    kind = KIND_NAMES[h.kind]
    if hub["last_counter"] is not None and h.counter <= hub["last_counter"]:
        prior = raw.one("SELECT id, frame_hex, fields, bundle_id FROM messages WHERE hub_id = ? AND counter = ?",
                        (h.hub_id, h.counter))
        if prior is None or prior[1] != bundle.frame_hex:
            return None  # late or replay: the full path decides
        raw.run("UPDATE messages SET receptions = receptions + 1 WHERE id = ?", (prior[0],))
        body = {"bundle_id": bundle.bundle_id, "status": "duplicate", "reason": None,
                "detail": f"identical to message {prior[0]} (bundle {prior[3]}): counted, not re-applied",
                "hub_id": h.hub_id, "counter": h.counter, "kind": kind, "message": _json(prior[2]), "report": None,
                "effects": None, "events": []}
        _insert_bundle(raw, bundle, text, digest, arrival, slot, h, kind, "duplicate", prior[0], body)
        return body
    if not kind_ok:
        return None
    if isinstance(msg, M.Alert) and msg.alert_type not in (M.AlertType.SAG, M.AlertType.SWELL):
        return None
    if (hub["status"] != "active" or hub["map_feeder"] is None or hub["cand_feeder"] is not None
            or hub["substation_id"] is None):
        return None
    here = loc is not None and loc == (hub["substation_id"], hub["map_bus"], hub["map_feeder"], hub["map_phase"])
    if loc is not None and not here:
        return None
    if here and hub["section_id"] and pf.section_may_be_pending(None, hub["section_id"], raw=raw):
        return None
    ta = raw.t(arrival)
    report = None
    rep_slot = None
    if isinstance(msg, M.ScheduledReport):
        first = (h.counter - h.seg_index) % 2**24
        rep = None
        if h.seg_count > 1:
            rep = raw.one("SELECT id, seg_count, received_mask, complete, measurement_time_s, slot, readings "
                          "FROM reports WHERE hub_id = ? AND first_counter = ?", (h.hub_id, first))
            if rep is not None and (rep[1] != h.seg_count or rep[4] != msg.measurement_time_s):
                return None  # inconsistent segment: rejected by the full path
    fields = fields_of(msg)
    raw.run("INSERT INTO messages (hub_id, counter, seg_index, seg_count, kind, frame_hex, bundle_id, substation_id, "
            "arrival_utc, slot, fields, bus, feeder, phase, confidence, receptions, late) VALUES "
            f"(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, {raw.jcast()}, ?, ?, ?, ?, 1, ?) RETURNING id",
            (h.hub_id, h.counter, h.seg_index, h.seg_count, kind, bundle.frame_hex, bundle.bundle_id, sub, ta, slot,
             raw.j(fields), loc[1] if loc else None, loc[2] if loc else None, loc[3] if loc else None,
             conf if loc else None, raw.b(False)))
    mid = raw.cur.fetchone()[0]
    if isinstance(msg, M.ScheduledReport):
        meters = pf.tan_map(None, h.hub_id, hub["tan_version"] or 0, raw=raw)
        rows = [{"tan_index": r.tan_index, "meter_id": meters.get(r.tan_index), "v_rms": r.v_rms, "i_rms": r.i_rms,
                 "power_factor": r.power_factor} for r in msg.readings]
        bit = 1 << h.seg_index
        if rep is None:
            rep_slot = slot - h.seg_index
            complete = h.seg_count == 1
            readings = sorted(rows, key=lambda r: r["tan_index"])
            raw.run("INSERT INTO reports (hub_id, first_counter, seg_count, received_mask, complete, measurement_time_s, "
                    f"slot, readings, first_arrival_utc, completed_at) VALUES (?, ?, ?, ?, ?, ?, ?, {raw.jcast()}, ?, ?) "
                    "RETURNING id", (h.hub_id, first, h.seg_count, bit, raw.b(complete), msg.measurement_time_s,
                                     rep_slot, raw.j(readings), ta, ta if complete else None))
            rid = raw.cur.fetchone()[0]
            mask = bit
        else:
            rid, rep_slot = rep[0], rep[5]
            mask = rep[2] | bit
            readings = sorted(list(_json(rep[6]) or []) + rows, key=lambda r: r["tan_index"])
            complete = bool(rep[3])
            done = mask == (1 << rep[1]) - 1 and not complete
            raw.run(f"UPDATE reports SET received_mask = ?, readings = {raw.jcast()}"
                    + (", complete = ?, completed_at = ?" if done else "") + " WHERE id = ?",
                    (mask, raw.j(readings)) + ((raw.b(True), ta) if done else ()) + (rid,))
            complete = complete or done
        if rows:
            raw.many("INSERT INTO readings (report_id, substation_id, hub_id, meter_id, tan_index, measurement_time_s, "
                     "v_rms, i_rms, power_factor) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     [(rid, sub, h.hub_id, r["meter_id"], r["tan_index"], msg.measurement_time_s, r["v_rms"],
                       r["i_rms"], r["power_factor"]) for r in rows])
            ups = [(ta, r["v_rms"], r["i_rms"], r["power_factor"], r["meter_id"]) for r in rows
                   if r["meter_id"] is not None]
            if ups:
                raw.many("UPDATE meters SET last_seen_at = ?, last_v_rms = ?, last_i_rms = ?, last_power_factor = ? "
                         "WHERE meter_id = ?", ups)
        report = {"report_id": rid, "first_counter": first, "seg_count": h.seg_count,
                  "segments_received": bin(mask).count("1"), "complete": complete,
                  "measurement_time_s": msg.measurement_time_s}
    # the hub's reception state, as the full path sets it
    sets = ["last_counter = ?", "updated_at = ?"]
    args: list[Any] = [h.counter, ta]
    last_seen = raw.tparse(hub["last_seen_at"])
    if hub["first_seen_at"] is None:
        sets.append("first_seen_at = ?")
        args.append(ta)
    if last_seen is None or arrival >= last_seen:
        sets += ["last_seen_at = ?", "last_bundle_id = ?"]
        args += [ta, bundle.bundle_id]
    if rep_slot is not None and (hub["last_report_slot"] is None or rep_slot >= hub["last_report_slot"]):
        sets += ["last_report_slot = ?", "last_report_at = ?"]
        args += [rep_slot, ta]
    if loc is not None:
        sets += ["heard_substation = ?", "heard_bus = ?", "heard_feeder = ?", "heard_phase = ?",
                 "heard_confidence = ?", "last_confirmed_at = ?"]
        args += [loc[0], loc[1], loc[2], loc[3], conf, ta]
    raw.run("UPDATE hubs SET " + ", ".join(sets) + " WHERE hub_id = ?", tuple(args) + (h.hub_id,))
    body = {"bundle_id": bundle.bundle_id, "status": "accepted", "reason": None, "detail": None, "hub_id": h.hub_id,
            "counter": h.counter, "kind": kind, "message": fields, "report": report,
            "effects": {} if isinstance(msg, M.Alert) else None, "events": []}
    _insert_bundle(raw, bundle, text, digest, arrival, slot, h, kind, "accepted", mid, body)
    return body


def _insert_bundle(raw: Raw, bundle: Bundle, text: str, digest: str, arrival: datetime, slot: int, h, kind: str,
                   status: str, message_id: int, body: dict) -> None:
    inf = bundle.inferred
    raw.run("INSERT INTO bundles (bundle_id, receiver_id, substation_id, body_sha256, body, received_at, created_utc, "
            "arrival_utc, channel, code, slot, crc_ok, hub_id, counter, kind, status, reason, message_id, best_snr_db, "
            "inferred_bus, inferred_feeder, inferred_phase, inferred_confidence, ambiguous, response) VALUES "
            f"(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?, ?, {raw.jcast()})",
            (bundle.bundle_id, bundle.receiver_id, bundle.substation_id, digest, text, raw.t(utcnow()),
             raw.t(bundle.created_utc), raw.t(arrival), bundle.channel, bundle.code, slot, raw.b(bundle.crc_ok),
             h.hub_id, h.counter, kind, status, message_id, bundle.copies[0].snr_db,
             inf.location.bus if inf else None, inf.location.feeder if inf else None,
             inf.location.phase if inf else None, inf.confidence if inf else None,
             raw.b(inf.ambiguous) if inf else None, raw.j(body)))
