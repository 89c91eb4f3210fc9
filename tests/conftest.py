"""Shared fixtures. Platform fixtures (prefix ``platform_``): a migrated database per test, on
SQLite always and also on PostgreSQL when ``GLA_TEST_DATABASE_URL`` is set."""
from __future__ import annotations

import os
import shutil

import pytest

PLATFORM_PG_URL = os.environ.get("GLA_TEST_DATABASE_URL")
PLATFORM_BACKENDS = ["sqlite"] + (["postgresql"] if PLATFORM_PG_URL else [])


@pytest.fixture(scope="session")
def platform_sqlite_template(tmp_path_factory):
    from platform_api.core.db import make_engine, migrate

    path = tmp_path_factory.mktemp("platform-template") / "template.db"
    eng = make_engine(f"sqlite:///{path}")
    migrate(eng)
    eng.dispose()
    return path


def platform_reset_postgres(url: str) -> None:
    from sqlalchemy import text

    from platform_api.core.db import make_engine, migrate
    from platform_api.models import Base

    eng = make_engine(url)
    migrate(eng)
    names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with eng.begin() as c:
        c.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    eng.dispose()


@pytest.fixture(params=PLATFORM_BACKENDS)
def platform_db_url(request, tmp_path, platform_sqlite_template):
    """A migrated, empty database: a copy of the SQLite template, or the truncated PostgreSQL one."""
    if request.param == "sqlite":
        dst = tmp_path / "platform.db"
        shutil.copy(platform_sqlite_template, dst)
        return f"sqlite:///{dst}"
    platform_reset_postgres(PLATFORM_PG_URL)
    return PLATFORM_PG_URL


@pytest.fixture
def platform_sqlite_url(tmp_path, platform_sqlite_template):
    """A second database when a test needs two platforms (always SQLite)."""
    dst = tmp_path / "platform2.db"
    shutil.copy(platform_sqlite_template, dst)
    return f"sqlite:///{dst}"


@pytest.fixture
def platform_make(platform_db_url):
    """``platform_make(**settings)`` -> a :class:`platform_api.testing.Harness` on this test's database."""
    from platform_api.testing import Harness

    made = []

    def make(database_url: str | None = None, **overrides):
        h = Harness(database_url or platform_db_url, **overrides)
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()


@pytest.fixture
def platform(platform_make):
    return platform_make()
