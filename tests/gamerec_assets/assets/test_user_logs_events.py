"""user_logs alone, over a table database holding players' events: what they add, change and remove."""

import math
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from gamerec_assets.assets.interactions import UserLogsConfig, user_logs
from gamerec_assets.recsys.feedback import EVENT_WEIGHTS, Event, check_event, iso
from gamerec_assets.recsys.provenance import events_included
from gamerec_assets.resources.sources import InteractionSources
from gamerec_assets.resources.storage import LocalArtifactsResource, TablesResource
from gamerec_assets.resources.trust import EventTrustResource

T0 = 1_796_000_000_000_000  # 2026-11-30, in microseconds


def event(user: str, game: int, type_: str, at_s: int, value: float | None = None) -> Event:
    return check_event(
        user_id=user, game_id=game, type=type_, value=value, timestamp=None, received_us=T0 + at_s * 1_000_000
    )


@pytest.fixture
def tables(tmp_path: Path) -> TablesResource:
    return TablesResource(url=f"sqlite:///{tmp_path / 'gamerec.db'}")


def run(features: pl.DataFrame, tables: TablesResource, **config: object) -> tuple[dg.Output, dg.AssetCheckResult]:
    output, check = user_logs(
        dg.build_asset_context(),
        UserLogsConfig(n_users=30, seed=5, **config),
        features,
        InteractionSources(),
        tables,
        LocalArtifactsResource(root=str(Path(tables.url.removeprefix("sqlite:///")).parent / "artifacts")),
        EventTrustResource(),
    )
    return output, check


def test_events_join_the_base_log_and_the_metadata_says_what_they_did(
    features: pl.DataFrame, tables: TablesResource
) -> None:
    base, _ = run(features, tables)
    base_logs = base.value
    assert (
        base_logs["events_seq"].to_list() == [0] * base_logs.height
        and base_logs["timestamp_us"].null_count() == base_logs.height
    )
    known = features["game_id"].to_list()
    victim = base_logs.row(0, named=True)  # a base pair the user then dislikes
    others = base_logs.filter(pl.col("user_id") != victim["user_id"])
    liked = others.filter(pl.col("weight") < EVENT_WEIGHTS["like"]).row(0, named=True)
    events = [
        event("newcomer", known[0], "play", 1, 3.0),
        event("newcomer", known[1], "play", 2),
        event("newcomer", known[2], "purchase", 3),
        event("newcomer", known[3], "impression", 4),  # weighs nothing: not a pair
        event(victim["user_id"], victim["game_id"], "dislike", 5),
        event(liked["user_id"], liked["game_id"], "like", 6),
        event("newcomer", 987_654_321, "like", 7),  # a game the catalogue does not have yet: kept, counted
    ]
    stored = tables.events().append(events)
    output, check = run(features, tables)
    logs = output.value
    meta = {k: v.value for k, v in output.metadata.items()}

    newcomer = logs.filter(pl.col("user_id") == "newcomer").sort("timestamp_us")
    assert newcomer["game_id"].to_list() == [known[0], known[1], known[2], 987_654_321]
    assert math.isclose(newcomer["weight"][0], 1 + math.log1p(3.0))
    assert newcomer["timestamp_us"].to_list() == [T0 + s * 1_000_000 for s in (1, 2, 3, 7)]
    assert logs.filter((pl.col("user_id") == victim["user_id"]) & (pl.col("game_id") == victim["game_id"])).height == 0
    changed = logs.filter((pl.col("user_id") == liked["user_id"]) & (pl.col("game_id") == liked["game_id"]))
    assert changed["weight"].to_list() == [EVENT_WEIGHTS["like"]]
    assert logs.height == base_logs.height + 4 - 1

    assert meta["events"] == 7 and meta["events_until_seq"] == stored.last_seq
    assert meta["events_by_type"] == {"dislike": 1, "impression": 1, "like": 2, "play": 2, "purchase": 1}
    assert meta["events_newest"] == iso(T0 + 7_000_000)
    assert (meta["event_pairs_added"], meta["event_pairs_changed"], meta["event_pairs_removed"]) == (4, 1, 1)
    assert meta["unknown_game_events"] == 1 and meta["unknown_event_games"] == 1
    assert meta["source"] == "simulated" and meta["data_version"]["rows"] == logs.height
    assert check.passed, check.metadata  # the unknown game and the longer history come from events

    assert events_included(logs) == {"until_seq": stored.last_seq, "count": 7, "until": iso(T0 + 7_000_000)}

    # the newcomer (no production model has seen them yet) is held back from training, and the metadata says so;
    # the base users' events count
    held = logs.filter(~pl.col("trusted"))
    assert set(held["user_id"]) == {"newcomer"} and set(held["held_back"]) == {"new_user"}
    assert logs.filter(pl.col("trusted"))["held_back"].null_count() == logs.height - held.height
    assert meta["trust_held_back_pairs_by_reason"] == {"new_user": 4}
    assert meta["trust_held_back_events_by_reason"] == {"new_user": 4}  # the impression made no pair
    assert meta["trust_measured_against"] == "no production model" and meta["trust_champion_until_seq"] == 0
    assert logs.filter(pl.col("user_id") == "newcomer")["in_base"].not_().all() and changed["in_base"].all()


def test_events_can_be_left_out_or_weighted_per_run(features: pl.DataFrame, tables: TablesResource) -> None:
    game = features["game_id"][0]
    tables.events().append([event("clicker", game, "click", 1), event("player", game, "play", 2, 1.0)])
    off, _ = run(features, tables, events=False)
    assert set(off.value["user_id"]).isdisjoint({"clicker", "player"}) and off.metadata["events"].value == 0
    weighted, _ = run(features, tables, event_weights={"click": 0.5, "play": 2.0}, trust_rules=False)
    rows = {r["user_id"]: r["weight"] for r in weighted.value.filter(pl.col("game_id") == game).iter_rows(named=True)}
    assert weighted.metadata["trust_held_back_pairs"].value == 0 and weighted.value["trusted"].all()  # rules off
    guarded, _ = run(features, tables, event_weights={"click": 0.5})
    assert guarded.metadata["trust_held_back_pairs"].value == 2  # the two newcomers' pairs wait
    assert rows["clicker"] == 0.5 and math.isclose(rows["player"], 2.0 * (1 + math.log1p(1.0)))
    with pytest.raises(dg.Failure, match="unknown event types"):
        run(features, tables, event_weights={"share": 1.0})


def test_forgotten_players_are_left_out_of_the_base_source_and_the_events(
    features: pl.DataFrame, tables: TablesResource
) -> None:
    """A simulated (base source) player and an events-only player are forgotten: the next user_logs has neither,
    and its metadata counts them; an event sent after the forget (the player came back) counts again."""
    from gamerec_assets.store.forgotten_users import ForgottenUsers

    base, _ = run(features, tables)
    known = features["game_id"].to_list()
    simulated = str(base.value["user_id"][0])
    tables.events().append([event("newcomer", known[0], "play", 1), event("newcomer", known[1], "like", 2)])
    forgotten = ForgottenUsers(tables.store())
    forgotten.forget(simulated)
    forgotten.forget("newcomer")
    tables.events().append([event("newcomer", known[2], "play", 3)])  # after the forget: the player came back

    output, check = run(features, tables)
    logs, meta = output.value, {k: v.value for k, v in output.metadata.items()}
    assert simulated not in logs["user_id"].cast(pl.Utf8).to_list()
    assert logs.filter(pl.col("user_id") == "newcomer")["game_id"].to_list() == [known[2]]
    removed = base.value.filter(pl.col("user_id").cast(pl.Utf8) == simulated).height
    assert meta["forgotten_users"] == 2 and meta["forgotten_rows"] == removed > 0
    assert meta["forgotten_events"] == 0  # erased by the forget already: nothing was left to drop
    assert logs.height == base.value.height - removed + 1 and check.passed
