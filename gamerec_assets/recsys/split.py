"""The holdout protocol behind every published figure: training's validation, the publication gate, the
evaluation report and the champion comparison all score through it (`evaluation.Holdout`), so they compare.
Model selection sees only the train fold, which it resamples (`selection.inner_split`).

Protocol (per user, seeded):
- users with fewer than `min_history` interactions keep everything in `train` (they still teach co-occurrence);
- otherwise the user's interactions are shuffled with the seed; `max(1, round(test_fraction * n))` go to `test`,
  the next `max(1, round(validation_fraction * n))` to `validation`, the rest to `train`.
Validation is what the publication gate and the champion comparison look at; test is reported, never tuned on.

Temporal protocol (`temporal_split`, reported beside the random one when the logs carry time): interactions with a
`timestamp_us` (players' events; the base source's rows have none) are cut at the `cutoff_quantile` (0.8) of their
times. The model is fit on everything before the cut-off (untimed rows count as before: the base source is the
past) and tested on the timed interactions at or after it, for users who also have interactions before it (a user
first seen after the cut-off has no history to recommend from). It answers "does the model predict what players did
next", which a random split cannot: there, the future leaks into the history. It runs only with at least
`min_test` test interactions from `min_users` users; otherwise the reason is reported instead.
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


@dataclass(frozen=True)
class TemporalParams:
    cutoff_quantile: float = 0.8
    min_test: int = 20  # timed interactions after the cut-off, of users with a history before it
    min_users: int = 5


@dataclass(frozen=True)
class TemporalSplit:
    frame: pl.DataFrame | None  # the logs with a `fold` column (train | test), or None when not run
    info: dict[str, object]  # cut-off and counts, or `reason` when not run

    @property
    def ran(self) -> bool:
        return self.frame is not None


def temporal_split(logs: pl.DataFrame, params: TemporalParams = TemporalParams()) -> TemporalSplit:
    """The module's temporal protocol: the logs before the cut-off as `train`, the timed interactions after it of
    users seen before as `test` (other rows after the cut-off are left out), or the reason it cannot run."""
    timed = logs["timestamp_us"].drop_nulls() if "timestamp_us" in logs.columns else pl.Series([], dtype=pl.Int64)
    if timed.len() < params.min_test:
        return TemporalSplit(None, {"reason": f"{timed.len()} timestamped interactions; needs {params.min_test}"})
    cutoff = int(timed.quantile(params.cutoff_quantile, "lower"))  # type: ignore[arg-type]
    frame = logs.with_columns(pl.col("user_id").cast(pl.Utf8))
    before = pl.col("timestamp_us").is_null() | (pl.col("timestamp_us") < cutoff)
    train = frame.filter(before)
    after = frame.filter(~before)
    test = after.join(train.select("user_id").unique(), on="user_id", how="semi")
    info: dict[str, object] = {
        "cutoff_us": cutoff,
        "train_interactions": train.height,
        "test_interactions": test.height,
        "test_users": test["user_id"].n_unique(),
        "left_out_new_users": after["user_id"].n_unique() - test["user_id"].n_unique(),
    }
    if test.height < params.min_test or int(info["test_users"]) < params.min_users:  # type: ignore[call-overload]
        reason = (
            f"{test.height} interactions of {info['test_users']} known users after the cut-off; "
            f"needs {params.min_test} of {params.min_users}"
        )
        return TemporalSplit(None, {**info, "reason": reason})
    split = pl.concat(
        [train.with_columns(pl.lit("train").alias("fold")), test.with_columns(pl.lit("test").alias("fold"))]
    )
    return TemporalSplit(split, info)
