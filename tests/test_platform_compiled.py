"""Computing Platform: Core statements on a DB-API cursor (``platform_api.core.compiled``) write and
read exactly what ``Connection.execute`` does, and no module writes SQL naming columns by hand."""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Table, bindparam, insert, select, update

from platform_api.core.compiled import Cursor
from platform_api.core.db import Database
from platform_api.models import BundleRow, Message

assert isinstance(Message.__table__, Table)  # a declarative class maps onto one Table
M = Message.__table__
T0 = datetime(2026, 11, 22, 0, 0, 0, 250_000, tzinfo=UTC)
BY_ID = select(M).where(M.c.id == bindparam("id"))
BY_HUB = (
    select(M.c.counter, M.c.arrival_utc, M.c.fields, M.c.late, M.c.receptions)
    .where(M.c.hub_id == bindparam("hub_id"))
    .order_by(M.c.counter)
)
SET_COLUMNS = update(M).where(M.c.id == bindparam("where_id"))
COUNT = update(M).where(M.c.id == bindparam("message_id")).values(receptions=M.c.receptions + 1)  # a literal
PRIOR = select(M.c.id, M.c.frame_hex, M.c.fields).where(
    M.c.hub_id == bindparam("hub_id"), M.c.counter == bindparam("counter")
)


def _msg(base: int, k: int) -> dict:
    return {
        "hub_id": 7,
        "counter": base + k,
        "kind": "alert",
        "frame_hex": "ab" * 32,
        "bundle_id": f"b{base + k}",
        "substation_id": "sub-1",
        "arrival_utc": T0 + timedelta(seconds=k),
        "slot": 100 + k,
        "fields": {"v": [1.5, None], "name": "sag"},
        "bus": 0,
        "feeder": 1,
        "phase": "B",
        "confidence": 0.75,
        "late": k % 2 == 1,
    }


@pytest.fixture
def db(platform_db_url):
    d = Database(platform_db_url)
    yield d
    d.dispose()


def _cursor_run(db: Database, fn):
    dbapi = db.engine.raw_connection()
    try:
        out = fn(Cursor(dbapi, db.statements))
        dbapi.commit()
        return out
    finally:
        dbapi.close()


def _connection_run(db: Database, fn):
    with db.engine.begin() as c:
        return fn(c)


def _write(conn, base: int) -> list:
    """Inserts (RETURNING, column defaults left out, executemany), updates (a literal, columns
    given), reads back; the same code on a Connection and on a Cursor."""
    ids = [conn.execute(insert(M).returning(M.c.id), _msg(base, k)).scalar_one() for k in range(3)]
    conn.execute(insert(M), [_msg(base, k) for k in range(3, 6)])  # executemany
    conn.execute(COUNT, {"message_id": ids[0]})
    conn.execute(
        SET_COLUMNS,
        {"where_id": ids[1], "fields": {"changed": True}, "late": True, "arrival_utc": T0 - timedelta(days=1)},
    )
    prior = conn.execute(PRIOR, {"hub_id": 7, "counter": base + 2}).first()
    return [tuple(r) for r in conn.execute(BY_HUB, {"hub_id": 7}).all() if r[0] >= base] + [tuple(prior)]


def test_cursor_writes_and_reads_as_connection_execute(db):
    via_connection = _connection_run(db, lambda c: _write(c, 0))
    via_cursor = _cursor_run(db, lambda c: _write(c, 1000))
    shift = [(r[0] - 1000,) + tuple(r[1:]) for r in via_cursor[:-1]]
    assert shift == via_connection[:-1]
    assert via_cursor[-1][1:3] == via_connection[-1][1:3]
    counter, arrival, fields, late, receptions = via_cursor[0]
    assert arrival == T0 and arrival.tzinfo is not None
    assert fields == {"v": [1.5, None], "name": "sag"} and late is False and receptions == 2
    assert via_cursor[1][1:4] == (T0 - timedelta(days=1), {"changed": True}, True)
    # the rows as the ORM reads them: defaults filled in (seg_index 0, seg_count 1, receptions 1)
    with db.session() as s:
        got = {m.counter: m for m in s.scalars(select(Message)).all()}
    for k in range(6):
        a, b = got[k], got[1000 + k]
        assert (a.seg_index, a.seg_count, a.slot, a.late, a.fields, a.arrival_utc) == (
            b.seg_index,
            b.seg_count,
            b.slot,
            b.late,
            b.fields,
            b.arrival_utc,
        )
    assert (got[1005].seg_index, got[1005].seg_count, got[1005].receptions) == (0, 1, 1)


def test_cursor_fills_callable_defaults_and_caches_plans(db):
    b = BundleRow.__table__
    row = {
        "bundle_id": "x" * 16,
        "receiver_id": "rx-1",
        "substation_id": "sub-1",
        "body_sha256": "0" * 64,
        "body": "{}",
        "created_utc": T0,
        "arrival_utc": T0,
        "channel": 1,
        "code": 0,
        "slot": None,
        "crc_ok": False,
        "status": "no_frame",
        "response": {"a": 1},
    }
    read = select(b.c.received_at, b.c.crc_ok, b.c.response, b.c.hub_id)
    before = datetime.now(UTC)

    def go(c):
        c.execute(insert(b), row)  # received_at: the column's default (utcnow)
        return c.execute(read).all()

    ((received_at, crc_ok, response, hub_id),) = _cursor_run(db, go)
    assert before <= received_at <= datetime.now(UTC)
    assert (crc_ok, response, hub_id) == (False, {"a": 1}, None)
    n = len(db.statements._plans)
    assert _cursor_run(db, lambda c: c.execute(read).all()) == [(received_at, crc_ok, response, hub_id)]
    assert len(db.statements._plans) == n  # compiled once per statement and parameter names
    with pytest.raises(KeyError, match="'id' missing"):  # as Connection.execute, a value is required
        _cursor_run(db, lambda c: c.execute(BY_ID, {}))


def test_no_hand_written_sql_naming_columns():
    """SQL is built with Core from the models (the migrations aside): a string that starts like a
    DML statement is hand-written SQL that a schema change would have to find."""
    root = Path(__file__).resolve().parents[1] / "platform_api"
    dml = ("SELECT ", "INSERT ", "UPDATE ", "DELETE ")
    found = []
    for p in sorted(root.rglob("*.py")):
        if "versions" in p.parts:
            continue
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                v = node.value.lstrip().upper()
                if v.startswith(dml) and v.strip() != "SELECT 1":
                    found.append(f"{p.relative_to(root)}:{node.lineno}: {node.value[:60]!r}")
    assert found == []


def test_utc_datetime_on_sqlite_reads_and_writes_what_sqlalchemys_datetime_does():
    """UTCDateTime converts SQLite's text itself (one step, the C isoformat/fromisoformat): the
    same text as SQLAlchemy's DATETIME storage format, and the same datetimes read back."""
    import random

    from sqlalchemy.dialects import sqlite
    from sqlalchemy.types import TypeDecorator

    from platform_api.core.db import UTCDateTime

    d = sqlite.dialect()
    t = UTCDateTime().dialect_impl(d)
    fast_bind, fast_result = t.bind_processor(d), t.result_processor(d, None)
    ref_bind, ref_result = TypeDecorator.bind_processor(t, d), TypeDecorator.result_processor(t, d, None)
    rng = random.Random(5)
    values = [
        None,
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999),
        datetime(999, 5, 6, 7, 8, 9),
        datetime(2026, 11, 22, 0, 0, 0, 250_000, tzinfo=timezone(timedelta(hours=-5))),
    ]
    for _ in range(2000):
        v = datetime(1970, 1, 1) + timedelta(seconds=rng.uniform(0, 7e9))
        if rng.random() < 0.3:
            v = v.replace(microsecond=0)
        if rng.random() < 0.7:
            v = v.replace(tzinfo=timezone(timedelta(minutes=rng.randrange(-720, 841, 15))))
        values.append(v)
    for v in values:
        text = fast_bind(v)
        assert text == ref_bind(v)
        assert fast_result(text) == ref_result(text)
        assert text is None or fast_result(text).tzinfo is not None
