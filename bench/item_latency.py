"""Server-side cost of the new-item page ("A new item arrives"): its one-time set-up and each update.

    python bench/item_latency.py [--data RATINGS --items ITEMS] [--saved DIR]
        [--learner-steps N] [--ratings 20] [--threads 1] [--blas-threads 1] [--json OUT]

Loads a dataset (the sample by default) and sets up the page's models as the page does:
- the one-time set-up: with `--saved DIR` (the sample's `sample_data/item_models`), reading the
  saved models (`item_session.load_models`) and making their maps of the training items, which
  is what the app does on the sample's first visit; without it, fitting every model of the page
  (`item_session.fit_item_models`, each one's time) and the maps, which is what the page's
  background jobs do on other data. `--learner-steps N` caps the item learner's meta-steps
  (its cost per update is that of a full one; its accuracy is not);
- every update after a rating, as the page computes it (median and p95 in ms; target: p95 <
  300 ms on ML-100K-sized data, 2-core CPU): the session's view (each model's predictions of
  every user, its item state, the audiences), the audience records shown, the distribution of
  every model's predictions, the item's path on the learner's map and the models' agreement:
  for a held-out item's replayed ratings ("Add next rating", Play), then for a described item's
  ratings by a taste persona and by hand.
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

from bench.playground_latency import (  # noqa: E402
    add_thread_args,
    dataset_record,
    limit_threads,
    stats,
)
from metarec_core.data.io import load_ratings  # noqa: E402
from metarec_core.interactive import item_session as isn  # noqa: E402
from metarec_core.interactive import personas  # noqa: E402


def page_update(s: isn.ItemSession) -> None:
    """What the page draws after a change, besides the change itself (`ItemSession._refresh`)."""
    names = s.models.names
    shown = next((n for n in names if isn.is_learner(n)), names[0])
    s.audience(shown)
    for name in names:
        s.distribution(name)
        s.agreement(name, shown)
    on_map = shown if shown in s.models.mapped else (s.models.mapped or (None,))[0]
    if on_map is not None:
        s.map_path(on_map)


def timed(change, s: isn.ItemSession) -> float:
    """Milliseconds of `change()` and the page's update after it."""
    t0 = time.perf_counter()
    change()
    page_update(s)
    return 1000 * (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(ROOT / "sample_data" / "ratings.csv"))
    p.add_argument("--items", default=str(ROOT / "sample_data" / "items.csv"))
    p.add_argument("--saved", help="read the page's saved models from this folder (no fit)")
    p.add_argument("--learner-steps", type=int, help="cap the item learner's meta-steps")
    p.add_argument("--ratings", type=int, default=20, help="ratings per kind of update")
    add_thread_args(p)
    p.add_argument("--json", help="write the numbers here")
    args = p.parse_args(argv)
    limit_threads(args)

    t0 = time.perf_counter()
    data = load_ratings(args.data, items=args.items or None)
    t_data = time.perf_counter() - t0
    setup: dict[str, object] = {"load_data_s": t_data}
    t0 = time.perf_counter()
    if args.saved:
        models = isn.load_models(data, args.saved, seed=0)
        if models is None:
            raise SystemExit(f"no saved models of the page in {args.saved}")
        setup["read_saved_models_s"] = time.perf_counter() - t0
        source = f"saved ({args.saved})"
    else:
        settings = {} if args.learner_steps is None else {"steps": args.learner_steps}
        models = isn.fit_item_models(data, seed=0, settings=settings)
        setup["fit_s"] = dict(models.fit_seconds)
        source = "fitted here" + (
            f", learner capped at {args.learner_steps} steps" if args.learner_steps else ""
        )
    t1 = time.perf_counter()
    for name in models.mapped:  # made by fit_item_models already: then a cache hit
        models.item_map(name, data)
    setup["maps_s"] = time.perf_counter() - t1
    setup["total_s"] = time.perf_counter() - t0 + t_data

    item = int(isn.heldout_items(data, models.fold)[0])
    t0 = time.perf_counter()
    s = isn.ItemSession.held_out(data, models, item)
    page_update(s)
    first_ms = 1000 * (time.perf_counter() - t0)
    n = min(args.ratings, s.replay_left())
    replay_ms = [timed(s.add_next, s) for _ in range(n)]

    genres = list(data.items.genre_names) if data.items is not None else []
    d = isn.ItemSession.described(data, models, "A new film (2026)", genres[:1])
    likes = personas.suggest_tastes(data, 1)
    persona_ms = (
        [timed(lambda: d.add_persona_rating(*likes[0]), d) for _ in range(n)] if likes else []
    )
    hand_ms = []
    for user in np.argsort(-data.counts_per_user(), kind="stable"):
        if len(hand_ms) == n:
            break
        if d.can_rate(int(user)):
            hand_ms.append(timed(lambda u=int(user): d.add_rating(u, data.scale.high), d))

    out = {
        "dataset": dataset_record(data),
        "models": source,
        "names": list(models.names),
        "torch_threads": args.threads,
        "blas_threads": args.blas_threads or "BLAS default",
        "setup_s": setup,
        "first_view_ms": first_ms,
        "update_ms": {
            "replayed rating": stats(replay_ms),
            "persona rating": stats(persona_ms) if persona_ms else None,
            "rating by hand": stats(hand_ms),
        },
    }
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
