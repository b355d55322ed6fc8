"""Display text for the core's numbers and records (the core returns no display strings).

>>> [movement_label(m) for m in (2, -1, 0, None)]
['↑ 2', '↓ 1', '=', 'new']
>>> support_label(None), support_label(3)
('all', '3')
"""

from __future__ import annotations

from collections.abc import Sequence

from metarec_core.data.dataset import RatingsDataset
from metarec_core.interactive.personas import Persona
from metarec_core.interactive.session import Recommendation
from metarec_core.interactive.whatif import Stability

# what the movement column's help says the labels mean
MOVEMENT_HELP = "new, ↑ places up, ↓ places down, = same"


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
    title = str(data.items.titles[item]) if data.items is not None else str(data.item_ids[item])
    genres = data.items.genre_list(item) if data.items is not None else []
    return f"{title} ({', '.join(genres)})" if genres else title


def recommendation_rows(recs: Sequence[Recommendation]) -> list[dict[str, object]]:
    """The top-N as table rows: rank, item id, title, genres (comma-separated), predicted
    rating and movement label."""
    return [
        {
            "rank": r.rank,
            "item": r.item_id,
            "title": r.title,
            "genres": ", ".join(r.genres),
            "predicted": r.predicted,
            "movement": movement_label(r.movement),
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
