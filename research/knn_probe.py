"""Probe: does item-item similarity of the support add anything over the MF fold-in?

A metric- or attention-based component beside the gradient-based inner loop would predict a
query item from the user's ratings of *similar* support items. Before building one into the
meta-learner, this measures the signal it would exploit, with the classic neighbourhood
correction on top of `mf_foldin` (Koren's integrated model, at test time only)::

    r̂_uq = mf_uq + alpha * Σ_j s⁺_qj (r_uj − mf_uj) / (Σ_j s⁺_qj + c)        j in the support

where mf is the fold-in prediction, s⁺ the positive part of a shrunk Pearson similarity of the
training users' baseline residuals r − mu − b_i − b_u (shrinkage n_co / (n_co + 100)). alpha and
c are tuned per k on each fold's validation users; the test users' MAE is compared with the
plain fold-in, pooled over folds, with a paired bootstrap 95% CI::

    python -m research.knn_probe [--folds 0,1,2,3,4] [--json research/out/knn_probe.json]
"""

from __future__ import annotations

import itertools
import sys

import numpy as np

from metarec_core.evaluation.metrics import paired_bootstrap_ci
from metarec_core.methods.baselines import MFFoldIn
from metarec_core.protocol.tasks import make_tasks
from research.probe_setup import FoldFit, K, fitted_folds, load, parse, write_json

ALPHAS = (0.25, 0.5, 1.0)
CS = (0.5, 2.0, 5.0)
SHRINK = 100.0


def similarity(ff: FoldFit, n_items: int) -> np.ndarray:
    """(n_items, n_items) shrunk Pearson similarity of baseline residuals, diagonal 0."""
    mf, row, i = ff.mf, ff.row, ff.item
    res = ff.rating - mf.global_mean_ - mf.item_bias_[i] - mf.user_bias_[row]
    R = np.zeros((len(ff.train), n_items))
    M = np.zeros_like(R)
    R[row, i], M[row, i] = res, 1.0
    num = R.T @ R
    den = np.sqrt(((R**2).T @ M) * (M.T @ (R**2)))
    n_co = M.T @ M
    s = num / np.maximum(den, 1e-9) * n_co / (n_co + SHRINK)
    np.fill_diagonal(s, 0.0)
    return np.maximum(s, 0.0)


def per_user_mae(mf: MFFoldIn, sim: np.ndarray, tasks, k: int) -> dict[tuple, np.ndarray]:
    """Per-user query MAE of the fold-in (key ()) and of each (alpha, c) correction."""
    sup = [t.support(k) for t in tasks]
    scores = mf.score_many(sup)  # clipped fold-in predictions over the catalogue
    lo, hi = mf.scale_.low, mf.scale_.high
    out: dict[tuple, list[float]] = {(): []}
    for b, t in enumerate(tasks):
        (si, sr), (qi, qr) = sup[b], t.query
        base = scores[b]
        w = sim[np.ix_(qi, si)]
        num, den = w @ (sr - base[si]), w.sum(1)
        out[()].append(float(np.abs(base[qi] - qr).mean()))
        for a, c in itertools.product(ALPHAS, CS):
            pred = np.clip(base[qi] + a * num / (den + c), lo, hi)
            out.setdefault((a, c), []).append(float(np.abs(pred - qr).mean()))
    return {key: np.asarray(v) for key, v in out.items()}


def main(argv: list[str] | None = None) -> int:
    args = parse(__doc__, argv)
    data = load()
    if data is None:
        return 2
    base = {k: [] for k in K}
    knn = {k: [] for k in K}
    chosen = {k: [] for k in K}
    for ff in fitted_folds(data, args.folds):
        sim = similarity(ff, data.n_items)
        test, _ = make_tasks(data, ff.fold.test_users, query=10, min_support=max(K), seed=0)
        val, _ = make_tasks(data, ff.fold.val_users, query=10, min_support=1, seed=0)
        for k in K:
            v = per_user_mae(ff.mf, sim, [t for t in val if t.n_available >= k], k)
            best = min((key for key in v if key), key=lambda key: v[key].mean())
            te = per_user_mae(ff.mf, sim, test, k)
            base[k].append(te[()])
            knn[k].append(te[best])
            chosen[k].append(list(best))
        print(
            f"fold {ff.fold.index}: alpha, c chosen on validation users: "
            f"{[chosen[k][-1] for k in K]}"
        )
    report = {"k": list(K), "folds": args.folds, "chosen": chosen, "rows": []}
    print("k   mf_foldin  + neighbours  difference [95% CI]")
    for k in K:
        b, n = np.concatenate(base[k]), np.concatenate(knn[k])
        d, lo, hi = paired_bootstrap_ci(n, b)
        report["rows"].append(
            {"k": k, "mf_foldin": b.mean(), "knn": n.mean(), "diff": d, "ci": [lo, hi]}
        )
        print(f"{k:<3d} {b.mean():.4f}     {n.mean():.4f}        {d:+.4f} [{lo:+.4f}, {hi:+.4f}]")
    write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
