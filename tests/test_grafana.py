"""grafana/: the datasource and dashboard provisioning files, and every panel's query, expanded the way
Grafana's PostgreSQL datasource expands its macros and template variables, run against a migrated database
with data as the read-only role of grafana/reader.sql.

No Grafana runs here: ``expand`` follows Grafana's macro engine (pkg/tsdb/grafana-postgresql-datasource/
macros.go) and its global substitutions, and the frontend's quoting of template variable values.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from fernando_telemetry.composition.wiring import dump_json
from fernando_telemetry.services import kpis, partitions, rollups, schema, synthetic
from fernando_telemetry.storage.database import libpq_url, make_engine, session_factory

GRAFANA = Path(__file__).resolve().parents[1] / "grafana"
DASHBOARD_FILE = GRAFANA / "dashboards" / "fernando-telemetry.json"
DATASOURCE_FILE = GRAFANA / "provisioning" / "datasources" / "fernando.yaml"
DASHBOARDS_PROVIDER_FILE = GRAFANA / "provisioning" / "dashboards" / "fernando.yaml"
READER_SQL = GRAFANA / "reader.sql"
READER_ROLE = "fernando_grafana"

EVENTS, SPANS, METRICS = 4_000, 3_000, 2_000

# What each panel must answer: its columns, in order. A panel added to the dashboard needs a line here.
EXPECTED_COLUMNS: dict[str, list[str]] = {
    "Events": ["events"],
    "Event error rate": ["error_rate"],
    "Spans": ["spans"],
    "Span error rate": ["error_rate"],
    "Daily active users": ["time", "active_users"],
    "Open alerts": ["open_alerts"],
    "Events per hour by type": ["time", "metric", "events"],
    "Event error rate (series)": ["time", "error_rate"],
    "Event types": ["event_type", "events", "peak_hourly_users", "errors", "avg_duration_ms"],
    "Daily active users (series)": ["time", "active_users"],
    "Spans per hour by service": ["time", "metric", "spans"],
    "Error rate by service": ["time", "metric", "error_rate"],
    "p95 latency by service (slowest operation)": ["time", "metric", "p95_ms"],
    "Operations": [
        "service_name",
        "operation_name",
        "spans",
        "errors",
        "error_rate",
        "worst_hourly_p50_ms",
        "worst_hourly_p95_ms",
        "worst_hourly_p99_ms",
    ],
    "$metric: average by service": ["time", "metric", "avg_value"],
    "$metric: p95 and max": ["time", "p95", "max_value"],
    "Latest KPIs": ["metric_name", "period_type", "period_start", "metric_value", "previous_value", "change_pct", "currency"],
    "Revenue per day": ["time", "metric", "revenue"],
    "Open alerts (table)": [
        "time",
        "severity",
        "status",
        "title",
        "affected_service",
        "observed_value",
        "threshold_value",
        "assigned_to",
    ],
    "Alerts raised": ["time", "metric", "alerts"],
}


# --- Grafana's expansion -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variable:
    name: str
    values: list[str]
    multi_or_all: bool


def rfc3339(moment: datetime) -> str:
    """Go's time.RFC3339Nano in UTC: seconds, then a fraction without trailing zeros, then Z."""
    moment = moment.astimezone(UTC)
    fraction = f"{moment.microsecond:06d}".rstrip("0")
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if fraction else "") + "Z"


_INTERVAL = re.compile(r"^(\d+)(ms|s|m|h|d|w|y)$")
_INTERVAL_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def interval_seconds(text: str) -> float:
    match = _INTERVAL.match(text.strip().strip("'"))
    if match is None:
        raise ValueError(f"error parsing interval {text}")
    return int(match.group(1)) * _INTERVAL_S[match.group(2)]


def _number(value: float) -> str:
    return f"{value:g}"  # Go's %v of a float64: 3600, 86400, 0.5


def _macro(name: str, args: list[str], *, start: datetime, end: datetime) -> str:
    if name == "__time":
        return f'{args[0]} AS "time"'
    if name == "__timeEpoch":
        return f'extract(epoch from {args[0]}) as "time"'
    if name == "__timeFilter":
        return f"{args[0]} BETWEEN '{rfc3339(start)}' AND '{rfc3339(end)}'"
    if name == "__timeFrom":
        return f"'{rfc3339(start)}'"
    if name == "__timeTo":
        return f"'{rfc3339(end)}'"
    if name in ("__timeGroup", "__timeGroupAlias"):
        if len(args) < 2:
            raise ValueError(f"macro {name} needs time column and interval and optional fill value")
        seconds = interval_seconds(args[1])
        group = f"floor(extract(epoch from {args[0]})/{_number(seconds)})*{_number(seconds)}"
        return group + (' AS "time"' if name == "__timeGroupAlias" else "")
    if name == "__unixEpochFilter":
        return f"{args[0]} >= {int(start.timestamp())} AND {args[0]} <= {int(end.timestamp())}"
    raise ValueError(f"unknown macro {name!r}")


_TEMPLATE_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)")
_MACRO = re.compile(r"\$([_a-zA-Z0-9]+)\(([^\)]*)\)")


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def expand(sql: str, *, start: datetime, end: datetime, interval: str, variables: dict[str, Variable]) -> str:
    """The SQL Grafana sends for ``sql`` over ``[start, end]``: template variables (a multi-value or All
    variable as a quoted list, a single value as its escaped text), then the global substitutions, then
    the datasource's macros."""

    def variable(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        if name.startswith("__"):
            return match.group(0)  # a built-in: expanded below
        found = variables[name]
        if found.multi_or_all:
            return ",".join(_quote(value) for value in found.values)
        return found.values[0].replace("'", "''")

    sql = _TEMPLATE_VARIABLE.sub(variable, sql)
    sql = sql.replace("$__interval_ms", str(int(interval_seconds(interval) * 1000)))
    sql = sql.replace("$__interval", interval)
    sql = sql.replace("$__unixEpochFrom()", str(int(start.timestamp())))
    sql = sql.replace("$__unixEpochTo()", str(int(end.timestamp())))

    def macro(match: re.Match[str]) -> str:
        args = [arg.strip() for arg in match.group(2).split(",")]
        return _macro(match.group(1), args, start=start, end=end)

    return _MACRO.sub(macro, sql)


class TestExpand:
    """The expansion itself, against what Grafana's own macro tests expect."""

    START = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    END = datetime(2026, 3, 2, 10, 0, 0, 500_000, tzinfo=UTC)

    @pytest.mark.parametrize(
        ("sql", "expanded"),
        [
            ("WHERE $__timeFilter(hour)", "WHERE hour BETWEEN '2026-03-01T10:00:00Z' AND '2026-03-02T10:00:00.5Z'"),
            ("SELECT $__timeGroupAlias(hour, 1h)", 'SELECT floor(extract(epoch from hour)/3600)*3600 AS "time"'),
            ("GROUP BY $__timeGroup(t, '5m')", "GROUP BY floor(extract(epoch from t)/300)*300"),
            ("x > $__timeFrom() AND x < $__timeTo()", "x > '2026-03-01T10:00:00Z' AND x < '2026-03-02T10:00:00.5Z'"),
            ("SELECT $__time(at)", 'SELECT at AS "time"'),
            ("$__unixEpochFrom()..$__unixEpochTo()", "1772359200..1772445600"),
            ("step $__interval_ms ms, $__interval", "step 86400000 ms, 1d"),
        ],
    )
    def test_macros(self, sql: str, expanded: str) -> None:
        """Each macro and global substitution gives Grafana's text."""
        assert expand(sql, start=self.START, end=self.END, interval="1d", variables={}) == expanded

    def test_template_variables(self) -> None:
        """A multi-value variable is a quoted list; a single value is its escaped text, quoted by the query."""
        variables = {
            "service": Variable("service", ["web", "o'brien"], multi_or_all=True),
            "metric": Variable("metric", ["cpu's"], multi_or_all=False),
        }
        sql = "service_name IN ($service) AND metric_name = '${metric}' AND x = '[[metric]]'"
        assert (
            expand(sql, start=self.START, end=self.END, interval="1h", variables=variables)
            == "service_name IN ('web','o''brien') AND metric_name = 'cpu''s' AND x = 'cpu''s'"
        )


# --- the database ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def grafana_db(database_factory: Callable[[], str]) -> str:
    """Three days of synthetic telemetry; rollups refreshed up to two hours ago (so the views read both the
    rollups and raw rows); daily KPIs for the last days; an open alert; grafana/reader.sql applied."""
    url = database_factory()
    engine = make_engine(url, pool_size=1)
    now = datetime.now(UTC)
    try:
        schema.upgrade(engine)
        sessions = session_factory(engine)
        with sessions.begin() as session:
            partitions.upkeep(session, now=now, days_back=4, days_ahead=7)
            synthetic.generate(
                session, now=now, days=3, events_count=EVENTS, spans_count=SPANS, metrics_count=METRICS, users=80,
                license_id=None, seed=11, dump_json=dump_json,
            )  # fmt: skip
        with sessions.begin() as session:
            rollups.refresh_step(session, now=now - timedelta(hours=2), safety_lag_s=0, max_hours=1000, max_days=100)
        periods = kpis.backfill_periods(
            period_types=["daily"],
            first_day=(now - timedelta(days=3)).date(),
            last_day=now.date(),
            now=now,
            events_retention_days=90,
        )
        with sessions.begin() as session:
            for period in periods:
                kpis.compute_period(session, period=period, now=now)
    finally:
        engine.dispose()
    with psycopg.connect(libpq_url(url), autocommit=True) as connection:
        connection.execute(
            "INSERT INTO alerts (severity, status, title, fingerprint, triggered_at, affected_service, observed_value, threshold_value) "
            "VALUES ('critical', 'active', 'Checkout error rate above 5 %', 'grafana-test', now() - interval '30 minutes', "
            "'payments', 0.08, 0.05)"
        )
        connection.execute(READER_SQL.read_text())
    return url


@pytest.fixture(scope="module")
def reader(grafana_db: str) -> Iterator[psycopg.Connection]:
    """A connection that runs every query as the Grafana role, read-only, as Grafana's would."""
    with psycopg.connect(libpq_url(grafana_db), autocommit=True) as connection:
        connection.execute(f"SET ROLE {READER_ROLE}")
        connection.execute("SET default_transaction_read_only = on")
        yield connection


def _dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD_FILE.read_text())


def _panels() -> list[dict[str, Any]]:
    return [panel for panel in _dashboard()["panels"] if panel["type"] != "row"]


def _panel_key(panel: dict[str, Any], panels: list[dict[str, Any]]) -> str:
    """The panel's title, told apart from an earlier panel of the same title by its kind."""
    same = [other for other in panels if other["title"] == panel["title"]]
    if len(same) == 1 or same[0]["id"] == panel["id"]:
        return panel["title"]
    return f"{panel['title']} ({'series' if panel['type'] == 'timeseries' else panel['type']})"


def _variables(connection: psycopg.Connection, *, start: datetime, end: datetime) -> dict[str, Variable]:
    found = {}
    for definition in _dashboard()["templating"]["list"]:
        sql = expand(definition["query"], start=start, end=end, interval="1h", variables={})
        values = [str(row[0]) for row in connection.execute(sql).fetchall()]
        assert values, f"variable {definition['name']} has no values"
        multi_or_all = bool(definition.get("multi") or definition.get("includeAll"))
        found[definition["name"]] = Variable(definition["name"], values, multi_or_all)
    return found


PANEL_IDS = [_panel_key(panel, _panels()) for panel in _panels()]


class TestPanels:
    @pytest.mark.parametrize("interval", ["1h", "1d"])
    @pytest.mark.parametrize("key", PANEL_IDS)
    def test_every_panel_query_returns_rows_with_its_columns(self, reader: psycopg.Connection, key: str, interval: str) -> None:
        """Expanded over the last 7 days, each panel's SQL runs as the Grafana role and returns rows with the
        expected columns; a time series has a "time" column, in ascending order."""
        end = datetime.now(UTC)
        start = end - timedelta(days=7)
        panels = _panels()
        panel = next(panel for panel in panels if _panel_key(panel, panels) == key)
        variables = _variables(reader, start=start, end=end)
        for target in panel["targets"]:
            sql = expand(target["rawSql"], start=start, end=end, interval=interval, variables=variables)
            cursor = reader.execute(sql)
            assert cursor.description is not None
            columns = [column.name for column in cursor.description]
            rows = cursor.fetchall()
            assert columns == EXPECTED_COLUMNS[key]
            assert rows, f"{key}: no rows for\n{sql}"
            assert any(value is not None for row in rows for value in row), f"{key}: only NULLs for\n{sql}"
            if target["format"] == "time_series":
                times = [row[columns.index("time")] for row in rows]
                assert times == sorted(times)

    def test_every_panel_is_checked(self) -> None:
        """Each panel of the dashboard has its expected columns here, and nothing here is stale."""
        assert set(PANEL_IDS) == set(EXPECTED_COLUMNS)

    def test_totals_see_every_license(self, reader: psycopg.Connection, grafana_db: str) -> None:
        """The Grafana role is not narrowed by row-level security: the Events panel counts every row, and
        the series add up to it."""
        end = datetime.now(UTC)
        start = end - timedelta(days=7)
        panels = {_panel_key(panel, _panels()): panel for panel in _panels()}
        events = reader.execute(
            expand(panels["Events"]["targets"][0]["rawSql"], start=start, end=end, interval="1h", variables={})
        )
        row = events.fetchone()
        assert row is not None and row[0] == EVENTS
        series_sql = expand(
            panels["Events per hour by type"]["targets"][0]["rawSql"], start=start, end=end, interval="1d", variables={}
        )
        assert sum(row[2] for row in reader.execute(series_sql).fetchall()) == EVENTS
        with psycopg.connect(libpq_url(grafana_db)) as owner:
            licensed = owner.execute(
                "SELECT count(DISTINCT license_id) FROM telemetry_events WHERE license_id IS NOT NULL"
            ).fetchone()
        assert licensed is not None and licensed[0] > 1  # several licenses' rows, all counted above

    def test_the_reader_cannot_write_or_read_secrets(self, reader: psycopg.Connection) -> None:
        """The role of reader.sql reads the telemetry, not the API keys, and cannot write."""
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            reader.execute("SELECT key_hash FROM api_keys")
        with pytest.raises((psycopg.errors.InsufficientPrivilege, psycopg.errors.ReadOnlySqlTransaction)):
            reader.execute("DELETE FROM alerts")


# --- the files ---------------------------------------------------------------------------------------------


class TestProvisioning:
    def test_datasource_takes_its_credentials_from_the_environment(self) -> None:
        """One PostgreSQL datasource whose host, database, user, password and TLS mode are ${...} placeholders."""
        document = yaml.safe_load(DATASOURCE_FILE.read_text())
        assert document["apiVersion"] == 1
        (datasource,) = document["datasources"]
        assert datasource["type"] == "grafana-postgresql-datasource"
        assert datasource["uid"] == "fernando-telemetry"
        placeholders = {
            "url": datasource["url"],
            "user": datasource["user"],
            "database": datasource["jsonData"]["database"],
            "sslmode": datasource["jsonData"]["sslmode"],
            "password": datasource["secureJsonData"]["password"],
        }
        for field, value in placeholders.items():
            assert re.fullmatch(r"\$\{FT_GRAFANA_DB_[A-Z]+\}", value), (field, value)
        assert "password" not in datasource  # only the encrypted secureJsonData holds it

    def test_dashboards_provider_points_at_the_dashboards(self) -> None:
        """A file provider for the dashboards folder."""
        document = yaml.safe_load(DASHBOARDS_PROVIDER_FILE.read_text())
        (provider,) = document["providers"]
        assert provider["type"] == "file"
        assert provider["options"]["path"].endswith("/fernando-telemetry")

    def test_dashboard_is_whole(self) -> None:
        """A uid and title; unique panel ids; every panel and variable on the provisioned datasource; every
        query in SQL code mode with a known format; panels inside the 24-column grid."""
        dashboard = _dashboard()
        assert dashboard["uid"] == "fernando-telemetry" and dashboard["title"] == "Fernando Telemetry"
        ids = [panel["id"] for panel in dashboard["panels"]]
        assert len(ids) == len(set(ids))
        for panel in _panels():
            assert panel["datasource"] == {"type": "grafana-postgresql-datasource", "uid": "fernando-telemetry"}
            assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == "fernando-telemetry"
                assert target["rawQuery"] is True and target["editorMode"] == "code"
                assert target["format"] in ("table", "time_series")
        for variable in dashboard["templating"]["list"]:
            assert variable["datasource"]["uid"] == "fernando-telemetry"

    def test_no_query_uses_a_macro_grafana_lacks(self) -> None:
        """Every $__macro(...) in the dashboard is one the PostgreSQL datasource knows."""
        known = {"__time", "__timeEpoch", "__timeFilter", "__timeFrom", "__timeTo", "__timeGroup", "__timeGroupAlias",
                 "__unixEpochFilter", "__unixEpochFrom", "__unixEpochTo"}  # fmt: skip
        text = DASHBOARD_FILE.read_text()
        assert set(re.findall(r"\$(__\w+)\(", text)) <= known
