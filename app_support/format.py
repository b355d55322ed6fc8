"""Display text for the core's numbers and records (the core returns no display strings).

>>> [movement_label(m) for m in (2, -1, 0, None)]
['↑ 2', '↓ 1', '=', 'new']
>>> support_label(None), support_label(3)
('all', '3')
>>> interval_text(3.0, 5.0), interval_text(2.61, 4.3), interval_text(None, None)
('3–5', '2.6–4.3', '')
"""

from __future__ import annotations

from collections.abc import Sequence

from metarec_core.data.dataset import RatingsDataset
from metarec_core.evaluation.intervals import Intervals
from metarec_core.interactive.personas import Persona
from metarec_core.interactive.session import Reason, Recommendation
from metarec_core.interactive.whatif import ModelComparison, Stability

# what the movement column's help says the labels mean
MOVEMENT_HELP = "new, ↑ places up, ↓ places down, = same"
BECAUSE_HELP = (
    "The ratings that moved this prediction most, measured: the model re-adapts without each "
    "of your ratings in turn; (+0.40) means the prediction is 0.40 higher with that rating "
    "than without it. Empty: none of your ratings moves it (or more than 20 ratings)."
)
REASONS_SHOWN = 2  # per recommendation, in the table


def interval_text(low: float | None, high: float | None) -> str:
    """A prediction interval as "3–5" ("" when there is none)."""
    if low is None or high is None:
        return ""
    return f"{low:.2g}–{high:.2g}"


def interval_help(band: Intervals | None) -> str:
    """What a model's intervals are, for a column's help ("" without intervals)."""
    if band is None:
        return ""
    share = f"{round(100 * band.coverage)}%"
    if band.source == "distribution":
        return (
            f"The central range holding {share} of the model's own predictive distribution over "
            "the star levels (uncalibrated: how often it covers real ratings is in docs/results.md)."
        )
    if band.source == "calibrated distribution":
        return (
            "The central range of the model's predictive distribution over the star levels, as "
            f"wide as it had to be to hold {share} of the validation users' hidden ratings at "
            "this many ratings."
        )
    return (
        f"Predicted rating ± the error that held for {share} of the validation users' hidden "
        "ratings at this many ratings (split conformal: the model has no predictive distribution)."
    )


def reason_text(reasons: Sequence[Reason], top: int = REASONS_SHOWN) -> str:
    """What moved a recommendation, as "Alien 5★ (+0.42); Heat 1★ (−0.10)"."""
    return "; ".join(
        f"{r.title} {r.rating:g}★ ({'+' if r.delta >= 0 else '−'}{abs(r.delta):.2f})"
        for r in reasons[:top]
    )


def movement_label(move: int | None) -> str:
    """A top-N item's movement since the previous list (`session.rank_movement`): "new",
    "↑ 2" (up two places), "↓ 1" (down one) or "=" (same place)."""
    if move is None:
        return "new"
    if move > 0:
        return f"↑ {move}"
    if move < 0:
        return f"↓ {-move}"
    return "="


def item_label(data: RatingsDataset, item: int) -> str:
    """Title (or raw id) and genres of one item, as plain text: "Heat (Action, Crime)"."""
    title = item_title(data, item)
    genres = data.items.genre_list(item) if data.items is not None else []
    return f"{title} ({', '.join(genres)})" if genres else title


def recommendation_rows(recs: Sequence[Recommendation]) -> list[dict[str, object]]:
    """The top-N as table rows: rank, item id, title, genres (comma-separated), predicted
    rating, its interval, movement label and the ratings that moved it."""
    return [
        {
            "rank": r.rank,
            "item": r.item_id,
            "title": r.title,
            "genres": ", ".join(r.genres),
            "predicted": r.predicted,
            "interval": interval_text(r.low, r.high),
            "movement": movement_label(r.movement),
            "because": reason_text(r.because),
        }
        for r in recs
    ]


def item_method_label(name: str) -> str:
    """A new-item model's plain name; the meta-learner is marked as such."""
    from metarec_core.interactive.item_session import is_learner, item_display_name

    text = item_display_name(name)
    return f"{text} (meta-learner)" if is_learner(name) else text


def taste_name(likes: Sequence[str], dislikes: Sequence[str]) -> str:
    """A taste persona's short name: "Loves Sci-Fi, dislikes Romance"."""
    name = "Loves " + (", ".join(likes) if likes else "nothing in particular")
    return name + (", dislikes " + ", ".join(dislikes) if dislikes else "")


def comparison_rows(c: ModelComparison, name: str, data: RatingsDataset) -> list[dict[str, object]]:
    """One model's top-N of a what-if comparison as table rows: rank, title, predicted rating,
    its interval and the ratings that moved it."""
    why = {e.item: e.influences for e in c.explanations.get(name, ())}
    band = c.bands.get(name)
    rows = []
    for r, (i, pred) in enumerate(zip(c.top[name], c.scores[name], strict=True)):
        i = int(i)
        reasons = [
            Reason(f.item, item_title(data, f.item), f.rating, f.delta) for f in why.get(i, ())
        ]
        rows.append(
            {
                "rank": r + 1,
                "title": item_title(data, i),
                "predicted": float(pred),
                "interval": ""
                if band is None
                else interval_text(float(band.low[0, i]), float(band.high[0, i])),
                "because": reason_text(reasons),
            }
        )
    return rows


def item_title(data: RatingsDataset, item: int) -> str:
    """An item's title (its raw id without an items file)."""
    return str(data.items.titles[item]) if data.items is not None else str(data.item_ids[item])


def persona_name(p: Persona) -> str:
    """A persona's short name: "Held-out user 42" or "Loves Sci-Fi, dislikes Romance"."""
    if p.kind == "heldout":
        return f"Held-out user {p.user_id}"
    return taste_name(p.likes, p.dislikes)


def persona_description(p: Persona) -> str:
    """A sentence on who the persona is and where its ratings come from."""
    if p.kind == "heldout":
        text = f"Real user {p.user_id} (not trained on): {p.n_ratings} ratings"
        text += f"; likes {', '.join(p.favourites)}" if p.favourites else ""
        if p.replays is not None:
            text += f". The demo replays their first {p.replays}."
        return text
    return (
        f"{persona_name(p)}: generated ratings ({len(p.reveal_items)} to reveal, "
        f"{len(p.hidden_items)} hidden)"
    )


def stability_text(s: Stability, listed: str = "10 items") -> str:
    """How a model's top list (of `listed`) settled (`whatif.Stability`), in words for the
    what-if table."""
    if s.kind == "settled":
        return f"after {s.after} rating{'s' if s.after != 1 else ''}"
    if s.kind == "never_adapts":
        return f"never adapts (same {listed} as with no ratings)"
    if s.kind == "changing":
        return "still changing at the last rating"
    return "no ratings yet"


def support_label(k: int | None) -> str:
    """A support size as the report and the pages show it: the number, or "all" (MeLU's
    protocol: every rating but the hidden ones)."""
    return "all" if k is None else str(k)
