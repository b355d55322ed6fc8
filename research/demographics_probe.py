"""Probe: does a prior that knows the new user's demographics help the first few ratings?

MeLU and its successors feed user features (age, gender, occupation) to the model, so a new
user's start depends on who they are. Before building that in, this measures what it buys at
each k on the MF fold-in's user states: the prior mean of (p_u, b_u) is a ridge regression of
the training users' ALS states on ML-100K's `u.user` features (gender, 7 age bands, gender x
age band, 21 occupations), with the residual covariance as the prior covariance, against the
single Gaussian prior of `research.prior_probe` (M = 1). Exact Bayesian fold-in under each prior,
k = 0 (the prior alone) to 20, pooled over folds, paired bootstrap 95% CI::

    python -m research.demographics_probe [--folds 0,1,2,3,4] [--json research/out/demographics_probe.json]
"""

from __future__ import annotations

import sys

import numpy as np

from metarec_core.evaluation.metrics import paired_bootstrap_ci
from metarec_core.protocol.tasks import make_tasks
from research.prior_probe import fold_in
from research.probe_setup import ML, K, fitted_folds, load, parse, write_json

AGE_BANDS = (18, 25, 35, 45, 50, 56)  # MovieLens-1M's bands: <18, 18-24, ..., 56+
RIDGE = 5.0
KS = (0, *K)


def user_features(path, user_ids: np.ndarray) -> np.ndarray:
    """(n_users, d) one-hot features from `u.user` (id|age|gender|occupation|zip), with intercept."""
    rows = {}
    for n, line in enumerate(path.read_text(encoding="latin-1").splitlines(), 1):
        parts = line.split("|")
        if len(parts) != 5 or not parts[1].isdigit() or parts[2] not in ("M", "F"):
            raise ValueError(f"{path}:{n}: expected id|age|M or F|occupation|zip, got {line!r}")
        rows[parts[0]] = (int(parts[1]), parts[2] == "F", parts[3])
    missing = [u for u in user_ids if u not in rows]
    if missing:
        raise ValueError(
            f"{path}: {len(missing)} users of the ratings are missing, e.g. {missing[0]}"
        )
    jobs = sorted({r[2] for r in rows.values()})
    nb = len(AGE_BANDS) + 1
    out = np.zeros((len(user_ids), 2 + 2 * nb + len(jobs)))
    for row, uid in enumerate(user_ids):
        age, female, job = rows[uid]
        band = int(np.searchsorted(AGE_BANDS, age, side="right"))
        out[row, [0, 1, 2 + band, 2 + nb + band, 2 + 2 * nb + jobs.index(job)]] = [
            1,
            female,
            1,
            female,
            1,
        ]
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse(__doc__, argv)
    data = load()
    if data is None:
        return 2
    feats = user_features(ML / "u.user", np.asarray(data.user_ids))
    priors = ("single Gaussian", "demographic")
    errs: dict[str, dict[int, list[np.ndarray]]] = {p: {k: [] for k in KS} for p in priors}
    for ff in fitted_folds(data, args.folds):
        mf, states, noise = ff.mf, ff.states, ff.noise
        x = feats[ff.train]
        coef = np.linalg.solve(x.T @ x + RIDGE * np.eye(x.shape[1]), x.T @ states)
        eye = 1e-3 * np.eye(states.shape[1])
        cov, cov_res = np.cov(states.T) + eye, np.cov((states - x @ coef).T) + eye
        explained = 1 - np.trace(cov_res) / np.trace(cov)
        test, _ = make_tasks(data, ff.fold.test_users, query=10, min_support=max(K), seed=0)
        for k in KS:
            for name in priors:
                e = []
                for t in test:
                    if name == "demographic":
                        prior = (np.ones(1), (feats[t.user] @ coef)[None], cov_res[None])
                    else:
                        prior = (np.ones(1), states.mean(0)[None], cov[None])
                    pred = fold_in(mf, prior, noise, t.support(k), t.query[0])
                    e.append(np.abs(pred - t.query[1]).mean())
                errs[name][k].append(np.array(e))
        print(
            f"fold {ff.fold.index}: demographics explain {explained:.1%} of the training users' "
            "state variance (in sample)",
            flush=True,
        )
    rows = []
    print("k   single  demographic  difference [95% CI]")
    for k in KS:
        base, demo = (np.concatenate(errs[p][k]) for p in priors)
        d, lo, hi = paired_bootstrap_ci(demo, base)
        rows.append(
            {"k": k, "single": base.mean(), "demographic": demo.mean(), "diff": [d, lo, hi]}
        )
        print(f"{k:<3d} {base.mean():.4f}  {demo.mean():.4f}       {d:+.4f} [{lo:+.4f}, {hi:+.4f}]")
    write_json(args.json, {"folds": args.folds, "ridge": RIDGE, "users": len(base), "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
