"""Scoring models under the holdout protocol of `split.py`, and the comparisons built on it.

The publication gate, the evaluation report, the champion re-score and training all score through one `Holdout`,
so a figure from one of them is comparable with the others: same split, same catalogue, same served model.

**The trusted holdout** (issue #22: poisoning). The validation and test folds are drawn on the base source's pairs
alone (`user_logs.in_base`: simulated, steam or file rows), with the protocol's seeded per-user split; pairs that only
players' events brought are always `train`, and rows `event_trust` held back are not used at all. So new events
cannot move the folds (no event row is dealt a key, however its user id sorts) nor put made-up users in them: a
model trained on poisoned events is measured on the same base players as the champion, and its figure falls
instead of the yardstick moving with it. The manifest records the validation fold's fingerprint (`holdout`); two
versions with the same fingerprint compare by their recorded figures (each fit on its own training data), else the
champion's parameters are re-scored under the challenger's holdout. Limitation: a dislike that removes a base pair
removes it from the folds too (the split is then dealt over one pair fewer). Logs without `in_base` (older tables,
tests) are all base: the protocol is then exactly `split.split_interactions` over every row, as before.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp

from gamerec_assets.recsys.content import ItemContent
from gamerec_assets.recsys.event_trust import training_rows
from gamerec_assets.recsys.matrix import Interactions, build_matrix, catalogue, user_order
from gamerec_assets.recsys.metrics import catalogue_coverage, ranking_metrics
from gamerec_assets.recsys.models import build_model, dense_topn
from gamerec_assets.recsys.provenance import fingerprint
from gamerec_assets.recsys.recommender import Recommender
from gamerec_assets.recsys.selection import METRIC, K, Trial
from gamerec_assets.recsys.split import SplitParams, TemporalParams, TemporalSplit, split_interactions, temporal_split

KS = (5, 10, 20)
GATE_K, GATE_METRIC = K, METRIC  # what selection maximises is what the gate and the champion comparison look at
POPULARITY: dict[str, Any] = {"model": "Popularity"}  # the baseline every published model must beat


@dataclass(frozen=True)
class HoldoutResult:
    target: str
    metrics: dict[int, dict[str, float]]
    coverage: float

    def flat(self, prefix: str = "") -> dict[str, float]:
        return {f"{prefix}{m}@{k}": v for k, row in self.metrics.items() for m, v in row.items() if m != "users"}


class Holdout:
    """One split of the logs over one catalogue; fold matrices are built once however many models are scored."""

    def __init__(
        self,
        split: pl.DataFrame,
        item_ids: np.ndarray,
        params: SplitParams | None = None,
        item_content: ItemContent | None = None,
    ) -> None:
        self.split = split
        self.item_ids = item_ids
        self.params = params
        self.item_content = item_content  # the catalogue's attributes over item_ids, for a Hybrid
        self.users = user_order(split["user_id"])
        self._folds: dict[str, tuple[Interactions, Interactions]] = {}

    @classmethod
    def of(cls, user_logs: pl.DataFrame, game_features: pl.DataFrame, params: SplitParams | None = None) -> Holdout:
        params = params or SplitParams()
        item_ids = catalogue(game_features, user_logs)
        content = ItemContent.of(game_features, user_logs, item_ids)
        return cls(trusted_split(user_logs, params), item_ids, params, content)

    @classmethod
    def of_manifest(cls, user_logs: pl.DataFrame, game_features: pl.DataFrame, manifest: Mapping[str, Any]) -> Holdout:
        """The split a stored version was validated on, applied to these logs."""
        return cls.of(user_logs, game_features, SplitParams(**manifest["split"]))

    def describe(self) -> dict[str, Any]:
        """The manifest's `holdout` block: which validation fold a recorded figure was measured on."""
        validation = self.split.filter(pl.col("fold") == "validation").select("user_id", "game_id")
        return {
            "protocol": "trusted: the base source's pairs split per user; event pairs train only",
            "fingerprint": fingerprint(validation, ["user_id", "game_id"]),
            "validation_pairs": validation.height,
            "validation_users": validation["user_id"].n_unique(),
        }

    def folds(self, target: str = "validation") -> tuple[Interactions, Interactions]:
        """(history, truth) for `target`: the history is train (train + validation for test), over every user."""
        if target not in self._folds:
            history_folds = ["train"] if target == "validation" else ["train", "validation"]
            history = build_matrix(self.split.filter(pl.col("fold").is_in(history_folds)), self.item_ids, self.users)
            truth = build_matrix(self.split.filter(pl.col("fold") == target), self.item_ids, self.users)
            self._folds[target] = (history, truth)
        return self._folds[target]

    def evaluate(self, model: Recommender, target: str = "validation", ks: Sequence[int] = KS) -> HoldoutResult:
        """Fit the unfitted `model` on the history of `target` and score the `target` fold."""
        history, truth = self.folds(target)
        rows = np.flatnonzero(np.diff(truth.matrix.indptr) > 0)
        model.fit(history.matrix)
        ids, _ = model.recommend(history.matrix[rows], N=max(ks))
        relevant = truth.matrix[rows]
        metrics = {k: ranking_metrics(ids, relevant, k) for k in ks}
        return HoldoutResult(target, metrics, catalogue_coverage(ids, len(self.item_ids)))

    def score(self, params: Mapping[str, Any], target: str = "validation", ks: Sequence[int] = KS) -> HoldoutResult:
        """The model `params` describe (as served, when they name `serving_neighbors`), scored on `target`."""
        return self.evaluate(build_model(dict(params), self.item_content), target, ks)


def trusted_split(user_logs: pl.DataFrame, params: SplitParams | None = None) -> pl.DataFrame:
    """The trusted holdout's folds (the module docstring): the base pairs split with `params`, every trusted event
    pair in `train`, held-back rows left out; user_id, game_id, weight, fold (+ the logs' other columns)."""
    params = params or SplitParams()
    rows = training_rows(user_logs)
    if "in_base" not in rows.columns:
        return split_interactions(rows, params)
    split = split_interactions(rows.filter(pl.col("in_base")), params)
    extra = rows.filter(~pl.col("in_base")).with_columns(pl.col("user_id").cast(pl.Utf8), pl.lit("train").alias("fold"))
    return pl.concat([split, extra.select(split.columns)])


def evaluate_holdout(
    split: pl.DataFrame,
    item_ids: np.ndarray,
    factory: Callable[[], Recommender],
    target: str = "validation",
    ks: Sequence[int] = KS,
) -> HoldoutResult:
    """Fit on the folds before `target` (train; train+validation for test) and score the `target` fold."""
    return Holdout(split, item_ids).evaluate(factory(), target, ks)


def same_training_data(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two manifests were fit and validated on the same matrix and split, so their figures compare."""
    fingerprint = a.get("training_data", {}).get("fingerprint")
    return fingerprint == b.get("training_data", {}).get("fingerprint") and a.get("split") == b.get("split")


def source_change(champion: Mapping[str, Any], challenger: Mapping[str, Any]) -> str | None:
    """What changed between the sources two manifests were trained on ("interactions simulated -> file:/x"), or
    None when neither did. A manifest without sources (older versions) compares as unchanged: there is no
    recorded source to differ from."""
    old, new = champion.get("data") or {}, challenger.get("data") or {}
    changes = [
        f"{key} {old[key]} -> {new[key]}"
        for key in ("catalog", "interactions")
        if key in old and key in new and "unknown" not in (old[key], new[key]) and old[key] != new[key]
    ]
    return "; ".join(changes) or None


def same_holdout(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two manifests' validation figures were measured on the same trusted validation fold."""
    fingerprint = (a.get("holdout") or {}).get("fingerprint")
    same_fold = fingerprint is not None and fingerprint == (b.get("holdout") or {}).get("fingerprint")
    return same_fold and a.get("split") == b.get("split")


def champion_score(
    champion: Mapping[str, Any], challenger: Mapping[str, Any], user_logs: pl.DataFrame, game_features: pl.DataFrame
) -> tuple[float, str]:
    """The champion's validation figure on the challenger's trusted holdout, and how it was obtained.

    Same training data, or the same trusted validation fold: the champion's recorded figure (on the same fold,
    each model fit on its own training data, so events that make a model worse show as a lower challenger
    figure; re-fitting the champion on the challenger's data would carry the poison into both). Otherwise the
    champion's recorded figure came from other users, so its parameters are fit and scored again under the
    challenger's trusted split.
    """
    recorded = champion.get("metrics", {}).get("validation", {}).get(GATE_METRIC)
    if same_training_data(champion, challenger) and recorded is not None:
        return float(recorded), "recorded (same training data)"
    if same_holdout(champion, challenger) and recorded is not None:
        return float(recorded), "recorded (same trusted holdout)"
    holdout = Holdout.of_manifest(user_logs, game_features, challenger)
    return holdout.score(champion["parameters"], "validation", (10,)).flat()[
        GATE_METRIC
    ], "re-evaluated on the new data"


def best_per_family(trials: Sequence[Trial]) -> dict[str, Trial]:
    """The best params each model family reached during selection (most splits, then highest mean)."""
    best: dict[str, Trial] = {}
    for t in sorted(trials, key=lambda t: (t.n_splits, t.ndcg)):
        best[t.model] = t
    return best


def report_candidates(manifest: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """What the evaluation report scores besides popularity: the published params, and every other family at its
    best selection params, served the same way (so the report compares models, not serving budgets)."""
    published = dict(manifest["parameters"])
    serving = published.get("serving_neighbors")
    trials = [Trial.from_dict(t) for t in manifest.get("selection", {}).get("trials", [])]
    candidates: dict[str, dict[str, Any]] = {"published": published}
    for family, trial in best_per_family(trials).items():
        params = {**trial.params, **({"serving_neighbors": serving} if serving else {})}
        if params != published:
            candidates[family] = params
    return candidates


# -- item cold start ---------------------------------------------------------------------------------------------
# A new game has no plays: hold out every interaction of a random share of the played items, fit on the rest
# (the held-out games stay in the catalogue, with their attributes), and see whether the users who played them
# get them ranked. Two rankings per user: among the held-out games only (can the model order new games by the
# user's taste?) and among every unseen game (do new games reach the user's list at all?). A zero score is "no
# evidence" and is never ranked, so popularity, which has no plays to go on, places no new game.

COLD_K = 20
COLD_FRACTION = 0.1
COLD_SEED = 42


@dataclass(frozen=True)
class ColdStartSplit:
    """The fit matrix (held-out items' columns emptied), the held-out interactions, which columns, which users."""

    history: sp.csr_matrix
    truth: sp.csr_matrix
    cold: np.ndarray  # column indices of the held-out items, ascending
    users: np.ndarray  # rows with a held-out interaction and something left to go on

    @classmethod
    def of(cls, user_items: sp.csr_matrix, fraction: float = COLD_FRACTION, seed: int = COLD_SEED) -> ColdStartSplit:
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"fraction must be in (0, 1), got {fraction}")
        x = sp.csr_matrix(user_items, dtype=np.float32, copy=True)
        x.sum_duplicates()
        played = np.flatnonzero(np.diff(sp.csc_matrix(x).indptr) > 0)
        if len(played) < 2:
            raise ValueError(f"item cold start needs at least 2 played items, got {len(played)}")
        n_cold = min(max(1, round(fraction * len(played))), len(played) - 1)
        cold = np.sort(np.random.default_rng(seed).choice(played, n_cold, replace=False))
        held = np.isin(x.indices, cold)
        history, truth = x.copy(), x.copy()
        history.data[held] = 0
        truth.data[~held] = 0
        history.eliminate_zeros()
        truth.eliminate_zeros()
        users = np.flatnonzero((np.diff(truth.indptr) > 0) & (np.diff(history.indptr) > 0))
        return cls(history, truth, cold, users)


def _scores_on(model: Recommender, history: sp.csr_matrix, cols: np.ndarray) -> np.ndarray:
    """Dense users × cols scores of a fitted model: Σ history · similarity for item-item models, plays for
    popularity."""
    similarity = getattr(model, "similarity", None)
    if similarity is not None:
        product = history @ sp.csr_matrix(similarity)[:, cols]
        return np.asarray(product.toarray(), dtype=np.float64)
    counts = getattr(model, "counts", None)
    if counts is None:
        raise TypeError(f"{model.name} exposes neither an item-item matrix nor item counts")
    return np.broadcast_to(np.asarray(counts, np.float64)[cols], (history.shape[0], len(cols))).copy()


def _rank_cold(scores: np.ndarray, cold: np.ndarray, k: int) -> np.ndarray:
    ranked = np.where(scores > 0, scores, -np.inf)
    ids, _ = dense_topn(ranked, k)
    return np.where(ids >= 0, cold[np.maximum(ids, 0)], -1)


def cold_start_metrics(
    ids_new: np.ndarray, ids_all: np.ndarray, truth: sp.csr_matrix, k: int = COLD_K
) -> dict[str, float]:
    """Recall and NDCG at k of the two rankings (`_new`: among the held-out games, `_all`: among every game)."""
    new, every = ranking_metrics(ids_new, truth, k), ranking_metrics(ids_all, truth, k)
    return {
        f"recall@{k}": new["recall"],
        f"ndcg@{k}": new["ndcg"],
        f"recall@{k}_all": every["recall"],
        f"ndcg@{k}_all": every["ndcg"],
    }


@dataclass(frozen=True)
class ColdStartResult:
    """Per model: the cold-start figures; and the size of the experiment."""

    metrics: dict[str, dict[str, float]]
    items: int
    users: int
    fraction: float
    seed: int

    def frame(self) -> pl.DataFrame:
        return pl.DataFrame([{"model": name, **row} for name, row in self.metrics.items()])

    def protocol(self) -> dict[str, Any]:
        return {"held_out_items": self.items, "users": self.users, "fraction": self.fraction, "seed": self.seed}


class ColdStart:
    """The item cold-start protocol over one catalogue's logs (see the block comment above)."""

    def __init__(
        self,
        user_items: sp.csr_matrix,
        item_content: ItemContent | None = None,
        fraction: float = COLD_FRACTION,
        seed: int = COLD_SEED,
    ) -> None:
        self.split = ColdStartSplit.of(user_items, fraction, seed)
        self.item_content = item_content
        self.fraction, self.seed = fraction, seed

    @classmethod
    def of(
        cls,
        user_logs: pl.DataFrame,
        game_features: pl.DataFrame,
        fraction: float = COLD_FRACTION,
        seed: int = COLD_SEED,
        item_content: ItemContent | None = None,
    ) -> ColdStart:
        item_ids = catalogue(game_features, user_logs)
        if item_content is None or not np.array_equal(item_content.item_ids, item_ids):
            item_content = ItemContent.of(game_features, user_logs, item_ids)
        return cls(build_matrix(user_logs, item_ids).matrix, item_content, fraction, seed)

    def evaluate(self, model: Recommender, k: int = COLD_K) -> dict[str, float]:
        """Fit the unfitted `model` on the warm items and score its rankings of the held-out ones."""
        s = self.split
        model.fit(s.history)
        history, truth = s.history[s.users], s.truth[s.users]
        ids_new = _rank_cold(_scores_on(model, history, s.cold), s.cold, k)
        ids_all, _ = model.recommend(history, N=k)
        return cold_start_metrics(ids_new, ids_all, truth, k)

    def score(self, params: Mapping[str, Any], k: int = COLD_K) -> dict[str, float]:
        return self.evaluate(build_model(dict(params), self.item_content), k)

    def random(self, k: int = COLD_K) -> dict[str, float]:
        """Uniformly random unseen games (seeded): the floor every figure is read against."""
        s = self.split
        history, truth = s.history[s.users], s.truth[s.users]
        rng = np.random.default_rng(self.seed)
        ids_new = _rank_cold(rng.random((len(s.users), len(s.cold))) + 1e-9, s.cold, k)
        n_items, step = history.shape[1], 1024
        blocks = []
        for start in range(0, len(s.users), step):  # row blocks: users × catalogue random scores, bounded memory
            rows = history[start : start + step]
            scores = rng.random((rows.shape[0], n_items)) + 1e-9
            scores[np.repeat(np.arange(rows.shape[0]), np.diff(rows.indptr)), rows.indices] = 0
            blocks.append(_rank_cold(scores, np.arange(n_items), k))
        ids_all = np.concatenate(blocks) if blocks else np.full((0, k), -1, np.int64)
        return cold_start_metrics(ids_new, ids_all, truth, k)

    def compare(self, candidates: Mapping[str, Mapping[str, Any]], k: int = COLD_K) -> ColdStartResult:
        """Every candidate's figures, then popularity's and random's under the same split."""
        metrics = {name: self.score(params, k) for name, params in candidates.items()}
        metrics["popularity"] = self.score(POPULARITY, k)
        metrics["random"] = self.random(k)
        return ColdStartResult(metrics, len(self.split.cold), len(self.split.users), self.fraction, self.seed)


def content_only(serving_neighbors: int | None = None) -> dict[str, Any]:
    """A Hybrid that is all content (β so large that no item's plays count): what attributes alone achieve."""
    params: dict[str, Any] = {"model": "Hybrid", "cf": {"model": "ItemCF"}, "beta": 1e12, "content_weight": 1.0}
    return params | ({"serving_neighbors": serving_neighbors} if serving_neighbors else {})


def cold_start_candidates(manifest: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """What the report runs the cold-start protocol for: the published params and content alone."""
    published = dict(manifest["parameters"])
    return {"published": published, "content": content_only(published.get("serving_neighbors"))}


def temporal_holdout(
    user_logs: pl.DataFrame, game_features: pl.DataFrame, params: TemporalParams | None = None
) -> tuple[Holdout | None, TemporalSplit]:
    """The temporal protocol of `split.py` as a Holdout (score its "test" target: fit on everything before the
    cut-off), or None with the reason in the split's info when the logs have too few timed interactions."""
    split = temporal_split(user_logs, params or TemporalParams())
    if split.frame is None:
        return None, split
    return Holdout(split.frame, catalogue(game_features, user_logs)), split
