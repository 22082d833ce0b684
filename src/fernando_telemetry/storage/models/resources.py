"""``telemetry_resources``: each distinct OpenTelemetry resource of a license stored once, keyed by a content hash.

Spans point at their resource by ``traces.resource_id``. Imports only the models' base.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from fernando_telemetry.core.platform_license import PLATFORM_LICENSE_ID
from fernando_telemetry.storage.models.base import Base

__all__ = ["TelemetryResource"]


class TelemetryResource(Base):
    """One resource (service, host, SDK, ... attributes) as its spans were sent with it, once per license.

    ``resource_id`` is a hash of the license and the canonical JSON of the attributes
    (``core.resource_keys.resource_key``), so a retry or another batch of the same process finds its row, and
    two licenses sending identical attributes get two rows. No index but the key: rows are read by key and
    retention scans this small table once a day.
    """

    __tablename__ = "telemetry_resources"

    resource_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    license_id: Mapped[int] = mapped_column(
        BigInteger,
        ForeignKey("licenses.license_id", ondelete="CASCADE"),
        primary_key=True,
        server_default=text(str(PLATFORM_LICENSE_ID)),
    )
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONB)
    first_seen_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
