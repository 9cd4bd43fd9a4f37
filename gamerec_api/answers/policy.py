"""Stage 4, the serving policy: what a list may contain once scored.

Today: never a played or liked game and popularity fill (both asked of the scorer, which skips the history and
fills in the same compiled pass), never a disliked game (`ask` over-asks by the number of dislikes, `apply` drops
them, so k remain). Filters, editions and diversity will each be one more function of this stage, applied to the
scored list before it is explained and encoded.
"""

from __future__ import annotations

from gamerec_api.schemas import Source
from gamerec_assets.recsys.served_model import Recommended


def ask(k: int, excluded: list[int]) -> int:
    """How many items to score so that `k` remain after the policy."""
    return k + len(excluded)


def apply(rec: Recommended, excluded: list[int], k: int) -> Recommended:
    """The first k items of `rec` that are not excluded."""
    if not excluded:
        return rec
    drop = set(excluded)
    keep = [j for j, i in enumerate(rec.idx) if i not in drop][:k]
    return Recommended(
        [rec.idx[j] for j in keep],
        [rec.scores[j] for j in keep],
        sum(j < rec.n_cf for j in keep),
        [rec.because[j] for j in keep],
    )


def source_of(has_history: bool, has_liked: bool, n_cf: int) -> Source:
    """`item_cf` (history, plus liked), `basket` (liked only), `popular` (nothing usable, or no item-CF pick)."""
    if n_cf == 0:
        return "popular"
    if has_history:
        return "item_cf"
    return "basket" if has_liked else "popular"
