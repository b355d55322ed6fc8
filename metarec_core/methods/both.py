"""New users on new items (``--cold both``, MeLU's states): a user-side method whose new items'
parameters are generated from their metadata.

When users and items are both new, a method fitted on the training users' ratings of warm items
adapts to a new user from their warm ratings, as always (`Recommender.adapt`), and must score
items it has never seen a rating of. `fill_new_items` gives a fitted method's new items their
per-item parameters from metadata (the MetaEmb idea, its closed-form version): a ridge
regression (`item_features.ridge`, penalty `ALPHA`, weights n_i / (n_i + 10)) from the training
items' metadata x_i (`ItemFeatures`: genres, title words, year; vocabulary of the training items)
to their fitted per-item parameters, evaluated at the new items' metadata. Per method:

- ``global_mean``: nothing per item; predicts mu.
- ``item_mean``: the item's mean from metadata (no user part).
- ``user_bias`` (= the "content" baseline of both-cold): mu + b_u + b_i with b_u folded in from
  the user's warm ratings and b_i regressed from metadata.
- ``mf_foldin``: (p_u, b_u) folded in from the warm ratings; (q_i, b_i) of a new item regressed
  from metadata (the item-side `mf_foldin`'s prior); ``_levels``: the same, cut into levels.
- meta-learners (``metasgd``, ``finetune``, ...): the user is adapted by the learner's inner
  loop from the warm ratings; a new item's rows of the item encoder's tables (bias b_i,
  factors q_i, free embedding e_i) are regressed from metadata; its genre part g_i is the
  learner's own (genres are metadata the network reads directly).
- ``popularity`` ranks by counts of ratings, which a new item has none of: not offered.

The regression is fitted after the method's own fit, on that fit's parameters only, so it sees
no rating of a test user or a test item either.
"""

from __future__ import annotations

import numpy as np

from metarec_core.data.dataset import RatingsDataset
from metarec_core.methods.base import Recommender
from metarec_core.methods.item_features import ItemFeatures, ridge, ridge_predict

__all__ = ["ALPHA", "fill_new_items", "item_tables"]

ALPHA = 10.0  # ridge penalty of the metadata -> item parameters regression (ItemContent's default)
_WEIGHT_DAMPING = 10.0


def item_tables(method: Recommender) -> dict[str, object]:
    """The method's per-item parameter tables by name: numpy arrays (baselines) or torch
    parameters (meta-learners), first axis = items. ValueError for a ranking-only method."""
    if not method.capabilities.predicts_ratings:
        raise ValueError(
            f"{method.name!r} ranks by rating counts and predicts no rating; a new item has "
            "no count, so it cannot be evaluated with new items"
        )
    model = getattr(method, "model_", None)
    if model is not None:  # a MetaLearner: its item encoder's per-item tables
        enc = model.item_enc
        tables = {"bias": enc.bias, "factor": enc.factor}
        if getattr(enc, "has_mlp", False):
            tables["embedding"] = enc.embedding
        return tables
    arrays = getattr(type(method), "STATE_ARRAYS", {})
    return {k: getattr(method, k) for k, axes in arrays.items() if axes and axes[0] == "items"}


def fill_new_items(
    method: Recommender,
    data: RatingsDataset,
    train_users: np.ndarray,
    new_items: np.ndarray,
    *,
    alpha: float = ALPHA,
) -> None:
    """Set the per-item parameters of `new_items` in the fitted `method` from their metadata,
    regressed on the items the training users rated in `data` (the module doc says how)."""
    new_items = np.asarray(new_items, dtype=np.int64)
    tables = item_tables(method)
    if not tables or len(new_items) == 0:
        return
    in_train = np.zeros(data.n_users, dtype=bool)
    in_train[np.asarray(train_users, dtype=np.int64)] = True
    n_i = np.bincount(data.item[in_train[data.user]], minlength=data.n_items).astype(np.float64)
    n_i[new_items] = 0.0  # never regress on a new item (it has no rating in a fit anyway)
    warm = np.flatnonzero(n_i > 0)
    if len(warm) == 0:
        return
    features = ItemFeatures.fit(data, warm)
    X = features.transform(*_meta(data, warm))
    Xn = features.transform(*_meta(data, new_items))
    w = n_i[warm] / (n_i[warm] + _WEIGHT_DAMPING)
    for table in tables.values():
        _fill(table, warm, new_items, X, Xn, w, alpha)


def _fill(table, warm, new_items, X, Xn, w, alpha) -> None:
    if isinstance(table, np.ndarray):
        Y = table[warm].reshape(len(warm), -1)
        table[new_items] = ridge_predict(Xn, ridge(X, Y, w, alpha)).reshape(
            (len(new_items), *table.shape[1:])
        )
        return
    import torch  # a learner's parameter

    with torch.no_grad():
        Y = table.detach()[torch.as_tensor(warm)].double().cpu().numpy().reshape(len(warm), -1)
        pred = ridge_predict(Xn, ridge(X, Y, w, alpha)).reshape((len(new_items), *table.shape[1:]))
        table[torch.as_tensor(new_items)] = torch.as_tensor(
            pred, dtype=table.dtype, device=table.device
        )


def _meta(data: RatingsDataset, items: np.ndarray) -> tuple[list[str], list[tuple[str, ...]]]:
    if data.items is None:
        return [""] * len(items), [()] * len(items)
    return [str(data.items.titles[j]) for j in items], [
        tuple(data.items.genre_list(int(j))) for j in items
    ]
