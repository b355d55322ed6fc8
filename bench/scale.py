"""How loading, training set-up, meta-steps and adapt + recommend grow with the number of ratings.

    python bench/scale.py --sizes 100k,1m,10m --ml1m ../shared/datasets/ml-1m \\
        --json bench/out/scale.json --md bench/out/scale.md --svg docs/scale.svg
    python bench/scale.py --from-json bench/out/scale.json --svg docs/scale.svg  # re-draw

For each size a synthetic dataset is written once by `make-sample` into ``--data-dir`` (100k:
the sample data's spec; 1m: 10,000 users x 5,000 items; 10m: 100,000 users x 20,000 items),
and MovieLens-1M is measured too when ``--ml1m`` names its folder. Every measurement runs in a
fresh child process, so that its peak RSS (``ru_maxrss``) is its own:

- load: `load_ratings` of ratings.csv and items.csv (what `validate` and the app's upload do),
  wall and CPU seconds, peak RSS.
- train: the default learner's set-up as `fit` does it (the ALS warm start on the training
  users, the training users' episodes, the validation batches of at most ``max_val_users``
  validation users, as fit takes them), its seconds and peak RSS;
  then the median wall and CPU seconds of one meta-step (sample a meta-batch, pad, meta-gradient,
  optimiser step) over ``--steps`` steps after 3 warm-up steps; one validation run (what every
  ``eval_every`` steps cost; where the cap leaves users out, also one run on all of them, for
  comparison, after everything else); adapt + recommend(10) of one new user with 10 ratings
  over the whole catalogue, p50 and p95 over 50 users after 5 warm-up ones.

``--svg`` draws how load time, memory, set-up, meta-step and validation run grow with the
ratings over the generated sizes (log-log, `plot_svg.py`). Weights are not trained: the speed
of a step does not depend on their values. The machine is shared, so CPU seconds are given
beside wall seconds, with the load averages.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # plot_svg, beside this file

# name -> (users, items, ratings)
SIZES = {
    "100k": (1000, 1500, 100_000),
    "1m": (10_000, 5_000, 1_000_000),
    "10m": (100_000, 20_000, 10_000_000),
}
BIG = 1 << 40  # no size cap when a benchmark reads its own files


def _status_mb(field: str) -> float:
    """A memory field of /proc/self/status (VmRSS, VmHWM), MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")  # pragma: no cover


def _rss_mb() -> float:
    """Peak resident set size of this process so far, MiB. VmHWM, not ru_maxrss: Linux keeps
    ru_maxrss across fork and exec, so a child would report its parent's peak."""
    return _status_mb("VmHWM")


def _now_rss_mb() -> float:
    """Current resident set size, MiB."""
    return _status_mb("VmRSS")


class _Clock:
    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def split(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


# ---------------------------------------------------------------------------------- children
def _child_load(ratings: str, items: str | None) -> dict:
    from metarec_core.data.io import load_ratings

    base = _now_rss_mb()
    clock = _Clock()
    data = load_ratings(ratings, items=items, max_bytes=BIG)
    wall, cpu = clock.split()
    return {
        "load_s": wall,
        "load_cpu_s": cpu,
        "load_peak_rss_mb": _rss_mb(),
        "rss_before_mb": base,
        "users": int(data.n_users),
        "items": int(data.n_items),
        "ratings": int(len(data.rating)),
        "file_mb": os.path.getsize(ratings) / 2**20,
    }


def _child_train(ratings: str, items: str | None, steps: int, warm_start: bool) -> dict:
    import numpy as np
    import torch

    from metarec_core.data.io import load_ratings
    from metarec_core.methods.meta import DEFAULT_METHOD, make_learner
    from metarec_core.protocol.splits import fit_validation_split

    start = _now_rss_mb()  # interpreter, torch and the core: what does not grow with the data
    data = load_ratings(ratings, items=items, max_bytes=BIG)
    out: dict = {"threads": torch.get_num_threads(), "rss_after_load_mb": _now_rss_mb()}
    out["rss_train_start_mb"] = start
    out["peak_rss_after_load_mb"] = _rss_mb()
    learner = make_learner(DEFAULT_METHOD, seed=0, device="cpu", warm_start=warm_start)
    cfg = learner.config
    users = np.arange(data.n_users)
    train, val_all = fit_validation_split(users, cfg.seed, cfg.val_fraction)
    val = learner._validation_users(val_all)  # as fit does: at most max_val_users validate
    out["val_users_all"], out["val_users"] = len(val_all), len(val)
    out["max_val_users"] = cfg.max_val_users

    clock = _Clock()
    learner.setup(data, train, val)
    out["warm_start_s"], out["warm_start_cpu_s"] = clock.split()
    clock = _Clock()
    episodes = learner._episodes(data, train)
    out["episodes_s"], out["episodes_cpu_s"] = clock.split()
    clock = _Clock()
    val_batches = learner._val_batches(data, val)
    out["val_batches_s"], out["val_batches_cpu_s"] = clock.split()
    out["val_tasks"] = int(sum(len(s) for s, _ in val_batches))
    out["setup_peak_rss_mb"] = _rss_mb()
    out["rss_after_setup_mb"] = _now_rss_mb()

    # The loop body of MetaLearner._train, without validation.
    rng = np.random.default_rng([cfg.seed, 17])
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    opt = learner._optimizer()
    learn = learner._learnable()

    def step() -> None:
        support, query = learner._sample(episodes, rng)
        s, q = learner._pad(support), learner._pad(query)
        _, grads = learner._gradients(s, q, learner._dropout_masks(q, gen))
        learner._apply_gradients(grads, opt, learn)

    for _ in range(3):
        step()
    walls, cpus = [], []
    for _ in range(steps):
        clock = _Clock()
        step()
        w, c = clock.split()
        walls.append(w)
        cpus.append(c)
    out["step_s"] = statistics.median(walls)
    out["step_cpu_s"] = statistics.median(cpus)
    out["meta_batch"] = cfg.meta_batch

    clock = _Clock()
    learner._val_scores(val_batches)
    out["val_run_s"], out["val_run_cpu_s"] = clock.split()
    out["eval_every"] = cfg.eval_every

    learner.fitted_ = True
    rng = np.random.default_rng(1)
    levels = np.unique(data.rating[:10_000]).astype(np.float64)
    lat, lat_cpu = [], []
    for r in range(55):
        its = rng.choice(data.n_items, 10, replace=False)
        rs = rng.choice(levels, 10)
        clock = _Clock()
        learner.adapt(its, rs).recommend(10)
        if r >= 5:
            w, c = clock.split()
            lat.append(w * 1000)
            lat_cpu.append(c * 1000)
    out["adapt_recommend_p50_ms"] = float(np.percentile(lat, 50))
    out["adapt_recommend_p95_ms"] = float(np.percentile(lat, 95))
    out["adapt_recommend_cpu_p50_ms"] = float(np.percentile(lat_cpu, 50))
    out["adapt_recommend_cpu_p95_ms"] = float(np.percentile(lat_cpu, 95))
    out["train_peak_rss_mb"] = _rss_mb()
    del val_batches
    if len(val) < len(val_all):  # what the run costs without the cap, for comparison
        clock = _Clock()
        all_batches = learner._val_batches(data, val_all)
        out["val_all_batches_s"], out["val_all_batches_cpu_s"] = clock.split()
        clock = _Clock()
        learner._val_scores(all_batches)
        out["val_all_run_s"], out["val_all_run_cpu_s"] = clock.split()
        out["val_all_tasks"] = int(sum(len(s) for s, _ in all_batches))
        del all_batches
    return out


# ------------------------------------------------------------------------------------ parent
def _run_child(args: list[str]) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", *args]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{res.stderr[-3000:]}")
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = json.loads(res.stdout.strip().splitlines()[-1])
    out["_children_cpu_s_so_far"] = usage.ru_utime + usage.ru_stime
    return out


def _dataset(name: str, data_dir: Path) -> tuple[str, str]:
    """(ratings, items) of a generated size, written by make-sample when missing."""
    from metarec_core.data.synthetic import SyntheticSpec, write_sample

    folder = data_dir / name
    ratings, items = folder / "ratings.csv", folder / "items.csv"
    if not ratings.exists() or not (folder / "README.md").exists():
        n_users, n_items, n_ratings = SIZES[name]
        spec = SyntheticSpec(n_users=n_users, n_items=n_items, n_ratings=n_ratings)
        clock = _Clock()
        write_sample(folder, seed=0, spec=spec)
        wall, cpu = clock.split()
        (folder / "generate_seconds.json").write_text(json.dumps({"wall": wall, "cpu": cpu}))
        print(f"{name}: generated in {wall:.1f} s ({cpu:.1f} CPU-s)", file=sys.stderr)
    return str(ratings), str(items)


def _setup_cpu_s(r: dict) -> float:
    """CPU seconds of the training set-up: warm start, episodes, validation batches."""
    return r["warm_start_cpu_s"] + r["episodes_cpu_s"] + r["val_batches_cpu_s"]


def _markdown(rows: list[dict]) -> str:
    head = (
        "| data | ratings | users | items | load s (CPU s) | load peak RSS MB | "
        "set-up s (CPU s) | set-up peak RSS MB | meta-step ms (CPU ms) | validating users | "
        "validation run s (CPU s) | without the cap: CPU s | "
        "adapt+recommend p50 / p95 ms (CPU ms) |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    lines = []
    for r in rows:
        train = "step_s" in r
        if train:
            setup = r["warm_start_s"] + r["episodes_s"] + r["val_batches_s"]
            uncapped = (
                f"{r['val_all_batches_cpu_s']:.1f} + {r['val_all_run_cpu_s']:.1f} a run"
                if "val_all_run_cpu_s" in r
                else "same"
            )
            validating = (
                f"{r['val_users']:,}"
                if r["val_users"] == r["val_users_all"]
                else f"{r['val_users']:,} of {r['val_users_all']:,}"
            )
            cells = (
                f"{setup:.1f} ({_setup_cpu_s(r):.1f}) | {r['setup_peak_rss_mb']:.0f} | "
                f"{1000 * r['step_s']:.0f} ({1000 * r['step_cpu_s']:.0f}) | {validating} | "
                f"{r['val_run_s']:.1f} ({r['val_run_cpu_s']:.2f}) | {uncapped} | "
                f"{r['adapt_recommend_p50_ms']:.0f} / {r['adapt_recommend_p95_ms']:.0f} "
                f"({r['adapt_recommend_cpu_p50_ms']:.0f} / {r['adapt_recommend_cpu_p95_ms']:.0f}) |"
            )
        else:
            cells = "- | - | - | - | - | - | - |"
        lines.append(
            f"| {r['name']} | {r['ratings']:,} | {r['users']:,} | {r['items']:,} | "
            f"{r['load_s']:.1f} ({r['load_cpu_s']:.1f}) | {r['load_peak_rss_mb']:.0f} | " + cells
        )
    return head + "\n".join(lines) + "\n"


# (label, value of a row) of each line of the growth chart; CPU figures, not wall ones: the
# machine is shared, so wall seconds grow with its load as much as with the data. Memory is
# RSS less the child's RSS before loading (its interpreter and libraries: ~105 MB for the
# load, ~300 MB with torch for the set-up), which does not grow with the data.
GROWTH = (
    ("load, CPU s", lambda r: r["load_cpu_s"]),
    ("load, peak MB", lambda r: r["load_peak_rss_mb"] - r["rss_before_mb"]),
    ("set-up, CPU s", _setup_cpu_s),
    ("set-up, peak MB", lambda r: r["setup_peak_rss_mb"] - r["rss_train_start_mb"]),
    ("held after set-up, MB", lambda r: r["rss_after_setup_mb"] - r["rss_train_start_mb"]),
    ("meta-step, CPU ms", lambda r: r["step_cpu_s"]),
    ("validation run, CPU s", lambda r: r["val_run_cpu_s"]),
)


def growth_chart(rows: list[dict]) -> str:
    """The log-log chart (SVG) of how each `GROWTH` figure of the generated sizes grows with
    the ratings, as a multiple of its value at the smallest size, beside the lines of a figure
    proportional to the ratings and of a constant one. ML-1M (not a generated size) is left
    out; the sizes must have been measured with training."""
    from plot_svg import REFERENCE_COLOUR, Series, loglog_svg

    sized = sorted((r for r in rows if r["name"] in SIZES), key=lambda r: r["ratings"])
    if len(sized) < 2 or any("step_s" not in r for r in sized):
        raise ValueError("the chart needs two generated sizes or more, measured with training")
    x = [float(r["ratings"]) for r in sized]
    series = [
        Series(label, tuple((float(r["ratings"]), value(r) / value(sized[0])) for r in sized))
        for label, value in GROWTH
    ]
    series += [
        Series("∝ ratings", ((x[0], 1.0), (x[-1], x[-1] / x[0])), True, False, REFERENCE_COLOUR),
        Series("constant", ((x[0], 1.0), (x[-1], 1.0)), True, False, "#bbbbbb"),
    ]
    return loglog_svg(
        series,
        title=f"Growth from {sized[0]['ratings']:,} to {sized[-1]['ratings']:,} ratings",
        x_label="ratings (users x items grow too: see the table)",
        y_label=f"x its value at {sized[0]['name']}",
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--sizes", default="100k,1m,10m", help="comma-separated, from: " + ",".join(SIZES)
    )
    ap.add_argument("--ml1m", default=None, help="folder of MovieLens-1M (ratings.csv, items.csv)")
    ap.add_argument("--data-dir", default=str(ROOT / "bench" / "out" / "scale"))
    ap.add_argument("--steps", type=int, default=10, help="timed meta-steps (after 3 warm-up)")
    ap.add_argument("--no-train", action="store_true", help="measure loading only")
    ap.add_argument("--no-warm-start", action="store_true", help="set up without the ALS")
    ap.add_argument("--json", default=None)
    ap.add_argument("--md", default=None)
    ap.add_argument("--svg", default=None, help="write the growth chart (log-log) here")
    ap.add_argument(
        "--from-json",
        nargs="+",
        default=None,
        help="measure nothing: the table and chart of rows in these --json files",
    )
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child:
        what, ratings, items, *rest = args.child
        items = None if items == "-" else items
        if what == "load":
            res = _child_load(ratings, items)
        else:
            res = _child_train(ratings, items, int(rest[0]), rest[1] == "1")
        print(json.dumps(res))
        return 0

    if args.from_json:
        rows = [row for f in args.from_json for row in json.loads(Path(f).read_text())]
        return _write_outputs(rows, args.md, args.svg)
    data_dir = Path(args.data_dir)
    todo: list[tuple[str, str, str]] = []
    for name in [s for s in args.sizes.split(",") if s]:
        if name not in SIZES:
            ap.error(f"unknown size {name!r}; expected one of {', '.join(SIZES)}")
        todo.append((name, *_dataset(name, data_dir)))
    if args.ml1m:
        folder = Path(args.ml1m)
        if (folder / "ratings.csv").exists():
            items = folder / "items.csv"
            todo.append(
                ("ml-1m", str(folder / "ratings.csv"), str(items) if items.exists() else "-")
            )
        else:
            print(f"no {folder / 'ratings.csv'}: ML-1M skipped", file=sys.stderr)

    rows = []
    for name, ratings, items in todo:
        row: dict = {"name": name, "loadavg_before": os.getloadavg()}
        gen = Path(ratings).parent / "generate_seconds.json"
        if gen.exists():
            row["generate"] = json.loads(gen.read_text())
        row.update(_run_child(["load", ratings, items]))
        print(
            f"{name}: load {row['load_s']:.1f} s, {row['load_peak_rss_mb']:.0f} MB", file=sys.stderr
        )
        if not args.no_train:
            row.update(
                _run_child(
                    ["train", ratings, items, str(args.steps), str(int(not args.no_warm_start))]
                )
            )
            print(
                f"{name}: set-up peak {row['setup_peak_rss_mb']:.0f} MB, step "
                f"{1000 * row['step_s']:.0f} ms, p95 {row['adapt_recommend_p95_ms']:.1f} ms",
                file=sys.stderr,
            )
        row["loadavg_after"] = os.getloadavg()
        rows.append(row)
        if args.json:  # after every dataset: a long run keeps what it measured
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps(rows, indent=2))
    return _write_outputs(rows, args.md, args.svg)


def _write_outputs(rows: list[dict], md: str | None, svg: str | None) -> int:
    """Print the table; write it to `md` and the growth chart to `svg` where named."""
    table = _markdown(rows)
    print(table)
    for path, text in ((md, table), (svg, growth_chart(rows) if svg else "")):
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
