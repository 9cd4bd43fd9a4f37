import numpy as np
import polars as pl
import pytest

from gamerec_assets.recsys import SimulationParams, simulate_user_logs
from gamerec_assets.recsys.simulate import preference_weights, simulate_interactions


def catalogue(n: int = 50) -> pl.DataFrame:
    rng = np.random.default_rng(1)
    return pl.DataFrame(
        {
            "game_id": np.arange(1000, 1000 + n),
            "rating": rng.uniform(0, 5, n),
            "owned_ratio": rng.uniform(0, 1, n),
        }
    )


def test_every_user_gets_one_to_max_distinct_games() -> None:
    params = SimulationParams(n_users=500, max_games=5)
    logs = simulate_user_logs(catalogue(), params)
    per_user = logs.group_by("user_id").agg(pl.len().alias("n"), pl.col("game_id").n_unique().alias("u"))
    assert per_user.height == 500
    assert per_user["n"].min() >= 1 and per_user["n"].max() <= 5
    assert (per_user["n"] == per_user["u"]).all()
    assert set(logs["game_id"].unique().to_list()) <= set(catalogue()["game_id"].to_list())
    # randint(1, max_games) is inclusive: every count occurs
    assert sorted(per_user["n"].unique().to_list()) == [1, 2, 3, 4, 5]


def test_seeded_and_deterministic() -> None:
    a = simulate_user_logs(catalogue(), SimulationParams(n_users=300, seed=7))
    b = simulate_user_logs(catalogue(), SimulationParams(n_users=300, seed=7))
    c = simulate_user_logs(catalogue(), SimulationParams(n_users=300, seed=8))
    assert a.equals(b)
    assert not a.equals(c)


def test_draws_follow_numpy_choice_without_replacement() -> None:
    """Inclusion frequencies match a per-user reference loop with numpy.random.choice (the reference draw)."""
    p_weight = np.array([0.5, 0.2, 0.15, 0.1, 0.05])
    params = SimulationParams(n_users=40_000, max_games=2, alpha=1.0, noise_scale=0.0, seed=3)
    users, games = simulate_interactions(np.arange(5), p_weight, params)
    ours = np.bincount(games, minlength=5) / params.n_users
    rng = np.random.default_rng(11)
    counts = rng.integers(1, 3, size=params.n_users)
    ref = np.zeros(5)
    for k in counts:
        ref[rng.choice(5, size=k, replace=False, p=p_weight)] += 1
    ref /= params.n_users
    np.testing.assert_allclose(ours, ref, atol=0.015)
    assert len(users) == len(games)


def test_noise_clipped_and_zero_weights_fall_back() -> None:
    assert np.allclose(preference_weights(np.zeros(4), np.ones(4)), 0.25)
    params = SimulationParams(n_users=200, max_games=3, alpha=0.9, noise_scale=2.0)
    users, _ = simulate_interactions(np.arange(10), preference_weights(np.ones(10), np.ones(10)), params)
    assert np.unique(users).size == 200


@pytest.mark.parametrize(
    "params",
    [
        SimulationParams(n_users=0),
        SimulationParams(max_games=0),
        SimulationParams(max_games=99),
        SimulationParams(alpha=1.5),
        SimulationParams(noise_scale=-1),
    ],
)
def test_bad_parameters_are_rejected(params: SimulationParams) -> None:
    with pytest.raises(ValueError):
        simulate_user_logs(catalogue(), params)


def test_row_order_does_not_change_the_draw() -> None:
    games = catalogue()
    shuffled = games.sample(fraction=1.0, shuffle=True, seed=5)
    assert not shuffled["game_id"].equals(games["game_id"])
    params = SimulationParams(n_users=300, seed=7)
    assert simulate_user_logs(shuffled, params).equals(simulate_user_logs(games, params))
