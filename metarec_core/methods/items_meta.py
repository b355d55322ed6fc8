"""Item meta-learners: the MAML family with the new ITEM as the task, by reuse of `MetaLearner`.

An item-cold task is a user-cold task on the transposed rating matrix: the new item plays the
new user (its state, bias and factors, is adapted from its first ratings) and the users are
the catalogue (their bias and factors are the learner's item tables). `ItemMetaLearner` is a
thin adapter: it trains an unchanged `MetaLearner` (`make_learner(algorithm)`) on
`transpose(data, training items)`, the ratings of the training and validation items only, with
users and items swapped (item metadata cannot describe users, so the transposed catalogue has
none); a new item is adapted by the learner's own inner loop on its (user, rating) pairs and
its query users are scored by the learner's network.

Metadata (the MetaEmb idea, its simplest honest version): a ridge regression from the item's
metadata x_i (`ItemFeatures`: genres, title words, year) to the learner's adapted state of
each training item (from up to `STATE_RATINGS` of its ratings; weights n_i / (n_i + 10)) gives a
new item's state before any rating, s⁰(x_i). It is both the k = 0 prediction and the centre of
the inner loop's prior (the learner's posterior objective pulls the state towards s⁰(x_i)
with its meta-learned precision, so the metadata weighs less as ratings arrive, at the rate the
meta-objective learned). Chosen over "content + the learner's adapted offset" because that
needs a learner trained on residuals, which the ordinal output (trained on the scale's
discrete levels) cannot take, and because a fixed additive blend would not fade with evidence.
The ridge penalty α and a factor on the prior's precision are tuned on the validation items'
own support/query split (`make_item_tasks`, k in `TUNE_ITEM_SUPPORT`, query `TUNE_QUERY`): the
pair with the lowest MAE over all (validation item, k) wins. The network, the inner loop and
its learned rates are the learner's, untouched; the centre is the only change, passed to the
learner's inner loop per item.

- ``item_metasgd`` (default item learner): `MetaSGD` on the transposed data.
- ``item_finetune`` (its ablation): `Finetune`, the same network without the meta objective.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch.func import vmap

from metarec_core.data.dataset import RatingScale, RatingsDataset
from metarec_core.methods.base import (
    Capabilities,
    ItemRecommender,
    NewItem,
)
from metarec_core.methods.baselines.items import (
    TUNE_ITEM_SUPPORT,
    TUNE_QUERY,
    ItemContent,
)
from metarec_core.methods.baselines.state import check_header, need
from metarec_core.methods.item_features import (
    ItemFeatures,
    check_features_state,
    ridge,
    ridge_predict,
)
from metarec_core.protocol.item_splits import fit_validation_items, make_item_tasks
from metarec_core.protocol.splits import seeded_rng
from metarec_core.protocol.tasks import user_ratings

__all__ = ["ItemFinetune", "ItemMetaLearner", "ItemMetaSGD", "transpose"]

STATE_RATINGS = 200  # ratings a training item's target state is adapted from (a seeded subset)
SALT_STATE_RATINGS = 31  # seeded_rng salt of that subset (protocol salts are below 30)
CHUNK = 128  # items adapted at once
ITEM_LEARNER_FORMAT = "metarec-item-learner"
ITEM_LEARNER_VERSION = 1


def transpose(data: RatingsDataset, items: np.ndarray) -> RatingsDataset:
    """The ratings of `items` with users and items swapped: inner user j of the result is item
    j of `data` (all items keep their index; only `items` have ratings) and inner item u is
    user u. No item metadata (it describes items, which are the users here)."""
    keep = np.zeros(data.n_items, dtype=bool)
    keep[np.asarray(items, dtype=np.int64)] = True
    rows = keep[data.item]
    ts = None if data.timestamp is None else data.timestamp[rows]
    return RatingsDataset(
        user=data.item[rows].copy(),
        item=data.user[rows].copy(),
        rating=data.rating[rows].copy(),
        timestamp=ts,
        user_ids=data.item_ids,
        item_ids=data.user_ids,
        scale=data.scale,
        items=None,
        source=f"{data.source} (transposed: items as users)",
    )


class ItemMetaLearner(ItemRecommender):
    """A `MetaLearner` of the preset `algorithm` trained with the item as the task, its prior
    centred on a ridge regression of the adapted item states on the item's metadata (the
    module doc says how and why). ``overrides`` are `LearnerConfig` fields (tests, benches)."""

    name: ClassVar[str] = "item_metasgd"
    algorithm: ClassVar[str] = "metasgd"
    capabilities: ClassVar[Capabilities] = Capabilities(
        item_state=True, device=True, meta_learned=True, cold="items"
    )
    RIDGE_GRID: ClassVar[tuple[float, ...]] = (1.0, 3.0, 10.0, 30.0, 100.0)
    PREC_GRID: ClassVar[tuple[float, ...]] = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)

    def __init__(self, seed: int = 0, device: str = "auto", **overrides: Any) -> None:
        self.seed = seed
        self.device = device
        self.overrides = dict(overrides)

    # ------------------------------------------------------------------ fit
    def _fit_items(self, data, train_items, val_items, should_stop, progress) -> bool:
        """Meta-train on the ratings of `train_items` (early stopping and the metadata prior's
        tuning on `val_items`, carved from `train_items` when not given). False: stopped by
        `should_stop()`."""
        from metarec_core.methods.meta import make_learner  # torch and the learners: on use

        if val_items is None or len(val_items) == 0:
            train_items, val_items = fit_validation_items(train_items, self.seed)
        val_items = np.setdiff1d(np.asarray(val_items, dtype=np.int64), train_items)
        seen = transpose(data, np.concatenate([train_items, val_items]))
        if seen.n_ratings == 0:
            raise ValueError("the training items have no ratings")
        learner = make_learner(self.algorithm, seed=self.seed, device=self.device, **self.overrides)

        def inside(fraction: float, message: str) -> None:
            if progress is not None:
                progress(0.95 * fraction, message)

        learner.fit(seen, train_items, val_items, should_stop=should_stop, progress=inside)
        if not learner.fitted_ or (should_stop is not None and should_stop()):
            return False
        self.learner_ = learner
        self.n_users_, self.n_items_, self.scale_ = data.n_users, data.n_items, data.scale
        self.features_ = ItemFeatures.fit(data, train_items)
        self._fit_prior(data, seen, train_items, val_items)
        if progress is not None:
            progress(1.0, "metadata prior fitted")
        return True

    def _fit_prior(
        self,
        data: RatingsDataset,
        seen: RatingsDataset,
        train_items: np.ndarray,
        val_items: np.ndarray,
    ) -> None:
        """The ridge from metadata to adapted states, (α, precision factor) tuned on `val_items`."""
        pairs = []
        for j, (u, r) in zip(train_items, user_ratings(seen, train_items), strict=True):
            if len(u) > STATE_RATINGS:
                pick = seeded_rng(self.seed, SALT_STATE_RATINGS, int(j)).permutation(len(u))
                u, r = u[pick[:STATE_RATINGS]], r[pick[:STATE_RATINGS]]
            pairs.append((u, r))
        shared = self._shared_start()
        starts = np.broadcast_to(shared["user_init"], (len(pairs), len(shared["user_init"])))
        states = self._states(starts, pairs)
        n = np.array([len(u) for u, _ in pairs], dtype=np.float64)
        X = self.features_.transform(*ItemContent._meta(data, train_items))
        w = n / (n + 10.0)
        tasks, _ = make_item_tasks(data, val_items, query=TUNE_QUERY, seed=self.seed)
        rows = [(t, k) for t in tasks for k in TUNE_ITEM_SUPPORT if k <= t.n_available]
        base = {k: v.detach().clone() for k, v in self.learner_.inner_.log_prec.items()}
        self.prior_reg_, self.prec_scale_ = self.RIDGE_GRID[2], 1.0
        self.coef_ = ridge(X, states, w, self.prior_reg_)
        if not rows:
            return
        new = [t.new_item(k) for t, k in rows]
        qu = np.stack([t.query[0] for t, _ in rows]).astype(np.int64)
        qr = np.stack([t.query[1] for t, _ in rows]).astype(np.float64)
        best = (math.inf, self.prior_reg_, 1.0)
        for scale in self.PREC_GRID:
            self._scale_prec(base, scale)
            for alpha in self.RIDGE_GRID:
                self.coef_ = ridge(X, states, w, alpha)
                mae = float(np.mean(np.abs(self._predict(new, qu) - qr)))
                if mae < best[0] - 1e-6:
                    best = (mae, alpha, scale)
        _, self.prior_reg_, self.prec_scale_ = best
        self._scale_prec(base, self.prec_scale_)
        self.coef_ = ridge(X, states, w, self.prior_reg_)

    # ------------------------------------------------------------------ persistence
    def to_state(self) -> dict[str, Any]:
        """The transposed learner's state (`MetaLearner.to_state`, its prior precisions as
        tuned), the featuriser and the metadata ridge, as tensors and plain values."""
        self._check_fitted()
        return {
            "format": ITEM_LEARNER_FORMAT,
            "version": ITEM_LEARNER_VERSION,
            "name": self.name,
            "seed": int(self.seed),
            "n_users": int(self.n_users_),
            "n_items": int(self.n_items_),
            "scale": [float(self.scale_.low), float(self.scale_.high), float(self.scale_.step)],
            "features": self.features_.to_state(),
            "coef": torch.from_numpy(np.array(self.coef_, dtype=np.float64)),
            "prior_reg": float(self.prior_reg_),
            "prec_scale": float(self.prec_scale_),
            "learner": self.learner_.to_state(),
        }

    @classmethod
    def check_state(cls, state: dict[str, Any], *, max_width: int = 2**31) -> None:
        """Raise ValueError naming the first entry of `state` that is not what this class
        builds from (its own entries here, the transposed learner's by the checkpoint's
        checks of a learner); builds nothing."""
        from metarec_core.checkpoint import check_learner_state

        fmt, version = ITEM_LEARNER_FORMAT, ITEM_LEARNER_VERSION
        check_header(state, cls.name, fmt, version, "not an item learner state")
        ints = {k: state.get(k) for k in ("n_users", "n_items", "seed")}
        for k, v in ints.items():
            need(
                isinstance(v, int) and not isinstance(v, bool) and v >= 0, f"{k} is not an integer"
            )
        need(ints["n_users"] >= 1 and ints["n_items"] >= 1, "n_users or n_items is 0")
        sc = state.get("scale")
        need(
            isinstance(sc, list)
            and len(sc) == 3
            and all(isinstance(x, float) and math.isfinite(x) for x in sc)
            and sc[0] < sc[1]
            and sc[2] > 0,
            "scale is not [low, high, step]",
        )
        for k in ("prior_reg", "prec_scale"):
            v = state.get(k)
            need(isinstance(v, float) and math.isfinite(v) and v > 0, f"{k} is not a number > 0")
        width = check_features_state(state.get("features")) + 1
        learner = state.get("learner")
        need(isinstance(learner, dict), "learner is not a dictionary")
        check_learner_state(
            learner, ints["n_users"], RatingScale(*sc), max_width=max_width
        )  # the transposed learner scores users
        d = int(learner["config"]["factors"]) + 1
        coef = state.get("coef")
        need(
            isinstance(coef, torch.Tensor) and coef.is_floating_point(),
            "coef is not a float tensor",
        )
        need(
            tuple(coef.shape) == (width, d),
            f"coef has shape {tuple(coef.shape)}, expected {(width, d)}",
        )
        need(bool(torch.isfinite(coef).all()), "coef holds NaN or infinite values")

    @classmethod
    def from_state(cls, state: dict[str, Any], device: str = "cpu") -> ItemMetaLearner:
        """Rebuild the fitted item learner from `to_state()` (checked first)."""
        from metarec_core.methods.meta import MetaLearner

        cls.check_state(state)
        obj = cls(seed=state["seed"], device=device)
        obj.learner_ = MetaLearner.from_state(state["learner"], device=device)
        obj.n_users_, obj.n_items_ = state["n_users"], state["n_items"]
        obj.scale_ = RatingScale(*map(float, state["scale"]))
        obj.features_ = ItemFeatures.from_state(state["features"])
        obj.coef_ = state["coef"].numpy().astype(np.float64, copy=True)
        obj.prior_reg_, obj.prec_scale_ = state["prior_reg"], state["prec_scale"]
        obj.fitted_ = True
        return obj

    def _scale_prec(self, base: dict[str, torch.Tensor], scale: float) -> None:
        """The learner's prior precisions times `scale` (of their trained values, `base`)."""
        with torch.no_grad():
            for k, v in self.learner_.inner_.log_prec.items():
                v.copy_(base[k] + math.log(scale))

    # ------------------------------------------------------------------ adaptation
    def _shared_start(self) -> dict[str, np.ndarray]:
        L = self.learner_
        return {k: v.detach().double().cpu().numpy() for k, v in L._fast0().items()}

    def _adapt(self, starts: np.ndarray, supports: Sequence[tuple[np.ndarray, np.ndarray]]):
        """Fast weights (batched) after the learner's inner loop on each support, the state's
        prior centred on `starts` (B, d) instead of the shared learned start."""
        L = self.learner_
        s = L._pad(supports)
        dt = dict(dtype=L._dtype, device=L.device_)
        with torch.no_grad():
            rest = {k: v.detach() for k, v in L._fast0().items() if k != "user_init"}
            c = torch.as_tensor(np.ascontiguousarray(starts), **dt)
            fs = L._batch_feats(s.items)
            steps = L.config.inner_steps

            def task(c0, si, sr, sm, sf):
                fast, _, _ = L._inner_loop({**rest, "user_init": c0}, si, sr, sm, sf, True, steps)
                return fast

            mask = s.mask.to(s.ratings.dtype)
            fdim = None if fs is None else 0
            return vmap(task, in_dims=(0, 0, 0, 0, fdim))(c, s.items, s.ratings, mask, fs)

    def _states(self, starts: np.ndarray, supports) -> np.ndarray:
        """(B, d) adapted states, CHUNK items at a time."""
        out = [np.zeros((0, starts.shape[1]))]
        for a in range(0, len(supports), CHUNK):
            fast = self._adapt(starts[a : a + CHUNK], supports[a : a + CHUNK])
            out.append(fast["user_init"].double().cpu().numpy())
        return np.concatenate(out)

    def prior_states(self, new_items: Sequence[NewItem]) -> np.ndarray:
        """(B, d) each new item's state before any rating: s⁰(x_i) from its metadata."""
        self._check_fitted()
        return self._centres(new_items)

    def item_states(self, new_items: Sequence[NewItem]) -> np.ndarray:
        """(B, d) each new item's state (the transposed learner's user state) after the inner
        loop on its support, started from its metadata's s⁰(x_i)."""
        self._check_fitted()
        supports = [(n.users, n.ratings) for n in new_items]
        return self._states(self._centres(new_items), supports)

    def _centres(self, new_items: Sequence[NewItem]) -> np.ndarray:
        X = self.features_.transform([n.title for n in new_items], [n.genres for n in new_items])
        return ridge_predict(X, self.coef_)

    def _predict(self, new_items: Sequence[NewItem], users: np.ndarray) -> np.ndarray:
        L = self.learner_
        centres = self._centres(new_items)
        out = []
        for a in range(0, len(new_items), CHUNK):
            part = new_items[a : a + CHUNK]
            fast = self._adapt(centres[a : a + CHUNK], [(n.users, n.ratings) for n in part])
            q = torch.as_tensor(np.array(users[a : a + CHUNK]), device=L.device_)
            with torch.no_grad():
                fq = L._batch_feats(q)
                z = vmap(L._predict, in_dims=(0, 0, None if fq is None else 0))(fast, q, fq)
            out.append(L._ratings(z))
        return np.concatenate(out) if out else np.zeros(users.shape)

    def predict(self, new_items: Sequence[NewItem], users: np.ndarray) -> np.ndarray:
        """Predicted ratings (B, Q) of `users` (B, Q) for each new item (the learner's point
        prediction, clipped to the scale)."""
        self._check_fitted()
        users = np.asarray(users, dtype=np.int64)
        if users.ndim != 2 or users.shape[0] != len(new_items):
            raise ValueError(f"users must be (B={len(new_items)}, Q), got shape {users.shape}")
        if users.size and (users.min() < 0 or users.max() >= self.n_users_):
            raise ValueError(f"user index out of range [0, {self.n_users_})")
        for b, n in enumerate(new_items):
            if len(n.users) and (n.users.min() < 0 or n.users.max() >= self.n_users_):
                raise ValueError(f"new item {b}: user index out of range [0, {self.n_users_})")
        if len(new_items) == 0 or users.shape[1] == 0:
            return np.zeros(users.shape)
        return self._predict(list(new_items), users)


class ItemMetaSGD(ItemMetaLearner):
    """Meta-SGD with the new item as the task (the default item learner)."""

    name: ClassVar[str] = "item_metasgd"
    algorithm: ClassVar[str] = "metasgd"


class ItemFinetune(ItemMetaLearner):
    """The same network trained by plain regression (no meta objective), then adapted to a new
    item by the same inner loop around the same metadata prior: what meta-learning adds."""

    name: ClassVar[str] = "item_finetune"
    algorithm: ClassVar[str] = "finetune"


ITEM_LEARNER_CLASSES: dict[str, type[ItemRecommender]] = {
    c.name: c for c in (ItemMetaSGD, ItemFinetune)
}
