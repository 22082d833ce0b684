"""Series arithmetic: step, aggregation and grouping parsing, UTC bucket alignment, point limits, gap filling."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from fernando_telemetry.core import series
from fernando_telemetry.core.errors import InvalidInput
from fernando_telemetry.core.series import Aggregation, Buckets, GroupBy, Step
from fernando_telemetry.core.time_range import TimeRange


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


class TestParsing:
    @pytest.mark.parametrize(
        ("text", "step", "seconds"),
        [("1m", Step.ONE_MINUTE, 60), ("5m", Step.FIVE_MINUTES, 300), ("1h", Step.ONE_HOUR, 3600), (" 1d ", Step.ONE_DAY, 86400)],
    )
    def test_the_four_steps_parse_with_their_seconds(self, text: str, step: Step, seconds: int) -> None:
        """1m, 5m, 1h and 1d are the steps; surrounding spaces are ignored."""
        assert series.parse_step(text) is step
        assert step.seconds == seconds and step.delta == timedelta(seconds=seconds)

    @pytest.mark.parametrize("text", ["", "2m", "60s", "1H", "1w", "m"])
    def test_other_steps_are_a_400_listing_the_accepted_ones(self, text: str) -> None:
        """Anything else is InvalidInput naming the parameter and the four steps."""
        with pytest.raises(InvalidInput, match=r"^step: .* use one of 1m, 5m, 1h, 1d"):
            series.parse_step(text)

    def test_no_step_is_none(self) -> None:
        """An absent step is left for the caller to choose."""
        assert series.parse_step(None) is None

    @pytest.mark.parametrize(
        ("text", "aggregation", "quantile"),
        [
            (None, Aggregation.AVG, None),
            ("max", Aggregation.MAX, None),
            ("RATE", Aggregation.RATE, None),
            ("p50", Aggregation.P50, 0.5),
            ("p90", Aggregation.P90, 0.9),
            ("p95", Aggregation.P95, 0.95),
            ("p99", Aggregation.P99, 0.99),
        ],
    )
    def test_aggregations_parse_case_insensitively_with_avg_by_default(
        self, text: str | None, aggregation: Aggregation, quantile: float | None
    ) -> None:
        """Names are case-insensitive; percentiles know their quantile."""
        assert series.parse_aggregation(text) is aggregation
        assert aggregation.quantile == quantile

    @pytest.mark.parametrize("text", ["mean", "p75", "median", ""])
    def test_unknown_aggregations_are_a_400(self, text: str) -> None:
        """An aggregation outside the list is InvalidInput naming ``agg``."""
        with pytest.raises(InvalidInput, match=r"^agg: "):
            series.parse_aggregation(text)

    @pytest.mark.parametrize(
        ("text", "group_by", "name"),
        [
            ("host_name", GroupBy(column="host_name"), "host_name"),
            ("service_name", GroupBy(column="service_name"), "service_name"),
            ("labels.region", GroupBy(label="region"), "labels.region"),
            ("labels.http.route", GroupBy(label="http.route"), "labels.http.route"),
        ],
    )
    def test_group_by_a_column_or_a_label(self, text: str, group_by: GroupBy, name: str) -> None:
        """host_name, service_name and labels.<key> (the key taken literally, dots included) are groupings."""
        assert series.parse_group_by(text) == group_by
        assert group_by.name == name

    @pytest.mark.parametrize("text", ["metric_name", "labels.", "labels", "instance_id", "labels." + "k" * 201])
    def test_other_groupings_are_a_400(self, text: str) -> None:
        """Other columns, and labels. without a key, are InvalidInput naming ``group_by``."""
        with pytest.raises(InvalidInput, match=r"^group_by: "):
            series.parse_group_by(text)

    @pytest.mark.parametrize("text", [None, "", "  "])
    def test_no_group_by_is_none(self, text: str | None) -> None:
        """Absent or blank means one series."""
        assert series.parse_group_by(text) is None


class TestAlignment:
    @pytest.mark.parametrize(
        ("moment", "step", "start"),
        [
            (utc(2026, 11, 28, 9, 31, 59, 999999), Step.ONE_MINUTE, utc(2026, 11, 28, 9, 31)),
            (utc(2026, 11, 28, 9, 34, 59), Step.FIVE_MINUTES, utc(2026, 11, 28, 9, 30)),
            (utc(2026, 11, 28, 9, 35), Step.FIVE_MINUTES, utc(2026, 11, 28, 9, 35)),
            (utc(2026, 11, 28, 9, 59, 59), Step.ONE_HOUR, utc(2026, 11, 28, 9)),
            (utc(2026, 11, 28, 23, 59, 59), Step.ONE_DAY, utc(2026, 11, 28)),
            (utc(2026, 11, 29), Step.ONE_DAY, utc(2026, 11, 29)),
        ],
    )
    def test_align_down_gives_the_start_of_the_utc_bucket(self, moment: datetime, step: Step, start: datetime) -> None:
        """Buckets start at multiples of the step since the epoch; a moment on a boundary starts its bucket."""
        assert series.align_down(moment, step) == start

    def test_days_are_utc_days_whatever_the_offset_of_the_input(self) -> None:
        """01:30 at +05:00 is 20:30 UTC the day before, so its 1d bucket is that UTC midnight."""
        moment = datetime(2026, 11, 28, 1, 30, tzinfo=timezone(timedelta(hours=5)))
        aligned = series.align_down(moment, Step.ONE_DAY)
        assert aligned == utc(2026, 11, 27) and aligned.utcoffset() == timedelta(0)


class TestBuckets:
    def test_buckets_run_from_the_aligned_start_through_the_bucket_holding_the_end(self) -> None:
        """From 09:32 to 09:47 at 5m: buckets 09:30, 09:35, 09:40, 09:45, each whole."""
        buckets = series.buckets_for(TimeRange(utc(2026, 11, 28, 9, 32), utc(2026, 11, 28, 9, 47)), Step.FIVE_MINUTES)
        assert buckets.starts() == [utc(2026, 11, 28, 9, minute) for minute in (30, 35, 40, 45)]
        assert buckets.end == utc(2026, 11, 28, 9, 50)

    def test_an_end_on_a_boundary_adds_no_bucket(self) -> None:
        """[09:00, 10:00) at 1m is exactly 60 buckets, the last at 09:59."""
        buckets = series.buckets_for(TimeRange(utc(2026, 11, 28, 9), utc(2026, 11, 28, 10)), Step.ONE_MINUTE)
        assert buckets.count == 60 and buckets.starts()[-1] == utc(2026, 11, 28, 9, 59)

    def test_a_range_inside_one_bucket_is_one_point(self) -> None:
        """A few seconds inside one hour are the one hourly bucket."""
        buckets = series.buckets_for(TimeRange(utc(2026, 11, 28, 9, 10), utc(2026, 11, 28, 9, 10, 5)), Step.ONE_HOUR)
        assert buckets.starts() == [utc(2026, 11, 28, 9)]

    def test_the_point_limit_is_inclusive(self) -> None:
        """Exactly MAX_POINTS points pass; one more is refused."""
        start = utc(2026, 1, 1)
        exact = TimeRange(start, start + timedelta(minutes=series.MAX_POINTS))
        assert series.buckets_for(exact, Step.ONE_MINUTE).count == series.MAX_POINTS
        with pytest.raises(
            InvalidInput, match=r"step=1m gives 11,001 points over this range, more than the 11,000 allowed; use step=5m"
        ):
            series.buckets_for(TimeRange(start, exact.end + timedelta(seconds=1)), Step.ONE_MINUTE)

    def test_a_range_too_long_for_every_step_says_to_shorten_it(self) -> None:
        """When even 1d gives too many points, the message asks for a shorter range."""
        with pytest.raises(InvalidInput, match="use a shorter range$"):
            series.buckets_for(TimeRange(utc(2026, 1, 1), utc(2026, 1, 1) + timedelta(days=20)), Step.ONE_DAY, max_points=10)

    @pytest.mark.parametrize(
        ("span", "step"),
        [
            (timedelta(hours=1), Step.ONE_MINUTE),
            (timedelta(hours=24), Step.ONE_MINUTE),
            (timedelta(hours=25), Step.FIVE_MINUTES),
            (timedelta(days=5), Step.FIVE_MINUTES),
            (timedelta(days=6), Step.ONE_HOUR),
            (timedelta(days=61), Step.ONE_DAY),
        ],
    )
    def test_auto_step_is_the_smallest_within_the_auto_point_count(self, span: timedelta, step: Step) -> None:
        """Without a step, the finest one giving at most 1,440 points is taken."""
        start = utc(2026, 1, 1)
        assert series.auto_step(TimeRange(start, start + span)) is step


class TestFillGaps:
    def test_every_bucket_gets_a_point_and_missing_ones_are_none(self) -> None:
        """Buckets with no value are present as None, in time order."""
        buckets = Buckets(first=utc(2026, 11, 28, 9), step=Step.ONE_MINUTE, count=4)
        values = {utc(2026, 11, 28, 9, 1): 2.5, utc(2026, 11, 28, 9, 3): 0.0}
        assert series.fill_gaps(buckets, values) == [
            (utc(2026, 11, 28, 9, 0), None),
            (utc(2026, 11, 28, 9, 1), 2.5),
            (utc(2026, 11, 28, 9, 2), None),
            (utc(2026, 11, 28, 9, 3), 0.0),
        ]

    def test_no_values_give_a_line_of_nones(self) -> None:
        """An empty mapping still gives one point per bucket."""
        buckets = Buckets(first=utc(2026, 11, 28), step=Step.ONE_DAY, count=3)
        assert [value for _, value in series.fill_gaps(buckets, {})] == [None, None, None]

    def test_values_outside_the_buckets_are_ignored(self) -> None:
        """Only the buckets' own starts are read: a value at another instant does not add a point."""
        buckets = Buckets(first=utc(2026, 11, 28, 9), step=Step.ONE_HOUR, count=2)
        filled = series.fill_gaps(buckets, {utc(2026, 11, 28, 8): 1.0, utc(2026, 11, 28, 9, 30): 2.0, utc(2026, 11, 28, 10): 3.0})
        assert filled == [(utc(2026, 11, 28, 9), None), (utc(2026, 11, 28, 10), 3.0)]
