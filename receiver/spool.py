"""The durable delivery spool: every accepted bundle, on disk, until the platform has it.

One SQLite file (WAL mode). One row per bundle, keyed by ``bundle_id`` (the platform's
idempotency key): putting the same bundle twice keeps one row. A row is ``pending`` until the
platform answered it, then ``delivered`` (2xx, or 409: the platform already holds another body
under this id) or ``rejected`` (422: a schema bug; kept with the platform's detail for
inspection, never retried). Each row carries its attempts, the time of its next attempt, the last
error, the HTTP status and answer, and its created/delivered times.

Durability
----------
:meth:`Spool.put` returns only after the row is committed, and the commit is durable as far as
SQLite promises:

* ``journal_mode=WAL``: a commit appends the transaction to the ``-wal`` file; readers never
  block the writer and a crash at any moment leaves either the whole transaction or none of it.
* ``synchronous=FULL`` (the default here): in WAL mode SQLite fsyncs the WAL at *every* commit.
  With ``NORMAL`` it fsyncs only at checkpoints: a commit then survives ``kill -9`` of the
  process (the WAL frames are already in the OS page cache) but the last transactions can roll
  back after a power cut or a kernel crash. A bundle the receiver has accepted must survive
  both, so FULL: it costs one fsync per commit, which :meth:`Spool.put_many` and the batched
  :meth:`Spool.mark_delivered` amortise. ``synchronous="NORMAL"`` is available for throwaway
  spools (tests, replays).
* the directory is fsynced after the database file is created, so the file's name survives a
  power cut too;
* ``busy_timeout`` lets one writer process and any number of reader processes (metrics, the
  CLI: ``Spool(path, readonly=True)``) share the file; within a process one connection per
  thread and a write lock serialise writers without SQLITE_BUSY spinning.

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
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from receiver import spool_check

log = logging.getLogger("gla.spool")

SCHEMA_VERSION = 1
PENDING, DELIVERED, REJECTED = "pending", "delivered", "rejected"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,    -- arrival order (FIFO delivery)
    bundle_id     TEXT    NOT NULL UNIQUE,              -- the platform's idempotency key
    body          TEXT    NOT NULL,                     -- the bundle JSON, posted verbatim
    status        TEXT    NOT NULL DEFAULT 'pending'
                          CHECK (status IN ('pending', 'delivered', 'rejected')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    next_attempt  REAL    NOT NULL,                     -- unix s, pending rows are due from then
    created       REAL    NOT NULL,                     -- unix s, when the receiver accepted it
    delivered     REAL,                                 -- unix s, when the platform answered
    http_status   INTEGER,                              -- the platform's answer (201, 409, 422)
    response      TEXT,                                 -- its body / detail (JSON or text)
    last_error    TEXT                                  -- the last failed attempt's reason
);
CREATE INDEX IF NOT EXISTS spool_pending_seq ON spool (seq) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS spool_pending_next ON spool (next_attempt) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS spool_done ON spool (delivered) WHERE status != 'pending';
"""

BundleLike = str | bytes | Mapping[str, Any] | Any  # Any: a pydantic model (receiver.contracts.bundle.Bundle)


class SpoolError(Exception):
    pass


class SpoolDamaged(SpoolError):
    """The spool file on disk is damaged (cut short, overwritten, not a database, or failing
    SQLite's quick_check): the message names the file and says what to do. Nothing was changed
    or deleted (:mod:`receiver.spool_check`)."""


class SpoolFull(SpoolError):
    """The disk budget (``max_bytes``) or the disk itself is exhausted. Nothing was written: keep
    the bundle and put it again later (delivery frees room as the platform acknowledges)."""

    def __init__(self, msg: str, *, used_bytes: int | None = None, max_bytes: int | None = None) -> None:
        super().__init__(msg)
        self.used_bytes = used_bytes
        self.max_bytes = max_bytes


@dataclass(frozen=True)
class Item:
    """A pending bundle handed to the deliverer."""

    seq: int
    bundle_id: str
    body: str
    attempts: int
    created: float
    next_attempt: float


def _json_default(o: Any) -> Any:
    if isinstance(o, (datetime, date)):
        return o.isoformat()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def encode(bundle: BundleLike) -> tuple[str, str]:
    """``(bundle_id, body JSON)`` of a Bundle model, a dict, or JSON text."""
    if hasattr(bundle, "model_dump_json"):
        model: Any = bundle  # a pydantic model (BundleLike's Any)
        return str(model.bundle_id), model.model_dump_json()
    if isinstance(bundle, bytes):
        bundle = bundle.decode("utf-8")
    if isinstance(bundle, str):
        d = json.loads(bundle)
        body = bundle
    elif isinstance(bundle, Mapping):
        d = bundle
        body = json.dumps(bundle, separators=(",", ":"), ensure_ascii=False, default=_json_default)
    else:
        raise TypeError(f"cannot spool a {type(bundle).__name__}")
    bid = d.get("bundle_id") if isinstance(d, Mapping) else None
    if not isinstance(bid, str) or not bid:
        raise ValueError("a bundle needs a non-empty string bundle_id")
    return bid, body


def _is_full(e: BaseException) -> bool:
    code = getattr(e, "sqlite_errorcode", None)
    if code is not None and code == getattr(sqlite3, "SQLITE_FULL", 13):
        return True
    return "database or disk is full" in str(e)


class Spool:
    """``Spool(path, max_bytes=None)``: see the module docstring.

    Thread-safe (one SQLite connection per thread, writes serialised by a lock); several
    processes may open the same file, one of them writing.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        max_bytes: int | None = None,
        *,
        synchronous: str = "FULL",
        busy_timeout_s: float = 30.0,
        readonly: bool = False,
    ) -> None:
        if synchronous.upper() not in ("FULL", "NORMAL", "EXTRA"):
            raise ValueError("synchronous must be FULL, EXTRA or NORMAL")
        if max_bytes is not None and max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.synchronous = synchronous.upper()
        self.busy_timeout_s = busy_timeout_s
        self.readonly = readonly
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._wlock = threading.RLock()
        self._closed = False
        self._page_size = 4096
        why = spool_check.damage(self.path)
        if why:
            raise SpoolDamaged(why)
        try:
            if readonly:
                if not self.path.exists():
                    raise FileNotFoundError(self.path)
            else:
                created = not self.path.exists()
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._init_schema()
                if created:
                    self._fsync_dir()
            why = spool_check.quick_check(self._conn(), self.path)
            if why:
                raise SpoolDamaged(why)
            self._page_size = int(self._conn().execute("PRAGMA page_size").fetchone()[0])
        except sqlite3.DatabaseError as e:
            self.close()
            if _is_full(e):
                raise SpoolFull(f"{self.path}: no room to open the spool: {e}") from e
            if spool_check.is_damage(e):
                raise SpoolDamaged(
                    f"{self.path}: the spool file is damaged ({e}); {spool_check.advice(self.path)}"
                ) from e
            raise SpoolError(f"{self.path}: cannot open the spool: {e}") from e
        except SpoolError:
            self.close()
            raise
        log.debug(
            "spool opened",
            extra={
                "event": "spool_open",
                "path": str(self.path),
                "max_bytes": max_bytes,
                "synchronous": self.synchronous,
                "readonly": readonly,
            },
        )

    # -- connections ------------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        if self.readonly:
            c = sqlite3.connect(
                f"file:{self.path}?mode=ro",
                uri=True,
                timeout=self.busy_timeout_s,
                isolation_level=None,
                check_same_thread=False,
            )
        else:
            c = sqlite3.connect(
                str(self.path), timeout=self.busy_timeout_s, isolation_level=None, check_same_thread=False
            )
        c.text_factory = self._text  # damaged text: SpoolDamaged naming the file, not a raw sqlite3 error
        c.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_s * 1000)}")
        if not self.readonly:
            mode = c.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                c.close()
                raise SpoolError(
                    f"{self.path}: SQLite refused WAL mode (got {mode!r}); the spool needs a local file system"
                )
            c.execute(f"PRAGMA synchronous={self.synchronous}")
            c.execute("PRAGMA journal_size_limit=16777216")  # truncate the WAL back to 16 MiB after checkpoints
            if self.max_bytes is not None:
                # cannot go below the current size; SQLite then keeps the current size
                c.execute(f"PRAGMA max_page_count={self._hard_pages()}")
        return c

    def _text(self, b: bytes) -> str:
        try:
            return b.decode("utf-8")
        except UnicodeDecodeError as e:
            raise SpoolDamaged(
                f"{self.path}: the spool file is damaged (a stored text is not UTF-8: {e}); "
                f"{spool_check.advice(self.path)}"
            ) from e

    def _hard_pages(self) -> int:
        """The hard stop lies above the budget: puts stop at ``max_bytes`` (soft check), and the
        headroom keeps the bookkeeping (marking rows delivered, dropping delivered rows) possible
        when the budget is used up; otherwise a full spool could never be emptied."""
        assert self.max_bytes is not None
        headroom = max(self.max_bytes // 8, 64 * self._page_size)
        return max((self.max_bytes + headroom) // self._page_size, 1)

    def _conn(self) -> sqlite3.Connection:
        c = getattr(self._local, "conn", None)
        if c is None:
            if self._closed:
                raise SpoolError("the spool is closed")
            c = self._connect()
            self._local.conn = c
            with self._conns_lock:
                self._conns.append(c)
        return c

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE: takes the write lock up front)."""
        if self.readonly:
            raise SpoolError("the spool was opened read-only")
        with self._wlock:
            c = self._conn()
            c.execute("BEGIN IMMEDIATE")
            try:
                yield c
                c.execute("COMMIT")
            except BaseException:
                if c.in_transaction:
                    try:
                        c.execute("ROLLBACK")
                    except sqlite3.Error:  # pragma: no cover - SQLite rolled back itself
                        pass
                raise

    def _init_schema(self) -> None:
        with self._wlock:
            c = self._conn()
            # max_page_count applies from here on; a fresh schema must fit regardless
            if self.max_bytes is not None:
                c.execute("PRAGMA max_page_count=1073741823")
            try:
                with self._tx() as c:
                    for stmt in _SCHEMA.split(";"):
                        if stmt.strip():
                            c.execute(stmt)
                    v = c.execute("PRAGMA user_version").fetchone()[0]
                    if v == 0:
                        c.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                    elif v > SCHEMA_VERSION:
                        raise SpoolError(f"{self.path}: spool schema {v} is newer than this code ({SCHEMA_VERSION})")
            except sqlite3.OperationalError as e:
                if _is_full(e):
                    raise SpoolFull(f"{self.path}: no room to create the spool: {e}") from e
                raise
            if self.max_bytes is not None:
                self._page_size = int(c.execute("PRAGMA page_size").fetchone()[0])
                c.execute(f"PRAGMA max_page_count={self._hard_pages()}")

    def _fsync_dir(self) -> None:
        try:
            fd = os.open(self.path.parent, os.O_RDONLY)
        except OSError:  # pragma: no cover - e.g. platforms without directory fds
            return
        try:
            os.fsync(fd)
        except OSError:  # pragma: no cover
            pass
        finally:
            os.close(fd)

    # -- budget -----------------------------------------------------------------------------------
    def used_bytes(self) -> int:
        """Bytes of live pages (the file may be larger: free pages are reused first)."""
        c = self._conn()
        pages = c.execute("PRAGMA page_count").fetchone()[0]
        free = c.execute("PRAGMA freelist_count").fetchone()[0]
        return int((pages - free) * self._page_size)

    def size_bytes(self) -> int:
        """The database file and its WAL on disk."""
        n = 0
        for suffix in ("", "-wal"):
            try:
                n += os.path.getsize(str(self.path) + suffix)
            except OSError:
                pass
        return n

    def _need(self, body: str) -> int:
        # the row (with overflow pages for large bodies) plus its index entries
        return int(len(body.encode("utf-8")) * 1.15) + 512

    def _fits(self, c: sqlite3.Connection, need: int) -> tuple[bool, int]:
        if self.max_bytes is None:
            return True, 0
        pages = c.execute("PRAGMA page_count").fetchone()[0]
        free = c.execute("PRAGMA freelist_count").fetchone()[0]
        used = (pages - free) * self._page_size
        return used + need <= self.max_bytes, used

    def _reclaim(self, need: int) -> int:
        """Drop delivered rows, oldest first, worth about ``need`` bytes (x2). Returns rows dropped."""
        target = 2 * need + 4 * self._page_size
        try:
            with self._tx() as c:
                rows = c.execute(
                    "SELECT seq, length(body) FROM spool WHERE status = 'delivered' ORDER BY delivered, seq LIMIT 5000"
                ).fetchall()
                drop, freed = [], 0
                for seq, n in rows:
                    drop.append((seq,))
                    freed += int(n) + 200
                    if freed >= target:
                        break
                if drop:
                    c.executemany("DELETE FROM spool WHERE seq = ?", drop)
        except sqlite3.OperationalError as e:
            if _is_full(e):
                return 0
            raise
        if drop:
            log.info("spool budget: dropped delivered rows", extra={"event": "spool_reclaim", "rows": len(drop)})
        return len(drop)

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

    def checkpoint(self) -> None:
        """Fold the WAL into the database file and truncate it (optional; SQLite does it itself)."""
        with self._wlock:
            self._conn().execute("PRAGMA wal_checkpoint(TRUNCATE)")

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

    # -- lifetime ---------------------------------------------------------------------------------
    def close(self) -> None:
        """Close every connection (call after the threads using the spool stopped)."""
        with self._conns_lock:
            self._closed = True
            conns, self._conns = self._conns, []
        for c in conns:
            try:
                c.close()
            except sqlite3.Error:  # pragma: no cover
                pass
        self._local = threading.local()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Spool({str(self.path)!r}, max_bytes={self.max_bytes})"


class _OverBudget(Exception):
    pass
