"""Alembic environment of the Computing Platform.

Run programmatically by :func:`platform_api.core.db.migrate` (the app does this at start-up) with
the connection in ``config.attributes["connection"]``. From a shell:

    python -m platform_api.migrate            # upgrade $GLA_DATABASE_URL to head
"""

from __future__ import annotations

from alembic import context

from platform_api.core.db import make_engine
from platform_api.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    conn = config.attributes.get("connection")
    if conn is not None:
        _run(conn)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        from platform_api.core.config import Settings

        url = Settings.from_env().database_url
    engine = make_engine(url)  # the platform's own connection settings (SQLite: WAL, synchronous=FULL)
    try:
        with engine.connect() as connection:
            _run(connection)
            connection.commit()
    finally:
        engine.dispose()


def run_migrations_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
