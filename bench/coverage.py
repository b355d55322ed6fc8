"""Coverage of the prediction intervals on the k-shot protocol's test users.

    python bench/coverage.py --data RATINGS [--items ITEMS]
        [--methods metasgd,user_bias_levels,...] [--support 1,3,5,10,20] [--query 10]
        [--folds 5] [--max-folds F] [--seed 0] [--json OUT]

For each fold of `evaluate`'s k-shot protocol (the same user folds, validation users and
seeded task order) and each method: fit on the fold's training users, then, for every test
user and support size k, the 50%, 80% and 90% intervals of the hidden query ratings
(`metarec_core.evaluation.intervals`): where the method has a predictive distribution, its
raw central intervals (source "distribution") and those calibrated on the fold's validation
users ("calibrated distribution"); for every rating predictor, meta-learners included,
split-conformal intervals from its residuals there ("conformal"), so the sources can be
compared on the same model. Reports the share of hidden ratings inside each interval
(with a 95% bootstrap CI over test users) and the mean width. `--max-folds F` runs only the
first F of the `--folds` folds (a loaded machine); the report says how many ran.
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
from metarec_core.evaluation import intervals as iv  # noqa: E402
from metarec_core.evaluation.runner import VAL_FRACTION  # noqa: E402
from metarec_core.methods.registry import make_method  # noqa: E402
from metarec_core.protocol.splits import user_folds  # noqa: E402
from metarec_core.protocol.tasks import make_tasks  # noqa: E402

DEFAULT_METHODS = "metasgd,user_bias_levels,mf_foldin_levels,user_bias,mf_foldin,item_mean"
N_BOOT = 1000


def boot_ci(inside: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """95% percentile CI of the mean of per-user coverages (`inside`: (users, query) bools)."""
    per_user = inside.mean(1)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(per_user), size=(N_BOOT, len(per_user)))
    means = per_user[idx].mean(1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--items")
    p.add_argument("--methods", default=DEFAULT_METHODS)
    p.add_argument("--support", default="1,3,5,10,20")
    p.add_argument("--query", type=int, default=10)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--max-folds", type=int, help="run only the first F folds")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", help="write the figures here")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    data = load_ratings(args.data, items=args.items)
    ks = sorted({int(k) for k in args.support.split(",")})
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    folds = user_folds(data, args.folds, args.seed, VAL_FRACTION)[: args.max_folds]
    # (method, source) -> k -> coverage -> list of (users, query) bool arrays / widths
    inside: dict[tuple[str, str], dict[int, dict[float, list[np.ndarray]]]] = {}
    width: dict[tuple[str, str], dict[int, dict[float, list[np.ndarray]]]] = {}
    fit_s: dict[str, list[float]] = {}
    n_users = 0
    t_all = time.perf_counter()
    for fold in folds:
        tasks, _ = make_tasks(
            data, fold.test_users, query=args.query, min_support=max(ks), seed=args.seed
        )
        n_users += len(tasks)
        qi = np.stack([t.query[0] for t in tasks]).astype(np.int64)
        qr = np.stack([t.query[1] for t in tasks]).astype(np.float64)
        for name in methods:
            t0 = time.perf_counter()
            model = make_method(name, seed=args.seed, device=args.device)
            model.fit(data, fold.train_users, fold.val_users)
            res = iv.calibrate(model, data, fold.val_users, ks=[0, *ks], query=args.query)
            fit_s.setdefault(name, []).append(time.perf_counter() - t0)
            # (calibration, use the distribution): a distribution raw, then calibrated, then
            # conformal around the displayed rating (every rating predictor)
            ways = [(res, False)]
            if model.capabilities.distribution:
                ways = [(None, True), (res, True), *ways]
            for cal, use_dist in ways:
                for k in ks:
                    supports = [t.support(k) for t in tasks]
                    got = iv.intervals_at(
                        model, supports, iv.COVERAGES, cal, scale=data.scale,
                        use_distribution=use_dist,
                    )  # fmt: skip
                    if got is None:
                        continue
                    for c, band in got.items():
                        lo = np.take_along_axis(band.low, qi, 1)
                        hi = np.take_along_axis(band.high, qi, 1)
                        key = (name, band.source)
                        inside.setdefault(key, {}).setdefault(k, {}).setdefault(c, [])
                        width.setdefault(key, {}).setdefault(k, {}).setdefault(c, [])
                        inside[key][k][c].append((lo <= qr) & (qr <= hi))
                        width[key][k][c].append(hi - lo)
            print(
                f"fold {fold.index + 1}/{len(folds)} {name}: {fit_s[name][-1]:.1f} s",
                file=sys.stderr,
            )
    rows = []
    for (name, source), by_k in inside.items():
        for k, by_c in by_k.items():
            row = {"method": name, "source": source, "k": k}
            for c, parts in by_c.items():
                a = np.concatenate(parts)
                lo, hi = boot_ci(a, args.seed)
                row[f"cover{round(100 * c)}"] = float(a.mean())
                row[f"cover{round(100 * c)}_ci"] = [lo, hi]
                row[f"width{round(100 * c)}"] = float(
                    np.concatenate(width[(name, source)][k][c]).mean()
                )
            rows.append(row)
    out = {
        "dataset": {"source": data.source, "users": data.n_users, "items": data.n_items},
        "protocol": {
            "support": ks,
            "query": args.query,
            "folds_run": len(folds),
            "folds": args.folds,
            "seed": args.seed,
            "test_users": n_users,
        },
        "fit_and_calibrate_s": {m: float(np.sum(v)) for m, v in fit_s.items()},
        "wall_s": time.perf_counter() - t_all,
        "rows": rows,
    }
    print(json.dumps(out, indent=1))
    print(table(rows), file=sys.stderr)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


def table(rows: list[dict]) -> str:
    """A markdown table: coverage of the 50/80/90% intervals (80%: with its CI) and widths."""
    lines = [
        "| method | source | k | 50% | 80% [95% CI] | 90% | width 80% |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lo, hi = r["cover80_ci"]
        lines.append(
            f"| {r['method']} | {r['source']} | {r['k']} | {r['cover50']:.3f} | "
            f"{r['cover80']:.3f} [{lo:.3f}, {hi:.3f}] | {r['cover90']:.3f} | {r['width80']:.2f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
