"""``fernando-telemetry serve`` as a user runs it: embedded database, health routes, clean stop on signals."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest

from fernando_telemetry.storage.embedded import EmbeddedPostgres

SERVE = [sys.executable, "-m", "fernando_telemetry", "serve"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class RunningServer:
    process: subprocess.Popen[str]
    base_url: str
    data_dir: Path
    pg_port: int

    def postmaster_pid(self) -> int:
        pid_file = self.data_dir / "postgres-18" / "pgdata" / "postmaster.pid"
        return int(pid_file.read_text().splitlines()[0])


def _wait_ready(base_url: str, process: subprocess.Popen[str], timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"serve exited early with {process.returncode}: {process.stdout.read() if process.stdout else ''}"
            )
        try:
            if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError("serve did not become ready in time")


@pytest.fixture()
def running_server() -> Iterator[RunningServer]:
    data_dir = Path(tempfile.mkdtemp(prefix="ft-serve-"))
    port, pg_port = _free_port(), _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "FERNANDO_TELEMETRY_DATABASE_URL")},
        "FERNANDO_TELEMETRY_DATA_DIR": str(data_dir),
        "FERNANDO_TELEMETRY_EMBEDDED_PORT": str(pg_port),
    }
    process = subprocess.Popen(
        [*SERVE, "--host", "127.0.0.1", "--port", str(port), "--otlp-grpc-port", str(_free_port())],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    server = RunningServer(process, f"http://127.0.0.1:{port}", data_dir, pg_port)
    try:
        _wait_ready(server.base_url, process)
        yield server
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)
        pid_file = data_dir / "postgres-18" / "pgdata" / "postmaster.pid"
        if pid_file.exists():
            try:
                psutil.Process(int(pid_file.read_text().splitlines()[0])).terminate()
            except (psutil.NoSuchProcess, ValueError, FileNotFoundError):
                pass


class TestServe:
    @pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
    def test_serves_health_and_docs_then_stops_cleanly(self, running_server: RunningServer, stop_signal: signal.Signals) -> None:
        """Health, readiness and the OpenAPI page answer; a signal stops the server and its embedded PostgreSQL."""
        base = running_server.base_url
        assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
        assert httpx.get(f"{base}/readyz").status_code == 200
        docs = httpx.get(f"{base}/docs")
        assert docs.status_code == 200 and "swagger" in docs.text.lower()
        assert "/readyz" in httpx.get(f"{base}/openapi.json").json()["paths"]
        postmaster = running_server.postmaster_pid()

        running_server.process.send_signal(stop_signal)
        assert running_server.process.wait(60) == 0
        output = running_server.process.stdout.read() if running_server.process.stdout else ""
        assert "stopped embedded PostgreSQL" in output
        assert not psutil.pid_exists(postmaster) or psutil.Process(postmaster).status() == psutil.STATUS_ZOMBIE

    def test_readyz_follows_the_database(self, running_server: RunningServer) -> None:
        """/readyz answers 503 with Retry-After while PostgreSQL is down and 200 again once it is back."""
        base = running_server.base_url
        os.kill(running_server.postmaster_pid(), signal.SIGINT)  # PostgreSQL's fast shutdown
        deadline = time.monotonic() + 30
        response = httpx.get(f"{base}/readyz", timeout=10)
        while response.status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.2)
            response = httpx.get(f"{base}/readyz", timeout=10)
        assert response.status_code == 503
        assert response.headers["Retry-After"].isdigit()
        assert response.json()["error"]["code"] == "database_unavailable"
        assert httpx.get(f"{base}/healthz").status_code == 200

        restarted = EmbeddedPostgres(running_server.data_dir / "postgres-18", port=running_server.pg_port)
        restarted.start()
        try:
            deadline = time.monotonic() + 30
            while httpx.get(f"{base}/readyz", timeout=10).status_code != 200:
                assert time.monotonic() < deadline, "readiness did not recover"
                time.sleep(0.2)
        finally:
            running_server.process.send_signal(signal.SIGTERM)
            running_server.process.wait(60)
            restarted.stop()

    def test_second_run_reuses_the_data(self) -> None:
        """The data directory survives a stop: a second serve finds the schema already at head."""
        data_dir = Path(tempfile.mkdtemp(prefix="ft-serve-again-"))
        env = {
            **{k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
            "FERNANDO_TELEMETRY_DATA_DIR": str(data_dir),
            "FERNANDO_TELEMETRY_EMBEDDED_PORT": "0",
        }
        for _ in range(2):
            result = subprocess.run(
                [sys.executable, "-m", "fernando_telemetry", "db", "upgrade"],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert result.returncode == 0, result.stderr
        assert "schema at revision" in result.stdout
        assert "0 created" in result.stderr  # partitions from the first run are still there
        assert (data_dir / "postgres-18" / "pgdata" / "PG_VERSION").read_text().strip() == "18"
        assert not (data_dir / "postgres-18" / "pgdata" / "postmaster.pid").exists()
