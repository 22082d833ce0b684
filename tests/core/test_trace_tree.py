"""The span tree of a trace: nesting, order, depth, self time, orphans, several roots, cycles, deep traces."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from fernando_telemetry.core.trace_tree import SpanRecord, TraceNode, build_tree, root_span, self_time_ms, union_us

T0 = datetime(2026, 11, 28, 9, 30, tzinfo=UTC)
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def span(
    span_id: str,
    parent: str | None,
    start_ms: float,
    duration_ms: float,
    *,
    service: str = "web",
    operation: str | None = None,
    status: str = "ok",
) -> SpanRecord:
    start = T0 + timedelta(milliseconds=start_ms)
    return SpanRecord(
        span_id=span_id,
        parent_span_id=parent,
        service_name=service,
        operation_name=operation or f"op-{span_id}",
        start_time=start,
        end_time=start + timedelta(milliseconds=duration_ms),
        duration_ms=duration_ms,
        status=status,
    )


def shape(nodes: tuple[TraceNode, ...]) -> list[object]:
    """(span_id, depth, orphan, children...) nested, for comparing small trees at a glance."""
    return [(node.span.span_id, node.depth, node.orphan, shape(node.children)) for node in nodes]


class TestNesting:
    def test_children_nest_under_their_parent_ordered_by_start_time(self) -> None:
        """Whatever the input order, children sit under their parent sorted by start, with depth counted from 0."""
        spans = [
            span("c2", "b", 30, 5),
            span("a", None, 0, 100),
            span("b", "a", 10, 50),
            span("c1", "b", 12, 5),
            span("d", "a", 70, 20),
        ]
        tree = build_tree(TRACE, spans)
        assert shape(tree.roots) == [
            ("a", 0, False, [("b", 1, False, [("c1", 2, False, []), ("c2", 2, False, [])]), ("d", 1, False, [])]),
        ]
        assert tree.max_depth == 2
        assert tree.orphan_count == 0

    def test_the_result_does_not_depend_on_the_input_order(self) -> None:
        """Shuffled inputs give the same tree."""
        spans = [span(f"s{i}", None if i == 0 else f"s{(i - 1) // 3}", i, 100 - i) for i in range(40)]
        expected = shape(build_tree(TRACE, spans).roots)
        for seed in range(5):
            shuffled = spans[:]
            random.Random(seed).shuffle(shuffled)
            assert shape(build_tree(TRACE, shuffled).roots) == expected

    def test_equal_start_times_are_ordered_by_span_id(self) -> None:
        """Siblings that started at the same instant keep a stable order: by span id."""
        tree = build_tree(TRACE, [span("root", None, 0, 10), span("zz", "root", 1, 1), span("aa", "root", 1, 1)])
        assert [child.span.span_id for child in tree.roots[0].children] == ["aa", "zz"]

    def test_walk_visits_every_node_once_parents_first(self) -> None:
        """walk() is the display order: depth first, each parent before its children, siblings by start."""
        spans = [
            span("a", None, 0, 100),
            span("b", "a", 10, 50),
            span("c", "b", 20, 5),
            span("d", "a", 70, 5),
            span("e", None, 200, 5),
        ]
        assert [node.span.span_id for node in build_tree(TRACE, spans).walk()] == ["a", "b", "c", "d", "e"]

    def test_a_trace_needs_a_span(self) -> None:
        """An empty span list is a programming error, not an empty tree."""
        with pytest.raises(ValueError):
            build_tree(TRACE, [])


class TestMissingParents:
    def test_a_span_whose_parent_never_arrived_is_shown_at_the_top_and_flagged(self) -> None:
        """Orphans keep their own subtrees and sit beside the root; the top level is ordered by start time."""
        spans = [
            span("root", None, 0, 100),
            span("child", "root", 10, 10),
            span("lost", "missingparent00", 5, 50),
            span("under-lost", "lost", 6, 10),
            span("early-lost", "missingparent01", -5, 1),
        ]
        tree = build_tree(TRACE, spans)
        assert shape(tree.roots) == [
            ("early-lost", 0, True, []),
            ("root", 0, False, [("child", 1, False, [])]),
            ("lost", 0, True, [("under-lost", 1, False, [])]),
        ]
        assert tree.orphan_count == 2

    def test_a_trace_of_orphans_only_still_builds(self) -> None:
        """When the root never arrived, every span whose parent is missing is a top-level orphan."""
        tree = build_tree(TRACE, [span("x", "gone", 10, 5), span("y", "gone", 0, 5), span("z", "x", 11, 1)])
        assert shape(tree.roots) == [("y", 0, True, []), ("x", 0, True, [("z", 1, False, [])])]
        assert tree.summary.root_operation == "op-y"  # no span without a parent: the earliest span names the trace

    def test_several_roots_are_kept_side_by_side(self) -> None:
        """Two spans without a parent are two top-level roots, neither flagged."""
        tree = build_tree(TRACE, [span("r2", None, 50, 5), span("r1", None, 0, 5), span("k", "r2", 51, 1)])
        assert shape(tree.roots) == [("r1", 0, False, []), ("r2", 0, False, [("k", 1, False, [])])]
        assert tree.orphan_count == 0


class TestCycles:
    def test_a_cycle_of_parent_links_is_cut_at_its_earliest_span(self) -> None:
        """a -> b -> a cannot loop: the earliest of the cycle goes to the top as an orphan, the rest below it."""
        spans = [span("b", "a", 10, 5), span("a", "b", 0, 50), span("c", "b", 12, 1)]
        tree = build_tree(TRACE, spans)
        assert shape(tree.roots) == [("a", 0, True, [("b", 1, False, [("c", 2, False, [])])])]
        assert sorted(node.span.span_id for node in tree.walk()) == ["a", "b", "c"]

    def test_a_span_hanging_off_a_cycle_is_not_mistaken_for_the_cut(self) -> None:
        """A descendant of a cycle that started earlier than the cycle stays under its parent."""
        spans = [span("early", "b", 0, 1), span("a", "b", 10, 50), span("b", "a", 20, 5)]
        tree = build_tree(TRACE, spans)
        assert shape(tree.roots) == [("a", 0, True, [("b", 1, False, [("early", 2, False, [])])])]

    def test_a_span_that_is_its_own_parent_is_a_top_level_orphan(self) -> None:
        """A self-reference is treated as a missing parent."""
        tree = build_tree(TRACE, [span("self", "self", 0, 5)])
        assert shape(tree.roots) == [("self", 0, True, [])]

    def test_two_records_with_one_span_id_are_both_shown(self) -> None:
        """A span id stored twice (two start times) gives two nodes; children attach to the earlier one."""
        spans = [span("root", None, 0, 100), span("dup", "root", 10, 5), span("dup", "root", 20, 5), span("k", "dup", 11, 1)]
        tree = build_tree(TRACE, spans)
        assert shape(tree.roots) == [("root", 0, False, [("dup", 1, False, [("k", 2, False, [])]), ("dup", 1, False, [])])]
        assert tree.summary.span_count == 4


class TestDeepNesting:
    def test_a_chain_thousands_of_levels_deep_builds_without_recursion(self) -> None:
        """A 20,000-level chain (far past Python's recursion limit) builds, walks and reports its depth."""
        depth = 20_000
        spans = [span(f"{i:016x}", None if i == 0 else f"{i - 1:016x}", i * 0.001, depth - i * 0.001) for i in range(depth)]
        random.Random(1).shuffle(spans)
        tree = build_tree(TRACE, spans)
        assert tree.max_depth == depth - 1
        walked = list(tree.walk())
        assert [node.depth for node in walked] == list(range(depth))
        assert walked[-1].span.span_id == f"{depth - 1:016x}"
        assert len(repr(walked[0])) < 2000  # the repr of a node does not descend into its children

    def test_a_wide_trace_keeps_every_child(self) -> None:
        """Ten thousand children of one root are all placed, in start order."""
        spans = [span("root", None, 0, 20_000)] + [span(f"c{i:05d}", "root", 10_000 - i, 1) for i in range(10_000)]
        tree = build_tree(TRACE, spans)
        starts = [child.span.start_time for child in tree.roots[0].children]
        assert len(starts) == 10_000 and starts == sorted(starts)


class TestSelfTime:
    @pytest.mark.parametrize(
        ("children", "expected_ms"),
        [
            ([], 100.0),
            ([(10, 20)], 80.0),
            ([(10, 20), (40, 30)], 50.0),  # sequential children
            ([(10, 50), (20, 30), (30, 10)], 50.0),  # concurrent children overlap: counted once
            ([(0, 100), (0, 100)], 0.0),  # fully covered twice: zero, not -100
            ([(-20, 50)], 70.0),  # started before its parent (clock skew): clipped to the parent
            ([(90, 50)], 90.0),  # ends after its parent: clipped
            ([(-50, 20), (200, 10)], 100.0),  # entirely outside: no effect
            ([(10, 0)], 100.0),  # zero-length child
            ([(0.0005, 99.999)], 0.001),  # microsecond precision
        ],
    )
    def test_self_time_subtracts_the_union_of_children_clipped_to_the_parent(
        self, children: list[tuple[float, float]], expected_ms: float
    ) -> None:
        """Self time = duration - |union of the children's intervals within the parent|, never negative."""
        parent = span("p", None, 0, 100)
        kids = [span(f"k{i}", "p", start, duration) for i, (start, duration) in enumerate(children)]
        assert self_time_ms(parent, kids) == pytest.approx(expected_ms, abs=0.0011)

    def test_only_direct_children_count(self) -> None:
        """A grandchild's time is already inside its parent's; the root's self time ignores it."""
        tree = build_tree(TRACE, [span("a", None, 0, 100), span("b", "a", 10, 40), span("c", "b", 10, 40)])
        root = tree.roots[0]
        assert root.self_time_ms == pytest.approx(60.0)
        assert root.children[0].self_time_ms == pytest.approx(0.0)
        assert root.children[0].children[0].self_time_ms == pytest.approx(40.0)

    @pytest.mark.parametrize(
        ("intervals", "expected"),
        [
            ([], 0),
            ([(0, 10)], 10),
            ([(0, 10), (10, 20)], 20),
            ([(0, 10), (5, 15)], 15),
            ([(5, 15), (0, 10), (30, 40)], 25),
            ([(0, 100), (10, 20), (30, 40)], 100),
            ([(5, 5), (7, 3)], 0),
        ],
    )
    def test_union_counts_overlaps_once(self, intervals: list[tuple[int, int]], expected: int) -> None:
        """The union of half-open intervals, in any order; empty and inverted intervals add nothing."""
        assert union_us(intervals) == expected


class TestSummary:
    def test_the_summary_spans_the_whole_trace(self) -> None:
        """Duration is latest end - earliest start; services are distinct and sorted; error if any span errs."""
        spans = [
            span("a", None, 0, 100, service="web"),
            span("b", "a", 10, 200, service="payments", status="error"),
            span("c", "a", 20, 5, service="web"),
            span("o", "gone", -30, 5, service="auth"),
        ]
        summary = build_tree(TRACE, spans).summary
        assert summary.trace_id == TRACE
        assert summary.start_time == T0 - timedelta(milliseconds=30)
        assert summary.end_time == T0 + timedelta(milliseconds=210)
        assert summary.duration_ms == pytest.approx(240.0)
        assert summary.span_count == 4
        assert summary.services == ("auth", "payments", "web")
        assert summary.error is True
        assert (summary.root_service, summary.root_operation) == ("web", "op-a")  # the parentless span, not the earlier orphan

    def test_no_error_span_means_no_error_flag(self) -> None:
        """Status ok and unset are not errors."""
        summary = build_tree(TRACE, [span("a", None, 0, 1, status="ok"), span("b", "a", 0, 1, status="unset")]).summary
        assert summary.error is False

    @pytest.mark.parametrize(
        ("spans", "expected"),
        [
            ([span("b", None, 10, 1), span("a", None, 20, 1)], "b"),  # earliest parentless
            ([span("x", "gone", 0, 1), span("r", None, 50, 1)], "r"),  # parentless beats an earlier orphan
            ([span("x", "gone", 5, 1), span("y", "gone", 0, 1)], "y"),  # none parentless: the earliest
        ],
    )
    def test_root_span_is_the_earliest_parentless_span_else_the_earliest(self, spans: list[SpanRecord], expected: str) -> None:
        """The span a trace is named after."""
        assert root_span(spans).span_id == expected
