"""Per-license quotas on the small tables a tenant writes (rules, channels, silences, API keys), and the
bounds of alerting work. Plain values: settings build one ``Quotas`` at an entry point and pass it down."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_QUOTAS", "Quotas"]


@dataclass(frozen=True)
class Quotas:
    """Most objects of each kind one license may hold; platform-wide objects (no license) are not counted."""

    rules: int = 200
    channels: int = 50
    silences: int = 500
    keys: int = 50


DEFAULT_QUOTAS = Quotas()
