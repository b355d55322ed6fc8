"""Server-side cost of the playground: its first open, a persona's first use, and each update.

    python bench/playground_latency.py [--data RATINGS --items ITEMS | --shape ml-latest-small]
        [--model sample_data/model.pt] [--ratings 30] [--threads 1] [--blas-threads 1]
        [--json OUT]

Loads a dataset (the sample by default; `--shape ml-latest-small` generates a synthetic one of
MovieLens-latest-small's shape, 610 users x 9,724 items x 100,836 ratings, with
`metarec_core.data.synthetic`) and its checkpoint, or trains a quick model (`--quick-steps` meta-steps
without warm start or pretraining: the model's cost per adaptation is that of a full one).

Then times what the page does, stage by stage:
- first open: the projection of training users and the model's start (the page shows both);
- a persona's first use: fitting the playground's baselines (they only feed its learning
  curve), then the same call again as another session makes it (served by the process-wide
  cache);
- every "Add next rating" of a held-out persona (which extends the learning curve) and a manual
  "Rate this item", each with the recommendation rows the page shows (median and p95 in ms;
  target: p95 < 300 ms on the sample data, 2-core CPU); an update includes the top-10's
  explanations (k + 1 adaptations in one batched call, up to 20 ratings) and intervals;
- those two parts alone at k = 5, 10, 20 ratings (`explain_ms`, `band_ms`), beside one plain
  adaptation (`adapt_ms`), median of `--repeat` runs; and the intervals' calibration on the
  validation users (`calibrate_s`), which a session does once, in its first open.

Each stage's CPU seconds are in ``cpu_s`` too (the machine is shared).
`--blas-threads 0` leaves numpy's BLAS at its own thread count (as before the app limited it).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from metarec_core.data.dataset import RatingsDataset  # noqa: E402
from metarec_core.data.io import from_arrays, load_ratings  # noqa: E402
from metarec_core.evaluation.intervals import calibrate, intervals_many  # noqa: E402
from metarec_core.interactive import personas  # noqa: E402
from metarec_core.interactive import session as pg  # noqa: E402
from metarec_core.interactive.explain import explain  # noqa: E402
from metarec_core.interactive.projection import fit_projection  # noqa: E402
from metarec_core.protocol.splits import split_users  # noqa: E402

SHAPES = {"ml-latest-small": (610, 9724, 100_836)}
CPU: dict[str, float] = {}  # CPU seconds of each stage (the machine is shared: wall grows with it)


class _Clock:
    """Wall seconds since it started; `stop(name)` also keeps its CPU seconds in `CPU`."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def stop(self, name: str) -> float:
        CPU[name] = time.process_time() - self.cpu
        return time.perf_counter() - self.wall


def synthetic_dataset(shape: str, seed: int = 0) -> RatingsDataset:
    """A synthetic dataset of a known public dataset's size (`SHAPES`)."""
    from metarec_core.data.synthetic import generate

    n_users, n_items, n_ratings = SHAPES[shape]
    ratings, items = generate(n_users, n_items, n_ratings, seed=seed)
    ids = items["item"].astype(str)
    return from_arrays(
        ratings["user"].astype(str).tolist(),
        ratings["item"].astype(str).tolist(),
        ratings["rating"].to_numpy(np.float64),
        item_titles=dict(zip(ids, items["title"], strict=True)),
        genres=dict(zip(ids, items["genres"].str.split("|"), strict=True)),
        source=f"synthetic, {shape} shape",
    )


def add_thread_args(p: argparse.ArgumentParser) -> None:
    """--threads and --blas-threads, as the app sets them (bench/item_latency.py too)."""
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (the app uses 1)")
    p.add_argument(
        "--blas-threads", type=int, default=1, help="numpy BLAS threads (the app uses 1; 0: BLAS's)"
    )


def limit_threads(args: argparse.Namespace) -> None:
    """Set torch's and numpy BLAS's thread counts from `add_thread_args`' options."""
    import torch

    torch.set_num_threads(args.threads)
    if args.blas_threads > 0:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=args.blas_threads, user_api="blas")


def dataset_record(data: RatingsDataset) -> dict:
    """The dataset's name and size, for a benchmark's output."""
    return {
        "source": data.source,
        "users": data.n_users,
        "items": data.n_items,
        "ratings": data.n_ratings,
    }


def stats(x: list[float]) -> dict:
    """Median, p95 and count of timings."""
    return {"median": float(np.median(x)), "p95": float(np.percentile(x, 95)), "n": len(x)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(ROOT / "sample_data" / "ratings.csv"))
    p.add_argument("--items", default=str(ROOT / "sample_data" / "items.csv"))
    p.add_argument("--shape", choices=sorted(SHAPES), help="a synthetic dataset of this shape")
    p.add_argument("--model", default=str(ROOT / "sample_data" / "model.pt"))
    p.add_argument("--ratings", type=int, default=30, help="persona ratings to add, one at a time")
    p.add_argument("--quick-steps", type=int, default=30, help="steps when there is no checkpoint")
    add_thread_args(p)
    p.add_argument("--repeat", type=int, default=10, help="runs per part timing (explain, band)")
    p.add_argument("--json", help="write the numbers here")
    args = p.parse_args(argv)
    limit_threads(args)

    if args.shape:
        data = synthetic_dataset(args.shape)
        model_path = None
    else:
        data = load_ratings(args.data, items=args.items or None)
        model_path = Path(args.model) if args.model else None
    clock = _Clock()
    if model_path is not None and model_path.exists():
        from metarec_core.checkpoint import load_checkpoint

        loaded = load_checkpoint(model_path, data)
        model, seed, source = loaded.learner, int(loaded.config.get("seed", 0)), str(model_path)
    else:
        from metarec_core.methods.meta import make_learner

        seed = 0
        train, val = split_users(data, seed)
        model = make_learner(
            "metasgd", steps=args.quick_steps, warm_start=False, pretrain=False, device="cpu"
        ).fit(data, train, val)
        source = f"quick metasgd, {args.quick_steps} steps"
    t_model = clock.stop("model")
    train, val = split_users(data, seed)

    # first open: what the page shows at once
    clock = _Clock()
    projection = fit_projection(model, data, train)
    t_projection = clock.stop("projection")
    clock = _Clock()
    session = pg.PlaygroundSession(
        data, model, model_name="meta", projection=projection, val_users=val
    )  # as the page: its intervals calibrated on the validation users
    session.recommendations()
    t_start = clock.stop("model_start")

    # a persona's first use: the baselines of its learning curve, one stage each
    pg.clear_baseline_cache()
    t_fit: dict[str, float] = {}
    for name in pg.PLAYGROUND_BASELINES:
        clock = _Clock()
        pg.cached_baselines(data, train, val, [name])
        t_fit[name] = clock.stop(f"baseline {name}")
    clock = _Clock()
    baselines = pg.cached_baselines(data, train, val)  # another session: a cache hit
    t_cached = clock.stop("baselines_cached")

    user = int(personas.heldout_candidates(data, val)[0])
    persona = personas.heldout_persona(data, user)
    clock = _Clock()
    session.set_baselines(baselines)
    session.set_persona(persona)
    t_persona = clock.stop("persona")
    n = min(args.ratings, len(persona.reveal_items))
    persona_ms = []
    for _ in range(n):
        t0 = time.perf_counter()
        session.add_next()
        session.recommendations()
        persona_ms.append(1000 * (time.perf_counter() - t0))

    session.set_persona(None)
    manual_ms = []
    for item in pg.search_items(data, limit=n):
        t0 = time.perf_counter()
        session.add_rating(int(item), float(data.scale.high))
        session.recommendations()
        manual_ms.append(1000 * (time.perf_counter() - t0))

    parts: dict[str, dict[int, float]] = {"adapt_ms": {}, "explain_ms": {}, "band_ms": {}}
    t0 = time.perf_counter()
    cal = calibrate(model, data, val)  # what the session did once at its start
    t_calibrate = time.perf_counter() - t0
    for k in (5, 10, 20):
        items, ratings = persona.reveal_items[:k], persona.reveal_ratings[:k]
        top, _ = model.adapt(items, ratings).recommend(10)
        calls = {
            "adapt_ms": (model.adapt, (items, ratings)),
            "explain_ms": (explain, (model, items, ratings, top)),
            "band_ms": (intervals_many, (model, [(items, ratings)], 0.8, cal)),
        }
        for part, (call, call_args) in calls.items():
            ms = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                call(*call_args)
                ms.append(1000 * (time.perf_counter() - t0))
            parts[part][k] = float(np.median(ms))

    first_open = t_projection + t_start
    out = {
        "dataset": dataset_record(data),
        "model": source,
        "torch_threads": args.threads,
        "blas_threads": args.blas_threads or "BLAS default",
        "model_s": t_model,
        "first_open_s": {
            "projection": t_projection,
            "model_start": t_start,
            "total": first_open,
        },
        "persona_first_use_s": {
            "baselines": t_fit,
            "persona": t_persona,
            "total": sum(t_fit.values()) + t_persona,
        },
        "baselines_cached_s": t_cached,
        # what the first open cost when every baseline was fitted before the page showed
        "eager_first_open_s": first_open + sum(t_fit.values()),
        "persona_update_ms": stats(persona_ms),
        "manual_update_ms": stats(manual_ms),
        "cpu_s": dict(CPU),
        "calibrate_s": t_calibrate,
        **parts,
    }
    print(json.dumps(out, indent=2))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
