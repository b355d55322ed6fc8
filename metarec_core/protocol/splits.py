"""Every user split in one place: evaluation folds, the MeLU split, training/validation.

All of them hold out a seeded share of a set of users with one primitive, `holdout`; each
caller has its own salt, so one seed gives independent draws for different purposes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from metarec_core.data.dataset import RatingsDataset

MELU_MIN_RATINGS = 13
MELU_MAX_RATINGS = 100
MELU_TEST_FRACTION = 0.2
DEFAULT_VAL_FRACTION = 0.1
# Most validation users an early-stopping run or a model check scores (`capped_users`): their
# cost grows with the users, every `eval_every` steps (issue 16, docs/scale.md).
DEFAULT_MAX_VAL_USERS = 2000

# one salt per purpose: the same seed gives independent permutations
SALT_FOLDS, SALT_FOLD_VAL, SALT_MELU, SALT_FIT_VAL, SALT_TRAIN_VAL = 1, 2, 3, 7, 17
SALT_VAL_CAP = 19


def seeded_rng(seed: int, *salt: int) -> np.random.Generator:
    """The generator of one seeded draw: `seed` and the caller's salt."""
    return np.random.default_rng([seed, *salt])


def holdout(
    users: np.ndarray,
    fraction: float,
    rng: np.random.Generator | None,
    *,
    min_held: int = 1,
    min_kept: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Split `users` into (kept, held): ``round(fraction * n)`` held, clipped to the minimums.

    `rng` permutes `users` first (None: they are split in the given order); both parts keep
    that order (callers sort where order does not matter).
    """
    users = np.asarray(users)
    if rng is not None:
        users = rng.permutation(users)
    n = len(users)
    n_held = min(n - min_kept, max(min_held, int(round(fraction * n))))
    return users[n_held:], users[:n_held]


@dataclass(frozen=True, eq=False)
class Fold:
    """A user split: test users are unseen; validation users are carved from training users."""

    index: int
    train_users: np.ndarray
    val_users: np.ndarray
    test_users: np.ndarray


def user_folds(
    data: RatingsDataset, n_folds: int = 5, seed: int = 0, val_fraction: float = 0.1
) -> list[Fold]:
    """K folds over users; each fold's validation users come from its training users."""
    parts = kfold_parts(data.n_users, n_folds, seed, (SALT_FOLDS, SALT_FOLD_VAL), val_fraction)
    return [Fold(f, *part) for f, part in enumerate(parts)]


def kfold_parts(
    units: int | np.ndarray, n_folds: int, seed: int, salts: tuple[int, int], val_fraction: float
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(train, validation, test) of each of K folds over `units` (a count n: 0..n-1), sorted:
    a permutation seeded with `salts[0]` cut in K test parts, each fold's validation carved
    from its training units with `salts[1]` and the fold's index."""
    if n_folds < 2:
        raise ValueError("n_folds must be at least 2")
    perm = seeded_rng(seed, salts[0]).permutation(units)
    parts = np.array_split(perm, n_folds)
    out = []
    for f in range(n_folds):
        rest = np.concatenate([parts[j] for j in range(n_folds) if j != f])
        train, val = holdout(rest, val_fraction, seeded_rng(seed, salts[1], f))
        out.append((np.sort(train), np.sort(val), np.sort(parts[f])))
    return out


def melu_split(data: RatingsDataset, seed: int = 0, val_fraction: float = 0.1) -> tuple[Fold, int]:
    """The MeLU user split: users with 13-100 ratings, 80% existing / 20% new.

    Returns the fold and the number of users left out for having too few or too many ratings.
    """
    counts = data.counts_per_user()
    ok = np.flatnonzero((counts >= MELU_MIN_RATINGS) & (counts <= MELU_MAX_RATINGS))
    rest, test = holdout(ok, MELU_TEST_FRACTION, seeded_rng(seed, SALT_MELU), min_held=0)
    train, val = holdout(rest, val_fraction, None)
    fold = Fold(0, np.sort(train), np.sort(val), np.sort(test))
    return fold, int(data.n_users - len(ok))


def split_users(
    data: RatingsDataset, seed: int = 0, val_fraction: float = DEFAULT_VAL_FRACTION
) -> tuple[np.ndarray, np.ndarray]:
    """A seeded (train, validation) split of all users; validation gets at least one user."""
    if data.n_users < 2:
        raise ValueError(
            f"training needs at least 2 users (one to train on, one to validate); "
            f"the dataset has {data.n_users}"
        )
    train, val = holdout(
        np.arange(data.n_users), val_fraction, seeded_rng(seed, SALT_TRAIN_VAL), min_kept=1
    )
    return np.sort(train), np.sort(val)


def fit_validation_split(
    train_users: np.ndarray, seed: int, val_fraction: float
) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) carved from a learner's training users when none are given."""
    train, val = holdout(train_users, val_fraction, seeded_rng(seed, SALT_FIT_VAL))
    return np.sort(train), np.sort(val)


def capped_users(users: np.ndarray, max_users: int | None, seed: int) -> np.ndarray:
    """At most `max_users` of `users`: `users` itself, untouched, when there are no more (or
    `max_users` is None); else a sample of `max_users` of them seeded by `seed`, sorted.

    Bounds what validation costs on many users; a caller with fewer users than the cap gets
    the very same array, so its results do not change.
    """
    if max_users is None or len(users) <= max_users:
        return users
    users = np.asarray(users)
    pick = seeded_rng(seed, SALT_VAL_CAP).choice(len(users), size=max_users, replace=False)
    return np.sort(users[pick])
