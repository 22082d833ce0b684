from sqlalchemy import text
def test_explain(session):
    plan = session.execute(text("EXPLAIN SELECT * FROM telemetry_events_hourly_summary WHERE hour >= now() - interval '1 day'")).scalars().all()
    n = sum('Scan on telemetry_events_p' in l for l in plan)
    plan2 = session.execute(text("EXPLAIN SELECT * FROM telemetry_events WHERE event_timestamp >= now() - interval '1 day'")).scalars().all()
    n2 = sum('Scan on telemetry_events_p' in l for l in plan2)
    print("\nVIEW partitions scanned:", n, " direct:", n2)
