"""Issue #22's poisoning attack, replayed on the default graph (the bundled RAWG snapshot + simulated players, tmp
GAMEREC_HOME, SQLite): 3,000 made-up users, each liking one obscure game and playing GTA V, in six appends. The
sensor does not request a refresh for them; a refresh (the daily schedule's) holds them back, so the game reaches
neither the popular list nor GTA V's neighbours; with the trust rules off, the poisoned model's figure on the trusted
holdout falls and it is not promoted. A legitimate stream of events still retrains and promotes."""

from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest

from gamerec_assets import backends
from gamerec_assets.assets.modeling import RULE_FELL, RULE_SAME
from gamerec_assets.definitions import build_definitions
from gamerec_assets.recsys.feedback import check_event
from gamerec_assets.recsys.served_model import ServingModel
from gamerec_assets.settings import StorageSettings
from gamerec_assets.store import ModelRegistry
from gamerec_assets.store.event_store import EventStore

pytestmark = pytest.mark.integration  # a whole-graph run (make test-fast leaves it out)

FAST = {"item_similarity": {"config": {"strategy": "fixed"}}}  # selection is not what this tests
T0 = 1_796_000_000_000_000  # 2026-11-30, in microseconds
S = 1_000_000


def refresh(defs: dg.Definitions, instance: dg.DagsterInstance, user_logs: dict | None = None):
    ops = {**FAST, **({"user_logs": {"config": user_logs}} if user_logs else {})}
    result = defs.resolve_job_def("refresh_all").execute_in_process(instance=instance, run_config={"ops": ops})
    assert result.success
    return {e.asset_key.to_user_string(): e.materialization.metadata for e in result.get_asset_materialization_events()}


def tick(defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None = None) -> dg.SensorResult:
    resources = {key: defs.resources[key] for key in ("tables", "artifacts")}
    with dg.build_sensor_context(instance=instance, resources=resources, cursor=cursor) as context:
        return defs.resolve_sensor_def("retrain_on_new_events")(context)


def served(registry: ModelRegistry) -> ServingModel:
    return ServingModel(registry.load(registry.production()))


def top_similar(model: ServingModel, game: int, n: int = 10) -> list[int]:
    ids, _ = model.similar([game], n)
    return [g for g in ids[0].tolist() if g >= 0]


def popular_for_a_new_user(model: ServingModel, n: int = 10) -> list[int]:
    picked = model.recommend_history([], n)
    return model.item_ids[np.asarray(picked.idx, np.int64)].tolist()


def attack(store: EventStore, target: int, gta: int, start_us: int) -> int:
    """Six requests of 500 made-up users each (one like of the target, one play of GTA V), a second apart."""
    last = 0
    for request in range(6):
        at = start_us + request * S
        events = [
            check_event(user_id=f"sock{u}", game_id=g, type=t, value=v, timestamp=None, received_us=at)
            for u in range(request * 500, (request + 1) * 500)
            for g, t, v in ((target, "like", None), (gta, "play", 3.0))
        ]
        result = store.append(events)
        assert result.n_accepted == 1_000
        last = result.last_seq
    return last


def legit_stream(store: EventStore, logs: pl.DataFrame, start_us: int, users: int = 150) -> int:
    """Real-looking traffic: known players replay games they have (more hours), and newcomers each play the five
    games of a known player, one player a minute for hours (every minute its own arrival window)."""
    known = logs.group_by("user_id").agg(pl.col("game_id")).filter(pl.col("game_id").list.len() >= 5).sort("user_id")
    events = []
    for n, (user, games) in enumerate(known.head(users).iter_rows()):
        at = start_us + 60 * S * n
        events += [
            check_event(user_id=user, game_id=g, type="play", value=1.5, timestamp=None, received_us=at + k)
            for k, g in enumerate(games[:3])
        ]
        events += [
            check_event(
                user_id=f"fan{n}", game_id=g, type="play", value=2.0, timestamp=None, received_us=at + 10 * S + k
            )
            for k, g in enumerate(games[:5])
        ]
    return store.append(events).last_seq


@pytest.mark.parametrize("backend", ["sqlite", "mariadb"])
def test_the_poisoning_attack_reaches_neither_the_popular_list_nor_the_model(
    gamerec_home: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    env = {"GAMEREC_HOME": str(gamerec_home)}  # GAMEREC_RETRAIN_EVENTS: the default 1,000
    if backend == "mariadb":  # the tables (user_logs, interaction_events, ...) on the real MariaDB
        env["GAMEREC_MYSQL_URL"] = str(request.getfixturevalue("mysql_db")["url"])
    defs = build_definitions(env)
    storage = StorageSettings.from_env(env)
    registry = ModelRegistry(backends.artifact_store(storage))
    tables = backends.table_store(storage)
    store = EventStore(tables)
    with dg.instance_for_test() as instance:
        refresh(defs, instance)
        champion = registry.production()
        features = tables.read("game_features")
        logs = tables.read("user_logs")
        (gta,) = features.filter(pl.col("name") == "Grand Theft Auto V")["game_id"].to_list()
        players = logs.group_by("game_id").len().filter(pl.col("game_id") != gta)
        target = int(players.sort("len", "game_id").row(0)[0])  # the game with the fewest players (one, here)
        assert players.filter(pl.col("game_id") == target)["len"].item() <= 2
        before = served(registry)
        assert target not in popular_for_a_new_user(before) and target not in top_similar(before, gta)

        # the attack: the sensor sees 6,000 events from one arrival window (one source) and does not react
        last = attack(store, target, gta, T0)
        quiet = tick(defs, instance)
        assert not quiet.run_requests, "the burst requested a refresh"
        assert "6,000 new events after seq 0" in quiet.skip_reason.skip_message
        assert "from 1 source(s) (3,000 users)" in quiet.skip_reason.skip_message

        # the daily refresh comes anyway: the made-up users are held back (a burst), the model and list unmoved
        meta = refresh(defs, instance)
        logs_meta = meta["user_logs"]
        assert logs_meta["events_until_seq"].value == last
        assert logs_meta["trust_held_back_pairs_by_reason"].value == {"burst": 6_000}
        assert logs_meta["trust_held_back_users_by_reason"].value == {"burst": 3_000}
        assert logs_meta["trust_held_back_events_by_reason"].value == {"burst": 6_000}
        model = served(registry)
        assert target not in popular_for_a_new_user(model) and target not in top_similar(model, gta)
        assert model.popularity[model.item_index(target)] == before.popularity[before.item_index(target)]
        assert meta["production_model"]["decision"].value == "promoted"  # harmless: trained as before
        assert meta["production_model"]["champion_scored"].value == "recorded (same training data)"
        assert registry.production() != champion
        champion = registry.production()

        # the same events with the trust rules off: the poisoned model is measured on the trusted holdout (base
        # players, whom no event can add to or move), its figure falls, and production stays where it was
        meta = refresh(defs, instance, {"trust_rules": False})
        release = meta["production_model"]
        assert meta["user_logs"]["trust_held_back_pairs"].value == 0
        assert release["decision"].value == "kept champion", release["rule"].value
        assert release["rule"].value.startswith(RULE_FELL)
        assert release["champion_scored"].value == "recorded (same trusted holdout)"
        assert release["challenger_ndcg@10"].value < release["champion_ndcg@10"].value - 0.005
        assert registry.production() == champion
        poisoned = ServingModel(registry.load(str(meta["item_similarity"]["version"].value)))
        assert top_similar(poisoned, gta)[0] == target  # what would have been served
        assert target in popular_for_a_new_user(poisoned)
        model = served(registry)
        assert target not in popular_for_a_new_user(model) and target not in top_similar(model, gta)

        # a legitimate stream (many windows, known players and newcomers) still requests a refresh that promotes
        cursor = tick(defs, instance).cursor
        legit_last = legit_stream(store, logs, T0 + 3_600 * S)
        (request,) = tick(defs, instance, cursor).run_requests
        assert request.tags["gamerec/events_until"] == str(legit_last)
        meta = refresh(defs, instance)
        release = meta["production_model"]
        assert release["decision"].value == "promoted", release["rule"].value
        assert release["rule"].value.startswith(RULE_SAME)
        held = meta["user_logs"]["trust_held_back_users_by_reason"].value
        assert held == {"burst": 3_000, "new_user": 150}  # newcomers count once a model has seen them
        assert meta["user_logs"]["event_pairs_changed"].value > 0  # the known players' hours did count
        model = served(registry)
        assert target not in popular_for_a_new_user(model) and target not in top_similar(model, gta)
