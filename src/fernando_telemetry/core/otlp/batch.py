"""``DecodedBatch``: the rows decoded from one OTLP request and the items it rejected, in the OTLP partial-success shape.

Imports only the standard library and ``fernando_telemetry.core``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fernando_telemetry.core.ingest.common import ItemError, Rejection

__all__ = ["DecodedBatch", "partial_success_message"]

_REASONS_IN_MESSAGE = 3


@dataclass(slots=True)
class DecodedBatch:
    """Rows in COPY column order, the request position of each row's item, and the items rejected.

    Positions count items (spans, data points, log records) across the whole request in order, so a
    rejection's ``index`` finds its item and ``indexes`` maps a row back to one (for the writer's own rejections).
    """

    item_name: str
    """What one item is, for messages: "span", "data point", "log record"."""
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    indexes: list[int] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    skipped_count: int = 0
    """Items with nothing to store (an empty histogram, a point flagged "no recorded value"): neither rows nor rejections."""

    @property
    def received(self) -> int:
        """How many items the request held."""
        return len(self.rows) + len(self.rejections) + self.skipped_count

    @property
    def rejections_count(self) -> int:
        """The OTLP ``rejected_spans`` / ``rejected_data_points`` / ``rejected_log_records``."""
        return len(self.rejections)

    @property
    def message(self) -> str:
        """The OTLP partial-success ``error_message``: empty when nothing was rejected, else the first few reasons."""
        return partial_success_message(self.rejections, received=self.received, item_name=self.item_name)

    def add(self, index: int, decode: Callable[..., tuple[Any, ...] | None], *arguments: Any) -> None:
        """Run ``decode(*arguments)`` for one item: keep its row, record its ``ItemError`` as a rejection, or skip on None."""
        try:
            row = decode(*arguments)
        except ItemError as exc:
            self.rejections.append(Rejection(index, exc.field, exc.reason))
            return
        if row is None:
            self.skipped_count += 1
        else:
            self.rows.append(row)
            self.indexes.append(index)


def partial_success_message(rejections: Sequence[Rejection], *, received: int, item_name: str) -> str:
    """One line for the OTLP ``error_message``: how many of how many items were rejected, and the first few reasons.

    Separate from ``DecodedBatch`` so the caller can add its own rejections (unknown licenses, keys stored under
    another license) before answering.
    """
    if not rejections:
        return ""
    noun = item_name if received == 1 else f"{item_name}s"
    ordered = sorted(rejections, key=lambda rejection: rejection.index)
    reasons = "; ".join(
        f"{item_name} {rejection.index}: {rejection.field + ': ' if rejection.field else ''}{rejection.reason}"
        for rejection in ordered[:_REASONS_IN_MESSAGE]
    )
    more = len(rejections) - _REASONS_IN_MESSAGE
    suffix = f"; and {more} more" if more > 0 else ""
    return f"rejected {len(rejections)} of {received} {noun}: {reasons}{suffix}"
