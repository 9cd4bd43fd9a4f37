"""The traffic replay: the held-out split, and an online experiment between the popularity baseline and the selected
model on steam-200k, replayed against a real API in both modes, which the online evaluation must call for the
selected model."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import polars as pl
import pytest

from gamerec_api.app import create_app
from gamerec_api.demo import snapshot_features
from gamerec_api.holder import ModelHolder
from gamerec_assets import backends
from gamerec_assets.recsys import training
from gamerec_assets.recsys.online_evaluation import evaluate
from gamerec_assets.recsys.steam import read_steam_log, steam_interactions
from gamerec_assets.settings import StorageSettings
from gamerec_assets.store.event_store import EventStore
from gamerec_assets.store.experiment_answers import ExperimentAnswers
from gamerec_assets.store.experiments import ExperimentStore
from gamerec_assets.store.registry import MODEL_NAME, ModelRegistry
from gamerec_assets.traffic_replay import ReplayUser, hold_out, replay
from tests.support.uvicorn_server import serve, wait_ready


def test_hold_out_keeps_a_seeded_share_of_each_players_games() -> None:
    logs = pl.DataFrame(
        {
            "user_id": ["a"] * 10 + ["b"] * 3 + ["c"] * 5,
            "game_id": [*range(10), 1, 2, 3, 4, 5, 6, 7, 8],
            "weight": [1.0] * 18,
        }
    )
    train, users = hold_out(logs, fraction=0.2, min_games=5, seed=3)
    held = {u.user_id: u.held_out for u in users}
    assert set(held) == {"a", "c"}  # b has fewer than 5 games: it only trains
    assert len(held["a"]) == 2 and len(held["c"]) == 1
    for user, games in held.items():
        trained = set(train.filter(pl.col("user_id") == user)["game_id"].to_list())
        assert trained.isdisjoint(games) and len(trained) + len(games) == logs.filter(pl.col("user_id") == user).height
    assert train.filter(pl.col("user_id") == "b").height == 3
    again, users_again = hold_out(logs, fraction=0.2, min_games=5, seed=3)
    assert again.equals(train) and users_again == users
    other = {u.user_id: u.held_out for u in hold_out(logs, fraction=0.2, min_games=5, seed=4)[1]}
    assert other != held or other["a"] != held["a"]


@dataclass(frozen=True)
class SteamExperiment:
    home: Path
    settings: StorageSettings
    popularity: str
    selected: str
    users: list[ReplayUser]
    catalogue: int


@pytest.fixture(scope="module")
def steam_experiment(steam_log: Path, tmp_path_factory: pytest.TempPathFactory) -> SteamExperiment:
    """Both versions trained on the same training rows of steam-200k (held-out games never seen): the popularity
    baseline in production, the model selection picks as the challenger."""
    home = tmp_path_factory.mktemp("replay_home")
    settings = StorageSettings.from_env({"GAMEREC_HOME": str(home)})
    features = snapshot_features()
    logs, _ = steam_interactions(read_steam_log(steam_log), features)
    train, users = hold_out(logs, fraction=0.2, min_games=5, seed=0)
    registry = ModelRegistry(backends.artifact_store(settings), MODEL_NAME)
    popularity, _ = training.fit_artifact(train, features, {"model": "Popularity"})
    pop_version = registry.publish(popularity)
    registry.promote(pop_version, reason="the baseline")
    selected = training.train(train, features, training.TrainingParams(time_budget_s=10.0))
    sel_version = registry.publish(selected.artifact)
    return SteamExperiment(home, settings, pop_version, sel_version, users, len(popularity.item_ids))


@contextmanager
def api(settings: StorageSettings) -> Iterator[tuple[str, ModelHolder]]:
    app = create_app(settings, reload_interval=0.2, env={})
    with serve(app) as base, httpx.Client(base_url=base, timeout=30) as c:
        wait_ready(c)
        yield base, app.state.holder


def run_experiment(exp: SteamExperiment, name: str, mode: str, traffic: float, users: list[ReplayUser]) -> dict:
    """Start the experiment, replay `users`, evaluate, stop: the verdict row."""
    registry = ModelRegistry(backends.artifact_store(exp.settings), MODEL_NAME)
    experiments = ExperimentStore(registry.store, registry.name)
    with api(exp.settings) as (base, holder):
        record = experiments.start(name, exp.selected, exp.popularity, traffic, mode, by="test")
        deadline = time.monotonic() + 60
        while holder.experiment is None or holder.experiment.name != name:
            assert time.monotonic() < deadline, "the API did not load the challenger"
            time.sleep(0.05)
        counts = replay(base, users, k=10, threads=4)
        assert counts.failed == [] and counts.users == len(users)
        tables = holder.tables()
        deadline = time.monotonic() + 30
        while len(ExperimentAnswers(tables).frame(name)) < len(users):  # written every second, off the request path
            assert time.monotonic() < deadline, "the answers were not logged"
            time.sleep(0.1)
        experiments.end("replay over", by="test", only=name)
        events = EventStore(tables).read()
        result = evaluate(events, ExperimentAnswers(tables).frame(name), [record], catalogue_size=exp.catalogue)
    verdict = result.verdict(name)
    assert verdict is not None
    return {**verdict, "variants": counts.variants, "clicks": counts.clicks}


@pytest.mark.integration
def test_ab_replay_finds_the_selected_model_better_than_popularity(steam_experiment: SteamExperiment) -> None:
    verdict = run_experiment(steam_experiment, "replay-ab", "ab", 0.5, steam_experiment.users[:1500])
    assert verdict["variants"]["challenger"] > 500 and verdict["variants"]["production"] > 500
    assert verdict["verdict"] == "challenger better", verdict
    assert verdict["challenger_value"] > verdict["production_value"]


@pytest.mark.integration
def test_interleaved_replay_finds_the_selected_model_better_than_popularity(
    steam_experiment: SteamExperiment,
) -> None:
    verdict = run_experiment(steam_experiment, "replay-il", "interleave", 1.0, steam_experiment.users[1500:1900])
    assert verdict["variants"] == {"interleave": 400}
    assert verdict["verdict"] == "challenger better", verdict
    assert verdict["effect"] > 0 and verdict["decisive_answers"] > 0
