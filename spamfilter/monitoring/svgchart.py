"""Small bar charts and histograms as inline SVG, for reports that must be quick to write.

Drawing the monitor report's figures with matplotlib took longer (import and rendering, about
1.3 s) than the checks themselves; these charts are plain markup, readable in any browser, and
cost milliseconds. Pure: every function returns an SVG string.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

FONT = "font-family='system-ui, sans-serif'"


@dataclass(frozen=True)
class Series:
    name: str
    colour: str
    values: Sequence[float]


def _text(x: float, y: float, content: str, size: int = 11, anchor: str = "start", extra: str = "") -> str:
    return (
        f"<text x='{x:.1f}' y='{y:.1f}' font-size='{size}' text-anchor='{anchor}' {FONT} {extra}>"
        f"{html.escape(content)}</text>"
    )


def _nice_max(value: float) -> float:
    """A round upper bound for an axis: 1, 2 or 5 times a power of ten."""
    if value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    return next(step * power for step in (1, 2, 5, 10) if step * power >= value * (1 - 1e-9))


def _legend(series: Sequence[Series], x: float, y: float) -> str:
    parts = []
    for i, item in enumerate(series):
        top = y + i * 15
        parts.append(f"<rect x='{x:.1f}' y='{top - 9:.1f}' width='10' height='10' fill='{item.colour}'/>")
        parts.append(_text(x + 14, top, item.name, 10))
    return "".join(parts)


def _svg(width: float, height: float, title: str, body: str) -> str:
    heading = _text(width / 2, 16, title, 13, "middle", "font-weight='bold'")
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width:.0f}' height='{height:.0f}' "
        f"viewBox='0 0 {width:.0f} {height:.0f}' role='img'><title>{html.escape(title)}</title>"
        f"{heading}{body}</svg>"
    )


def hbar_chart(
    labels: Sequence[str],
    series: Sequence[Series],
    title: str,
    xlabel: str,
    marker: float | None = None,
    width: int = 720,
    bar_colours: Sequence[str] | None = None,
) -> str:
    """Horizontal grouped bars, one row per label (top to bottom), an optional vertical marker line;
    `bar_colours` colours a single series bar by bar."""
    row, left, right, top = 22, 190, 150, 30
    height = top + row * len(labels) + 40
    plot_width = width - left - right
    peak = max([marker or 0.0, *(v for s in series for v in s.values)], default=1.0)
    scale = plot_width / _nice_max(peak)
    bar = (row - 6) / max(len(series), 1)
    parts = []
    for i, label in enumerate(labels):
        y = top + i * row
        parts.append(_text(left - 6, y + row / 2 + 4, label, 10, "end"))
        for j, item in enumerate(series):
            value = max(float(item.values[i]), 0.0)
            colour = bar_colours[i] if bar_colours is not None else item.colour
            parts.append(
                f"<rect x='{left}' y='{y + 3 + j * bar:.1f}' width='{value * scale:.1f}' height='{bar:.1f}' "
                f"fill='{colour}'><title>{html.escape(item.name)}: {value:.4g}</title></rect>"
            )
    axis_y = top + row * len(labels)
    parts.append(f"<line x1='{left}' y1='{top}' x2='{left}' y2='{axis_y}' stroke='#444'/>")
    parts.append(f"<line x1='{left}' y1='{axis_y}' x2='{left + plot_width}' y2='{axis_y}' stroke='#444'/>")
    axis_max = _nice_max(peak)
    for k in range(5):
        value = axis_max * k / 4
        x = left + value * scale
        parts.append(_text(x, axis_y + 14, f"{value:.3g}", 9, "middle"))
    if marker is not None:
        x = left + marker * scale
        parts.append(
            f"<line x1='{x:.1f}' y1='{top}' x2='{x:.1f}' y2='{axis_y}' stroke='black' stroke-dasharray='4 3'/>"
        )
    parts.append(_text(left + plot_width / 2, axis_y + 30, xlabel, 10, "middle"))
    parts.append(_legend(series, width - right + 12, top + 10))
    return _svg(width, height, title, "".join(parts))


def vbar_chart(
    labels: Sequence[str],
    series: Sequence[Series],
    title: str,
    ylabel: str,
    y_max: float | None = None,
    below: Sequence[float] | None = None,
    width: int = 560,
    height: int = 260,
) -> str:
    """Vertical grouped bars; `below` draws, under the first series' bars, a whisker of that length."""
    left, right, top, bottom = 50, 150, 30, 40
    plot_width, plot_height = width - left - right, height - top - bottom
    axis_max = y_max or _nice_max(max((v for s in series for v in s.values), default=1.0))
    group = plot_width / max(len(labels), 1)
    bar = group * 0.8 / max(len(series), 1)
    axis_y = top + plot_height

    def y_of(value: float) -> float:
        return axis_y - max(min(value, axis_max), 0.0) / axis_max * plot_height

    parts = []
    for i, label in enumerate(labels):
        x0 = left + i * group + group * 0.1
        for j, item in enumerate(series):
            value = float(item.values[i])
            y = y_of(value)
            parts.append(
                f"<rect x='{x0 + j * bar:.1f}' y='{y:.1f}' width='{bar:.1f}' height='{axis_y - y:.1f}' "
                f"fill='{item.colour}'><title>{html.escape(item.name)} {html.escape(label)}: {value:.4g}</title></rect>"
            )
        if below is not None and series:
            centre = x0 + bar / 2
            top_y, low_y = y_of(float(series[0].values[i])), y_of(float(series[0].values[i]) - below[i])
            parts.append(
                f"<line x1='{centre:.1f}' y1='{top_y:.1f}' x2='{centre:.1f}' y2='{low_y:.1f}' stroke='black'/>"
            )
            parts.append(
                f"<line x1='{centre - 5:.1f}' y1='{low_y:.1f}' x2='{centre + 5:.1f}' y2='{low_y:.1f}' stroke='black'/>"
            )
        if len(labels) <= 12 or i % max(1, len(labels) // 6) == 0:
            parts.append(_text(x0 + group * 0.4, axis_y + 14, label, 9, "middle"))
    parts.append(f"<line x1='{left}' y1='{top}' x2='{left}' y2='{axis_y}' stroke='#444'/>")
    parts.append(f"<line x1='{left}' y1='{axis_y}' x2='{left + plot_width}' y2='{axis_y}' stroke='#444'/>")
    for k in range(5):
        value = axis_max * k / 4
        parts.append(_text(left - 4, y_of(value) + 3, f"{value:.3g}", 9, "end"))
    parts.append(
        _text(
            14, top + plot_height / 2, ylabel, 10, "middle", f"transform='rotate(-90 14 {top + plot_height / 2:.1f})'"
        )
    )
    parts.append(_legend(series, width - right + 12, top + 10))
    return _svg(width, height, title, "".join(parts))


def histogram(
    edges: Sequence[float], reference: Sequence[float], current: Sequence[float], title: str, width: int = 300
) -> str:
    """Reference as filled bars, current as an outline, over the same bins; shares, not counts."""
    height, left, top, bottom = 190, 40, 30, 34
    plot_width, plot_height = width - left - 20, height - top - bottom
    ref_total, cur_total = max(sum(reference), 1.0), max(sum(current), 1.0)
    ref = [v / ref_total for v in reference]
    cur = [v / cur_total for v in current]
    axis_max = _nice_max(max([*ref, *cur], default=1.0))
    bins = max(len(ref), 1)
    step = plot_width / bins
    axis_y = top + plot_height

    def y_of(value: float) -> float:
        return axis_y - value / axis_max * plot_height

    parts = [
        f"<rect x='{left + i * step:.1f}' y='{y_of(v):.1f}' width='{step:.1f}' height='{axis_y - y_of(v):.1f}' "
        f"fill='#4c72b0' fill-opacity='0.55'/>"
        for i, v in enumerate(ref)
    ]
    outline = [f"M{left:.1f},{axis_y:.1f}"]
    for i, v in enumerate(cur):
        outline.append(f"L{left + i * step:.1f},{y_of(v):.1f}L{left + (i + 1) * step:.1f},{y_of(v):.1f}")
    outline.append(f"L{left + plot_width:.1f},{axis_y:.1f}")
    parts.append(f"<path d='{''.join(outline)}' fill='none' stroke='#dd8452' stroke-width='2'/>")
    parts.append(f"<line x1='{left}' y1='{axis_y}' x2='{left + plot_width}' y2='{axis_y}' stroke='#444'/>")
    parts.append(f"<line x1='{left}' y1='{top}' x2='{left}' y2='{axis_y}' stroke='#444'/>")
    for k in (0, bins // 2, bins):
        if k < len(edges):
            parts.append(_text(left + k * step, axis_y + 13, f"{edges[k]:.3g}", 9, "middle"))
    parts.append(_text(left - 4, top + 4, f"{axis_max:.2g}", 9, "end"))
    parts.append(_text(left - 4, axis_y, "0", 9, "end"))
    return _svg(width, height, title, "".join(parts))


def grid(panels: Sequence[str], columns: int, panel_width: int = 300, panel_height: int = 190) -> str:
    """Panels (SVG strings) side by side, `columns` per row, in one SVG."""
    rows = (len(panels) + columns - 1) // columns
    placed = [
        panel.replace("<svg ", f"<svg x='{(i % columns) * panel_width}' y='{(i // columns) * panel_height}' ", 1)
        for i, panel in enumerate(panels)
    ]
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{columns * panel_width}' height='{rows * panel_height}' "
        f"role='img'>{''.join(placed)}</svg>"
    )
