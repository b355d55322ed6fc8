"""Probe: are some items' ratings better evidence about a new user than others?

A meta-learned weight per support item in the inner loop (something `finetune`, which has no
inner loop in training, could not learn) would let an informative rating move the user state
more than a noisy one. Before building it, this measures what it could buy on the MF fold-in:
each item's noise variance is its mean squared residual on the training ratings, shrunk
towards the global one with a pseudo-count a (a = 0: no shrinking), and the fold-in weights
each support rating by 1 / variance (exact Bayesian fold-in under heteroscedastic noise,
single Gaussian prior as in `research.prior_probe`), against one noise variance for all items.
Pooled over folds, paired bootstrap 95% CI::

    python -m research.noise_probe [--folds 0,1,2,3,4] [--json research/out/noise_probe.json]
"""

from __future__ import annotations

import sys

import numpy as np

from metarec_core.evaluation.metrics import paired_bootstrap_ci
from metarec_core.protocol.tasks import make_tasks
from research.probe_setup import K, fitted_folds, load, parse, write_json

PSEUDO_COUNTS = (0, 5, 20, 80)


def fold_in(mf, mean, prec, var, support, query_items) -> np.ndarray:
    """Posterior-mean predictions (clipped) with per-item noise variances `var`."""
    si, sr = support
    g, bi, q = mf.global_mean_, mf.item_bias_, mf.item_factors_
    xs = np.hstack([q[si], np.ones((len(si), 1))])
    xw = xs / var[si, None]
    post = np.linalg.solve(xw.T @ xs + prec, xw.T @ (sr - g - bi[si]) + prec @ mean)
    xq = np.hstack([q[query_items], np.ones((len(query_items), 1))])
    return np.clip(g + bi[query_items] + xq @ post, mf.scale_.low, mf.scale_.high)


def main(argv: list[str] | None = None) -> int:
    args = parse(__doc__, argv)
    data = load()
    if data is None:
        return 2
    names = ("one variance", *PSEUDO_COUNTS)
    errs: dict = {a: {k: [] for k in K} for a in names}
    for ff in fitted_folds(data, args.folds):
        mf, states, noise = ff.mf, ff.states, ff.noise
        count = np.bincount(ff.item, minlength=data.n_items)
        sq = np.bincount(ff.item, ff.residuals**2, minlength=data.n_items)
        mean = states.mean(0)
        prec = np.linalg.inv(np.cov(states.T) + 1e-3 * np.eye(states.shape[1]))
        test, _ = make_tasks(data, ff.fold.test_users, query=10, min_support=max(K), seed=0)
        for a in names:
            if a == "one variance":
                var = np.full(data.n_items, noise)
            else:  # items without training ratings (a = 0) fall back to the global variance
                var = np.where(count + a > 0, (sq + a * noise) / np.maximum(count + a, 1), noise)
                var = np.maximum(var, 1e-3)
            for k in K:
                e = [
                    np.abs(
                        fold_in(mf, mean, prec, var, t.support(k), t.query[0]) - t.query[1]
                    ).mean()
                    for t in test
                ]
                errs[a][k].append(np.array(e))
        print(f"fold {ff.fold.index}: global noise variance {noise:.3f}", flush=True)
    rows = []
    print("k   one var. " + "  ".join(f"a={a}: diff [95% CI]" for a in PSEUDO_COUNTS))
    for k in K:
        base = np.concatenate(errs["one variance"][k])
        row, line = {"k": k, "one variance": base.mean()}, f"{k:<3d} {base.mean():.4f}  "
        for a in PSEUDO_COUNTS:
            d, lo, hi = paired_bootstrap_ci(np.concatenate(errs[a][k]), base)
            row[f"a={a} - one variance"] = [d, lo, hi]
            line += f"  {d:+.4f} [{lo:+.4f}, {hi:+.4f}]"
        rows.append(row)
        print(line)
    write_json(args.json, {"folds": args.folds, "users": len(base), "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
