"""Stage 3: who played what. Simulated from the catalogue (default), real Steam logs, or an interaction file, plus
every event players sent (`POST /events` -> the `interaction_events` table).

The base source is the deployment's (GAMEREC_INTERACTIONS, through the `sources` resource); a run's config may
override it, and the metadata says which one was used and where the choice came from.

Events on top of the base log (`recsys.feedback.event_pairs` / `merge_event_pairs`): per (user, game) the largest
weight of its event types (`UserLogsConfig.event_weights`, default `feedback.EVENT_WEIGHTS`; play weighs
`1 + log1p(total hours)` times the play weight), merged with the base log by the larger weight per pair; a dislike
newer than the pair's latest positive event (play, purchase, like) removes the pair, from the base log too; pairs
whose events weigh 0 (impressions, clicks by default) add nothing. The types and weights are the interaction
file's too (`feedback.EVENT_TYPES`, one vocabulary). The `interaction_events` source asset is observed at the start
of every refresh (its data version is the newest seq), so the UI shows `user_logs` stale when events arrived since.

Events met under another source than the one they were posted under (issue #26 §5), each rule counted in the
metadata (`event_rules`):
- `other_source`: events posted while the production model was trained on another catalogue or interaction source
  (the demo's simulated players after a switch to a real catalogue and file: their user ids and game ids mean
  something else now) are left out of training, stay stored, and are counted (`provenance.other_source_until`);
- `unknown_game`: events for games the catalogue does not know are kept as items (a site adds games before the
  catalogue refresh) and counted;
- `new_user`: events of users the base source does not have add those users (the trust rules decide when their
  rows count in training); `base_user`: events of the base source's users join their histories.

Trust (`recsys.event_trust`, issue #22): every row is `trusted` (it counts in training: the model, the popularity
list, the holdouts) or `held_back` (the reason: `burst`, `new_user`, `game_cap`), measured against the production
model (`EventTrustResource`, thresholds from GAMEREC_TRUST_*, GAMEREC_EVENTS_BURST_*). A held-back row stays in its
user's served history. `in_base` marks the base source's pairs, on which the trusted holdout is drawn. The metadata
counts what was held back and why (`trust_*`); run config `trust_rules: false` turns the rules off for a run.

Forgotten players (`gamerec users forget ID`, the `forgotten_users` table) are left out: their base-source rows and
their events up to the forget (`recsys.forgotten_rows`); the metadata counts them (`forgotten_*`).
"""

import warnings
from collections.abc import Iterator
from typing import Literal

import dagster as dg
import polars as pl

from gamerec_assets.assets.metadata import figure, markdown_table, png_markdown
from gamerec_assets.recsys.catalogue_file import DataFileError
from gamerec_assets.recsys.evaluation import source_change
from gamerec_assets.recsys.event_trust import Champion, assess
from gamerec_assets.recsys.feedback import EVENT_WEIGHTS, check_event_weights, event_pairs, iso, merge_event_pairs
from gamerec_assets.recsys.forgotten_rows import without_forgotten_events, without_forgotten_users
from gamerec_assets.recsys.interaction_file import LOG_SCHEMA, read_interactions
from gamerec_assets.recsys.linking import STEAM_ONLY_BASE
from gamerec_assets.recsys.provenance import OTHER_SOURCE_COLUMN, logs_version, other_source_until
from gamerec_assets.recsys.simulate import SimulationParams, simulate_user_logs
from gamerec_assets.recsys.steam import read_steam_log, steam_interactions
from gamerec_assets.resources.sources import InteractionSources, catalog_label
from gamerec_assets.resources.storage import ArtifactsResource, TablesResource
from gamerec_assets.resources.trust import EventTrustResource, production_champion
from gamerec_assets.settings import parse_interactions, source_path
from gamerec_assets.store.artifact_store import ArtifactStoreError
from gamerec_assets.store.event_store import FRAME_SCHEMA
from gamerec_assets.store.forgotten_users import ForgottenUsers
from gamerec_assets.store.registry import MODEL_NAME, RegistryError

HISTORY_CHECK = "user_logs_history_lengths"


class UserLogsConfig(dg.Config):
    # empty: the deployment's GAMEREC_INTERACTIONS. Per run: `simulated`, `steam:<path>`, `file:<path>`, or `steam`
    # with `steam_path` (empty: the deprecated GAMEREC_STEAM_PATH, or GAMEREC_INTERACTIONS' steam path)
    source: str = ""
    steam_path: str = ""
    # The simulation: `taste` (users with latent genre/tag tastes, steam-200k history lengths and play time) or
    # `original` (the original game-recommendation prototype's law, which carries no item-item signal).
    simulation: Literal["taste", "original"] = "taste"
    n_users: int = 1000  # enough that the gate's validation fold separates item-CF from popularity on any seed
    max_games: int = 50  # a history cap: 4 % of steam-200k's users have more
    alpha: float = 0.5  # original only
    noise_scale: float = 0.1  # original only
    taste_strength: float = 25.0  # taste only: how strongly a user's taste steers the draw
    seed: int = 42
    # Stored events on top of the base source: `events: false` trains on the base source alone.
    events: bool = True
    # Training weight per event type (`recsys.feedback.EVENT_WEIGHTS` for the types not named here), for the
    # stored events and an interaction file's rows alike
    event_weights: dict[str, float] = dict(EVENT_WEIGHTS)  # noqa: RUF012 (pydantic copies defaults per instance)
    # The poisoning guards (`recsys.event_trust`): `false` trusts every event (for an experiment, never by default)
    trust_rules: bool = True


def resolve_source(config: UserLogsConfig, sources: InteractionSources) -> tuple[str, str]:
    """(source spec, `settings` | `run config`) for this run."""
    if not config.source and not config.steam_path:
        return sources.interactions, "settings"
    raw = config.source or "steam"
    if raw.strip().lower() == "steam":
        path = config.steam_path or sources.steam_path
        if not path:
            raise dg.Failure(
                description="user_logs: source 'steam' needs steam_path (or GAMEREC_INTERACTIONS=steam:<path>)"
            )
        raw = f"steam:{path}"
    try:
        return parse_interactions(raw, "user_logs config `source`"), "run config"
    except ValueError as exc:
        raise dg.Failure(description=f"user_logs: {exc}") from exc


def upstream_catalog(context: dg.AssetExecutionContext, sources: InteractionSources) -> str:
    """The catalogue `game_features` was built from (its latest materialization's metadata), else the settings'."""
    try:
        event = context.instance.get_latest_materialization_event(dg.AssetKey("game_features"))
    except Exception:  # no instance (a direct call in a test): the deployment's catalogue
        event = None
    meta = event.asset_materialization.metadata if event and event.asset_materialization else {}
    value = meta.get("catalog")
    return str(value.value) if value is not None else catalog_label(sources.catalog)


def with_titles(logs: pl.DataFrame, game_features: pl.DataFrame) -> pl.DataFrame:
    """The `title` column kept only for games the catalogue does not have (null otherwise)."""
    known = pl.col("game_id").is_in(game_features["game_id"].implode())
    return logs.with_columns(pl.when(known).then(None).otherwise(pl.col("title")).alias("title")).cast(LOG_SCHEMA)


def unknown_games(logs: pl.DataFrame, game_features: pl.DataFrame) -> dict[str, object]:
    """Interactions whose game is not in the catalogue: counted and shown, never silently dropped."""
    missing = logs.join(game_features.select("game_id"), on="game_id", how="anti")
    examples = missing.group_by("game_id").agg(pl.len().alias("interactions"), pl.col("title").first())
    return {
        "unknown_game_interactions": missing.height,
        "unknown_games": missing["game_id"].n_unique(),
        "unknown_game_examples": markdown_table(examples.sort("interactions", "game_id", descending=[True, False])),
    }


def steam_user_logs(path: str, game_features: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, object]]:
    try:
        log = read_steam_log(path)
    except (OSError, ValueError, pl.exceptions.PolarsError) as exc:
        raise dg.Failure(description=f"user_logs: cannot read the Steam log {path}: {exc}") from exc
    logs, links = steam_interactions(log, game_features)
    per_rule = links.group_by("rule").len()
    linked_titles = int(links.filter(pl.col("rule") != "unmatched").height)
    linked_rows = int(logs.filter(pl.col("game_id") < STEAM_ONLY_BASE).height)
    return with_titles(logs, game_features), {
        "steam_path": path,
        "titles": links.height,
        "title_match_rate": round(linked_titles / max(links.height, 1), 4),
        "interaction_match_rate": round(linked_rows / max(logs.height, 1), 4),
        "link_rules": markdown_table(per_rule),
        "unmatched_examples": markdown_table(links.filter(pl.col("rule") == "unmatched").head(10)),
    }


def file_user_logs(
    path: str, game_features: pl.DataFrame, weights: dict[str, float] = EVENT_WEIGHTS
) -> tuple[pl.DataFrame, dict[str, object]]:
    """An interaction file (`recsys.interaction_file`, weighed with the run's `weights`); games missing from the
    catalogue stay, as items without metadata (their `title` when the file gives one), and are counted."""
    try:
        logs, report = read_interactions(path, weights)
    except DataFileError as exc:
        raise dg.Failure(description=f"user_logs: {exc}") from exc
    extra: dict[str, object] = {"interactions_path": path, **report.metadata(), **unknown_games(logs, game_features)}
    return with_titles(logs, game_features), extra


def simulated_user_logs(config: UserLogsConfig, game_features: pl.DataFrame) -> pl.DataFrame:
    params = SimulationParams(
        config.n_users,
        config.max_games,
        config.alpha,
        config.noise_scale,
        config.seed,
        taste_strength=config.taste_strength,
        model=config.simulation,
    )
    try:
        logs = simulate_user_logs(game_features, params)
    except ValueError as exc:
        raise dg.Failure(description=f"user_logs: bad simulation config: {exc}") from exc
    return logs.with_columns(pl.col("user_id").cast(pl.Utf8), pl.lit(None, pl.Utf8).alias("title")).cast(LOG_SCHEMA)


def events_metadata(summary: dict[str, object]) -> dict[str, object]:
    newest = summary["newest_us"]
    return {
        "events": summary["count"],
        "events_by_type": dg.MetadataValue.json(summary["by_type"]),
        "events_until_seq": summary["until_seq"],
        "events_newest": iso(newest) if isinstance(newest, int) else "none",
    }


with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.BetaWarning)  # observable source assets are beta in Dagster 1.13

    @dg.observable_source_asset(
        name="interaction_events",
        group_name="interactions",
        description="Players' events (`POST /events`), append-only in the table database; observed at the start "
        "of a refresh: its data version is the newest seq, so `user_logs` shows stale when events arrived since.",
    )
    def interaction_events(tables: TablesResource) -> dg.ObserveResult:
        events = tables.events()
        summary = events.summary()
        return dg.ObserveResult(
            data_version=dg.DataVersion(str(summary["until_seq"])),
            metadata={**events_metadata(summary), "table": events.describe()},
        )


def production_manifest(context: dg.AssetExecutionContext, artifacts: ArtifactsResource) -> dict | None:
    """The production model's manifest, or None (none, or unreadable: then the events count as if there were none,
    and the log says why)."""
    try:
        registry = artifacts.registry(MODEL_NAME)
        version = registry.production()
        return registry.manifest(version) if version else None
    except (RegistryError, ArtifactStoreError, OSError, ValueError) as exc:
        context.log.warning(f"user_logs: the production model's manifest is unreadable ({exc}): every event counts")
        return None


def with_events(
    context: dg.AssetExecutionContext,
    config: UserLogsConfig,
    logs: pl.DataFrame,
    game_features: pl.DataFrame,
    tables: TablesResource,
    trust: tuple[EventTrustResource, ArtifactsResource],
    sources: tuple[str, str],
    weights: dict[str, float],
    forgotten: pl.DataFrame | None = None,
) -> tuple[pl.DataFrame, dict[str, object]]:
    """The base log with the stored events up to the newest seq merged in (the module's rules; `sources`: this
    run's catalogue and interaction source), the trust columns and the constant event columns added, and the
    metadata saying what the events did and which rule met them. `forgotten`: players whose events up to their
    forget are left out."""
    store = tables.events()
    until = store.last_seq() if config.events else 0
    stored = store.read(until_seq=until) if until else pl.DataFrame(schema=FRAME_SCHEMA)
    dropped = 0
    if forgotten is not None:
        stored, dropped = without_forgotten_events(stored, forgotten)
    catalog, spec = sources
    production = production_manifest(context, trust[1]) if stored.height else None
    changed = source_change(production, {"data": {"catalog": catalog, "interactions": spec}}) if production else None
    other_until, other_why = other_source_until(production, changed, until)
    events = stored.filter(pl.col("seq") > other_until)
    other = stored.height - events.height
    if other:
        context.log.warning(f"user_logs: {other:,} events up to seq {other_until} left out of training: {other_why}")
    merged, report = merge_event_pairs(logs, event_pairs(events, weights))
    merged, trust_meta = with_trust(context, config, merged, events, trust)
    by_type = dict(sorted(events.group_by("type").len().iter_rows()))
    newest = int(events["timestamp_us"].max()) if events.height else None  # type: ignore[arg-type]
    merged = merged.with_columns(
        pl.lit(until, pl.Int64).alias("events_seq"),
        pl.lit(events.height, pl.Int64).alias("events_count"),
        pl.lit(newest, pl.Int64).alias("events_until_us"),
        pl.lit(other_until, pl.Int64).alias(OTHER_SOURCE_COLUMN),
    )
    unknown = events.join(game_features.select("game_id"), on="game_id", how="anti")
    base_users = logs.select(pl.col("user_id").cast(pl.Utf8)).unique()
    new_user = events.join(base_users, on="user_id", how="anti")
    if events.height:
        context.log.info(
            f"user_logs: {events.height:,} events up to seq {until} {by_type}: {report.added} pairs added, "
            f"{report.changed} changed, {report.removed} removed"
        )
    summary = {"count": events.height, "by_type": by_type, "until_seq": until, "newest_us": newest}
    rules = {
        "other_source": {"events": other, "action": "left out of training (still stored)"},
        "unknown_game": {"events": unknown.height, "action": "kept as items without metadata"},
        "new_user": {"events": new_user.height, "users": new_user["user_id"].n_unique(), "action": "added users"},
        "base_user": {"events": events.height - new_user.height, "action": "joined the base source's users"},
    }
    return merged, {
        **events_metadata(summary),
        **report.metadata(),
        "event_rules": dg.MetadataValue.json(rules),
        "events_other_source": other,
        "events_other_source_until_seq": other_until,
        "events_other_source_why": other_why,
        "unknown_game_events": unknown.height,
        "unknown_event_games": unknown["game_id"].n_unique(),
        "new_user_events": new_user.height,
        "new_event_users": new_user["user_id"].n_unique(),
        "event_weights": dg.MetadataValue.json(weights),
        "events_included": config.events,
        "forgotten_events": dropped,
        **trust_meta,
    }


def with_trust(
    context: dg.AssetExecutionContext,
    config: UserLogsConfig,
    merged: pl.DataFrame,
    events: pl.DataFrame,
    trust: tuple[EventTrustResource, ArtifactsResource],
) -> tuple[pl.DataFrame, dict[str, object]]:
    """`trusted` / `held_back` per row (`recsys.event_trust.assess`, against the production model), and the
    metadata: what was held back, and why."""
    resource, artifacts = trust
    try:
        params = resource.params(enabled=config.trust_rules)
    except ValueError as exc:
        raise dg.Failure(description=f"user_logs: trust settings: {exc}") from exc
    champion, version, problem = (
        production_champion(artifacts.registry(MODEL_NAME)) if events.height else (Champion(), None, None)
    )
    if problem:
        context.log.warning(f"user_logs: {problem}")
    logs, report = assess(merged, events, champion, params)
    if not config.trust_rules and events.height:
        context.log.warning("user_logs: trust_rules is off for this run: every event counts in training")
    held = sum(report.held_back_pairs.values())
    if held:
        context.log.info(f"user_logs: {held:,} event pairs held back from training {report.held_back_pairs}")
    capped = report.capped_games
    return logs, {
        **{k: dg.MetadataValue.json(v) if isinstance(v, dict) else v for k, v in report.metadata().items()},
        "trust_measured_against": problem or (str(version) if version else "no production model"),
        "trust_champion_until_seq": champion.until_seq,
        "trust_capped_games": markdown_table(capped.head(10)) if capped is not None and capped.height else "none",
    }


@dg.asset(
    group_name="interactions",
    kinds={"polars", "table"},
    deps=[interaction_events],
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
    tables: TablesResource,
    artifacts: ArtifactsResource,
    event_trust: EventTrustResource,
) -> Iterator[dg.Output[pl.DataFrame] | dg.AssetCheckResult]:
    """user_id (text), game_id, weight, title: one row per game a user has. Simulated (default), the steam-200k
    log, or an interaction file, as GAMEREC_INTERACTIONS (or this run's `source`) says, with every stored event
    merged in (the module's rule). `timestamp_us`: the pair's newest weighted event (null: base source only);
    `events_seq`, `events_count`, `events_until_us`: which events the table includes (the same on every row);
    `events_other_source_seq`: the events up to it were posted under another source and are left out.
    `in_base`: the pair is in the base source; `trusted` / `held_back`: whether training counts the row, and why not
    (`recsys.event_trust`: bursts, new users, the per-game cap, measured against the production model).

    Simulated users (`recsys.simulate`) draw 1..max_games games near their taste. Steam weights:
    1 + log1p(hours played) (a purchase without play weighs 1). Titles are linked to RAWG games by normalised title;
    unmatched titles stay items of their own (ids >= 10^12) and keep their title. Interaction files: weights by
    event (`recsys.feedback.EVENT_WEIGHTS`, the events' table); games missing from the catalogue stay and are counted.
    `title` is null for games the catalogue has. The history check runs here, with the config in hand.
    """
    spec, source_from = resolve_source(config, sources)
    try:
        weights = check_event_weights(config.event_weights)
    except ValueError as exc:
        raise dg.Failure(description=f"user_logs: {exc}") from exc
    extra: dict[str, object] = {}
    max_games: int | None = None  # real logs have no per-user limit
    if source_from == "run config":
        context.log.warning(f"user_logs: this run reads {spec} (run config), not {sources.interactions} (settings)")
    if spec.startswith("steam:"):
        logs, extra = steam_user_logs(source_path(spec), game_features)
    elif spec.startswith("file:"):
        logs, extra = file_user_logs(source_path(spec), game_features, weights)
    else:
        logs = simulated_user_logs(config, game_features)
        max_games = config.max_games
        extra = {"simulation": config.simulation, "max_games": config.max_games, "seed": config.seed}
    forgotten = ForgottenUsers(tables.store()).frame()
    logs, forgotten_rows = without_forgotten_users(logs, forgotten)
    if forgotten_rows:
        context.log.info(f"user_logs: {forgotten_rows:,} rows of forgotten players left out of {spec}")
    base = logs
    catalog = upstream_catalog(context, sources)
    trust = (event_trust, artifacts)
    logs, events_meta = with_events(
        context, config, logs, game_features, tables, trust, (catalog, spec), weights, forgotten
    )
    extra |= events_meta | {"forgotten_users": forgotten.height, "forgotten_rows": forgotten_rows}
    # provenance rides with the rows, so training records both sources in the model manifest
    logs = logs.with_columns(pl.lit(catalog, pl.Utf8).alias("catalog"), pl.lit(spec, pl.Utf8).alias("source"))
    context.log.info(f"{spec}: {logs.height:,} interactions for {logs['user_id'].n_unique():,} users")
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
            "source": spec,
            "source_from": source_from,
            "catalog": catalog,
            "data_version": dg.MetadataValue.json(logs_version(logs)),
            "users": per_user.height,
            "interactions": logs.height,
            "games_played": logs["game_id"].n_unique(),
            **extra,
            "history_lengths": png_markdown(fig, "games per user"),
            "most_played": markdown_table(top),
        },
    )
    yield history_lengths_check(logs, game_features, max_games, allow_unknown=spec.startswith("file:"), base=base)


def history_lengths_check(
    user_logs: pl.DataFrame,
    game_features: pl.DataFrame,
    max_games: int | None,
    allow_unknown: bool = False,
    base: pl.DataFrame | None = None,
) -> dg.AssetCheckResult:
    """No duplicate (user, game) pairs, at most `max_games` per user (None: no limit), every linked game known
    (an interaction file's games missing from the catalogue are allowed: they are counted in the metadata).
    `base`: the base source's log before events were merged: `max_games` and unknown games are checked on it
    (players' events may add games to a history, and name games the catalogue does not have yet)."""
    per_user = user_logs.group_by("user_id").agg(pl.len().alias("n"), pl.col("game_id").n_unique().alias("distinct"))
    duplicates = int((per_user["n"] != per_user["distinct"]).sum())
    source = user_logs if base is None else base
    per_source_user = source.group_by("user_id").len("n")
    too_many = int((per_source_user["n"] > max_games).sum()) if max_games is not None else 0
    unknown = (
        source.filter(pl.col("game_id") < STEAM_ONLY_BASE)
        .join(game_features.select("game_id"), on="game_id", how="anti")
        .height
    )
    return dg.AssetCheckResult(
        check_name=HISTORY_CHECK,
        passed=duplicates == 0 and too_many == 0 and (unknown == 0 or allow_unknown) and per_user.height > 0,
        metadata={
            "users": per_user.height,
            "users_with_duplicates": duplicates,
            "users_over_max": too_many,
            "max_games": str(max_games),
            "unknown_games": unknown,
        },
    )
