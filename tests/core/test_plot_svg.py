"""bench/plot_svg.py, the dependency-free log-log chart of docs/scale.svg, and bench/scale.py's
chart of its rows."""

from __future__ import annotations

import importlib.util
import math
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))  # as scale.py imports it: from beside it
import plot_svg as ps  # noqa: E402

spec = importlib.util.spec_from_file_location("scale_bench", ROOT / "bench/scale.py")
scale = importlib.util.module_from_spec(spec)
spec.loader.exec_module(scale)

SVG = "{http://www.w3.org/2000/svg}"


def test_decades_span_the_values_in_whole_powers_of_ten():
    assert ps.decades([1e5, 1e6, 1e7]) == (5, 7)
    assert ps.decades([0.2, 3.0, 47.0]) == (-1, 2)
    assert ps.decades([5.0]) == (0, 1)  # one decade at least
    for bad in ([], [1.0, 0.0], [-3.0], [float("nan")], [float("inf")]):
        with pytest.raises(ValueError, match="log axis"):
            ps.decades(bad)


def test_the_axes_map_decades_to_the_box_edges_and_equal_ratios_to_equal_steps():
    ax = ps.LogAxes((5, 7), (-1, 2), left=70, top=40, width=400, height=300)
    assert ax.x(1e5) == pytest.approx(70) and ax.x(1e7) == pytest.approx(470)
    assert ax.x(1e6) == pytest.approx(270)
    assert ax.y(0.1) == pytest.approx(340) and ax.y(100) == pytest.approx(40)  # y grows upwards
    assert ax.y(1) == pytest.approx(240)
    # a tenfold is the same distance everywhere; x2 is log10(2) of a decade
    assert ax.x(3e6) - ax.x(3e5) == pytest.approx(200)
    assert ax.x(2e5) - ax.x(1e5) == pytest.approx(200 * math.log10(2))


def test_si_labels():
    assert [ps.si_label(10.0**e) for e in range(-2, 10)] == [
        "0.01", "0.1", "1", "10", "100", "1k", "10k", "100k", "1M", "10M", "100M", "1G",
    ]  # fmt: skip


def _parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return root


def test_the_chart_parses_as_xml_with_a_line_per_series_at_the_mapped_points_and_a_legend():
    series = [
        ps.Series("load <CPU s> & more", ((1e5, 0.2), (1e6, 1.9), (1e7, 19.0))),
        ps.Series("constant", ((1e5, 1.0), (1e7, 1.0)), dashed=True, markers=False),
    ]
    svg = ps.loglog_svg(series, title="Growth", x_label="ratings", y_label="x at 100k")
    root = _parse(svg)  # the label's < and & are escaped
    lines = root.findall(f"{SVG}polyline")
    assert len(lines) == 2
    assert [p.find(f"{SVG}title").text for p in lines] == [s.label for s in series]
    assert lines[1].get("stroke-dasharray") and lines[0].get("stroke-dasharray") is None
    # the points are where the axes put them: x 1e5..1e7, y 0.1..100
    ax = ps.LogAxes((5, 7), (-1, 2), 70.0, 40.0, 760 - 70 - 230 - 20, 440 - 100)
    got = [float(v) for xy in lines[0].get("points").split() for v in xy.split(",")]
    want = [v for x, y in series[0].points for v in (ax.x(x), ax.y(y))]
    assert got == pytest.approx(want, abs=0.06)  # written to 0.1 px
    assert len(root.findall(f"{SVG}circle")) == 3  # markers of the first series only
    texts = [t.text for t in root.iter(f"{SVG}text")]
    for label in ("Growth", "ratings", "x at 100k", "100k", "1M", "10M", "0.1", "1", "10", "100"):
        assert label in texts
    assert texts.count("load <CPU s> & more") == 1 and texts.count("constant") == 1  # legend


def test_nothing_to_plot_or_a_value_off_the_log_scale_is_refused():
    with pytest.raises(ValueError, match="no series"):
        ps.loglog_svg([], title="t", x_label="x", y_label="y")
    with pytest.raises(ValueError, match="has no points"):
        ps.loglog_svg([ps.Series("a", ())], title="t", x_label="x", y_label="y")
    with pytest.raises(ValueError, match="log axis"):
        ps.loglog_svg([ps.Series("a", ((1.0, 0.0),))], title="t", x_label="x", y_label="y")


def _row(name: str, ratings: int, k: float) -> dict:
    """A bench row whose every figure (memory: above the 100 MB before loading) is `k` times
    that of the first size."""
    return {
        "name": name, "ratings": ratings, "users": 1, "items": 1, "load_s": k,
        "load_cpu_s": 0.2 * k, "load_peak_rss_mb": 100 + 50 * k, "rss_before_mb": 100,
        "rss_train_start_mb": 100,
        "warm_start_cpu_s": k, "episodes_cpu_s": k, "val_batches_cpu_s": k, "warm_start_s": k,
        "episodes_s": k, "val_batches_s": k, "setup_peak_rss_mb": 100 + 300 * k,
        "rss_after_setup_mb": 100 + 200 * k,
        "step_s": 0.06 * k, "step_cpu_s": 0.05 * k, "val_users": 100, "val_users_all": 100,
        "val_run_s": k, "val_run_cpu_s": 0.3 * k, "adapt_recommend_p50_ms": 10,
        "adapt_recommend_p95_ms": 13, "adapt_recommend_cpu_p50_ms": 10,
        "adapt_recommend_cpu_p95_ms": 13,
    }  # fmt: skip


def test_the_scale_bench_charts_each_figure_as_a_multiple_of_the_smallest_size():
    rows = [_row("1m", 1_000_000, 10.0), _row("100k", 100_000, 1.0), _row("ml-1m", 999_714, 5.0)]
    root = _parse(scale.growth_chart(rows))
    lines = {p.find(f"{SVG}title").text: p.get("points") for p in root.findall(f"{SVG}polyline")}
    assert set(lines) == {label for label, _ in scale.GROWTH} | {"∝ ratings", "constant"}
    # every figure grew tenfold over a tenfold of ratings: each lies on the "∝ ratings" line
    # (ML-1M, not a generated size, is left out)
    for label, _ in scale.GROWTH:
        assert lines[label] == lines["∝ ratings"], label
    assert lines["constant"] != lines["∝ ratings"]
    with pytest.raises(ValueError, match="two generated sizes"):
        scale.growth_chart(rows[1:])
    assert "without the cap" in scale._markdown(rows)
