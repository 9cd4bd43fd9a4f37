"""`batch_recommendations` sharded by user: one run whose shard steps score users in parallel, one atomic publish.

`plan_shards` reads `user_logs` once, splits the users (sorted, as the main location's asset walks them) into
contiguous shards and writes each shard's history to the artifact store; one `score_shard[NNN]` step per shard
(under the celery executor: on whichever worker takes the task) scores its users with the main location's own
`recommendation_chunks` and writes its rows as one chunk; `publish_batch` streams the chunks, in shard order, into
the `batch_recommendations` table: one staging load, one swap, as the main asset publishes it.

A user's rows depend on that user's history and the model only (never on the other users of a chunk or shard), so
the sharded table equals the single-process one exactly, whatever the shard count. The model is the version the
main location released (`released_version`: the latest `production_model` materialization, else the registry's
production alias), and the publish records a materialization of the `batch_recommendations` asset with the same
content fingerprint the table IO manager records, so the main location's readers see this table as its asset's.

Shard inputs and chunks are Parquet objects under `scale/runs/<run id>/batch/` (text user ids stay text; no
pickle); the step outputs passed between steps are small `.npz` specs through `ScaleIOManager`.

The op bodies are module-level functions (`plan_shards`, `score_shard`, `publish_batch`), importable and callable
alone; `make_score_job` wraps them in the job's ops, whose `shards` default is the location's.
"""

import inspect
import io
import time
from collections.abc import Iterator

import dagster as dg
import numpy as np
import polars as pl

from gamerec_assets.assets.serving import recommendation_chunks, released_version
from gamerec_assets.io_managers import FINGERPRINT, ContentFingerprint
from gamerec_assets.recsys.forgotten_rows import without_forgotten_users
from gamerec_assets.recsys.served_model import BATCH_SCHEMA, ServingModel
from gamerec_assets.resources.storage import ArtifactsResource, TablesResource
from gamerec_assets.scale.block_assets import where_am_i
from gamerec_assets.scale.block_io import IO_MANAGER_KEY, PREFIX, Arrays
from gamerec_assets.store.artifact_store import ArtifactStore
from gamerec_assets.store.forgotten_users import ForgottenUsers
from gamerec_assets.store.registry import MODEL_NAME

BATCH_TABLE = "batch_recommendations"
BATCH_KEY = dg.AssetKey(BATCH_TABLE)
PRIMARY_KEY = ["user_id", "rank"]  # the main asset's `primary_key` metadata


def shard_keys(n_shards: int) -> list[str]:
    return [f"{s:03d}" for s in range(n_shards)]


def frame_bytes(frame: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.write_parquet(buf)
    return buf.getvalue()


def read_frame(store: ArtifactStore, key: str) -> pl.DataFrame:
    return pl.read_parquet(io.BytesIO(store.get(key)))


def run_key(run_id: str, name: str) -> str:
    return f"{PREFIX}/runs/{run_id}/batch/{name}.parquet"


def user_shards(user_logs: pl.DataFrame, n_shards: int) -> list[pl.DataFrame]:
    """(user_id, game_id) rows split into at most `n_shards` contiguous ranges of sorted users, balanced by user."""
    logs = user_logs.select("user_id", "game_id").sort("user_id", maintain_order=True)
    n_users = logs["user_id"].n_unique()
    n_shards = max(1, min(n_shards, n_users))
    shard = ((pl.col("user_id").rank("dense").cast(pl.Int64) - 1) * n_shards // n_users).alias("shard")
    parts = logs.with_columns(shard).partition_by("shard", maintain_order=True, include_key=False, as_dict=True)
    return [parts[(s,)] for s in range(n_shards)]


class PlanShardsConfig(dg.Config):
    shards: int = 8  # GAMEREC_SCALE_BLOCKS' default; `make_score_job` makes the location's own the default
    k: int = 10  # the main asset's BatchRecommendationsConfig defaults
    chunk_users: int = 50_000


class ScoreShardConfig(dg.Config):
    # Seconds a shard step waits before its work, for tests that watch a step in flight; always 0 in production.
    hold_s: float = 0.0


def plan_shards(
    context: dg.OpExecutionContext, config: PlanShardsConfig, tables: TablesResource, artifacts: ArtifactsResource
) -> Iterator[dg.DynamicOutput[Arrays]]:
    """The released model version, and one dynamic output per user shard (its history written beside it)."""
    if config.shards < 1:
        raise dg.Failure(description=f"shards must be >= 1, got {config.shards}")
    version, source = released_version(context, artifacts.registry(MODEL_NAME))  # type: ignore[arg-type]
    if version is None:
        raise dg.Failure(description="batch_recommendations: the registry has no production model yet")
    user_logs = tables.store().read("user_logs")
    # players forgotten since user_logs was written (the forget may not have reached its rows yet)
    user_logs, _ = without_forgotten_users(user_logs, ForgottenUsers(tables.store()).frame())
    if user_logs.height == 0:
        raise dg.Failure(description="batch_recommendations: user_logs has no users")
    shards = user_shards(user_logs, config.shards)
    context.log.info(f"model {version} ({source}): {user_logs['user_id'].n_unique():,} users in {len(shards)} shards")
    store = artifacts.store()
    for key, history in zip(shard_keys(len(shards)), shards, strict=True):
        object_key = run_key(context.run_id, f"history-{key}")
        store.replace(object_key, frame_bytes(history))
        spec = {
            "shard": np.asarray(int(key), np.int64),
            "shards": np.asarray(len(shards), np.int64),
            "users": np.asarray(history["user_id"].n_unique(), np.int64),
            "history": np.asarray(object_key),
            "version": np.asarray(version),
            "k": np.asarray(config.k, np.int64),
            "chunk_users": np.asarray(config.chunk_users, np.int64),
        }
        yield dg.DynamicOutput(spec, mapping_key=key)


def score_shard(
    context: dg.OpExecutionContext, config: ScoreShardConfig, artifacts: ArtifactsResource, spec: Arrays
) -> dg.Output[Arrays]:
    """Top-k rows of one shard's users, written as one chunk. The metadata names the host, pid and directory."""
    here = where_am_i()
    shard = int(spec["shard"])
    context.log.info(f"shard {shard} on {here['worker_host']} pid {here['worker_pid']} in {here['worker_dir']}")
    if config.hold_s > 0:
        time.sleep(config.hold_s)
    store = artifacts.store()
    started = time.perf_counter()
    history = read_frame(store, str(spec["history"]))
    model = ServingModel(artifacts.registry(MODEL_NAME).load(str(spec["version"])))
    frames = list(recommendation_chunks(model, history, int(spec["k"]), int(spec["chunk_users"])))
    chunk = pl.concat(frames) if frames else pl.DataFrame(schema=BATCH_SCHEMA)
    object_key = run_key(context.run_id, f"chunk-{shard:03d}")
    store.replace(object_key, frame_bytes(chunk))
    seconds = time.perf_counter() - started
    return dg.Output(
        {**spec, "chunk": np.asarray(object_key), "rows": np.asarray(chunk.height, np.int64)},
        metadata={
            "users": int(spec["users"]),
            "rows": chunk.height,
            "seconds": round(seconds, 3),
            "users_per_s": round(int(spec["users"]) / max(seconds, 1e-9)),
            **here,
        },
    )


def publish_batch(
    context: dg.OpExecutionContext, tables: TablesResource, artifacts: ArtifactsResource, shards: list[Arrays]
) -> dg.AssetMaterialization:
    """Every shard's chunk, in shard order, published as `batch_recommendations` in one atomic swap."""
    parts = sorted(shards, key=lambda s: int(s["shard"]))
    counts = {int(s["shards"]) for s in parts}
    if counts != {len(parts)} or [int(s["shard"]) for s in parts] != list(range(len(parts))):
        raise dg.Failure(description=f"shards {[int(s['shard']) for s in parts]} of counts {sorted(counts)}")
    versions = {str(s["version"]) for s in parts}
    if len(versions) != 1:
        raise dg.Failure(description=f"shards were scored by several model versions: {sorted(versions)}")
    store, objects = tables.store(), artifacts.store()
    fingerprint = ContentFingerprint()
    started = time.perf_counter()
    chunks = (fingerprint.add(read_frame(objects, str(s["chunk"]))) for s in parts)
    result = store.write(BATCH_TABLE, chunks, primary_key=PRIMARY_KEY)
    seconds = time.perf_counter() - started
    context.log.info(f"published table {BATCH_TABLE} ({result.rows:,} rows) on {store.backend}")
    return dg.AssetMaterialization(
        asset_key=BATCH_KEY,
        description=f"published by {len(parts)} user shards",
        metadata={
            "dagster/row_count": result.rows,
            "table": dg.MetadataValue.text(f"{store.describe()} :: {BATCH_TABLE}"),
            "table_backend": store.backend,
            FINGERPRINT: fingerprint.text(),
            "model_version": versions.pop(),
            "k": int(parts[0]["k"]),
            "users": sum(int(s["users"]) for s in parts),
            "shards": len(parts),
            "publish_seconds": round(seconds, 3),
            "publish_rows_per_s": round(result.rows / max(seconds, 1e-9)),
            **where_am_i(),
        },
    )


def make_score_job(n_shards: int, name: str, tags: dict[str, str]) -> dg.JobDefinition:
    """The sharded scoring job, its ops thin wrappers of the functions above; `n_shards` (GAMEREC_SCALE_BLOCKS) is
    the default of `plan_shards`' `shards`."""

    class LocationPlanShardsConfig(PlanShardsConfig):
        shards: int = n_shards

    @dg.op(
        name="plan_shards", description=inspect.getdoc(plan_shards), out=dg.DynamicOut(io_manager_key=IO_MANAGER_KEY)
    )
    def plan_shards_op(
        context: dg.OpExecutionContext,
        config: LocationPlanShardsConfig,
        tables: TablesResource,
        artifacts: ArtifactsResource,
    ) -> Iterator[dg.DynamicOutput[Arrays]]:
        yield from plan_shards(context, config, tables, artifacts)

    @dg.op(name="score_shard", description=inspect.getdoc(score_shard), out=dg.Out(io_manager_key=IO_MANAGER_KEY))
    def score_shard_op(
        context: dg.OpExecutionContext, config: ScoreShardConfig, artifacts: ArtifactsResource, spec: Arrays
    ) -> dg.Output[Arrays]:
        return score_shard(context, config, artifacts, spec)

    @dg.op(name="publish_batch", description=inspect.getdoc(publish_batch), out={})
    def publish_batch_op(
        context: dg.OpExecutionContext, tables: TablesResource, artifacts: ArtifactsResource, shards: list[Arrays]
    ) -> Iterator[dg.AssetMaterialization]:
        yield publish_batch(context, tables, artifacts, shards)

    @dg.job(
        name=name,
        tags=tags,
        description="batch_recommendations in one run: plan the user shards, score each (in parallel), publish.",
    )
    def score_job() -> None:
        publish_batch_op(plan_shards_op().map(score_shard_op).collect())

    return score_job
