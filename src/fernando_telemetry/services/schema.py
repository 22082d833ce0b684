"""Schema migrations as use cases: upgrade, downgrade, current revision, and drift against the models."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from fernando_telemetry.storage import citus
from fernando_telemetry.storage.migrations.filters import include_object
from fernando_telemetry.storage.models import metadata

__all__ = ["SchemaState", "current", "distribute", "downgrade", "drift", "head", "upgrade"]

SCRIPT_LOCATION = "fernando_telemetry.storage:migrations"


@dataclass(frozen=True)
class SchemaState:
    current: str | None
    head: str

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


def _config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.attributes["database_url"] = engine.url.render_as_string(hide_password=False)
    return config


def upgrade(engine: Engine, *, revision: str = "head") -> citus.CitusLayout | None:
    """Apply revisions up to ``revision`` (each revision commits on its own); on a database with the citus
    extension, then give the tables their Citus placement (``storage.citus``) and return what changed."""
    config = _config(engine)
    with engine.connect() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
        connection.commit()
    return distribute(engine)


def distribute(engine: Engine) -> citus.CitusLayout | None:
    """On Citus, the declared layout in one transaction (idempotent); None on plain PostgreSQL."""
    with engine.begin() as connection:
        if not citus.has_citus(connection):
            return None
        return citus.distribute(connection)


def downgrade(engine: Engine, *, revision: str) -> None:
    """Revert revisions down to ``revision`` (``base`` removes the whole schema)."""
    config = _config(engine)
    with engine.connect() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)
        connection.commit()


def head() -> str:
    script = ScriptDirectory.from_config(_config_without_engine())
    revision = script.get_current_head()
    assert revision is not None
    return revision


def current(engine: Engine) -> SchemaState:
    with engine.connect() as connection:
        revision = MigrationContext.configure(connection).get_current_revision()
    return SchemaState(current=revision, head=head())


def drift(engine: Engine) -> list[Any]:
    """Differences between the models and the migrated database; empty when they agree."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True, "include_object": include_object})
        return list(compare_metadata(context, metadata))


def _config_without_engine() -> Config:
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    return config
