import numpy as np
import polars as pl

from gamerec_assets.recsys import SplitParams, split_interactions


def logs() -> pl.DataFrame:
    rng = np.random.default_rng(0)
    rows = [(u, g) for u in range(1, 301) for g in rng.choice(100, size=rng.integers(1, 12), replace=False)]
    return pl.DataFrame(rows, schema={"user_id": pl.Int64, "game_id": pl.Int64}, orient="row")


def test_folds_partition_every_users_history() -> None:
    data = logs()
    split = split_interactions(data, SplitParams(test_fraction=0.2, validation_fraction=0.2, min_history=3))
    assert split.height == data.height
    assert set(split["fold"].unique().to_list()) == {"train", "validation", "test"}
    counts = split.group_by("user_id").agg(
        pl.len().alias("n"),
        (pl.col("fold") == "test").sum().alias("test"),
        (pl.col("fold") == "validation").sum().alias("val"),
        (pl.col("fold") == "train").sum().alias("train"),
    )
    small = counts.filter(pl.col("n") < 3)
    assert (small["train"] == small["n"]).all()
    big = counts.filter(pl.col("n") >= 3)
    expected = np.maximum(1, np.round(big["n"].to_numpy() * 0.2))
    assert np.array_equal(big["test"].to_numpy(), expected)
    assert np.array_equal(big["val"].to_numpy(), expected)
    assert (big["train"] >= 1).all()


def test_split_is_seeded() -> None:
    data = logs()
    assert split_interactions(data, SplitParams(seed=1)).equals(split_interactions(data, SplitParams(seed=1)))
    assert not split_interactions(data, SplitParams(seed=1)).equals(split_interactions(data, SplitParams(seed=2)))


def test_folds_do_not_depend_on_row_order() -> None:
    import numpy as np
    import polars as pl

    from gamerec_assets.recsys.split import SplitParams, split_interactions

    rng = np.random.default_rng(5)
    logs = pl.DataFrame({"user_id": rng.integers(0, 60, 900), "game_id": rng.integers(0, 200, 900)}).unique()
    shuffled = logs.sample(fraction=1.0, shuffle=True, seed=11)
    assert not shuffled.equals(logs)
    a = split_interactions(logs, SplitParams(seed=3))
    b = split_interactions(shuffled, SplitParams(seed=3))
    assert a.equals(b)
