"""Stage 3: who played what. Simulated as the prototype did (default), or real logs (issue #5)."""

from typing import Literal

import dagster as dg
import polars as pl

from gamerec_assets.assets.metadata import figure, markdown_table, png_markdown
from gamerec_assets.recsys.simulate import SimulationParams, simulate_user_logs


class UserLogsConfig(dg.Config):
    source: Literal["simulated"] = "simulated"
    n_users: int = 100
    max_games: int = 5
    alpha: float = 0.5
    noise_scale: float = 0.1
    seed: int = 42


@dg.asset(
    group_name="interactions",
    kinds={"polars", "table"},
    io_manager_key="table_io_manager",
    metadata={"primary_key": ["user_id", "game_id"]},
)
def user_logs(
    context: dg.AssetExecutionContext, config: UserLogsConfig, game_features: pl.DataFrame
) -> dg.Output[pl.DataFrame]:
    """user_id, game_id, weight: one row per game a user played (weight 1.0 for simulated plays)."""
    params = SimulationParams(config.n_users, config.max_games, config.alpha, config.noise_scale, config.seed)
    try:
        logs = simulate_user_logs(game_features, params)
    except ValueError as exc:
        raise dg.Failure(description=f"user_logs: bad simulation config: {exc}") from exc
    context.log.info(f"simulated {logs.height:,} plays for {config.n_users:,} users")
    per_user = logs.group_by("user_id").len()
    fig, ax = figure(5, 3)
    counts = per_user.group_by("len").len(name="users").sort("len")
    ax.bar(counts["len"].to_list(), counts["users"].to_list())
    ax.set_xlabel("games per user")
    ax.set_ylabel("users")
    top = (
        logs.group_by("game_id")
        .len(name="plays")
        .sort("plays", descending=True)
        .head(10)
        .join(game_features.select("game_id", "name"), on="game_id", how="left")
    )
    return dg.Output(
        logs,
        metadata={
            "source": config.source,
            "users": per_user.height,
            "interactions": logs.height,
            "games_played": logs["game_id"].n_unique(),
            "max_games": config.max_games,
            "seed": config.seed,
            "history_lengths": png_markdown(fig, "games per user"),
            "most_played": markdown_table(top),
        },
    )


@dg.asset_check(
    asset=user_logs,
    description="Every user has 1..max_games distinct games, all in the catalogue.",
    additional_ins={"game_features": dg.AssetIn("game_features")},
)
def user_logs_history_lengths(
    context: dg.AssetCheckExecutionContext, user_logs: pl.DataFrame, game_features: pl.DataFrame
) -> dg.AssetCheckResult:
    event = context.instance.get_latest_materialization_event(dg.AssetKey("user_logs"))
    meta = event.asset_materialization.metadata if event and event.asset_materialization else {}
    max_games = meta["max_games"].value if "max_games" in meta else None
    per_user = user_logs.group_by("user_id").agg(pl.len().alias("n"), pl.col("game_id").n_unique().alias("distinct"))
    duplicates = int((per_user["n"] != per_user["distinct"]).sum())
    too_many = int((per_user["n"] > max_games).sum()) if isinstance(max_games, int) else 0
    unknown = user_logs.join(game_features.select("game_id"), on="game_id", how="anti").height
    return dg.AssetCheckResult(
        passed=duplicates == 0 and too_many == 0 and unknown == 0 and per_user.height > 0,
        metadata={
            "users": per_user.height,
            "users_with_duplicates": duplicates,
            "users_over_max": too_many,
            "max_games": str(max_games),
            "unknown_games": unknown,
        },
    )
