"""The layers of DESIGN.md, checked on the source: each module imports only from the layers below it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parents[1] / "src" / "fernando_telemetry"
PACKAGE = "fernando_telemetry"

# layer -> the project layers it may import (itself included)
ALLOWED: dict[str, set[str]] = {
    "core": {"core"},
    "storage": {"storage", "core"},
    "notify": {"notify", "core"},
    "services": {"services", "storage", "notify", "core"},
    "api": {"api", "services", "core", "package"},
    "sdk": {"sdk"},
    "entry": {"entry", "api", "services", "storage", "notify", "core", "sdk", "package"},
    "package": {"package"},
}
# third-party frameworks core must not touch
FRAMEWORKS = {
    "sqlalchemy",
    "fastapi",
    "starlette",
    "httpx",
    "pydantic",
    "pydantic_settings",
    "alembic",
    "psycopg",
    "typer",
    "uvicorn",
    "rich",
}
# modules that are entry points although they live inside a lower layer
ENTRY_EXCEPTIONS = {"fernando_telemetry.storage.migrations.env"}
# packages that belong to another package's layer (the dashboard is HTTP edge code, like the API)
LAYER_ALIASES = {"web": "api"}


def _module_name(path: Path, root: Path) -> str:
    relative = path.relative_to(root.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> str:
    if module in ENTRY_EXCEPTIONS:
        return "entry"
    parts = module.split(".")
    if parts == [PACKAGE]:
        return "package"
    head = LAYER_ALIASES.get(parts[1], parts[1])
    if head in ALLOWED and head not in ("entry", "package"):
        return head
    return "entry"  # cli, demo, server, jobs, scheduler, runtime, settings, __main__


def _imports(path: Path, module: str) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: resolve against this module's package
                base = module.split(".")
                if not path.name == "__init__.py":
                    base = base[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((target, node.lineno))
    return found


def violations(root: Path = PACKAGE_ROOT) -> list[str]:
    problems = []
    for path in sorted(root.rglob("*.py")):
        module = _module_name(path, root)
        layer = layer_of(module)
        for target, line in _imports(path, module):
            top = target.split(".")[0]
            if layer == "core" and top in FRAMEWORKS:
                problems.append(f"{module}:{line} core imports the framework {top!r}")
            if top != PACKAGE:
                continue
            target_layer = layer_of(target)
            if target_layer not in ALLOWED[layer]:
                problems.append(f"{module}:{line} ({layer}) imports {target} ({target_layer})")
    return problems


class TestLayering:
    def test_no_module_imports_against_the_layers(self) -> None:
        """Every import in the package goes down the layers: api -> services -> storage/notify -> core."""
        assert violations() == []

    @pytest.mark.parametrize(
        ("module", "source", "expected"),
        [
            ("core/bad.py", "import sqlalchemy\n", "core imports the framework 'sqlalchemy'"),
            ("core/bad.py", "from fernando_telemetry.storage import models\n", "(core) imports fernando_telemetry.storage"),
            (
                "storage/bad.py",
                "from fernando_telemetry.services import schema\n",
                "(storage) imports fernando_telemetry.services",
            ),
            (
                "api/bad.py",
                "from fernando_telemetry.storage.models import User\n",
                "(api) imports fernando_telemetry.storage.models",
            ),
            ("web/bad.py", "from fernando_telemetry.storage import event_queries\n", "(api) imports fernando_telemetry.storage"),
            ("services/bad.py", "from fernando_telemetry.web import routes\n", "(services) imports fernando_telemetry.web"),
            ("services/bad.py", "from ..api import app\n", "(services) imports fernando_telemetry.api"),
            ("services/bad.py", "from fernando_telemetry.demo import shop\n", "(services) imports fernando_telemetry.demo"),
            ("sdk/bad.py", "from fernando_telemetry.core import errors\n", "(sdk) imports fernando_telemetry.core"),
        ],
    )
    def test_the_check_catches_a_wrong_import(self, tmp_path: Path, module: str, source: str, expected: str) -> None:
        """A module planted against the rules is reported (so the check above can fail)."""
        root = tmp_path / PACKAGE
        (root / module).parent.mkdir(parents=True)
        (root / module).write_text(source)
        found = violations(root)
        assert any(expected in problem for problem in found), found
