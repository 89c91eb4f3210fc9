"""Ingest of one bundle: idempotency, storage, semantic decode, and what the message means.

``bundle_id`` is the idempotency key. The first post stores the bundle and its outcome in one
transaction and answers 201; a re-post of the same body gets the stored answer again (201, with
``Idempotent-Replayed: true``); the same id with another body is a 409. A bundle whose frame is
rejected (bad tag, unknown hub, replay ...) is still stored and answered 201 with
``status: rejected`` and the reason: the receiver delivered it correctly and must not retry.

Counters (docs/air-interface.md section 13): a frame is new when its counter exceeds the highest
accepted for the hub. A frame identical to one already accepted (an alert repeat, or a second
receiver's copy) is a *duplicate*: counted, not re-applied. A *different* frame whose counter was
already used, or one more than ``replay_window`` below the highest, is a *replay* and rejected.
A frame below the highest but inside the window whose counter was never seen is accepted as
*late* (e.g. a repeat whose first copy was lost arriving after the hub's next report); set
``GLA_REPLAY_WINDOW=0`` for the strict rule.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dsp.air import messages as M
from receiver.contracts.bundle import Bundle

from ..models import BundleRow, Hub, Message, Rejection
from . import fastpath, inference, outage, semantics
from .clock import aware, iso, slot_of, utcnow
from .context import Platform
from .decode import KIND_NAMES, Reject, check_frame, fields_of, open_sealed
from .inventory import ensure_substation


class _Row:
    """The bundle row, filled in while decoding and inserted at the end."""

    def __init__(self, **kw) -> None:
        self.__dict__.update(kw)


@dataclass
class Principal:
    id: str
    substation_id: str
    role: str = "receiver"


@dataclass
class Outcome:
    status_code: int
    body: dict
    replayed: bool = False


_MSG_INSERT = insert(Message.__table__).returning(Message.__table__.c.id)
_BUNDLE_INSERT = insert(BundleRow.__table__)


class Conflict(Exception):
    pass


class BadBundle(Exception):
    """A bundle that is valid JSON but inconsistent; answered 422 naming ``loc``."""

    def __init__(self, loc: list, msg: str, type_: str = "value_error") -> None:
        super().__init__(msg)
        self.loc = loc
        self.msg = msg
        self.type = type_


def canonical(bundle: Bundle) -> tuple[str, str]:
    text = bundle.model_dump_json()
    return text, hashlib.sha256(text.encode()).hexdigest()


def precheck(bundle: Bundle) -> None:
    """Consistency checks beyond the schema (422 naming the field)."""
    if bundle.crc_ok and not bundle.frame_hex:
        raise BadBundle(["body", "frame_hex"], "frame_hex is required when crc_ok is true")
    if bundle.frame_hex:
        fr = bytes.fromhex(bundle.frame_hex)
        b0 = fr[0]
        hub_id = int.from_bytes(fr[1:5], "big")
        counter = int.from_bytes(fr[5:8], "big")
        kind = KIND_NAMES.get((b0 >> 2) & 0xF)
        if bundle.hub_id is not None and bundle.hub_id != hub_id:
            raise BadBundle(["body", "hub_id"], f"hub_id {bundle.hub_id} does not match the frame header ({hub_id})")
        if bundle.counter is not None and bundle.counter != counter:
            raise BadBundle(["body", "counter"], f"counter {bundle.counter} does not match the frame header ({counter})")
        if bundle.kind is not None and kind is not None and bundle.kind != kind:
            raise BadBundle(["body", "kind"], f"kind {bundle.kind!r} does not match the frame header ({kind!r})")
    for i, c in enumerate(bundle.copies):
        if c.arrival_utc.tzinfo is None:
            raise BadBundle(["body", "copies", i, "arrival_utc"], "arrival_utc needs a time zone (UTC)")


def _replay(row: BundleRow, digest: str) -> Outcome:
    if row.body_sha256 != digest:
        raise Conflict(f"bundle_id {row.bundle_id} was already posted with a different body "
                       f"(received {iso(row.received_at)})")
    return Outcome(201, row.response, replayed=True)


def ingest(pf: Platform, principal: Principal, bundle: Bundle) -> Outcome:
    precheck(bundle)
    text, digest = canonical(bundle)
    db = pf.db
    for _ in range(3):
        try:
            with db.writer_lock():
                if pf.fast_path:
                    body = _fast(pf, bundle, text, digest)
                    if body is not None:
                        pf.stats["bundles"] += 1
                        return Outcome(201, body)
                with db.write() as s:
                    row = s.get(BundleRow, bundle.bundle_id)
                    if row is not None:
                        return _replay(row, digest)
                    out = _process(s, pf, principal, bundle, text, digest)
            pf.stats["bundles"] += 1
            return out
        except (IntegrityError, db.dbapi_integrity_error):
            # a concurrent post of the same bundle (PostgreSQL): answer as its replay
            with db.session() as s:
                row = s.get(BundleRow, bundle.bundle_id)
                if row is not None:
                    return _replay(row, digest)
    raise RuntimeError(f"bundle {bundle.bundle_id}: could not be stored after 3 attempts")


def ingest_batch(pf: Platform, principal: Principal, bundles: list[Bundle], check) -> list[tuple]:
    """Bundles of one batch, each with the outcome a single post would have had:
    ``(http_status, body or None, replayed, error or None)``. ``check(bundle)`` raises what the
    single route would (HTTPException, BadBundle)."""
    return ingest_items(pf, [(principal, b) for b in bundles], lambda _p, b: check(b))


def ingest_items(pf: Platform, items: list[tuple[Principal, Bundle]], check=None) -> list[tuple]:
    """Several bundles, each with its own outcome (see :func:`ingest_batch`). Consecutive bundles
    that the ORM-free path takes share one transaction (a SAVEPOINT each, so one failing bundle
    does not touch the others); any other bundle goes through :func:`ingest` on its own."""
    out: list[tuple] = [None] * len(items)  # type: ignore[list-item]
    prepared: list = []
    for i, (p, b) in enumerate(items):
        try:
            if check is not None:
                check(p, b)
            precheck(b)
            prepared.append((i, b) + canonical(b))
        except BadBundle as e:
            out[i] = (422, None, False, e)
        except Exception as e:
            if not hasattr(e, "status_code"):  # HTTPException and the like are per-item answers
                raise
            out[i] = (e.status_code, None, False, e)
    k = 0
    while k < len(prepared):
        if pf.fast_path:
            k = _fast_run(pf, prepared, k, out)
        if k < len(prepared):
            i, b, _, _ = prepared[k]
            try:
                r = ingest(pf, items[i][0], b)
                out[i] = (r.status_code, r.body, r.replayed, None)
            except Conflict as e:
                out[i] = (409, None, False, e)
            except BadBundle as e:
                out[i] = (422, None, False, e)
            k += 1
    return out


class GroupCommit:
    """Group commit of concurrent single posts on SQLite: bundles posted while the platform is busy
    with others are taken together through :func:`ingest_items` (one transaction, a savepoint
    each) and each request is answered with its own outcome after the commit. Runs on the event
    loop like the single inline path; it only saves the per-transaction cost under load."""

    MAX = 200

    def __init__(self, pf: Platform) -> None:
        self.pf = pf
        self.queue: list = []
        self.task = None

    async def submit(self, principal: Principal, bundle: Bundle) -> tuple:
        import asyncio

        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self.queue.append((principal, bundle, fut))
        if self.task is None or self.task.done():
            self.task = loop.create_task(self._drain())
        return await fut

    async def _drain(self) -> None:
        import asyncio

        await asyncio.sleep(0)  # let the handlers that are ready enqueue theirs
        while self.queue:
            batch, self.queue = self.queue[:self.MAX], self.queue[self.MAX:]
            try:
                res = ingest_items(self.pf, [(p, b) for p, b, _ in batch])
            except BaseException as e:  # noqa: BLE001 - every waiting request gets the error
                for _, _, fut in batch:
                    if not fut.done():
                        fut.set_exception(e)
                continue
            for (_, _, fut), r in zip(batch, res):
                if not fut.done():  # the client may have gone: the bundle is stored all the same
                    fut.set_result(r)
            await asyncio.sleep(0)


def _fast_run(pf: Platform, prepared: list, k: int, out: list) -> int:
    """Take bundles from ``prepared[k:]`` through the ORM-free path in one transaction, until one
    needs the full path; returns the index of that one."""
    with pf.db.writer_lock():
        conn = pf.db.engine.raw_connection()
        try:
            raw = fastpath.Raw(conn, not pf.db.is_sqlite)
            if pf.db.is_sqlite:
                # sqlite3 opens its implicit transaction only before DML: without this BEGIN the
                # first SAVEPOINT would open the transaction and its RELEASE commit it (an fsync
                # per bundle instead of one per group)
                raw.run("BEGIN", ())
            done = []
            while k < len(prepared):
                i, b, text, digest = prepared[k]
                if fastpath.bundle_exists(raw, b.bundle_id):
                    break
                raw.run("SAVEPOINT gla_bundle", ())
                try:
                    arrival = aware(b.copies[0].arrival_utc)
                    slot = b.slot if b.slot is not None else slot_of(arrival)
                    loc, conf = _location(b)
                    body = fastpath.try_ingest(raw, pf, b, text, digest, arrival, slot, loc, conf)
                except pf.db.dbapi_integrity_error:
                    body = None
                if body is None:
                    raw.run("ROLLBACK TO SAVEPOINT gla_bundle", ())
                    raw.run("RELEASE SAVEPOINT gla_bundle", ())
                    break
                raw.run("RELEASE SAVEPOINT gla_bundle", ())
                done.append((i, body))
                k += 1
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        finally:
            conn.close()
    for i, body in done:
        out[i] = (201, body, False, None)
        pf.stats["bundles"] += 1
    return k


def _fast(pf: Platform, bundle: Bundle, text: str, digest: str) -> dict | None:
    """The ORM-free path (see :mod:`.fastpath`) in its own transaction; None: not applicable, rolled back."""
    conn = pf.db.engine.raw_connection()
    try:
        raw = fastpath.Raw(conn, not pf.db.is_sqlite)
        if fastpath.bundle_exists(raw, bundle.bundle_id):
            conn.rollback()
            return None  # a re-post: the full path answers it from the stored row
        arrival = aware(bundle.copies[0].arrival_utc)
        slot = bundle.slot if bundle.slot is not None else slot_of(arrival)
        loc, conf = _location(bundle)
        body = fastpath.try_ingest(raw, pf, bundle, text, digest, arrival, slot, loc, conf)
        if body is None:
            conn.rollback()
        else:
            conn.commit()
        return body
    except BaseException:
        conn.rollback()
        raise
    finally:
        conn.close()


def _location(bundle: Bundle):
    inf = bundle.inferred
    if inf is None or inf.ambiguous:
        return None, 0.0
    loc = inf.location
    return (bundle.substation_id, loc.bus, loc.feeder, loc.phase), float(inf.confidence)


def _process(s: Session, pf: Platform, principal: Principal, bundle: Bundle, text: str, digest: str) -> Outcome:
    sub = bundle.substation_id
    best = bundle.copies[0]
    arrival = aware(best.arrival_utc)
    slot = bundle.slot if bundle.slot is not None else slot_of(arrival)
    loc, conf = _location(bundle)
    ensure_substation(s, pf, sub)
    inf = bundle.inferred
    row = _Row(
        bundle_id=bundle.bundle_id, receiver_id=bundle.receiver_id, substation_id=sub, body_sha256=digest, body=text,
        received_at=utcnow(), created_utc=aware(bundle.created_utc), arrival_utc=arrival, channel=bundle.channel,
        code=bundle.code, slot=slot, crc_ok=bundle.crc_ok, hub_id=None, counter=None, kind=None, status="no_frame",
        reason=None, message_id=None, best_snr_db=best.snr_db,
        inferred_bus=inf.location.bus if inf else None, inferred_feeder=inf.location.feeder if inf else None,
        inferred_phase=inf.location.phase if inf else None, inferred_confidence=inf.confidence if inf else None,
        ambiguous=inf.ambiguous if inf else None, response={})
    body: dict = {"bundle_id": bundle.bundle_id, "status": "no_frame", "reason": None, "detail": None,
                  "hub_id": None, "counter": None, "kind": None, "message": None, "report": None, "effects": None,
                  "events": []}
    if not bundle.frame_hex:
        body["detail"] = "no copy passed CRC: stored for channel statistics only"
    else:
        frame = bytes.fromhex(bundle.frame_hex)
        hub_id = int.from_bytes(frame[1:5], "big")
        counter = int.from_bytes(frame[5:8], "big")
        row.hub_id, row.counter = hub_id, counter
        row.kind = KIND_NAMES.get((frame[0] >> 2) & 0xF)
        body.update(hub_id=hub_id, counter=counter, kind=row.kind)
        try:
            _decode(s, pf, bundle, row, body, frame, sub, arrival, slot, loc, conf)
        except Reject as r:
            row.status, row.reason = "rejected", r.reason
            body.update(status="rejected", reason=r.reason, detail=r.detail)
            s.connection().execute(insert(Rejection.__table__), {
                "bundle_id": bundle.bundle_id, "receiver_id": bundle.receiver_id, "substation_id": sub,
                "hub_id": hub_id, "counter": counter, "kind": row.kind, "reason": r.reason, "detail": r.detail[:300],
                "at": utcnow()})
    body["events"] = sorted(set(s.info.pop("events", [])))
    row.response = body
    s.connection().execute(_BUNDLE_INSERT, vars(row))  # last, so it is one INSERT with its outcome
    return Outcome(201, body)


def _decode(s: Session, pf: Platform, bundle: Bundle, row: BundleRow, body: dict, frame: bytes, sub: str,
            arrival: datetime, slot: int, loc, conf: float) -> None:
    h = check_frame(frame)
    hub = s.get(Hub, h.hub_id, with_for_update=True)
    if hub is None or not hub.key_hex:
        raise Reject("unknown_hub", f"hub {h.hub_id} has no key in the Inventory")
    msg = open_sealed(frame, h, bytes.fromhex(hub.key_hex))
    late = False
    if hub.last_counter is not None and h.counter <= hub.last_counter:
        prior = s.execute(select(Message.id, Message.frame_hex, Message.fields, Message.bundle_id)
                          .where(Message.hub_id == h.hub_id, Message.counter == h.counter)).first()
        if prior is not None:
            if prior.frame_hex == bundle.frame_hex:
                s.execute(update(Message).where(Message.id == prior.id).values(receptions=Message.receptions + 1))
                row.status, row.message_id = "duplicate", prior.id
                body.update(status="duplicate", message=prior.fields,
                            detail=f"identical to message {prior.id} (bundle {prior.bundle_id}): counted, not re-applied")
                return
            raise Reject("replay", f"counter {h.counter} of hub {h.hub_id} was already used by another frame")
        if hub.last_counter - h.counter >= pf.settings.replay_window:
            raise Reject("replay", f"counter {h.counter} is not above the last accepted ({hub.last_counter}) "
                                   f"and outside the replay window of {pf.settings.replay_window}")
        late = True
    rep = None
    if isinstance(msg, M.ScheduledReport):
        rep = semantics.check_report_segment(s, hub, h, msg)
    fields = fields_of(msg)
    mid = s.connection().execute(_MSG_INSERT, {
        "hub_id": h.hub_id, "counter": h.counter, "seg_index": h.seg_index, "seg_count": h.seg_count,
        "kind": KIND_NAMES[h.kind], "frame_hex": bundle.frame_hex, "bundle_id": bundle.bundle_id, "substation_id": sub,
        "arrival_utc": arrival, "slot": slot, "fields": fields, "bus": loc[1] if loc else None,
        "feeder": loc[2] if loc else None, "phase": loc[3] if loc else None, "confidence": conf if loc else None,
        "receptions": 1, "late": late}).scalar_one()
    row.status, row.message_id = "accepted", mid
    body.update(status="accepted", message=fields, detail="accepted late (inside the replay window)" if late else None)
    if hub.last_counter is None or h.counter > hub.last_counter:
        hub.last_counter = h.counter
    if hub.first_seen_at is None:
        hub.first_seen_at = arrival
    if hub.last_seen_at is None or arrival >= hub.last_seen_at:
        hub.last_seen_at = arrival
        hub.last_bundle_id = bundle.bundle_id
    if hub.substation_id is None:
        hub.substation_id = sub
    if hub.status == "inventory":
        hub.status = "active" if hub.map_feeder is not None else "new"
    hub.updated_at = arrival
    kw = dict(bundle_id=bundle.bundle_id, arrival=arrival, sub=sub)
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
