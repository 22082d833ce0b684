"""Whose a row is: the platform user from ``enduser.id`` / ``user.id``, the license from the key (or, for admin keys, the data).

Imports only the standard library and ``fernando_telemetry.core``.
"""

from __future__ import annotations

from typing import Any

from fernando_telemetry.core.ingest.common import DecodeContext, ItemError, license_ref, user_ref
from fernando_telemetry.core.otlp.values import first_attribute
from fernando_telemetry.core.platform_license import PLATFORM_LICENSE_ID, owner_license

__all__ = ["LICENSE_KEYS", "USER_KEYS", "license_of", "user_of"]

USER_KEYS = ("enduser.id", "user.id")
LICENSE_KEYS = ("fernando.license_id", "license.id")


def user_of(*attribute_maps: dict[str, Any]) -> str | None:
    """The first string or integer user attribute, as the native API reads ``user_id``; other value types are ignored."""
    found = first_attribute(USER_KEYS, *attribute_maps)
    if found is None:
        return None
    key, value = found
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        return None
    try:
        return user_ref({"user_id": value})
    except ItemError as exc:
        raise ItemError(f"attributes.{key}", exc.reason) from None


def license_of(context: DecodeContext, *attribute_maps: dict[str, Any]) -> int:
    """The key's license; an admin key's rows take the license attribute (an integer or a string of digits), or
    the platform license."""
    if not context.is_admin:
        return owner_license(context.license_id)
    found = first_attribute(LICENSE_KEYS, *attribute_maps)
    if found is None:
        return PLATFORM_LICENSE_ID
    key, value = found
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value)
    try:
        return license_ref({"license_id": value}, context)
    except ItemError as exc:
        raise ItemError(f"attributes.{key}", exc.reason) from None
