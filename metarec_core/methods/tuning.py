"""A small, budgeted search of a meta-learner's data-dependent settings on its validation users.

A learner's preset was designed on MovieLens-100K; on other data a few settings may want other
values (issue 14). Before the real training, `search` trains a handful of candidate settings
with a reduced step budget on the learner's own training users and scores each on its own
validation users (the split `MetaLearner.fit` uses; never test users), by successive halving:
every candidate gets a short trial, the better half a trial twice as long, and so on, until the
budget (a number of trial trainings, optionally a time cap) is spent. The lowest validation MAE
wins, the preset on ties within ``min_gain``; the winner is then trained from scratch with the
full budget (its own early stopping).

The candidates are the preset and a few deliberate alternatives, one setting each
(`candidates`): the warm start's ridge penalty chosen on the validation users as the MF
fold-in baseline chooses its own, half and twice the factors, half and twice the outer
learning rate, one inner step, a little weight decay. Training length, the prior's scale and
the fold-in penalties are chosen on the validation users by every fit already.

`Tuned` is the mixin that does this in `fit`; `TunedMetaSGD` (registered as ``metasgd_tuned``)
is Meta-SGD with it, so ``evaluate --methods metasgd_tuned`` and the suite measure the search
inside each fold; `tuned_class` gives any learner class the same, for ``train --search N`` and
the Train page's option.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from metarec_core.data.dataset import RatingsDataset
from metarec_core.methods.base import FitHooks
from metarec_core.methods.meta import (
    LearnerConfig,
    MetaLearner,
    MetaSGD,
    TrainProgress,
    resolve_device,
)
from metarec_core.methods.meta.algorithms import learner_class

__all__ = [
    "SearchConfig",
    "SearchResult",
    "Trial",
    "Tuned",
    "TunedMetaSGD",
    "candidates",
    "plan",
    "search",
    "tuned_class",
]

# The settings the search may change (`LearnerConfig` fields).
SEARCH_FIELDS = ("mf_reg", "factors", "outer_lr", "inner_steps", "weight_decay")


@dataclass(frozen=True)
class SearchConfig:
    """How much searching: the budget and the first round's trial length."""

    # trial trainings in all (6: 4 candidates, then the better 2 with twice the steps)
    trials: int = 6
    # meta-steps of a first-round trial (at most a quarter of the learner's own), doubled
    # each round
    trial_steps: int = 300
    time_cap_s: float | None = None  # no new trial starts once the search has run this long
    # an alternative replaces the preset only with a validation MAE lower by more than this
    # (the MAE of a few hundred validation users moves by about that between seeds)
    min_gain: float = 1e-3

    def __post_init__(self) -> None:
        if self.trials < 1:
            raise ValueError(f"the search needs at least 1 trial training, got {self.trials}")
        if self.trial_steps < 1:
            raise ValueError(f"trial_steps must be at least 1, got {self.trial_steps}")
        if self.time_cap_s is not None and self.time_cap_s < 0:
            raise ValueError(f"time_cap_s must be >= 0 seconds, got {self.time_cap_s}")
        if self.min_gain < 0:
            raise ValueError(f"min_gain must be >= 0, got {self.min_gain}")


def candidates(base: LearnerConfig) -> list[dict[str, Any]]:
    """The settings tried, as changes to `base`, in the order they enter the search: the
    preset ({}), then one deliberate alternative per line (the first ones are kept when the
    budget allows fewer)."""
    out: list[dict[str, Any]] = [{}]
    if base.warm_start and base.mf_reg is not None:
        # the warm start's ridge chosen on the validation users, as the MF fold-in's own
        out.append({"mf_reg": None})
    out.append({"factors": max(2, base.factors // 2)})  # sparse data, users with few ratings
    out.append({"factors": base.factors * 2})  # dense data, a small catalogue
    out.append({"outer_lr": base.outer_lr / 2})
    out.append({"outer_lr": base.outer_lr * 2})
    if base.inner_steps > 1:
        out.append({"inner_steps": 1})  # one (Newton) step: the ridge fold-in itself
    out.append({"weight_decay": 1e-5 if base.weight_decay == 0 else base.weight_decay * 10})
    return out


def _rounds(first: int) -> list[int]:
    """Successive halving's round sizes from `first` candidates (rounds of 1 are left to the
    final training)."""
    sizes = [first]
    while sizes[-1] // 2 >= 2:
        sizes.append(sizes[-1] // 2)
    return sizes


def plan(n_candidates: int, trials: int) -> list[int]:
    """The number of trials of each round: as many candidates as the budget of `trials`
    trial trainings allows (at most `n_candidates`), halved each round."""
    best = [1]
    for first in range(1, n_candidates + 1):
        if sum(_rounds(first)) <= trials:
            best = _rounds(first)
    return best


def describe_changes(changes: Mapping[str, Any]) -> str:
    """A setting in words: "preset" or its changes, e.g. "factors 10"."""
    if not changes:
        return "preset"
    parts = []
    for k, v in changes.items():
        if k == "mf_reg" and v is None:
            parts.append("mf_reg chosen on validation users")
        else:
            parts.append(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}")
    return ", ".join(parts)


@dataclass(frozen=True)
class Trial:
    """One trial training: which setting, its step budget, what it reached."""

    round: int  # 1-based round of successive halving
    candidate: int  # index in the candidate list (0: the preset)
    changes: Mapping[str, Any]  # the setting: changes to the preset ({}: the preset)
    steps: int  # meta-step budget of the trial
    steps_run: int  # meta-steps it ran (early stopping may end it sooner)
    val_mae: float | None  # validation MAE of its kept weights (None: it diverged)
    seconds: float

    @property
    def setting(self) -> str:
        return describe_changes(self.changes)

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "changes": dict(self.changes)}


@dataclass(frozen=True)
class SearchResult:
    """The trials of a search and the setting chosen (`chosen`: changes to the preset)."""

    trials: tuple[Trial, ...]
    chosen: Mapping[str, Any]
    n_val_users: int
    seconds: float
    stopped: bool = False  # `should_stop()` ended it; nothing was chosen (the preset)

    def config(self, base: LearnerConfig) -> LearnerConfig:
        """`base` with the chosen setting."""
        return dataclasses.replace(base, **self.chosen)

    def rows(self) -> list[dict[str, Any]]:
        """One row per trial, for a table (the chosen setting's last trial marked)."""
        last = max((i for i, t in enumerate(self.trials) if t.changes == self.chosen), default=-1)
        return [
            {
                "round": t.round,
                "setting": t.setting,
                "steps": f"{t.steps_run}/{t.steps}",
                "validation MAE": t.val_mae,
                "seconds": round(t.seconds, 1),
                "chosen": i == last,
            }
            for i, t in enumerate(self.trials)
        ]

    def to_text(self) -> str:
        """The trials table and the choice, for the CLI."""
        settings = len({t.candidate for t in self.trials})
        lines = [
            f"search: {len(self.trials)} trial training(s) of {settings} setting(s) on "
            f"{self.n_val_users:,} validation users, {self.seconds:.1f} s"
        ]
        width = max([7, *(len(t.setting) for t in self.trials)])
        lines.append(f"{'round':>5}  {'setting':<{width}}  {'steps':>9}  {'val MAE':>7}  seconds")
        for r in self.rows():
            mae = "diverged" if r["validation MAE"] is None else f"{r['validation MAE']:.4f}"
            mark = "  <- chosen" if r["chosen"] else ""
            lines.append(
                f"{r['round']:>5}  {r['setting']:<{width}}  {r['steps']:>9}  {mae:>7}  "
                f"{r['seconds']:>7.1f}{mark}"
            )
        if self.stopped:
            lines.append("the search was stopped; nothing was chosen")
        else:
            lines.append(f"chosen: {describe_changes(self.chosen)}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """Plain values (a learner's state, JSON)."""
        return {
            "trials": [t.to_dict() for t in self.trials],
            "chosen": dict(self.chosen),
            "n_val_users": self.n_val_users,
            "seconds": self.seconds,
            "stopped": self.stopped,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SearchResult:
        trials = tuple(Trial(**{**t, "changes": dict(t["changes"])}) for t in d["trials"])
        return cls(
            trials, dict(d["chosen"]), int(d["n_val_users"]), float(d["seconds"]), d["stopped"]
        )


def _make(config: LearnerConfig) -> MetaLearner:
    return learner_class(config)(config)


def search(
    base: LearnerConfig,
    data: RatingsDataset,
    train_users: np.ndarray,
    val_users: np.ndarray,
    config: SearchConfig | None = None,
    *,
    should_stop: Callable[[], bool] | None = None,
    progress: Callable[[float, str], None] | None = None,
    make: Callable[[LearnerConfig], MetaLearner] = _make,
) -> SearchResult:
    """Successive halving over `candidates(base)` within ``config.trials`` trial trainings:
    each trial fits ``make(setting)`` on `train_users` with ``trial_steps`` (at most a
    quarter of ``base.steps``; doubling each round) and is scored by its validation MAE on `val_users`, which are the only users it is
    scored on. `should_stop()` ends the search (``stopped``, the preset chosen); `progress`
    gets the fraction of the planned trial steps done."""
    cfg = config or SearchConfig()
    val_users = np.asarray(val_users, dtype=np.int64)
    if len(val_users) == 0:
        raise ValueError("the search scores its trials on validation users, and none were given")
    cands = candidates(base)
    sizes = plan(len(cands), cfg.trials)
    first = min(cfg.trial_steps, max(1, base.steps // 4))
    budgets = [min(base.steps, first * 2**r) for r in range(len(sizes))]
    planned = sum(n * b for n, b in zip(sizes, budgets, strict=True)) or 1
    t0 = time.perf_counter()
    trials: list[Trial] = []
    alive = list(range(sizes[0]))
    done_steps, stopped = 0, False
    for rnd, (size, steps) in enumerate(zip(sizes, budgets, strict=True), 1):
        alive = alive[:size]
        scores: dict[int, float] = {}
        for c in alive:
            if cfg.time_cap_s is not None and trials and time.perf_counter() - t0 > cfg.time_cap_s:
                break  # the time cap: no new trial (the first one always runs)
            label = f"search round {rnd}, trial {len(trials) + 1}: {describe_changes(cands[c])}"

            def report(
                f: float, message: str, done: int = done_steps, steps: int = steps, label=label
            ) -> None:
                if progress is not None:
                    progress(min(1.0, (done + f * steps) / planned), f"{label}: {message}")

            trial = _trial(base, cands[c], steps, data, train_users, val_users, make,
                           should_stop, report, rnd, c)  # fmt: skip
            if should_stop is not None and should_stop():
                stopped = True
                break
            trials.append(trial)
            scores[c] = math.inf if trial.val_mae is None else trial.val_mae
            scores[c] -= cfg.min_gain if c == 0 else 0.0  # the preset wins ties
            done_steps += steps
        if stopped or not scores:
            break
        alive = sorted(scores, key=lambda c: (scores[c], c))
        if len(scores) < size:  # the time cap ended the round: no further round
            break
    chosen = {} if stopped or not trials else dict(cands[alive[0]])
    if all(t.val_mae is None for t in trials):
        chosen = {}  # every trial diverged: keep the preset (its own fit will say why)
    return SearchResult(tuple(trials), chosen, len(val_users), time.perf_counter() - t0, stopped)


def _trial(
    base: LearnerConfig,
    changes: Mapping[str, Any],
    steps: int,
    data: RatingsDataset,
    train_users: np.ndarray,
    val_users: np.ndarray,
    make: Callable[[LearnerConfig], MetaLearner],
    should_stop: Callable[[], bool] | None,
    progress: Callable[[float, str], None],
    rnd: int,
    candidate: int,
) -> Trial:
    """One trial training of `changes` with `steps` meta-steps at most."""
    cfg = dataclasses.replace(base, **changes, steps=steps)
    t = time.perf_counter()
    learner = make(cfg)
    try:
        learner.fit(data, train_users, val_users, should_stop=should_stop, progress=progress)
        mae = learner.best_val_mae_
    except FloatingPointError:  # this setting diverged: it loses, the search goes on
        mae = None
    ran = len(getattr(learner, "history_", []))  # its meta-steps
    mae = None if mae is None or not math.isfinite(mae) else float(mae)
    return Trial(rnd, candidate, dict(changes), steps, ran, mae, time.perf_counter() - t)


class Tuned:
    """Mixin of a `MetaLearner` class: `fit` first runs `search` (its ``search_config``, or
    the one given to the constructor) on the same training and validation users, then trains
    the chosen setting with the full budget. ``search_`` is the `SearchResult` (kept in the
    state). Trials are trained by the class of ``trial_algorithm`` (default: the config's)."""

    search_config: ClassVar[SearchConfig] = SearchConfig()
    trial_algorithm: ClassVar[str | None] = None
    # the share of the progress bar given to the search (the rest: the final training)
    SEARCH_SHARE: ClassVar[float] = 0.6

    def __init__(self, config: LearnerConfig | None = None, search: SearchConfig | None = None):
        super().__init__(config)  # type: ignore[call-arg]
        self.search_config = search or type(self).search_config

    def _fit_users(
        self, data: RatingsDataset, train: np.ndarray, val: np.ndarray | None, hooks: FitHooks
    ) -> bool:
        """Search, then `MetaLearner`'s fit with the chosen setting (same users, same hooks)."""
        cfg: LearnerConfig = self.config  # type: ignore[attr-defined]
        train, val = self._split(train, val)  # type: ignore[attr-defined]
        progress, callback = hooks.progress, hooks.callback
        share = self.SEARCH_SHARE
        t0 = time.perf_counter()

        def searching(fraction: float, message: str) -> None:
            if progress is not None:
                progress(share * fraction, message)
            if callback is not None:
                pct = int(round(100 * fraction))
                callback(TrainProgress(pct, 100, None, None, None, time.perf_counter() - t0,
                                       phase="search"))  # fmt: skip

        # the device its trials and its training run on, known (to a job's progress) from the start
        self.device_ = resolve_device(cfg.device)
        if val is None or len(val) == 0:
            self.search_ = SearchResult((), {}, 0, 0.0)  # nothing to score on: the preset
        else:
            base = dataclasses.replace(cfg, algorithm=self.trial_algorithm or cfg.algorithm)
            self.search_ = search(
                base, data, train, val, self.search_config,
                should_stop=hooks.should_stop, progress=searching,
            )  # fmt: skip
            if self.search_.stopped:
                return False
            searching(1.0, "search done")
        self.config = dataclasses.replace(cfg, **self.search_.chosen)

        def training(fraction: float, message: str) -> None:
            if progress is not None:
                progress(share + (1 - share) * fraction, message)

        hook = training if progress is not None else None
        return super()._fit_users(  # type: ignore[misc]
            data, train, val, FitHooks(hooks.should_stop, hook, callback)
        )

    def to_state(self) -> dict[str, Any]:
        state = super().to_state()  # type: ignore[misc]
        if getattr(self, "search_", None) is not None:
            state["search"] = self.search_.to_dict()
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any], device: str = "cpu") -> MetaLearner:
        learner = super().from_state(state, device)  # type: ignore[misc]
        if isinstance(state.get("search"), dict):
            learner.search_ = SearchResult.from_dict(state["search"])
        return learner


class TunedMetaSGD(Tuned, MetaSGD):
    """Meta-SGD whose `fit` first searches its data-dependent settings on the validation users
    (`search`, the default `SearchConfig`): ``metasgd_tuned``."""

    name: ClassVar[str] = "metasgd_tuned"
    trial_algorithm: ClassVar[str | None] = "metasgd"


@functools.cache
def tuned_class(base: type[MetaLearner]) -> type[MetaLearner]:
    """`base` with the search in its fit (same algorithm name, so a saved model is a plain
    `base` learner with the chosen setting); for ``train --search`` and the Train page."""
    if issubclass(base, Tuned):
        return base
    attrs = {"name": base.name, "__module__": __name__, "__doc__": Tuned.__doc__}
    return type(f"{base.__name__}WithSearch", (Tuned, base), attrs)


def tuned_learner(config: LearnerConfig, trials: int = SearchConfig.trials) -> MetaLearner:
    """A learner of `config` that searches within `trials` trial trainings before its fit."""
    cls = tuned_class(learner_class(config))
    return cls(config, SearchConfig(trials=trials))  # type: ignore[call-arg]


@dataclass(frozen=True)
class TunedFactory:
    """A job's learner factory (`jobs.TrainingJob`): the config's learner with the search."""

    trials: int = SearchConfig.trials

    def __call__(self, config: LearnerConfig) -> MetaLearner:
        return tuned_learner(config, self.trials)


def trials_table(result: SearchResult | None) -> Sequence[dict[str, Any]]:
    """The rows of a learner's search (empty without one), for a page's table."""
    return [] if result is None else result.rows()
