"""A short glossary: the plain words the app shows and the technical term each stands for.

Pages show `Entry.plain` in labels and captions and put the technical term with its meaning in
the help tooltip (`help_text`); the Glossary page lists every entry.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    """One glossary entry."""

    term: str  # the technical term, as papers and the CLI say it
    plain: str  # the plain words the pages use for it
    meaning: str  # one or two plain sentences


GLOSSARY: tuple[Entry, ...] = (
    Entry(
        "cold start",
        "a new user",
        "A user the system knows nothing or almost nothing about: no rating history to learn "
        "their taste from.",
    ),
    Entry(
        "meta-learning",
        "learning to learn quickly",
        "Training on many users' small learning problems so that the model learns a starting "
        "point (and step sizes) from which a new user's problem is learned in a few steps.",
    ),
    Entry(
        "MAML",
        "a learned starting point",
        "Model-Agnostic Meta-Learning: finds initial weights from which a few gradient steps on "
        "a new user's ratings give a good model of that user. Meta-SGD, Reptile, first-order "
        "MAML and MeLU are variants.",
    ),
    Entry(
        "support set",
        "the ratings the model sees",
        "The ratings of a user that the model adapts on (in the playground: the ratings given "
        "so far).",
    ),
    Entry(
        "query set",
        "the hidden ratings",
        "Ratings of the same user kept hidden from the model and used to measure its error.",
    ),
    Entry(
        "k-shot",
        "after k ratings",
        "Evaluating a model after it has seen k ratings of a new user (support size k).",
    ),
    Entry(
        "inner step",
        "an adaptation step",
        "One gradient step that fits the model to one user's seen ratings (the inner loop); "
        "step 0 is the meta-learned start.",
    ),
    Entry(
        "inner learning rate",
        "adaptation step size",
        "How far each adaptation step moves the model (Meta-SGD learns one per parameter).",
    ),
    Entry(
        "outer loss",
        "training error on hidden ratings",
        "The error on the hidden ratings after adapting, averaged over a batch of training "
        "users; meta-training lowers it by moving the starting point (the outer loop).",
    ),
    Entry(
        "outer learning rate",
        "training step size",
        "How far each meta-training step moves the shared starting point.",
    ),
    Entry(
        "meta-step",
        "a training step",
        "One update of the shared starting point from a batch of training users (the meta-batch).",
    ),
    Entry(
        "meta-batch",
        "users per training step",
        "How many training users each meta-training step learns from.",
    ),
    Entry(
        "validation users",
        "check users",
        "Users set aside from training (10%) to decide when to stop; never trained on.",
    ),
    Entry(
        "early stopping",
        "stop when it stops improving",
        "Training ends once the check users' error has not improved for a while (patience) and "
        "the best weights seen are kept.",
    ),
    Entry(
        "held-out user",
        "a user the model never saw",
        "A real user left out of training, whose ratings can be replayed to test a model fairly.",
    ),
    Entry(
        "fold-in",
        "fitting a new user's taste in one step",
        "For matrix factorisation: the item factors stay fixed and a new user's taste vector is "
        "solved from their ratings in closed form (ridge regression).",
    ),
    Entry(
        "matrix factorisation (MF)",
        "taste vectors",
        "Describes every user and item by a short vector of numbers; a predicted rating is "
        "their dot product plus offsets.",
    ),
    Entry(
        "MAE",
        "average error",
        "Mean absolute error: how many stars a prediction is off, on average (lower is better).",
    ),
    Entry(
        "RMSE",
        "typical error, big misses weigh more",
        "Root mean squared error: like the average error, but large misses count more.",
    ),
    Entry(
        "MSE",
        "squared error",
        "Mean squared error, in stars squared (rating²): the loss the models are trained on.",
    ),
    Entry(
        "nDCG@5",
        "quality of the top 5",
        "Normalised discounted cumulative gain of the first 5 recommendations: 1 when the "
        "best-rated hidden items come first, lower when they are ranked down (higher is better).",
    ),
    Entry(
        "recall@10",
        "good items found in the top 10",
        "The share of the user's well-rated hidden items that appear among the top 10.",
    ),
    Entry(
        "95% CI",
        "range of plausible values",
        "A 95% confidence interval from resampling the test users (bootstrap): a difference "
        "whose interval excludes 0 is unlikely to be noise.",
    ),
    Entry(
        "paired difference",
        "head-to-head difference",
        "The error of one method minus another's, user by user on the same hidden ratings, "
        "then averaged.",
    ),
    Entry(
        "PCA",
        "a 2-D map of users",
        "Principal component analysis: squeezes each user's taste vector to two coordinates so "
        "similar users land close together.",
    ),
    Entry(
        "new item",
        "a new item",
        "An item the system has no rating of yet (a film released today): only its description "
        "(title, genres, year) and then its first few ratings tell the models who will like it. "
        "Also called item cold start.",
    ),
    Entry(
        "held-out item",
        "an item the models never saw",
        "An item of a held-out group (fold) whose ratings were removed before fitting, so its "
        "real ratings can be replayed as if it were new.",
    ),
    Entry(
        "audience",
        "who to show it to",
        "The users a model would show a new item to: those with the highest predicted rating "
        "for it, leaving out users who rated it already.",
    ),
    Entry(
        "elicitation",
        "what to ask a newcomer first",
        "Choosing which items a new user is asked to rate during onboarding (the most rated, "
        "the most divisive, the most informative for the model, ...): the choice changes how "
        "good the first recommendations are as much as the model does.",
    ),
    Entry(
        "persona",
        "a simulated new user",
        "A held-out real user or a made-up taste profile who rates items one at a time, with "
        "some ratings kept hidden to measure the error.",
    ),
)

_BY_TERM = {e.term.lower(): e for e in GLOSSARY}


def lookup(term: str) -> Entry:
    """The entry of `term` (case-insensitive); KeyError names the known terms."""
    try:
        return _BY_TERM[term.lower()]
    except KeyError:
        known = ", ".join(e.term for e in GLOSSARY)
        raise KeyError(f"no glossary entry {term!r}; known: {known}") from None


def help_text(term: str, extra: str = "") -> str:
    """A tooltip: `extra` (what the control does, in plain words), then the technical term and
    its meaning."""
    e = lookup(term)
    head = f"{extra.rstrip()} " if extra else ""
    return f"{head}Technical term: {e.term}. {e.meaning}"
