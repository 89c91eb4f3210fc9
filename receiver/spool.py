"""The durable delivery spool: every accepted bundle, on disk, until the platform has it.

One SQLite file (WAL mode). One row per bundle, keyed by ``bundle_id`` (the platform's
idempotency key): putting the same bundle twice keeps one row. A row is ``pending`` until the
platform answered it, then ``delivered`` (2xx, or 409: the platform already holds another body
under this id) or ``rejected`` (422: a schema bug; kept with the platform's detail for
inspection, never retried). Each row carries its attempts, the time of its next attempt, the last
error, the HTTP status and answer, and its created/delivered times.

Durability: :meth:`Spool.put` returns only after the row is committed (WAL, ``synchronous=FULL``
by default: one fsync per commit, which :meth:`Spool.put_many` and the batched
:meth:`Spool.mark_delivered` amortise); the file, its connections and what SQLite promises are
:mod:`receiver.spool_file`'s.

Disk budget
-----------
``max_bytes`` bounds the live pages of the file (a check before each insert; SQLite's
``max_page_count`` is the hard stop, 1/8 above it so that rows can still be marked delivered and
dropped when the budget is used up; the WAL adds up to a few MiB between checkpoints). When a put
would exceed the budget, delivered rows (history only: the platform has them) are dropped oldest
first; pending and rejected rows are never dropped. If that does not make room, or the disk itself
is full (SQLite's "database or disk is full"), put raises :class:`SpoolFull` and the transaction
is rolled back: nothing half-written, nothing already accepted lost. The caller keeps the bundle
in memory and retries (:meth:`receiver.delivery.Deliverer.submit` does exactly that).

Times are Unix seconds (wall clock: they outlive the process).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from receiver.spool_file import (
    DELIVERED,
    PENDING,
    REJECTED,
    SCHEMA_VERSION,
    BundleLike,
    SpoolDamaged,
    SpoolError,
    SpoolFile,
    SpoolFull,
    _is_full,
    _json_default,
    encode,
)

__all__ = [
    "DELIVERED",
    "PENDING",
    "REJECTED",
    "SCHEMA_VERSION",
    "BundleLike",
    "Item",
    "Spool",
    "SpoolDamaged",
    "SpoolError",
    "SpoolFull",
    "encode",
]

log = logging.getLogger("gla.spool")


@dataclass(frozen=True)
class Item:
    """A pending bundle handed to the deliverer."""

    seq: int
    bundle_id: str
    body: str
    attempts: int
    created: float
    next_attempt: float


class Spool(SpoolFile):
    """``Spool(path, max_bytes=None)``: see the module docstring; the file, its connections and
    the constructor's options are :class:`receiver.spool_file.SpoolFile`'s.

    Thread-safe (one SQLite connection per thread, writes serialised by a lock); several
    processes may open the same file, one of them writing.
    """

    # -- writing ----------------------------------------------------------------------------------
    def put(self, bundle: BundleLike, *, now: float | None = None) -> bool:
        """Accept one bundle; durable when this returns. True if new, False if ``bundle_id`` was
        already spooled (the first body is kept). Raises :class:`SpoolFull`."""
        return self.put_many([bundle], now=now) == 1

    def put_many(self, bundles: Iterable[BundleLike], *, now: float | None = None) -> int:
        """Accept several bundles in one transaction (one fsync); all or none. Returns how many
        were new. Raises :class:`SpoolFull` (then none was written)."""
        rows = [encode(b) for b in bundles]
        if not rows:
            return 0
        t = time.time() if now is None else float(now)
        need = sum(self._need(body) for _, body in rows)
        for attempt in (0, 1):
            used = None
            try:
                with self._tx() as c:
                    fresh = [
                        (bid, body)
                        for bid, body in rows
                        if c.execute("SELECT 1 FROM spool WHERE bundle_id = ?", (bid,)).fetchone() is None
                    ]
                    if not fresh:
                        return 0
                    ok, used = self._fits(c, sum(self._need(body) for _, body in fresh))
                    if not ok:
                        raise _OverBudget()
                    n = 0
                    for bid, body in fresh:
                        cur = c.execute(
                            "INSERT OR IGNORE INTO spool (bundle_id, body, status, attempts, next_attempt, "
                            "created) VALUES (?, ?, 'pending', 0, ?, ?)",
                            (bid, body, t, t),
                        )
                        n += cur.rowcount
                    return n
            except _OverBudget:
                if attempt == 0 and self._reclaim(need):
                    continue
                raise SpoolFull(
                    f"spool {self.path} is over its budget: {used} of {self.max_bytes} bytes used, "
                    f"{need} more needed; pending bundles wait for the platform",
                    used_bytes=used,
                    max_bytes=self.max_bytes,
                ) from None
            except sqlite3.OperationalError as e:
                if not _is_full(e):
                    raise
                if attempt == 0 and self._reclaim(need):
                    continue
                raise SpoolFull(
                    f"spool {self.path}: database or disk is full ({e}); the bundle was not written",
                    max_bytes=self.max_bytes,
                ) from e
        raise AssertionError("unreachable")  # pragma: no cover

    def mark_delivered(
        self,
        ids: str | Iterable[str],
        status_code: int = 201,
        *,
        response: None | str | Mapping[str, str | None] = None,
        now: float | None = None,
    ) -> int:
        """The platform answered these (2xx, or 409 with ``response`` its detail). Returns rows changed."""
        return self._finish(ids, DELIVERED, status_code, response, now)

    def mark_rejected(
        self,
        ids: str | Iterable[str],
        status_code: int = 422,
        *,
        response: None | str | Mapping[str, str | None] = None,
        now: float | None = None,
    ) -> int:
        """The platform refused these for good (422: schema); kept for inspection, never retried."""
        return self._finish(ids, REJECTED, status_code, response, now)

    def _finish(self, ids, status: str, code: int, response, now) -> int:
        ids = [ids] if isinstance(ids, str) else list(ids)
        if not ids:
            return 0
        t = time.time() if now is None else float(now)

        def resp(i: str) -> str | None:
            r = response.get(i) if isinstance(response, Mapping) else response
            return None if r is None else (r if isinstance(r, str) else json.dumps(r, default=_json_default))

        keep_response = True
        for _ in range(2):
            try:
                with self._tx() as c:
                    n = 0
                    for i in ids:
                        n += c.execute(
                            "UPDATE spool SET status = ?, http_status = ?, response = ?, delivered = ?, "
                            "attempts = attempts + 1 WHERE bundle_id = ? AND status = 'pending'",
                            (status, int(code), resp(i) if keep_response else None, t, i),
                        ).rowcount
                    return n
            except sqlite3.OperationalError as e:
                if not _is_full(e):
                    raise
                if not keep_response:
                    raise SpoolFull(f"spool {self.path}: no room even to mark rows {status} ({e})") from e
                keep_response = False  # the status alone does not grow the rows
                log.warning(
                    "spool full: marking rows without the platform's answer",
                    extra={"event": "spool_full_mark", "count": len(ids), "status": status},
                )
        raise AssertionError("unreachable")  # pragma: no cover

    def mark_failed(self, ids: str | Iterable[str], error: str, next_attempt: float) -> int:
        """An attempt failed (transient): count it, remember why, retry from ``next_attempt``."""
        ids = [ids] if isinstance(ids, str) else list(ids)
        if not ids:
            return 0
        with self._tx() as c:
            return sum(
                c.execute(
                    "UPDATE spool SET attempts = attempts + 1, last_error = ?, next_attempt = ? "
                    "WHERE bundle_id = ? AND status = 'pending'",
                    (str(error)[:1000], float(next_attempt), i),
                ).rowcount
                for i in ids
            )

    def release(self, now: float | None = None) -> int:
        """Make every backed-off pending row due now (the platform is reachable again)."""
        t = time.time() if now is None else float(now)
        with self._tx() as c:
            return c.execute(
                "UPDATE spool SET next_attempt = ? WHERE status = 'pending' AND next_attempt > ?", (t, t)
            ).rowcount

    def requeue(self, ids: str | Iterable[str], now: float | None = None) -> int:
        """Operator action: send delivered/rejected rows again (e.g. after fixing a schema bug)."""
        ids = [ids] if isinstance(ids, str) else list(ids)
        t = time.time() if now is None else float(now)
        with self._tx() as c:
            return sum(
                c.execute(
                    "UPDATE spool SET status = 'pending', next_attempt = ?, delivered = NULL WHERE bundle_id = ?",
                    (t, i),
                ).rowcount
                for i in ids
            )

    def purge(self, older_than_days: float = 7.0, now: float | None = None) -> int:
        """Housekeeping: drop delivered rows answered more than ``older_than_days`` ago (rejected and
        pending rows stay). Returns rows dropped."""
        t = time.time() if now is None else float(now)
        with self._tx() as c:
            n = c.execute(
                "DELETE FROM spool WHERE status = 'delivered' AND delivered < ?", (t - older_than_days * 86400.0,)
            ).rowcount
        if n:
            log.info(
                "spool housekeeping", extra={"event": "spool_purge", "rows": n, "older_than_days": older_than_days}
            )
        return n

    # -- reading ----------------------------------------------------------------------------------
    def due(self, limit: int = 100, now: float | None = None) -> list[Item]:
        """Pending bundles whose next attempt is due, oldest first."""
        t = time.time() if now is None else float(now)
        rows = (
            self._conn()
            .execute(
                "SELECT seq, bundle_id, body, attempts, created, next_attempt FROM spool INDEXED BY spool_pending_seq "
                "WHERE status = 'pending' AND next_attempt <= ? ORDER BY seq LIMIT ?",
                (t, int(limit)),
            )
            .fetchall()
        )
        return [Item(*r) for r in rows]

    def next_due(self) -> float | None:
        """When the earliest pending bundle is due (None: nothing pending)."""
        r = self._conn().execute("SELECT MIN(next_attempt) FROM spool WHERE status = 'pending'").fetchone()
        return None if r[0] is None else float(r[0])

    def depth(self) -> int:
        """Pending bundles."""
        return int(self._conn().execute("SELECT COUNT(*) FROM spool WHERE status = 'pending'").fetchone()[0])

    def counts(self) -> dict[str, int]:
        out = {PENDING: 0, DELIVERED: 0, REJECTED: 0}
        for status, n in self._conn().execute("SELECT status, COUNT(*) FROM spool GROUP BY status"):
            out[status] = int(n)
        return out

    def total(self) -> int:
        """Rows of every status (accepted bundles not yet purged)."""
        return int(self._conn().execute("SELECT COUNT(*) FROM spool").fetchone()[0])

    def oldest_pending_age_s(self, now: float | None = None) -> float:
        """Age of the oldest pending bundle (0 when none)."""
        r = (
            self._conn()
            .execute(
                "SELECT created FROM spool INDEXED BY spool_pending_seq WHERE status = 'pending' ORDER BY seq LIMIT 1"
            )
            .fetchone()
        )
        if r is None:
            return 0.0
        return max(0.0, (time.time() if now is None else float(now)) - float(r[0]))

    def contains(self, bundle_id: str) -> bool:
        return self._conn().execute("SELECT 1 FROM spool WHERE bundle_id = ?", (bundle_id,)).fetchone() is not None

    def get(self, bundle_id: str) -> dict | None:
        """One row as a dict (``body`` as text), or None."""
        c = self._conn()
        cur = c.execute("SELECT * FROM spool WHERE bundle_id = ?", (bundle_id,))
        r = cur.fetchone()
        return None if r is None else dict(zip([d[0] for d in cur.description], r))

    def rows(self, status: str | None = None, limit: int = 1000, offset: int = 0) -> list[dict]:
        """Rows (without bodies) for inspection, oldest first; e.g. ``rows('rejected')``."""
        q = (
            "SELECT seq, bundle_id, status, attempts, next_attempt, created, delivered, http_status, response, "
            "last_error FROM spool"
        )
        args: list = []
        if status:
            q += " WHERE status = ?"
            args.append(status)
        q += " ORDER BY seq LIMIT ? OFFSET ?"
        cur = self._conn().execute(q, (*args, int(limit), int(offset)))
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]

    def ids(self, status: str | None = None) -> list[str]:
        q = "SELECT bundle_id FROM spool"
        args: tuple[str, ...] = ()
        if status:
            q, args = q + " WHERE status = ?", (status,)
        return [r[0] for r in self._conn().execute(q + " ORDER BY seq", args)]


class _OverBudget(Exception):
    pass
