"""docs/schema_columns.md names, for every column of the six telemetry and alerting tables, what writes it and
what reads it; scripts/schema_doc.py copies it into docs/SCHEMA.md with the same check this test runs."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from fernando_telemetry.storage.models import Base

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
