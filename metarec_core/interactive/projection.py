"""The playground's taste map: a 2-D projection (PCA) of user states, fitted on training users.

Only methods that declare ``capabilities.user_state`` have states to project.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from metarec_core.data.dataset import RatingsDataset
from metarec_core.methods.base import Recommender


@dataclass(frozen=True, eq=False)
class Projection:
    """A PCA of user states to 2-D, fitted on training users."""

    mean: np.ndarray  # (d,)
    components: np.ndarray  # (2, d)
    points: np.ndarray  # (n, 2) the fitted users' coordinates
    users: np.ndarray  # (n,) their inner indices
    explained: np.ndarray  # (2,) share of variance per axis

    def transform(self, states: np.ndarray) -> np.ndarray:
        """(m, d) states -> (m, 2) coordinates."""
        return (np.atleast_2d(np.asarray(states, dtype=np.float64)) - self.mean) @ self.components.T


def project_users(states: np.ndarray, users: np.ndarray) -> Projection:
    """PCA (via SVD) of `states` (n, d) to two axes; each axis's sign fixed so that its largest
    loading is positive (deterministic across runs)."""
    x = np.asarray(states, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"need a (n >= 2, d) array of user states, got shape {x.shape}")
    mean = x.mean(0)
    xc = x - mean
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    comps = np.zeros((2, x.shape[1]))
    k = min(2, vt.shape[0])
    comps[:k] = vt[:k]
    for j in range(k):
        if comps[j, np.argmax(np.abs(comps[j]))] < 0:
            comps[j] = -comps[j]
    var = s**2
    explained = np.zeros(2)
    if var.sum() > 0:
        explained[:k] = var[:k] / var.sum()
    return Projection(mean, comps, xc @ comps.T, np.asarray(users, dtype=np.int64), explained)


def fit_projection(
    model: Recommender,
    data: RatingsDataset,
    users: np.ndarray,
    *,
    k: int = 10,
    max_users: int = 400,
    seed: int = 0,
) -> Projection | None:
    """Project the adapted states of (at most `max_users`, seeded) training users; None when the
    model declares no user state (`capabilities.user_state`: baselines)."""
    if not model.capabilities.user_state:
        return None
    users = np.asarray(users, dtype=np.int64)
    if len(users) > max_users:
        users = np.sort(np.random.default_rng([seed, 9]).choice(users, max_users, replace=False))
    states = np.asarray(model.user_states(data, users, k=k), dtype=np.float64)
    if states.ndim != 2 or states.shape[1] == 0 or len(states) < 2:
        return None
    return project_users(states, users)
