"""What the ML-100K probes (`knn_probe`, `prior_probe`, `demographics_probe`, `noise_probe`)
share: their arguments, the data, each fold with the MF fold-in fitted on its training users,
and the JSON output."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from metarec_core.data.dataset import RatingsDataset
from metarec_core.data.io import load_ratings
from metarec_core.methods.baselines import MFFoldIn
from metarec_core.protocol.splits import Fold, user_folds

ROOT = Path(__file__).resolve().parents[1]

ML = ROOT.parent / "shared" / "datasets" / "ml-100k"
K = (1, 3, 5, 10, 20)


@dataclass(frozen=True)
class FoldFit:
    """One fold, its MF fold-in, and its training ratings in the fit's user numbering."""

    fold: Fold
    train: np.ndarray  # sorted training users
    mf: MFFoldIn
    row: np.ndarray  # each training rating's user as a row of mf.user_factors_ / user_bias_
    item: np.ndarray
    rating: np.ndarray

    @property
    def states(self) -> np.ndarray:
        """(n_train, factors + 1): each training user's ALS state (p_u, b_u)."""
        return np.c_[self.mf.user_factors_, self.mf.user_bias_]

    @property
    def residuals(self) -> np.ndarray:
        """Each training rating minus the MF fit's prediction of it."""
        mf = self.mf
        fitted = mf.global_mean_ + mf.item_bias_[self.item] + mf.user_bias_[self.row]
        fitted += (mf.user_factors_[self.row] * mf.item_factors_[self.item]).sum(1)
        return self.rating - fitted

    @property
    def noise(self) -> float:
        """Mean squared residual of the MF fit over the training ratings."""
        return float((self.residuals**2).mean())


def parse(doc: str, argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--folds", default="0,1,2,3,4")
    p.add_argument("--json", type=Path, default=None, help="write the figures here")
    return p.parse_args(argv)


def load() -> RatingsDataset | None:
    """MovieLens-100K with its genres, or None (and a message) when it is not there."""
    if not (ML / "u.data").exists():
        print(f"needs MovieLens-100K at {ML} (see ../shared/datasets/PROVENANCE.md)")
        return None
    return load_ratings(ML / "u.data", items=ML / "u.item")


def fitted_folds(data: RatingsDataset, folds: str) -> Iterator[FoldFit]:
    """The comma-separated `folds` of the 5-fold user split (seed 0), MF fold-in fitted."""
    split = user_folds(data, 5, 0)
    for f in (int(x) for x in folds.split(",")):
        fold = split[f]
        train = np.sort(fold.train_users)
        mf = MFFoldIn(seed=0).fit(data, train, fold.val_users)
        tr = np.isin(data.user, train)
        row = np.searchsorted(train, data.user[tr])  # the fit numbers users in sorted order
        yield FoldFit(fold, train, mf, row, data.item[tr], data.rating[tr])


def write_json(path: Path | None, report: dict) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2))
