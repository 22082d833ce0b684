"""Only ``services.alert_lifecycle`` sets an alert's status (DESIGN.md: a state machine is a table in core plus
one function that applies it), checked on the source with planted violations proving the check can fail."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parents[1] / "src" / "fernando_telemetry"
ALLOWED = {Path("services/alert_lifecycle.py")}


def _mentions(node: ast.AST, name: str) -> bool:
    return any(isinstance(child, ast.Name) and child.id == name for child in ast.walk(node))


def _targets(node: ast.AST) -> list[ast.expr]:
    if isinstance(node, ast.Assign):
        found: list[ast.expr] = []
        for target in node.targets:
            found += list(target.elts) if isinstance(target, ast.Tuple | ast.List) else [target]
        return found
    if isinstance(node, ast.AugAssign | ast.AnnAssign):
        return [node.target]
    return []


def _is_alert_status(target: ast.expr, value: ast.AST | None) -> bool:
    """``<something alert>.status = ...`` or ``<anything>.status = AlertStatus...`` (notifications have a status too)."""
    if not (isinstance(target, ast.Attribute) and target.attr == "status"):
        return False
    owner = ast.unparse(target.value).lower()
    return ("alert" in owner and "notification" not in owner) or (value is not None and _mentions(value, "AlertStatus"))


def _updates_alerts(node: ast.AST) -> bool:
    """``update(Alert)`` somewhere in the chain a ``.values(...)`` call hangs from."""
    return any(
        isinstance(child, ast.Call)
        and isinstance(child.func, ast.Name)
        and child.func.id == "update"
        and child.args
        and isinstance(child.args[0], ast.Name)
        and child.args[0].id == "Alert"
        for child in ast.walk(node)
    )


def violations(root: Path = PACKAGE_ROOT) -> list[str]:
    """Every place outside the allowed module that writes ``Alert.status``, as ``path:line what``."""
    found = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        if relative in ALLOWED:
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            value = getattr(node, "value", None)
            for target in _targets(node):
                if _is_alert_status(target, value):
                    found.append(f"{relative}:{node.lineno} assigns {ast.unparse(target)}")
            if not isinstance(node, ast.Call):
                continue
            keywords = {keyword.arg for keyword in node.keywords}
            if isinstance(node.func, ast.Name) and node.func.id == "Alert" and "status" in keywords:
                found.append(f"{relative}:{node.lineno} builds an Alert with a status")
            elif isinstance(node.func, ast.Attribute) and node.func.attr == "values" and "status" in keywords:
                if _updates_alerts(node.func.value):
                    found.append(f"{relative}:{node.lineno} updates alerts.status in SQL")
            elif (
                isinstance(node.func, ast.Name)
                and node.func.id == "setattr"
                and len(node.args) >= 2
                and isinstance(node.args[1], ast.Constant)
                and node.args[1].value == "status"
                and "alert" in ast.unparse(node.args[0]).lower()
            ):
                found.append(f"{relative}:{node.lineno} sets the status of {ast.unparse(node.args[0])}")
    return found


class TestAlertStatusWrites:
    def test_only_the_lifecycle_sets_an_alert_status(self) -> None:
        """No module but ``services/alert_lifecycle.py`` assigns the status of an alert."""
        assert violations() == []

    @pytest.mark.parametrize(
        ("source", "expected"),
        [
            ("alert.status = AlertStatus.RESOLVED\n", "assigns alert.status"),
            ("alert.status, alert.resolved_at = 'resolved', now\n", "assigns alert.status"),
            ("row.status = AlertStatus.SUPPRESSED\n", "assigns row.status"),
            ("self.open_alert.status = 'active'\n", "assigns self.open_alert.status"),
            ("a = Alert(rule_id=1, status=AlertStatus.ACTIVE)\n", "builds an Alert with a status"),
            ("session.execute(update(Alert).where(x).values(status='resolved'))\n", "updates alerts.status in SQL"),
            ("setattr(alert, 'status', 'resolved')\n", "sets the status of alert"),
        ],
    )
    def test_the_check_catches_a_planted_write(self, tmp_path: Path, source: str, expected: str) -> None:
        """A status write planted in another services module is reported (so the check above can fail)."""
        (tmp_path / "services").mkdir()
        (tmp_path / "services" / "bad.py").write_text(source)
        found = violations(tmp_path)
        assert any(expected in problem for problem in found), found

    @pytest.mark.parametrize(
        "source",
        [
            "notification.status = 'sent'\n",
            "span.status = 'error'\n",
            "session.execute(update(AlertNotification).values(status='superseded'))\n",
        ],
    )
    def test_other_statuses_are_left_alone(self, tmp_path: Path, source: str) -> None:
        """Notifications and spans have statuses of their own; setting those is not an alert's status."""
        (tmp_path / "services").mkdir()
        (tmp_path / "services" / "fine.py").write_text(source)
        assert violations(tmp_path) == []

    def test_the_lifecycle_module_itself_is_allowed(self, tmp_path: Path) -> None:
        """The applying function is the one place the status is set."""
        (tmp_path / "services").mkdir()
        (tmp_path / "services" / "alert_lifecycle.py").write_text("alert.status = AlertStatus.ACTIVE\n")
        assert violations(tmp_path) == []
