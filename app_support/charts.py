"""Small Plotly helpers shared by the pages (layout, axis ticks and spans); no Streamlit here."""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from typing import Any

import plotly.graph_objects as go


def titled(
    fig: go.Figure,
    title: str | dict[str, Any],
    x_title: str,
    y_title: str,
    *,
    height: int = 320,
    margin: dict[str, int] | None = None,
    **layout: Any,
) -> go.Figure:
    """The pages' chart layout: `title`, the axis titles, `height` and `margin` (default
    top 50, bottom 40, left 50, right 10 pixels), then any other `layout` settings."""
    fig.update_layout(
        title=title,
        xaxis_title=x_title,
        yaxis_title=y_title,
        height=height,
        margin=margin or dict(t=50, b=40, l=50, r=10),
        **layout,
    )
    return fig


def log_ticks(low: float, high: float) -> tuple[list[float], list[str]]:
    """Explicit ticks for a log axis from `low` to `high`: 1, 2, 5, 10, 20, 50… when the range
    spans at most three decades, else the powers of ten; each labelled in full ("1,000").

    Plotly's own log ticks label the minor steps "2" and "5" without their decade, which reads
    as "1 2 5 10 2 5 100 2".
    """
    low, high = max(float(low), 1e-12), max(float(high), float(low), 1e-12)
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
    vals: list[float] = []
    # the coarsest mantissas that still give two ticks (a narrow range, e.g. 24..44, gets 30, 40)
    for steps in ((1,), (1, 2, 5), tuple(range(1, 10))):
        if steps == (1,) and last - first <= 3:
            continue
        vals = [
            m * 10.0**e
            for e in range(first, last + 1)
            for m in steps
            if low <= m * 10.0**e * (1 + 1e-9) and m * 10.0**e <= high * (1 + 1e-9)
        ]
        if len(vals) >= 2:
            break
    if len(vals) < 2:  # a range inside one step: its ends
        vals = sorted({low, high})
    return vals, [_label(v) for v in vals]


def _label(v: float) -> str:
    return f"{v:,.0f}" if v >= 1 else f"{v:g}"


def set_log_axis(fig: go.Figure, axis: str, low: float, high: float) -> go.Figure:
    """Make `axis` ("x" or "y") a log axis with explicit 1-2-5 (or power-of-ten) ticks."""
    vals, text = log_ticks(low, high)
    fig.update_layout(
        {f"{axis}axis": dict(type="log", tickmode="array", tickvals=vals, ticktext=text)}
    )
    return fig


def min_span_range(values: Sequence[float], span: float) -> list[float] | None:
    """A y range at least `span` wide around `values` (None: let Plotly choose), so a curve
    moving by 0.004 is not drawn across the whole chart as if it changed a lot."""
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not vals:
        return None
    lo, hi = min(vals), max(vals)
    if hi - lo >= span:
        return None
    mid = (lo + hi) / 2
    return [mid - span / 2, mid + span / 2]


# The model check's colours: the model stands out, the baselines are muted.
CHECK_COLOURS = {
    "model": "#4c6ef5",
    "user_bias": "#adb5bd",
    "mf_foldin": "#868e96",
    "user_bias_levels": "#f59f00",
    "mf_foldin_levels": "#e8590c",
}


def model_check_figure(check: Any, label: Callable[[str], str], model_label: str) -> go.Figure:
    """MAE against the number of ratings k for the model and each baseline of a
    `metarec_core.evaluation.check.ModelCheck`, with their bootstrap 95% intervals as error
    bars; `label(name)` names a baseline, `model_label` the model (Plotly-escaped by the caller)."""
    fig = go.Figure()
    for name in ("model", *check.baselines):
        rows = [r for r in check.rows if r.method == name]
        model = name == "model"
        fig.add_trace(
            go.Scatter(
                x=[r.k for r in rows],
                y=[r.mae for r in rows],
                error_y=dict(
                    type="data",
                    symmetric=False,
                    array=[r.ci95[1] - r.mae for r in rows],
                    arrayminus=[r.mae - r.ci95[0] for r in rows],
                    thickness=1,
                ),
                mode="lines+markers",
                name=model_label if model else label(name),
                line=dict(color=CHECK_COLOURS.get(name), width=3 if model else 1.5),
            )
        )
    fig.update_xaxes(tickvals=list(check.ks))
    return titled(
        fig,
        dict(text="Model check: error on the check users", x=0, xanchor="left"),
        "Ratings the new user gave (k)",
        "Average error (MAE)",
        height=400,
        # the legend below the x-axis title: five names do not fit beside a narrow column
        margin=dict(t=50, b=110, l=64, r=10),
        legend=dict(orientation="h", yanchor="top", y=-0.22, x=0),
    )


def rgba(hex_color: str, alpha: float) -> str:
    """A "#rrggbb" colour with opacity `alpha`, as plotly's "rgba(r,g,b,a)"."""
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def add_curve(
    fig: go.Figure,
    xs: list,
    ys: list,
    name: str,
    color: str,
    band: Sequence[Sequence[float]] | None = None,
    band_name: str = "",
    band_alpha: float = 0.15,
) -> None:
    """A line with markers, over its 95% CI `band` ((low, high) per point) when given."""
    if band is not None:
        fig.add_scatter(
            x=xs + xs[::-1],
            y=[b[1] for b in band] + [b[0] for b in band][::-1],
            fill="toself",
            mode="lines",
            line=dict(width=0),
            fillcolor=rgba(color, band_alpha),
            hoverinfo="skip",
            showlegend=False,
            name=band_name,
        )
    fig.add_scatter(x=xs, y=ys, mode="lines+markers", name=name, line=dict(color=color))


def interval_figure(
    labels: Sequence[str], predicted: Sequence[float], low: Sequence[float], high: Sequence[float]
) -> go.Figure:
    """The top-N's predicted ratings (dots, best at the top) inside their prediction intervals
    (bars); `labels` are the items' plain names (escaped here: Plotly renders some HTML)."""
    fig = go.Figure()
    short = [t if len(t) <= 28 else t[:27] + "…" for t in map(str, labels)]
    y = list(range(len(labels)))[::-1]
    lo = [p - a for p, a in zip(predicted, low, strict=True)]
    hi = [b - p for p, b in zip(predicted, high, strict=True)]
    fig.add_scatter(
        x=list(predicted),
        y=y,
        mode="markers",
        marker=dict(size=9, color="#4c6ef5"),
        error_x=dict(
            type="data",
            symmetric=False,
            array=hi,
            arrayminus=lo,
            thickness=6,
            width=0,
            color=rgba("#4c6ef5", 0.3),
        ),
        text=[html.escape(t, quote=False) for t in map(str, labels)],
        customdata=[[a, b] for a, b in zip(low, high, strict=True)],
        hovertemplate="%{text}: %{x:.2f} (%{customdata[0]:.2g}–%{customdata[1]:.2g})<extra></extra>",
        showlegend=False,
    )
    fig.update_yaxes(tickvals=y, ticktext=[html.escape(t, quote=False) for t in short])
    return fig
