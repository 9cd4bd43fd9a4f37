"""IO managers: tables to the table store, artifacts (raw pages, models) to the artifact store.

Both are backend-agnostic: they receive the TablesResource / ArtifactsResource over the stores that
`gamerec_assets.backends` chose and built.
"""

import gzip
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import numpy as np
import polars as pl

from gamerec_assets.lineage import source_run_id, upstream_materialization
from gamerec_assets.recsys.model_artifact import ModelArtifact
from gamerec_assets.resources.storage import ArtifactsResource, TablesResource
from gamerec_assets.store.registry import ModelRegistry, new_version

INDEX = "_complete.json"
KIND = "artifact_kind"  # "model" | "pages", in the output metadata beside `version`
FINGERPRINT = "content_fingerprint"  # a table's content as published, in its output metadata


@dataclass
class RawPages:
    """RAWG pages as fetched, with where they came from."""

    pages: list[dict[str, Any]]
    source: str
    crawl_date: str = ""  # YYYY-MM-DD: crawls are kept side by side, one folder per date


@dataclass
class TableChunks:
    """A table produced chunk by chunk, so large outputs stream into the store in bounded memory."""

    chunks: Callable[[], Iterator[pl.DataFrame]]
    metadata: dict[str, Any] = field(default_factory=dict)


def _asset_name(context: dg.OutputContext | dg.InputContext) -> str:
    return context.asset_key.path[-1]


class ContentFingerprint:
    """What a table holds, in O(rows) and independent of row order: the row count and the sum of polars row hashes.

    Order-independent because a table is read back sorted by its key, not in the order its chunks were written;
    chunk by chunk, so a streamed table is fingerprinted as it streams. Row hashes are stable within one polars
    version only, so the version is part of the fingerprint and fingerprints of two versions are never compared.
    """

    def __init__(self) -> None:
        self.rows = 0
        self.total = 0

    def add(self, frame: pl.DataFrame) -> pl.DataFrame:
        self.total = (self.total + int(frame.hash_rows(seed=0).to_numpy().sum(dtype=np.uint64))) % 2**64
        self.rows += frame.height
        return frame

    def text(self) -> str:
        return f"polars-{pl.__version__}:{self.rows}:{self.total:016x}"

    @classmethod
    def of(cls, frame: pl.DataFrame) -> str:
        fingerprint = cls()
        fingerprint.add(frame)
        return fingerprint.text()


def comparable(a: str, b: str) -> bool:
    """Both fingerprints come from the same polars version (row hashes of two versions differ for equal rows)."""
    return a.split(":", 1)[0] == b.split(":", 1)[0]


class TableIOManager(dg.ConfigurableIOManager):
    """Polars frames <-> tables named after their asset, published atomically (staging table + rename).

    A table is one name, last writer wins: two overlapping runs both publish `user_logs`. So every publication
    records its content fingerprint, and every read compares what it got with what the lineage says it should
    read (`gamerec_assets.lineage`): another run's table in place of this run's own fails the step instead of
    training or evaluating on a mix; against the latest materialization (a run that did not produce the table)
    a difference is only a warning, since the newest published table is what such a run reads anyway.
    """

    tables: TablesResource

    def handle_output(self, context: dg.OutputContext, obj: pl.DataFrame | TableChunks) -> None:
        store = self.tables.store()
        name = _asset_name(context)
        meta = context.definition_metadata or {}
        fingerprint = ContentFingerprint()
        frames = (fingerprint.add(f) for f in obj.chunks()) if isinstance(obj, TableChunks) else fingerprint.add(obj)
        result = store.write(name, frames, primary_key=meta.get("primary_key"), indexes=meta.get("indexes"))
        if meta.get("history_table") and isinstance(obj, pl.DataFrame):
            # e.g. evaluation_history: every run's rows, stamped, so quality can be followed over time
            store.append(meta["history_table"], obj.with_columns(pl.lit(context.run_id).alias("dagster_run_id")))
        context.log.info(f"published table {name} ({result.rows:,} rows) on {store.backend}: {store.describe()}")
        context.add_output_metadata(
            {
                "dagster/row_count": result.rows,
                "table": dg.MetadataValue.text(f"{store.describe()} :: {name}"),
                "table_backend": store.backend,
                FINGERPRINT: fingerprint.text(),
            }
        )

    def load_input(self, context: dg.InputContext) -> pl.DataFrame:
        name = _asset_name(context)
        frame = self.tables.store().read(name)
        got = ContentFingerprint.of(frame)
        recorded = upstream_materialization(context)
        expected = recorded.text(FINGERPRINT) if recorded is not None else None
        if recorded is not None and expected is not None and comparable(got, expected) and got != expected:
            message = (
                f"table {name} no longer holds what its {recorded.source} published (fingerprint {expected}, "
                f"now {got}): another run republished it since"
            )
            if source_run_id(context) is not None:
                raise dg.Failure(description=f"{message}; refusing to mix runs: rerun this step or the run")
            context.log.warning(f"{message}; reading the table as it is now")
        context.add_input_metadata({FINGERPRINT: got, "expected_fingerprint": str(expected)})
        return frame


class ArtifactIOManager(dg.ConfigurableIOManager):
    """Write-once objects under `<asset>/<version>/...`; which version a step reads is in the Dagster event log.

    There is no "newest" pointer: with two runs overlapping it would hand run A's gate, report and release run B's
    model. `handle_output` records the version in the materialization metadata and `load_input` reads exactly the
    version its own run's upstream step recorded, or the latest materialization's when the run did not produce it
    (`gamerec_assets.lineage`).
    """

    artifacts: ArtifactsResource

    def handle_output(self, context: dg.OutputContext, obj: ModelArtifact | RawPages) -> None:
        store = self.artifacts.store()
        name = _asset_name(context)
        if isinstance(obj, ModelArtifact):
            version = ModelRegistry(store, name).publish(obj)
            kind = "model"
        elif isinstance(obj, RawPages):
            version = f"{obj.crawl_date}/{new_version()}" if obj.crawl_date else new_version()
            keys = []
            for n, page in enumerate(obj.pages, start=1):
                key = f"{name}/{version}/page-{n:04d}.json.gz"
                store.put(key, gzip.compress(json.dumps(page, ensure_ascii=False).encode(), 6, mtime=0))
                keys.append(key)
            index = {"pages": keys, "source": obj.source, "crawl_date": obj.crawl_date}
            store.put(f"{name}/{version}/{INDEX}", json.dumps(index).encode())
            kind = "pages"
        else:
            raise dg.Failure(f"{name}: ArtifactIOManager cannot store {type(obj).__name__}")
        context.log.info(f"stored {name} version {version} in {store.describe()}")
        context.add_output_metadata(
            {
                "version": version,
                KIND: kind,
                "uri": dg.MetadataValue.url(f"{store.describe()}/{name}/{version}/"),
                "artifact_backend": store.describe().split(":")[0],
            }
        )

    def load_input(self, context: dg.InputContext) -> ModelArtifact | RawPages:
        store = self.artifacts.store()
        name = _asset_name(context)
        recorded = upstream_materialization(context)
        if recorded is None:
            raise dg.Failure(
                description=f"{name}: no materialization of it is recorded in this Dagster instance, so there is no "
                "version to read: materialize it first"
            )
        version = recorded.version()
        context.log.info(f"reading {name} version {version} ({recorded.source})")
        # on the step's LOADED_INPUT event: which version each step read stays on record, checks included
        context.add_input_metadata({"version": version, "read_from": recorded.source})
        kind = recorded.text(KIND) or ("pages" if store.exists(f"{name}/{version}/{INDEX}") else "model")
        if kind == "model":
            return ModelRegistry(store, name).load(version)
        index = json.loads(store.get(f"{name}/{version}/{INDEX}"))
        pages = [json.loads(gzip.decompress(store.get(key))) for key in index["pages"]]
        return RawPages(pages, index["source"], index.get("crawl_date", ""))
