"""The temporal protocol of `recsys.split`: fit before the cut-off, test after it, for users seen before."""

import numpy as np
import polars as pl

from gamerec_assets.recsys.evaluation import POPULARITY, temporal_holdout
from gamerec_assets.recsys.split import TemporalParams, temporal_split


def logs_with_events(users: int = 10) -> pl.DataFrame:
    """Each user: 3 untimed base games, then 5 timed ones at times 1..5 (user u9 only after the cut-off)."""
    rows = []
    for u in range(users):
        if u < users - 1:
            rows += [(f"u{u}", 100 + u + g, None) for g in range(3)]
        times = range(1, 6) if u < users - 1 else range(5, 8)
        rows += [(f"u{u}", 200 + (u + t) % 12, t) for t in times]
    return pl.DataFrame(
        rows, schema={"user_id": pl.Utf8, "game_id": pl.Int64, "timestamp_us": pl.Int64}, orient="row"
    ).with_columns(pl.lit(1.0).alias("weight"))


def test_fit_before_the_cutoff_and_test_after_it_for_users_seen_before() -> None:
    logs = logs_with_events()
    split = temporal_split(logs, TemporalParams(cutoff_quantile=0.8, min_test=5, min_users=3))
    assert split.ran
    frame = split.frame
    cutoff = split.info["cutoff_us"]
    assert cutoff == 5  # 80th percentile of the 48 event times
    train, test = frame.filter(pl.col("fold") == "train"), frame.filter(pl.col("fold") == "test")
    assert train["timestamp_us"].drop_nulls().max() < cutoff and train["timestamp_us"].null_count() == 27
    assert test["timestamp_us"].min() >= cutoff and "u9" not in set(test["user_id"])  # u9 has no history before
    assert set(test["user_id"]) <= set(train["user_id"])
    assert split.info["test_users"] == 9 and split.info["left_out_new_users"] == 1
    assert frame.height == logs.height - 3  # u9's three interactions after the cut-off are left out


def test_without_enough_timed_interactions_it_says_why() -> None:
    untimed = logs_with_events().with_columns(pl.lit(None, pl.Int64).alias("timestamp_us"))
    assert temporal_split(untimed).info == {"reason": "0 timestamped interactions; needs 20"}
    assert "needs 20" in temporal_split(untimed.drop("timestamp_us")).info["reason"]
    few_users = temporal_split(logs_with_events(3), TemporalParams(min_test=2, min_users=5))
    assert not few_users.ran and "of 2 known users after the cut-off; needs 2 of 5" in few_users.info["reason"]


def test_the_temporal_holdout_scores_models_on_the_future() -> None:
    logs = logs_with_events()
    features = pl.DataFrame({"game_id": np.arange(100, 215)})
    holdout, split = temporal_holdout(logs, features, TemporalParams(min_test=5, min_users=3))
    assert holdout is not None
    result = holdout.score(POPULARITY, "test", (10,))
    assert result.metrics[10]["users"] == split.info["test_users"]
    assert 0 <= result.flat()["ndcg@10"] <= 1
