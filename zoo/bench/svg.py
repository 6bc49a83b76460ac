"""Small, dependency-free SVG charts for the bench reports (inline in ``report.html``).

* :func:`pareto_plot`: recall (x, linear, padded past 1.0 so no point sits on the frame) against
  users/s (y, log scale), one colour per retriever: every measured setting as a dot, the retriever's
  Pareto frontier as a line with each frontier point labelled with its setting (a number keyed below
  the plot where the label would collide), the recall target as a dashed vertical line and the chosen
  setting ringed; the legend sits below the plot;
* :func:`bar_chart`: horizontal bars on a linear scale from zero (lengths compare as the values do),
  the label above each bar and the value beside it.

Charts scale to their container (``viewBox``, ``width='100%'``, height from the aspect ratio), so they
read on a phone and in print; every mark also carries a ``<title>`` shown on hover.
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
#: width of one character, as a share of the font size (a generous estimate for sans-serif text)
CHAR_W = 0.65
LABEL_SIZE = 10.5

Box = tuple[float, float, float, float]  # x, y, width, height


@dataclass
class Series:
    """One retriever's points: ``(recall, qps, tooltip)``; ``frontier`` indexes into ``points``;
    ``labels`` (aligned with ``points``, may be empty) is the short setting printed next to each
    frontier point."""

    name: str
    points: list[tuple[float, float, str]] = field(default_factory=list)
    frontier: list[int] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)


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


def _text_w(text: str, size: float) -> float:
    return len(text) * size * CHAR_W


def _overlap(a: Box, b: Box) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def _inside(box: Box, frame: Box) -> bool:
    return (
        box[0] >= frame[0]
        and box[1] >= frame[1]
        and box[0] + box[2] <= frame[0] + frame[2]
        and box[1] + box[3] <= frame[1] + frame[3]
    )


def _candidates(px: float, py: float, w: float, h: float, gap: float) -> list[Box]:
    """Boxes of size ``w`` x ``h`` around a point: right, left, above, below, then the diagonals."""
    return [
        (px + gap, py - h / 2, w, h),
        (px - gap - w, py - h / 2, w, h),
        (px - w / 2, py - gap - h, w, h),
        (px - w / 2, py + gap, w, h),
        (px + gap / 2, py - gap / 2 - h, w, h),
        (px + gap / 2, py + gap / 2, w, h),
        (px - gap / 2 - w, py - gap / 2 - h, w, h),
        (px - gap / 2 - w, py + gap / 2, w, h),
    ]


def _along(line: list[tuple[float, float]], step: float = 5.0) -> list[Box]:
    """Small boxes sampled along a polyline: obstacles a label should rather not cover."""
    boxes = []
    for (x1, y1), (x2, y2) in zip(line, line[1:], strict=False):
        n = max(1, int(math.hypot(x2 - x1, y2 - y1) / step))
        boxes += [
            (x1 + (x2 - x1) * t / n - 1.5, y1 + (y2 - y1) * t / n - 1.5, 3.0, 3.0) for t in range(n + 1)
        ]
    return boxes


def _distance(box: Box, x: float, y: float) -> float:
    dx = max(box[0] - x, 0.0, x - box[0] - box[2])
    dy = max(box[1] - y, 0.0, y - box[1] - box[3])
    return math.hypot(dx, dy)


def _place(
    px: float,
    py: float,
    w: float,
    h: float,
    frame: Box,
    taken: list[Box],
    soft: list[Box],
    anchors: Sequence[tuple[float, float, float]] = (),
    gaps: Sequence[float] = (7.0, 13.0),
) -> Box | None:
    """A candidate box next to ``(px, py)``, inside ``frame``, overlapping nothing in ``taken`` and
    clearly nearer to its own point than to the edge of any other marker in ``anchors`` (``x, y,
    radius``; so it cannot be read as another point's label), preferring those that also miss ``soft``
    obstacles (lines); None when none qualifies."""
    others = [(x, y, r) for x, y, r in anchors if math.hypot(x - px, y - py) > 8]
    best: tuple[int, Box] | None = None
    for gap in gaps:
        for box in _candidates(px, py, w, h, gap):
            if not _inside(box, frame) or any(_overlap(box, t) for t in taken):
                continue
            own = _distance(box, px, py)
            if any(_distance(box, x, y) - r < own + 2 for x, y, r in others):
                continue
            penalty = sum(_overlap(box, s) for s in soft)
            if penalty == 0:
                return box
            if best is None or penalty < best[0]:
                best = (penalty, box)
    return best[1] if best else None


def _leader(px: float, py: float, box: Box, color: str) -> str:
    """A thin line from a marker to its label when the label had to sit away from it."""
    x = min(max(px, box[0]), box[0] + box[2])
    y = min(max(py, box[1]), box[1] + box[3])
    d = math.hypot(x - px, y - py)
    if d <= 11:
        return ""
    x0, y0 = px + (x - px) * 5 / d, py + (y - py) * 5 / d
    return (
        f"<line x1='{x0:.1f}' y1='{y0:.1f}' x2='{x:.1f}' y2='{y:.1f}' stroke='{color}' stroke-width='0.8'/>"
    )


def _label(box: Box, text: str, color: str, size: float = LABEL_SIZE, weight: str = "normal") -> str:
    x, y, _, h = box
    return (
        f"<text x='{x:.1f}' y='{y + h - 2.5:.1f}' font-size='{size}' font-weight='{weight}' fill='{color}'"
        f" stroke='#fff' stroke-width='3' stroke-linejoin='round' paint-order='stroke'>{escape(text)}</text>"
    )


def _wrap(text: str, size: float, max_w: float) -> list[str]:
    """``text`` broken at spaces (or anywhere, for a word too long) into lines at most ``max_w`` wide."""
    per_line = max(4, int(max_w / (size * CHAR_W)))
    lines: list[str] = []
    for word in text.split(" "):
        while len(word) > per_line:
            if lines and len(lines[-1]) + 1 < per_line:
                room = per_line - len(lines[-1]) - 1
                lines[-1], word = f"{lines[-1]} {word[:room]}", word[room:]
            else:
                lines.append(word[:per_line])
                word = word[per_line:]
        if lines and len(lines[-1]) + 1 + len(word) <= per_line:
            lines[-1] = f"{lines[-1]} {word}"
        elif word:
            lines.append(word)
    return lines or [""]


def _title(lines: list[str], y: float) -> str:
    return "".join(
        f"<text x='4' y='{y + 18 * i:g}' font-size='14' font-weight='600'>{escape(line)}</text>"
        for i, line in enumerate(lines)
    )


def _svg_open(width: float, height: float, title: str, max_scale: float = 1.25) -> str:
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {width:g} {height:g}' width='100%'"
        f" preserveAspectRatio='xMinYMin meet' style='display:block;max-width:{width * max_scale:g}px;"
        f"height:auto' role='img' aria-label='{escape(title, quote=True)}' {FONT} font-size='12'>"
    )


def _x_ticks(lo: float, hi: float) -> list[float]:
    """Round recall ticks from ``lo`` to ``hi`` (at most about seven)."""
    step = next((s for s in (0.01, 0.02, 0.05, 0.1, 0.2) if (hi - lo) / s <= 6.5), 0.25)
    first, last = math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9)
    return [round(i * step, 10) for i in range(first, last + 1)]


def pareto_plot(
    series: Sequence[Series],
    *,
    title: str,
    x_label: str,
    y_label: str = "users/s (log scale)",
    target: float | None = None,
    highlight: tuple[float, float, str] | None = None,
    width: int = 560,
    plot_height: int = 300,
) -> str:
    """An SVG recall-vs-users/s chart (see module docstring). Returns the ``<svg>`` element as text."""
    points = [p for s in series for p in s.points if math.isfinite(p[0]) and math.isfinite(p[1]) and p[1] > 0]
    title_lines = _wrap(title, 14, width - 8)
    left, right, top = 56, 12, 34 + 18 * (len(title_lines) - 1)
    plot_w, plot_h = width - left - right, plot_height
    frame: Box = (left, top, plot_w, plot_h)
    title_el = _title(title_lines, 20)
    if not points:
        height = top + plot_h + 20
        return (
            _svg_open(width, height, title)
            + title_el
            + f"<text x='{left}' y='{top + plot_h / 2}'>no measurements</text></svg>"
        )
    x_data_hi = max(1.0, max(p[0] for p in points))
    x_lo = min(p[0] for p in points)
    if target is not None:
        x_lo = min(x_lo, target)
    x_lo = max(0.0, math.floor((x_lo - 0.02) * 20) / 20)
    if x_data_hi - x_lo < 0.05:
        x_lo = max(0.0, x_data_hi - 0.05)
    # Pad past the highest recall (1.0 for exact search) so those points do not sit on the frame.
    x_hi = x_data_hi + max(0.01, 0.04 * (x_data_hi - x_lo))
    y_lo = min(p[1] for p in points) / 1.6
    y_hi = max(p[1] for p in points) * 1.6
    log_lo, log_hi = math.log10(y_lo), math.log10(y_hi)

    def sx(x: float) -> float:
        return left + (x - x_lo) / (x_hi - x_lo) * plot_w

    def sy(y: float) -> float:
        return top + plot_h - (math.log10(y) - log_lo) / (log_hi - log_lo) * plot_h

    grid, marks, labels = [], [], []
    grid.append(
        f"<rect x='{left}' y='{top}' width='{plot_w}' height='{plot_h}' fill='#fafafa' stroke='#999'/>"
    )
    for tick in _x_ticks(x_lo, x_data_hi):
        x = sx(tick)
        grid.append(f"<line x1='{x:.1f}' y1='{top}' x2='{x:.1f}' y2='{top + plot_h}' stroke='#e4e4e4'/>")
        grid.append(f"<text x='{x:.1f}' y='{top + plot_h + 16}' text-anchor='middle'>{tick:.2f}</text>")
    for value in _log_ticks(y_lo, y_hi):
        y = sy(value)
        grid.append(f"<line x1='{left}' y1='{y:.1f}' x2='{left + plot_w}' y2='{y:.1f}' stroke='#e4e4e4'/>")
        if y < top + plot_h - 10:  # clear of the x-axis labels in the corner
            grid.append(f"<text x='{left - 6}' y='{y + 4:.1f}' text-anchor='end'>{_fmt_qps(value)}</text>")
    grid.append(
        f"<text x='{left + plot_w / 2}' y='{top + plot_h + 34}' text-anchor='middle'>{escape(x_label)}</text>"
    )
    grid.append(
        f"<text x='14' y='{top + plot_h / 2}' text-anchor='middle' transform='rotate(-90 14"
        f" {top + plot_h / 2})'>{escape(y_label)}</text>"
    )

    taken: list[Box] = []  # label boxes and markers: no label may cover them
    anchors: list[tuple[float, float, float]] = []  # markers (centre, radius): a label hugs its own
    soft: list[Box] = []  # lines a label should rather not cross
    if target is not None and x_lo <= target <= x_hi:
        x = sx(target)
        grid.append(
            f"<line x1='{x:.1f}' y1='{top}' x2='{x:.1f}' y2='{top + plot_h}' stroke='#444'"
            f" stroke-dasharray='5,4'><title>recall target {target:g}</title></line>"
        )
        text = f"target {target:g}"
        box = (x - 4 - _text_w(text, 11), top + 2, _text_w(text, 11), 13)
        if box[0] < left + 2:
            box = (x + 4, top + 2, box[2], box[3])
        taken.append(box)
        soft.append((x - 1, top, 2, plot_h))
        labels.append(_label(box, text, "#444", size=11))

    # Markers first (every usable point is an obstacle for every label).
    placements: list[tuple[float, float, str, str, str]] = []  # px, py, label, retriever, colour
    for index, s in enumerate(series):
        color = PALETTE[index % len(PALETTE)]
        usable = {
            i: p for i, p in enumerate(s.points) if math.isfinite(p[0]) and math.isfinite(p[1]) and p[1] > 0
        }
        front = [i for i in s.frontier if i in usable]
        if len(front) > 1:
            line = [(sx(x), sy(y)) for x, y, _ in sorted(usable[i] for i in front)]
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in line)
            grid.append(f"<polyline points='{path}' fill='none' stroke='{color}' stroke-width='2'/>")
            soft += _along(line)
        for i, (x, y, tip) in sorted(usable.items(), key=lambda item: item[0] in front):
            on = i in front
            px, py = sx(x), sy(y)
            taken.append((px - 5, py - 5, 10, 10))
            anchors.append((px, py, 4.0))
            marks.append(
                f"<circle cx='{px:.1f}' cy='{py:.1f}' r='4' fill='{color}' fill-opacity='{1 if on else 0.3}'"
                f" stroke='{color}' stroke-opacity='{1 if on else 0.6}'>"
                f"<title>{escape(s.name)}: {escape(tip)}</title></circle>"
            )
            text = s.labels[i] if i < len(s.labels) else ""
            if on and text:
                placements.append((px, py, text, s.name, color))
    if highlight is not None:
        x, y, tip = highlight
        if math.isfinite(x) and math.isfinite(y) and y > 0:
            px, py = sx(x), sy(y)
            taken.append((px - 10, py - 10, 20, 20))
            anchors.append((px, py, 10.0))
            marks.append(
                f"<circle cx='{px:.1f}' cy='{py:.1f}' r='9' fill='none' stroke='#111' stroke-width='2'>"
                f"<title>{escape(tip)}</title></circle>"
            )
            # The chosen point gets the first pick of the free space.
            placements.sort(key=lambda p: math.hypot(p[0] - px, p[1] - py) > 1)

    keyed: list[tuple[str, str, str]] = []  # number, text, colour
    leaders: list[str] = []
    for px, py, text, name, color in placements:
        w = _text_w(text, LABEL_SIZE)
        box = _place(px, py, w, 13, frame, taken, soft, anchors)
        if box is not None:
            taken.append(box)
            labels.append(_label(box, text, color))
            continue
        number = str(len(keyed) + 1)
        nw = _text_w(number, LABEL_SIZE) + 3
        box = (
            _place(px, py, nw, 13, frame, taken, [], anchors)
            or _place(px, py, nw, 13, frame, taken, [], gaps=(7.0, 13.0, 20.0, 28.0, 38.0, 50.0))
            or (px + 6, py - 14, nw, 13)
        )
        taken.append(box)
        leaders.append(_leader(px, py, box, color))
        labels.append(_label(box, number, color, weight="700"))
        keyed.append((number, name if text == name else f"{name} {text}", color))

    # Legend and the key of numbered points, below the plot.
    y0 = top + plot_h + 58
    entries = [("swatch", s.name, PALETTE[i % len(PALETTE)]) for i, s in enumerate(series)]
    if target is not None:
        entries.append(("dash", "recall target", "#444"))
    if highlight is not None:
        entries.append(("ring", "answer (fastest reaching the target)", "#111"))
    legend, y_last = _legend(entries, 8, width - 8, y0)
    key = []
    y = y_last + 16
    if keyed:
        y += 8
        key.append(f"<text x='8' y='{y:.1f}' fill='#555'>numbered points on the frontier:</text>")
        col_w = max(_text_w(f"{n}  {t}", 11) for n, t, _ in keyed) + 18
        cols = max(1, min(3, int((width - 16) // col_w)))
        rows = math.ceil(len(keyed) / cols)
        for j, (number, text, color) in enumerate(keyed):
            col, row = divmod(j, rows)
            kx, ky = 8 + col * col_w, y + 16 + row * 15
            key.append(
                f"<text x='{kx:.1f}' y='{ky:.1f}' font-size='11'><tspan font-weight='700' fill='{color}'>"
                f"{number}</tspan> {escape(text)}</text>"
            )
        y += 16 + (rows - 1) * 15
    height = math.ceil(y + 8)
    return "".join(
        [_svg_open(width, height, title), title_el, *grid, *marks, *leaders, *labels, legend, *key, "</svg>"]
    )


def _legend(entries: list[tuple[str, str, str]], x0: float, x_max: float, y0: float) -> tuple[str, float]:
    """Legend entries ``(kind, text, colour)``, kind ``swatch``, ``dash`` or ``ring``, laid out left to
    right and wrapped at ``x_max``; returns the markup and the baseline of the last row."""
    out, x, y = [], x0, y0
    for kind, text, color in entries:
        swatch = 24.0 if kind == "dash" else 12.0
        w = swatch + 5 + _text_w(text, 12)
        if x > x0 and x + w > x_max:
            x, y = x0, y + 18
        if kind == "swatch":
            out.append(f"<rect x='{x:.1f}' y='{y - 10:.1f}' width='12' height='12' fill='{color}'/>")
        elif kind == "dash":
            out.append(
                f"<line x1='{x:.1f}' y1='{y - 4:.1f}' x2='{x + swatch:.1f}' y2='{y - 4:.1f}' stroke='{color}'"
                " stroke-dasharray='5,4'/>"
            )
        else:
            out.append(
                f"<circle cx='{x + 6:.1f}' cy='{y - 4:.1f}' r='6' fill='none' stroke='{color}'"
                " stroke-width='2'/>"
            )
        out.append(f"<text x='{x + swatch + 5:.1f}' y='{y:.1f}'>{escape(text)}</text>")
        x += w + 16
    return "".join(out), y


def _nice_step(hi: float) -> float:
    raw = hi / 4
    magnitude = 10.0 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)


def bar_chart(
    rows: Sequence[tuple[str, float | None, str]],
    *,
    title: str,
    unit: str,
    color: str = "#4c78a8",
    width: int = 380,
) -> str:
    """Horizontal bars on a linear scale from zero: ``rows`` of ``(label, value, tooltip)``; each label
    sits above its bar, the value beside it; missing values are shown as ``n/a``."""
    title_lines = _wrap(title, 14, width - 8)
    label_h, bar_h, gap, left, right = 14, 12, 9, 6, 84
    top = 30 + 18 * (len(title_lines) - 1)
    pitch = label_h + bar_h + gap
    values = [v for _, v, _ in rows if v is not None and math.isfinite(v) and v > 0]
    hi = max(values) if values else 1.0
    step = _nice_step(hi)
    scale_hi = hi  # the longest bar spans the plot; ticks stop before it
    plot_w = width - left - right
    axis_y = top + len(rows) * pitch
    height = axis_y + 22
    out = [
        _svg_open(width, height, title, max_scale=1.2),
        _title(title_lines, 18),
    ]
    ticks = [i * step for i in range(int(scale_hi / step + 1e-9) + 1)]
    for t in ticks:
        x = left + t / scale_hi * plot_w
        out.append(f"<line x1='{x:.1f}' y1='{top - 2}' x2='{x:.1f}' y2='{axis_y}' stroke='#e8e8e8'/>")
        out.append(
            f"<text x='{x:.1f}' y='{axis_y + 14}' text-anchor='middle' font-size='10.5'"
            f" fill='#555'>{escape(_fmt_value(t))}</text>"
        )
    out.append(f"<line x1='{left}' y1='{top - 2}' x2='{left}' y2='{axis_y}' stroke='#999'/>")
    max_chars = int((width - left) / (11.5 * CHAR_W))
    for i, (label, value, tip) in enumerate(rows):
        y = top + i * pitch
        text = label if len(label) <= max_chars else label[: max_chars - 1] + "\u2026"
        out.append(f"<text x='{left + 2}' y='{y + 10}' font-size='11.5'>{escape(text)}</text>")
        bar_y = y + label_h
        if value is None or not math.isfinite(value):
            out.append(f"<text x='{left + 4}' y='{bar_y + 10}' fill='#888'>n/a</text>")
            continue
        w = max(1.5, value / scale_hi * plot_w) if value > 0 else 1.5
        out.append(
            f"<rect x='{left}' y='{bar_y}' width='{w:.1f}' height='{bar_h}'"
            f" fill='{color}'><title>{escape(tip)}</title></rect>"
        )
        out.append(
            f"<text x='{left + w + 5:.1f}' y='{bar_y + 10}' font-size='11'>"
            f"{escape(_fmt_value(value))} {escape(unit)}</text>"
        )
    out.append("</svg>")
    return "".join(out)


def _fmt_value(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"
