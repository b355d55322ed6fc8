"""Tuned non-meta baselines for new (cold-start) users, all behind the `Recommender` interface
(those for new items, behind `ItemRecommender`, are in `baselines.items`).

Every baseline is fitted on the ratings of the training users only. Regularisation is tuned on
the validation users' own support/query split (`make_tasks` on ``val_users``, support sizes
``TUNE_SUPPORT``, query ``TUNE_QUERY``), never on test users: the candidate minimising the mean
absolute error over all (validation user, support size) pairs wins. Rating predictions are
clipped to the dataset's scale.

Models (mu = global mean of the training ratings):
- ``global_mean``: r̂ = mu.
- ``item_mean``: r̂_i = (Σ_u r_ui + β·mu) / (n_i + β), β tuned.
- ``user_bias``: r̂_ui = mu + b_u + b_i. b_i, b_u of training users by alternating ridge
  (b_i = Σ(r − mu − b_u) / (n_i + λ_i), b_u = Σ(r − mu − b_i) / (n_u + λ_u)); a new user's
  b_u = Σ_support (r − mu − b_i) / (k + γ). λ_i, λ_u, γ tuned.
- ``mf_foldin``: r̂_ui = mu + b_u + b_i + p_u·q_i, trained by alternating least squares with
  ridge penalty λ on factors and biases; a new user's (p_u, b_u) is the closed-form ridge solution
  on the support ratings with penalties (λ_p, λ_b). λ (training) and (λ_p, λ_b) tuned.
- ``popularity``: ranking only; score_i = number of training ratings of item i.
- ``user_bias_levels``, ``mf_foldin_levels``: the same models with the learners' kind of
  decision on a discrete scale (≤ 21 levels): each prediction is cut into a level at thresholds
  tuned for MAE on the validation users' support/query split, + 1e-3 × (prediction − level) so
  that rankings keep their order. The meta-learners predict the median of an ordinal
  distribution, the optimal point under absolute error; these rows give the baselines an
  equivalent decision, so a comparison of MAE is about the models, not the decision rule.
"""

from __future__ import annotations

from metarec_core.methods import registry  # the one list (it imports no baseline at load)
from metarec_core.methods.base import LEVEL_TIE_BREAK, NotFittedError, Recommender
from metarec_core.methods.baselines.bias import UserBias
from metarec_core.methods.baselines.common import TUNE_QUERY, TUNE_SUPPORT
from metarec_core.methods.baselines.items import (
    ITEM_BASELINE_CLASSES,
    ItemBias,
    ItemBiasLevels,
    ItemContent,
    ItemGlobalMean,
    ItemMFFoldIn,
    ItemMFFoldInLevels,
)
from metarec_core.methods.baselines.levels import (
    MAX_LEVELS,
    MFFoldInLevels,
    UserBiasLevels,
    level_grid,
    snap_to_levels,
    tune_level_thresholds,
)
from metarec_core.methods.baselines.means import GlobalMean, ItemMean
from metarec_core.methods.baselines.mf import MFFoldIn, _GroupRidge  # noqa: F401 (tests spy on ALS)
from metarec_core.methods.baselines.popularity import Popularity

__all__ = [
    "BASELINE_CLASSES",
    "GlobalMean",
    "ITEM_BASELINE_CLASSES",
    "ItemBias",
    "ItemBiasLevels",
    "ItemContent",
    "ItemGlobalMean",
    "ItemMFFoldIn",
    "ItemMFFoldInLevels",
    "ItemMean",
    "LEVEL_TIE_BREAK",
    "MAX_LEVELS",
    "MFFoldIn",
    "MFFoldInLevels",
    "NotFittedError",
    "Popularity",
    "TUNE_QUERY",
    "TUNE_SUPPORT",
    "UserBias",
    "UserBiasLevels",
    "level_grid",
    "snap_to_levels",
    "tune_level_thresholds",
]

# by name, from the registry's list (the one list of methods; this map serves the playground)
BASELINE_CLASSES: dict[str, type[Recommender]] = registry.builtin_classes(registry.BASELINE)
