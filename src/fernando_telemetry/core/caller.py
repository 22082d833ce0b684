"""Who is asking, for which license, and by which clock: the ``Caller`` every use case receives.

Built once per request (from its principal), CLI command or job, and passed to the service call that owns
the transaction, the scope check and the audit entry. Imports only the standard library, ``core.keys`` and ``core.errors``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from fernando_telemetry.core.errors import Forbidden
from fernando_telemetry.core.keys import Principal

__all__ = ["Caller", "license_scope", "utc_now"]


def utc_now() -> datetime:
    """The wall clock, aware UTC: the default clock of every caller."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Caller:
    """One request, command or job run, as the services see it.

    ``principal`` is the API key behind a request (None for the CLI and jobs, which act as the operator);
    ``actor`` is what the audit log records (``key:<id>``, ``cli``, ``job:<name>``).
    """

    actor: str
    principal: Principal | None = None
    clock: Callable[[], datetime] = utc_now
    request_id: str | None = None

    @classmethod
    def for_key(cls, principal: Principal, *, clock: Callable[[], datetime] = utc_now, request_id: str | None = None) -> Caller:
        """A request made with an API key."""
        return cls(actor=f"key:{principal.api_key_id}", principal=principal, clock=clock, request_id=request_id)

    @classmethod
    def for_cli(cls, *, clock: Callable[[], datetime] = utc_now) -> Caller:
        """A ``fernando-telemetry`` command: the operator, who sees every license."""
        return cls(actor="cli", clock=clock)

    @classmethod
    def for_job(cls, name: str, *, clock: Callable[[], datetime] = utc_now) -> Caller:
        """A scheduled job run, acting for the platform."""
        return cls(actor=f"job:{name}", clock=clock)

    def now(self) -> datetime:
        """The caller's clock read once: call it once per use case and pass the value down."""
        return self.clock()

    @property
    def is_admin(self) -> bool:
        """The operator (CLI, jobs) and admin keys act on every license."""
        return self.principal is None or self.principal.is_admin

    @property
    def license_id(self) -> int | None:
        """The license a license key belongs to; None for admin keys, the CLI and jobs."""
        return None if self.principal is None else self.principal.license_id

    def visible_license(self, requested: int | None = None) -> int | None:
        """The license to filter by; None means every license (admins only).

        A license key naming another license is refused rather than silently narrowed.
        """
        return license_scope(self.principal, requested)


def license_scope(principal: Principal | None, requested: int | None = None) -> int | None:
    """The license ``principal`` may filter by (None: the operator, or an admin key, asking for every license).

    The one rule behind ``Caller.visible_license`` and ``services.tenancy.visible_license``: a license key naming
    another license is refused rather than silently narrowed."""
    if principal is None or principal.is_admin:
        return requested
    if requested is not None and requested != principal.license_id:
        raise Forbidden(f"this key belongs to license {principal.license_id} and cannot read license {requested}")
    return principal.license_id
