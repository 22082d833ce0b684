"""Keyset pagination cursors: the position after a page's last row, as an opaque URL-safe token.

A cursor holds the last row's sort key (a timestamp and an id), the start of the time range the first
page read (so later pages read the same range even when ``from`` was defaulted from the clock), and a
digest of the query's filters (so a cursor handed to a different query is refused, not misapplied).
A MAC keyed with the installation's secret (``derive_key``) makes a truncated, edited or forged token a
clear 400, so the times inside are only ever ones this server wrote. The content is not secret: a cursor
only says where to continue, and every page is filtered by the caller's license whatever the cursor says.

Pure; imports only core.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from fernando_telemetry.core.errors import InvalidInput, field_problem

__all__ = ["Cursor", "decode", "derive_key", "encode", "query_digest"]

_VERSION = 1
_CHECKSUM_BYTES = 8
_KEY_CONTEXT = b"fernando-telemetry keyset cursor/v1"
_MAX_TOKEN_CHARS = 1024
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where the next page starts: strictly after ``(at, key)`` in the query's order."""

    at: datetime
    key: str
    range_start: datetime
    query: str

    def __post_init__(self) -> None:
        if self.at.tzinfo is None or self.range_start.tzinfo is None:
            raise ValueError("cursor times must be timezone-aware")


def query_digest(filters: Mapping[str, object]) -> str:
    """A short, stable digest of a query's filters; equal filters give equal digests whatever their order."""
    canonical = json.dumps(filters, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def derive_key(secret_key: str) -> bytes:
    """The key cursors are signed with, derived from the installation's secret key (one key per purpose)."""
    return hmac.new(secret_key.encode("utf-8"), _KEY_CONTEXT, hashlib.sha256).digest()


def encode(cursor: Cursor, *, key: bytes) -> str:
    payload = json.dumps(
        [_VERSION, _micros(cursor.at), cursor.key, _micros(cursor.range_start), cursor.query],
        separators=(",", ":"),
    ).encode("utf-8")
    token = base64.urlsafe_b64encode(payload + _checksum(payload, key)).decode("ascii")
    return token.rstrip("=")


def decode(token: str, *, query: str, key: bytes, parameter: str = "cursor") -> Cursor:
    """The cursor a token holds; ``InvalidInput`` naming ``parameter`` when it is not one this API issued
    or belongs to a query with other filters (``query`` is the digest of the current request's)."""
    cursor = _decode(token, key=key, parameter=parameter)
    if cursor.query != query:
        raise InvalidInput(
            f"{parameter}: this cursor belongs to a query with other filters; repeat the filters of the first page, "
            "or omit the cursor to start again from the newest",
            details=[field_problem(parameter, "issued for other filters")],
        )
    return cursor


def _decode(token: str, *, key: bytes, parameter: str) -> Cursor:
    def garbage(reason: str) -> InvalidInput:
        return InvalidInput(
            f"{parameter}: not a cursor this API issued ({reason}); pass the next_cursor of the previous page "
            "unchanged, or omit it to start from the newest",
            details=[field_problem(parameter, reason)],
        )

    text = token.strip()
    if not text:
        raise garbage("empty")
    if len(text) > _MAX_TOKEN_CHARS or not text.isascii():
        raise garbage("too long or not ASCII")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise garbage("not base64url") from None
    if base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=") != text:
        raise garbage("not base64url")  # stray characters or altered padding bits decode to the same bytes
    payload, checksum = raw[:-_CHECKSUM_BYTES], raw[-_CHECKSUM_BYTES:]
    if len(raw) <= _CHECKSUM_BYTES or not hmac.compare_digest(checksum, _checksum(payload, key)):
        raise garbage("signature mismatch: truncated, edited or not issued here")
    try:
        version, at_us, key, range_start_us, query = json.loads(payload)
    except (ValueError, TypeError):
        raise garbage("unreadable content") from None
    if version != _VERSION:
        raise garbage(f"version {version!r} is not {_VERSION}")
    if not (_is_int(at_us) and _is_int(range_start_us) and isinstance(key, str) and isinstance(query, str)):
        raise garbage("unreadable content")
    try:
        return Cursor(at=_from_micros(at_us), key=key, range_start=_from_micros(range_start_us), query=query)
    except OverflowError:
        raise garbage("time out of range") from None


def _checksum(payload: bytes, key: bytes) -> bytes:
    if not key:
        raise ValueError("cursors need a non-empty key")
    return hashlib.blake2b(payload, digest_size=_CHECKSUM_BYTES, key=key[:64]).digest()


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _from_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
