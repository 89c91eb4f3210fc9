"""Computing Platform: the Alembic migrations create exactly the models' schema, and go down and up."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from platform_api.core.db import alembic_config, current_revision, head_revision, make_engine, migrate
from platform_api.models import Base


def test_migrations_match_the_models_and_downgrade(platform_db_url):
    eng = make_engine(platform_db_url)
    try:
        assert current_revision(eng) == head_revision()
        with eng.connect() as c:
            diff = compare_metadata(MigrationContext.configure(c, opts={"compare_type": True}), Base.metadata)
        assert diff == [], diff
        with eng.begin() as c:
            command.downgrade(alembic_config(c), "base")
        assert current_revision(eng) is None
        migrate(eng)
        assert current_revision(eng) == head_revision()
    finally:
        eng.dispose()
