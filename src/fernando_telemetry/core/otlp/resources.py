"""What a row takes from its OTLP resource: service, host, instance, environment, version, and the attributes themselves.

Imports only the standard library, ``opentelemetry.proto`` and ``core.otlp.values``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from fernando_telemetry.core.otlp.values import attribute_dict, clipped, first_attribute

__all__ = ["DEFAULT_SERVICE_NAME", "DROPPED_KEY", "ResourceFields", "resource_fields", "stored_resource_json"]

DEFAULT_SERVICE_NAME = "unknown_service"
"""The service of a resource without ``service.name`` (the OpenTelemetry SDKs' own fallback, without the process name)."""

DROPPED_KEY = "fernando.dropped_attributes_count"
"""Set in a stored resource that lost attributes to the per-row limit: how many were dropped."""

_ENVIRONMENT_KEYS = ("deployment.environment.name", "deployment.environment")
# kept first when a resource is cut to the per-row limit
_FIRST_KEYS = ("service.name", "service.namespace", "service.version", "service.instance.id", "host.name", *_ENVIRONMENT_KEYS)
_DROPPED_RESERVE = len(DROPPED_KEY) + 16  # ',"<key>":<count>' fits in it
_SMALLEST_PAIR = len('"":0,')


@dataclass(frozen=True, slots=True)
class ResourceFields:
    """The columns one resource gives every row under it, already cut to the column widths."""

    service_name: str
    host_name: str | None
    instance_id: str | None
    environment: str | None
    app_version: str | None
    attributes: dict[str, Any]


def resource_fields(pb2_resource: Resource) -> ResourceFields:
    """Read the semantic-convention keys of a resource; a missing or non-string ``service.name`` is ``unknown_service``."""
    attributes = attribute_dict(pb2_resource.attributes)
    environment = first_attribute(_ENVIRONMENT_KEYS, attributes)
    return ResourceFields(
        service_name=clipped(_string(attributes.get("service.name")), 100) or DEFAULT_SERVICE_NAME,
        host_name=clipped(_string(attributes.get("host.name")), 255),
        instance_id=clipped(_string(attributes.get("service.instance.id")), 255),
        environment=clipped(_string(environment[1]), 32) if environment else None,
        app_version=clipped(_string(attributes.get("service.version")), 64),
        attributes=attributes,
    )


def stored_resource_json(attributes: dict[str, Any], max_chars: int, dump_json: Callable[[Any], str]) -> str:
    """The resource's attributes as the JSON stored with each row, at most ``max_chars`` characters.

    A resource that fits is stored whole. Otherwise attributes are kept one by one while they fit (the
    service, host and environment keys first, then the others in the order sent; an attribute too large to fit
    is skipped and the next tried), and ``DROPPED_KEY`` says how many were dropped. The columns read from the
    resource (service, host, instance, environment, version) are taken before, so they never lose anything.
    """
    whole = dump_json(attributes)
    if len(whole) <= max_chars:
        return whole
    ordered = [key for key in _FIRST_KEYS if key in attributes] + [key for key in attributes if key not in _FIRST_KEYS]
    kept: dict[str, Any] = {}
    size = 2 + _DROPPED_RESERVE  # the braces and the dropped count
    for key in ordered:
        if max_chars - size < _SMALLEST_PAIR:  # full: the rest are dropped without being measured
            break
        cost = len(dump_json({key: attributes[key]})) - 1  # the pair and its comma
        if size + cost <= max_chars:
            kept[key] = attributes[key]
            size += cost
    if len(kept) < len(attributes):
        kept[DROPPED_KEY] = len(attributes) - len(kept)
    return dump_json(kept)


def _string(value: Any) -> str | None:
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None
