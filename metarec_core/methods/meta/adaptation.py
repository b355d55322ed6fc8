"""Adapting a fitted meta-learner to new users: the inner loops of a batch at once (no outer
graph), scores over the catalogue, predictions of query items, users' adapted states."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch.func import vmap

from metarec_core.data.dataset import RatingsDataset
from metarec_core.methods.base import AdaptationTrace, AdaptedUser, LevelDistribution
from metarec_core.methods.meta.inner import Pair
from metarec_core.protocol.tasks import TaskBatch, make_tasks


class AdaptationMixin:
    """`MetaLearner`'s `adapt`, `adapt_batch`, `score_many`, `predict_batch`, `user_states`."""

    def _adapt_batch(
        self, support: TaskBatch, query: TaskBatch | None = None, trace: bool = False
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None, torch.Tensor | None]:
        """Vectorised inner loops without outer graph: (fast (B, ...), support/query losses)."""
        cfg = self.config
        with torch.no_grad():
            fast0 = {k: v.detach() for k, v in self._fast0().items()}
            fs = self._batch_feats(support.items)
            fq = None if query is None else self._batch_feats(query.items)

        def task(si, sr, sm, sf, qi, qr, qm, qf):
            qq = None if (not trace or qi is None) else (qi, qr, qm, qf)
            fast, sl, ql = self._inner_loop(fast0, si, sr, sm, sf, True, cfg.inner_steps, qq)
            if not trace:
                return (fast,)
            s_out = torch.stack([*sl, self._masked_mse(fast, si, sr, sm, sf)])
            if qq is None:
                return fast, s_out
            return fast, s_out, torch.stack([*ql, self._masked_mse(fast, *qq)])

        fdim = None if fs is None else 0
        qdim = None if query is None else 0
        qfdim = None if fq is None else 0
        with torch.no_grad():
            args = (
                support.items,
                support.ratings,
                support.mask.to(support.ratings.dtype),
                fs,
                None if query is None else query.items,
                None if query is None else query.ratings,
                None if query is None else query.mask.to(query.ratings.dtype),
                fq,
            )
            out = vmap(task, in_dims=(0, 0, 0, fdim, qdim, qdim, qdim, qfdim))(*args)
        out = (*out, None, None)
        return out[0], out[1], out[2]

    def adapt_batch(
        self, supports: Sequence[Pair], starts: np.ndarray | None = None
    ) -> dict[str, torch.Tensor]:
        """The fast weights after the inner loop on each support (items, ratings), without
        outer graph: {model parameter name: tensor batched along dim 0}.

        `starts` (B, factors + 1): the user state each task starts from, its prior centred
        there (a new item's state from its metadata, say); None: the meta-learned start, as
        `adapt` and `score_many` use. Meta-weights are not changed.
        """
        self._check_built()
        s = self._pad(supports)
        if starts is None:
            return self._adapt_batch(s)[0]
        if len(starts) != len(supports):
            raise ValueError(f"{len(starts)} starts for {len(supports)} supports")
        dt = dict(dtype=self._dtype, device=self.device_)
        steps = self.config.inner_steps
        with torch.no_grad():
            rest = {k: v.detach() for k, v in self._fast0().items() if k != "user_init"}
            c = torch.as_tensor(np.ascontiguousarray(starts), **dt)
            fs = self._batch_feats(s.items)

            def task(c0, si, sr, sm, sf):
                start = {**rest, "user_init": c0}
                fast, _, _ = self._inner_loop(start, si, sr, sm, sf, True, steps)
                return fast

            mask = s.mask.to(s.ratings.dtype)
            fdim = None if fs is None else 0
            return vmap(task, in_dims=(0, 0, 0, 0, fdim))(c, s.items, s.ratings, mask, fs)

    def predict_adapted(self, fast: dict[str, torch.Tensor], items: np.ndarray) -> np.ndarray:
        """Point predictions (B, L), clipped to the scale, of `items` (B, L) for the fast
        weights of `adapt_batch` (one row per task)."""
        self._check_built()
        q = torch.as_tensor(np.array(items, dtype=np.int64), device=self.device_)
        with torch.no_grad():
            fq = self._batch_feats(q)
            z = vmap(self._predict, in_dims=(0, 0, None if fq is None else 0))(fast, q, fq)
        return self._ratings(z)

    def _catalogue_z(self, fast: dict[str, torch.Tensor], chunk: int = 64) -> torch.Tensor:
        """(B, n_items) raw outputs z over the catalogue for adapted states `fast`."""
        B = fast["user_init"].shape[0]
        all_items = torch.arange(self.n_items_, device=self.device_)
        out = []
        with torch.no_grad():
            feats = None if self.config.adapt == "all" else self._feats(all_items)
            for a in range(0, B, chunk):
                part = {k: v[a : a + chunk] for k, v in fast.items()}
                if self.config.adapt == "user":
                    out.append(self.model_.head(part["user_init"], feats))
                else:
                    out.append(vmap(lambda f: self._predict(f, all_items, feats))(part))
        return torch.cat(out)

    def _ratings(self, z: torch.Tensor, *, expected: bool = False) -> np.ndarray:
        """Point predictions (or, `expected`, the expected ratings) for raw outputs z, as
        float64 numpy clipped to the rating scale."""
        with torch.no_grad():
            r = self.model_.expected(z) if expected else self.model_.point(z)
        return np.clip(r.double().cpu().numpy(), self.scale_.low, self.scale_.high)

    def _adapt(self, items: np.ndarray, ratings: np.ndarray, query: Pair | None) -> AdaptedUser:
        """Adapt to one new user (empty support: the meta-learned prior alone).

        The trace holds the support MSE (NaN for an empty support) and, when hidden ratings are
        given, the query MSE, before and after each inner step. Meta-weights are not changed.
        """
        s = self._pad([(items, ratings)])
        q = None if query is None else self._pad([query])
        fast, sl, ql = self._adapt_batch(s, q, trace=True)
        z = self._catalogue_z(fast)
        scores = self._ratings(z)[0]
        s_loss = tuple(float(x) for x in sl[0]) if len(items) else (math.nan,) * sl.shape[1]
        trace = AdaptationTrace(
            support_loss=s_loss,
            query_loss=None if ql is None else tuple(float(x) for x in ql[0]),
        )
        state = fast["user_init"][0].detach().double().cpu().numpy()
        expected = None
        if self.model_.ordinal is not None:
            expected = self._ratings(z, expected=True)[0]
        return AdaptedUser(scores, items, ratings.astype(np.float32), trace, state, expected)

    def score_many(self, supports: Sequence[Pair]) -> np.ndarray:
        """(n_users, n_items) predicted ratings after adapting to each support set at once."""
        return self._catalogue_many(supports, self._ratings)

    def display_many(self, supports: Sequence[Pair], items: np.ndarray | None = None) -> np.ndarray:
        """The ratings `adapt(...).display_ratings` shows (the expected rating of the ordinal
        output; the point prediction without one), all at once: of every item (n_users,
        n_items), or of `items` (n_users, L) alone, which skips scoring the catalogue."""
        return self._read_many(supports, items, lambda z: self._ratings(z, expected=True))

    def predictive_many(
        self, supports: Sequence[Pair], items: np.ndarray | None = None
    ) -> LevelDistribution | None:
        """P(rating = level) of every item (or of `items` (n_users, L)) after adapting to each
        support set, from the ordinal output (None for a learner trained without one)."""
        self._check_fitted()
        ordinal = self.model_.ordinal
        if ordinal is None:
            return None

        def probs(z: torch.Tensor) -> np.ndarray:
            with torch.no_grad():
                cdf = ordinal.cdf(z)
                lo = torch.zeros_like(cdf[..., :1])
                p = torch.cat([cdf, lo + 1.0], -1) - torch.cat([lo, cdf], -1)
            return p.clamp(min=0.0).double().cpu().numpy()

        levels = ordinal.low + ordinal.step * np.arange(ordinal.levels)
        return LevelDistribution(levels, self._read_many(supports, items, probs))

    def _read_many(self, supports: Sequence[Pair], items: np.ndarray | None, read) -> np.ndarray:
        """`read(z)` of the raw outputs of the catalogue, or of `items` (B, L), after adapting
        to each support."""
        if items is None:
            return self._catalogue_many(supports, read)
        self._check_fitted()
        items = np.asarray(items, dtype=np.int64)
        if len(supports) == 0:
            return read(torch.zeros((0, items.shape[1]), dtype=self._dtype))
        z, _ = self._query_z(supports, [(i, np.zeros(len(i))) for i in items])
        return read(z)

    def _catalogue_many(self, supports: Sequence[Pair], read) -> np.ndarray:
        """`read(z)` of the catalogue's raw outputs after adapting to each support, in chunks
        of 256 users, concatenated along the users."""
        self._check_fitted()
        out = []
        for a in range(0, len(supports), 256):
            fast, _, _ = self._adapt_batch(self._pad(supports[a : a + 256]))
            out.append(read(self._catalogue_z(fast)))
        if not out:
            return np.zeros((0, self.n_items_))
        return np.concatenate(out)

    def predict_batch(self, supports: Sequence[Pair], queries: Sequence[np.ndarray]) -> np.ndarray:
        """(n_users, max query length) predictions of the query items (clipped; padding 0)."""
        self._check_built()
        z, q = self._query_z(supports, [(np.asarray(i), np.zeros(len(i))) for i in queries])
        return self._ratings(z) * q.mask.cpu().numpy()

    def _query_z(self, supports: Sequence[Pair], queries: Sequence[Pair]):
        """Raw outputs z (B, L) of the query items after adapting to each support, and the
        padded query batch."""
        fast, _, _ = self._adapt_batch(self._pad(supports))
        q = self._pad(queries)
        with torch.no_grad():
            fq = self._batch_feats(q.items)
            z = vmap(self._predict, in_dims=(0, 0, None if fq is None else 0))(fast, q.items, fq)
        return z, q

    def user_states(self, data: RatingsDataset, users: np.ndarray, k: int = 10) -> np.ndarray:
        """(n, factors + 1) adapted user states of dataset users from k of their ratings.

        The k ratings are the first k of the user's seeded permutation (`make_tasks` order);
        users with fewer use all theirs. With ``adapt="head"`` the state is the prior for all.
        """
        self._check_fitted()
        tasks, _ = make_tasks(
            data, np.asarray(users), query=0, min_support=0, seed=self.config.seed
        )
        pairs = [(t.items[:k], t.ratings[:k]) for t in tasks]
        out = []
        for a in range(0, len(pairs), 256):
            fast, _, _ = self._adapt_batch(self._pad(pairs[a : a + 256]))
            out.append(fast["user_init"].detach().double().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.config.factors + 1))
