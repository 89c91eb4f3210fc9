"""Engine, sessions and migrations.

SQLite (a file; the embedded default) or PostgreSQL (``postgresql+psycopg://``), chosen by the URL.
The schema is owned by Alembic (``platform_api/alembic``); :func:`migrate` brings a database to
the head revision and runs when the app is created, so a fresh file or an empty PostgreSQL
database is ready without any manual step.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import DateTime, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool
from sqlalchemy.types import TypeDecorator

from .compiled import Statements

ALEMBIC_DIR = Path(__file__).resolve().parent.parent / "alembic"


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    # SQLite: the text SQLAlchemy's DATETIME stores ('YYYY-MM-DD HH:MM:SS.ffffff', here in UTC),
    # written and read in one step with the C isoformat/fromisoformat (the hot path of ingest
    # converts a few per bundle); tests/test_platform_compiled.py checks they agree.
    def bind_processor(self, dialect):
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)
        utc = UTC

        def process(value):
            if value is None:
                return None
            if value.tzinfo is None:
                value = value.replace(tzinfo=utc)
            return value.astimezone(utc).replace(tzinfo=None).isoformat(" ", "microseconds")

        return process

    def result_processor(self, dialect, coltype):
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)
        return self._from_sqlite

    @staticmethod
    def _from_sqlite(value):
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def make_engine(url: str, echo: bool = False) -> Engine:
    if url.startswith("sqlite"):
        memory = url in ("sqlite://", "sqlite:///:memory:")
        kw: dict = {"connect_args": {"check_same_thread": False, "timeout": 30}}
        if memory:
            kw["poolclass"] = StaticPool
        else:
            path = url.split("///", 1)[-1]
            if path:
                Path(path).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
        eng = create_engine(url, echo=echo, **kw)

        @event.listens_for(eng, "connect")
        def _pragmas(dbapi_conn, _rec):  # pragma: no cover - exercised by every sqlite test
            cur = dbapi_conn.cursor()
            if not memory:
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")  # a 201 must survive a power cut, not only a kill
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return eng
    return create_engine(url, echo=echo, pool_pre_ping=True, pool_size=10, max_overflow=10)


class Database:
    """One engine + session factory; a process-wide write lock serialises SQLite writers."""

    def __init__(self, url: str, echo: bool = False) -> None:
        self.url = url
        self.engine = make_engine(url, echo)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False, autoflush=False)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        dbapi = self.engine.dialect.dbapi
        assert dbapi is not None  # create_engine has imported the driver module
        self.dbapi_integrity_error = dbapi.IntegrityError
        # SQLite allows one writer: take the lock around write transactions instead of
        # spinning on SQLITE_BUSY. PostgreSQL uses row locks (SELECT ... FOR UPDATE).
        self._lock = threading.RLock() if self.is_sqlite else None
        #: Core statements compiled for this database, run on DB-API cursors (the fast path of ingest)
        self.statements = Statements(self.engine.dialect)

    @contextmanager
    def session(self) -> Iterator[Session]:
        s = self.sessionmaker()
        try:
            yield s
        finally:
            s.close()

    @contextmanager
    def writer_lock(self) -> Iterator[None]:
        """Held around a write transaction on SQLite (re-entrant); a no-op on PostgreSQL."""
        if self._lock is None:
            yield
            return
        with self._lock:
            yield

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session for one write transaction (commit on success, rollback on error)."""
        if self._lock is not None:
            self._lock.acquire()
        try:
            s = self.sessionmaker()
            try:
                yield s
                s.commit()
            except BaseException:
                s.rollback()
                raise
            finally:
                s.close()
        finally:
            if self._lock is not None:
                self._lock.release()

    def dispose(self) -> None:
        self.engine.dispose()


def alembic_config(connection=None):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(ALEMBIC_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the database to ``revision`` (idempotent)."""
    from alembic import command

    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()
