"""docs/schema_columns.md names, for every column of the six telemetry and alerting tables, what writes it and
what reads it; scripts/schema_doc.py copies it into docs/SCHEMA.md with the same check this test runs. The ingest
row types (``core.ingest.rows``) hold every column of their table in the migrated database that it does not fill."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from sqlalchemy import Engine, text

from fernando_telemetry.core.ingest import business, events, metrics, spans
from fernando_telemetry.core.ingest.rows import EventRow, KpiRow, MetricRow, SpanRow
from fernando_telemetry.storage import resources
from fernando_telemetry.storage.models import Base
from fernando_telemetry.storage.writer import TableSpec

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def schema_doc() -> ModuleType:
    spec = importlib.util.spec_from_file_location("schema_doc", ROOT / "scripts" / "schema_doc.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["schema_doc"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _model_columns(tables: tuple[str, ...]) -> dict[str, list[str]]:
    return {name: [column.name for column in Base.metadata.tables[name].columns] for name in tables}


class TestColumnDoc:
    def test_every_column_of_the_six_tables_has_a_writer_and_a_reader(self, schema_doc: ModuleType) -> None:
        """No column of the models is missing from the table, listed without a writer or reader, or unknown."""
        text = schema_doc.COLUMN_DOC.read_text(encoding="utf-8")
        assert schema_doc.column_doc_problems(text, _model_columns(schema_doc.COLUMN_DOC_TABLES)) == []

    def test_the_check_finds_a_missing_an_empty_and_a_stale_row(self, schema_doc: ModuleType) -> None:
        """A column with no row, a row with an empty reader and a row naming no column are each reported."""
        text = (
            "## `alerts`\n\n| column | written by | read by |\n|---|---|---|\n| `status` | evaluator |  |\n| `gone` | x | y |\n"
        )
        problems = schema_doc.column_doc_problems(text, {"alerts": ["status", "title"]})
        assert problems == [
            "alerts.status is listed without a writer or a reader",
            "alerts.title has no row (what writes it, what reads it)",
            "alerts.gone is listed but is not a column",
        ]


# The columns each table fills itself (ids, insert and update times): the row types leave them out.
_FILLED_BY_THE_DATABASE = {
    "telemetry_events": {"created_at"},
    "system_metrics": {"metric_id", "created_at"},
    "business_metrics": {"business_metric_id", "computed_at", "created_at", "updated_at"},
    "traces": {"created_at"},
}
_ROW_TYPES: dict[str, type[tuple[Any, ...]]] = {
    "telemetry_events": EventRow,
    "system_metrics": MetricRow,
    "business_metrics": KpiRow,
    "traces": SpanRow,
}


def _table_columns(engine: Engine, table: str) -> list[tuple[str, bool]]:
    """The table's columns in the migrated database, in order, each with whether it has a default."""
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT column_name, column_default IS NOT NULL OR is_identity = 'YES' FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name = :table ORDER BY ordinal_position"
            ),
            {"table": table},
        ).all()
    return [(name, has_default) for name, has_default in rows]


def _mismatch(fields: tuple[str, ...], columns: list[tuple[str, bool]], filled: set[str]) -> str | None:
    """Why a row type's ``fields`` are not the ``columns`` a COPY must give (all but the ``filled`` ones, in order)."""
    written = [name for name, _ in columns if name not in filled]
    if list(fields) == written:
        return None
    missing = [name for name in written if name not in fields]
    extra = [name for name in fields if name not in written]
    return f"fields {list(fields)} are not the columns {written} (missing {missing}, not columns {extra})"


class TestRowTypes:
    @pytest.mark.parametrize("table", sorted(_ROW_TYPES))
    def test_a_row_type_has_every_column_the_database_does_not_fill_in_table_order(self, engine: Engine, table: str) -> None:
        """A migration adding a column without adding it to the row type (or dropping one) fails here."""
        columns = _table_columns(engine, table)
        assert columns, f"{table} is not in the migrated database"
        fields = _ROW_TYPES[table]._fields  # type: ignore[attr-defined]
        assert _mismatch(fields, columns, _FILLED_BY_THE_DATABASE[table]) is None

    @pytest.mark.parametrize("table", sorted(_ROW_TYPES))
    def test_the_columns_left_out_are_filled_by_the_database(self, engine: Engine, table: str) -> None:
        """A left-out column has a default in the migrated database, so a COPY without it still stores a row."""
        defaults = dict(_table_columns(engine, table))
        filled = _FILLED_BY_THE_DATABASE[table]
        assert {name: defaults.get(name) for name in filled} == dict.fromkeys(filled, True)

    def test_the_check_finds_an_added_a_dropped_and_a_moved_column(self, engine: Engine) -> None:
        """A column a migration adds, one it drops and two in another order are each a mismatch (the check can fail)."""
        columns = _table_columns(engine, "telemetry_events")
        filled = _FILLED_BY_THE_DATABASE["telemetry_events"]
        added = _mismatch(EventRow._fields, [*columns, ("added_later", False)], filled)
        assert added is not None and "missing ['added_later']" in added
        dropped = _mismatch(EventRow._fields, [c for c in columns if c[0] != "session_id"], filled)
        assert dropped is not None and "not columns ['session_id']" in dropped
        assert _mismatch(EventRow._fields, [columns[1], columns[0], *columns[2:]], filled) is not None

    def test_the_decoders_copy_the_row_types_fields(self) -> None:
        """Each decoder module's ``COLUMNS`` is its row type's fields, so the COPY and the rows cannot disagree."""
        assert (events.COLUMNS, metrics.COLUMNS, business.COLUMNS, spans.COLUMNS) == (
            EventRow._fields,
            MetricRow._fields,
            KpiRow._fields,
            SpanRow._fields,
        )
        assert resources.COPY_COLUMNS == SpanRow._fields

    def test_a_table_spec_made_from_a_row_type_copies_its_fields(self) -> None:
        """``TableSpec.for_rows`` takes the COPY columns from the row type and keeps the type."""
        spec = TableSpec.for_rows("traces", SpanRow, on_conflict="ignore")
        assert (spec.columns, spec.row_type, spec.on_conflict) == (SpanRow._fields, SpanRow, "ignore")
