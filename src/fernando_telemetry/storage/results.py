"""How many rows an INSERT, UPDATE or DELETE touched, as an ``int``. Imports only sqlalchemy."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy.engine import CursorResult, Result

__all__ = ["rows_affected"]


def rows_affected(result: Result[Any]) -> int:
    """The row count of a DML statement's result (0 when the driver reports none)."""
    # Session.execute is declared to return Result for every statement; a DML statement runs through a
    # cursor, so the object is a CursorResult, the only kind that carries rowcount.
    return int(cast("CursorResult[Any]", result).rowcount or 0)
