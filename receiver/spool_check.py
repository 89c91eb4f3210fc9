"""What a restarted receiver checks before it trusts its spool file (:class:`receiver.spool.Spool`).

A power cut, a full disk, a bad sector or a wrong copy can leave the spool's main file cut short
or spoilt. SQLite opens some of those silently: a main file cut to 0 bytes is an empty database
to it, even when the ``-wal`` file next to it still holds committed transactions that refer to
pages of the lost main file; accepting new bundles on top would then look healthy and hold
nothing of what was accepted before. :func:`damage` looks at the files before SQLite does;
:func:`quick_check` asks SQLite to verify the opened file (``PRAGMA quick_check``: every page
and record, not the indexes' agreement with their tables; milliseconds for a spool).

Either way the answer is a sentence naming the file and what to do: move the files aside (never
delete them: the ``-wal`` may hold accepted bundles that a recovery tool can read) and restart to
start a new spool. Nothing here deletes or rewrites anything.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

__all__ = ["damage", "quick_check", "advice", "is_damage"]

#: the first 16 bytes of every SQLite 3 database file
MAGIC = b"SQLite format 3\x00"
HEADER_BYTES = 100  #: SQLite's database header
WAL_HEADER_BYTES = 32  #: a WAL without frames is only its header


#: SQLite's primary result codes that mean the file itself is bad (not a lock, not a full disk)
DAMAGE_CODES = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB


def is_damage(e: sqlite3.Error) -> bool:
    """``e`` says the database file is corrupt or not a database."""
    code = getattr(e, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in DAMAGE_CODES
    return "malformed" in str(e) or "not a database" in str(e)


def advice(path: Path) -> str:
    return (
        f"move {path.name} and its -wal/-shm files aside (keep them: they may hold accepted bundles) "
        "and restart to start a new spool"
    )


def damage(path: Path) -> str | None:
    """Why the spool files at ``path`` must not be opened, or None (also when there is no file)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None
    wal = path.with_name(path.name + "-wal")
    try:
        wal_bytes = wal.stat().st_size
    except FileNotFoundError:
        wal_bytes = 0
    if size == 0:
        if wal_bytes > WAL_HEADER_BYTES:  # frames of a database whose main file is gone
            return (
                f"{path}: the spool file is damaged: 0 bytes, while {wal.name} holds {wal_bytes} bytes "
                f"of its transactions; {advice(path)}"
            )
        return None  # a new spool (SQLite writes the header at the first transaction)
    with path.open("rb") as f:
        head = f.read(HEADER_BYTES)
    if len(head) < HEADER_BYTES:
        return f"{path}: the spool file is damaged: {size} bytes, shorter than a SQLite header; {advice(path)}"
    if head[: len(MAGIC)] != MAGIC:
        return f"{path}: not a spool: the file does not start with a SQLite header; {advice(path)}"
    return None


def quick_check(conn: sqlite3.Connection, path: Path) -> str | None:
    """``PRAGMA quick_check`` on the open spool: None if it says ok, else the sentence to refuse with."""
    try:
        rows = conn.execute("PRAGMA quick_check(5)").fetchall()
    except sqlite3.DatabaseError as e:
        return f"{path}: the spool file is damaged ({e}); {advice(path)}"
    found = [line.strip() for r in rows for line in str(r[0]).splitlines()]
    if found == ["ok"]:
        return None
    found = [x for x in found if x and not x.startswith("***")]  # "*** in database main ***"
    what = "; ".join(found[:3]) + (f"; {len(found) - 3} more" if len(found) > 3 else "")
    return f"{path}: the spool file is damaged (SQLite quick_check: {what}); {advice(path)}"
