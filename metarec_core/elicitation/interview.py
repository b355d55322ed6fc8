"""An onboarding interview: one new user, one strategy, one question at a time (the
playground's "Ask me" mode; no Streamlit here)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from metarec_core.elicitation.strategies import (
    Answers,
    ElicitContext,
    Proposal,
    Strategy,
    make_strategy,
)

__all__ = ["Interview"]


@dataclass(eq=False)
class Interview:
    """Asks a new user about one item after another with `strategy`.

    `current` is the question on screen; `answer(rating)` records it (None: "haven't seen
    it") and moves to the next. Items in `exclude` (e.g. rated elsewhere on the page) are never
    asked. `proposal_seconds` holds the time each proposal took.
    """

    strategy: Strategy
    answers: Answers = field(default_factory=Answers)
    exclude: set[int] = field(default_factory=set)
    current: Proposal | None = None
    proposal_seconds: list[float] = field(default_factory=list)

    @classmethod
    def start(cls, name: str, ctx: ElicitContext) -> Interview:
        """A fresh interview with strategy `name` on `ctx`, its first question ready."""
        iv = cls(make_strategy(name, ctx))
        iv.next_question()
        return iv

    def next_question(self) -> Proposal | None:
        """Propose the next item (None: nothing left to ask)."""
        import time

        t0 = time.perf_counter()
        excl = np.fromiter(self.exclude, dtype=np.int64, count=len(self.exclude))
        self.current = self.strategy.propose(
            self.answers, self.strategy.allowed(self.answers, excl)
        )
        self.proposal_seconds.append(time.perf_counter() - t0)
        return self.current

    def answer(self, rating: float | None) -> Proposal | None:
        """Record the answer to the current question and propose the next one."""
        if self.current is None:
            raise ValueError("there is no question to answer: every item was asked")
        self.answers = self.answers.add(self.current.item, rating)
        return self.next_question()

    def skip_items(self, items) -> None:
        """Never ask about `items` (rated some other way); re-propose if the current one is."""
        self.exclude |= {int(i) for i in items}
        if self.current is not None and self.current.item in self.exclude:
            self.next_question()
