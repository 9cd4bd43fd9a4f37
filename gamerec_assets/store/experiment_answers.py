"""The `experiment_answers` table: what each answer served during an online experiment showed, and which model
contributed each game.

A request id already names its experiment, arm and versions (`recsys.experiment_ids`), so an event quoting it is
attributed without this table. What the id cannot carry is the list itself: an interleaved answer credits each game
to the model that drafted it, and the online evaluation counts impressions and conversions per answer. The API
appends one row per answer given under an experiment (in batches, off the request path); nothing is written outside
experiments. Rows older than the retention are pruned by the online evaluation, so the table stays bounded.

    request_id, experiment, arm ("p" | "c" | "i"), version, challenger_version, user_id, served_us,
    game_ids (list of int, the answer's order), teams (one letter "p"/"c" per game, the same order)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl
import sqlalchemy as sa

from gamerec_assets.store.table_store import TableStore, TableStoreError

EXPERIMENT_ANSWERS_TABLE = "experiment_answers"
ARMS = ("p", "c", "i")
SCHEMA: dict[str, pl.DataType] = {
    "request_id": pl.String(),
    "experiment": pl.String(),
    "arm": pl.String(),
    "version": pl.String(),
    "challenger_version": pl.String(),
    "user_id": pl.String(),
    "served_us": pl.Int64(),
    "game_ids": pl.List(pl.Int64()),
    "teams": pl.String(),
}


@dataclass(frozen=True)
class AnswerRecord:
    """One answer served under an experiment. `teams[i]` names the model ("p" production, "c" challenger) that
    contributed `game_ids[i]`; an A/B answer's teams are all its arm's letter."""

    request_id: str
    experiment: str
    arm: str  # "p" | "c" | "i"
    version: str  # the version that answered (interleave: production's)
    challenger_version: str  # "" unless interleaved
    user_id: str
    served_us: int
    game_ids: tuple[int, ...]
    teams: str

    def __post_init__(self) -> None:
        if self.arm not in ARMS:
            raise ValueError(f"arm {self.arm!r} is not one of {ARMS}")
        if len(self.teams) != len(self.game_ids) or set(self.teams) - {"p", "c"}:
            raise ValueError("teams must hold one 'p' or 'c' per game")


class ExperimentAnswers:
    """Append and read the answers of experiments (both table backends, through TableStore)."""

    def __init__(self, tables: TableStore) -> None:
        self.tables = tables

    @staticmethod
    def to_frame(records: Sequence[AnswerRecord]) -> pl.DataFrame:
        return pl.DataFrame(
            {
                "request_id": [r.request_id for r in records],
                "experiment": [r.experiment for r in records],
                "arm": [r.arm for r in records],
                "version": [r.version for r in records],
                "challenger_version": [r.challenger_version for r in records],
                "user_id": [r.user_id for r in records],
                "served_us": [r.served_us for r in records],
                "game_ids": [list(r.game_ids) for r in records],
                "teams": [r.teams for r in records],
            },
            schema=SCHEMA,
        )

    def append(self, records: Sequence[AnswerRecord]) -> int:
        """Add the answers in one transaction (all or none); the number of rows added."""
        if not records:
            return 0
        self.tables.append(EXPERIMENT_ANSWERS_TABLE, self.to_frame(records))
        return len(records)

    def ensure(self) -> None:
        """Create the (empty) table unless it exists. `gamerec experiments start` calls it before any worker routes
        traffic: a worker's first append would otherwise publish the table, and two workers' first appends at once
        would each publish their own rows and one would replace the other's."""
        if not self.tables.exists(EXPERIMENT_ANSWERS_TABLE):
            self.tables.write(EXPERIMENT_ANSWERS_TABLE, pl.DataFrame(schema=SCHEMA))

    def frame(self, experiment: str | None = None) -> pl.DataFrame:
        """Every stored answer (of one experiment), oldest first; an empty frame with the schema when none (also
        while a first append is publishing the table: created, not yet recorded)."""
        if not self.tables.exists(EXPERIMENT_ANSWERS_TABLE):
            return pl.DataFrame(schema=SCHEMA)
        where = {"experiment": experiment} if experiment is not None else None
        try:
            rows = self.tables.read(EXPERIMENT_ANSWERS_TABLE, where=where)
        except TableStoreError as exc:
            if "does not exist" in str(exc):
                return pl.DataFrame(schema=SCHEMA)
            raise
        return rows.sort("served_us", maintain_order=True)

    def prune(self, older_than_us: int) -> int:
        """Delete answers served before `older_than_us`; the number deleted."""
        if not self.tables.exists(EXPERIMENT_ANSWERS_TABLE):
            return 0
        table = sa.table(EXPERIMENT_ANSWERS_TABLE, sa.column("served_us"))
        try:
            with self.tables.engine.begin() as conn:
                deleted = conn.execute(sa.delete(table).where(table.c.served_us < int(older_than_us))).rowcount
        except sa.exc.SQLAlchemyError as exc:
            raise TableStoreError(f"pruning {EXPERIMENT_ANSWERS_TABLE} failed: {self.tables.cause(exc)}") from exc
        return int(deleted or 0)
