"""Time of one onboarding proposal (the playground's "Ask me" mode) per strategy.

    python bench/elicitation_latency.py [--data RATINGS --items ITEMS] [--model CKPT]
        [--quick-steps 30] [--questions 20] [--threads 1] [--json OUT]

Loads a dataset (the sample by default) and its checkpoint, or trains a quick metasgd
(`--quick-steps` meta-steps without warm start or pretraining: the network has the default
size, so one adaptation costs what a full model's does), plus mf_foldin_levels. For each model
and strategy it times building the strategy (once per session: item statistics, MeLU's
gradients) and each proposal of a `--questions`-question interview of the validation user with the most ratings, who
answers with their real rating when they rated the item, else "haven't seen it" (median, p95,
max in ms; target: under 300 ms on a 2-core CPU).
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

from metarec_core.data.io import load_ratings  # noqa: E402
from metarec_core.elicitation import (  # noqa: E402
    Answers,
    ElicitContext,
    available_strategies,
    make_strategy,
)
from metarec_core.methods.registry import make_method  # noqa: E402
from metarec_core.protocol.splits import split_users  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(ROOT / "sample_data" / "ratings.csv"))
    p.add_argument("--items", default=None)
    p.add_argument("--model", default=None, help="checkpoint of the meta-learner")
    p.add_argument("--quick-steps", type=int, default=30)
    p.add_argument("--questions", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    items = args.items
    if items is None and args.data.endswith("sample_data/ratings.csv"):
        items = str(ROOT / "sample_data" / "items.csv")
    data = load_ratings(args.data, items=items)
    train, val = split_users(data, 0)
    models = {}
    if args.model:
        from metarec_core.checkpoint import load_checkpoint

        models[f"checkpoint {Path(args.model).name}"] = load_checkpoint(args.model, data).learner
    else:
        from metarec_core.methods.meta import make_learner

        learner = make_learner(
            "metasgd", steps=args.quick_steps, warm_start=False, pretrain=False, device="cpu"
        )
        models[f"quick metasgd ({args.quick_steps} steps)"] = learner.fit(data, train, val)
    models["mf_foldin_levels"] = make_method("mf_foldin_levels", seed=0).fit(data, train, val)
    held = np.asarray(val)  # never trained on (tuning only): timing, not accuracy
    counts = np.bincount(data.user, minlength=data.n_users)
    user = int(held[np.argmax(counts[held])])
    mine = data.user == user
    pool = dict(
        zip(data.item[mine].tolist(), data.rating[mine].astype(float).tolist(), strict=True)
    )
    out = []
    print(f"{data.source}: {data.n_users} users, {data.n_items} items; validation user {user} (never trained on)")
    print(f"{'model':<32}{'strategy':<16}{'build ms':>9}{'median':>8}{'p95':>8}{'max':>8}")
    for label, model in models.items():
        t0 = time.perf_counter()
        ctx = ElicitContext.build(data, model, train)
        stats_ms = 1000 * (time.perf_counter() - t0)
        for name in available_strategies():
            t0 = time.perf_counter()
            strat = make_strategy(name, ctx)
            build = 1000 * (time.perf_counter() - t0) + stats_ms
            answers, times = Answers(), []
            for _ in range(args.questions):
                t0 = time.perf_counter()
                prop = strat.propose(answers)
                times.append(1000 * (time.perf_counter() - t0))
                answers = answers.add(prop.item, pool.get(prop.item))
            t = np.array(times)
            row = dict(
                model=label,
                strategy=name,
                build_ms=build,
                median_ms=float(np.median(t)),
                p95_ms=float(np.percentile(t, 95)),
                max_ms=float(t.max()),
                answered=answers.n_answered,
            )
            out.append(row)
            print(
                f"{label:<32}{name:<16}{build:>9.0f}{row['median_ms']:>8.1f}"
                f"{row['p95_ms']:>8.1f}{row['max_ms']:>8.1f}"
            )
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
