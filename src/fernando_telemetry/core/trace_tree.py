"""The span tree of one trace, built from flat span records: nesting, depth, self time, orphans, summary.

Pure: imports nothing but the standard library. Every walk is iterative, so a trace nested thousands of
levels deep, or one whose parent links form a cycle, is built in linear time without recursion.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

__all__ = [
    "SpanRecord",
    "TraceNode",
    "TraceSummary",
    "TraceTree",
    "build_tree",
    "root_span",
    "self_time_ms",
    "union_us",
]

_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class SpanRecord:
    """One stored span, as the tree and the API see it (the columns of ``traces`` a reader needs)."""

    span_id: str
    parent_span_id: str | None
    service_name: str
    operation_name: str
    start_time: datetime
    end_time: datetime
    duration_ms: float
    status: str = "unset"
    span_kind: str = "internal"
    status_message: str | None = None
    status_code: int | None = None
    http_method: str | None = None
    http_route: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    host_name: str | None = None
    user_id: str | None = None
    license_id: int | None = None
    environment: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)
    span_events: Sequence[Any] = ()
    resource: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_error(self) -> bool:
        return self.status == "error"


@dataclass(frozen=True, slots=True)
class TraceNode:
    """A span placed in its tree: ``depth`` 0 is the top level; ``orphan`` means its parent is not in the trace."""

    span: SpanRecord
    depth: int
    self_time_ms: float
    orphan: bool
    # repr=False: a deep tree's repr would recurse once per level
    children: tuple[TraceNode, ...] = field(default=(), repr=False)


@dataclass(frozen=True, slots=True)
class TraceSummary:
    """One trace in a line: its root, its extent, and what it touched.

    The root is the earliest span without a parent, or the earliest span when every span has one.
    ``duration_ms`` is the latest end minus the earliest start.
    """

    trace_id: str
    root_service: str
    root_operation: str
    start_time: datetime
    end_time: datetime
    duration_ms: float
    span_count: int
    services: tuple[str, ...]
    error: bool


@dataclass(frozen=True, slots=True)
class TraceTree:
    """The top-level nodes (roots and orphans, by start time) of one trace and its summary."""

    summary: TraceSummary
    roots: tuple[TraceNode, ...]
    orphan_count: int
    max_depth: int

    def walk(self) -> Iterator[TraceNode]:
        """Every node once, depth first in display order (each parent before its children)."""
        stack = list(reversed(self.roots))
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))


def _order_key(span: SpanRecord) -> tuple[datetime, str]:
    return span.start_time, span.span_id


def root_span(spans: Sequence[SpanRecord]) -> SpanRecord:
    """The span a trace is named after: the earliest without a parent, else the earliest of all."""
    if not spans:
        raise ValueError("a trace has at least one span")
    return min(spans, key=lambda span: (span.parent_span_id is not None, span.start_time, span.span_id))


def union_us(intervals: Sequence[tuple[int, int]]) -> int:
    """Total length of the union of half-open integer intervals (overlaps counted once)."""
    total = 0
    covered_until: int | None = None
    for start, end in sorted(intervals):
        if end <= start:
            continue
        if covered_until is None or start >= covered_until:
            total += end - start
            covered_until = end
        elif end > covered_until:
            total += end - covered_until
            covered_until = end
    return total


def self_time_ms(parent: SpanRecord, children: Sequence[SpanRecord]) -> float:
    """The parent's duration minus the time covered by its children, clipped to the parent's interval.

    Overlapping (concurrent) children are counted once, and a child reaching outside its parent (clock
    skew) only counts inside it, so the result is never negative. Microsecond precision.
    """
    clipped: list[tuple[int, int]] = []
    for child in children:
        start = max(child.start_time, parent.start_time)
        end = min(child.end_time, parent.end_time)
        if end > start:
            clipped.append(((start - parent.start_time) // _MICROSECOND, (end - parent.start_time) // _MICROSECOND))
    covered_ms = union_us(clipped) / 1000
    return round(max(0.0, parent.duration_ms - covered_ms), 3)


def _earliest_in_cycle(index: int, parent_of: Sequence[int | None]) -> int:
    """Follow parent links up from an unplaced span until one repeats; the earliest span of that cycle."""
    seen: dict[int, int] = {}
    current: int | None = index
    while current is not None and current not in seen:
        seen[current] = len(seen)
        current = parent_of[current]
    if current is None:  # cannot happen for an unplaced span; keep the span itself as the cut
        return index
    cycle_start = seen[current]
    return min(member for member, position in seen.items() if position >= cycle_start)


def build_tree(trace_id: str, spans: Sequence[SpanRecord]) -> TraceTree:
    """The tree of one trace's spans, in any input order.

    Children are ordered by start time (then span id). A span whose parent is not among ``spans`` is
    placed at the top level and flagged an orphan; several roots are kept side by side. Parent links
    that form a cycle are broken at the earliest span of the cycle, which goes to the top level as an
    orphan. When two records share a span id, children attach to the earlier one.
    """
    ordered = sorted(spans, key=_order_key)
    if not ordered:
        raise ValueError("a trace has at least one span")
    first_by_id: dict[str, int] = {}
    for index, span in enumerate(ordered):
        first_by_id.setdefault(span.span_id, index)

    child_indexes: list[list[int]] = [[] for _ in ordered]
    top: list[int] = []
    orphan: list[bool] = [False] * len(ordered)
    for index, span in enumerate(ordered):
        parent = first_by_id.get(span.parent_span_id) if span.parent_span_id is not None else None
        if span.parent_span_id is None:
            top.append(index)
        elif parent is None or parent == index:
            top.append(index)
            orphan[index] = True
        else:
            child_indexes[parent].append(index)  # in start order, because ``ordered`` is

    depth: list[int] = [-1] * len(ordered)
    preorder: list[int] = []

    def visit_from(start: int) -> None:
        depth[start] = 0
        stack = [start]
        while stack:
            index = stack.pop()
            preorder.append(index)
            for child in reversed(child_indexes[index]):
                if depth[child] < 0:
                    depth[child] = depth[index] + 1
                    stack.append(child)

    for index in top:
        visit_from(index)
    # whatever is still unplaced hangs off a cycle of parent links: cut each cycle at its earliest span
    parent_of = [first_by_id.get(span.parent_span_id) if span.parent_span_id is not None else None for span in ordered]
    for index in range(len(ordered)):
        if depth[index] < 0:
            cut = _earliest_in_cycle(index, parent_of)
            orphan[cut] = True
            top.append(cut)
            visit_from(cut)
    top.sort()

    nodes: dict[int, TraceNode] = {}
    for index in reversed(preorder):  # children before their parents
        kids = [child for child in child_indexes[index] if depth[child] == depth[index] + 1 and child in nodes]
        nodes[index] = TraceNode(
            span=ordered[index],
            depth=depth[index],
            self_time_ms=self_time_ms(ordered[index], [ordered[child] for child in kids]),
            orphan=orphan[index],
            children=tuple(nodes[child] for child in kids),
        )

    root = root_span(ordered)
    start_time = ordered[0].start_time
    end_time = max(span.end_time for span in ordered)
    summary = TraceSummary(
        trace_id=trace_id,
        root_service=root.service_name,
        root_operation=root.operation_name,
        start_time=start_time,
        end_time=end_time,
        duration_ms=(end_time - start_time) / timedelta(milliseconds=1),
        span_count=len(ordered),
        services=tuple(sorted({span.service_name for span in ordered})),
        error=any(span.is_error for span in ordered),
    )
    return TraceTree(
        summary=summary,
        roots=tuple(nodes[index] for index in top),  # every top index was visited, so it has its node
        orphan_count=sum(orphan),
        max_depth=max(depth),
    )
