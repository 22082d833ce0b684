"""Synthetic data: the counts asked for, internally consistent, deterministic for a seed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import text

from fernando_telemetry.composition.wiring import dump_json
from fernando_telemetry.services import schema, synthetic
from fernando_telemetry.storage.database import make_engine, session_factory

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def _load(url: str, seed: int = 7) -> dict[str, object]:
    engine = make_engine(url, pool_size=1)
    try:
        schema.upgrade(engine)
        with session_factory(engine).begin() as session:
            result = synthetic.generate(
                session,
                now=NOW,
                days=3,
                events_count=3_000,
                spans_count=2_000,
                metrics_count=1_000,
                users=50,
                license_id=None,
                seed=seed,
                dump_json=dump_json,
            )
        with engine.connect() as connection:
            facts = {
                "result": result,
                "events": connection.execute(text("SELECT count(*) FROM telemetry_events")).scalar_one(),
                "spans": connection.execute(text("SELECT count(*) FROM traces")).scalar_one(),
                "metrics": connection.execute(text("SELECT count(*) FROM system_metrics")).scalar_one(),
                "orphans": connection.execute(
                    text(
                        "SELECT count(*) FROM traces c WHERE c.parent_span_id IS NOT NULL AND NOT EXISTS "
                        "(SELECT 1 FROM traces p WHERE p.trace_id = c.trace_id AND p.span_id = c.parent_span_id)"
                    )
                ).scalar_one(),
                "mixed_users": connection.execute(
                    text(
                        "SELECT count(*) FROM (SELECT trace_id FROM traces GROUP BY trace_id HAVING count(DISTINCT user_id) > 1) t"
                    )
                ).scalar_one(),
                "user_license_mismatch": connection.execute(
                    text(
                        "SELECT count(*) FROM telemetry_events e JOIN users u USING (user_id) WHERE e.license_id IS DISTINCT FROM u.license_id"
                    )
                ).scalar_one(),
                "range": connection.execute(
                    text("SELECT min(event_timestamp) >= :lo AND max(event_timestamp) <= :hi FROM telemetry_events"),
                    {"lo": datetime(2026, 11, 17, 12, tzinfo=UTC), "hi": NOW},
                ).scalar_one(),
                "types": connection.execute(text("SELECT count(DISTINCT event_type) FROM telemetry_events")).scalar_one(),
                "revenue_events": connection.execute(
                    text(
                        "SELECT count(*) FROM telemetry_events WHERE event_type = 'business_event' AND payload ? 'amount' AND payload ? 'currency'"
                    )
                ).scalar_one(),
                "error_spans": connection.execute(text("SELECT count(*) FROM traces WHERE status = 'error'")).scalar_one(),
                "first_ids": connection.execute(text("SELECT event_id FROM telemetry_events ORDER BY event_id LIMIT 5"))
                .scalars()
                .all(),
            }
    finally:
        engine.dispose()
    return facts


class TestGenerate:
    def test_loads_consistent_data(self, database_factory: Callable[[], str]) -> None:
        """The counts asked for land, traces are whole, users and licenses agree, all in the window."""
        facts = _load(database_factory())
        assert facts["events"] == 3_000 and facts["metrics"] == 1_000
        assert 2_000 <= facts["spans"] < 2_004  # whole traces of 4 spans
        assert facts["orphans"] == 0 and facts["mixed_users"] == 0 and facts["user_license_mismatch"] == 0
        assert facts["range"] is True
        assert facts["types"] == 7
        assert facts["revenue_events"] > 0 and facts["error_spans"] > 0

    def test_the_same_seed_gives_the_same_data(self, database_factory: Callable[[], str]) -> None:
        """Two loads with one seed produce identical ids; another seed does not."""
        first, second, other = _load(database_factory()), _load(database_factory()), _load(database_factory(), seed=8)
        assert first["first_ids"] == second["first_ids"]
        assert first["first_ids"] != other["first_ids"]
