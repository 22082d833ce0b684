"""Alembic environment: the URL comes from the caller (``services.schema``) or, run by ``alembic`` itself, from settings."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool
from sqlalchemy.engine import Connection

from fernando_telemetry.storage.database import sqlalchemy_url
from fernando_telemetry.storage.migrations.filters import include_object
from fernando_telemetry.storage.models import metadata

config = context.config


def _database_url() -> str:
    url = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url")
    if url:
        return str(url)
    from fernando_telemetry.settings import load_settings  # alembic CLI: this file is the entry point

    settings = load_settings()
    if not settings.database_url:
        raise SystemExit("set DATABASE_URL to the database to migrate")
    return settings.database_url


def run_migrations_offline() -> None:
    context.configure(
        url=sqlalchemy_url(_database_url()),
        target_metadata=metadata,
        literal_binds=True,
        compare_type=True,
        include_object=include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(sqlalchemy_url(_database_url()), poolclass=pool.NullPool, connect_args={"options": "-c timezone=UTC"})
    with engine.connect() as connection:
        _run(connection)
    engine.dispose()


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        compare_type=True,
        include_object=include_object,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
