"""Query-string checks shared by the read routes: unknown or repeated names, integers, prefixed filters.

A misspelt filter would silently widen a search, so names the route does not know are a 400, as are
single-valued parameters given twice. Imports core.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from typing import overload

from starlette.requests import Request

from fernando_telemetry.core.errors import InvalidInput, field_problem

__all__ = ["check_names", "integer", "prefixed"]


def check_names(request: Request, *, allowed: Collection[str], prefixes: Collection[str] = ()) -> None:
    """400 for a parameter that is neither in ``allowed`` nor starts with one of ``prefixes``, for an
    ``allowed`` one given more than once (prefixed filters may repeat), and for a NUL in any name or value."""
    pairs = request.query_params.multi_items()
    with_nul = sorted({name[:60] for name, value in pairs if "\x00" in name or "\x00" in value})
    if with_nul:
        # PostgreSQL text cannot hold NUL: refuse here rather than fail in the database
        raise InvalidInput(
            f"{', '.join(with_nul)}: NUL characters are not allowed in query parameters",
            details=[field_problem(name, "NUL character") for name in with_nul],
        )
    names = Counter(name for name, _ in pairs)
    unknown = sorted(name for name in names if name not in allowed and not name.startswith(tuple(prefixes)))
    if unknown:
        accepted = sorted(allowed) + [f"{prefix}<key>" for prefix in prefixes]
        raise InvalidInput(
            f"unknown query parameter{'s' if len(unknown) > 1 else ''} {', '.join(name[:60] for name in unknown)}; "
            f"accepted: {', '.join(accepted)}",
            details=[field_problem(name[:60], "unknown parameter") for name in unknown],
        )
    repeated = sorted(name for name, count in names.items() if count > 1 and name in allowed)
    if repeated:
        raise InvalidInput(
            f"{', '.join(repeated)} may be given once",
            details=[field_problem(name, "given more than once") for name in repeated],
        )


@overload
def integer(text: str | None, *, parameter: str, default: int, minimum: int = ..., maximum: int = ...) -> int: ...
@overload
def integer(text: str | None, *, parameter: str, default: None = None, minimum: int = ..., maximum: int = ...) -> int | None: ...
def integer(
    text: str | None, *, parameter: str, default: int | None = None, minimum: int = -(2**63), maximum: int = 2**63 - 1
) -> int | None:
    """A decimal integer in ``[minimum, maximum]`` (a database bigint by default), or ``default`` when absent."""
    if text is None:
        return default
    stripped = text.strip()
    if not stripped.lstrip("+-").isdigit() or not stripped.isascii():
        raise InvalidInput(f"{parameter}: {text[:40]!r} is not an integer", details=[field_problem(parameter, "not an integer")])
    value = int(stripped)
    if not minimum <= value <= maximum:
        raise InvalidInput(
            f"{parameter} must be between {minimum} and {maximum}, got {value}",
            details=[field_problem(parameter, "out of range")],
        )
    return value


def prefixed(request: Request, prefix: str) -> list[tuple[str, str]]:
    """The ``(name, value)`` pairs whose name starts with ``prefix``, in the order sent."""
    return [(name, value) for name, value in request.query_params.multi_items() if name.startswith(prefix)]
