"""The dashboard's plotly figures, built without a browser: what each holds, and names shown literally."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fernando_telemetry.web import charts

T0 = datetime(2026, 11, 28, 9, tzinfo=UTC)
EVIL = "<a href='javascript:alert(1)'>x</a>"


class TestFigures:
    def test_lines_keep_gaps_and_mark_sparse_points(self) -> None:
        """None stays a gap; a series with few values gets markers so isolated points show."""
        figure = charts.lines("t", {"cpu": [(T0, 1.0), (T0 + timedelta(hours=1), None), (T0 + timedelta(hours=2), 3.0)]})
        trace = figure["data"][0]
        assert trace["x"] == ["2026-11-28T09:00:00Z", "2026-11-28T10:00:00Z", "2026-11-28T11:00:00Z"]
        assert trace["y"] == [1.0, None, 3.0]
        assert trace["mode"] == "lines+markers"
        dense = charts.lines("t", {"cpu": [(T0 + timedelta(minutes=i), float(i)) for i in range(200)]})
        assert dense["data"][0]["mode"] == "lines"

    def test_the_waterfall_indents_names_by_depth(self) -> None:
        """Bars start at each span's offset; the names trace sits at x = depth on its own axis."""
        figure = charts.waterfall(
            "w",
            labels=["a", "b", "c"],
            offsets_ms=[0, 2, 3],
            durations_ms=[10, 5, 0],
            depths=[0, 1, 2],
            services=["s", "s", "t"],
            errors=[False, True, False],
            hover=["", "", ""],
        )
        bars, names = figure["data"]
        assert bars["base"] == [0, 2, 3] and bars["x"] == [10, 5, 0.001]
        assert names["x"] == [0, 1, 2] and names["xaxis"] == "x2"
        assert names["text"] == ["a", "⚠ b", "c"]
        assert bars["marker"]["color"][1] == charts.ERROR_COLOUR

    def test_sankey_links_calls_between_services(self) -> None:
        """Each edge is one link from the caller's node to the callee's, weighted by calls."""
        figure = charts.sankey("d", [("web", "api", 10, 0.0), ("api", "db", 7, 0.2)])
        node, link = figure["data"][0]["node"], figure["data"][0]["link"]
        assert node["label"] == ["api", "db", "web"]
        assert (link["source"], link["target"], link["value"]) == ([2, 0], [0, 1], [10, 7])

    def test_names_from_the_data_are_shown_literally(self) -> None:
        """Plotly reads some HTML in names and labels: names that come from telemetry are escaped."""
        figures = [
            charts.lines("t", {EVIL: [(T0, 1.0)]})["data"][0]["name"],
            charts.bars("t", {EVIL: [(T0, 1.0)]})["data"][0]["name"],
            charts.sankey("d", [(EVIL, "api", 1, 0.0)])["data"][0]["node"]["label"][0],
            charts.heatmap("h", x=["d1"], y=[EVIL], z=[[0.5]])["data"][0]["y"][0],
            charts.scatter_points("s", x=[T0], y=[1.0], text=[EVIL], errors=[False], y_title="")["data"][0]["text"][0],
        ]
        for shown in figures:
            assert "<" not in shown and "&lt;a href=" in shown
