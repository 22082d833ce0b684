"""What a row takes from its OTLP resource: service, host, instance, environment, version, and the attributes themselves.

Imports only the standard library, ``opentelemetry.proto`` and ``core.otlp.values``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from fernando_telemetry.core.otlp.values import attribute_dict, clipped, first_attribute

__all__ = ["DEFAULT_SERVICE_NAME", "ResourceFields", "resource_fields"]

DEFAULT_SERVICE_NAME = "unknown_service"
"""The service of a resource without ``service.name`` (the OpenTelemetry SDKs' own fallback, without the process name)."""

_ENVIRONMENT_KEYS = ("deployment.environment.name", "deployment.environment")


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


def _string(value: Any) -> str | None:
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None
