"""Small, dependency-free SVG charts for the bench reports (inline in ``report.html``).

* :func:`pareto_plot`: recall (x, linear) against queries/s (y, log scale), one colour per
  retriever: every measured setting as a dot, the retriever's Pareto frontier as a line, the recall
  target as a dashed vertical line and the chosen setting ringed;
* :func:`bar_chart`: horizontal bars with value labels (build time, memory).

Every mark carries a ``<title>`` so a browser shows the exact setting and numbers on hover.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

PALETTE = (
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#ff7f0e",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#7f7f7f",
    "#bcbd22",
)
FONT = "font-family='system-ui, -apple-system, Segoe UI, sans-serif'"


@dataclass
class Series:
    """One retriever's points: ``(recall, qps, tooltip)``; ``frontier`` indexes into ``points``."""

    name: str
    points: list[tuple[float, float, str]] = field(default_factory=list)
    frontier: list[int] = field(default_factory=list)


def _fmt_qps(value: float) -> str:
    if value >= 1e6:
        return f"{value / 1e6:g}M"
    if value >= 1e3:
        return f"{value / 1e3:g}k"
    return f"{value:g}"


def _log_ticks(lo: float, hi: float) -> list[float]:
    ticks = []
    for exponent in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
        for mantissa in (1, 2, 5):
            value = mantissa * 10.0**exponent
            if lo <= value <= hi:
                ticks.append(value)
    if len(ticks) > 9:
        ticks = [t for t in ticks if f"{t:e}".startswith("1")]
    return ticks


def pareto_plot(
    series: Sequence[Series],
    *,
    title: str,
    x_label: str,
    y_label: str = "queries/s (log scale)",
    target: float | None = None,
    highlight: tuple[float, float, str] | None = None,
    width: int = 720,
    height: int = 440,
) -> str:
    """An SVG recall-vs-QPS chart (see module docstring). Returns the ``<svg>`` element as text."""
    points = [p for s in series for p in s.points if math.isfinite(p[0]) and math.isfinite(p[1]) and p[1] > 0]
    left, right, top, bottom = 70, 170, 40, 50
    plot_w, plot_h = width - left - right, height - top - bottom
    out = [
        f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {width} {height}' width='{width}'"
        f" height='{height}' role='img' aria-label='{escape(title, quote=True)}' {FONT} font-size='12'>",
        f"<text x='{left}' y='22' font-size='15' font-weight='600'>{escape(title)}</text>",
    ]
    if not points:
        out.append(f"<text x='{left}' y='{top + plot_h / 2}'>no measurements</text></svg>")
        return "".join(out)
    x_lo = min(p[0] for p in points)
    if target is not None:
        x_lo = min(x_lo, target)
    x_lo = max(0.0, math.floor((x_lo - 0.02) * 20) / 20)
    x_hi = 1.0 if max(p[0] for p in points) <= 1.0 else max(p[0] for p in points)
    if x_hi - x_lo < 0.05:
        x_lo = max(0.0, x_hi - 0.05)
    y_lo = min(p[1] for p in points) / 1.5
    y_hi = max(p[1] for p in points) * 1.5
    log_lo, log_hi = math.log10(y_lo), math.log10(y_hi)

    def sx(x: float) -> float:
        return left + (x - x_lo) / (x_hi - x_lo) * plot_w

    def sy(y: float) -> float:
        return top + plot_h - (math.log10(y) - log_lo) / (log_hi - log_lo) * plot_h

    out.append(
        f"<rect x='{left}' y='{top}' width='{plot_w}' height='{plot_h}' fill='#fafafa' stroke='#999'/>"
    )
    step = 0.05 if x_hi - x_lo > 0.2 else 0.01
    tick = math.ceil(x_lo / step) * step
    while tick <= x_hi + 1e-9:
        x = sx(tick)
        out.append(f"<line x1='{x:.1f}' y1='{top}' x2='{x:.1f}' y2='{top + plot_h}' stroke='#e4e4e4'/>")
        out.append(f"<text x='{x:.1f}' y='{top + plot_h + 16}' text-anchor='middle'>{tick:.2f}</text>")
        tick += step
    for value in _log_ticks(y_lo, y_hi):
        y = sy(value)
        out.append(f"<line x1='{left}' y1='{y:.1f}' x2='{left + plot_w}' y2='{y:.1f}' stroke='#e4e4e4'/>")
        out.append(f"<text x='{left - 6}' y='{y + 4:.1f}' text-anchor='end'>{_fmt_qps(value)}</text>")
    out.append(
        f"<text x='{left + plot_w / 2}' y='{height - 10}' text-anchor='middle'>{escape(x_label)}</text>"
    )
    out.append(
        f"<text x='16' y='{top + plot_h / 2}' text-anchor='middle' transform='rotate(-90 16"
        f" {top + plot_h / 2})'>{escape(y_label)}</text>"
    )
    if target is not None and x_lo <= target <= x_hi:
        x = sx(target)
        out.append(
            f"<line x1='{x:.1f}' y1='{top}' x2='{x:.1f}' y2='{top + plot_h}' stroke='#444'"
            f" stroke-dasharray='5,4'><title>recall target {target:g}</title></line>"
        )
        out.append(
            f"<text x='{x - 4:.1f}' y='{top + 12}' text-anchor='end' fill='#444'>target {target:g}</text>"
        )
    for index, s in enumerate(series):
        color = PALETTE[index % len(PALETTE)]
        usable = [
            (i, p) for i, p in enumerate(s.points) if math.isfinite(p[0]) and math.isfinite(p[1]) and p[1] > 0
        ]
        frontier = [s.points[i] for i in s.frontier if math.isfinite(s.points[i][0]) and s.points[i][1] > 0]
        if len(frontier) > 1:
            path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y, _ in sorted(frontier))
            out.append(f"<polyline points='{path}' fill='none' stroke='{color}' stroke-width='2'/>")
        on_frontier = set(s.frontier)
        for i, (x, y, tip) in usable:
            opacity = "1" if i in on_frontier else "0.35"
            out.append(
                f"<circle cx='{sx(x):.1f}' cy='{sy(y):.1f}' r='4' fill='{color}' fill-opacity='{opacity}'"
                f" stroke='{color}'><title>{escape(s.name)}: {escape(tip)}</title></circle>"
            )
        legend_y = top + 14 + index * 18
        out.append(
            f"<rect x='{width - right + 14}' y='{legend_y - 9}' width='12' height='12' fill='{color}'/>"
        )
        out.append(f"<text x='{width - right + 32}' y='{legend_y + 1}'>{escape(s.name)}</text>")
    if highlight is not None:
        x, y, tip = highlight
        if math.isfinite(x) and y > 0:
            out.append(
                f"<circle cx='{sx(x):.1f}' cy='{sy(y):.1f}' r='9' fill='none' stroke='#111' stroke-width='2'>"
                f"<title>{escape(tip)}</title></circle>"
            )
    out.append("</svg>")
    return "".join(out)


def bar_chart(
    rows: Sequence[tuple[str, float | None, str]],
    *,
    title: str,
    unit: str,
    color: str = "#4c78a8",
    width: int = 720,
    log: bool = False,
) -> str:
    """Horizontal bars: ``rows`` of ``(label, value, tooltip)``; missing values are shown as ``n/a``."""
    bar_h, gap, left, right, top = 16, 6, 260, 90, 34
    height = top + len(rows) * (bar_h + gap) + 12
    values = [v for _, v, _ in rows if v is not None and math.isfinite(v) and v > 0]
    hi = max(values) if values else 1.0
    lo = min(values) if values else 1.0
    plot_w = width - left - right
    out = [
        f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {width} {height}' width='{width}'"
        f" height='{height}' role='img' aria-label='{escape(title, quote=True)}' {FONT} font-size='12'>",
        f"<text x='4' y='20' font-size='14' font-weight='600'>{escape(title)}</text>",
    ]

    def length(value: float) -> float:
        if log and hi > lo:
            floor = math.log10(lo) - 0.3
            return max(2.0, (math.log10(value) - floor) / (math.log10(hi) - floor) * plot_w)
        return max(2.0, value / hi * plot_w)

    for i, (label, value, tip) in enumerate(rows):
        y = top + i * (bar_h + gap)
        out.append(f"<text x='{left - 8}' y='{y + 12}' text-anchor='end'>{escape(label[:44])}</text>")
        if value is None or not math.isfinite(value):
            out.append(f"<text x='{left + 4}' y='{y + 12}' fill='#888'>n/a</text>")
            continue
        w = length(value) if value > 0 else 2.0
        out.append(
            f"<rect x='{left}' y='{y}' width='{w:.1f}' height='{bar_h}'"
            f" fill='{color}'><title>{escape(tip)}</title></rect>"
        )
        out.append(
            f"<text x='{left + w + 6:.1f}' y='{y + 12}'>{escape(_fmt_value(value))} {escape(unit)}</text>"
        )
    out.append("</svg>")
    return "".join(out)


def _fmt_value(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"
