"""Power cut: every SQLite connection that commits something acknowledged to another party runs
``synchronous=FULL`` (the WAL is fsynced at each commit, before the answer), the docs say so, and
a platform killed at random points of its commits loses no acknowledged bundle."""

from __future__ import annotations

import re
import threading
from pathlib import Path

from sqlalchemy import event, text
from sqlalchemy.pool import Pool

from gridsim.hostile import commit_kill
from platform_api.core.db import alembic_config, make_engine
from platform_api.testing import bundles_for, fleet, gridmodel, report, slot_time
from receiver.spool import Spool

ROOT = Path(__file__).resolve().parents[1]
FULL = 2  # PRAGMA synchronous: 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA


def _watch_sqlite_checkouts() -> tuple[list[tuple[int, str]], object]:
    """(synchronous, journal_mode) of every pooled SQLite connection handed out from now on, by any engine."""
    seen: list[tuple[int, str]] = []

    def on_checkout(dbapi_conn, rec, proxy):
        if type(dbapi_conn).__module__.startswith("sqlite3"):
            cur = dbapi_conn.cursor()
            seen.append(
                (cur.execute("PRAGMA synchronous").fetchone()[0], cur.execute("PRAGMA journal_mode").fetchone()[0])
            )
            cur.close()

    event.listen(Pool, "checkout", on_checkout)
    return seen, on_checkout


def test_every_platform_connection_path_runs_synchronous_full(platform_make, platform_sqlite_url):
    seen, fn = _watch_sqlite_checkouts()
    try:
        # create_app on SQLite (whatever backend the test is parametrized with): migrate, credentials,
        # the session and the group-commit paths
        p = platform_make(platform_sqlite_url)
        hubs = fleet(3)
        p.import_model(gridmodel(hubs))
        t = slot_time(448_826_400)
        for h in hubs[:2]:  # single posts: the group commit on the event loop
            p.send(h, report(h, t), at=t)
        (b,) = bundles_for(hubs[2], report(hubs[2], t, 1), at=t)  # a batch: the thread pool
        r = p.client.post("/api/v1/bundles/batch", json={"bundles": [b]}, headers=p.auth)
        assert r.status_code == 200 and r.json()["results"][0]["http_status"] == 201, r.text
        with p.pf.db.engine.connect() as c:  # the fast path's raw DB-API cursors come from the same pool
            assert c.execute(text("PRAGMA synchronous")).scalar() == FULL
        # Alembic run from a shell (`alembic upgrade` with a URL, no connection handed over)
        from alembic import command

        cfg = alembic_config()
        url = platform_sqlite_url
        cfg.set_main_option("sqlalchemy.url", url)
        command.upgrade(cfg, "head")
        eng = make_engine(url)
        with eng.connect() as c:
            assert c.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        eng.dispose()
    finally:
        event.remove(Pool, "checkout", fn)
    assert len(seen) >= 5
    assert {s for s, _ in seen} == {FULL}, seen
    assert {j for _, j in seen} == {"wal"}, seen


def test_the_spool_commits_with_synchronous_full_by_default(tmp_path):
    """A bundle the receiver made is durable in its spool before it leaves memory: FULL unless a
    throwaway spool (tests) asks for NORMAL."""
    sp = Spool(tmp_path / "spool.sqlite")
    got: list[int] = []

    def check():
        got.append(sp._conn().execute("PRAGMA synchronous").fetchone()[0])

    ts = [threading.Thread(target=check) for _ in range(3)]  # one connection per thread
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    check()
    sp.close()
    assert got == [FULL] * 4


def test_the_docs_say_what_the_code_does():
    """Every mention of ``synchronous=…`` in the docs is FULL (the platform and the spool both run it)."""
    docs = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "platform_api" / "README.md", ROOT / "README.md"]
    wrong = []
    for f in docs:
        for n, line in enumerate(f.read_text().splitlines(), 1):
            for m in re.finditer(r"synchronous\s*=\s*`?([A-Za-z]+)", line):
                if m.group(1).upper() != "FULL":
                    wrong.append(f"{f.relative_to(ROOT)}:{n}: {line.strip()}")
    assert wrong == []


def test_every_acknowledged_bundle_survives_a_kill_mid_commit(tmp_path):
    res = commit_kill.run(20, seed=3, workdir=str(tmp_path))
    assert res["commit_kill_rounds_with_acks"] == 20  # every kill landed while bundles were flowing
    assert res["commit_kill_acknowledged"] >= 200
    assert res["commit_kill_integrity_ok"] == 20
    assert res["bundles_lost_kill_test"] == 0, res
