"""Every command's expected failures: no database reachable, a bad URL, a database without the schema, a bad
option, a bad date, a bad key or value. Each is one clear line on stderr and a non-zero exit code, never a
traceback. Commands run in-process through ``main`` (the console script's function); a few run as the real
command to show the same from outside."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from typer.main import get_command

from fernando_telemetry.cli import app, main

UNREACHABLE_URL = "postgresql://postgres@127.0.0.1:9/fernando"
CONDITION = '{"metric": "cpu_usage", "operator": ">", "threshold": 80}'
_TODAY = datetime.now(UTC).date()
RECENT_FROM, RECENT_TO = str(_TODAY - timedelta(days=10)), str(_TODAY - timedelta(days=3))  # inside every retention

# One invocation per command that works on the database, with arguments of the right shape.
DATABASE_COMMANDS: list[list[str]] = [
    ["status"],
    ["jobs", "list"],
    ["jobs", "run", "retention"],
    ["db", "upgrade"],
    ["db", "current"],
    ["db", "downgrade", "base"],
    ["generate", "--events", "10", "--spans", "10", "--metrics", "10"],
    ["licenses", "create", "--name", "Acme"],
    ["keys", "create", "--license-id", "1", "--scope", "ingest"],
    ["keys", "list"],
    ["keys", "revoke", "1"],
    ["kpis", "compute"],
    ["kpis", "compute", "--period", "daily", "--from", RECENT_FROM, "--to", RECENT_TO],
    ["partitions", "upkeep"],
    ["partitions", "upkeep", "--from", "2026-01-01", "--to", "2026-03-31"],
    ["partitions", "list"],
    ["retention", "run"],
    ["retention", "overrides", "set", "--license-id", "1", "--kind", "traces", "--days", "9"],
    ["retention", "overrides", "list"],
    ["retention", "overrides", "clear", "--license-id", "1"],
    ["rollups", "refresh"],
    ["rollups", "status"],
    ["alerts", "evaluate", "--all"],
    ["alerts", "list"],
    ["alerts", "history", "1"],
    ["alerts", "ack", "1"],
    ["alerts", "assign", "1", "--user", "bob"],
    ["alerts", "resolve", "1"],
    ["archive", "list"],
    ["channels", "list"],
    ["channels", "create", "--license-id", "1", "--name", "pager", "--type", "webhook", "--url", "https://93.184.215.14/hook"],
    ["channels", "delete", "pager"],
    ["channels", "test", "pager"],
    ["rules", "list"],
    ["rules", "create", "--name", "High CPU", "--condition", CONDITION],
    ["rules", "show", "1"],
    ["rules", "update", "1", "--severity", "critical"],
    ["rules", "enable", "1"],
    ["rules", "disable", "1"],
    ["rules", "delete", "1", "--yes"],
    ["rules", "backtest", "--condition", CONDITION],
]
# These start long-running work when the database is there; they are only run against databases that fail.
SERVING_COMMANDS: list[list[str]] = [["serve", "--port", "0"], ["demo", "--port", "0", "--no-traffic"]]
# On a database without the schema these are fine (they make it, report it, or have nothing to remove).
SCHEMA_COMMANDS = {("status",), ("db", "upgrade"), ("db", "current"), ("db", "downgrade", "base")}


def _ids(commands: list[list[str]]) -> list[str]:
    return [" ".join(command[:3]) for command in commands]


@dataclass(frozen=True)
class Run:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("error:")]


@pytest.fixture()
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Callable[..., Run]:
    """Run the command as the console script does (``main`` with sys.argv); an exception escaping ``main``
    fails the test with its traceback."""

    def run(*args: str, database_url: str | None = None) -> Run:
        for name in list(os.environ):
            if name == "DATABASE_URL" or name.startswith("FERNANDO_TELEMETRY_"):
                monkeypatch.delenv(name)
        if database_url is not None:
            monkeypatch.setenv("DATABASE_URL", database_url)
        monkeypatch.setattr(sys, "argv", ["fernando-telemetry", *args])
        monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # a prompt reads end-of-file, as from /dev/null
        capsys.readouterr()
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out, err = capsys.readouterr()
        return Run(code, out, err)

    return run


def _assert_one_line(run: Run, *, containing: str, exit_code: int = 1) -> None:
    assert run.exit_code == exit_code, (run.exit_code, run.stderr)
    assert "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert containing in run.stderr, run.stderr


class TestNoDatabase:
    @pytest.mark.parametrize("args", DATABASE_COMMANDS + SERVING_COMMANDS, ids=_ids(DATABASE_COMMANDS + SERVING_COMMANDS))
    def test_nothing_listening(self, cli: Callable[..., Run], args: list[str]) -> None:
        """A URL where no PostgreSQL listens: one line saying so, exit 1."""
        _assert_one_line(cli(*args, database_url=UNREACHABLE_URL), containing="error: cannot reach the database: ")

    def test_an_unknown_role_is_a_connection_error(self, cli: Callable[..., Run], server_url: str) -> None:
        """A server that refuses the user: one line with the server's reason."""
        from fernando_telemetry.storage.database import sqlalchemy_url

        url = sqlalchemy_url(server_url).set(drivername="postgresql", username="no_such_role_here", password="x")
        run = cli("status", database_url=url.render_as_string(hide_password=False))
        _assert_one_line(run, containing="cannot reach the database")
        assert "no_such_role_here" in run.stderr and "x@" not in run.stderr


class TestBadUrl:
    @pytest.mark.parametrize(
        ("url", "message"),
        [
            ("mysql://root@localhost/x", "scheme 'mysql' is not supported"),
            ("not a url", "is not a URL"),
            ("postgresql://postgres@127.0.0.1:notaport/x", "is not a URL"),
            ("postgresql://postgres@127.0.0.1:5432", "names no database"),
        ],
    )
    def test_each_kind_of_bad_url(self, cli: Callable[..., Run], url: str, message: str) -> None:
        """Malformed, another scheme, a port that is not a number, no database name: one line each."""
        _assert_one_line(cli("status", database_url=url), containing=message)

    @pytest.mark.parametrize("args", DATABASE_COMMANDS + SERVING_COMMANDS, ids=_ids(DATABASE_COMMANDS + SERVING_COMMANDS))
    def test_every_command(self, cli: Callable[..., Run], args: list[str]) -> None:
        """Every command refuses a URL of another database kind in one line, before connecting."""
        _assert_one_line(cli(*args, database_url="mysql://root@localhost/x"), containing="scheme 'mysql' is not supported")

    def test_the_option_spelling_too(self, cli: Callable[..., Run]) -> None:
        """--database-url is checked like DATABASE_URL, and its password is not echoed."""
        run = cli("partitions", "list", "--database-url", "mysql://root:hunter2@localhost/x")
        _assert_one_line(run, containing="scheme 'mysql' is not supported")
        assert "hunter2" not in run.stderr


class TestWithoutSchema:
    @pytest.fixture(scope="class")
    def empty_url(self, database_factory: Callable[[], str]) -> str:
        return database_factory()

    @pytest.mark.parametrize(
        "args",
        [args for args in DATABASE_COMMANDS if tuple(args) not in SCHEMA_COMMANDS],
        ids=_ids([args for args in DATABASE_COMMANDS if tuple(args) not in SCHEMA_COMMANDS]),
    )
    def test_says_to_migrate(self, cli: Callable[..., Run], empty_url: str, args: list[str]) -> None:
        """On an empty database: the last line says to run db upgrade (a progress bar may stand above it)."""
        run = cli(*args, database_url=empty_url)
        assert run.exit_code == 1, run.stderr
        assert "Traceback" not in run.stderr
        assert len(run.error_lines) == 1, run.stderr
        assert run.stderr.strip().splitlines()[-1] == run.error_lines[0]
        assert "fernando-telemetry db upgrade" in run.error_lines[0]


# Commands left out of DATABASE_COMMANDS, and why.
WITHOUT_DATABASE_RUN = {
    ("version",): "needs no database",
    ("archive", "restore"): "reads its archive file first; a missing file is its own error (tests/test_archive*)",
}


def _leaf_paths() -> list[tuple[str, ...]]:
    root = get_command(app)
    leaves: list[tuple[str, ...]] = []

    def walk(command, prefix: tuple[str, ...]) -> None:  # type: ignore[no-untyped-def]
        for name, sub in getattr(command, "commands", {}).items():
            if getattr(sub, "commands", None):
                walk(sub, (*prefix, name))
            else:
                leaves.append((*prefix, name))

    walk(root, ())
    return leaves


def test_every_command_is_covered() -> None:
    """Each command of the tree is run against failing databases above, or is listed with the reason it is not."""
    leaves = _leaf_paths()
    covered = {tuple(args[: len(path)]) for args in DATABASE_COMMANDS + SERVING_COMMANDS for path in leaves}
    missing = [" ".join(path) for path in leaves if path not in covered and path not in WITHOUT_DATABASE_RUN]
    assert missing == [], f"add an invocation of these to DATABASE_COMMANDS: {missing}"


def _leaf_and_group_paths() -> list[list[str]]:
    root = get_command(app)
    paths: list[list[str]] = []

    def walk(command, prefix: list[str]) -> None:  # type: ignore[no-untyped-def]
        for name, sub in getattr(command, "commands", {}).items():
            paths.append([*prefix, name])
            walk(sub, [*prefix, name])

    walk(root, [])
    return paths


class TestBadOptions:
    @pytest.mark.parametrize("path", _leaf_and_group_paths(), ids=" ".join)
    def test_an_unknown_option(self, cli: Callable[..., Run], path: list[str]) -> None:
        """Every command and group: an unknown option is one line pointing at --help, exit 2."""
        run = cli(*path, "--no-such-option", database_url=UNREACHABLE_URL)
        _assert_one_line(run, containing="No such option: --no-such-option", exit_code=2)
        assert f"(see 'fernando-telemetry {' '.join(path)} --help')" in run.stderr

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["no-such-command"], "No such command 'no-such-command'"),
            (["licenses", "create"], "Missing option '--name'"),
            (["generate", "--events", "-5"], "Invalid value for '--events'"),
            (["generate", "--days", "0"], "Invalid value for '--days'"),
            (["retention", "run", "--traces-days", "0"], "Invalid value for '--traces-days'"),
            (["keys", "revoke", "abc"], "Invalid value for 'api_key_id'"),
            (["status", "unexpected"], "unexpected extra argument"),
            (["alerts", "history", "x"], "Invalid value for 'alert_id'"),
        ],
    )
    def test_bad_usage(self, cli: Callable[..., Run], args: list[str], message: str) -> None:
        """Unknown commands, missing options, values out of range or of the wrong type: one line, exit 2."""
        _assert_one_line(cli(*args, database_url=UNREACHABLE_URL), containing=message, exit_code=2)

    def test_a_group_without_its_command_shows_its_help(self, cli: Callable[..., Run]) -> None:
        """``fernando-telemetry keys`` alone prints the group's help (with an example) and exits 2."""
        run = cli("keys", database_url=UNREACHABLE_URL)
        assert run.exit_code == 2
        assert "Example: fernando-telemetry keys" in run.stdout + run.stderr
        assert "Traceback" not in run.stderr


class TestBadDates:
    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["partitions", "upkeep", "--from", "2026-13-01", "--to", "2026-12-31"], "--from '2026-13-01' is not a date"),
            (["kpis", "compute", "--from", "2026-01-01", "--to", "yesterday"], "--to 'yesterday' is not a date"),
            (["rollups", "refresh", "--from", "2026-02-30", "--to", "2026-03-01"], "--from '2026-02-30' is not a date"),
            (["kpis", "compute", "--from", "2026-03-01", "--to", "2026-02-01"], "is before --from"),
            (["partitions", "upkeep", "--from", "2026-01-01"], "give both --from and --to"),
        ],
    )
    def test_day_options(self, cli: Callable[..., Run], args: list[str], message: str) -> None:
        """A day that does not exist, is not a day, or ends a range before it starts: one line, before connecting."""
        _assert_one_line(cli(*args, database_url=UNREACHABLE_URL), containing=message)

    @pytest.mark.parametrize(
        "args",
        [
            ["rules", "backtest", "--condition", CONDITION, "--from", "not-a-time"],
            ["alerts", "evaluate", "--all", "--at", "2026-13-01T00:00:00Z"],
        ],
        ids=["rules backtest --from", "alerts evaluate --at"],
    )
    def test_instant_options(self, cli: Callable[..., Run], migrated_url: str, args: list[str]) -> None:
        """An instant that cannot be read: one line naming the option's value."""
        run = cli(*args, database_url=migrated_url)
        assert run.exit_code != 0 and "Traceback" not in run.stderr
        assert len(run.error_lines) == 1 and len(run.stderr.strip().splitlines()) == 1, run.stderr


class TestBadKeysAndValues:
    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["keys", "revoke", "987654321"], "API key 987654321 does not exist"),
            (["keys", "create", "--license-id", "987654321", "--scope", "ingest"], "license 987654321 does not exist"),
            (["keys", "create", "--scope", "superpower"], "unknown scope 'superpower'"),
            (["keys", "create"], "at least one scope"),
            (["kpis", "compute", "--period", "yearly"], "period 'yearly' is not one of"),
            (["jobs", "run", "vacuum"], "no job named 'vacuum'"),
            (["db", "downgrade", "nonsense"], "Can't locate revision identified by 'nonsense'"),
            (["retention", "overrides", "set", "--license-id", "1", "--kind", "logs", "--days", "9"], "unknown data kind 'logs'"),
        ],
    )
    def test_refused_in_one_line(self, cli: Callable[..., Run], migrated_url: str, args: list[str], message: str) -> None:
        """A key or license that does not exist, an unknown scope, period, job, revision or kind: one line, exit 1."""
        _assert_one_line(cli(*args, database_url=migrated_url), containing=message)


def _real(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL" and not k.startswith("FERNANDO_TELEMETRY_")}
    env["DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-m", "fernando_telemetry", *args], env=env, capture_output=True, text=True, timeout=120
    )


class TestTheRealCommand:
    @pytest.mark.parametrize(
        ("args", "code", "message"),
        [
            (["kpis", "compute"], 1, "cannot reach the database"),
            (["retention", "run", "--bogus"], 2, "No such option: --bogus"),
            (["generate", "--events", "-1"], 2, "Invalid value for '--events'"),
        ],
    )
    def test_one_line_from_outside(self, args: list[str], code: int, message: str) -> None:
        """The console script's process: the same single line on stderr and exit code, nothing on stdout."""
        result = _real(*args, database_url=UNREACHABLE_URL)
        assert result.returncode == code
        assert result.stderr.strip().splitlines() == [line for line in result.stderr.strip().splitlines() if message in line]
        assert result.stdout == ""
