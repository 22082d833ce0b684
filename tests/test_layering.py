"""The layers of DESIGN.md and docs/ARCHITECTURE.md, checked on the source: each module imports only from the layers
below it, and the entry points (api, web, cli, console), the demo and the composition root are buckets of their own."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parents[1] / "src" / "fernando_telemetry"
PACKAGE = "fernando_telemetry"

# layer -> the project layers it may import (itself included). The entry points (api, web, cli, console) are
# separate buckets and none lists another: an HTTP route never reaches into a CLI command or the dashboard, and back.
ALLOWED: dict[str, set[str]] = {
    "core": {"core"},
    "storage": {"storage", "core"},
    "notify": {"notify", "core"},
    "services": {"services", "storage", "notify", "core"},
    "sdk": {"sdk"},
    "settings": {"settings", "core"},
    "package": {"package"},
    # entry points: parse, make the caller, call one service, shape the answer
    "api": {"api", "services", "core", "package"},
    "web": {"web", "services", "core", "package"},
    "cli": {"cli", "composition", "demo", "services", "storage", "notify", "core", "settings", "package"},
    "console": {"console", "cli", "package"},  # the console script only launches the CLI (and says so without it)
    # the live demo: a shop instrumented with the SDK, run by a real server
    "demo": {"demo", "composition", "services", "storage", "notify", "core", "sdk", "settings", "package"},
    # the composition root puts the process together from every layer below the entry points, and the HTTP app
    "composition": {"composition", "api", "services", "storage", "notify", "core", "sdk", "settings", "package"},
}
# modules whose bucket is not the package they live in
MODULE_LAYERS = {
    "fernando_telemetry.storage.migrations.env": "composition",  # alembic's entry: settings -> engine
    "fernando_telemetry.embedding": "composition",  # the public re-export of composition.embedding
    "fernando_telemetry.wiring": "composition",  # the public re-export of composition.wiring
    "fernando_telemetry.console": "console",
    "fernando_telemetry.__main__": "console",
    "fernando_telemetry.settings": "settings",
}
# single imports across entry points that are the design, each with its reason
ALLOWED_EDGES = {
    ("fernando_telemetry.api.app", "fernando_telemetry.web"),  # the app factory mounts the dashboard at /
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


def _module_name(path: Path, root: Path) -> str:
    relative = path.relative_to(root.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> str:
    if module in MODULE_LAYERS:
        return MODULE_LAYERS[module]
    parts = module.split(".")
    if parts == [PACKAGE]:
        return "package"
    if parts[1] in ALLOWED and parts[1] != "package":
        return parts[1]
    raise ValueError(f"{module} is in no layer: add its package to ALLOWED or the module to MODULE_LAYERS")


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
            if target == PACKAGE:  # ``from fernando_telemetry import composition``: the layer is the name's
                found += [(f"{PACKAGE}.{alias.name}", node.lineno) for alias in node.names]
            else:
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
            target_layer = _layer_or_package(target)
            if target_layer not in ALLOWED[layer] and (module, _top_module(target)) not in ALLOWED_EDGES:
                problems.append(f"{module}:{line} ({layer}) imports {target} ({target_layer})")
    return problems


def _top_module(target: str) -> str:
    return ".".join(target.split(".")[:2])


def _layer_or_package(target: str) -> str:
    """The layer of an imported module; a name the package itself defines (``__version__``) is the package's."""
    try:
        return layer_of(target)
    except ValueError:
        return "package"


class TestLayering:
    def test_no_module_imports_against_the_layers(self) -> None:
        """Every import in the package goes down the layers: entry points -> services -> storage/notify -> core,
        and no entry point (api, web, cli, console) imports another."""
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
            ("web/bad.py", "from fernando_telemetry.storage import event_queries\n", "(web) imports fernando_telemetry.storage"),
            # entry points never import each other
            ("api/bad.py", "from fernando_telemetry.cli import keys\n", "(api) imports fernando_telemetry.cli"),
            ("api/bad.py", "from fernando_telemetry.web import pages\n", "(api) imports fernando_telemetry.web"),
            ("web/bad.py", "from fernando_telemetry.api.deps import ReadCaller\n", "(web) imports fernando_telemetry.api.deps"),
            ("cli/bad.py", "from fernando_telemetry.api import app\n", "(cli) imports fernando_telemetry.api"),
            ("cli/bad.py", "from fernando_telemetry.web.pages import kpis\n", "(cli) imports fernando_telemetry.web.pages"),
            ("console.py", "from fernando_telemetry.api import app\n", "(console) imports fernando_telemetry.api"),
            ("demo/bad.py", "from fernando_telemetry.cli.keys import new_token\n", "(demo) imports fernando_telemetry.cli.keys"),
            # only the entry points and the demo may reach the composition root
            ("api/bad.py", "from fernando_telemetry import composition\n", "(api) imports fernando_telemetry.composition"),
            (
                "services/bad.py",
                "from fernando_telemetry.composition.jobs import Job\n",
                "(services) imports fernando_telemetry.composition.jobs",
            ),
            ("composition/bad.py", "from ..cli import main\n", "(composition) imports fernando_telemetry.cli"),
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

    def test_a_module_outside_every_layer_is_refused(self, tmp_path: Path) -> None:
        """A new top-level module must be given a layer before the check passes."""
        root = tmp_path / PACKAGE
        root.mkdir()
        (root / "stray.py").write_text("x = 1\n")
        with pytest.raises(ValueError, match="stray is in no layer"):
            violations(root)

    def test_the_allowed_edge_is_the_only_one_between_entry_points(self, tmp_path: Path) -> None:
        """The app factory may mount the dashboard; another API module importing the dashboard is still reported."""
        root = tmp_path / PACKAGE
        (root / "api").mkdir(parents=True)
        (root / "api" / "app.py").write_text("from fernando_telemetry.web import install_dashboard\n")
        (root / "api" / "other.py").write_text("from fernando_telemetry.web import install_dashboard\n")
        found = violations(root)
        assert [problem.split(":")[0] for problem in found] == ["fernando_telemetry.api.other"], found
