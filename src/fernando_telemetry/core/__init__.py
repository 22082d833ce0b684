"""Pure domain code: enums, value types, errors, time arithmetic. Imports no framework."""

from fernando_telemetry.core import enums, errors, partitioning

__all__ = ["enums", "errors", "partitioning"]
