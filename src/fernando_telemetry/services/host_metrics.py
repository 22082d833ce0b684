"""The built-in host collector: this server's CPU, memory, disk, network and process figures as ``system_metrics``."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psutil
from sqlalchemy import insert
from sqlalchemy.orm import Session

from fernando_telemetry.core.enums import MetricType
from fernando_telemetry.storage.models import SystemMetric

__all__ = ["HostSample", "collect", "record"]


@dataclass(frozen=True)
class HostSample:
    metric_name: str
    metric_type: MetricType
    value: float
    unit: str
    labels: dict[str, str]


def collect(*, disk_path: Path | None = None) -> list[HostSample]:
    """One reading of the host and of this process (CPU percent is measured since the previous call)."""
    memory = psutil.virtual_memory()
    network = psutil.net_io_counters()
    process = psutil.Process(os.getpid())
    samples = [
        HostSample("host.cpu.utilization", MetricType.GAUGE, psutil.cpu_percent(interval=None), "percent", {}),
        HostSample("host.memory.used", MetricType.GAUGE, float(memory.used), "bytes", {}),
        HostSample("host.memory.utilization", MetricType.GAUGE, memory.percent, "percent", {}),
        HostSample("host.network.sent", MetricType.COUNTER, float(network.bytes_sent), "bytes", {}),
        HostSample("host.network.received", MetricType.COUNTER, float(network.bytes_recv), "bytes", {}),
        HostSample("process.memory.rss", MetricType.GAUGE, float(process.memory_info().rss), "bytes", {}),
        HostSample("process.cpu.time", MetricType.COUNTER, sum(process.cpu_times()[:2]), "seconds", {}),
    ]
    if hasattr(os, "getloadavg"):
        samples.append(HostSample("host.load.1m", MetricType.GAUGE, os.getloadavg()[0], "1", {}))
    path = disk_path if disk_path is not None and disk_path.exists() else Path("/")
    disk = psutil.disk_usage(str(path))
    samples.append(HostSample("host.disk.utilization", MetricType.GAUGE, disk.percent, "percent", {"path": str(path)}))
    samples.append(HostSample("host.disk.free", MetricType.GAUGE, float(disk.free), "bytes", {"path": str(path)}))
    return samples


def record(session: Session, samples: list[HostSample], *, now: datetime, service_name: str, host_name: str | None = None) -> int:
    """Store one reading; returns how many samples were written."""
    host = host_name or socket.gethostname()
    session.execute(
        insert(SystemMetric),
        [
            {
                "metric_name": sample.metric_name,
                "metric_type": sample.metric_type,
                "value": sample.value,
                "unit": sample.unit,
                "service_name": service_name,
                "host_name": host,
                "instance_id": f"{host}:{os.getpid()}",
                "labels": sample.labels,
                "timestamp": now,
            }
            for sample in samples
        ],
    )
    return len(samples)
