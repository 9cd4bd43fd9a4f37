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


@pytest.mark.parametrize(
    ("params", "rows", "sha256"),
    [
        (
            SimulationParams(n_users=3_000, max_games=5, seed=42, model="original"),
            8_996,
            "fbfc1f0939688cef09172e560868034b863590c456731586d48b8b3f2ede3345",
        ),
        (
            SimulationParams(n_users=500, max_games=12, alpha=0.8, noise_scale=0.3, seed=7, model="original"),
            3_339,
            "f9851c09282db4a365122968603307ea5461ed793878bbe027bffa65b0bd22e8",
        ),
    ],
)
def test_original_model_reproduces_the_logs_before_the_taste_model(params: SimulationParams, rows: int, sha256: str):
    """The bundled catalogue's logs as the simulation wrote them before the taste model existed (commit 41e6bd4,
    SimulationParams(n_users, max_games, alpha, noise_scale, seed)), byte for byte as CSV."""
    import hashlib

    from gamerec_api.demo import snapshot_features

    logs = simulate_user_logs(snapshot_features(), params)
    assert logs.height == rows
    assert hashlib.sha256(logs.write_csv().encode()).hexdigest() == sha256
    assert (logs["weight"] == 1.0).all()


def test_the_taste_fields_do_not_touch_the_original_model() -> None:
    base = SimulationParams(n_users=300, max_games=5, seed=7, model="original")
    other = SimulationParams(
        n_users=300, max_games=5, seed=7, model="original", taste_strength=3.0, popularity_exponent=2.0
    )
    assert simulate_user_logs(catalogue(), base).equals(simulate_user_logs(catalogue(), other))


@pytest.mark.parametrize(
    "params",
    [
        SimulationParams(model="nope"),  # type: ignore[arg-type]
        SimulationParams(taste_strength=-1),
        SimulationParams(taste_noise=-0.1),
        SimulationParams(genre_share=1.5),
        SimulationParams(min_topic_games=0),
        SimulationParams(play_share=-0.1),
        SimulationParams(hours_taste=2.0),
        SimulationParams(history_sigma=-1),
        SimulationParams(history_mu=float("nan")),
    ],
)
def test_bad_taste_parameters_are_rejected(params: SimulationParams) -> None:
    with pytest.raises(ValueError):
        simulate_user_logs(catalogue(), params)


def test_the_taste_model_needs_only_ids_and_either_added_or_rating_and_owned_ratio() -> None:
    """The 50-game catalogue here has no genres, tags or added: the taste model draws by rating × owned_ratio rank."""
    logs = simulate_user_logs(catalogue(), SimulationParams(n_users=2_000, max_games=10, seed=1))
    assert logs.columns == ["user_id", "game_id", "weight"]
    plays = logs.group_by("game_id").len().sort("game_id")["len"].to_numpy()
    score = preference_weights(catalogue()["rating"].to_numpy(), catalogue()["owned_ratio"].to_numpy())
    assert plays[np.argmax(score)] == plays.max()
