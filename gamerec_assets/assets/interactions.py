"""Stage 3: who played what. Simulated from the catalogue (default), or real Steam logs."""

from collections.abc import Iterator
from typing import Literal

import dagster as dg
import polars as pl

from gamerec_assets.assets.metadata import figure, markdown_table, png_markdown
from gamerec_assets.recsys.linking import STEAM_ONLY_BASE, link_titles
from gamerec_assets.recsys.simulate import SimulationParams, simulate_user_logs
from gamerec_assets.recsys.steam import implicit_weight, read_steam_log
from gamerec_assets.resources.sources import InteractionSources

HISTORY_CHECK = "user_logs_history_lengths"


class UserLogsConfig(dg.Config):
    source: Literal["simulated", "steam"] = "simulated"
    steam_path: str = ""  # steam-200k.csv(.gz); empty: the `sources` resource's (GAMEREC_STEAM_PATH)
    n_users: int = 100
    max_games: int = 5
    alpha: float = 0.5
    noise_scale: float = 0.1
    seed: int = 42


def steam_user_logs(path: str, game_features: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, object]]:
    if not path:
        raise dg.Failure(description="user_logs: source 'steam' needs steam_path (or GAMEREC_STEAM_PATH)")
    try:
        log = read_steam_log(path)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise dg.Failure(description=f"user_logs: cannot read the Steam log {path}: {exc}") from exc
    links = link_titles(log["title"], game_features)
    log = log.with_columns(pl.Series("weight", implicit_weight(log["hours"].to_numpy()), dtype=pl.Float64))
    logs = log.join(links, on="title", how="left", maintain_order="left").select(
        "user_id", "game_id", "weight", "title"
    )
    logs = logs.group_by("user_id", "game_id", maintain_order=True).agg(pl.col("weight").max(), pl.col("title").first())
    per_rule = links.group_by("rule").len()
    linked_titles = int(links.filter(pl.col("rule") != "unmatched").height)
    linked_rows = int(logs.filter(pl.col("game_id") < STEAM_ONLY_BASE).height)
    return logs, {
        "steam_path": path,
        "titles": links.height,
        "title_match_rate": round(linked_titles / max(links.height, 1), 4),
        "interaction_match_rate": round(linked_rows / max(logs.height, 1), 4),
        "link_rules": markdown_table(per_rule),
        "unmatched_examples": markdown_table(links.filter(pl.col("rule") == "unmatched").head(10)),
    }


@dg.asset(
    group_name="interactions",
    kinds={"polars", "table"},
    io_manager_key="table_io_manager",
    metadata={"primary_key": ["user_id", "game_id"]},
    check_specs=[
        dg.AssetCheckSpec(
            HISTORY_CHECK,
            asset="user_logs",
            description="Every user has 1..max_games distinct games, all in the catalogue.",
        )
    ],
)
def user_logs(
    context: dg.AssetExecutionContext,
    config: UserLogsConfig,
    game_features: pl.DataFrame,
    sources: InteractionSources,
) -> Iterator[dg.Output[pl.DataFrame] | dg.AssetCheckResult]:
    """user_id, game_id, weight: one row per game a user has. Simulated (default), or real Steam logs.

    Simulated users draw 1..max_games distinct games, favouring well-rated, owned ones. Steam weights:
    1 + log1p(hours played) (a purchase without play weighs 1). Titles are linked to RAWG games by normalised title;
    unmatched titles stay items of their own (ids >= 10^12) and keep their title. The history check runs here, with
    the config in hand.
    """
    extra: dict[str, object] = {}
    max_games: int | None = None  # real logs have no per-user limit
    if config.source == "steam":
        logs, extra = steam_user_logs(config.steam_path or sources.steam_path, game_features)
    else:
        params = SimulationParams(config.n_users, config.max_games, config.alpha, config.noise_scale, config.seed)
        try:
            logs = simulate_user_logs(game_features, params)
        except ValueError as exc:
            raise dg.Failure(description=f"user_logs: bad simulation config: {exc}") from exc
        max_games = config.max_games
        extra = {"max_games": config.max_games, "seed": config.seed}
    context.log.info(f"{config.source}: {logs.height:,} interactions for {logs['user_id'].n_unique():,} users")
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
    yield dg.Output(
        logs,
        metadata={
            "source": config.source,
            "users": per_user.height,
            "interactions": logs.height,
            "games_played": logs["game_id"].n_unique(),
            **extra,
            "history_lengths": png_markdown(fig, "games per user"),
            "most_played": markdown_table(top),
        },
    )
    yield history_lengths_check(logs, game_features, max_games)


def history_lengths_check(
    user_logs: pl.DataFrame, game_features: pl.DataFrame, max_games: int | None
) -> dg.AssetCheckResult:
    """No duplicate (user, game) pairs, at most `max_games` per user (None: no limit), every linked game known."""
    per_user = user_logs.group_by("user_id").agg(pl.len().alias("n"), pl.col("game_id").n_unique().alias("distinct"))
    duplicates = int((per_user["n"] != per_user["distinct"]).sum())
    too_many = int((per_user["n"] > max_games).sum()) if max_games is not None else 0
    unknown = (
        user_logs.filter(pl.col("game_id") < STEAM_ONLY_BASE)
        .join(game_features.select("game_id"), on="game_id", how="anti")
        .height
    )
    return dg.AssetCheckResult(
        check_name=HISTORY_CHECK,
        passed=duplicates == 0 and too_many == 0 and unknown == 0 and per_user.height > 0,
        metadata={
            "users": per_user.height,
            "users_with_duplicates": duplicates,
            "users_over_max": too_many,
            "max_games": str(max_games),
            "unknown_games": unknown,
        },
    )
