"""How much of the meta-learner's MAE lead is the median decision itself? (diagnostic, one fold)

The default learners predict the median of an ordinal distribution, the Bayes-optimal point
under absolute error; the baselines predict means. This script gives the baselines the same
kind of decision: their predictions are cut into the scale's levels at thresholds tuned on the
fold's validation users (never test users), and both versions are scored on the test users.
Usage::

    python bench/median_decomposition.py          # all 5 folds (FOLD=0 for one)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from metarec_core import baselines  # noqa: E402
from metarec_core.data import load_ratings  # noqa: E402
from metarec_core.tasks import make_tasks, user_folds  # noqa: E402

ML = os.environ.get("ML100K", "/work/shared/datasets/ml-100k")
K = (1, 3, 5, 10, 20)


def cut(x: np.ndarray, thresholds: np.ndarray, low: float, step: float) -> np.ndarray:
    return low + step * (x[..., None] > thresholds).sum(-1)


def tune_thresholds(pred: np.ndarray, true: np.ndarray, low: float, step: float, levels: int):
    """Coordinate search of the level thresholds minimising MAE (starting at plain rounding)."""
    th = low + step * (np.arange(levels - 1) + 0.5)
    for _ in range(3):
        for c in range(levels - 1):
            best = None
            for d in np.linspace(-0.6, 0.6, 49) * step:
                t2 = th.copy()
                t2[c] = low + step * (c + 0.5) + d
                if np.any(np.diff(t2) <= 0):
                    continue
                e = np.abs(cut(pred, t2, low, step) - true).mean()
                if best is None or e < best[0]:
                    best = (e, t2)
            th = best[1]
    return th


def main() -> None:
    torch.set_num_threads(1)
    data = load_ratings(f"{ML}/u.data", items=f"{ML}/u.item")
    which = os.environ.get("FOLD", "all")
    folds = user_folds(data, 5, 0)
    folds = folds if which == "all" else [folds[int(which)]]
    low, step = data.scale.low, data.scale.step
    levels = round((data.scale.high - low) / step) + 1
    # per-user MAE over the folds' test users, as in the evaluate report: (name, k) -> list
    raw_err: dict[tuple[str, int], list[float]] = {}
    med_err: dict[tuple[str, int], list[float]] = {}
    for fold in folds:
        test, _ = make_tasks(data, fold.test_users, query=10, min_support=max(K), seed=0)
        val, _ = make_tasks(data, fold.val_users, query=10, min_support=1, seed=0)
        for name in ("user_bias", "mf_foldin"):
            m = baselines.BASELINE_CLASSES[name](seed=0).fit(data, fold.train_users, fold.val_users)
            pred, true = [], []
            for k in K:
                ok = [t for t in val if t.n_available >= k]
                S = m.score_many([t.support(k) for t in ok])
                for b, t in enumerate(ok):
                    pred.append(S[b][t.query[0]])
                    true.append(t.query[1])
            th = tune_thresholds(np.concatenate(pred), np.concatenate(true), low, step, levels)
            for k in K:
                S = m.score_many([t.support(k) for t in test])
                for b, t in enumerate(test):
                    q_items, q_true = t.query
                    raw_err.setdefault((name, k), []).append(np.abs(S[b][q_items] - q_true).mean())
                    med = cut(S[b][q_items], th, low, step)
                    med_err.setdefault((name, k), []).append(np.abs(med - q_true).mean())
    print(f"folds: {which}; mean per-user MAE, mean prediction -> median decision (tuned cuts)")
    for name in ("user_bias", "mf_foldin"):
        row = [
            f"k={k}: {np.mean(raw_err[name, k]):.4f} -> {np.mean(med_err[name, k]):.4f}" for k in K
        ]
        print(f"{name:9s} " + "  ".join(row))


if __name__ == "__main__":
    main()
