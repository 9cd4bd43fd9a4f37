"""Stage 5: precomputed top-K recommendations for every known user, made by the production model."""

from collections.abc import Iterator

import dagster as dg
import numpy as np
import polars as pl

from gamerec_assets.assets.metadata import markdown_table
from gamerec_assets.assets.modeling import production_model
from gamerec_assets.io_managers import TableChunks
from gamerec_assets.lineage import step_materialization
from gamerec_assets.recsys.forgotten_rows import without_forgotten_users
from gamerec_assets.recsys.served_model import ServingModel, batch_frame
from gamerec_assets.resources.storage import ArtifactsResource, TablesResource
from gamerec_assets.store.forgotten_users import ForgottenUsers
from gamerec_assets.store.registry import MODEL_NAME, ModelRegistry


class BatchRecommendationsConfig(dg.Config):
    k: int = 10
    chunk_users: int = 50_000


def released_version(context: dg.AssetExecutionContext, registry: ModelRegistry) -> tuple[str | None, str]:
    """(version, where it came from): the version `production_model` decided in this run, else the one its latest
    materialization decided, else the registry's `production` alias.

    Not the alias first: a concurrent run may promote its own model between this run's release and this step, and
    this run's batch table would then carry the other run's model.
    """
    recorded = step_materialization(context, production_model.key)
    version = recorded.text("version") if recorded is not None else None
    if recorded is not None and version:
        return version, recorded.source
    return registry.production(), "the registry's production alias"


def recommendation_chunks(
    model: ServingModel, user_logs: pl.DataFrame, k: int, chunk_users: int
) -> Iterator[pl.DataFrame]:
    """Top-k rows per user, a chunk of users at a time (bounded memory for millions of users)."""
    logs = user_logs.select("user_id", "game_id").sort("user_id")
    users = logs["user_id"].unique(maintain_order=True).to_numpy()
    all_users = logs["user_id"].to_numpy()
    all_games = logs["game_id"].to_numpy()
    bounds = np.searchsorted(all_users, users)
    for start in range(0, len(users), chunk_users):
        chunk = users[start : start + chunk_users]
        lo = bounds[start]
        hi = bounds[start + chunk_users] if start + chunk_users < len(users) else len(all_users)
        rows = np.searchsorted(chunk, all_users[lo:hi])
        yield batch_frame(model, chunk, rows, all_games[lo:hi], k)


@dg.asset(
    group_name="serving",
    kinds={"polars", "table"},
    io_manager_key="table_io_manager",
    deps=[production_model],
    metadata={"primary_key": ["user_id", "rank"]},
)
def batch_recommendations(
    context: dg.AssetExecutionContext,
    config: BatchRecommendationsConfig,
    user_logs: pl.DataFrame,
    game_features: pl.DataFrame,
    artifacts: ArtifactsResource,
    tables: TablesResource,
) -> dg.Output[TableChunks]:
    """Top-K per user (rank, game_id, score, source item_cf | popular, model_version).

    Made by the version this run's `production_model` decided (`released_version`). The API serves these from
    GET /users/{id}/recommendations.
    """
    registry = artifacts.registry(MODEL_NAME)
    version, source = released_version(context, registry)
    if version is None:
        raise dg.Failure(description="batch_recommendations: the registry has no production model yet")
    context.log.info(f"model {version}: {source}")
    # players forgotten since this run's user_logs was read (the forget may not have reached its rows yet)
    user_logs, forgotten_rows = without_forgotten_users(user_logs, ForgottenUsers(tables.store()).frame())
    model = ServingModel(registry.load(version))
    sample = next(
        recommendation_chunks(
            model,
            user_logs.filter(pl.col("user_id").is_in(user_logs["user_id"].unique().sort().head(5).implode())),
            config.k,
            config.chunk_users,
        )
    )
    preview = sample.join(game_features.select("game_id", "name"), on="game_id", how="left")
    context.log.info(f"recommending top-{config.k} for {user_logs['user_id'].n_unique():,} users with {version}")
    return dg.Output(
        TableChunks(lambda: recommendation_chunks(model, user_logs, config.k, config.chunk_users)),
        metadata={
            "model_version": version,
            "k": config.k,
            "forgotten_rows": forgotten_rows,
            "users": user_logs["user_id"].n_unique(),
            "preview": markdown_table(preview, 15, ["user_id", "rank", "name", "score", "source"]),
        },
    )


@dg.asset_check(
    asset=batch_recommendations,
    description="No user is recommended a game they already played.",
    additional_ins={"user_logs": dg.AssetIn("user_logs")},
)
def batch_recommendations_exclude_seen(
    batch_recommendations: pl.DataFrame, user_logs: pl.DataFrame
) -> dg.AssetCheckResult:
    seen = batch_recommendations.join(user_logs.select("user_id", "game_id"), on=["user_id", "game_id"], how="semi")
    dupes = batch_recommendations.height - batch_recommendations.select("user_id", "game_id").n_unique()
    return dg.AssetCheckResult(
        passed=seen.height == 0 and dupes == 0,
        metadata={
            "seen_recommended": seen.height,
            "duplicate_pairs": dupes,
            "rows": batch_recommendations.height,
        },
    )
