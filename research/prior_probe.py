"""Probe: does a multimodal prior over user states help a new user more than one Gaussian?

Memory- and cluster-based meta-learners (MAMO's user memories, TaNP's task clusters) give the
new user a prior with several modes, so a few ratings can pick the user's kind. Before building
one, this measures what such a prior buys at each k on the MF fold-in's user states: a Gaussian
mixture with M components fitted by EM to the training users' ALS states (p_u, b_u), and the
exact Bayesian fold-in of a new user under it (each component's ridge posterior, weighted by
its marginal likelihood of the support ratings; noise variance = training residual variance).
M = 1 is the single Gaussian with the users' full covariance; test MAE of M = 2, 4, 8 is
compared with it, pooled over folds, with a paired bootstrap 95% CI::

    python -m research.prior_probe [--folds 0,1,2,3,4] [--json research/out/prior_probe.json]
"""

from __future__ import annotations

import sys

import numpy as np

from metarec_core.evaluation.metrics import paired_bootstrap_ci
from metarec_core.methods.baselines import MFFoldIn
from metarec_core.protocol.tasks import make_tasks
from research.probe_setup import K, fitted_folds, load, parse, write_json

COMPONENTS = (1, 2, 4, 8)


def log_normal(x: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """log N(x_n; mean, cov) for the rows of x."""
    chol = np.linalg.cholesky(cov)
    z = np.linalg.solve(chol, (x - mean).T)
    d = x.shape[1]
    return -0.5 * (z**2).sum(0) - np.log(np.diag(chol)).sum() - 0.5 * d * np.log(2 * np.pi)


def fit_mixture(states: np.ndarray, m: int, seed: int = 0, iters: int = 100, ridge: float = 1e-3):
    """(weights (M,), means (M, d), covariances (M, d, d)) of a full-covariance GMM by EM."""
    rng = np.random.default_rng(seed)
    n, d = states.shape
    means = states[rng.choice(n, m, replace=False)]
    covs = np.repeat(np.cov(states.T)[None] + ridge * np.eye(d), m, 0)
    weights = np.full(m, 1.0 / m)
    for _ in range(iters):
        ll = np.stack([log_normal(states, means[c], covs[c]) for c in range(m)], 1)
        ll += np.log(weights)
        resp = np.exp(ll - ll.max(1, keepdims=True))
        resp /= resp.sum(1, keepdims=True)
        nk = resp.sum(0) + 1e-9
        weights, means = nk / n, (resp.T @ states) / nk[:, None]
        for c in range(m):
            dev = states - means[c]
            covs[c] = (resp[:, c, None] * dev).T @ dev / nk[c] + ridge * np.eye(d)
    return weights, means, covs


def fold_in(mf: MFFoldIn, prior, noise: float, support, query_items) -> np.ndarray:
    """Posterior-mean predictions of the query items under the mixture prior (clipped)."""
    weights, means, covs = prior
    si, sr = support
    g, bi, q = mf.global_mean_, mf.item_bias_, mf.item_factors_
    xs = np.hstack([q[si], np.ones((len(si), 1))])
    xq = np.hstack([q[query_items], np.ones((len(query_items), 1))])
    y = sr - g - bi[si]
    logw, preds = [], []
    for c in range(len(weights)):
        prec = np.linalg.inv(covs[c])
        post = np.linalg.solve(xs.T @ xs / noise + prec, xs.T @ y / noise + prec @ means[c])
        marginal = xs @ covs[c] @ xs.T + noise * np.eye(len(si))
        logw.append(np.log(weights[c]) + log_normal(y[None], xs @ means[c], marginal)[0])
        preds.append(g + bi[query_items] + xq @ post)
    w = np.exp(np.array(logw) - max(logw))
    return np.clip((w / w.sum()) @ np.array(preds), mf.scale_.low, mf.scale_.high)


def main(argv: list[str] | None = None) -> int:
    args = parse(__doc__, argv)
    data = load()
    if data is None:
        return 2
    errs: dict[int, dict[int, list[np.ndarray]]] = {m: {k: [] for k in K} for m in COMPONENTS}
    for ff in fitted_folds(data, args.folds):
        mf, states, noise = ff.mf, ff.states, ff.noise
        test, _ = make_tasks(data, ff.fold.test_users, query=10, min_support=max(K), seed=0)
        for m in COMPONENTS:
            prior = fit_mixture(states, m)
            for k in K:
                errs[m][k].append(
                    np.array(
                        [
                            np.abs(
                                fold_in(mf, prior, noise, t.support(k), t.query[0]) - t.query[1]
                            ).mean()
                            for t in test
                        ]
                    )
                )
        print(f"fold {ff.fold.index}: noise variance {noise:.3f}", flush=True)
    rows = []
    print("k   M=1     " + "  ".join(f"M={m} and difference [95% CI]" for m in COMPONENTS[1:]))
    for k in K:
        base = np.concatenate(errs[1][k])
        row = {"k": k, "M=1": base.mean()}
        line = f"{k:<3d} {base.mean():.4f}"
        for m in COMPONENTS[1:]:
            x = np.concatenate(errs[m][k])
            d, lo, hi = paired_bootstrap_ci(x, base)
            row[f"M={m}"], row[f"M={m} - M=1"] = x.mean(), [d, lo, hi]
            line += f"  {x.mean():.4f} {d:+.4f} [{lo:+.4f}, {hi:+.4f}]"
        rows.append(row)
        print(line)
    write_json(args.json, {"folds": args.folds, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
