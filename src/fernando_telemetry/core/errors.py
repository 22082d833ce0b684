"""The one error hierarchy of Fernando Telemetry; the API maps it to HTTP in one place.

Every expected failure is a ``FernandoTelemetryError`` with a stable ``code``, a message a person
can act on, and optional ``details`` (for example one entry per rejected field or item).
"""

from __future__ import annotations

from typing import Any

__all__ = [
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


class EmbeddedDatabaseError(FernandoTelemetryError):
    """The private embedded PostgreSQL could not be set up, started or stopped."""

    code = "embedded_database_error"
