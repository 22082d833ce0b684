"""The SDK stands alone: it imports only itself, the standard library and httpx, so the bare install runs it."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
SDK_ROOT = REPOSITORY / "src" / "fernando_telemetry" / "sdk"
ALLOWED_THIRD_PARTY = {"httpx"}


def foreign_imports(root: Path = SDK_ROOT) -> list[str]:
    """Every import in the SDK's source that is neither the SDK, the standard library nor httpx."""
    problems = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            else:
                continue  # relative imports stay inside the SDK package
            for name in names:
                top = name.split(".")[0]
                if name == "fernando_telemetry.sdk" or name.startswith("fernando_telemetry.sdk."):
                    continue
                if top in sys.stdlib_module_names or top in ALLOWED_THIRD_PARTY:
                    continue
                problems.append(f"{path.name}:{node.lineno} imports {name}")
    return problems


class TestPackaging:
    def test_the_sdk_imports_only_itself_the_standard_library_and_httpx(self) -> None:
        """No module of the SDK imports the server, pydantic, starlette or any other dependency."""
        assert foreign_imports() == []

    def test_the_check_catches_a_foreign_import(self, tmp_path: Path) -> None:
        """A planted ``import pydantic`` or server import is reported (so the check above can fail)."""
        (tmp_path / "bad.py").write_text("import pydantic\nfrom fernando_telemetry.core import errors\n")
        assert foreign_imports(tmp_path) == ["bad.py:1 imports pydantic", "bad.py:2 imports fernando_telemetry.core"]

    def test_importing_the_sdk_loads_no_server_framework(self) -> None:
        """In a fresh interpreter, importing the SDK (middleware included) loads none of the server's libraries."""
        program = (
            "import sys, fernando_telemetry.sdk, fernando_telemetry.sdk.middleware\n"
            "heavy = {'fastapi', 'starlette', 'pydantic', 'sqlalchemy', 'psycopg', 'uvicorn', 'anyio'}\n"
            "print(sorted({name.split('.')[0] for name in sys.modules} & heavy))\n"
        )
        result = subprocess.run([sys.executable, "-c", program], check=True, capture_output=True, text=True, timeout=60)
        assert result.stdout.strip() == "[]"

    def test_the_sdks_vocabularies_are_the_servers(self) -> None:
        """The SDK's own copies of EventType and EventSource have the server's members and values."""
        from fernando_telemetry.core import enums as server_enums
        from fernando_telemetry.sdk import enums as sdk_enums

        for name in ("EventType", "EventSource"):
            sdk_enum, server_enum = getattr(sdk_enums, name), getattr(server_enums, name)
            assert {m.name: m.value for m in sdk_enum} == {m.name: m.value for m in server_enum}, name

    def test_the_package_ships_its_py_typed_marker(self) -> None:
        """``py.typed`` sits in the package and is package data, so type checkers read the SDK's annotations."""
        assert (SDK_ROOT.parent / "py.typed").is_file()
        pyproject = tomllib.loads((REPOSITORY / "pyproject.toml").read_text())
        assert "py.typed" in pyproject["tool"]["setuptools"]["package-data"]["fernando_telemetry"]
