"""Per-license quotas on the small tables a tenant writes (rules, channels, silences, API keys), and the
bounds of alerting work. Plain values: settings build one ``Quotas`` at an entry point and pass it down.

The per-license ingest rate is not a count of stored objects and lives with the ingest path: the setting
``ingest_rate_limit_items_per_s_per_license`` becomes ``IngestLimits.rate_limit_items_per_s_per_license``, checked by
``services.ingest.Ingestor.check_rate``; fair shares of the write queue are ``core.fair_share``."""

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
