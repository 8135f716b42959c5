"""The server-side SVG charts: data drawn to scale, labels escaped, empty data said so."""
from __future__ import annotations

import re
from datetime import datetime, timedelta
from xml.etree import ElementTree

from dss_server.pages import charts

SVG = "{http://www.w3.org/2000/svg}"


def parse(markup) -> ElementTree.Element:
    return ElementTree.fromstring(str(markup))  # well-formed XML, or this raises


def test_stacked_bars_are_to_scale_and_stacked():
    start = datetime(2026, 1, 1, 22)
    hours = [start + timedelta(hours=i) for i in range(4)]
    svg = parse(charts.stacked_bars(hours, {"success": [0, 2, 4, 0], "failed": [0, 2, 0, 0]},
                                    "per hour"))
    bars = {rect.find(f"{SVG}title").text: float(rect.get("height"))
            for rect in svg.iter(f"{SVG}rect") if rect.find(f"{SVG}title") is not None}
    assert set(bars) == {"2026-01-01 23:00 success: 2", "2026-01-01 23:00 failed: 2",
                         "2026-01-02 00:00 success: 4"}
    assert bars["2026-01-01 23:00 success: 2"] * 2 == bars["2026-01-02 00:00 success: 4"]
    assert "2026-01-02" in [t.text for t in svg.iter(f"{SVG}text")]  # midnight tick


def test_box_plot_shows_quartiles_and_escapes_names():
    svg = charts.box_plots({"<script>x</script>": [10.0, 20.0, 30.0, 40.0, 50.0]}, "runtimes")
    assert "<script>" not in str(svg)
    title = [t.text for t in parse(svg).iter(f"{SVG}title")][1]
    assert title == "<script>x</script>: median 30.0 s, quartiles 20.0-40.0 s, range 10.0-50.0 s"


def test_empty_charts_say_so():
    assert "no ticket activity" in str(charts.stacked_bars([], {}, "t"))
    assert "no successful tickets" in str(charts.box_plots({}, "t"))
    assert "no current services" in str(charts.horizontal_bars([], "t"))


def test_horizontal_bars_scale_to_the_largest_value():
    svg = parse(charts.horizontal_bars([("a", 5), ("b", 10)], "queue"))
    widths = [float(r.get("width")) for r in svg.iter(f"{SVG}rect")]
    assert widths[0] * 2 == widths[1]
    assert re.fullmatch(r"0 0 \d+ \d+", svg.get("viewBox"))
