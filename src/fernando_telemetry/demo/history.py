"""The demo's first run: its tenant and a few days of history (the ``generate`` loader), then the KPIs of those days.

The license, its users and the history are one transaction: an interrupted load leaves nothing, and the
next run starts over. KPIs are computed one period per transaction under the KPI job's lock, as
``kpis compute --from --to`` does. Progress bars go to the given console.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from fernando_telemetry.composition.wiring import dump_json
from fernando_telemetry.core.kpi_periods import KPI_PERIOD_TYPES
from fernando_telemetry.demo import tenant
from fernando_telemetry.services import kpis, synthetic
from fernando_telemetry.services.synthetic import GenerateResult

__all__ = ["HistorySize", "load"]

_KPI_JOB_LOCK = "fernando_telemetry.job:kpis"


@dataclass(frozen=True)
class HistorySize:
    days: int
    events: int
    spans: int
    metrics: int
    customers: int
    seed: int = 7


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description:>10}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console
    )


def load(
    sessions: sessionmaker[Session],
    *,
    size: HistorySize,
    now: datetime,
    events_retention_days: int,
    console: Console,
    check: Callable[[], None] = lambda: None,
) -> tuple[tenant.DemoTenant, GenerateResult]:
    """Create the demo tenant with ``size.days`` days of history up to ``now``, and compute their KPIs.

    ``check`` is called between chunks of rows and between KPI periods; an exception it raises ends the load
    there (the history's transaction rolls back; KPI periods already computed stay)."""
    with _progress(console) as bar:
        tasks = {kind: bar.add_task(kind, total=total) for kind, total in
                 (("events", size.events), ("spans", size.spans), ("metrics", size.metrics))}  # fmt: skip

        def advance(kind: str, rows: int) -> None:
            bar.advance(tasks[kind], rows)
            check()

        with sessions.begin() as session:
            demo = tenant.create_tenant(session, customers=size.customers, now=now, seed=size.seed)
            result = synthetic.generate(
                session, now=now, days=size.days, events_count=size.events, spans_count=size.spans,
                metrics_count=size.metrics, users=size.customers, license_id=demo.license_id, seed=size.seed,
                dump_json=dump_json, progress=advance,
            )  # fmt: skip
        first_day = (now - timedelta(days=size.days)).date()
        periods = kpis.backfill_periods(
            period_types=KPI_PERIOD_TYPES, first_day=first_day, last_day=now.date(), now=now,
            events_retention_days=events_retention_days,
        )  # fmt: skip
        oldest_day = kpis.oldest_computable_day(now=now, events_retention_days=events_retention_days)
        task = bar.add_task("kpis", total=len(periods))
        for period in periods:
            check()
            with sessions.begin() as session:
                # the KPI job's lock: the job and this never upsert the same rows in different orders
                session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": _KPI_JOB_LOCK})
                kpis.compute_period(session, period=period, now=now, oldest_day=oldest_day)
            bar.advance(task)
    return demo, result
