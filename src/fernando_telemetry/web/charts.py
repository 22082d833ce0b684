"""Plotly figures as plain data: the dashboard's charts are built here from service results and drawn in the
browser by the plotly.js bundle of the ``plotly`` package. Only figure specifications, no drawing code.
Pure: imports nothing of the project.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

__all__ = [
    "ERROR_COLOUR",
    "Figure",
    "bars",
    "heatmap",
    "iso",
    "lines",
    "plain",
    "sankey",
    "scatter_points",
    "waterfall",
]

Figure = dict[str, Any]

PALETTE = (
    "#4c78a8",
    "#f58518",
    "#54a24b",
    "#e45756",
    "#72b7b2",
    "#eeca3b",
    "#b279a2",
    "#ff9da6",
    "#9d755d",
    "#bab0ac",
)
ERROR_COLOUR = "#d62728"


def plain(text: str) -> str:
    """Text as plotly shows it literally: it reads a few HTML tags (links among them) in names and labels."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _layout(title: str, *, y_title: str = "", x_time: bool = True, **extra: Any) -> dict[str, Any]:
    layout: dict[str, Any] = {
        "title": {"text": plain(title), "font": {"size": 14}, "x": 0.01, "xanchor": "left"},
        "margin": {"l": 56, "r": 16, "t": 40, "b": 40},
        "height": 300,
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "legend": {"orientation": "h", "y": -0.2},
        "yaxis": {"title": {"text": plain(y_title)}, "rangemode": "tozero", "gridcolor": "#e5e5e5"},
        "xaxis": {"type": "date"} if x_time else {},
        "uirevision": title,  # keep zoom and hidden legend items across refreshes
        "colorway": list(PALETTE),
    }
    layout.update(extra)
    return layout


def lines(
    title: str,
    series: Mapping[str, Sequence[tuple[datetime, float | None]]],
    *,
    y_title: str = "",
    y_format: str | None = None,
    height: int = 300,
    note: str | None = None,
) -> Figure:
    """One line per named series of ``(time, value)`` points; None leaves a gap. ``note``: a line of text shown
    in the chart's top right corner (how a value was computed, for one)."""
    data = [
        {
            "type": "scatter",
            # markers where points are few or sparse, or isolated points between gaps would not show
            "mode": "lines+markers" if sum(value is not None for _, value in points) <= 150 else "lines",
            "name": plain(name),
            "x": [iso(at) for at, _ in points],
            "y": [value for _, value in points],
            "connectgaps": False,
            "marker": {"size": 4},
        }
        for name, points in series.items()
    ]
    layout = _layout(title, y_title=y_title, height=height)
    if y_format:
        layout["yaxis"]["tickformat"] = y_format
    if note:
        layout["annotations"] = [
            {"text": plain(note), "xref": "paper", "yref": "paper", "x": 1, "y": 1.08, "xanchor": "right",
             "showarrow": False, "font": {"size": 11, "color": "#666"}},
        ]  # fmt: skip
    return {"data": data, "layout": layout}


def bars(
    title: str,
    series: Mapping[str, Sequence[tuple[Any, float | None]]],
    *,
    y_title: str = "",
    stacked: bool = True,
    x_time: bool = True,
) -> Figure:
    """Bars per named series over a shared x axis (time or categories), stacked or side by side."""
    data = [
        {
            "type": "bar",
            "name": plain(name),
            "x": [iso(x) if isinstance(x, datetime) else plain(x) if isinstance(x, str) else x for x, _ in points],
            "y": [value for _, value in points],
        }
        for name, points in series.items()
    ]
    return {"data": data, "layout": _layout(title, y_title=y_title, x_time=x_time, barmode="stack" if stacked else "group")}


def heatmap(
    title: str, *, x: Sequence[str], y: Sequence[str], z: Sequence[Sequence[float | None]], z_format: str = ".0%"
) -> Figure:
    """A matrix of values (retention cohorts: one row per cohort, one column per offset)."""
    text = [["" if value is None else format(value, z_format) for value in row] for row in z]
    data = [
        {
            "type": "heatmap",
            "x": [plain(label) for label in x],
            "y": [plain(label) for label in y],
            "z": [list(row) for row in z],
            "text": text,
            "texttemplate": "%{text}",
            "colorscale": "Blues",
            "reversescale": True,
            "zmin": 0,
            "zmax": 1,
            "hoverongaps": False,
        }
    ]
    layout = _layout(title, x_time=False, height=max(300, 22 * len(y) + 80))
    layout["yaxis"] = {"type": "category", "autorange": "reversed", "automargin": True}
    layout["xaxis"] = {"type": "category", "side": "top"}
    layout["margin"]["t"] = 70
    return {"data": data, "layout": layout}


def sankey(title: str, edges: Iterable[tuple[str, str, int, float]]) -> Figure:
    """A dependency graph: one link per ``(caller, callee, calls, error_rate)``, nodes named by service."""
    edge_list = list(edges)
    nodes: list[str] = sorted({name for caller, callee, _, _ in edge_list for name in (caller, callee)})
    index = {name: position for position, name in enumerate(nodes)}
    data = [
        {
            "type": "sankey",
            "arrangement": "snap",
            "node": {
                "label": [plain(name) for name in nodes],
                "pad": 18,
                "thickness": 14,
                "color": [PALETTE[i % len(PALETTE)] for i in range(len(nodes))],
            },
            "link": {
                "source": [index[caller] for caller, _, _, _ in edge_list],
                "target": [index[callee] for _, callee, _, _ in edge_list],
                "value": [calls for _, _, calls, _ in edge_list],
                "customdata": [f"{rate:.2%}" for _, _, _, rate in edge_list],
                "hovertemplate": "%{source.label} → %{target.label}<br>%{value} calls, %{customdata} errors<extra></extra>",
                "color": ["rgba(214,39,40,0.45)" if rate >= 0.05 else "rgba(76,120,168,0.35)" for _, _, _, rate in edge_list],
            },
        }
    ]
    return {"data": data, "layout": _layout(title, x_time=False, height=360)}


def scatter_points(
    title: str, *, x: Sequence[datetime], y: Sequence[float], text: Sequence[str], errors: Sequence[bool], y_title: str
) -> Figure:
    """Dots in time (trace search results: start time against duration), errors in red."""
    data = [
        {
            "type": "scatter",
            "mode": "markers",
            "name": "traces",
            "x": [iso(at) for at in x],
            "y": list(y),
            "text": [plain(item) for item in text],
            "hovertemplate": "%{text}<br>%{y:.1f} ms<extra></extra>",
            "marker": {"size": 8, "color": [ERROR_COLOUR if error else PALETTE[0] for error in errors]},
        }
    ]
    return {"data": data, "layout": _layout(title, y_title=y_title, showlegend=False)}


def waterfall(
    title: str,
    *,
    labels: Sequence[str],
    offsets_ms: Sequence[float],
    durations_ms: Sequence[float],
    depths: Sequence[int],
    services: Sequence[str],
    errors: Sequence[bool],
    hover: Sequence[str],
) -> Figure:
    """A trace's spans as horizontal bars from their start offset, one row per span in display order.

    The span names are a text trace on a second x axis left of the bars, placed at x = depth so that each
    level is indented under its parent (tick labels would be right-aligned).
    """
    service_colour = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(sorted(set(services)))}
    rows = list(range(len(labels)))
    deepest = max(depths, default=0)
    data = [
        {
            "type": "bar",
            "orientation": "h",
            "name": "spans",
            "y": rows,
            "x": [max(duration, 0.001) for duration in durations_ms],
            "base": list(offsets_ms),
            "customdata": list(depths),
            "hovertext": list(hover),
            "hoverinfo": "text",
            "marker": {
                "color": [ERROR_COLOUR if error else service_colour[name] for name, error in zip(services, errors, strict=True)]
            },
        },
        {
            "type": "scatter",
            "mode": "text",
            "name": "span names",
            "xaxis": "x2",
            "y": rows,
            "x": list(depths),
            "text": [("⚠ " if error else "") + plain(label) for label, error in zip(labels, errors, strict=True)],
            "textposition": "middle right",
            "textfont": {"size": 11, "color": [ERROR_COLOUR if error else "#1d2330" for error in errors]},
            "hoverinfo": "skip",
            "cliponaxis": False,
        },
    ]
    layout = _layout(title, x_time=False, height=max(220, 24 * len(rows) + 90), showlegend=False, bargap=0.25)
    layout["yaxis"] = {"autorange": "reversed", "showticklabels": False, "zeroline": False, "showgrid": False}
    layout["xaxis"] = {
        "title": {"text": "ms since trace start"},
        "rangemode": "tozero",
        "gridcolor": "#e5e5e5",
        "domain": [0.36, 1.0],
    }
    # one unit per level; the width leaves room for the longest names after the deepest indent
    layout["xaxis2"] = {"domain": [0.0, 0.35], "range": [-0.2, deepest + 12], "visible": False, "fixedrange": True}
    layout["margin"]["l"] = 8
    return {"data": data, "layout": layout}
