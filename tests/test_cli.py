"""The ``fernando-telemetry`` command: help with examples everywhere, real work, one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from fernando_telemetry.cli import app
from fernando_telemetry.services import schema


def _all_command_paths() -> list[list[str]]:
    root = get_command(app)
    paths: list[list[str]] = []

    def walk(command, prefix: list[str]) -> None:  # type: ignore[no-untyped-def]
        for name, sub in getattr(command, "commands", {}).items():
            paths.append([*prefix, name])
            walk(sub, [*prefix, name])

    walk(root, [])
    return paths


def _run(*args: str, database_url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-m", "fernando_telemetry", *args], env=env, capture_output=True, text=True, timeout=120
    )


class TestHelp:
    @pytest.mark.parametrize("path", _all_command_paths(), ids=" ".join)
    def test_every_command_has_help_with_an_example(self, path: list[str]) -> None:
        """``--help`` works on every command and group, and shows an example invocation."""
        result = CliRunner().invoke(app, [*path, "--help"], terminal_width=200)
        assert result.exit_code == 0, result.output
        assert "Example: fernando-telemetry" in result.output

    def test_the_command_tree_is_complete(self) -> None:
        """The foundation's commands are all there."""
        paths = {" ".join(path) for path in _all_command_paths()}
        assert {
            "serve",
            "db upgrade",
            "db downgrade",
            "db current",
            "retention run",
            "partitions upkeep",
            "partitions list",
        } <= paths


class TestCommands:
    def test_db_current_and_partitions_against_a_database(self, migrated_url: str) -> None:
        """Commands work against DATABASE_URL, including the postgresql+psycopg:// spelling."""
        result = _run("db", "current", database_url=migrated_url)
        assert result.returncode == 0, result.stderr
        assert f"{schema.head()} (up to date)" in result.stdout
        psycopg_spelling = migrated_url.replace("postgresql://", "postgresql+psycopg://", 1)
        listed = _run("partitions", "list", database_url=psycopg_spelling)
        assert listed.returncode == 0, listed.stderr
        assert "telemetry_events" in listed.stdout and "135" in listed.stdout  # 120 back + today + 14 ahead

    def test_retention_run_prints_per_table_figures(self, database_factory) -> None:  # type: ignore[no-untyped-def]
        """``retention run`` on a fresh database reports each table and nothing removed."""
        url = database_factory()
        assert _run("db", "upgrade", database_url=url).returncode == 0
        result = _run("retention", "run", "--traces-days", "14", database_url=url)
        assert result.returncode == 0, result.stderr
        for table in ("telemetry_events", "system_metrics", "traces"):
            assert table in result.stdout

    def test_downgrade_to_base_empties_the_database(self, database_factory) -> None:  # type: ignore[no-untyped-def]
        """``db downgrade base`` removes the schema that ``db upgrade`` built."""
        url = database_factory()
        assert _run("db", "upgrade", database_url=url).returncode == 0
        result = _run("db", "downgrade", "base", database_url=url)
        assert result.returncode == 0, result.stderr
        assert "base (empty)" in result.stdout


class TestErrors:
    @pytest.mark.parametrize(
        ("args", "database_url", "message"),
        [
            (["db", "current"], "mysql://root@localhost/x", "scheme 'mysql' is not supported"),
            (["db", "current"], "postgresql://postgres@127.0.0.1:9/x", "cannot reach the database"),
            (["db", "current"], "not a url", "is not a URL"),
            (
                ["partitions", "upkeep", "--from", "2026-13-01", "--to", "2026-12-01"],
                "postgresql://postgres@127.0.0.1:9/x",
                "is not a date",
            ),
        ],
    )
    def test_expected_failures_are_one_line_and_exit_1(self, args: list[str], database_url: str, message: str) -> None:
        """No database, a bad URL or a bad date: one clear line on stderr, exit code 1, no traceback."""
        result = _run(*args, database_url=database_url)
        assert result.returncode == 1
        assert message in result.stderr
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
