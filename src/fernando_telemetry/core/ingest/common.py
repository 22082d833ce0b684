"""Field checks shared by the ingest decoders, each raising ``ItemError(field, reason)`` with an actionable reason."""

from __future__ import annotations

import ipaddress
import math
import socket
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Context, Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, Literal, overload

from fernando_telemetry.core.platform_license import PLATFORM_LICENSE_ID, owner_license

__all__ = [
    "MAX_DURATION_MS",
    "MAX_MAGNITUDE",
    "DecodeContext",
    "IngestBounds",
    "ItemError",
    "Rejection",
    "bounded",
    "decode_items",
    "enum_value",
    "finite_number",
    "hex_id",
    "integer",
    "ip_address",
    "json_array",
    "json_object",
    "numeric",
    "optional_text",
    "required_text",
    "timestamp",
    "user_ref",
    "uuid_value",
]

MAX_MAGNITUDE = 1e250
"""The largest absolute value a float field accepts: sums of 10^58 such values still fit in a double, so the
rollups and every reader can add them up without overflow (PostgreSQL raises on a double overflow)."""
MAX_DURATION_MS = 1e12
"""The longest duration accepted (about 31.7 years), in milliseconds."""
_EXACT_INTEGER = 2**53
"""Beyond this a JSON integer may not have an exact double: refused rather than silently rounded."""
_MAX_BIGINT = 2**63 - 1
_MONEY_PLACES = Decimal("0.000001")
_MONEY_CONTEXT = Context(prec=40)


class ItemError(ValueError):
    """One field of one item is wrong; ``reason`` says what was expected."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Rejection:
    """A rejected item: its position in the batch, the field at fault and why."""

    index: int
    field: str | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class IngestBounds:
    """How much one item may make the server compute and store, whatever the body's size (settings ``ingest_max_*``).

    The defaults here are the settings' defaults; ``services.ingest`` builds the bounds from the settings.
    """

    max_histogram_bounds: int = 160
    """Explicit bounds of one histogram point or native ``buckets`` item (bucket counts: one more)."""
    max_exponential_buckets: int = 320
    """Bucket counts on each side (positive, negative) of one exponential-histogram point."""
    max_samples: int = 10_000
    """Raw values in one native ``samples`` item."""
    max_json_chars: int = 64 * 1024
    """Characters of one JSON field of one item as stored (attributes, events, payload, labels, resource)."""
    max_resource_chars: int = 8 * 1024
    """Characters of an OTLP resource's attributes stored with each span; the attributes past it are dropped."""
    max_scope_chars: int = 256
    """Characters of an OTLP instrumentation scope's name stored with each span or log record (the rest cut)."""


@dataclass(frozen=True, slots=True)
class DecodeContext:
    """What a decoder needs from outside: time, the accepted window, tenancy, ids and JSON."""

    now: datetime
    earliest: datetime
    latest: datetime
    license_id: int | None
    """The license of the key; rows belong to it whatever the body says. None for an admin key."""
    is_admin: bool
    new_id: Callable[[], uuid.UUID]
    dump_json: Callable[[Any], str]
    bounds: IngestBounds = IngestBounds()
    """Per-item limits on the work and storage an item may cause."""


def decode_items(
    items: Sequence[Any], decode: Callable[[Mapping[str, Any], DecodeContext], tuple[Any, ...]], context: DecodeContext
) -> tuple[list[tuple[Any, ...]], list[int], list[Rejection]]:
    """Decode each item; return the rows, the batch index of each row, and the rejections."""
    rows: list[tuple[Any, ...]] = []
    indexes: list[int] = []
    rejections: list[Rejection] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            rejections.append(Rejection(index, None, f"an item must be a JSON object, got {_json_type(item)}"))
            continue
        try:
            rows.append(decode(item, context))
            indexes.append(index)
        except ItemError as exc:
            rejections.append(Rejection(index, exc.field, exc.reason))
    return rows, indexes, rejections


def check_fields(item: Mapping[str, Any], allowed: frozenset[str]) -> None:
    for key in item:
        if key not in allowed:
            raise ItemError(_printable(str(key)), f"unknown field; allowed fields are {', '.join(sorted(allowed))}")


def _printable(name: str) -> str:
    """A field name as the answer may echo it: as sent when printable, else quoted with escapes (no raw NUL, never empty)."""
    return name[:100] if name.isprintable() and name.strip() else repr(name[:40])


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object" if isinstance(value, dict) else type(value).__name__


def optional_text(item: Mapping[str, Any], field: str, max_length: int) -> str | None:
    value = item.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ItemError(field, f"must be a string, got {_json_type(value)}")
    if len(value) > max_length:
        raise ItemError(field, f"is {len(value)} characters long; at most {max_length} are allowed")
    if "\x00" in value:
        raise ItemError(field, "contains a NUL character, which PostgreSQL text cannot store")
    return value


def required_text(item: Mapping[str, Any], field: str, max_length: int) -> str:
    value = optional_text(item, field, max_length)
    if value is None or not value.strip():
        raise ItemError(field, "is required and must be a non-empty string")
    return value


def user_ref(item: Mapping[str, Any], field: str = "user_id") -> str | None:
    """A platform user id: a string, or an integer taken as its decimal string."""
    value = item.get(field)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    text = optional_text(item, field, 128)
    if text is not None and not text:
        raise ItemError(field, "must not be empty; omit it or use null for no user")
    return text


_VOCABULARIES: dict[type[StrEnum], dict[str, str]] = {}


def enum_value(item: Mapping[str, Any], field: str, enum_class: type[StrEnum], default: StrEnum | None = None) -> str:
    value = item.get(field)
    if value is None:
        if default is None:
            raise ItemError(field, f"is required; one of {', '.join(member.value for member in enum_class)}")
        return default.value
    vocabulary = _VOCABULARIES.get(enum_class)
    if vocabulary is None:
        vocabulary = _VOCABULARIES[enum_class] = {member.value: member.value for member in enum_class}
    if isinstance(value, str):
        found = vocabulary.get(value) or vocabulary.get(value.lower())
        if found is not None:
            return found
        raise ItemError(field, f"{value[:60]!r} is not one of {', '.join(vocabulary)}")
    raise ItemError(field, f"must be a string, got {_json_type(value)}")


def finite_number(
    item: Mapping[str, Any], field: str, *, required: bool = False, minimum: float | None = None, maximum: float | None = None
) -> float | None:
    """A double in ``[minimum, maximum]`` with ``|x| <= MAX_MAGNITUDE`` (see ``bounded``)."""
    value = item.get(field)
    if value is None:
        if required:
            raise ItemError(field, "is required and must be a number")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ItemError(field, f"must be a number, got {_json_type(value)}")
    if maximum is not None and value > maximum and not math.isinf(value):
        raise ItemError(field, f"must be at most {maximum:g}, got {value:g}")
    number = bounded(value, field)
    if minimum is not None and number < minimum:
        raise ItemError(field, f"must be at least {minimum:g}, got {number:g}")
    if maximum is not None and number > maximum:
        raise ItemError(field, f"must be at most {maximum:g}, got {number:g}")
    return number


def bounded(value: int | float, field: str) -> float:
    """A JSON or protobuf number as a double the database can aggregate: finite, ``|x| <= MAX_MAGNITUDE``, and an
    integer only when the double holds it exactly (beyond 2^53 an integer would be silently rounded)."""
    if isinstance(value, int) and abs(value) > _EXACT_INTEGER:
        if abs(value) > MAX_MAGNITUDE or float(value) != value:
            raise ItemError(
                field,
                f"the integer {str(value)[:40]} is beyond 2^53 and has no exact double: it would be stored rounded"
                f" (to {float(value):.17g}); send that value if rounding is acceptable",
            )
    number = float(value)
    if not math.isfinite(number):
        raise ItemError(field, "must be a finite number (not NaN or infinity)")
    if abs(number) > MAX_MAGNITUDE:
        raise ItemError(field, f"is out of range: the absolute value must be at most {MAX_MAGNITUDE:g}, got {number:g}")
    return number


def integer(item: Mapping[str, Any], field: str, *, minimum: int, maximum: int, default: int | None = None) -> int | None:
    value = item.get(field)
    if value is None:
        return default
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ItemError(field, f"must be an integer, got {_json_type(value)}")
    if not minimum <= value <= maximum:
        raise ItemError(field, f"must be between {minimum} and {maximum}, got {value}")
    return value


@overload
def numeric(item: Mapping[str, Any], field: str, *, required: Literal[True]) -> Decimal: ...
@overload
def numeric(item: Mapping[str, Any], field: str, *, required: bool = False) -> Decimal | None: ...
def numeric(item: Mapping[str, Any], field: str, *, required: bool = False) -> Decimal | None:
    """An exact decimal (money): a JSON number or a numeric string such as "19.99"."""
    value = item.get(field)
    if value is None:
        if required:
            raise ItemError(field, "is required and must be a number")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ItemError(field, f"must be a number or a numeric string, got {_json_type(value)}")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise ItemError(field, f"{str(value)[:40]!r} is not a number") from None
    if not number.is_finite():
        raise ItemError(field, "must be a finite number (not NaN or infinity)")
    # the columns are numeric(24, 6): PostgreSQL rounds to 6 places first, so 999999999999999999.9999999 overflows too
    if abs(number) >= Decimal(10) ** 18 or abs(number.quantize(_MONEY_PLACES, context=_MONEY_CONTEXT)) >= Decimal(10) ** 18:
        raise ItemError(field, "is too large; at most 18 digits before the decimal point (once rounded to 6 places)")
    return number


def timestamp(item: Mapping[str, Any], field: str, *, default: datetime | None = None) -> datetime:
    """An instant: ISO 8601 (offset or Z; no offset means UTC) or Unix epoch seconds / ms / µs / ns."""
    value = item.get(field)
    if value is None:
        if default is None:
            raise ItemError(field, "is required: an ISO 8601 timestamp such as 2026-11-28T09:30:00Z")
        return default
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip().replace("z", "Z"))
        except ValueError:
            raise ItemError(field, f"{value[:40]!r} is not an ISO 8601 timestamp such as 2026-11-28T09:30:00Z") from None
        try:
            return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
        except OverflowError:  # an offset that moves it before year 1 or past 9999
            raise ItemError(field, f"{value[:40]!r} is out of range for a timestamp") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ItemError(field, f"must be an ISO 8601 string or epoch seconds, got {_json_type(value)}")
    seconds = float(value)
    if not math.isfinite(seconds):
        raise ItemError(field, "must be a finite number")
    magnitude = abs(seconds)
    if magnitude >= 1e17:
        seconds /= 1e9
    elif magnitude >= 1e14:
        seconds /= 1e6
    elif magnitude >= 1e11:
        seconds /= 1e3
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise ItemError(field, f"{value} is out of range for a timestamp") from None


def in_window(moment: datetime, field: str, context: DecodeContext, earliest: datetime | None = None) -> datetime:
    lower = earliest or context.earliest
    if moment < lower:
        raise ItemError(
            field, f"{moment.isoformat()} is older than the accepted window (from {lower.isoformat(timespec='seconds')})"
        )
    if moment > context.latest:
        raise ItemError(
            field, f"{moment.isoformat()} is in the future (accepted until {context.latest.isoformat(timespec='seconds')})"
        )
    return moment


def uuid_value(item: Mapping[str, Any], field: str) -> uuid.UUID | None:
    value = item.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ItemError(field, f"must be a UUID string, got {_json_type(value)}")
    try:
        return uuid.UUID(value)
    except ValueError:
        raise ItemError(field, f"{value[:40]!r} is not a UUID") from None


@overload
def hex_id(item: Mapping[str, Any], field: str, length: int, *, required: Literal[True]) -> str: ...
@overload
def hex_id(item: Mapping[str, Any], field: str, length: int, *, required: bool = False) -> str | None: ...
def hex_id(item: Mapping[str, Any], field: str, length: int, *, required: bool = False) -> str | None:
    """A W3C trace (32) or span (16) id: lowercase hex, not all zeros."""
    value = item.get(field)
    if value is None or value == "":
        if required:
            raise ItemError(field, f"is required: {length} hexadecimal characters")
        return None
    if not isinstance(value, str):
        raise ItemError(field, f"must be a string of {length} hexadecimal characters, got {_json_type(value)}")
    lowered = value.lower()
    if len(lowered) != length or lowered.strip("0123456789abcdef"):
        raise ItemError(field, f"must be {length} hexadecimal characters, got {value[:40]!r}")
    if lowered == "0" * length:
        raise ItemError(field, "must not be all zeros (an invalid id in W3C trace context)")
    return lowered


def ip_address(item: Mapping[str, Any], field: str) -> str | None:
    value = optional_text(item, field, 64)
    if value is None:
        return None
    try:
        socket.inet_pton(socket.AF_INET, value)  # the common case, checked in C
        return value
    except OSError:
        pass
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise ItemError(field, f"{value!r} is not an IPv4 or IPv6 address") from None
    if getattr(address, "scope_id", None):
        raise ItemError(field, f"{value!r} has an IPv6 zone (%...), which PostgreSQL's inet cannot store; send the address alone")
    return str(address)


def json_object(item: Mapping[str, Any], field: str, context: DecodeContext) -> str:
    value = item.get(field)
    if value is None:
        return "{}"
    if not isinstance(value, dict):
        raise ItemError(field, f"must be a JSON object, got {_json_type(value)}")
    return _dump(value, field, context)


def json_array(item: Mapping[str, Any], field: str, context: DecodeContext) -> str:
    value = item.get(field)
    if value is None:
        return "[]"
    if not isinstance(value, list):
        raise ItemError(field, f"must be a JSON array, got {_json_type(value)}")
    return _dump(value, field, context)


def _dump(value: Any, field: str, context: DecodeContext) -> str:
    try:
        text = context.dump_json(value)
    except (TypeError, ValueError) as exc:
        raise ItemError(field, f"cannot be stored as JSON: {exc}") from None
    limit = context.bounds.max_json_chars
    if len(text) > limit:
        raise ItemError(field, f"is {len(text)} characters as JSON; at most {limit} are allowed")
    if "\\u0000" in text:
        raise ItemError(field, "contains a NUL character (\\u0000), which PostgreSQL JSON cannot store")
    return text


def license_ref(item: Mapping[str, Any], context: DecodeContext) -> int:
    """The row's license: always the key's; an admin key may name one (none: the platform license)."""
    if not context.is_admin:
        return owner_license(context.license_id)
    value = item.get("license_id")
    if value is None:
        return PLATFORM_LICENSE_ID
    if isinstance(value, bool) or not isinstance(value, int):
        raise ItemError("license_id", f"must be a positive integer, got {_json_type(value)}")
    if not 1 <= value <= _MAX_BIGINT:
        raise ItemError("license_id", f"must be a positive integer of at most {_MAX_BIGINT}, got {value}")
    return value


def period_end(period_type: str, start: datetime) -> datetime:
    """The end of a KPI period that starts at ``start``."""
    if period_type == "hourly":
        return start + timedelta(hours=1)
    if period_type == "daily":
        return start + timedelta(days=1)
    if period_type == "weekly":
        return start + timedelta(days=7)
    year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
    return start.replace(year=year, month=month, day=min(start.day, 28 if month == 2 else 30))
