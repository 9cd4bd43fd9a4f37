"""The holdout protocol behind every published figure: training's validation, the publication gate, the
evaluation report and the champion comparison all score through it (`evaluation.Holdout`), so they compare.
Model selection sees only the train fold, which it resamples (`selection.inner_split`).

Protocol (per user, seeded):
- users with fewer than `min_history` interactions keep everything in `train` (they still teach co-occurrence);
- otherwise the user's interactions are shuffled with the seed; `max(1, round(test_fraction * n))` go to `test`,
  the next `max(1, round(validation_fraction * n))` to `validation`, the rest to `train`.
Validation is what the publication gate and the champion comparison look at; test is reported, never tuned on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

FOLDS = ("train", "validation", "test")


@dataclass(frozen=True)
class SplitParams:
    test_fraction: float = 0.2
    validation_fraction: float = 0.2
    min_history: int = 3
    seed: int = 42


def split_interactions(logs: pl.DataFrame, params: SplitParams = SplitParams()) -> pl.DataFrame:
    """Add a `fold` column (train | validation | test) to user_id, game_id rows, returned sorted by them.

    user_id comes back as text (an integer id is its decimal string). The seeded keys are dealt in (user_id,
    game_id) order, never in the order rows arrived: the same logs read back from SQLite or MariaDB, or shuffled,
    get the same folds. Users are ordered as `matrix.user_order` orders them (shorter ids first, then by text), which
    for decimal ids is numeric order, so integer-keyed logs keep the folds they always had.
    """
    rng = np.random.default_rng(params.seed)
    frame = (
        logs.with_columns(pl.col("user_id").cast(pl.Utf8))
        .sort(pl.col("user_id").str.len_bytes(), "user_id", "game_id", maintain_order=True)
        .with_columns(pl.Series("_key", rng.random(logs.height)))
    )
    frame = frame.with_columns(
        pl.col("_key").rank("ordinal").over("user_id").alias("_rank"),
        pl.len().over("user_id").alias("_n"),
    )
    eligible = pl.col("_n") >= params.min_history
    n_test = pl.max_horizontal(pl.lit(1), (pl.col("_n") * params.test_fraction).round().cast(pl.Int64))
    n_val = pl.max_horizontal(pl.lit(1), (pl.col("_n") * params.validation_fraction).round().cast(pl.Int64))
    fold = (
        pl.when(eligible & (pl.col("_rank") <= n_test))
        .then(pl.lit("test"))
        .when(eligible & (pl.col("_rank") <= n_test + n_val))
        .then(pl.lit("validation"))
        .otherwise(pl.lit("train"))
    )
    return frame.with_columns(fold.alias("fold")).drop("_key", "_rank", "_n")
