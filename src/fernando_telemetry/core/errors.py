"""The one error hierarchy of Fernando Telemetry; the API maps it to HTTP in one place.

Every expected failure is a ``FernandoTelemetryError`` with a stable ``code``, a message a person
can act on, and optional ``details`` (for example one entry per rejected field or item). Field problems are
``{"field": ..., "reason": ..., **extra}``, built by ``field_problem`` or collected by ``FieldProblems``.
Imports only the standard library.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

__all__ = [
    "FieldProblems",
    "field_problem",
    "Conflict",
    "Malformed",
    "PayloadTooLarge",
    "RateLimited",
    "SchemaMismatch",
    "UnsupportedMediaType",
    "DatabaseUnavailable",
    "EmbeddedDatabaseError",
    "FernandoTelemetryError",
    "Forbidden",
    "InvalidInput",
    "NotFound",
    "OverFairShare",
    "NotSupported",
    "Overloaded",
    "QuotaExceeded",
    "Unauthorized",
]


class FernandoTelemetryError(Exception):
    """Base of every expected failure; ``code`` is stable, ``message`` is for people."""

    code = "error"

    def __init__(self, message: str, *, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []


class InvalidInput(FernandoTelemetryError):
    """The caller sent something malformed or out of range."""

    code = "invalid_input"


class Malformed(InvalidInput):
    """The request body cannot be decoded at all (broken JSON, protobuf or gzip)."""

    code = "malformed"


class SchemaMismatch(InvalidInput):
    """The body decodes but does not have the expected shape (for example no ``events`` array)."""

    code = "schema_mismatch"


class PayloadTooLarge(InvalidInput):
    """The body, once decompressed, is over the size limit."""

    code = "payload_too_large"


class UnsupportedMediaType(InvalidInput):
    """The body's content type or encoding is not one the endpoint reads."""

    code = "unsupported_media_type"


class NotFound(FernandoTelemetryError):
    """The named thing does not exist (or is not visible to the caller)."""

    code = "not_found"


class Conflict(FernandoTelemetryError):
    """The request contradicts the current state (a duplicate name, a stale version)."""

    code = "conflict"


class QuotaExceeded(Conflict):
    """The license already holds as many objects of a kind as its quota allows; ``details`` name the limit."""

    code = "quota_exceeded"


class Unauthorized(FernandoTelemetryError):
    """No credentials, or credentials that match no key."""

    code = "unauthorized"


class Forbidden(FernandoTelemetryError):
    """Valid credentials without the scope the operation needs."""

    code = "forbidden"


class Overloaded(FernandoTelemetryError):
    """Too much work in flight; the caller should retry after ``retry_after_s`` seconds."""

    code = "overloaded"

    def __init__(self, message: str, *, retry_after_s: int = 1, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message, details=details)
        self.retry_after_s = retry_after_s


class RateLimited(Overloaded):
    """This key sends faster than its rate; the caller should slow down and retry after ``retry_after_s``."""

    code = "rate_limited"


class OverFairShare(RateLimited):
    """The write queue is filling and this license already holds more than its fair share of it: the license, not
    the server, must slow down (429), while other licenses are still admitted."""

    code = "over_fair_share"


class DatabaseUnavailable(FernandoTelemetryError):
    """The database does not answer; the caller should retry after ``retry_after_s`` seconds."""

    code = "database_unavailable"

    def __init__(self, message: str, *, retry_after_s: int = 2, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message, details=details)
        self.retry_after_s = retry_after_s


class NotSupported(FernandoTelemetryError):
    """The operation exists but this deployment cannot offer it (for example user SQL on a Citus cluster)."""

    code = "not_supported"


class EmbeddedDatabaseError(FernandoTelemetryError):
    """The private embedded PostgreSQL could not be set up, started or stopped."""

    code = "embedded_database_error"


def field_problem(field: str, reason: str, **extra: Any) -> dict[str, Any]:
    """One entry of ``details``: the field at fault, why, and any hints (``allowed``, ``example``, ...).

    Hints given as None are left out; ``allowed`` is always a list."""
    problem: dict[str, Any] = {"field": field, "reason": reason}
    for key, value in extra.items():
        if value is not None:
            problem[key] = list(value) if key == "allowed" else value
    return problem


class FieldProblems:
    """Every problem of one input, collected field by field, then raised at once as one ``InvalidInput``.

    ``prefix`` names the part of a larger document being checked (``condition_config``): fields are reported
    as ``<prefix>.<field>``, and an empty field as the prefix itself.
    """

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self.details: list[dict[str, Any]] = []

    def add(self, field: str, reason: str, **extra: Any) -> None:
        name = f"{self.prefix}.{field}" if self.prefix and field else (field or self.prefix)
        self.details.append(field_problem(name, reason, **extra))

    def __bool__(self) -> bool:
        return bool(self.details)

    def __len__(self) -> int:
        return len(self.details)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.details)

    def raise_if_any(self, subject: str, *, counted: bool = True) -> None:
        """Raise ``InvalidInput`` listing every problem, if there is one.

        ``counted``: "<subject> has 2 problems: a is wrong; b is missing"; otherwise "<subject>: a is wrong
        (x, y); b is missing", naming the allowed values where there are at most six."""
        if not self.details:
            return
        if counted:
            count = len(self.details)
            reasons = "; ".join(f"{detail['field']} {detail['reason']}" for detail in self.details)
            raise InvalidInput(f"{subject} has {count} problem{'s' if count > 1 else ''}: {reasons}", details=self.details)
        reasons = "; ".join(
            f"{detail['field']} {detail['reason']}"
            + (f" ({', '.join(map(str, detail['allowed']))})" if 0 < len(detail.get("allowed", ())) <= 6 else "")
            for detail in self.details
        )
        raise InvalidInput(f"{subject}: {reasons}", details=self.details)
