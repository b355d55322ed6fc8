"""Server-side latency of one playground update (adapt + baselines + top-N + projection).

    python bench/playground_latency.py [--model sample_data/model.pt] [--ratings 30] [--threads 1]
        [--json OUT]

Loads the sample data and its checkpoint (or trains a quick model when there is none), fits the
playground's baselines on the model's training users, then times, for a held-out persona, every
"Add next rating" (which also extends the learning curve) and a manual "Rate this item", each
including the recommendation rows the page shows. Prints median and p95 in milliseconds. Target:
p95 < 300 ms on the sample data (2-core CPU).
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

from metarec_core import playground as pg  # noqa: E402
from metarec_core.data import load_ratings  # noqa: E402
from metarec_core.jobs import split_users  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(ROOT / "sample_data" / "ratings.csv"))
    p.add_argument("--items", default=str(ROOT / "sample_data" / "items.csv"))
    p.add_argument("--model", default=str(ROOT / "sample_data" / "model.pt"))
    p.add_argument("--ratings", type=int, default=30, help="persona ratings to add, one at a time")
    p.add_argument("--quick-steps", type=int, default=300, help="steps when there is no checkpoint")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (the app uses 1)")
    p.add_argument("--json", help="write the numbers here")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)

    data = load_ratings(args.data, items=args.items)
    t0 = time.perf_counter()
    if Path(args.model).exists():
        from metarec_core.checkpoint import load_checkpoint

        loaded = load_checkpoint(args.model, data)
        model, seed, source = loaded.learner, int(loaded.config.get("seed", 0)), args.model
    else:
        from metarec_core.learners import make_learner

        seed = 0
        train, val = split_users(data, seed)
        model = make_learner("metasgd", steps=args.quick_steps, device="cpu").fit(data, train, val)
        source = f"quick metasgd, {args.quick_steps} steps"
    t_model = time.perf_counter() - t0
    train, val = split_users(data, seed)

    t0 = time.perf_counter()
    baselines = pg.fit_baselines(data, train, val)
    t_baselines = time.perf_counter() - t0
    t0 = time.perf_counter()
    projection = pg.fit_projection(model, data, train)
    t_projection = time.perf_counter() - t0

    user = int(pg.heldout_candidates(data, val)[0])
    persona = pg.heldout_persona(data, user)
    session = pg.PlaygroundSession(
        data, model, model_name="meta", baselines=baselines, projection=projection
    )
    session.set_persona(persona)
    n = min(args.ratings, len(persona.reveal_items))
    persona_ms = []
    for _ in range(n):
        t0 = time.perf_counter()
        session.add_next()
        session.recommendation_rows()
        persona_ms.append(1000 * (time.perf_counter() - t0))

    session.set_persona(None)
    manual_ms = []
    for item in pg.search_items(data, limit=n):
        t0 = time.perf_counter()
        session.add_rating(int(item), 4.0)
        session.recommendation_rows()
        manual_ms.append(1000 * (time.perf_counter() - t0))

    def stats(x: list[float]) -> dict:
        return {"median": float(np.median(x)), "p95": float(np.percentile(x, 95)), "n": len(x)}

    out = {
        "dataset": {"users": data.n_users, "items": data.n_items, "ratings": data.n_ratings},
        "model": source,
        "torch_threads": args.threads,
        "persona_update_ms": stats(persona_ms),
        "manual_update_ms": stats(manual_ms),
        "one_time_s": {"model": t_model, "baselines": t_baselines, "projection": t_projection},
    }
    print(json.dumps(out, indent=2))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
