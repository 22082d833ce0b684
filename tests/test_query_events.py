"""Event search: every filter, keyset pagination edges, one event by id, and tenant scoping.

The service is tested on the shared database inside a rolled-back transaction; the HTTP routes on the
committed-writes database through the real app, with data sent through the ingest API.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from fernando_telemetry.core.enums import EventSource, EventType
from fernando_telemetry.core.errors import Forbidden, InvalidInput, NotFound
from fernando_telemetry.core.keys import Principal
from fernando_telemetry.services import event_search, keys
from fernando_telemetry.services.event_search import EventFilters, EventPage
from fernando_telemetry.storage.database import session_factory
from tests.helpers import add_event, add_license, add_user
from tests.ingest_fixtures import Tenant, admin_key, make_tenant, new_token

NOW = datetime.now(UTC).replace(microsecond=0)
ADMIN = Principal(api_key_id=0, license_id=None, scopes=frozenset({"admin"}))


def reader(license_id: int) -> Principal:
    return Principal(api_key_id=0, license_id=license_id, scopes=frozenset({"read"}))


def search(session: Session, principal: Principal = ADMIN, *, now: datetime = NOW, **filters: Any) -> EventPage:
    return event_search.search(
        session, principal=principal, filters=EventFilters(**filters), now=now, cursor_key=b"test cursor key"
    )


def names(page: EventPage) -> list[str]:
    return [event["event_name"] for event in page.events]


def walk(session: Session, *, page_size: int, now: datetime = NOW, **filters: Any) -> list[list[str]]:
    """Every page of a search, following next_cursor until it is None."""
    pages: list[list[str]] = []
    cursor = None
    while True:
        page = search(session, now=now, limit=page_size, cursor=cursor, **filters)
        pages.append(names(page))
        cursor = page.next_cursor
        if cursor is None:
            return pages
        assert len(pages) < 100, "pagination does not end"


class TestFilters:
    def test_each_equality_filter_keeps_only_matching_events(self, session: Session) -> None:
        """event_type, event_name, user_id, session_id and source each narrow to the events with that value."""
        license_ = add_license(session)
        add_user(session, "u-filter-1", license_id=license_.license_id)
        add_user(session, "u-filter-2", license_id=license_.license_id)
        at = NOW - timedelta(minutes=5)
        add_event(
            session,
            at=at,
            event_name="a",
            event_type=EventType.ERROR_EVENT,
            user_id="u-filter-1",
            session_id="s1",
            source=EventSource.WEB,
        )
        add_event(
            session,
            at=at,
            event_name="b",
            event_type=EventType.USER_ACTION,
            user_id="u-filter-2",
            session_id="s2",
            source=EventSource.MOBILE,
        )
        add_event(
            session,
            at=at,
            event_name="c",
            event_type=EventType.USER_ACTION,
            user_id=None,
            session_id="s1",
            source=EventSource.API,
        )
        assert names(search(session, equals={"event_type": "error_event"})) == ["a"]
        assert names(search(session, equals={"event_name": "b"})) == ["b"]
        assert names(search(session, equals={"user_id": "u-filter-2"})) == ["b"]
        assert sorted(names(search(session, equals={"session_id": "s1"}))) == ["a", "c"]
        assert names(search(session, equals={"source": "api"})) == ["c"]
        assert names(search(session, equals={"event_type": "user_action", "session_id": "s1"})) == ["c"]
        assert names(search(session, equals={"event_type": "security_event"})) == []

    @pytest.mark.parametrize(("name", "value"), [("event_type", "bogus"), ("source", "fax")])
    def test_values_outside_a_closed_vocabulary_are_a_400(self, session: Session, name: str, value: str) -> None:
        """A misspelt event_type or source is refused with the accepted values, not answered with nothing."""
        with pytest.raises(InvalidInput, match=rf"^{name}: '{value}' is not one of"):
            search(session, equals={name: value})

    def test_from_is_inclusive_and_to_exclusive(self, session: Session) -> None:
        """An event exactly at from is in; one exactly at to is out."""
        start, end = NOW - timedelta(hours=3), NOW - timedelta(hours=1)
        add_event(session, at=start - timedelta(microseconds=1), event_name="before")
        add_event(session, at=start, event_name="at-from")
        add_event(session, at=end - timedelta(microseconds=1), event_name="last-inside")
        add_event(session, at=end, event_name="at-to")
        assert names(search(session, start=start, end=end)) == ["last-inside", "at-from"]

    def test_without_from_and_to_the_last_24_hours_are_read(self, session: Session) -> None:
        """The default range is the day before now."""
        add_event(session, at=NOW - timedelta(hours=23, minutes=59), event_name="inside")
        add_event(session, at=NOW - timedelta(hours=24, minutes=1), event_name="too-old")
        add_event(session, at=NOW + timedelta(minutes=1), event_name="future")
        assert names(search(session)) == ["inside"]

    def test_to_alone_reads_the_day_before_it(self, session: Session) -> None:
        """With only to, from defaults to 24 hours before to."""
        add_event(session, at=NOW - timedelta(days=3, hours=1), event_name="inside")
        add_event(session, at=NOW - timedelta(days=4, hours=1), event_name="outside")
        assert names(search(session, end=NOW - timedelta(days=3))) == ["inside"]

    def test_a_range_of_31_days_passes_and_a_longer_one_is_a_400(self, session: Session) -> None:
        """31 days is the longest range; beyond it the 400 says so."""
        add_event(session, at=NOW - timedelta(days=30), event_name="month-old")
        assert names(search(session, start=NOW - timedelta(days=31), end=NOW)) == ["month-old"]
        with pytest.raises(InvalidInput, match="longer than the 31 days one query may read"):
            search(session, start=NOW - timedelta(days=31, seconds=1), end=NOW)

    def test_to_not_after_from_is_a_400(self, session: Session) -> None:
        """An empty or reversed range is refused."""
        with pytest.raises(InvalidInput, match="must be after from"):
            search(session, start=NOW, end=NOW)

    @pytest.mark.parametrize("limit", [0, -1, 1001])
    def test_limits_outside_1_to_1000_are_a_400(self, session: Session, limit: int) -> None:
        """limit is bounded."""
        with pytest.raises(InvalidInput, match="limit must be between 1 and 1000"):
            search(session, limit=limit)


class TestPayloadFilters:
    @pytest.fixture()
    def events(self, session: Session) -> None:
        at = NOW - timedelta(minutes=1)
        add_event(session, at=at, event_name="pro-3", payload={"plan": "pro", "seats": 3, "beta": True})
        add_event(session, at=at, event_name="pro-3s", payload={"plan": "pro", "seats": "3", "beta": "true"})
        add_event(session, at=at, event_name="free", payload={"plan": "free", "seats": 1, "coupon": None})
        add_event(
            session,
            at=at,
            event_name="nested",
            payload={"user": {"plan": "pro", "tier": 2}, "http.route": "/pay", "tags": ["a", "b"]},
        )

    def filtered(self, session: Session, *pairs: tuple[str, str]) -> list[str]:
        from fernando_telemetry.core import containment

        return sorted(names(search(session, payload=containment.conditions("payload.", pairs))))

    @pytest.mark.usefixtures("events")
    def test_a_string_value_matches_that_string(self, session: Session) -> None:
        """payload.plan=pro finds the events whose plan is "pro"."""
        assert self.filtered(session, ("payload.plan", "pro")) == ["pro-3", "pro-3s"]

    @pytest.mark.usefixtures("events")
    def test_a_number_matches_the_number_or_the_same_text(self, session: Session) -> None:
        """payload.seats=3 finds {"seats": 3} and {"seats": "3"}."""
        assert self.filtered(session, ("payload.seats", "3")) == ["pro-3", "pro-3s"]
        assert self.filtered(session, ("payload.seats", "1")) == ["free"]

    @pytest.mark.usefixtures("events")
    def test_booleans_and_null_match_the_json_value_or_the_text(self, session: Session) -> None:
        """payload.beta=true finds true and "true"; payload.coupon=null finds a JSON null."""
        assert self.filtered(session, ("payload.beta", "true")) == ["pro-3", "pro-3s"]
        assert self.filtered(session, ("payload.coupon", "null")) == ["free"]

    @pytest.mark.usefixtures("events")
    def test_several_keys_must_all_match(self, session: Session) -> None:
        """Filters are ANDed, whether string or JSON."""
        assert self.filtered(session, ("payload.plan", "pro"), ("payload.beta", "true"), ("payload.seats", "3")) == [
            "pro-3",
            "pro-3s",
        ]
        assert self.filtered(session, ("payload.plan", "free"), ("payload.seats", "3")) == []
        assert self.filtered(session, ("payload.plan", "pro"), ("payload.plan", "free")) == []

    @pytest.mark.usefixtures("events")
    def test_objects_match_nested_fields_and_arrays_match_elements(self, session: Session) -> None:
        """An object value is a containment on a nested object; an array value on array elements."""
        assert self.filtered(session, ("payload.user", '{"plan": "pro"}')) == ["nested"]
        assert self.filtered(session, ("payload.user", '{"plan": "free"}')) == []
        assert self.filtered(session, ("payload.tags", '["b"]')) == ["nested"]

    @pytest.mark.usefixtures("events")
    def test_dotted_keys_are_top_level_keys(self, session: Session) -> None:
        """payload.http.route=/pay matches the key "http.route" as written."""
        assert self.filtered(session, ("payload.http.route", "/pay")) == ["nested"]


class TestPagination:
    def test_pages_are_newest_first_and_ties_are_broken_by_event_id_descending(self, session: Session) -> None:
        """Order is (event_timestamp DESC, event_id DESC)."""
        at = NOW - timedelta(minutes=10)
        ids = sorted((uuid.uuid4() for _ in range(3)), reverse=True)
        add_event(session, at=at - timedelta(minutes=1), event_name="older")
        for index, event_id in enumerate(ids):
            add_event(session, at=at, event_id=event_id, event_name=f"tie-{index}")
        add_event(session, at=at + timedelta(minutes=1), event_name="newer")
        assert names(search(session)) == ["newer", "tie-0", "tie-1", "tie-2", "older"]

    def test_equal_timestamps_across_page_boundaries_are_neither_lost_nor_repeated(self, session: Session) -> None:
        """Seven events at one instant, read two at a time, come back once each, in order."""
        at = NOW - timedelta(minutes=3)
        ids = sorted((uuid.uuid4() for _ in range(7)), reverse=True)
        for index, event_id in enumerate(ids):
            add_event(session, at=at, event_id=event_id, event_name=f"same-{index}")
        add_event(session, at=at - timedelta(microseconds=1), event_name="just-before")
        pages = walk(session, page_size=2)
        assert pages == [["same-0", "same-1"], ["same-2", "same-3"], ["same-4", "same-5"], ["same-6", "just-before"]]

    def test_a_last_page_that_is_exactly_full_has_no_next_cursor(self, session: Session) -> None:
        """Four events at two per page are two pages, not two and an empty third."""
        for minute in range(4):
            add_event(session, at=NOW - timedelta(minutes=minute + 1), event_name=f"m{minute}")
        assert walk(session, page_size=2) == [["m0", "m1"], ["m2", "m3"]]

    def test_no_match_is_an_empty_page_without_a_cursor(self, session: Session) -> None:
        """Nothing found: no events and next_cursor None."""
        page = search(session, equals={"event_name": "nothing-" + uuid.uuid4().hex})
        assert page == EventPage(events=[], next_cursor=None)

    def test_pages_spanning_hours_and_days_keep_their_order(self, session: Session) -> None:
        """Events minutes, hours and days apart (read slice by slice, newest first) come back in order, on one page or several."""
        ages = [
            timedelta(minutes=10),
            timedelta(minutes=59),
            timedelta(hours=3),
            timedelta(hours=20),
            timedelta(days=2),
            timedelta(days=9),
        ]
        for index, age in enumerate(ages):
            add_event(session, at=NOW - age, event_name=f"a{index}")
        start = NOW - timedelta(days=10)
        assert names(search(session, start=start)) == [f"a{index}" for index in range(6)]
        assert walk(session, page_size=4, start=start) == [["a0", "a1", "a2", "a3"], ["a4", "a5"]]
        assert walk(session, page_size=3, start=start, end=NOW - timedelta(minutes=30)) == [["a1", "a2", "a3"], ["a4", "a5"]]

    def test_a_page_of_one_walks_every_event(self, session: Session) -> None:
        """limit=1 pages through all matches one by one."""
        for second in range(5):
            add_event(session, at=NOW - timedelta(seconds=second + 1), event_name=f"s{second}")
        assert walk(session, page_size=1) == [[f"s{second}"] for second in range(5)]

    def test_events_newer_than_the_cursor_do_not_appear_on_later_pages(self, session: Session) -> None:
        """An event arriving between two page reads, newer than the cursor, is not inserted into later pages."""
        for minute in range(4):
            add_event(session, at=NOW - timedelta(minutes=minute + 1), event_name=f"m{minute}")
        first = search(session, limit=2)
        add_event(session, at=NOW - timedelta(seconds=30), event_name="late-newest")
        second = search(session, limit=2, cursor=first.next_cursor)
        assert names(second) == ["m2", "m3"] and second.next_cursor is None

    def test_later_pages_keep_the_range_of_the_first_when_from_was_defaulted(self, session: Session) -> None:
        """Page 2 read two hours later still reaches back 24 hours from the first page's now."""
        add_event(session, at=NOW - timedelta(minutes=1), event_name="new")
        add_event(session, at=NOW - timedelta(hours=23), event_name="old")
        first = search(session, limit=1)
        second = search(session, limit=1, cursor=first.next_cursor, now=NOW + timedelta(hours=2))
        assert names(first) == ["new"] and names(second) == ["old"]

    def test_a_cursor_with_other_filters_is_a_400(self, session: Session) -> None:
        """A cursor reused with different filters is refused rather than misapplied."""
        for minute in range(3):
            add_event(session, at=NOW - timedelta(minutes=minute + 1), event_name="x", session_id="s")
        cursor = search(session, limit=1, equals={"event_name": "x"}).next_cursor
        assert cursor is not None
        assert names(search(session, limit=1, equals={"event_name": "x"}, cursor=cursor)) == ["x"]
        with pytest.raises(InvalidInput, match="belongs to a query with other filters"):
            search(session, limit=1, equals={"event_name": "x", "session_id": "s"}, cursor=cursor)

    def test_a_changed_limit_keeps_the_cursor_valid(self, session: Session) -> None:
        """The page size is not part of the query: a cursor works with any limit."""
        for minute in range(5):
            add_event(session, at=NOW - timedelta(minutes=minute + 1), event_name=f"m{minute}")
        first = search(session, limit=2)
        assert names(search(session, limit=3, cursor=first.next_cursor)) == ["m2", "m3", "m4"]

    def test_a_garbage_cursor_is_a_400(self, session: Session) -> None:
        """A token we did not issue is InvalidInput, not a server error."""
        with pytest.raises(InvalidInput, match="not a cursor this API issued"):
            search(session, cursor="eyJub3QiOiAiYSBjdXJzb3IifQ")

    def test_a_cursor_older_than_an_explicit_from_gives_an_empty_last_page(self, session: Session) -> None:
        """Moving from past the cursor's position leaves nothing to read: an empty page, no cursor."""
        for minute in range(3):
            add_event(session, at=NOW - timedelta(minutes=10 * minute + 1), event_name=f"m{minute}")
        cursor = search(session, limit=2, start=NOW - timedelta(hours=1)).next_cursor
        assert search(session, limit=2, start=NOW - timedelta(minutes=5), cursor=cursor) == EventPage(events=[], next_cursor=None)


class TestTenancy:
    def test_a_license_key_sees_only_its_license(self, session: Session) -> None:
        """Events of another license, and events of no license, are invisible to a license's key."""
        mine, theirs = add_license(session, "mine"), add_license(session, "theirs")
        at = NOW - timedelta(minutes=1)
        add_event(session, at=at, event_name="mine", license_id=mine.license_id)
        add_event(session, at=at, event_name="theirs", license_id=theirs.license_id)
        add_event(session, at=at, event_name="nobodys")
        assert names(search(session, reader(mine.license_id))) == ["mine"]
        assert names(search(session, reader(mine.license_id), license_id=mine.license_id)) == ["mine"]
        with pytest.raises(Forbidden):
            search(session, reader(mine.license_id), license_id=theirs.license_id)

    def test_an_admin_sees_every_license_or_the_one_it_names(self, session: Session) -> None:
        """Admin keys read all events, or one license's with license_id."""
        one, two = add_license(session, "one"), add_license(session, "two")
        at = NOW - timedelta(minutes=1)
        add_event(session, at=at, event_name="one", license_id=one.license_id)
        add_event(session, at=at - timedelta(seconds=1), event_name="two", license_id=two.license_id)
        assert names(search(session)) == ["one", "two"]
        assert names(search(session, license_id=two.license_id)) == ["two"]

    def test_an_admin_cursor_cannot_be_replayed_for_another_license(self, session: Session) -> None:
        """The license filter is part of the query a cursor belongs to."""
        one, two = add_license(session, "one"), add_license(session, "two")
        for minute in range(3):
            add_event(session, at=NOW - timedelta(minutes=minute + 1), event_name="e", license_id=one.license_id)
        cursor = search(session, limit=1, license_id=one.license_id).next_cursor
        with pytest.raises(InvalidInput, match="other filters"):
            search(session, limit=1, license_id=two.license_id, cursor=cursor)


class TestGetById:
    def test_an_event_is_found_by_id_across_partitions(self, session: Session) -> None:
        """An event weeks old is found by its id alone, with every column."""
        event = add_event(session, at=NOW - timedelta(days=40), event_name="old-one", payload={"k": "v"})
        row = event_search.get(session, principal=ADMIN, event_id=event.event_id)
        assert row["event_name"] == "old-one" and row["payload"] == {"k": "v"} and row["event_timestamp"] == event.event_timestamp

    def test_unknown_and_other_licenses_events_are_not_found(self, session: Session) -> None:
        """A missing id and another license's event are both NotFound (the other license's event is not revealed)."""
        mine, theirs = add_license(session, "mine"), add_license(session, "theirs")
        event = add_event(session, at=NOW - timedelta(minutes=1), license_id=theirs.license_id)
        with pytest.raises(NotFound):
            event_search.get(session, principal=ADMIN, event_id=uuid.uuid4())
        with pytest.raises(NotFound):
            event_search.get(session, principal=reader(mine.license_id), event_id=event.event_id)
        assert (
            event_search.get(session, principal=reader(theirs.license_id), event_id=event.event_id)["event_id"] == event.event_id
        )

    @pytest.mark.parametrize("text", ["", "123", "not-a-uuid", "0192f3a4-5b6c-7d8e-9f00-11223344556g"])
    def test_a_malformed_id_is_a_400(self, text: str) -> None:
        """Ids must be UUIDs."""
        with pytest.raises(InvalidInput, match="^event_id: .* is not a UUID"):
            event_search.parse_event_id(text)


# --- HTTP ------------------------------------------------------------------------------------------


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture()
def tenant(committed_engine: Engine) -> Tenant:
    return make_tenant(committed_engine)


def _ingest(client: TestClient, tenant: Tenant, events: list[dict[str, Any]]) -> None:
    answer = client.post("/api/v1/events", json={"events": events}, headers=_auth(tenant.ingest_key)).json()
    assert answer == {"accepted": len(events), "rejected": []}


class TestEventsApi:
    def test_filters_payload_and_pages_over_http(self, client: TestClient, tenant: Tenant) -> None:
        """Ingested events are found by type, user and payload, and a cursor walks the pages."""
        at = NOW - timedelta(minutes=30)
        _ingest(
            client,
            tenant,
            [
                {
                    "event_name": f"e{index}",
                    "event_type": "business_event",
                    "user_id": tenant.user_id,
                    "payload": {"plan": "pro" if index % 2 else "free", "seats": index},
                    "event_timestamp": (at + timedelta(seconds=index)).isoformat(),
                }
                for index in range(5)
            ]
            + [{"event_name": "other", "event_timestamp": at.isoformat()}],
        )
        params = {"event_type": "business_event", "user_id": tenant.user_id, "payload.plan": "pro", "limit": "1"}
        first = client.get("/api/v1/events", params=params, headers=_auth(tenant.read_key))
        assert first.status_code == 200, first.text
        assert [event["event_name"] for event in first.json()["events"]] == ["e3"]
        second = client.get(
            "/api/v1/events", params={**params, "cursor": first.json()["next_cursor"]}, headers=_auth(tenant.read_key)
        ).json()
        assert [event["event_name"] for event in second["events"]] == ["e1"] and second["next_cursor"] is None
        seats = client.get("/api/v1/events", params={"payload.seats": "4"}, headers=_auth(tenant.read_key)).json()
        assert [event["event_name"] for event in seats["events"]] == ["e4"]

    def test_an_event_comes_back_with_every_column_and_by_id(self, client: TestClient, tenant: Tenant) -> None:
        """The search answer carries all columns of the table, the same as GET /events/{id}."""
        event_id = str(uuid.uuid4())
        _ingest(
            client,
            tenant,
            [
                {
                    "event_id": event_id,
                    "event_name": "full",
                    "session_id": "s-1",
                    "source": "web",
                    "payload": {"a": 1},
                    "duration_ms": 12.5,
                    "ip_address": "10.0.0.7",
                    "user_agent": "ua",
                    "environment": "prod",
                    "app_version": "1.2.3",
                    "category": "checkout",
                    "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
                    "span_id": "00f067aa0ba902b7",
                    "event_timestamp": (NOW - timedelta(minutes=2)).isoformat(),
                }
            ],
        )
        (found,) = client.get("/api/v1/events", params={"event_name": "full"}, headers=_auth(tenant.read_key)).json()["events"]
        by_id = client.get(f"/api/v1/events/{event_id}", headers=_auth(tenant.read_key))
        assert by_id.status_code == 200 and by_id.json() == found
        assert set(found) == {
            "event_id",
            "event_type",
            "event_name",
            "category",
            "source",
            "user_id",
            "license_id",
            "session_id",
            "payload",
            "duration_ms",
            "ip_address",
            "user_agent",
            "trace_id",
            "span_id",
            "environment",
            "app_version",
            "event_timestamp",
            "created_at",
        }
        assert found["event_id"] == event_id and found["ip_address"] == "10.0.0.7" and found["license_id"] == tenant.license_id
        assert datetime.fromisoformat(found["event_timestamp"]) == NOW - timedelta(minutes=2)

    @pytest.mark.parametrize(
        ("params", "message"),
        [
            ({"from": "yesterday"}, "from: 'yesterday' is not an ISO 8601 timestamp"),
            ({"to": "2026-13-01"}, "to: '2026-13-01' is not an ISO 8601 timestamp"),
            ({"from": "2026-01-01T00:00:00Z", "to": "2026-03-01T00:00:00Z"}, "longer than the 31 days"),
            ({"limit": "1001"}, "limit must be between 1 and 1000, got 1001"),
            ({"limit": "0"}, "limit must be between 1 and 1000, got 0"),
            ({"limit": "ten"}, "limit: 'ten' is not an integer"),
            ({"license_id": "99999999999999999999"}, "license_id must be between 1 and"),
            ({"cursor": "garbage"}, "cursor: not a cursor this API issued"),
            ({"evnt_type": "error_event"}, "unknown query parameter evnt_type; accepted:"),
            ({"payload.": "x"}, "name a key after 'payload.'"),
            ({"event_type": "nope"}, "event_type: 'nope' is not one of"),
            ({"user_id": "u\x00"}, "user_id: NUL characters are not allowed"),
        ],
    )
    def test_bad_parameters_are_400_with_a_message(
        self, client: TestClient, tenant: Tenant, params: dict[str, str], message: str
    ) -> None:
        """Each malformed or out-of-range parameter is a 400 in the error body, saying what is wrong."""
        response = client.get("/api/v1/events", params=params, headers=_auth(tenant.read_key))
        assert response.status_code == 400, response.text
        assert message in response.json()["error"]["message"]

    def test_an_escaped_nul_in_a_json_value_is_matched_as_text(self, client: TestClient, tenant: Tenant) -> None:
        """jsonb cannot hold the NUL that ["\\u0000"] stands for, so that value is matched only as a string: 200, not 500."""
        response = client.get("/api/v1/events", params={"payload.a": '["\\u0000"]'}, headers=_auth(tenant.read_key))
        assert response.status_code == 200 and response.json()["events"] == [], response.text

    def test_a_repeated_single_valued_parameter_is_a_400(self, client: TestClient, tenant: Tenant) -> None:
        """event_type given twice is refused rather than one of them silently winning."""
        response = client.get("/api/v1/events?event_type=user_action&event_type=error_event", headers=_auth(tenant.read_key))
        assert response.status_code == 400 and "event_type may be given once" in response.json()["error"]["message"]

    def test_an_offset_with_a_plus_sign_works_encoded_or_not(self, client: TestClient, tenant: Tenant) -> None:
        """from=...+01:00 sent unencoded (the + arrives as a space) reads the same as encoded."""
        _ingest(client, tenant, [{"event_name": "tz", "event_timestamp": (NOW - timedelta(minutes=1)).isoformat()}])
        raw = (NOW - timedelta(minutes=2)).astimezone(timezone(timedelta(hours=1))).isoformat()
        assert "+01:00" in raw
        for query in (f"from={raw}", f"from={raw.replace('+', '%2B')}", f"from={raw}&to={NOW.isoformat()}"):
            response = client.get(f"/api/v1/events?{query}&event_name=tz", headers=_auth(tenant.read_key))
            assert response.status_code == 200, response.text
            assert [event["event_name"] for event in response.json()["events"]] == ["tz"]

    def test_malformed_and_unknown_ids(self, client: TestClient, tenant: Tenant) -> None:
        """A malformed id is 400; a well-formed unknown one 404."""
        assert client.get("/api/v1/events/not-a-uuid", headers=_auth(tenant.read_key)).status_code == 400
        response = client.get(f"/api/v1/events/{uuid.uuid4()}", headers=_auth(tenant.read_key))
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"

    def test_keys_without_the_read_scope_are_refused(self, client: TestClient, tenant: Tenant, committed_engine: Engine) -> None:
        """No key is 401; an ingest-only key is 403, on both routes."""
        with session_factory(committed_engine).begin() as session:
            ingest_only = keys.create_key(session, license_id=tenant.license_id, scopes=["ingest"], new_token=new_token).token
        for path in ("/api/v1/events", f"/api/v1/events/{uuid.uuid4()}"):
            assert client.get(path).status_code == 401
            assert client.get(path, headers=_auth(ingest_only)).status_code == 403


class TestEventsTenantScoping:
    def test_license_a_sees_nothing_of_license_b(self, client: TestClient, tenant: Tenant, committed_engine: Engine) -> None:
        """B's events are absent from A's searches, B's event id is 404 for A, and asking for B's license is 403."""
        other = make_tenant(committed_engine)
        marker = "scoped-" + uuid.uuid4().hex[:8]
        event_id = str(uuid.uuid4())
        _ingest(
            client,
            other,
            [{"event_id": event_id, "event_name": marker, "event_timestamp": (NOW - timedelta(minutes=1)).isoformat()}],
        )
        assert client.get("/api/v1/events", params={"event_name": marker}, headers=_auth(other.read_key)).json()["events"]
        for params in ({"event_name": marker}, {}, {"license_id": str(tenant.license_id)}):
            events = client.get("/api/v1/events", params=params, headers=_auth(tenant.read_key)).json()["events"]
            assert all(event["license_id"] == tenant.license_id for event in events)
            assert marker not in [event["event_name"] for event in events]
        assert client.get(f"/api/v1/events/{event_id}", headers=_auth(tenant.read_key)).status_code == 404
        assert client.get(f"/api/v1/events/{event_id}", headers=_auth(other.read_key)).status_code == 200
        response = client.get("/api/v1/events", params={"license_id": str(other.license_id)}, headers=_auth(tenant.read_key))
        assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"

    def test_an_admin_reads_any_license_and_can_narrow_to_one(
        self, client: TestClient, tenant: Tenant, committed_engine: Engine
    ) -> None:
        """The admin key sees both tenants' events, or one tenant's with license_id, and any event by id."""
        other = make_tenant(committed_engine)
        marker = "admin-" + uuid.uuid4().hex[:8]
        event_id = str(uuid.uuid4())
        _ingest(client, tenant, [{"event_name": marker, "event_timestamp": (NOW - timedelta(minutes=1)).isoformat()}])
        _ingest(
            client,
            other,
            [{"event_id": event_id, "event_name": marker, "event_timestamp": (NOW - timedelta(minutes=2)).isoformat()}],
        )
        admin = admin_key(committed_engine)
        both = client.get("/api/v1/events", params={"event_name": marker}, headers=_auth(admin)).json()["events"]
        assert [event["license_id"] for event in both] == [tenant.license_id, other.license_id]
        one = client.get(
            "/api/v1/events", params={"event_name": marker, "license_id": str(other.license_id)}, headers=_auth(admin)
        ).json()
        assert [event["license_id"] for event in one["events"]] == [other.license_id]
        assert client.get(f"/api/v1/events/{event_id}", headers=_auth(admin)).status_code == 200
