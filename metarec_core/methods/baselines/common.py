"""What every baseline shares: training ratings, padded supports, validation tasks, the
closed-form `adapt`, clipping, and persistence of the declared fitted attributes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from metarec_core.data.dataset import RatingScale, RatingsDataset
from metarec_core.methods.base import (
    AdaptationTrace,
    AdaptedUser,
    Capabilities,
    FitHooks,
    FitProgress,
    Recommender,
    StopFlag,
    checked_pair,
)
from metarec_core.methods.baselines.state import (
    MAX_LIST,
    check_header,
    check_seed,
    check_values_and_arrays,
    need,
    plain,
    real,
    restore,
    state_arrays,
)
from metarec_core.protocol.tasks import make_tasks

TUNE_SUPPORT = (1, 3, 5, 10, 20)
TUNE_QUERY = 10

Support = tuple[np.ndarray, np.ndarray]
# fit hooks of the slow (ALS) baselines: a stop flag, polled between blocks of work, and the
# fraction of the fit done with a short message


class _FitStopped(Exception):
    """`should_stop()` said so inside a fit; the fit returns unfitted."""


# ---------------------------------------------------------------------------------------------
# helpers


def _train_ratings(
    data: RatingsDataset, train_users: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(user, item, rating) of the training users' ratings; users renumbered 0..n_train-1."""
    train_users = np.unique(np.asarray(train_users, dtype=np.int64))
    if len(train_users) == 0:
        raise ValueError("fit() needs at least one training user")
    if train_users[0] < 0 or train_users[-1] >= data.n_users:
        raise ValueError(f"train_users must be inner user indices in [0, {data.n_users})")
    local = np.full(data.n_users, -1, dtype=np.int64)
    local[train_users] = np.arange(len(train_users))
    keep = local[data.user] >= 0
    if not keep.any():
        raise ValueError("the training users have no ratings")
    return local[data.user[keep]], data.item[keep], data.rating[keep].astype(np.float64)


def _pad(supports: Sequence[Support], n_items: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Padded (items, ratings, mask) arrays (B, K) of support sets; K >= 1, padding masked out."""
    B = len(supports)
    K = max([1, *(len(i) for i, _ in supports)])
    items = np.zeros((B, K), dtype=np.int64)
    ratings = np.zeros((B, K), dtype=np.float64)
    mask = np.zeros((B, K), dtype=bool)
    for b, (i, r) in enumerate(supports):
        i, r = checked_pair(i, r, n_items, f"support {b}")
        n = len(i)
        items[b, :n], ratings[b, :n], mask[b, :n] = i, r, True
    return items, ratings, mask


STATE_FORMAT = "metarec-baseline"
STATE_VERSION = 1


class _Baseline(Recommender):
    """Shared plumbing: fitted-state checks, validation tasks, adapt via score_many, and
    persistence of what each family declares below."""

    capabilities: ClassVar[Capabilities] = Capabilities()
    # What `to_state` saves, declared by each family so that a file is checked against it
    # before anything is built: fitted arrays by attribute -> the size of each axis ("items":
    # the catalogue; "width": any size up to a bound; "levels": the scale's levels - 1),
    # fitted numbers (a float, or a tuple of floats), constructor settings besides the seed.
    STATE_ARRAYS: ClassVar[dict[str, tuple[str, ...]]] = {}
    STATE_VALUES: ClassVar[tuple[str, ...]] = ()
    PARAMS: ClassVar[tuple[str, ...]] = ()
    OPTIONAL_ARRAYS: ClassVar[frozenset[str]] = frozenset()  # may be None (not fitted there)

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    # -- to implement ------------------------------------------------------------------------
    def _user_state(self, items: np.ndarray, ratings: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """(B, d) adapted user states from padded supports (d may be 0)."""
        return np.zeros((len(items), 0))

    def _predict(self, state: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Raw (unclipped) scores of `items` (B, Q) for users with `state` (B, d)."""
        raise NotImplementedError

    # -- shared ------------------------------------------------------------------------------
    def _fit_users(
        self, data: RatingsDataset, train: np.ndarray, val: np.ndarray | None, hooks: FitHooks
    ) -> bool:
        """Fit on the ratings of the `train` users, tuning on `val` (the package doc says how).

        Slow fits poll `should_stop()` and report `progress(fraction, message)`; a fit stopped
        so returns unfitted. Quick ones ignore both.
        """
        self.n_items_ = data.n_items
        self.scale_: RatingScale = data.scale
        u, i, r = _train_ratings(data, train)
        self.global_mean_ = float(r.mean())
        return self._fit(data, (u, i, r), val, hooks.should_stop, hooks.progress)

    def _fit(
        self,
        data: RatingsDataset,
        ratings: tuple[np.ndarray, np.ndarray, np.ndarray],
        val_users: np.ndarray | None,
        should_stop: StopFlag | None,
        progress: FitProgress | None,
    ) -> bool:
        """The family's own fit from the training (user, item, rating) triples (users numbered
        0..n_train-1), `global_mean_` set; False: stopped. Default: nothing more to fit."""
        return True

    def _finish(self, raw: np.ndarray) -> np.ndarray:
        if not self.capabilities.predicts_ratings:
            return raw
        return np.clip(raw, self.scale_.low, self.scale_.high)

    def _expected(self, raw: np.ndarray) -> np.ndarray | None:
        """The ratings to show a person when they differ from the scores (None: the scores)."""
        return None

    def score_many(self, supports: Sequence[Support]) -> np.ndarray:
        """Scores over the whole catalogue for each support set: (B, n_items)."""
        return self._finish(self._raw_many(supports))

    def display_many(
        self, supports: Sequence[Support], items: np.ndarray | None = None
    ) -> np.ndarray:
        """The ratings `adapt(...).display_ratings` shows, for each support set: of the whole
        catalogue (B, n_items) or of `items` (B, L)."""
        raw = self._raw_many(supports, items)
        expected = self._expected(raw)
        return self._finish(raw) if expected is None else expected

    def _raw_many(self, supports: Sequence[Support], items: np.ndarray | None = None) -> np.ndarray:
        """Raw scores of the whole catalogue (B, n_items), or of `items` (B, L), for each
        support set."""
        self._check_fitted()
        if len(supports) == 0:
            return np.zeros((0, self.n_items_ if items is None else np.shape(items)[1]))
        si, sr, mask = _pad(supports, self.n_items_)
        state = self._user_state(si, sr, mask)
        if items is None:
            return self._predict_all(state)
        return self._predict(state, np.asarray(items, dtype=np.int64))

    def _predict_all(self, state: np.ndarray) -> np.ndarray:
        """Raw scores of the whole catalogue (B, n_items)."""
        return self._predict(
            state, np.broadcast_to(np.arange(self.n_items_), (len(state), self.n_items_))
        )

    def _adapt(self, items: np.ndarray, ratings: np.ndarray, query: Support | None) -> AdaptedUser:
        """Closed-form adaptation: the trace has the loss before (prior) and after fold-in."""
        pi, pr, pm = _pad([(items, ratings)], self.n_items_)
        state = self._user_state(pi, pr, pm)
        prior = self._user_state(pi[:, :0], pr[:, :0], pm[:, :0])
        raw = self._predict_all(state)
        scores = self._finish(raw)[0]
        trace = None
        if self.capabilities.predicts_ratings:
            before = self._finish(self._predict_all(prior))[0]

            def mse(s: np.ndarray, i: np.ndarray, r: np.ndarray) -> float:
                return float(np.mean((s[i] - r) ** 2)) if len(i) else float("nan")

            sup = (mse(before, items, ratings), mse(scores, items, ratings))
            qry = None
            if query is not None:
                qi, qr = query
                qry = (mse(before, qi, qr), mse(scores, qi, qr))
            trace = AdaptationTrace(support_loss=sup, query_loss=qry)
        expected = self._expected(raw)
        return AdaptedUser(
            scores=scores,
            expected=None if expected is None else expected[0],
            support_items=items,
            support_ratings=ratings,
            trace=trace,
            state=state[0] if state.shape[1] else None,
        )

    def _val_tasks(
        self, data: RatingsDataset, val_users: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
        """Padded supports and queries of the validation users, one row per (user, k).

        Returns (items, ratings, mask, query_items, query_ratings) or None when there is nothing
        to tune on (no validation user with more than TUNE_QUERY ratings).
        """
        if val_users is None or len(val_users) == 0:
            return None
        tasks, _ = make_tasks(data, np.asarray(val_users), query=TUNE_QUERY, seed=self.seed)
        sups, qi, qr = [], [], []
        for t in tasks:
            q_items, q_ratings = t.query
            for k in TUNE_SUPPORT:
                if k <= t.n_available:
                    sups.append(t.support(k))
                    qi.append(q_items)
                    qr.append(q_ratings)
        if not sups:
            return None
        items, ratings, mask = _pad(sups, data.n_items)
        return items, ratings, mask, np.stack(qi), np.stack(qr).astype(np.float64)

    def _val_mae(self, val: tuple, state: np.ndarray | None = None) -> float:
        items, ratings, mask, qi, qr = val
        if state is None:
            state = self._user_state(items, ratings, mask)
        return float(np.mean(np.abs(self._finish(self._predict(state, qi)) - qr)))

    # -- persistence -------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        """The declared fitted attributes as float64 tensors and plain numbers (the training
        users' own factors, used only for warm starts, are not kept)."""
        self._check_fitted()
        arrays = state_arrays((key, getattr(self, key)) for key in self.STATE_ARRAYS)
        return {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "name": self.name,
            "seed": int(self.seed),
            "params": {k: plain(getattr(self, k)) for k in self.PARAMS},
            "n_items": int(self.n_items_),
            "scale": [float(self.scale_.low), float(self.scale_.high), float(self.scale_.step)],
            "arrays": arrays,
            "values": {k: plain(getattr(self, k)) for k in self.STATE_VALUES},
        }

    @classmethod
    def check_state(cls, state: dict[str, Any], *, max_width: int = 2**31) -> None:
        """Raise ValueError naming the first entry of `state` that is not what this class
        declares (format, catalogue size, array shapes, finite numbers); reads no more than
        the state holds and builds nothing."""
        not_fmt = f"not a baseline state ({STATE_FORMAT!r})"
        check_header(state, cls.name, STATE_FORMAT, STATE_VERSION, not_fmt)
        n, seed, sc = state.get("n_items"), state.get("seed"), state.get("scale")
        need(real(n) and isinstance(n, int) and n >= 1, "n_items is not a positive integer")
        check_seed(seed)
        need(
            isinstance(sc, list) and len(sc) == 3 and all(map(real, sc)),
            "scale is not [low, high, step]",
        )
        from metarec_core.methods.baselines.levels import level_grid

        grid = level_grid(RatingScale(*map(float, sc))) if sc[0] < sc[1] and sc[2] > 0 else None
        params, values, arrays = (state.get(k) for k in ("params", "values", "arrays"))
        need(isinstance(params, dict) and set(params) <= set(cls.PARAMS), "params are unknown")
        for k, v in params.items():
            ok = v is None or real(v) or isinstance(v, bool)
            ok = ok or (isinstance(v, list) and len(v) <= MAX_LIST and all(map(real, v)))
            need(ok, f"params.{k} is not a number")
        want = {"items": n, "levels": None if grid is None else grid[2] - 1}
        check_values_and_arrays(cls, values, arrays, want, max_width)

    @classmethod
    def from_state(cls, state: dict[str, Any], device: str = "cpu") -> _Baseline:
        """Rebuild the fitted baseline from `to_state()` (checked first); `device` is unused."""
        cls.check_state(state)
        params = {k: tuple(v) if isinstance(v, list) else v for k, v in state["params"].items()}
        obj = cls(seed=state["seed"], **params)
        obj.n_items_ = state["n_items"]
        obj.scale_ = RatingScale(*map(float, state["scale"]))
        return restore(obj, state)

    def _loaded(self) -> None:
        """Derive what `to_state` leaves out (nothing, unless a family says otherwise)."""
