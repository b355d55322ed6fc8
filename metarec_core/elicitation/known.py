"""How likely a new user is to know an item, given what they said they know and do not know.

A question about an item the newcomer has not seen spends a screen and teaches nothing, so the
chance of an answer matters as much as what the answer would teach. `ItemStats.known` gives the
same chance to everyone (the share of training users who rated the item); `CoRating` updates it
with the user's own answers: someone who knows three art-house films is likelier to know a
fourth, someone who knows none of the blockbusters asked so far is less likely to know the next.

The model is naive Bayes over the training users' rated / not-rated matrix: the prior log-odds
of knowing item j (its share of raters) plus, for every asked item i, the log likelihood ratio
of the user's answer about i (known or not) between users who know j and users who do not. The
conditional rates are co-rating counts, smoothed toward i's overall rate (``smoothing``
pseudo-users). Evidence is counted for the ``max_items`` most-rated items (the ones a sensible
strategy asks about); an item outside them keeps its prior chance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse, special

from metarec_core.data.dataset import RatingsDataset

MAX_ITEMS = 2000
SMOOTHING = 1.0
EPS = 1e-6


@dataclass(frozen=True, eq=False)
class CoRating:
    """Co-rating counts of the most-rated items of a set of (training) users."""

    n_users: int
    count: np.ndarray  # (n_items,) users who rated each item
    top: np.ndarray  # (M,) the items whose answers count as evidence, most rated first
    slot: np.ndarray  # (n_items,) each item's row in `top`, -1 outside it
    both: np.ndarray  # (M, M) float32: users who rated both items
    smoothing: float = SMOOTHING

    @classmethod
    def from_ratings(
        cls,
        data: RatingsDataset,
        users: np.ndarray | None = None,
        max_items: int = MAX_ITEMS,
        smoothing: float = SMOOTHING,
    ) -> CoRating:
        """The co-rating counts of `users` (None: every user) over their `max_items` most-rated
        items (ties: the lower item index)."""
        keep = np.ones(data.n_ratings, bool) if users is None else np.isin(data.user, users)
        u, i = data.user[keep], data.item[keep]
        seen = sparse.csr_matrix(
            (np.ones(len(u), np.float32), (u, i)), shape=(data.n_users, data.n_items)
        )
        seen.sum_duplicates()
        seen.data[:] = 1.0  # a user's repeated rating of an item counts once
        n_users = int((np.diff(seen.indptr) > 0).sum())
        count = np.asarray(seen.sum(0)).ravel().astype(np.int64)
        rated = np.flatnonzero(count > 0)
        top = rated[np.argsort(-count[rated], kind="stable")][:max_items]
        slot = np.full(data.n_items, -1, dtype=np.int64)
        slot[top] = np.arange(len(top))
        m = seen.tocsc()[:, top]
        both = (m.T @ m).toarray().astype(np.float32)
        return cls(n_users, count, top, slot, both, smoothing)

    @property
    def prior(self) -> np.ndarray:
        """(n_items,) the chance a user knows each item before any answer."""
        return self.count / max(1, self.n_users)

    def probability(self, known: np.ndarray, unknown: np.ndarray) -> np.ndarray:
        """(n_items,) the chance the user knows each item, given the items they know (rated)
        and those they said they have not seen."""
        p = np.clip(self.prior, EPS, 1 - EPS)
        known = self._slots(known)
        unknown = self._slots(unknown)
        if len(known) + len(unknown) == 0 or len(self.top) == 0:
            return self.prior.astype(np.float64)
        N, a = float(max(1, self.n_users)), self.smoothing
        n = self.count[self.top].astype(np.float64)  # (M,) raters of each candidate j
        evidence = np.zeros(len(self.top))
        for rows, answered in ((known, True), (unknown, False)):
            if not len(rows):
                continue
            n_i = self.count[self.top[rows]].astype(np.float64)[:, None]  # (A, 1)
            p_i = n_i / N
            c = self.both[rows].astype(np.float64)  # (A, M) raters of i and j
            if_j = (c + a * p_i) / (n[None, :] + a)  # P(knows i | knows j)
            if_not_j = (n_i - c + a * p_i) / (N - n[None, :] + a)  # P(knows i | not j)
            if_j, if_not_j = np.clip(if_j, EPS, 1 - EPS), np.clip(if_not_j, EPS, 1 - EPS)
            if answered:
                evidence += (np.log(if_j) - np.log(if_not_j)).sum(0)
            else:
                evidence += (np.log1p(-if_j) - np.log1p(-if_not_j)).sum(0)
        logit = np.log(p[self.top]) - np.log1p(-p[self.top]) + evidence
        out = self.prior.astype(np.float64).copy()
        out[self.top] = special.expit(logit)  # no overflow warning at a large |logit|
        return out

    def _slots(self, items: np.ndarray) -> np.ndarray:
        s = self.slot[np.asarray(items, dtype=np.int64)] if len(items) else np.zeros(0, np.int64)
        return s[s >= 0]
