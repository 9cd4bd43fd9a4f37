"""`OnlineEvaluationResource`: the online evaluation's settings (GAMEREC_ONLINE_*) and its reads, shared by the
`online_evaluation` asset and `production_model`'s online rule, so both judge an experiment on the same data with the
same test (`recsys.online_evaluation`)."""

from __future__ import annotations

import time
from collections.abc import Sequence

import dagster as dg
import polars as pl
import sqlalchemy as sa

from gamerec_assets.recsys.online_evaluation import DAY_US, OnlineParams, OnlineResult, evaluate
from gamerec_assets.resources.storage import ArtifactsResource, TablesResource
from gamerec_assets.settings import OnlineSettings
from gamerec_assets.store.experiment_answers import ExperimentAnswers
from gamerec_assets.store.experiments import Experiment, ExperimentStore
from gamerec_assets.store.registry import MODEL_NAME

CATALOGUE_TABLE = "game_features"


class OnlineEvaluationResource(dg.ConfigurableResource):
    """What the online evaluation reads (the tables and the experiments' record) and how it judges."""

    tables: TablesResource
    artifacts: ArtifactsResource
    gate: bool = OnlineSettings.gate  # production_model's online rule (GAMEREC_ONLINE_GATE)
    alpha: float = OnlineSettings.alpha
    retention_days: float = OnlineSettings.retention_days

    def params(self) -> OnlineParams:
        return OnlineParams(alpha=self.alpha)

    def cutoff_us(self, now_us: int | None = None) -> int:
        """Answers served (and events stamped) before this are outside the retention."""
        now = int(time.time() * 1e6) if now_us is None else now_us
        return now - int(self.retention_days * DAY_US)

    def experiments(self) -> list[Experiment]:
        return ExperimentStore(self.artifacts.store(), MODEL_NAME).all()

    def running(self) -> Experiment | None:
        return ExperimentStore(self.artifacts.store(), MODEL_NAME).current()

    def prune(self, now_us: int | None = None) -> int:
        """Delete the answers older than the retention; how many."""
        return ExperimentAnswers(self.tables.store()).prune(self.cutoff_us(now_us))

    def catalogue_size(self) -> int | None:
        """Rows of the published `game_features` (None before the first one): coverage's denominator."""
        store = self.tables.store()
        if not store.exists(CATALOGUE_TABLE):
            return None
        with store.errors(f"counting {CATALOGUE_TABLE} in"), store.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(sa.table(CATALOGUE_TABLE))).scalar() or 0)

    def evaluate(self, experiments: Sequence[Experiment], only: str | None = None) -> OnlineResult:
        """`recsys.online_evaluation.evaluate` over the retention window: every experiment the data names and every
        one in `experiments` (`only`: that experiment's answers and events alone)."""
        cutoff = self.cutoff_us()
        answers = ExperimentAnswers(self.tables.store()).frame(only)
        answers = answers.filter(pl.col("served_us") >= cutoff)
        events = self.tables.events().read()
        marker = f"~{only}~" if only is not None else "~"
        events = events.filter(
            pl.col("request_id").str.contains(marker, literal=True) & (pl.col("timestamp_us") >= cutoff)
        )
        chosen = [e for e in experiments if only is None or e.name == only]
        return evaluate(events, answers, chosen, self.catalogue_size(), self.params())
