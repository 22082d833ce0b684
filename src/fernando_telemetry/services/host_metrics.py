"""The built-in host collector: this server's CPU, memory, disk, network and process figures as ``system_metrics``.

Gauges are stored as read; the running totals (network bytes, CPU time) are cumulative streams that start at
boot or at process start, stored as increments like any cumulative counter (``storage.metric_streams``).
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psutil
from sqlalchemy import insert
from sqlalchemy.orm import Session

from fernando_telemetry.core.enums import MetricType
from fernando_telemetry.core.ingest import metrics
from fernando_telemetry.core.metric_points import CumulativePoint, Increment
from fernando_telemetry.core.platform_license import PLATFORM_LICENSE_ID
from fernando_telemetry.storage import metric_streams
from fernando_telemetry.storage.database import driver_connection
from fernando_telemetry.storage.models import SystemMetric

__all__ = ["HostSample", "collect", "record"]


@dataclass(frozen=True)
class HostSample:
    metric_name: str
    metric_type: MetricType
    value: float
    unit: str
    labels: dict[str, str]
    start_time: datetime | None = None
    """For a running total (a counter): when it started counting from 0."""


def collect(*, disk_path: Path | None = None) -> list[HostSample]:
    """One reading of the host and of this process (CPU percent is measured since the previous call)."""
    memory = psutil.virtual_memory()
    network = psutil.net_io_counters()
    process = psutil.Process(os.getpid())
    booted = datetime.fromtimestamp(psutil.boot_time(), tz=UTC)
    started = datetime.fromtimestamp(process.create_time(), tz=UTC)
    samples = [
        HostSample("host.cpu.utilization", MetricType.GAUGE, psutil.cpu_percent(interval=None), "percent", {}),
        HostSample("host.memory.used", MetricType.GAUGE, float(memory.used), "bytes", {}),
        HostSample("host.memory.utilization", MetricType.GAUGE, memory.percent, "percent", {}),
        HostSample("host.network.sent", MetricType.COUNTER, float(network.bytes_sent), "bytes", {}, booted),
        HostSample("host.network.received", MetricType.COUNTER, float(network.bytes_recv), "bytes", {}, booted),
        HostSample("process.memory.rss", MetricType.GAUGE, float(process.memory_info().rss), "bytes", {}),
        HostSample("process.cpu.time", MetricType.COUNTER, sum(process.cpu_times()[:2]), "seconds", {}, started),
    ]
    if hasattr(os, "getloadavg"):
        samples.append(HostSample("host.load.1m", MetricType.GAUGE, os.getloadavg()[0], "1", {}))
    path = disk_path if disk_path is not None and disk_path.exists() else Path("/")
    disk = psutil.disk_usage(str(path))
    samples.append(HostSample("host.disk.utilization", MetricType.GAUGE, disk.percent, "percent", {"path": str(path)}))
    samples.append(HostSample("host.disk.free", MetricType.GAUGE, float(disk.free), "bytes", {"path": str(path)}))
    return samples


def record(session: Session, samples: list[HostSample], *, now: datetime, service_name: str, host_name: str | None = None) -> int:
    """Store one reading (counters as their increments since the previous reading); returns how many rows were written."""
    host = host_name or socket.gethostname()
    decoded = [
        metrics.compose(
            metric_name=sample.metric_name,
            metric_type=sample.metric_type.value,
            unit=sample.unit,
            service_name=service_name,
            host_name=host,
            instance_id=f"{host}:{os.getpid()}",
            labels=_labels(sample.labels),
            user_id=None,
            license_id=PLATFORM_LICENSE_ID,
            time=now,
            increment=None if sample.metric_type == MetricType.COUNTER else Increment(sample.value),
            point=(
                CumulativePoint("number", now, sample.start_time, value=sample.value)
                if sample.metric_type == MetricType.COUNTER
                else None
            ),
        )
        for sample in samples
    ]
    rows = metric_streams.prepare(driver_connection(session), decoded)
    if rows:
        session.execute(insert(SystemMetric), [_values(row) for row in rows])
    return len(rows)


def _labels(labels: dict[str, str]) -> str:
    return json.dumps(labels, sort_keys=True, separators=(",", ":"))


def _values(row: metrics.MetricRow) -> dict[str, object]:
    values: dict[str, object] = row._asdict()
    values["labels"] = json.loads(str(values["labels"]))
    values["metric_type"] = MetricType(str(values["metric_type"]))
    return values
