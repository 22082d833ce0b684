"""The platform license: the owner of platform-wide rows.

Every telemetry, rollup and KPI row belongs to a license (``license_id`` is NOT NULL and part of every key, the
distribution column on Citus). Rows that belong to no customer (the server's own host metrics, items an admin key
sends without naming a license, KPI totals over every license) belong to license 0, ``platform``, which revision
0018 creates. It is an ordinary row of ``licenses``: license keys of other licenses never see it; admin keys do.
"""

from __future__ import annotations

__all__ = ["PLATFORM_LICENSE_ID", "PLATFORM_LICENSE_NAME", "owner_license"]

PLATFORM_LICENSE_ID = 0
PLATFORM_LICENSE_NAME = "platform"


def owner_license(license_id: int | None) -> int:
    """The license a row is stored under: its own, or the platform license when it names none."""
    return PLATFORM_LICENSE_ID if license_id is None else license_id
