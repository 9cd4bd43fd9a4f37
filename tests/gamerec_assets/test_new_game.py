"""A game added to the catalogue file that nobody has played gets sensible similar games after one refresh: the
whole graph, once, on the examples' interaction file and their catalogue file with one more game."""

from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest

from gamerec_assets import backends
from gamerec_assets.definitions import build_definitions
from gamerec_assets.recsys.served_model import ServingModel
from gamerec_assets.resources.tracking import find_offline_run, read_offline_run
from gamerec_assets.settings import StorageSettings
from gamerec_assets.store import ModelRegistry

pytestmark = pytest.mark.integration  # the whole graph, run in process (tens of seconds a run)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FAST = {"ops": {"item_similarity": {"config": {"time_budget_s": 5.0}}}}
NEW_GAME = 1013  # a sequel of Dungeon Ledger (RPG, Turn-Based, Fantasy): nobody has played it yet
NEW_ROW = "1013,Dungeon Ledger II,RPG,Turn-Based|Fantasy,PC,2025-03-18,4.2,10,40,50\n"


def materialize(env: dict[str, str], instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    job = build_definitions(env).resolve_implicit_global_asset_job_def()
    return job.execute_in_process(instance=instance, run_config=FAST, raise_on_error=False)


def test_a_new_catalogue_game_gets_similar_games_after_one_refresh(gamerec_home: Path, tmp_path: Path) -> None:
    catalogue = tmp_path / "catalogue.csv"  # the examples' catalogue file, once a new game has been added to it
    catalogue.write_text((EXAMPLES / "catalogue.csv").read_text() + NEW_ROW)
    env = {
        "GAMEREC_HOME": str(gamerec_home),
        "GAMEREC_CATALOG": f"file:{catalogue}",
        "GAMEREC_INTERACTIONS": f"file:{EXAMPLES / 'interactions.csv'}",  # unchanged: nobody has played it
    }
    registry = ModelRegistry(backends.artifact_store(StorageSettings.from_env(env)))
    with dg.instance_for_test() as instance:
        refresh = materialize(env, instance)
        assert refresh.success
        meta = {
            e.asset_key.to_user_string(): e.materialization.metadata for e in refresh.get_asset_materialization_events()
        }
    assert meta["production_model"]["decision"].value == "promoted"
    report = meta["evaluation_report"]
    assert (
        report["item_cold_start_protocol"].value["held_out_items"] >= 1 and "random" in report["item_cold_start"].value
    )
    logged = read_offline_run(find_offline_run(gamerec_home, report["wandb_run_id"].value))  # and in W&B
    assert logged["summary"]["cold_start_ndcg@20"] == pytest.approx(report["cold_start_ndcg@20"].value)
    served = ServingModel(registry.load(registry.production()))
    assert served.artifact.manifest["parameters"]["model"] == "Hybrid"
    idx = served.item_index(NEW_GAME)
    assert idx >= 0 and served.popularity[idx] == 0  # in the model, without a single play
    cols, scores = served.neighbours(idx, 3)
    games = pl.read_csv(catalogue)
    names = dict(zip(games["game_id"].to_list(), games["name"].to_list(), strict=True))
    neighbours = [names[int(served.item_ids[c])] for c in cols]
    assert neighbours[:2] == ["Dungeon Ledger", "Deep Vault"] and np.all(scores > 0)  # its RPG / Fantasy kin
    # a player of Dungeon Ledger is offered the sequel, because of Dungeon Ledger
    recs = served.recommend_history([served.item_index(1002)], 11)
    new = recs.idx.index(idx)
    assert new < recs.n_cf and recs.because[new] == [served.item_index(1002)]
