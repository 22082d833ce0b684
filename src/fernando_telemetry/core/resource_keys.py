"""The key of a stored OpenTelemetry resource: a 16-byte content hash of its license and its attributes.

Imports only the standard library.
"""

from __future__ import annotations

import hashlib
import json
import uuid

__all__ = ["EMPTY_RESOURCE", "canonical_json", "resource_key"]

EMPTY_RESOURCE = "{}"
"""A resource without attributes: stored inline in ``traces.resource``, never as a shared row."""


def canonical_json(attributes_json: str) -> str:
    """The attributes with sorted keys and no spaces: one text per content, whatever the order they were sent in."""
    return json.dumps(json.loads(attributes_json), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def resource_key(license_id: int | None, attributes_json: str) -> uuid.UUID:
    """The ``telemetry_resources.resource_id`` of these attributes under this license (None: rows of no license).

    The license is part of the hash, so two licenses sending identical attributes never share a row (each row is
    visible to its own license only). BLAKE2b cut to 16 bytes: a collision needs ~2^64 distinct resources.
    """
    digest = hashlib.blake2b(digest_size=16, person=b"fernando.res.v1")
    digest.update(b"-" if license_id is None else str(license_id).encode())
    digest.update(b"\x00")
    digest.update(canonical_json(attributes_json).encode("utf-8", "surrogatepass"))
    return uuid.UUID(bytes=digest.digest())
