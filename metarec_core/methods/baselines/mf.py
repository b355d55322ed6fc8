"""Biased matrix factorisation by ALS with a closed-form ridge fold-in of a new user."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import ClassVar

import numpy as np

from metarec_core.methods.base import StopFlag
from metarec_core.methods.baselines.common import _Baseline, _FitStopped


class _GroupRidge:
    """Per-group ridge regressions sharing one grouping of rows (users or items in ALS).

    ``solve`` returns, for every group g, argmin_w Σ_{n in g} (target_n − feats_n·w)² + Σ reg·w².
    Groups are padded in blocks of similar size (sorted by row count) so the batched solve
    wastes little memory; the block layout is computed once and reused every ALS round.
    Groups without rows get w = 0.

    With `key` (row n's index into a table: the item of a rating when grouping by user),
    `solve` takes that table (n_keys, d) instead of per-row features and gathers each block
    straight from it: no (rows, d) array per solve (on ML-1M that copy and the masking were
    a third of an ALS round). Padding reads a zero row and a zero target.
    """

    def __init__(
        self,
        group: np.ndarray,
        n_groups: int,
        block_elems: int = 1 << 17,
        key: np.ndarray | None = None,
    ) -> None:
        self.n_groups = n_groups
        self.key = key
        n_rows = len(group)
        order = np.argsort(group, kind="stable")
        counts = np.bincount(group, minlength=n_groups)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        by_size = np.argsort(counts, kind="stable")
        self.blocks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        pos = 0
        while pos < n_groups:
            # sizes only increase along by_size, so the last group sets the padded length
            end = pos + 1
            while end < n_groups and (end - pos + 1) * max(1, counts[by_size[end]]) <= block_elems:
                end += 1
            gs = by_size[pos:end]
            L = max(1, int(counts[gs].max()))
            ar = np.arange(L)
            mask = ar[None, :] < counts[gs][:, None]
            idx = order[np.where(mask, starts[gs][:, None] + ar[None, :], 0)]
            if key is not None:
                # padded cells point past the end: at the zero row / zero target
                idx = np.where(mask, idx, n_rows)
                mask = np.where(mask, key[np.minimum(idx, n_rows - 1)], -1)
            self.blocks.append((gs, idx, mask))
            pos = end

    def solve(
        self,
        feats: np.ndarray,
        target: np.ndarray,
        reg: np.ndarray,
        should_stop: StopFlag | None = None,
    ) -> np.ndarray:
        """The ridge solutions; raises `_FitStopped` between blocks once `should_stop()`.

        `feats`: (rows, d) per-row features, or with `key` the (n_keys, d) table.
        """
        out = np.zeros((self.n_groups, feats.shape[1]))
        reg_m = np.diag(reg)
        if self.key is not None:
            table = np.concatenate([feats, np.zeros((1, feats.shape[1]))])  # row -1: padding
            target = np.concatenate([target, [0.0]])
        for gs, idx, mask in self.blocks:
            # a solve takes seconds on a million ratings: a cancel must not wait for all blocks
            if should_stop is not None and should_stop():
                raise _FitStopped
            if self.key is not None:
                X = table[mask]  # mask holds each cell's key here (-1: padding)
                t = target[idx]
            else:
                X = feats[idx] * mask[..., None]
                t = target[idx] * mask
            Xt = X.transpose(0, 2, 1)
            A = Xt @ X + reg_m
            rhs = Xt @ t[..., None]
            out[gs] = np.linalg.solve(A, rhs)[..., 0]
        return out


def _with_ones(factors: np.ndarray) -> np.ndarray:
    """[factors, 1]: a table row's features for a factor and a bias."""
    return np.concatenate([factors, np.ones((len(factors), 1))], axis=1)


class _ALSCache:
    """The last few ALS solutions in this process, keyed by their inputs.

    ALS is deterministic in (ratings, mean, items, λ, factors, rounds, seed), and one evaluation
    or one app session fits it several times on the same training ratings: `mf_foldin` and
    `mf_foldin_levels` (the same ALS, plus thresholds), the default learner's warm start (one of
    the same λ), the new-item baselines. Entries are returned as copies; a stopped solve is never
    stored. Bounded by entry count, since each holds a training set's user factors.
    """

    def __init__(self, size: int = 6) -> None:
        self.size = size
        self._entries: OrderedDict[tuple, tuple[np.ndarray, ...]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(u, i, r, mean: float, n_items: int, lam: float, factors: int, iters: int, seed: int):
        h = hashlib.blake2b(digest_size=16)
        for a in (u, i, r):
            a = np.ascontiguousarray(a)
            h.update(f"{a.dtype.str}{a.shape}".encode())
            h.update(a.data)
        return (h.hexdigest(), float(mean), int(n_items), float(lam), factors, iters, seed)

    def get(self, key: tuple) -> tuple[np.ndarray, ...] | None:
        with self._lock:
            hit = self._entries.get(key)
            if hit is None:
                return None
            self._entries.move_to_end(key)
        return tuple(a.copy() for a in hit)

    def put(self, key: tuple, value: tuple[np.ndarray, ...]) -> None:
        with self._lock:
            self._entries[key] = tuple(a.copy() for a in value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


ALS_CACHE = _ALSCache()


class MFFoldIn(_Baseline):
    """Biased matrix factorisation by ALS on training users, ridge fold-in for a new user.

    r̂_ui = mu + b_u + b_i + p_u·q_i. ALS alternates exact ridge solves for (p_u, b_u) of every
    training user and (q_i, b_i) of every item, penalty λ on all of them, ``iters`` rounds from a
    seeded N(0, 0.1²) start. A new user's (p_u, b_u) minimises
    Σ_support (r − mu − b_i − b_u − p_u·q_i)² + λ_p‖p_u‖² + λ_b b_u² (batched closed form).
    λ from ``REG_GRID`` and (λ_p, λ_b) are tuned on validation users.

    Fitted attributes for warm starts: ``item_factors_`` (n_items, factors), ``item_bias_``
    (n_items,), ``global_mean_``; also ``user_factors_``/``user_bias_`` of training users.
    """

    name: ClassVar[str] = "mf_foldin"
    STATE_ARRAYS: ClassVar[dict[str, tuple[str, ...]]] = {
        "item_factors_": ("items", "width"),
        "item_bias_": ("items",),
    }
    STATE_VALUES: ClassVar[tuple[str, ...]] = ("global_mean_", "reg_", "fold_reg_")
    PARAMS: ClassVar[tuple[str, ...]] = ("factors", "reg", "fold_reg", "iters")
    REG_GRID: ClassVar[tuple[float, ...]] = (4.0, 8.0, 16.0)
    FOLD_FACTOR_GRID: ClassVar[tuple[float, ...]] = (2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
    FOLD_BIAS_GRID: ClassVar[tuple[float, ...]] = (1.0, 2.0, 4.0, 8.0, 16.0)

    def __init__(
        self,
        seed: int = 0,
        factors: int = 20,
        reg: float | None = None,
        fold_reg: tuple[float, float] | None = None,
        iters: int = 12,
    ) -> None:
        super().__init__(seed)
        self.factors = factors
        self.reg = reg
        self.fold_reg = fold_reg
        self.iters = iters

    def _fit(self, data, ratings, val_users, should_stop, progress) -> bool:
        """ALS for each λ candidate, then the fold-in penalties tuned on `val_users`.

        `should_stop()` is polled between the blocks of every ALS solve and between tuning
        candidates: once it says so the fit returns at once, unfitted. `progress(fraction,
        message)` is told after every half-round of ALS and every λ's tuning.
        """
        u, i, r = ratings
        val = self._val_tasks(data, val_users)
        reg_grid = (self.reg,) if self.reg is not None else self.REG_GRID if val else (8.0,)
        if self.fold_reg is not None:
            fold_grid = [tuple(self.fold_reg)]
        elif val is not None:
            fold_grid = [(a, b) for a in self.FOLD_FACTOR_GRID for b in self.FOLD_BIAS_GRID]
        else:
            fold_grid = [(reg_grid[0], reg_grid[0])]
        best: tuple = (np.inf,)
        units = len(reg_grid) * (2 * self.iters + 1)  # ALS half-rounds + one tuning pass per λ
        done = 0

        def tick(message: str) -> None:
            nonlocal done
            done += 1
            if progress is not None:
                progress(done / units, message)

        try:
            for n, lam in enumerate(reg_grid, 1):
                where = f"λ {n}/{len(reg_grid)}, " if len(reg_grid) > 1 else ""
                P, bu, Q, bi = self._als(u, i, r, data.n_items, lam, should_stop, tick, where)
                self.item_factors_, self.item_bias_ = Q, bi
                # the support's normal equations do not depend on the fold-in penalties
                normal = self._normal_equations(*val[:3]) if val is not None else None
                for fr in fold_grid:
                    if should_stop is not None and should_stop():
                        raise _FitStopped
                    self.fold_reg_ = fr
                    score = self._val_mae(val, self._solve(*normal)) if val is not None else 0.0
                    if score < best[0]:
                        best = (score, lam, fr, P, bu, Q, bi)
                tick(f"{where}fold-in penalties tuned")
        except _FitStopped:
            return False  # unfitted
        _, self.reg_, self.fold_reg_, P, bu, Q, bi = best
        self.reg_ = float(self.reg_)
        self.user_factors_, self.user_bias_ = P, bu
        self.item_factors_, self.item_bias_ = Q, bi
        return True

    def _als(
        self,
        u,
        i,
        r,
        n_items: int,
        lam: float,
        should_stop: StopFlag | None = None,
        tick: Callable[[str], None] | None = None,
        where: str = "",
    ):
        key = ALS_CACHE.key(
            u, i, r, self.global_mean_, n_items, lam, self.factors, self.iters, self.seed
        )
        cached = ALS_CACHE.get(key)
        if cached is not None:
            if tick is not None:  # the caller's progress counts every half-round
                for it in range(1, self.iters + 1):
                    tick(f"{where}ALS round {it}/{self.iters}: users (cached)")
                    tick(f"{where}ALS round {it}/{self.iters}: items (cached)")
            return cached
        solution = self._solve_als(u, i, r, n_items, lam, should_stop, tick, where)
        ALS_CACHE.put(key, solution)
        return solution

    def _solve_als(self, u, i, r, n_items, lam, should_stop, tick, where):
        rng = np.random.default_rng([self.seed, 11])
        f = self.factors
        n_users = int(u.max()) + 1
        Q = rng.normal(0.0, 0.1, size=(n_items, f))
        bi = np.zeros(n_items)
        bu = np.zeros(n_users)
        P = np.zeros((n_users, f))
        y = r - self.global_mean_
        reg = np.full(f + 1, lam)
        # each side's rows gathered from the other side's [factors, 1] table, per block
        by_user = _GroupRidge(u, n_users, key=i)
        by_item = _GroupRidge(i, n_items, key=u)
        for it in range(1, self.iters + 1):
            w = by_user.solve(_with_ones(Q), y - bi[i], reg, should_stop)
            P, bu = w[:, :f], w[:, f]
            if tick is not None:
                tick(f"{where}ALS round {it}/{self.iters}: users")
            w = by_item.solve(_with_ones(P), y - bu[u], reg, should_stop)
            Q, bi = w[:, :f], w[:, f]
            if tick is not None:
                tick(f"{where}ALS round {it}/{self.iters}: items")
        return P, bu, Q, bi

    def _user_state(self, items: np.ndarray, ratings: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """(B, factors + 1): the ridge fold-in [p_u, b_u] of each padded support set."""
        return self._solve(*self._normal_equations(items, ratings, mask))

    def _normal_equations(
        self, items: np.ndarray, ratings: np.ndarray, mask: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(X'X, X'y) of each padded support set, X = [q_i, 1]: the fold-in before its penalty."""
        X = np.concatenate([self.item_factors_[items], np.ones(items.shape + (1,))], axis=2)
        X = X * mask[..., None]
        y = (ratings - self.global_mean_ - self.item_bias_[items]) * mask
        return np.einsum("bkf,bkg->bfg", X, X), np.einsum("bkf,bk->bf", X, y)

    def _solve(self, gram: np.ndarray, rhs: np.ndarray) -> np.ndarray:
        """The fold-in [p_u, b_u] from the normal equations and `fold_reg_`."""
        f = self.item_factors_.shape[1]
        lp, lb = self.fold_reg_
        A = gram + np.diag(np.r_[np.full(f, lp), lb])
        return np.linalg.solve(A, rhs[..., None])[..., 0]

    def _predict(self, state: np.ndarray, items: np.ndarray) -> np.ndarray:
        f = self.item_factors_.shape[1]
        p, b = state[:, :f], state[:, f:]
        dot = np.einsum("bf,bqf->bq", p, self.item_factors_[items])
        return self.global_mean_ + self.item_bias_[items] + b + dot

    def _predict_all(self, state: np.ndarray) -> np.ndarray:
        # a matrix product instead of gathering a (B, n_items, factors) array
        f = self.item_factors_.shape[1]
        p, b = state[:, :f], state[:, f:]
        return self.global_mean_ + self.item_bias_[None, :] + b + p @ self.item_factors_.T
