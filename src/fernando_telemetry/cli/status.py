"""``fernando-telemetry status``: the database, its revision, tables and partitions with rows and bytes, the
rollups' lag and the last run of each scheduled job, as rich tables or as JSON."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, date, datetime
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table
from sqlalchemy import Engine

from fernando_telemetry.cli.common import DatabaseUrlOption, console, note
from fernando_telemetry.composition import jobs, runtime
from fernando_telemetry.services import status as status_service
from fernando_telemetry.services.status import ClusterStatus, Listeners, StatusReport, TableStatus
from fernando_telemetry.settings import load_settings
from fernando_telemetry.storage.database import session_factory

__all__ = ["display_url", "human_bytes", "human_duration", "status"]


def status(
    exact: bool = typer.Option(False, "--exact", help="Count the rows of every table and partition (slow on big tables)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as one JSON document instead of tables."),
    all_partitions: bool = typer.Option(False, "--all-partitions", help="List empty partitions too (JSON always has them)."),
    database_url: str | None = DatabaseUrlOption,
) -> None:
    """Show where the server listens (HTTP, and OTLP/gRPC or "off", from the settings), the database (URL
    without password, server version, size), the migration revision against the code's head, partitions per
    table (count, oldest and newest day), rows and bytes per table and per partition, the rollups' lag and
    the last run and outcome of each scheduled job.

    Row counts marked ~ are the planner's estimates (fast at any size); --exact counts them.

    Example: fernando-telemetry status --json
    """
    settings = load_settings(database_url=database_url)
    scheduled = {job.name: job.interval_s for job in jobs.default_jobs(settings)}
    listeners = Listeners(host=settings.host, http_port=settings.port, otlp_grpc_port=settings.otlp_grpc_port or None)
    with runtime.database_engine(settings, note=note) as engine:
        url = display_url(engine)
        with session_factory(engine)() as session:
            found = status_service.report(
                session, now=datetime.now(UTC), exact=exact, scheduled_jobs=scheduled, listeners=listeners
            )
    if as_json:
        print(json.dumps(_as_document(found, url=url), indent=2, default=_json_value))
        return
    _print_report(found, url=url, all_partitions=all_partitions)


def display_url(engine: Engine) -> str:
    """The engine's URL as ``postgresql://user@host:port/db``: the password left out, not masked."""
    # URL.set() treats None as "unchanged"; the URL is a named tuple, so _replace drops the password
    return engine.url._replace(drivername="postgresql", password=None).render_as_string(hide_password=False)


def human_bytes(value: int) -> str:
    size = float(value)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def human_duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min {seconds % 60:.0f} s"
    if seconds < 86400:
        return f"{seconds // 3600:.0f} h {seconds % 3600 // 60:.0f} min"
    return f"{seconds // 86400:.0f} d {seconds % 86400 // 3600:.0f} h"


def _rows(rows: int, exact: bool) -> str:
    return f"{rows:,}" if exact else f"~{rows:,}"


def _moment(value: datetime | None) -> str:
    return "never" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _print_report(found: StatusReport, *, url: str, all_partitions: bool) -> None:
    database = found.database
    if database.revision is None:
        revision = f"none: the database is empty, run 'fernando-telemetry db upgrade' (head {database.head})"
    elif database.up_to_date:
        revision = f"{database.revision} (head, up to date)"
    else:
        revision = f"{database.revision}, head is {database.head}: run 'fernando-telemetry db upgrade'"
    overview = Table(title="Database", show_header=False, title_justify="left")
    overview.add_row("url", url)
    overview.add_row("server", f"PostgreSQL {database.server_version}")
    overview.add_row("database", f"{database.name}, {human_bytes(database.size_bytes)}")
    overview.add_row("migration", revision)
    console.print(overview)
    if found.listeners is not None:
        console.print(_listeners_table(found.listeners))
    if found.cluster is not None:
        _print_cluster(found.cluster)

    tables = Table("table", "rows", "size", "partitions", "oldest day", "newest day", title="Tables", title_justify="left")
    for each in found.tables:
        tables.add_row(
            each.name,
            _rows(each.rows, each.rows_exact),
            human_bytes(each.total_bytes),
            str(len(each.partitions)) if each.partitioned else "-",
            str(each.oldest_day or "-") if each.partitioned else "-",
            str(each.newest_day or "-") if each.partitioned else "-",
        )
    console.print(tables)
    _print_storage(found)
    _print_partitions(found.tables, all_partitions=all_partitions)

    if found.rollups:
        rollups = Table(
            "raw table",
            "watermark",
            "lag",
            "refreshed",
            "dirty hours",
            "dirty days",
            "oldest dirty",
            title="Rollups",
            title_justify="left",
        )
        for lag in found.rollups:
            rollups.add_row(
                lag.table,
                _moment(lag.watermark),
                human_duration(lag.lag_s) if lag.lag_s is not None else "never refreshed",
                _moment(lag.refreshed_at),
                str(lag.dirty_hours),
                str(lag.dirty_days),
                _moment(lag.oldest_dirty) if lag.oldest_dirty else "-",
            )
        console.print(rollups)

    if found.rollup_failures:
        failed = Table(
            "raw table", "grain", "bucket", "failed at", "failures", "error", title="Rollup failures", title_justify="left"
        )
        for failure in found.rollup_failures:
            failed.add_row(
                failure.table,
                failure.grain,
                _moment(failure.bucket_start),
                _moment(failure.failed_at),
                str(failure.failures),
                failure.error,
            )
        console.print(failed)

    scheduled = Table(
        "job",
        "every",
        "last started",
        "outcome",
        "took",
        "runs",
        "failures",
        "summary or error",
        title="Jobs",
        title_justify="left",
    )
    for job in found.jobs:
        outcome = "running" if job.running else (job.outcome or "-")
        style = {"failed": "red", "skipped": "yellow", "ok": "green"}.get(outcome, "")
        scheduled.add_row(
            job.name,
            f"{job.interval_s:g} s" if job.interval_s is not None else "not scheduled",
            _moment(job.last_started_at),
            f"[{style}]{outcome}[/{style}]" if style else outcome,
            f"{job.duration_ms:,.0f} ms" if job.duration_ms is not None else "-",
            str(job.runs),
            str(job.failures),
            job.error if job.outcome == "failed" and job.error else (job.summary or ""),
        )
    console.print(scheduled)
    if found.failing_rules:
        failing = Table(
            "rule", "license", "name", "status", "last evaluated", "error", title="Alert rules failing", title_justify="left"
        )
        for rule in found.failing_rules:
            failing.add_row(
                str(rule.rule_id),
                "-" if rule.license_id is None else str(rule.license_id),
                escape(rule.name),
                f"[red]{rule.status}[/red]",
                _moment(rule.last_evaluated_at),
                escape(rule.error or ""),
            )
        console.print(failing)


def _print_cluster(cluster: ClusterStatus) -> None:
    nodes = Table("node", "role", "active", "shards", title="Citus nodes", title_justify="left")
    for node in cluster.nodes:
        nodes.add_row(
            escape(f"{node.host}:{node.port}"),
            "coordinator" if node.group_id == 0 else "worker",
            "yes" if node.active else "[red]no[/red]",
            str(node.shards),
        )
    console.print(nodes)
    kinds = Table("table", "kind", "shards", "colocation", title="Citus tables", title_justify="left")
    for table in cluster.tables:
        kinds.add_row(table.name, table.kind, str(table.shard_count), str(table.colocation_id))
    console.print(kinds)


def _listeners_table(listeners: Listeners) -> Table:
    host = f"[{listeners.host}]" if ":" in listeners.host else listeners.host
    table = Table(title="Server (settings)", show_header=False, title_justify="left")
    table.add_row("http", escape(f"http://{host}:{listeners.http_port}"))
    table.add_row("otlp/http", escape(f"http://{host}:{listeners.http_port}/v1/{{traces,metrics,logs}}"))
    table.add_row("otlp/grpc", escape(f"{host}:{listeners.otlp_grpc_port}") if listeners.otlp_grpc_port else "off")
    return table


def _print_storage(found: StatusReport) -> None:
    """Bytes per row of each partitioned table by storage kind (heap, columnar), and whether cold storage is usable."""
    view = Table("table", "storage", "partitions", "rows", "size", "bytes/row", title="Storage", title_justify="left")
    for each in found.tables:
        for kind in each.storage_kinds if each.partitioned else []:
            view.add_row(
                each.name,
                kind.storage,
                str(kind.partitions),
                f"{kind.rows:,}",
                human_bytes(kind.total_bytes),
                f"{kind.bytes_per_row:,.0f}" if kind.bytes_per_row is not None else "-",
            )
    if view.row_count:
        console.print(view)
    console.print(f"cold storage (columnar): {found.cold_storage}")


def _print_partitions(tables: list[TableStatus], *, all_partitions: bool) -> None:
    view = Table("table", "partition", "day", "storage", "rows", "size", title="Partitions", title_justify="left")
    hidden = 0
    for each in tables:
        for part in each.partitions:
            if not all_partitions and part.rows == 0:
                hidden += 1
                continue
            view.add_row(
                each.name,
                part.name,
                str(part.day or "default"),
                part.storage,
                _rows(part.rows, part.rows_exact),
                human_bytes(part.total_bytes),
            )
    if view.row_count:
        console.print(view)
    if hidden:
        console.print(f"[dim]{hidden} empty partitions not shown (--all-partitions lists them)[/dim]")


def _as_document(found: StatusReport, *, url: str) -> dict[str, Any]:
    document = asdict(found)
    document["database"]["url"] = url
    document["database"]["up_to_date"] = found.database.up_to_date
    for table_document, table in zip(document["tables"], found.tables, strict=True):
        table_document["partition_count"] = len(table.partitions)
        table_document["oldest_day"] = table.oldest_day
        table_document["newest_day"] = table.newest_day
        table_document["storage_kinds"] = [{**asdict(kind), "bytes_per_row": kind.bytes_per_row} for kind in table.storage_kinds]
    for job_document, job in zip(document["jobs"], found.jobs, strict=True):
        job_document["running"] = job.running
    return document


def _json_value(value: object) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
