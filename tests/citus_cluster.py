"""A throwaway Citus cluster for the tests: a coordinator and workers of the machine's PostgreSQL 15 with Citus.

Each node is an ``EmbeddedPostgres`` given the PostgreSQL 15 ``bin_dir`` and ``shared_preload_libraries=citus``,
initialised in a temporary directory and listening on a free loopback port (as the ``postgres`` system user when
the tests run as root). ``create_database`` makes a database on every node with the extension and the workers
added; ``add_worker`` starts one more node and adds it to every database made so far (for rebalancing).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from fernando_telemetry.storage.embedded import EmbeddedPostgres

__all__ = ["CITUS_BIN_DIR", "CitusCluster"]

CITUS_BIN_DIR = Path(os.environ.get("CITUS_PG_BIN_DIR", "/usr/lib/postgresql/15/bin"))
"""The PostgreSQL whose lib directory holds citus.so (``.ci/run`` builds it into the machine's PostgreSQL 15)."""

NODE_SETTINGS = {
    "shared_preload_libraries": "citus",
    # tenant queries run as the tenant role with SET LOCAL; Citus sends those to the workers only with this
    "citus.propagate_set_commands": "local",
    "max_connections": "300",
    # few shards per table: the fixtures make ~135 daily partitions of 3 tables, each one shard set (production keeps 32)
    "citus.shard_count": "4",
    "max_prepared_transactions": "100",
    # the nodes connect to each other over loopback; libpq would otherwise look for client certificates in $HOME
    "citus.node_conninfo": "sslmode=disable",
    # shard moves (citus_rebalance_start, citus_move_shard_placement) copy a shard and then follow its writes by
    # logical replication, so ingest continues during a rebalance: that needs logical WAL and slots/senders to spare
    "wal_level": "logical",
    "max_replication_slots": "32",
    "max_wal_senders": "32",
}


def _as_system_user() -> str:
    return "postgres" if hasattr(os, "geteuid") and os.geteuid() == 0 else "embedded_postgres"


def start_node(root_dir: Path, *, database: str, settings: dict[str, str]) -> EmbeddedPostgres:
    """Start one throwaway node of the PostgreSQL at ``CITUS_BIN_DIR`` under ``root_dir`` with ``settings``: a cluster
    node (``NODE_SETTINGS``), or a plain node to compare with one (bench/scale_out.py)."""
    node = EmbeddedPostgres(
        root_dir,
        port=0,
        database=database,
        durable=False,
        bin_dir=CITUS_BIN_DIR,
        system_user=_as_system_user(),
        settings=settings,
    )
    node.start()
    return node


@dataclass
class CitusCluster:
    """A coordinator and ``workers`` worker nodes; ``start()`` then ``create_database()``; ``stop()`` removes it."""

    workers: int = 2
    root_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="ft-test-citus-")))
    coordinator: EmbeddedPostgres | None = None
    nodes: list[EmbeddedPostgres] = field(default_factory=list)
    databases: list[str] = field(default_factory=list)

    def start(self) -> str:
        """Start the coordinator and the workers; return the coordinator's ``postgres`` database URL."""
        if not (CITUS_BIN_DIR / "postgres").exists() or not _citus_installed():
            raise RuntimeError(
                f"TEST_CITUS=1 needs Citus in the PostgreSQL at {CITUS_BIN_DIR}: run shared/vendor/citus/build.sh "
                "(or set CITUS_PG_BIN_DIR)"
            )
        self.coordinator = self._node("coordinator")
        for index in range(self.workers):
            self.nodes.append(self._node(f"worker{index + 1}"))
        return self.url

    @property
    def url(self) -> str:
        assert self.coordinator is not None
        return self.coordinator.url

    def create_database(self, name: str) -> str:
        """Create ``name`` on every node with the citus extension, the coordinator registered and the workers
        added; return its URL on the coordinator."""
        assert self.coordinator is not None
        for node in [self.coordinator, *self.nodes]:
            _create_with_citus(node, name)
        with psycopg.connect(_database_url(self.coordinator, name), autocommit=True) as connection:
            connection.execute("SELECT citus_set_coordinator_host('127.0.0.1', %s)", (self.coordinator.port_in_use,))
            for node in self.nodes:
                connection.execute("SELECT citus_add_node('127.0.0.1', %s)", (node.port_in_use,))
                connection.execute("SELECT replicate_reference_tables()")
        self.databases.append(name)
        return _database_url(self.coordinator, name)

    def drop_database(self, name: str) -> None:
        assert self.coordinator is not None
        for node in [self.coordinator, *self.nodes]:
            with psycopg.connect(_database_url(node, "postgres"), autocommit=True) as connection:
                connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        if name in self.databases:
            self.databases.remove(name)

    def add_worker(self) -> EmbeddedPostgres:
        """Start one more worker and add it to every database created so far, with a copy of the reference tables
        (docs/SCALING.md, step 3); its shards stay where they are until a rebalance moves some."""
        assert self.coordinator is not None
        node = self._node(f"worker{len(self.nodes) + 1}")
        self.nodes.append(node)
        for name in self.databases:
            _create_with_citus(node, name)
            with psycopg.connect(_database_url(self.coordinator, name), autocommit=True) as connection:
                connection.execute("SELECT citus_add_node('127.0.0.1', %s)", (node.port_in_use,))
                connection.execute("SELECT replicate_reference_tables()")
        return node

    def stop(self) -> None:
        """Stop every node (workers first) and remove the cluster's directory."""
        for node in reversed(self.nodes):
            node.stop()
        if self.coordinator is not None:
            self.coordinator.stop()
        self.nodes.clear()
        self.coordinator = None
        shutil.rmtree(self.root_dir, ignore_errors=True)

    def _node(self, name: str) -> EmbeddedPostgres:
        return start_node(self.root_dir / name, database="postgres", settings=NODE_SETTINGS)


def _citus_installed() -> bool:
    import subprocess

    pkglibdir = subprocess.run(
        [str(CITUS_BIN_DIR / "pg_config"), "--pkglibdir"], capture_output=True, text=True, check=False
    ).stdout.strip()
    if not pkglibdir:
        pkglibdir = str(CITUS_BIN_DIR.parent / "lib")
    return (Path(pkglibdir) / "citus.so").exists()


def _database_url(node: EmbeddedPostgres, name: str) -> str:
    return f"postgresql://postgres@127.0.0.1:{node.port_in_use}/{name}"


def _create_with_citus(node: EmbeddedPostgres, name: str) -> None:
    with psycopg.connect(_database_url(node, "postgres"), autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with psycopg.connect(_database_url(node, name), autocommit=True) as connection:
        connection.execute("CREATE EXTENSION IF NOT EXISTS citus")
