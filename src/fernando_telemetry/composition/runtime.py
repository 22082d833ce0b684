"""Where the database comes from: ``DATABASE_URL`` when set, else the embedded cluster. Entry-point code."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterator

from sqlalchemy import Engine

from fernando_telemetry.settings import Settings
from fernando_telemetry.storage.database import make_engine, sqlalchemy_url
from fernando_telemetry.storage.embedded import EmbeddedPostgres

__all__ = ["EMBEDDED_DIR_NAME", "database_engine", "database_url", "embedded_cluster", "secret_key"]

EMBEDDED_DIR_NAME = "postgres-18"


SECRET_KEY_FILE = "secret_key"


def secret_key(settings: Settings) -> str:
    """The configured secret key, or the one generated at first use and kept (0600) in the data directory."""
    if settings.secret_key:
        return settings.secret_key
    path = settings.data_dir / SECRET_KEY_FILE
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(32)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return path.read_text().strip()
    with os.fdopen(descriptor, "w") as handle:
        handle.write(key + "\n")
    return key


def embedded_cluster(settings: Settings) -> EmbeddedPostgres:
    return EmbeddedPostgres(
        settings.data_dir / EMBEDDED_DIR_NAME,
        host=settings.embedded_host,
        port=settings.embedded_port,
        database=settings.embedded_database,
    )


@contextlib.contextmanager
def database_url(settings: Settings, *, note: Callable[[str], None] = lambda message: None) -> Iterator[str]:
    """Yield the URL to use; an embedded server started here is stopped on the way out."""
    if settings.database_url:
        sqlalchemy_url(settings.database_url)  # a clear error for a malformed URL, before anything starts
        yield settings.database_url
        return
    cluster = embedded_cluster(settings)
    url = cluster.start()
    if cluster.started_here:
        note(f"started embedded PostgreSQL 18 in {cluster.pgdata} at {url}")
    else:
        note(f"using embedded PostgreSQL 18 already running in {cluster.pgdata} at {url}")
    try:
        yield url
    finally:
        if cluster.started_here:
            cluster.stop()
            note("stopped embedded PostgreSQL")


@contextlib.contextmanager
def database_engine(
    settings: Settings, *, note: Callable[[str], None] = lambda message: None, pool_size: int = 1
) -> Iterator[Engine]:
    """Yield an engine on the database of ``database_url``; the pool is closed on the way out."""
    with database_url(settings, note=note) as url:
        engine = make_engine(url, pool_size=pool_size, connect_timeout_s=settings.db_connect_timeout_s)
        try:
            with engine.connect():  # a database that cannot be reached fails here, before any work or progress bar
                pass
            yield engine
        finally:
            engine.dispose()
