"""How hard the fuzz tests try: a short form by default (CI) and a long form with ``FERNANDO_TELEMETRY_FUZZ_LONG=1``.

Every fuzz test takes its Hypothesis settings from ``fuzz_settings`` so the two forms are switched in one place.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

__all__ = ["LONG", "examples", "fuzz_settings"]

LONG = os.environ.get("FERNANDO_TELEMETRY_FUZZ_LONG", "").strip().lower() in ("1", "true", "yes", "on")
"""True when the long form was asked for."""

_LONG_FACTOR = 20


def examples(short: int) -> int:
    """The number of examples for a test: ``short`` in the short form, twenty times that in the long one."""
    return short * _LONG_FACTOR if LONG else short


def fuzz_settings(short: int, *, deadline_ms: int | None = None) -> settings:
    """Hypothesis settings for a fuzz test of ``short`` examples (scaled up in the long form).

    The deadline is per example and generous (a shared 2-core CI machine); ``None`` turns it off, which the
    tests that go through the database use. The example database is off: runs stay reproducible from the seed
    printed on failure rather than from files left in the checkout.
    """
    return settings(
        max_examples=examples(short),
        deadline=deadline_ms,
        derandomize=False,
        database=None,
        print_blob=True,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.function_scoped_fixture,
        ],
    )
