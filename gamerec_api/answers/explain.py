"""Stage 5, explain: why each item-CF pick is there.

Per pick, the scorer names up to 3 history games most similar to it (`because`); the answer also names every such
game once (`because_games`), in the order they first appear. Popularity fill explains nothing.
"""

from __future__ import annotations

from gamerec_assets.recsys.served_model import Recommended


def reasons(rec: Recommended) -> list[int]:
    """The item indices cited by some pick's `because`, each once, in order of first appearance."""
    return list(dict.fromkeys([j for because in rec.because[: rec.n_cf] for j in because]))
