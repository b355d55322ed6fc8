"""Fast research loop: train one learner on one ML-100K fold and compare with the baselines.

Not a benchmark to quote (one fold, the official numbers come from `evaluate`). Usage::

    FOLD=0 python bench/iterate_fold.py metasgd '{"outer_lr": 0.003}'

The second argument is JSON overrides of `LearnerConfig`. Baselines (user_bias, mf_foldin) are
cached per fold in /tmp/base_fold{FOLD}.pkl. Prints MAE at k = 0 (the prior alone), 1, 3, 5,
10, 20 and the paired bootstrap 95% CI against the best baseline at each k.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from metarec_core.data.io import load_ratings  # noqa: E402
from metarec_core.methods import baselines  # noqa: E402
from metarec_core.methods.meta.learners import make_learner  # noqa: E402
from metarec_core.protocol.splits import user_folds  # noqa: E402
from metarec_core.protocol.tasks import make_tasks  # noqa: E402

ML = os.environ.get("ML100K", "/work/shared/datasets/ml-100k")
K = (1, 3, 5, 10, 20)


def main() -> None:
    torch.set_num_threads(int(os.environ.get("NT", "1")))
    data = load_ratings(f"{ML}/u.data", items=f"{ML}/u.item")
    fi = int(os.environ.get("FOLD", "0"))
    fold = user_folds(data, 5, 0)[fi]
    tasks, _ = make_tasks(data, fold.test_users, query=10, min_support=max(K), seed=0)

    def evaluate(m):
        res, per = {}, {}
        for k in (0, *K):
            S = m.score_many([t.support(k) for t in tasks])
            e = np.array(
                [np.abs(S[b][t.query[0]] - t.query[1]).mean() for b, t in enumerate(tasks)]
            )
            res[k], per[k] = e.mean(), e
        return res, per

    cache = f"/tmp/base_fold{fi}_v2.pkl"
    if os.path.exists(cache):
        with open(cache, "rb") as fh:
            base = pickle.load(fh)
    else:
        base = {}
        for b in ("user_bias", "mf_foldin"):
            m = baselines.BASELINE_CLASSES[b](seed=0).fit(data, fold.train_users, fold.val_users)
            base[b] = evaluate(m)
        with open(cache, "wb") as fh:
            pickle.dump(base, fh)
    for b, (r, _) in base.items():
        print(f"{b:10s}", " ".join(f"{r[k]:.4f}" for k in (0, *K)))
    name = sys.argv[1]
    ov = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    t = time.time()
    m = make_learner(name, device="cpu", **ov)
    m.fit(data, fold.train_users, fold.val_users)
    fit_s = time.time() - t
    r, per = evaluate(m)
    print(
        f"{name:10s}",
        " ".join(f"{r[k]:.4f}" for k in (0, *K)),
        f"fit {fit_s:.0f}s steps {len(m.history_)} best {m.best_step_} val {m.best_val_mae_:.4f}",
        json.dumps(ov),
    )
    out = []
    for k in K:
        bb = min(base, key=lambda b: base[b][0][k])
        diff = per[k] - base[bb][1][k]
        rng = np.random.default_rng(0)
        bs = [diff[rng.integers(0, len(diff), len(diff))].mean() for _ in range(1000)]
        out.append(
            f"k={k}:{diff.mean():+.4f}[{np.percentile(bs, 2.5):+.4f},{np.percentile(bs, 97.5):+.4f}]"
        )
    print("  vs best:", " ".join(out))
    print(
        "  val:", " ".join(f"{h.step}:{h.val_mae:.4f}" for h in m.history_ if h.val_mae is not None)
    )


if __name__ == "__main__":
    main()
