"""``fernando-telemetry demo`` as a user runs it: a subprocess on a fresh database whose shop's traffic lands
in every telemetry table and fires an alert, a clean stop on SIGTERM and Ctrl-C, and a second run that
reuses the data of the first on the embedded PostgreSQL."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import psycopg
import pytest

QUICK = [
    "--history-days", "1", "--history-events", "1500", "--history-spans", "1000", "--history-metrics", "500",
    "--customers", "50", "--status-every", "0",
]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _nobody_listens(port: int) -> bool:
    """Nothing accepts connections on the port (a closed listener leaves TIME_WAIT sockets, which do not count)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            return False
    except ConnectionRefusedError:
        return True


@dataclass
class DemoProcess:
    """The demo command running in a subprocess, its merged output read on a thread as it comes."""

    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, args: list[str], env: dict[str, str]) -> DemoProcess:
        process = subprocess.Popen(
            [sys.executable, "-m", "fernando_telemetry", "demo", *args],
            env={**env, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        demo = cls(process)
        threading.Thread(target=demo._read, daemon=True).start()
        return demo

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout_s: float = 180) -> re.Match[str]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = re.search(pattern, self.output)
            if found:
                return found
            if self.process.poll() is not None:
                time.sleep(0.5)  # the reader may still hold the last lines
                found = re.search(pattern, self.output)
                if found:
                    return found
                raise AssertionError(f"demo exited with {self.process.returncode} before {pattern!r}:\n{self.output}")
            time.sleep(0.2)
        raise AssertionError(f"no {pattern!r} in the demo's output in time:\n{self.output}")

    def stop(self, stop_signal: signal.Signals) -> int:
        self.process.send_signal(stop_signal)
        return self.process.wait(90)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)


def _wait_until(check: Callable[[], bool], what: str, demo: DemoProcess, timeout_s: float = 240) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if demo.process.poll() is not None:
            raise AssertionError(f"demo exited with {demo.process.returncode} while waiting for {what}:\n{demo.output}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen in time:\n{demo.output}")
        time.sleep(1.0)


def _scalar(url: str, sql: str) -> int:
    with psycopg.connect(url, connect_timeout=5) as connection:
        row = connection.execute(sql).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


# What the shop's live traffic writes, told from the generated history (environment "production", no shop labels).
LIVE_ROWS = {
    "telemetry_events": "SELECT count(*) FROM telemetry_events WHERE environment = 'demo' AND event_type = 'business_event' "
    "AND payload ? 'amount' AND payload ? 'currency'",
    "traces": "SELECT count(DISTINCT service_name) FROM traces WHERE environment = 'demo' AND parent_span_id IS NOT NULL "
    "AND service_name IN ('web', 'api', 'inventory', 'payments', 'postgres')",
    "system_metrics": "SELECT count(*) FROM system_metrics WHERE labels @> '{\"demo\": \"shop\"}' AND metric_name = 'http.latency'",
    "host metrics": "SELECT count(*) FROM system_metrics WHERE service_name = 'fernando-telemetry'",
    "business_metrics": "SELECT count(*) FROM business_metrics WHERE metric_name = 'orders' AND period_type = 'hourly'",
}


@pytest.fixture()
def cleanup() -> Iterator[list[DemoProcess]]:
    started: list[DemoProcess] = []
    yield started
    for demo in started:
        demo.kill()


@pytest.fixture()
def cleanup_dirs() -> Iterator[list[Path]]:
    made: list[Path] = []
    yield made
    for path in made:
        shutil.rmtree(path, ignore_errors=True)


class TestDemo:
    def test_traffic_lands_in_every_table_an_alert_fires_and_sigterm_stops_it(
        self, database_factory: Callable[[], str], cleanup: list[DemoProcess], tmp_path: Path
    ) -> None:
        """On a fresh database: history, live traffic in every table, the planned burst fires the payments alert,
        the printed read key reads the API, and SIGTERM stops everything with exit code 0 and the ports released."""
        url = database_factory()
        port, grpc_port = _free_port(), _free_port()
        env = {**os.environ, "DATABASE_URL": url, "FERNANDO_TELEMETRY_DATA_DIR": str(tmp_path)}
        args = ["--port", str(port), "--otlp-grpc-port", str(grpc_port), *QUICK, "--rate", "8", "--burst-after", "2",
                "--burst-duration", "600", "--evaluation-interval", "10"]  # fmt: skip
        demo = DemoProcess.start(args, env)
        cleanup.append(demo)

        key = demo.wait_for(r"read key:\s+(ft_\w+)").group(1)
        dashboard = demo.wait_for(r"dashboard:\s+(http://\S+)").group(1)
        shop_port = int(demo.wait_for(r"shop:\s+http://127\.0\.0\.1:(\d+)").group(1))
        assert dashboard == f"http://127.0.0.1:{port}/"
        assert demo.wait_for(r"OTLP/gRPC:\s+(\S+)").group(1) == f"http://127.0.0.1:{grpc_port}"
        assert "loading 1 days of demo history" in demo.output
        assert _scalar(url, "SELECT count(*) FROM licenses WHERE name = 'Fernando Demo Shop'") == 1

        for table, sql in LIVE_ROWS.items():
            if table == "traces":
                _wait_until(lambda sql=sql: _scalar(url, sql) == 5, "spans of all five shop services", demo)
            else:
                _wait_until(lambda sql=sql: _scalar(url, sql) > 0, f"live rows in {table}", demo)
        answer = httpx.get(f"{dashboard}api/v1/traces", headers={"Authorization": f"Bearer {key}"}, timeout=30)
        assert answer.status_code == 200, answer.text

        # the payments error burst fires the demo's rule, created through the alert-rules API
        rule = "SELECT count(*) FROM alert_rules WHERE name = 'Payments error rate' AND license_id IS NOT NULL"
        _wait_until(lambda: _scalar(url, rule) == 1, "the demo's alert rules", demo, timeout_s=60)
        fired = "SELECT count(*) FROM alerts a JOIN alert_rules r USING (rule_id) WHERE r.name = 'Payments error rate'"
        _wait_until(lambda: _scalar(url, fired) > 0, "the payments alert", demo)
        demo.wait_for(r"alert #\d+ 'Payments error rate' \[critical\] is active", timeout_s=30)

        assert demo.stop(signal.SIGTERM) == 0, demo.output
        demo.wait_for(r"(?m)^stopped$")
        assert "Traceback" not in demo.output and "warning" not in demo.output
        assert _nobody_listens(port) and _nobody_listens(shop_port) and _nobody_listens(grpc_port)

    def test_later_runs_reuse_the_data_and_each_stop_ends_the_embedded_postgres(
        self, cleanup: list[DemoProcess], cleanup_dirs: list[Path]
    ) -> None:
        """Embedded PostgreSQL, three runs: the first loads history and sets up the rules; the second finds both,
        loads nothing and points the channel at the shop's new port; the third (--no-traffic) serves the stored
        data only. Each mints a new read key that reads the API, and each stop ends the PostgreSQL it started."""
        data_dir = Path(tempfile.mkdtemp(prefix="ft-demo-"))
        cleanup_dirs.append(data_dir)
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "FERNANDO_TELEMETRY_DATABASE_URL")}
        env |= {"FERNANDO_TELEMETRY_DATA_DIR": str(data_dir), "FERNANDO_TELEMETRY_EMBEDDED_PORT": str(_free_port())}
        pid_file = data_dir / "postgres-18" / "pgdata" / "postmaster.pid"
        keys = []
        for run, extra, stop_signal in ((1, [], signal.SIGINT), (2, [], signal.SIGTERM), (3, ["--no-traffic"], signal.SIGINT)):
            port = _free_port()
            demo = DemoProcess.start(["--port", str(port), "--otlp-grpc-port", "0", *extra, *QUICK, "--burst-duration", "0"], env)
            cleanup.append(demo)
            keys.append(demo.wait_for(r"read key:\s+(ft_\w+)").group(1))
            database = demo.wait_for(r"at (postgresql://\S+)").group(1)
            postmaster = int(pid_file.read_text().splitlines()[0])
            assert _scalar(database, "SELECT count(*) FROM licenses WHERE name = 'Fernando Demo Shop'") == 1
            answer = httpx.get(f"http://127.0.0.1:{port}/api/v1/events", headers={"X-API-Key": keys[-1]}, timeout=30)
            assert answer.status_code == 200, answer.text
            assert "warning" not in demo.output
            demo.wait_for(r"OTLP/gRPC:  off \(--otlp-grpc-port 0\)")
            if run == 1:
                assert "loading 1 days of demo history" in demo.output
                assert "alert rules: created Payments error rate" in demo.output
            else:
                assert "reusing the demo data of an earlier run" in demo.output
                assert "loading" not in demo.output
            if run == 2:
                assert "alert rules: all there already" in demo.output
                channel = "SELECT count(*) FROM notification_channels WHERE name = 'shop-ops-webhook'"
                assert _scalar(database, channel) == 1
            if run == 3:
                assert "traffic:    none (--no-traffic)" in demo.output
                events = _scalar(database, "SELECT count(*) FROM telemetry_events")
                time.sleep(3)
                assert _scalar(database, "SELECT count(*) FROM telemetry_events") == events  # nobody sends anything
            assert demo.stop(stop_signal) == 0, demo.output
            assert "stopped embedded PostgreSQL" in demo.output
            assert not psutil.pid_exists(postmaster) or psutil.Process(postmaster).status() == psutil.STATUS_ZOMBIE
            assert _nobody_listens(port)
        assert len(set(keys)) == 3

    def test_a_taken_port_is_one_line_and_exit_1(self, tmp_path: Path) -> None:
        """A port already in use stops the demo before anything starts, with one clear line."""
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            env = {
                **os.environ,
                "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
                "FERNANDO_TELEMETRY_DATA_DIR": str(tmp_path),
            }
            result = subprocess.run(
                [sys.executable, "-m", "fernando_telemetry", "demo", "--port", str(port)],
                env=env, capture_output=True, text=True, timeout=60,
            )  # fmt: skip
        assert result.returncode == 1
        assert f"port {port} on 127.0.0.1 is already in use" in result.stderr
        assert "Traceback" not in result.stderr
