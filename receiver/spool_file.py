"""The spool's SQLite file: the table of bundles (one row per ``bundle_id``), its connections,
write transactions, the disk budget's bookkeeping and the errors; :mod:`receiver.spool` keeps the
queue (putting, marking, the due rows) on top of it.

Durability
----------
:meth:`receiver.spool.Spool.put` returns only after the row is committed, and the commit is
durable as far as SQLite promises:

* ``journal_mode=WAL``: a commit appends the transaction to the ``-wal`` file; readers never
  block the writer and a crash at any moment leaves either the whole transaction or none of it.
* ``synchronous=FULL`` (the default here): in WAL mode SQLite fsyncs the WAL at *every* commit.
  With ``NORMAL`` it fsyncs only at checkpoints: a commit then survives ``kill -9`` of the
  process (the WAL frames are already in the OS page cache) but the last transactions can roll
  back after a power cut or a kernel crash. A bundle the receiver has accepted must survive
  both, so FULL: it costs one fsync per commit, which :meth:`receiver.spool.Spool.put_many` and
  the batched :meth:`receiver.spool.Spool.mark_delivered` amortise. ``synchronous="NORMAL"`` is
  available for throwaway spools (tests, replays).
* the directory is fsynced after the database file is created, so the file's name survives a
  power cut too;
* ``busy_timeout`` lets one writer process and any number of reader processes (metrics, the
  CLI: ``Spool(path, readonly=True)``) share the file; within a process one connection per
  thread and a write lock serialise writers without SQLITE_BUSY spinning.

A file that is damaged (cut short, overwritten, not a database, failing SQLite's quick_check)
raises :class:`SpoolDamaged` naming it, and nothing is changed (:mod:`receiver.spool_check`).
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any, Self

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


class SpoolFile:
    """The spool's SQLite file (see the module docstring); :class:`receiver.spool.Spool` is the
    queue on it. Thread-safe: one SQLite connection per thread, writes serialised by a lock."""

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

    def checkpoint(self) -> None:
        """Fold the WAL into the database file and truncate it (optional; SQLite does it itself)."""
        with self._wlock:
            self._conn().execute("PRAGMA wal_checkpoint(TRUNCATE)")

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

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, max_bytes={self.max_bytes})"
