"""The ingest use case (``services.ingestion.ingest``) and ``Ingestor.store`` called directly, against real PostgreSQL."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, text

from fernando_telemetry.api.deps import authenticate_key
from fernando_telemetry.composition.wiring import Wiring, build
from fernando_telemetry.core.caller import Caller
from fernando_telemetry.core.errors import Forbidden, InvalidInput, RateLimited
from fernando_telemetry.core.keys import Principal, Scope
from fernando_telemetry.services import ingestion
from fernando_telemetry.services.ingest import KINDS
from fernando_telemetry.settings import Settings
from fernando_telemetry.storage.database import session_factory
from tests.ingest_fixtures import make_tenant


@pytest.fixture()
def engine(committed_engine: Engine) -> Engine:
    """These tests commit: they use the committed-writes database."""
    return committed_engine


@pytest.fixture()
def limited_wiring(engine: Engine) -> Iterator[Wiring]:
    """A server's parts whose keys refill at 0.1 items/s: a full bucket takes one batch of any size, then the key waits."""
    wiring = build(Settings(ingest_rate_limit_items_per_s=0.1), engine=engine)
    wiring.start()
    try:
        yield wiring
    finally:
        wiring.stop()


def _caller_of(engine: Engine, token: str) -> Caller:
    return Caller.for_key(authenticate_key(session_factory(engine), token, Scope.INGEST))


def _events_named(engine: Engine, name: str) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(text("SELECT count(*) FROM telemetry_events WHERE event_name = :n"), {"n": name}).scalar_one()
        )


class TestStore:
    def test_the_batch_given_is_left_as_it_came(self, running_wiring: Wiring, engine: Engine) -> None:
        """A row naming an unknown license is a rejection of the returned ``Stored``; the batch keeps its rows."""
        tenant = make_tenant(engine)
        ingestor, kind = running_wiring.ingestor, KINDS["events"]
        admin = Principal(api_key_id=0, license_id=None, scopes=frozenset({"ingest", "admin"}))
        name = "kept-" + uuid.uuid4().hex[:8]
        items = [
            {"event_name": name, "license_id": tenant.license_id},
            {"event_name": name, "license_id": 2_000_000_000},
            {"event_name": name, "event_timestamp": "not a time"},
        ]
        batch = ingestor.decode(kind, items, principal=admin, now=datetime.now(UTC))
        rows_before, rejections_before = list(batch.rows), list(batch.rejections)
        stored = ingestor.store(kind, batch, principal=admin, endpoint="events", idempotency_key=None)
        assert (batch.rows, batch.rejections) == (rows_before, rejections_before)
        assert len(batch.rows) == 2
        assert stored.accepted == 1
        assert [(r.index, r.field) for r in stored.rejections] == [(1, "license_id"), (2, "event_timestamp")]
        assert stored.answer["accepted"] == 1 and [r["index"] for r in stored.answer["rejected"]] == [1, 2]
        assert _events_named(engine, name) == 1


class TestIngest:
    def test_the_outcome_and_its_replay(self, running_wiring: Wiring, engine: Engine) -> None:
        """A batch sent again with its Idempotency-Key is a replay of the first outcome and writes nothing more."""
        tenant = make_tenant(engine)
        caller = _caller_of(engine, tenant.ingest_key)
        name = "replayed-" + uuid.uuid4().hex[:8]
        items = [{"event_name": name}, {"event_name": name, "event_timestamp": "not a time"}]
        key = uuid.uuid4().hex

        def send() -> ingestion.Ingested:
            return ingestion.ingest(
                running_wiring.ingestor, kind=KINDS["events"], items=items, caller=caller, endpoint="events",
                now_s=time.monotonic(), idempotency_key=key,
            )  # fmt: skip

        first, again = send(), send()
        assert (first.received, first.accepted, first.replayed) == (2, 1, False)
        assert [(r.index, r.field) for r in first.rejections] == [(1, "event_timestamp")]
        assert (again.accepted, again.rejections, again.answer, again.replayed) == (1, first.rejections, first.answer, True)
        assert _events_named(engine, name) == 1

    def test_a_replay_is_answered_before_the_rate_is_checked(self, limited_wiring: Wiring, engine: Engine) -> None:
        """A key that spent its tokens still gets its stored answer back; a new batch of that key is 429."""
        tenant = make_tenant(engine)
        caller = _caller_of(engine, tenant.ingest_key)
        items = [{"event_name": "burst"}] * 10
        key = uuid.uuid4().hex

        def send(idempotency_key: str) -> ingestion.Ingested:
            return ingestion.ingest(
                limited_wiring.ingestor, kind=KINDS["events"], items=items, caller=caller, endpoint="events",
                now_s=time.monotonic(), idempotency_key=idempotency_key,
            )  # fmt: skip

        assert send(key).accepted == 10
        assert send(key).replayed
        with pytest.raises(RateLimited):
            send(uuid.uuid4().hex)

    def test_an_oversize_request_is_refused_before_it_costs_tokens(self, limited_wiring: Wiring, engine: Engine) -> None:
        """A body that is not an array is refused whole and leaves the key's tokens for a good batch."""
        tenant = make_tenant(engine)
        caller = _caller_of(engine, tenant.ingest_key)
        ingestor = limited_wiring.ingestor
        for _ in range(20):
            with pytest.raises(InvalidInput, match="'events' must be a JSON array"):
                ingestion.ingest(ingestor, kind=KINDS["events"], items={"event_name": "x"}, caller=caller, endpoint="events", now_s=time.monotonic())  # fmt: skip
        done = ingestion.ingest(
            ingestor, kind=KINDS["events"], items=[{"event_name": "x"}] * 10, caller=caller, endpoint="events", now_s=time.monotonic()
        )  # fmt: skip
        assert done.accepted == 10

    def test_a_caller_without_a_key_is_refused(self, running_wiring: Wiring) -> None:
        """The operator and jobs have no license key to ingest under: ``Forbidden``, nothing decoded."""
        with pytest.raises(Forbidden):
            ingestion.ingest(
                running_wiring.ingestor, kind=KINDS["events"], items=[], caller=Caller.for_cli(), endpoint="events", now_s=0.0
            )
