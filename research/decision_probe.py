"""Would the default learner gain from the MF baseline's level decision? (issue 14, MeLU row)

`mf_foldin_levels` cuts its predictions into star levels with thresholds tuned for MAE on the
validation users; `metasgd` predicts the median of its ordinal output. This probe fits
`metasgd` (and `mf_foldin_levels`, for reference) on one split, tunes thresholds on the
learner's *expected* rating over its own validation episodes (as the baseline tunes its own),
and compares the test MAE of the median with that of the thresholds, per user, on the same
test tasks: the MeLU protocol's split (support = all but 10 ratings) or fold 0 of the k-shot
protocol's 5. Run from the repository root::

    python -m research.decision_probe ../shared/datasets/ml-100k/u.data --items ../shared/datasets/ml-100k/u.item --protocol melu
    python -m research.decision_probe ../shared/datasets/ml-100k/u.data --items ../shared/datasets/ml-100k/u.item --protocol kshot
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from metarec_core.data.io import load_ratings
from metarec_core.evaluation.runner import VAL_FRACTION
from metarec_core.methods.baselines.levels import level_grid, snap_to_levels, tune_level_thresholds
from metarec_core.methods.registry import make_method
from metarec_core.protocol.splits import melu_split, user_folds
from metarec_core.protocol.tasks import MELU_QUERY, make_tasks
from metarec_core.runtime import limit_torch_threads

KSHOT = (1, 3, 5, 10, 20)


def _expected_and_point(learner, supports, queries) -> tuple[list, list]:
    """Per task: the learner's expected rating and its point prediction of the query items."""
    items = [q[0] for q in queries]
    width = max(len(i) for i in items)
    padded = np.stack([np.pad(i, (0, width - len(i))) for i in items])
    expected = learner.display_many(supports, padded)
    point = learner.predict_batch(supports, items)
    return (
        [expected[j, : len(i)] for j, i in enumerate(items)],
        [point[j, : len(i)] for j, i in enumerate(items)],
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("ratings")
    p.add_argument("--items", default=None)
    p.add_argument("--protocol", choices=("melu", "kshot"), default="melu")
    args = p.parse_args(argv)
    limit_torch_threads()  # as the CLI: 1 thread unless METAREC_TORCH_THREADS says otherwise
    data = load_ratings(args.ratings, items=args.items)
    grid = level_grid(data.scale)
    if grid is None:
        raise SystemExit("the probe needs a scale with a few discrete levels")
    low, step, levels = grid
    if args.protocol == "melu":
        fold, _ = melu_split(data, 0, VAL_FRACTION)
    else:
        fold = user_folds(data, 5, 0, VAL_FRACTION)[0]
    t0 = time.perf_counter()
    learner = make_method("metasgd", seed=0, device="cpu")
    learner.fit(data, fold.train_users, fold.val_users)
    mf = make_method("mf_foldin_levels", seed=0).fit(data, fold.train_users, fold.val_users)
    print(f"fitted in {time.perf_counter() - t0:.0f} s")

    exp_v, point_v, true_v = [], [], []
    for sup, qry, _ in learner._val_episodes(data, learner._validation_users(fold.val_users)):
        e, pt = _expected_and_point(learner, sup, qry)
        exp_v += e
        point_v += pt
        true_v += [q[1] for q in qry]
    ev, pv, tv = (np.concatenate(x) for x in (exp_v, point_v, true_v))
    th = tune_level_thresholds(ev, tv, low, step, levels)
    snapped = snap_to_levels(ev, th, low, step)
    print(
        f"validation ratings {len(tv)}: median {np.abs(pv - tv).mean():.4f}, "
        f"thresholds {np.abs(snapped - tv).mean():.4f}"
    )

    ks: tuple[int | None, ...] = (None,) if args.protocol == "melu" else KSHOT
    tasks, _ = make_tasks(
        data, fold.test_users, query=MELU_QUERY, min_support=3 if ks == (None,) else max(ks)
    )
    print("k | users | median | thresholds | thresholds - median [95% CI] | mf_foldin_levels")
    rng = np.random.default_rng(0)
    for k in ks:
        sup = [t.support(k) for t in tasks]
        qry = [t.query for t in tasks]
        e, pt = _expected_and_point(learner, sup, qry)
        scores = mf.score_many(sup)
        med = np.array([np.abs(pt[j] - q[1]).mean() for j, q in enumerate(qry)])
        thr = np.array(
            [np.abs(snap_to_levels(e[j], th, low, step) - q[1]).mean() for j, q in enumerate(qry)]
        )
        base = np.array([np.abs(scores[j, q[0]] - q[1]).mean() for j, q in enumerate(qry)])
        d = thr - med
        boot = [d[rng.integers(0, len(d), len(d))].mean() for _ in range(2000)]
        lo, hi = np.percentile(boot, [2.5, 97.5])
        label = "all" if k is None else k
        print(
            f"{label} | {len(tasks)} | {med.mean():.4f} | {thr.mean():.4f} | "
            f"{d.mean():+.4f} [{lo:+.4f}, {hi:+.4f}] | {base.mean():.4f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
