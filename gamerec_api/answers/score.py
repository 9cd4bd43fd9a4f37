"""Stage 3, score: the chosen model's compiled kernels, and nothing else of the request path calls them.

`recommend` ranks the unplayed games by item-CF score (one kernel call over the history's neighbourhood), with
the `because` history items of each pick, and fills with the most popular unplayed games when the neighbourhood
runs out; `neighbours` reads one game's stored row (positive weights only, no fill).
"""

from __future__ import annotations

import numpy as np

from gamerec_api.state import ServingState
from gamerec_assets.recsys.served_model import Recommended


def recommend(
    state: ServingState,
    history: np.ndarray | list[int],
    n: int,
    allowed: np.ndarray | None = None,
    weight: np.ndarray | None = None,
) -> Recommended:
    """Top `n` for a sorted, duplicate-free history of item indices (popular fill after the item-CF picks); only
    `allowed` items when a filter gives a mask (`policy.allowed`), scores × `weight` under boosts
    (`policy.weights`)."""
    return state.model.recommend_history(history, n, allowed, weight)


def neighbours(
    state: ServingState, item: int, k: int, allowed: np.ndarray | None = None
) -> tuple[list[int], list[float]]:
    """Up to `k` nearest neighbours of one item (only `allowed` ones, when given): (item indices, scores rounded to
    6 places), best first."""
    cols, vals = state.model.neighbours(item, k, allowed)
    return cols.tolist(), np.round(vals.astype(np.float64), 6).tolist()
