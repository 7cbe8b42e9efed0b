"""Inline SVG charts: well-formed, bars proportional to values, labels escaped."""

from __future__ import annotations

import re
from xml.etree import ElementTree

import pytest

from spamfilter.monitoring.svgchart import Series, _nice_max, grid, hbar_chart, histogram, vbar_chart

SVG = "{http://www.w3.org/2000/svg}"


@pytest.mark.parametrize(
    ("value", "expected"), [(0.0, 1.0), (0.03, 0.05), (0.2, 0.2), (3.7, 5.0), (12.0, 20.0), (50, 50)]
)
def test_axis_maximum_is_round(value: float, expected: float) -> None:
    assert _nice_max(value) == pytest.approx(expected)


def bar_widths(svg: str) -> list[float]:
    root = ElementTree.fromstring(svg)
    return [float(rect.get("width", 0)) for rect in root.iter(f"{SVG}rect") if rect.find(f"{SVG}title") is not None]


def test_horizontal_bars_are_proportional_and_labels_escaped() -> None:
    svg = hbar_chart(["a<b", "c"], [Series("x", "#000", [1.0, 3.0])], "T & t", "value", marker=2.0)
    widths = bar_widths(svg)
    assert widths[1] == pytest.approx(3 * widths[0], rel=1e-3)
    assert "a&lt;b" in svg and "T &amp; t" in svg
    assert "stroke-dasharray" in svg  # the marker line


def test_vertical_bars_with_whiskers() -> None:
    svg = vbar_chart(["p", "r"], [Series("champion", "#111", [0.9, 0.8]), Series("now", "#222", [0.7, 0.8])], "Q", "v",
                     y_max=1.0, below=[0.05, 0.05])  # fmt: skip
    root = ElementTree.fromstring(svg)
    heights = [float(r.get("height", 0)) for r in root.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]
    assert heights[0] == pytest.approx(heights[1] * 0.9 / 0.7, rel=1e-3)
    assert len(list(root.iter(f"{SVG}line"))) >= 4


def test_histogram_and_grid_are_well_formed() -> None:
    panel = histogram([0, 1, 2, 3], [1, 2, 1], [0, 1, 3], "length")
    combined = grid([panel, panel, panel], columns=2)
    root = ElementTree.fromstring(combined)
    assert len(root.findall(f"{SVG}svg")) == 3  # the panels, nested in the grid
    assert re.search(r"<path d='M[^']+' fill='none'", panel)
