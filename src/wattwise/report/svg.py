"""Charts as inline SVG, drawn here in Python: every page opens offline, with no script and no request.

Three kinds cover every page wattwise renders: :func:`line_chart` (power over time, intensity over time, the
prediction against what happened; with shaded bands for ranges and spans for chosen hours), :func:`bar_chart`
(energy by component, stacked per window) and :func:`scatter_chart` (the optimizer's trade-off, with its Pareto
front). Each ``<svg>`` carries ``data-points`` (how many data points it draws) and a ``<title>`` per series or
point, so a browser test can check a plot rendered with data, and a reader can hover a bar for its value.

Long series are thinned for display by :func:`downsample` (the minimum and maximum of each pixel-wide bucket, in
time order, so a spike is never lost); the raw samples stay in the store. Colours are the Okabe–Ito palette,
readable by people with colour-vision deficiencies.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape as _html_escape
from typing import Literal

from wattwise.report.numbers import short_duration, sig
from wattwise.report.safe import printable

__all__ = [
    "PALETTE",
    "Axis",
    "Band",
    "Bars",
    "Line",
    "Point",
    "Span",
    "bar_chart",
    "downsample",
    "line_chart",
    "nice_ticks",
    "scatter_chart",
]


def escape(text: str) -> str:
    """Text for SVG: HTML-escaped, control and bidirectional characters shown as escapes."""
    return _html_escape(printable(text))


# Okabe & Ito (2008), "Color Universal Design": distinguishable under the common colour-vision deficiencies
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#F0E442")
AxisKind = Literal["number", "duration", "time"]


@dataclass(frozen=True, slots=True)
class Axis:
    """``kind``: plain numbers, seconds since a start (``duration``) or UTC epoch seconds (``time``)."""

    label: str
    kind: AxisKind = "number"
    from_zero: bool = False  # include 0 in the range (energy, power: a bar's height must mean something)


@dataclass(frozen=True, slots=True)
class Line:
    label: str
    xs: Sequence[float]
    ys: Sequence[float]
    color: str | None = None
    dashed: bool = False
    step: bool = False  # each y holds from the previous x to its own (a mean over an interval ending at x)
    x_start: float | None = None  # for a step line: where the first interval begins (else at the first x)
    markers: bool = False


@dataclass(frozen=True, slots=True)
class Band:
    """A shaded range (a prediction's low–high) between ``lows`` and ``highs`` at ``xs``."""

    label: str
    xs: Sequence[float]
    lows: Sequence[float]
    highs: Sequence[float]
    color: str = PALETTE[1]


@dataclass(frozen=True, slots=True)
class Span:
    """A shaded stretch of the x axis (a chosen slot, a pause) with its label."""

    x0: float
    x1: float
    label: str
    color: str = PALETTE[2]


@dataclass(frozen=True, slots=True)
class Bars:
    """One stacked layer of a bar chart: a value per category."""

    label: str
    values: Sequence[float]
    color: str | None = None


@dataclass(frozen=True, slots=True)
class Point:
    label: str
    x: float
    y: float
    highlight: bool = False
    detail: str = ""


@dataclass(slots=True)
class _Frame:
    width: int
    height: int
    left: int = 72
    right: int = 28
    top: int = 52
    bottom: int = 46
    parts: list[str] = field(default_factory=list)
    points: int = 0

    @property
    def inner_w(self) -> float:
        return self.width - self.left - self.right

    @property
    def inner_h(self) -> float:
        return self.height - self.top - self.bottom


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values (1, 2 or 5 × 10^k apart) covering [low, high]."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return [0.0]
    if high <= low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / max(1, count)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    first = math.floor(low / step + 1e-9)
    last = math.ceil(high / step - 1e-9)
    return [round(i * step, 12) for i in range(first, last + 1)]


# steps for a time axis, in seconds: round numbers of seconds, minutes, hours and days
_TIME_STEPS = (
    1,
    2,
    5,
    10,
    15,
    30,
    60,
    120,
    300,
    600,
    900,
    1800,
    3600,
    7200,
    10800,
    21600,
    43200,
    86400,
    172800,
    604800,
)


def _time_ticks(low: float, high: float, count: int = 6) -> list[float]:
    span = max(high - low, 1e-9)
    step = next((s for s in _TIME_STEPS if span / s <= count), None)
    if step is None:
        return nice_ticks(low, high, count)
    first = math.floor(low / step) * step
    ticks = []
    value = float(first)
    while value <= high + 1e-9:
        if value >= low - 1e-9:
            ticks.append(value)
        value += step
    return ticks or [low]


def _tick_label(kind: AxisKind, value: float, step: float) -> str:
    if kind == "duration":
        return short_duration(value)
    if kind == "time":
        moment = datetime.fromtimestamp(value, UTC)
        if step >= 86400:
            return moment.strftime("%d %b")
        if step < 60:
            return moment.strftime("%H:%M:%S")
        if moment.hour == 0 and moment.minute == 0:
            return moment.strftime("%d %b")
        return moment.strftime("%H:%M")
    return sig(value)


def _ticks(kind: AxisKind, low: float, high: float, count: int) -> list[float]:
    return nice_ticks(low, high, count) if kind == "number" else _time_ticks(low, high, count)


def downsample(xs: Sequence[float], ys: Sequence[float], buckets: int) -> tuple[list[float], list[float]]:
    """At most about ``4 × buckets`` points: per bucket of equal x width, its first, lowest, highest and last
    point, in x order. Peaks and troughs survive; a series already small enough is returned as is."""
    n = len(xs)
    if n <= 4 * buckets or buckets < 1:
        return list(xs), list(ys)
    x0, x1 = xs[0], xs[-1]
    width = (x1 - x0) / buckets or 1.0
    out_x: list[float] = []
    out_y: list[float] = []
    start = 0
    while start < n:
        bucket = min(buckets - 1, int((xs[start] - x0) / width))
        end = start
        while end + 1 < n and min(buckets - 1, int((xs[end + 1] - x0) / width)) == bucket:
            end += 1
        idx = range(start, end + 1)
        lo = min(idx, key=lambda i: ys[i])
        hi = max(idx, key=lambda i: ys[i])
        for i in sorted({start, lo, hi, end}):
            out_x.append(xs[i])
            out_y.append(ys[i])
        start = end + 1
    return out_x, out_y


def _scale(lo: float, hi: float, out_lo: float, out_hi: float) -> Callable[[float], float]:
    span = hi - lo or 1.0
    return lambda v: out_lo + (v - lo) / span * (out_hi - out_lo)


def _open(frame: _Frame, title: str, kind: str) -> None:
    frame.parts.append(f'<text class="ww-title" x="{_LEGEND_X:.0f}" y="18" font-size="14" font-weight="600">')
    frame.parts.append(f"{escape(title)}</text>")


def _close(frame: _Frame, title: str, kind: str, series: int) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="ww-chart ww-{kind}" viewBox="0 0 {frame.width} '
        f'{frame.height}" width="{frame.width}" height="{frame.height}" role="img" aria-label="{escape(title)}" '
        f'data-points="{frame.points}" data-series="{series}" font-family="system-ui, sans-serif">'
        f"<title>{escape(title)}</title>{''.join(frame.parts)}</svg>"
    )


def _axes(
    frame: _Frame,
    x_axis: Axis,
    y_axis: Axis,
    x_range: tuple[float, float],
    y_range: tuple[float, float],
    *,
    x_ticks_shown: bool = True,
) -> tuple[Callable[[float], float], Callable[[float], float]]:
    y_ticks = nice_ticks(*y_range, count=5)
    widest = max(len(sig(t)) for t in y_ticks)
    frame.left = max(frame.left, int(_CHAR_W * widest + 36))  # room for the tick labels and the axis title
    x_ticks = _ticks(x_axis.kind, *x_range, count=max(3, int(frame.inner_w // 110)))
    x_lo, x_hi = (min(x_range[0], x_ticks[0]), max(x_range[1], x_ticks[-1])) if x_axis.kind == "number" else x_range
    y_lo, y_hi = min(y_range[0], y_ticks[0]), max(y_range[1], y_ticks[-1])
    sx = _scale(x_lo, x_hi, frame.left, frame.left + frame.inner_w)
    sy = _scale(y_lo, y_hi, frame.top + frame.inner_h, frame.top)
    base = frame.top + frame.inner_h
    p = frame.parts
    step_x = (x_ticks[1] - x_ticks[0]) if len(x_ticks) > 1 else 1.0
    for t in y_ticks:
        y = sy(t)
        p.append(
            f'<line x1="{frame.left}" x2="{frame.left + frame.inner_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e5e5"/>'
        )
        p.append(f'<text x="{frame.left - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">{escape(sig(t))}</text>')
    for t in x_ticks if x_ticks_shown else ():
        x = sx(t)
        p.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{base}" y2="{base + 5}" stroke="#444"/>')
        label = escape(_tick_label(x_axis.kind, t, step_x))
        p.append(f'<text x="{x:.1f}" y="{base + 18}" font-size="11" text-anchor="middle">{label}</text>')
    p.append(f'<line x1="{frame.left}" x2="{frame.left + frame.inner_w}" y1="{base}" y2="{base}" stroke="#444"/>')
    p.append(f'<line x1="{frame.left}" x2="{frame.left}" y1="{frame.top}" y2="{base}" stroke="#444"/>')
    p.append(
        f'<text x="{frame.left + frame.inner_w / 2:.1f}" y="{frame.height - 6}" font-size="12" '
        f'text-anchor="middle">{escape(x_axis.label)}</text>'
    )
    mid = frame.top + frame.inner_h / 2
    p.append(
        f'<text x="14" y="{mid:.1f}" font-size="12" text-anchor="middle" '
        f'transform="rotate(-90 14 {mid:.1f})">{escape(y_axis.label)}</text>'
    )
    return sx, sy


_LEGEND_X = 12.0
_CHAR_W = 6.4  # the width of one 11-px character, roughly: for laying out legends and labels


def _legend_layout(frame: _Frame, entries: Sequence[tuple[str, str, bool]]) -> list[tuple[float, float]]:
    """Where each legend entry goes: rows under the title, wrapped at the chart's width."""
    x, y = _LEGEND_X, 34.0
    places = []
    for label, _, _ in entries:
        width = _CHAR_W * len(label) + 34
        if x > _LEGEND_X and x + width > frame.width - frame.right:
            x, y = _LEGEND_X, y + 16
        places.append((x, y))
        x += width
    return places


def _reserve_legend(frame: _Frame, entries: Sequence[tuple[str, str, bool]]) -> None:
    """Move the plot down so that every legend row fits above it."""
    places = _legend_layout(frame, entries)
    rows = 1 + int((places[-1][1] - 34.0) // 16) if places else 1
    frame.top = max(frame.top, 36 + 16 * rows)
    frame.height += 16 * (rows - 1)


def _legend(frame: _Frame, entries: Sequence[tuple[str, str, bool]]) -> None:
    """Swatches in rows under the title: (label, colour, dashed)."""
    for (label, color, dashed), (x, y) in zip(entries, _legend_layout(frame, entries), strict=True):
        dash = ' stroke-dasharray="5 3"' if dashed else ""
        frame.parts.append(
            f'<g class="ww-legend"><line x1="{x:.1f}" x2="{x + 16:.1f}" y1="{y:.0f}" y2="{y:.0f}" stroke="{color}" '
            f'stroke-width="3"{dash}/><text x="{x + 20:.1f}" y="{y + 4:.0f}" font-size="11">{escape(label)}</text></g>'
        )


def _finite_pairs(xs: Sequence[float], ys: Sequence[float]) -> list[tuple[float, float]]:
    return [(x, y) for x, y in zip(xs, ys, strict=False) if math.isfinite(x) and math.isfinite(y)]


def line_chart(
    lines: Sequence[Line],
    *,
    title: str,
    x_axis: Axis,
    y_axis: Axis,
    bands: Sequence[Band] = (),
    spans: Sequence[Span] = (),
    width: int = 760,
    height: int = 300,
    max_points: int = 1600,
) -> str:
    """Lines (step or straight), with shaded bands and spans, on shared axes. Each line is thinned to about
    ``max_points`` points for display."""
    frame = _Frame(width, height)
    _open(frame, title, "line")
    pairs = [_finite_pairs(line.xs, line.ys) for line in lines]
    all_x = [x for ps in pairs for x, _ in ps] + [s.x0 for s in spans] + [s.x1 for s in spans]
    all_x += [line.x_start for line in lines if line.x_start is not None and line.xs]
    all_x += [x for b in bands for x in b.xs]
    all_y = [y for ps in pairs for _, y in ps] + [v for b in bands for v in (*b.lows, *b.highs)]
    if not all_x or not all_y:
        frame.parts.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle">no data</text>')
        return _close(frame, title, "line", 0)
    y_lo, y_hi = min(all_y), max(all_y)
    if y_axis.from_zero:
        y_lo, y_hi = min(0.0, y_lo), max(0.0, y_hi)
    entries = [
        (line.label, line.color or PALETTE[i % len(PALETTE)], line.dashed or (line.color is None and i >= len(PALETTE)))
        for i, line in enumerate(lines)
    ]
    entries += [(b.label, b.color, False) for b in bands]
    _reserve_legend(frame, entries)
    sx, sy = _axes(frame, x_axis, y_axis, (min(all_x), max(all_x)), (y_lo, y_hi))
    top, bottom = frame.top, frame.top + frame.inner_h
    for span in spans:
        x0, x1 = sx(span.x0), sx(span.x1)
        frame.parts.append(
            f'<rect x="{x0:.1f}" y="{top}" width="{max(1.0, x1 - x0):.1f}" height="{bottom - top:.1f}" '
            f'fill="{span.color}" fill-opacity="0.18"><title>{escape(span.label)}</title></rect>'
        )
    for band in bands:
        upper = [f"{sx(x):.1f},{sy(h):.1f}" for x, h in zip(band.xs, band.highs, strict=False)]
        lower = [f"{sx(x):.1f},{sy(lo):.1f}" for x, lo in zip(band.xs, band.lows, strict=False)]
        frame.parts.append(
            f'<polygon points="{" ".join(upper + lower[::-1])}" fill="{band.color}" fill-opacity="0.22">'
            f"<title>{escape(band.label)}</title></polygon>"
        )
    per_line = max(50, max_points // max(1, len(lines)))
    for index, (line, ps) in enumerate(zip(lines, pairs, strict=True)):
        color = line.color or PALETTE[index % len(PALETTE)]
        dashed = line.dashed or (line.color is None and index >= len(PALETTE))  # past the palette: dashed
        if not ps:
            continue
        xs, ys = downsample([x for x, _ in ps], [y for _, y in ps], per_line // 4)
        coords: list[str] = []
        previous_x = xs[0] if line.x_start is None else line.x_start
        for x, y in zip(xs, ys, strict=True):
            if line.step:
                coords.append(f"{sx(previous_x):.1f},{sy(y):.1f}")
            coords.append(f"{sx(x):.1f},{sy(y):.1f}")
            previous_x = x
        frame.points += len(xs)
        dash = ' stroke-dasharray="6 4"' if dashed else ""
        frame.parts.append(
            f'<polyline class="ww-series" data-points="{len(xs)}" points="{" ".join(coords)}" fill="none" '
            f'stroke="{color}" stroke-width="1.8" stroke-linejoin="round"{dash}><title>{escape(line.label)}</title>'
            "</polyline>"
        )
        if line.markers:
            frame.parts.extend(
                f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{color}"><title>{escape(line.label)}: '
                f"{escape(sig(y))}</title></circle>"
                for x, y in zip(xs, ys, strict=True)
            )
    _legend(frame, entries)
    return _close(frame, title, "line", len(lines))


def bar_chart(
    categories: Sequence[str],
    layers: Sequence[Bars],
    *,
    title: str,
    y_axis: Axis,
    x_label: str = "",
    width: int = 760,
    height: int = 300,
    value_text: Callable[[float], str] = sig,
) -> str:
    """Stacked bars, one per category; each segment's ``<title>`` gives its layer, category and value."""
    frame = _Frame(width, height)
    _open(frame, title, "bar")
    totals = [sum(max(0.0, layer.values[i]) for layer in layers) for i in range(len(categories))]
    if not categories or not layers:
        frame.parts.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle">no data</text>')
        return _close(frame, title, "bar", 0)
    y_hi = max(totals) or 1.0
    n = len(categories)
    sx_axis = Axis(x_label, "number")
    entries = [(layer.label, layer.color or PALETTE[i % len(PALETTE)], False) for i, layer in enumerate(layers)]
    _reserve_legend(frame, entries)
    _, sy = _axes(frame, sx_axis, y_axis, (0.0, float(n)), (0.0, y_hi), x_ticks_shown=False)
    slot = frame.inner_w / n
    bar_w = max(1.0, min(60.0, slot * 0.7))
    longest = max(len(c) for c in categories)
    if n <= 24:  # few bars (runs, channels): every bar named, cut to the room it has (whole name on hover)
        shown = max(3, min(longest, int(slot / _CHAR_W) - 1))
        label_every = 1
    else:  # many (epochs): every k-th, never overlapping
        shown = max(4, min(longest, int(max(slot, 70.0) / _CHAR_W) - 1))
        label_every = max(1, math.ceil((_CHAR_W * shown + 10) / slot))
    base = frame.top + frame.inner_h
    for i, category in enumerate(categories):
        x = frame.left + slot * i + (slot - bar_w) / 2
        level = 0.0
        for index, layer in enumerate(layers):
            value = max(0.0, layer.values[i])
            if value <= 0:
                continue
            color = layer.color or PALETTE[index % len(PALETTE)]
            faded = ' fill-opacity="0.5"' if layer.color is None and index >= len(PALETTE) else ""  # past the palette
            y_top, y_bottom = sy(level + value), sy(level)
            frame.parts.append(
                f'<rect class="ww-bar" x="{x:.1f}" y="{y_top:.1f}" width="{bar_w:.1f}" '
                f'height="{max(0.5, y_bottom - y_top):.1f}" fill="{color}"{faded}><title>{escape(category)} · '
                f"{escape(layer.label)}: {escape(value_text(value))}</title></rect>"
            )
            level += value
            frame.points += 1
        if i % label_every == 0:
            label = category if len(category) <= shown else category[: shown - 1] + "…"
            frame.parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{base + 16}" font-size="11" text-anchor="middle">'
                f"{escape(label)}<title>{escape(category)}</title></text>"
            )
    _legend(frame, entries)
    return _close(frame, title, "bar", len(layers))


def scatter_chart(
    points: Sequence[Point],
    *,
    title: str,
    x_axis: Axis,
    y_axis: Axis,
    front_label: str = "Pareto front",
    width: int = 760,
    height: int = 360,
) -> str:
    """Labelled points; highlighted ones are joined in x order (the Pareto front) and drawn in vermillion."""
    frame = _Frame(width, height)
    _open(frame, title, "scatter")
    ps = [p for p in points if math.isfinite(p.x) and math.isfinite(p.y)]
    if not ps:
        frame.parts.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle">no data</text>')
        return _close(frame, title, "scatter", 0)
    xs, ys = [p.x for p in ps], [p.y for p in ps]
    pad_x = (max(xs) - min(xs)) * 0.08 or abs(xs[0]) * 0.1 or 1.0
    pad_y = (max(ys) - min(ys)) * 0.08 or abs(ys[0]) * 0.1 or 1.0
    x_lo = min(xs) - pad_x if not x_axis.from_zero else 0.0
    entries = [(front_label, PALETTE[3], True), ("other variants", PALETTE[0], False)]
    _reserve_legend(frame, entries)
    sx, sy = _axes(frame, x_axis, y_axis, (x_lo, max(xs) + pad_x), (min(ys) - pad_y, max(ys) + pad_y))
    front = sorted((p for p in ps if p.highlight), key=lambda p: p.x)
    if len(front) > 1:
        coords = " ".join(f"{sx(p.x):.1f},{sy(p.y):.1f}" for p in front)
        frame.parts.append(
            f'<polyline points="{coords}" fill="none" stroke="{PALETTE[3]}" stroke-dasharray="5 3" '
            f'stroke-width="1.5"><title>{escape(front_label)}</title></polyline>'
        )
    placed: list[tuple[float, float, float]] = []  # (x, y, width) of the labels drawn, so none overprints another
    for p in sorted(ps, key=lambda p: p.highlight):  # the front last, on top
        color = PALETTE[3] if p.highlight else PALETTE[0]
        x, y = sx(p.x), sy(p.y)
        detail = f" ({p.detail})" if p.detail else ""
        frame.parts.append(
            f'<circle class="ww-point" cx="{x:.1f}" cy="{y:.1f}" r="5" fill="{color}" stroke="#fff"><title>'
            f"{escape(p.label)}: {escape(sig(p.x))}, {escape(sig(p.y))}{escape(detail)}</title></circle>"
        )
        frame.points += 1
        label_w = _CHAR_W * len(p.label)
        lx = min(x + 7, frame.width - 4 - label_w)
        free = all(lx + label_w + 2 < ox or ox + ow + 2 < lx or abs(y - oy) > 12 for ox, oy, ow in placed)
        if free:
            placed.append((lx, y, label_w))
            frame.parts.append(f'<text x="{lx:.1f}" y="{y - 7:.1f}" font-size="11">{escape(p.label)}</text>')
    _legend(frame, entries)
    return _close(frame, title, "scatter", 1)
