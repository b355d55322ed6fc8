"""How much of the meta-learner's MAE lead is the median decision itself? (diagnostic, one fold)

The default learners predict the median of an ordinal distribution, the Bayes-optimal point
under absolute error; the baselines predict means. This script gives the baselines the same
kind of decision: their predictions are cut into the scale's levels at thresholds tuned on the
fold's validation users (never test users), and both versions are scored on the test users.
Usage::

    FOLD=0 python bench/median_decomposition.py
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
    fi = int(os.environ.get("FOLD", "0"))
    fold = user_folds(data, 5, 0)[fi]
    low, step = data.scale.low, data.scale.step
    levels = round((data.scale.high - low) / step) + 1
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
        row = []
        for k in K:
            S = m.score_many([t.support(k) for t in test])
            raw = np.mean(
                [np.abs(S[b][t.query[0]] - t.query[1]).mean() for b, t in enumerate(test)]
            )
            med = np.mean(
                [
                    np.abs(cut(S[b][t.query[0]], th, low, step) - t.query[1]).mean()
                    for b, t in enumerate(test)
                ]
            )
            row.append(f"k={k}: {raw:.4f} -> {med:.4f}")
        print(f"fold {fi} {name:9s} thresholds {np.round(th, 2)}  " + "  ".join(row))


if __name__ == "__main__":
    main()
