"""Which license a read sees: a license key sees its own; an admin key sees all, or the one it asks for."""

from __future__ import annotations

from fernando_telemetry.core.errors import Forbidden
from fernando_telemetry.core.keys import Principal

__all__ = ["visible_license"]


def visible_license(principal: Principal, requested: int | None = None) -> int | None:
    """The license to filter reads by; None means every license (admin keys only).

    A license key asking for another license's data is refused rather than silently narrowed.
    """
    if principal.is_admin:
        return requested
    if requested is not None and requested != principal.license_id:
        raise Forbidden(f"this key belongs to license {principal.license_id} and cannot read license {requested}")
    return principal.license_id
