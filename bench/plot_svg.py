"""A log-log line chart as a standalone SVG file, with no plotting library.

The project's environment has neither matplotlib nor kaleido (plotly's image export), and the
benchmarks must not pull in a heavy dependency for one chart: this writes the SVG by hand.
Axes span whole decades; each decade has a labelled major tick and unlabelled minor ticks at
2..9; each series is a polyline (optionally dashed, optionally with a dot per point) with an
entry in the legend to the right of the plot. Text is plain ``<text>`` elements, escaped.

    >>> svg = loglog_svg([Series("load", ((1e5, 0.2), (1e6, 1.9)))], title="t", x_label="x",
    ...                  y_label="y")
    >>> svg.startswith("<svg")
    True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape

# Colour-blind-safe palette (Okabe & Ito), in the order series are drawn.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
REFERENCE_COLOUR = "#888888"
FONT = 'font-family="sans-serif"'


@dataclass(frozen=True)
class Series:
    """One line of the chart: `points` are (x, y), both > 0; drawn in the order given."""

    label: str
    points: tuple[tuple[float, float], ...]
    dashed: bool = False  # reference lines (e.g. "proportional to x") are dashed
    markers: bool = True  # a dot on every point
    colour: str | None = None  # None: the next colour of `PALETTE`


@dataclass(frozen=True)
class LogAxes:
    """Maps values to pixels on log10 axes spanning the decades 10**x_dec[0]..10**x_dec[1]
    (and y_dec) onto the plot box at (left, top) of size width x height (y grows upwards)."""

    x_dec: tuple[int, int]
    y_dec: tuple[int, int]
    left: float
    top: float
    width: float
    height: float

    def x(self, value: float) -> float:
        """Pixel column of `value` (> 0)."""
        lo, hi = self.x_dec
        return self.left + self.width * (math.log10(value) - lo) / (hi - lo)

    def y(self, value: float) -> float:
        """Pixel row of `value` (> 0): the bottom of the box at 10**y_dec[0]."""
        lo, hi = self.y_dec
        return self.top + self.height * (1 - (math.log10(value) - lo) / (hi - lo))


def decades(values: Sequence[float]) -> tuple[int, int]:
    """(floor, ceil) of log10 over `values` (all > 0), at least one decade apart."""
    bad = [v for v in values if not (v > 0 and math.isfinite(v))]
    if not values or bad:
        raise ValueError(f"a log axis needs finite values > 0, got {bad or 'none'}")
    lo = math.floor(math.log10(min(values)) + 1e-9)
    hi = math.ceil(math.log10(max(values)) - 1e-9)
    return lo, max(hi, lo + 1)


def si_label(value: float) -> str:
    """A power of ten as a short label: 0.01, 0.1, 1, 10, 100, 1k, 10k, 100k, 1M, 10M, 1G."""
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= size:
            return f"{value / size:g}{suffix}"
    return f"{value:g}"


def _num(v: float) -> str:
    return f"{v:.1f}"


def _ticks(
    dec: tuple[int, int], at: Callable[[float], float], label: Callable[[float], str]
) -> list[tuple[float, str | None]]:
    """(pixel, label or None for a minor tick) of every tick of a log axis."""
    out: list[tuple[float, str | None]] = []
    for e in range(dec[0], dec[1] + 1):
        out.append((at(10.0**e), label(10.0**e)))
        if e < dec[1]:
            out.extend((at(m * 10.0**e), None) for m in range(2, 10))
    return out


def _line(x1: float, y1: float, x2: float, y2: float, style: str) -> str:
    return f'<line x1="{_num(x1)}" y1="{_num(y1)}" x2="{_num(x2)}" y2="{_num(y2)}" {style}/>'


def _axis(ax: LogAxes, ticks: list[tuple[float, str | None]], horizontal: bool) -> list[str]:
    """Grid lines, tick marks and tick labels of the x axis (`horizontal`) or of the y axis."""
    bottom, out = ax.top + ax.height, []
    for at, lab in ticks:
        tick = 6 if lab is not None else 3
        if horizontal:
            grid, mark = (at, ax.top, at, bottom), (at, bottom, at, bottom + tick)
            tx, ty, anchor = at, bottom + 18, "middle"
        else:
            grid, mark = (ax.left, at, ax.left + ax.width, at), (ax.left - tick, at, ax.left, at)
            tx, ty, anchor = ax.left - 9, at + 4, "end"
        if lab is not None:
            out.append(_line(*grid, 'stroke="#e0e0e0"'))
            out.append(
                f'<text x="{_num(tx)}" y="{_num(ty)}" text-anchor="{anchor}" font-size="12" '
                f"{FONT}>{escape(lab)}</text>"
            )
        out.append(_line(*mark, 'stroke="black"'))
    return out


def loglog_svg(
    series: Sequence[Series],
    *,
    title: str,
    x_label: str,
    y_label: str,
    width: int = 760,
    height: int = 440,
    x_tick_label: Callable[[float], str] = si_label,
    y_tick_label: Callable[[float], str] = si_label,
) -> str:
    """The SVG document of a log-log chart of `series` (see the module's text)."""
    if not series:
        raise ValueError("nothing to plot: no series")
    for s in series:
        if not s.points:
            raise ValueError(f"series {s.label!r} has no points")
    xs = [x for s in series for x, _ in s.points]
    ys = [y for s in series for _, y in s.points]
    legend_w = 230
    ax = LogAxes(decades(xs), decades(ys), 70.0, 40.0, width - 70.0 - legend_w - 20, height - 100.0)
    right = ax.left + ax.width
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">',
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2:.1f}" y="22" text-anchor="middle" font-size="15" {FONT}>'
        f"{escape(title)}</text>",
    ]
    # grid and ticks: a light line at every major tick, a short mark at every minor one
    parts += _axis(ax, _ticks(ax.x_dec, ax.x, x_tick_label), horizontal=True)
    parts += _axis(ax, _ticks(ax.y_dec, ax.y, y_tick_label), horizontal=False)
    parts.append(
        f'<rect x="{_num(ax.left)}" y="{_num(ax.top)}" width="{_num(ax.width)}" '
        f'height="{_num(ax.height)}" fill="none" stroke="black"/>'
    )
    parts.append(
        f'<text x="{_num(ax.left + ax.width / 2)}" y="{height - 12}" text-anchor="middle" '
        f'font-size="13" {FONT}>{escape(x_label)}</text>'
    )
    cy = ax.top + ax.height / 2
    parts.append(
        f'<text x="16" y="{_num(cy)}" text-anchor="middle" font-size="13" {FONT} '
        f'transform="rotate(-90 16 {_num(cy)})">{escape(y_label)}</text>'
    )
    # the series, then the legend (one row per series, in the same order)
    colours = iter(PALETTE)
    lx = right + 20
    for i, s in enumerate(series):
        colour = s.colour or next(colours, "#000000")
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        pts = " ".join(f"{_num(ax.x(x))},{_num(ax.y(y))}" for x, y in s.points)
        parts.append(
            f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="2"{dash}>'
            f"<title>{escape(s.label)}</title></polyline>"
        )
        if s.markers:
            parts.extend(
                f'<circle cx="{_num(ax.x(x))}" cy="{_num(ax.y(y))}" r="3.5" fill="{colour}"/>'
                for x, y in s.points
            )
        ly = ax.top + 10 + 22 * i
        parts.append(_line(lx, ly, lx + 26, ly, f'stroke="{colour}" stroke-width="2"{dash}'))
        parts.append(
            f'<text x="{_num(lx + 32)}" y="{_num(ly + 4)}" font-size="12" {FONT}>'
            f"{escape(s.label)}</text>"
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
