"""The search ``metasgd_tuned`` runs inside one fold of the suite, printed as a trials table.

Runs `methods.tuning.search` (the default `SearchConfig`) exactly as ``metasgd_tuned``'s fit
does in fold F of the suite's split of a suite dataset (``--folds N``, seed 0, validation
fraction 0.1, learner seed 0), without the final training: which setting wins on the fold's
validation users, and at what cost. When the preset wins, ``metasgd_tuned`` is ``metasgd``
itself on that fold (same setting, same seed). Run from the repository root, after the suite
has written its data (``python bench/accuracy.py --suite --list`` names the datasets)::

    python -m research.search_probe half_star --folds 2 --fold 0
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

from metarec_core.data.io import load_ratings
from metarec_core.evaluation.runner import VAL_FRACTION
from metarec_core.methods.registry import make_method
from metarec_core.methods.tuning import search
from metarec_core.protocol.splits import user_folds

DATA_DIR = Path("bench/out/suite_data")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dataset", help="a suite dataset written under bench/out/suite_data/")
    p.add_argument("--folds", type=int, default=2)
    p.add_argument("--fold", type=int, default=0)
    args = p.parse_args(argv)
    folder = DATA_DIR / args.dataset
    data = load_ratings(folder / "ratings.csv", items=folder / "items.csv")
    fold = user_folds(data, args.folds, 0, VAL_FRACTION)[args.fold]
    tuned = make_method("metasgd_tuned", seed=0, device="cpu").config
    base = dataclasses.replace(tuned, algorithm="metasgd")  # the trials' class, as its fit does
    last = [0.0]

    def progress(fraction: float, message: str) -> None:
        if time.time() - last[0] > 30:
            last[0] = time.time()
            print(f"{fraction:.2f} {message}", file=sys.stderr, flush=True)

    result = search(base, data, fold.train_users, fold.val_users, progress=progress)
    print(f"{args.dataset}, fold {args.fold} of {args.folds}")
    print(result.to_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
