"""Ingest of one bundle: idempotency, storage, semantic decode, and what the message means.

``bundle_id`` is the idempotency key. The first post stores the bundle and its outcome in one
transaction and answers 201; a re-post of the same body gets the stored answer again (201, with
``Idempotent-Replayed: true``); the same id with another body is a 409. A bundle whose frame is
rejected (bad tag, unknown hub, replay ...) is still stored and answered 201 with
``status: rejected`` and the reason: the receiver delivered it correctly and must not retry.

Counters (docs/air-interface.md section 13, :mod:`.antireplay`): a 64-counter sliding window per
hub and key epoch. A frame is new when its counter exceeds the highest accepted; a never-seen
counter less than 64 below it is accepted once as *late* (e.g. a repeat whose first copy was lost
arriving after the hub's next report). A frame identical to one already accepted (an alert
repeat, or a second receiver's copy) is a *duplicate*: counted, not re-applied. A *different*
frame whose counter was already used, or a never-seen one 64 or more below the highest, is a
*replay* and rejected. A frame that verifies under the hub's next key makes it current (key
rotation); one under its previous key is judged by that key's window during the grace.

Two paths store a bundle, with the same statements on the models' tables: the fast path
(:mod:`.fastpath`, the common case of a settled hub, no ORM) and the full path (:mod:`.fullpath`,
every decision, with the ORM), which takes whatever the fast path declines. Concurrent single
posts on SQLite are committed together by :mod:`.groupcommit`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError

from receiver.contracts.bundle import Bundle

from ..models import BundleRow
from . import fastpath, fullpath
from .clock import iso
from .context import Platform
from .decode import KIND_NAMES


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
            raise BadBundle(
                ["body", "counter"], f"counter {bundle.counter} does not match the frame header ({counter})"
            )
        if bundle.kind is not None and kind is not None and bundle.kind != kind:
            raise BadBundle(["body", "kind"], f"kind {bundle.kind!r} does not match the frame header ({kind!r})")
    for i, c in enumerate(bundle.copies):
        if c.arrival_utc.tzinfo is None:
            raise BadBundle(["body", "copies", i, "arrival_utc"], "arrival_utc needs a time zone (UTC)")


def _replay(row: BundleRow, digest: str) -> Outcome:
    if row.body_sha256 != digest:
        raise Conflict(
            f"bundle_id {row.bundle_id} was already posted with a different body (received {iso(row.received_at)})"
        )
    return Outcome(201, row.response, replayed=True)


def ingest(pf: Platform, principal: Principal, bundle: Bundle) -> Outcome:
    precheck(bundle)
    text, digest = canonical(bundle)
    db = pf.db
    for _ in range(3):
        try:
            with db.writer_lock():
                if pf.fast_path:
                    body = fastpath.run_one(pf, bundle, text, digest)
                    if body is not None:
                        pf.stats["bundles"] += 1
                        return Outcome(201, body)
                with db.write() as s:
                    row = s.get(BundleRow, bundle.bundle_id)
                    if row is not None:
                        return _replay(row, digest)
                    body = fullpath.process(s, pf, bundle, text, digest)
            pf.stats["bundles"] += 1
            return Outcome(201, body)
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
            k, done = fastpath.run_many(pf, prepared, k)
            for i, body in done:
                out[i] = (201, body, False, None)
                pf.stats["bundles"] += 1
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
