"""Honest model selection: choose a model and its hyperparameters from the training matrix alone.

Only the matrix passed in is used. It is split again, per user and at random, into an inner train part and an
inner held-out part (`inner_split`); each candidate is fitted on the inner train and scored by NDCG@10 on the inner
held-out items. The caller's own held-out data is never seen, so its score stays an unbiased estimate.

Search, within `time_budget_s` of estimated work (the refit on the whole matrix included; an evaluation starts only
when its cost, estimated from the data's shape by `WorkModel`, plus the refit of the current leader still fit), in
stages, each a function of the run's `Search` (its `SearchConfig`, its `WorkBudget`, the splits and trials so far).
The budget counts estimated work, not wall-clock seconds, so the same data and seed give the same choice on a quiet
and on a loaded machine; a family whose estimate cannot fit is skipped before it is tried:
1. `screen`: each family's default on the first inner split;
2. `tune`: coordinate hill-climbing over each family's grid (one step = one grid neighbour per axis), best screened
   family first; families far behind the leader are not tuned; at most `tune_share` of the budget;
   then (`tune_hybrid`), when the catalogue's content is given, the `Hybrid` of the best CF configuration and the
   content similarity is tuned the same way (its β and content weight) in a share of its own (its CF part fit
   once per split);
3. `confirm`: the best configuration of the leading families on further resampled inner splits; the highest mean
   NDCG@10 over the splits wins (ties: fewer splits lose, then the earlier trial wins);
4. `refit_winner`: the winner on the whole matrix.
`run_selection` runs them in order; `select_model_with_report` is it with the config spelt as keywords.

Grids are relative to the data where the scale matters (EASE's λ starts at twice the mean item popularity, which
is the right order of magnitude from a few thousand to a few hundred thousand users; ALS's λ is a multiple of the
mean item popularity too, since the item side's Gram matrix grows with it, while its confidence α is a ratio of
weights and stays absolute), so the defaults are not tuned to one data set.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp

from gamerec_assets.recsys.content import ItemContent
from gamerec_assets.recsys.metrics import ranking_metrics
from gamerec_assets.recsys.models import EASE_MAX_ITEMS, Hybrid, build_model
from gamerec_assets.recsys.topk import rank_within_rows

K = 10
METRIC = f"ndcg@{K}"
FAMILIES = ("Popularity", "EASE", "RP3beta", "TFIDF", "AsymmetricCosine", "ItemCF", "BM25", "ALS", "BPR", "Hybrid")
MF_FAMILIES = ("ALS", "BPR")  # served from item factors by fold-in (factors.py), not by an item-item matrix
CF_FAMILIES = tuple(f for f in FAMILIES if f not in ("Popularity", "Hybrid", *MF_FAMILIES))  # what a Hybrid blends
FIXED_PARAMS = ("model", "max_items")  # not tuned: left out where trials are shown


@dataclass(frozen=True)
class Trial:
    """One configuration's inner-split scores. Its stored form (`to_dict`) is part of the model manifest, which
    the evaluation report reads back, so the keys stay those of stored versions."""

    model: str
    params: dict[str, Any]
    ndcg_splits: tuple[float, ...] = ()
    seconds: float = 0.0
    stage: str = "screen"

    @cached_property  # the search ranks every trial before each evaluation
    def ndcg(self) -> float:
        return float(np.asarray(self.ndcg_splits).mean())

    @cached_property
    def ndcg_std(self) -> float:
        return float(np.asarray(self.ndcg_splits).std(ddof=1)) if len(self.ndcg_splits) > 1 else 0.0

    @property
    def n_splits(self) -> int:
        return len(self.ndcg_splits)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "params": dict(self.params),
            f"{METRIC}_splits": list(self.ndcg_splits),
            "seconds": self.seconds,
            "stage": self.stage,
            METRIC: self.ndcg,
            f"{METRIC}_std": self.ndcg_std,
            "n_splits": self.n_splits,
        }

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Trial:
        return cls(
            record["model"],
            dict(record["params"]),
            tuple(float(v) for v in record[f"{METRIC}_splits"]),
            float(record.get("seconds", 0.0)),
            str(record.get("stage", "")),
        )


TrialCallback = Callable[[Trial, int], None]  # the trial after an evaluation, and the inner split it was on


def trials_frame(trials: Iterable[Trial]) -> pl.DataFrame:
    """The trial log as a table, best first: what W&B, the asset metadata and `SelectionResult.table` show."""
    rows = [
        {
            "model": t.model,
            METRIC: t.ndcg,
            f"{METRIC}_std": t.ndcg_std,
            "splits": t.n_splits,
            "seconds": t.seconds,
            "stage": t.stage,
            "params": json.dumps({k: v for k, v in t.params.items() if k not in FIXED_PARAMS}),
        }
        for t in sorted(trials, key=lambda t: -t.ndcg)
    ]
    schema = {"model": pl.Utf8, METRIC: pl.Float64, f"{METRIC}_std": pl.Float64, "splits": pl.Int64}
    schema |= {"seconds": pl.Float64, "stage": pl.Utf8, "params": pl.Utf8}
    return pl.DataFrame(rows, schema=schema)


def inner_split(
    user_items: sp.csr_matrix, fraction: float = 0.2, seed: int | np.random.SeedSequence = 0, min_items: int = 3
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Per-user random holdout of a CSR matrix: (train, held_out), disjoint, summing to the input.

    Users with at least `min_items` interactions hold out max(1, round(fraction · n)) of them; the others keep
    everything in train.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    x = sp.csr_matrix(user_items)
    x.sum_duplicates()
    x.sort_indices()
    counts = np.diff(x.indptr)
    rows = np.repeat(np.arange(x.shape[0]), counts)
    keys = np.random.default_rng(seed).random(x.nnz)
    order = np.lexsort((keys, rows))
    rank = rank_within_rows(x.indptr, order)
    n_hold = np.where(counts >= min_items, np.maximum(1, np.floor(fraction * counts + 0.5)), 0).astype(np.int64)
    held = np.zeros(x.nnz, dtype=bool)
    held[order] = rank < n_hold[rows[order]]

    def part(mask: np.ndarray) -> sp.csr_matrix:
        m = sp.csr_matrix((x.data[mask], (rows[mask], x.indices[mask])), shape=x.shape, dtype=x.dtype)
        m.sort_indices()
        return m

    return part(~held), part(held)


def _grids(user_items: sp.csr_matrix, ease_max_items: int) -> dict[str, tuple[dict[str, Any], dict[str, list[Any]]]]:
    """Per family: fixed params and the ordered grid of each tuned axis (the default is the middle-ish entry)."""
    n_items = user_items.shape[1]
    pop = np.diff(sp.csc_matrix(user_items).indptr)
    active = max(int((pop > 0).sum()), 1)
    mean_pop = max(float(pop.sum()) / active, 1.0)
    lam0 = 2.0 * mean_pop
    ease_l2 = [round(lam0 * 2.0**k, 3) for k in range(-4, 7)]

    def nb(values: list[int]) -> list[int]:
        return sorted({min(v, max(n_items - 1, 1)) for v in values})

    grids: dict[str, tuple[dict[str, Any], dict[str, list[Any]]]] = {
        "Popularity": ({"model": "Popularity"}, {}),
        "RP3beta": (
            {"model": "RP3beta"},
            {
                "beta": [0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8],
                "alpha": [0.4, 0.6, 0.8, 1.0, 1.2],
                "neighbors": nb([50, 100, 200, 400]),
            },
        ),
        "TFIDF": ({"model": "TFIDF"}, {"neighbors": nb([25, 50, 100, 200, 400])}),
        "AsymmetricCosine": (
            {"model": "AsymmetricCosine"},
            {
                "alpha": [0.1, 0.3, 0.5, 0.7, 0.9],
                "shrink": [0.0, 5.0, 10.0, 25.0, 50.0],
                "neighbors": nb([50, 100, 200, 400]),
            },
        ),
        "ItemCF": ({"model": "ItemCF", "similarity": "jaccard"}, {"neighbors": nb([25, 50, 100, 200, 400])}),
        "BM25": ({"model": "BM25"}, {"b": [0.25, 0.5, 0.75, 1.0], "neighbors": nb([50, 100, 200, 400])}),
    }
    factors = sorted({min(v, max(n_items // 2, 2)) for v in (32, 64, 128, 256)})
    grids["ALS"] = (
        {"model": "ALS", "iterations": 15, "seed": 0},
        {
            "factors": factors,
            "alpha": [5.0, 10.0, 20.0, 40.0, 80.0],
            "regularization": [round(mean_pop * 2.0**k, 3) for k in range(-2, 4)],
        },
    )
    grids["BPR"] = (
        {"model": "BPR", "iterations": 100, "fold_regularization": round(mean_pop, 3), "seed": 0},
        {"factors": factors, "learning_rate": [0.005, 0.01, 0.02, 0.05], "fold_alpha": [5.0, 10.0, 20.0, 40.0]},
    )
    if active <= ease_max_items:
        grids["EASE"] = ({"model": "EASE", "max_items": ease_max_items}, {"l2": ease_l2})
    return grids


def hybrid_grid(user_items: sp.csr_matrix) -> dict[str, list[Any]]:
    """The Hybrid's axes: β (the CF part weighs n / (n + β)) relative to the mean item popularity, from 0 (content
    only for games without plays) to twice the mean (default: half of it, where a game of mean popularity is
    2/3 CF), and the content weight (a content neighbour against a collaborative one)."""
    pop = np.diff(sp.csc_matrix(user_items).indptr)
    mean_pop = max(float(pop.sum()) / max(int((pop > 0).sum()), 1), 1.0)
    return {
        "beta": [0.0] + [round(mean_pop * 2.0**k, 3) for k in range(-3, 2)],
        "content_weight": [0.01, 0.03, 0.1, 0.3, 1.0],
    }


DEFAULTS: dict[str, dict[str, Any]] = {
    "EASE": {"l2": 4},  # grid index of 2 × mean item popularity
    "RP3beta": {"beta": 3, "alpha": 2, "neighbors": 1},
    "TFIDF": {"neighbors": 2},
    "AsymmetricCosine": {"alpha": 2, "shrink": 2, "neighbors": 1},
    "ItemCF": {"neighbors": 2},
    "BM25": {"b": 2, "neighbors": 1},
    "ALS": {"factors": 1, "alpha": 2, "regularization": 3},  # 64 factors, α 20, λ = 2 × mean item popularity
    "BPR": {"factors": 1, "learning_rate": 1, "fold_alpha": 2},
    "Hybrid": {"beta": 3, "content_weight": 2},
}


def default_candidates(
    user_items: sp.csr_matrix, families: Sequence[str] = FAMILIES, ease_max_items: int = EASE_MAX_ITEMS
) -> list[dict[str, Any]]:
    """The untuned starting point of each family for this matrix (what screening evaluates)."""
    grids = _grids(sp.csr_matrix(user_items), ease_max_items)
    return [
        {**grids[f][0], **{a: grid[i] for a, (grid, i) in _start(f, grids[f][1]).items()}}
        for f in FAMILIES
        if f in families and f in grids
    ]


def _start(family: str, axes: dict[str, list[Any]]) -> dict[str, tuple[list[Any], int]]:
    """Per axis: its grid and the default's index (clipped: small catalogues shorten the neighbour grids)."""
    return {a: (grid, min(DEFAULTS[family][a], len(grid) - 1)) for a, grid in axes.items()}


@dataclass
class SelectionResult:
    """The refitted winner, its params, the trial log and where the time went."""

    model: Any
    best: dict[str, Any]
    trials: list[Trial]
    elapsed_s: float
    time_budget_s: float
    refit_s: float
    budget_exhausted: bool
    protocol: dict[str, Any] = field(default_factory=dict)
    work_s: float = 0.0  # estimated work spent, in reference seconds (what the budget counts)
    wall_capped: bool = False  # stopped by the wall-clock guard: the choice may then depend on the machine

    def to_dict(self) -> dict[str, Any]:
        """The manifest's `selection` block (stored with every version selected this way)."""
        return {
            "best": self.best,
            "trials": [t.to_dict() for t in self.trials],
            "elapsed_s": round(self.elapsed_s, 2),
            "budget_exhausted": self.budget_exhausted,
            "protocol": self.protocol,
            "work_s": round(self.work_s, 2),
            "wall_capped": self.wall_capped,
        }

    def table(self) -> str:
        """The trial log as aligned text, best first."""
        frame = trials_frame(self.trials)
        lines = [f"{'model':<17} {METRIC:>8} {'± std':>7} {'splits':>6} {'s':>6}  params"]
        for model, ndcg, std, splits, seconds, _, params in frame.iter_rows():
            lines.append(f"{model:<17} {ndcg:>8.4f} {std:>7.4f} {splits:>6} {seconds:>6.1f}  {params}")
        return "\n".join(lines)


@dataclass(frozen=True)
class SearchConfig:
    """What one selection run does, apart from its budget (the keywords of `select_model_with_report`)."""

    n_splits: int = 3
    holdout_fraction: float = 0.2
    min_user_items: int = 3
    families: Sequence[str] = FAMILIES
    tune_within: float = 0.9  # a family is tuned when its screened score is at least this fraction of the leader's
    tune_share: float = 0.6  # of the budget, spent at most on the CF families' tuning
    hybrid_share: float = 0.2  # of the budget, on the Hybrid's tuning after it
    confirm_top: int = 3
    max_eval_users: int = 5000
    ease_max_items: int = EASE_MAX_ITEMS
    seed: int = 0
    refit: bool = True

    def protocol(self) -> dict[str, Any]:
        """How the trials were scored: stored with them in the manifest's `selection` block."""
        return {
            "metric": METRIC,
            "n_splits": self.n_splits,
            "holdout_fraction": self.holdout_fraction,
            "min_user_items": self.min_user_items,
            "max_eval_users": self.max_eval_users,
            "seed": self.seed,
        }


REFERENCE_UNITS_PER_S = 1e9  # a work unit is one nanosecond of the reference machine (2 cores, AVX2, 2026)
WALL_CAP = 4.0  # a search that takes this many times its budget in wall-clock time stops (and says so)


@dataclass(frozen=True)
class DataShape:
    """What an evaluation's cost depends on: the matrix's size and how its interactions fall into rows."""

    users: int
    items: int
    active_items: int  # items with at least one interaction (EASE's Gram matrix)
    nnz: int
    row_pairs: float  # Σ over users of n_u²: the co-occurrences an item-item product visits
    eval_users: int = 0  # users scored after the fit

    @classmethod
    def of(cls, x: sp.csr_matrix, eval_users: int = 0) -> DataShape:
        counts = np.diff(x.indptr).astype(np.float64)
        active = int((np.bincount(x.indices, minlength=x.shape[1]) > 0).sum())
        return cls(x.shape[0], x.shape[1], active, int(x.nnz), float((counts * counts).sum()), int(eval_users))


class WorkModel:
    """Reference nanoseconds of fitting and scoring each family on a `DataShape`: deterministic, machine-free.

    Calibrated on this project's benchmark machine (bench/bench_selection_work.py prints estimate against measured):
    the similarity families (AsymmetricCosine, TFIDF, BM25, RP3beta) take a blockwise item-item product with dense
    top-n blocks, ~50 ns per item pair plus ~50 ns per co-occurrence (amazon, 20,902 games: ~20 s); EASE inverts the
    Gram matrix of the active items, ~0.12 ns per active item³ (steam-200k, 5,155 games: 15.5 s); ItemCF's compiled
    kernel visits the co-occurrences only; scoring is a dense pass over the items per scored user. Estimates are
    conservative and only their order matters: they decide what fits the budget, never what wins. ALS and BPR
    (implicit, CPU) cost per iteration in interactions × factors (and, for ALS, rows × factors²); their scoring adds
    the fold-in of every scored history (`kernels.fold_in`'s solve). Checked against measured times on steam-200k's
    inner split (64 and 256 factors): about 4 × conservative for the fits, like RP3beta's, and 1-2 × for scoring.
    """

    FIXED_NS = 5e7  # per evaluation: the model's set-up and the metric
    PAIR_ITEMS_NS = 50.0
    PAIR_ROWS_NS = 50.0
    EASE_NS = 0.12
    ITEMCF_ROWS_NS = 40.0
    POPULARITY_NNZ_NS = 5.0
    BLEND_ITEMS_NS = 15.0  # a Hybrid's blend of its CF part with the content similarity
    SCORE_NS = 30.0  # per scored user × item
    ALS_NNZ_NS = 6.0  # per interaction × factor and iteration (implicit's conjugate-gradient steps)
    ALS_ROWS_NS = 1.0  # per (user or item) × factor² and iteration
    BPR_NNZ_NS = 5.0  # per interaction × factor and iteration (one SGD sample per interaction)
    FOLD_NS = 0.6  # per scored user × the fold-in's solve (history × factor² + history³, or factor³ if shorter)

    def fit_ns(self, params: dict[str, Any], shape: DataShape) -> float:
        kind = params["model"]
        if kind == "Popularity":
            return self.POPULARITY_NNZ_NS * shape.nnz
        if kind == "EASE":
            return self.EASE_NS * float(shape.active_items) ** 3 + self.PAIR_ROWS_NS * shape.row_pairs
        if kind == "ItemCF":
            return self.ITEMCF_ROWS_NS * shape.row_pairs + self.PAIR_ITEMS_NS * 0.1 * float(shape.items) ** 2
        if kind == "Hybrid":
            return self.fit_ns(params["cf"], shape) + self.blend_ns(shape)
        if kind == "ALS":
            f, rows = float(params["factors"]), float(shape.users + shape.items)
            return params["iterations"] * (self.ALS_NNZ_NS * shape.nnz * f + self.ALS_ROWS_NS * rows * f * f)
        if kind == "BPR":
            return params["iterations"] * self.BPR_NNZ_NS * shape.nnz * float(params["factors"])
        return self.PAIR_ITEMS_NS * float(shape.items) ** 2 + self.PAIR_ROWS_NS * shape.row_pairs

    def blend_ns(self, shape: DataShape) -> float:
        return self.BLEND_ITEMS_NS * float(shape.items) ** 2

    def score_ns(self, shape: DataShape, params: dict[str, Any] | None = None) -> float:
        """Scoring the evaluated users; an MF family first folds each history in (`factors.FoldIn`)."""
        dense = self.SCORE_NS * float(shape.eval_users) * shape.items
        if params is None or params["model"] not in MF_FAMILIES:
            return dense
        f = float(params["factors"]) + (params["model"] == "BPR")  # BPR's item bias is one more column
        k = shape.nnz / max(shape.users, 1)  # the mean history
        solve = k * f * f + min(k, f) ** 3 + (f**3 if k >= f else 0.0)  # Woodbury below f games (kernels.fold_in)
        return dense + self.FOLD_NS * float(shape.eval_users) * solve


class WorkBudget:
    """The search's budget in estimated work (`WorkModel` units, REFERENCE_UNITS_PER_S per budgeted second).

    The stages ask it two things only: `until(share)`, the mark a stage stops at, and `allows(need, until)`, whether
    an evaluation estimated to cost `need` (the leader's refit reserve included) still fits; each evaluation then
    `spend`s its estimate. Nothing here reads the clock except the guard: past WALL_CAP times the budget in wall-clock
    seconds (an estimate far off on some machine) everything is refused and `wall_capped` says so.
    """

    def __init__(self, seconds: float, started: float | None = None) -> None:
        self.seconds = seconds
        self.total = seconds * REFERENCE_UNITS_PER_S
        self.started = time.perf_counter() if started is None else started
        self.spent = 0.0
        self.exhausted = False  # an evaluation was refused for want of the whole budget (not of a stage's share)
        self.wall_capped = False

    def until(self, share: float) -> float:
        """The mark (in units spent) a stage allowed `share` of the budget must stop at."""
        return share * self.total

    def allows(self, need: float, until: float | None = None) -> bool:
        """Whether `need` more units fit before `until` (None: the end of the budget)."""
        if time.perf_counter() - self.started > WALL_CAP * max(self.seconds, 1.0):
            self.wall_capped = self.exhausted = True
            return False
        self.exhausted |= need > self.total - self.spent
        return need <= min(self.total, self.total if until is None else until) - self.spent

    def spend(self, units: float) -> None:
        self.spent += units

    @property
    def spent_s(self) -> float:
        return self.spent / REFERENCE_UNITS_PER_S


class Search:
    """One selection run's state, shared by its stages: the matrix, the inner splits, the trials and the cost
    estimates, the config and the budget."""

    def __init__(
        self,
        user_items: sp.csr_matrix,
        config: SearchConfig,
        budget: WorkBudget,
        on_trial: TrialCallback | None = None,
        content: ItemContent | None = None,
        work: WorkModel | None = None,
    ) -> None:
        self.x = user_items
        self.config = config
        self.budget = budget
        self.content = content  # the Hybrid's: None unless the Hybrid family is searched
        seeds = np.random.SeedSequence(config.seed).spawn(config.n_splits + 1)
        self.eval_rng = np.random.default_rng(seeds[-1])
        self.split_seeds = seeds[:-1]
        self.splits: dict[int, tuple[sp.csr_matrix, sp.csr_matrix, np.ndarray]] = {}
        self.trials: dict[tuple[Any, ...], Trial] = {}
        self.work = work or WorkModel()
        self.shapes: dict[int, DataShape] = {}
        self.on_trial = on_trial
        self.cf_parts: dict[tuple[Any, ...], sp.csr_matrix] = {}  # a Hybrid's CF part per (cf params, split)
        self.best_fit: tuple[float, tuple[Any, ...], Any] | None = None  # the best CF fit on split 0, for a Hybrid

    @cached_property
    def grids(self) -> dict[str, tuple[dict[str, Any], dict[str, list[Any]]]]:
        return _grids(self.x, self.config.ease_max_items)

    def split(self, i: int) -> tuple[sp.csr_matrix, sp.csr_matrix, np.ndarray]:
        """Inner split `i`: (train, held out, the users scored on it, at most `max_eval_users`)."""
        if i not in self.splits:
            config = self.config
            train, held = inner_split(self.x, config.holdout_fraction, self.split_seeds[i], config.min_user_items)
            users = np.flatnonzero(np.diff(held.indptr) > 0)
            if len(users) > config.max_eval_users:
                users = np.sort(self.eval_rng.choice(users, config.max_eval_users, replace=False))
            self.splits[i] = (train, held, users)
        return self.splits[i]

    def shape(self, split: int) -> DataShape:
        """The shape of inner split `split`'s train part and its scored users."""
        if split not in self.shapes:
            train, _, users = self.split(split)
            self.shapes[split] = DataShape.of(train, len(users))
        return self.shapes[split]

    @cached_property
    def full_shape(self) -> DataShape:
        return DataShape.of(self.x)

    def estimate(self, params: dict[str, Any], split: int = 0) -> float:
        """Work units one evaluation of `params` on `split` costs (a Hybrid's CF part is free when it is kept)."""
        shape = self.shape(split)
        fit = self.work.fit_ns(params, shape)
        if params["model"] == "Hybrid" and self._cf_part_kept(params, split):
            fit = self.work.blend_ns(shape)
        return WorkModel.FIXED_NS + fit + self.work.score_ns(shape, params)

    def _cf_part_kept(self, params: dict[str, Any], split: int) -> bool:
        model = build_model(params, self.content)
        if not isinstance(model, Hybrid):
            return False
        kept = self.best_fit
        return self._cf_part_key(model, split) in self.cf_parts or (
            split == 0 and kept is not None and kept[1] == _key(model.cf)
        )

    def refit_reserve(self) -> float:
        best = self.best()
        if best is None:
            return 0.0
        return WorkModel.FIXED_NS + self.work.fit_ns(best.params, self.full_shape)

    def affordable(self, params: dict[str, Any], split: int = 0, until: float | None = None) -> bool:
        return self.budget.allows(self.estimate(params, split) + self.refit_reserve(), until)

    def evaluate(self, params: dict[str, Any], split: int, stage: str, until: float | None = None) -> float | None:
        """NDCG@10 of `params` on inner split `split` (cached); None when the budget (or `until`) does not allow it."""
        key = _key(params)
        trial = self.trials.get(key)
        if trial is not None and split < trial.n_splits:
            return trial.ndcg_splits[split]
        if not self.affordable(params, split, until):
            return None
        cost = self.estimate(params, split)
        train, held, users = self.split(split)
        started = time.perf_counter()
        model = build_model(params, self.content)
        if isinstance(model, Hybrid):
            model.fit_with(train, self._cf_part(model, train, split))
        else:
            model.fit(train)
        ids, _ = model.recommend(train[users], N=K)
        ndcg = ranking_metrics(ids, held[users], K)["ndcg"]
        done = time.perf_counter()
        self.budget.spend(cost)
        kind = params["model"]
        if split == 0 and self.content is not None and kind in CF_FAMILIES and self._beats_kept(ndcg):
            self.best_fit = (float(ndcg), key, model)
        if trial is None:
            trial = Trial(kind, dict(params), stage=stage)
        trial = replace(trial, ndcg_splits=(*trial.ndcg_splits, float(ndcg)), seconds=trial.seconds + done - started)
        self.trials[key] = trial
        if self.on_trial is not None:
            self.on_trial(trial, split)
        return float(ndcg)

    def _beats_kept(self, ndcg: float) -> bool:
        return self.best_fit is None or ndcg > self.best_fit[0]

    def _cf_part(self, model: Hybrid, train: sp.csr_matrix, split: int) -> sp.csr_matrix:
        """A Hybrid's CF part on `split`: the same for every β and content weight, so computed once, from the
        best CF fit of the tuning stage when it is that configuration."""
        part_key = self._cf_part_key(model, split)
        if part_key not in self.cf_parts:
            self.cf_parts = {k: v for k, v in self.cf_parts.items() if k[-1] != split}  # one per split
            kept = self.best_fit
            if split == 0 and kept is not None and kept[1] == _key(model.cf):
                self.cf_parts[part_key] = model.cf_part_of(kept[2].similarity)
            else:
                self.cf_parts[part_key] = model.cf_part(train)
        return self.cf_parts[part_key]

    @staticmethod
    def _cf_part_key(model: Hybrid, split: int) -> tuple[Any, ...]:
        return (*_key(model.cf), model.cf_neighbors, split)

    def best(self, families: Sequence[str] | None = None) -> Trial | None:
        """The leading trial: most splits first, then highest mean, then the earliest."""
        pool = [t for t in self.trials.values() if families is None or t.model in families]
        if not pool:
            return None
        most = max(t.n_splits for t in pool)
        return max((t for t in pool if t.n_splits == most), key=lambda t: t.ndcg)


def _key(params: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(sorted((k, repr(v)) for k, v in params.items()))


def _hill_climb(
    search: Search, base: dict[str, Any], axes: dict[str, list[Any]], start: dict[str, int], until: float
) -> None:
    """Coordinate ascent on the grid: move to the best improving neighbour until none improves (or time is up)."""
    pos = dict(start)

    def params_at(p: dict[str, int]) -> dict[str, Any]:
        return {**base, **{a: axes[a][i] for a, i in p.items()}}

    current = search.evaluate(params_at(pos), 0, "tune", until)
    while current is not None:
        best_score, best_pos = current, None
        for axis in axes:
            for step in (-1, 1):
                i = pos[axis] + step
                if not 0 <= i < len(axes[axis]):
                    continue
                cand = {**pos, axis: i}
                score = search.evaluate(params_at(cand), 0, "tune", until)
                if score is None:
                    return
                if score > best_score + 1e-9:
                    best_score, best_pos = score, cand
        if best_pos is None:
            return
        pos, current = best_pos, best_score


def screen(search: Search) -> dict[str, float]:
    """Stage 1: each family's default on the first inner split; its NDCG@10 by family, for the families the
    budget reached (in `FAMILIES` order, each while the budget allows it)."""
    screened: dict[str, float] = {}
    for params in default_candidates(search.x, search.config.families, search.config.ease_max_items):
        score = search.evaluate(params, 0, "screen")
        if score is not None:
            screened[params["model"]] = score
    return screened


def tune(search: Search, screened: dict[str, float]) -> None:
    """Stage 2: hill-climb the grid of each family screened within `tune_within` of the leader, best screened
    first, on the first inner split, until `tune_share` of the budget is spent."""
    if not screened:
        return
    leader = max(screened.values())
    until = search.budget.until(search.config.tune_share)
    for family in sorted(screened, key=lambda f: -screened[f]):
        base, axes = search.grids[family]
        if axes and screened[family] >= search.config.tune_within * leader:
            start = {a: i for a, (_, i) in _start(family, axes).items()}
            _hill_climb(search, base, axes, start, until)


def tune_hybrid(search: Search, screened: dict[str, float]) -> dict[str, float]:
    """Stage 2b, when the search has content: hill-climb the `Hybrid` of the best CF configuration (its β and
    content weight) until `tune_share + hybrid_share` of the budget is spent. `screened` with the best Hybrid's
    score added when one was evaluated, so that confirmation considers it."""
    found = dict(screened)
    best_cf = search.best([f for f in screened if f in CF_FAMILIES])
    if search.content is not None and best_cf is not None:
        axes = hybrid_grid(search.x)
        start = {a: i for a, (_, i) in _start("Hybrid", axes).items()}
        base = {"model": "Hybrid", "cf": dict(best_cf.params)}
        _hill_climb(
            search, base, axes, start, search.budget.until(search.config.tune_share + search.config.hybrid_share)
        )
        best_hybrid = search.best(["Hybrid"])
        if best_hybrid is not None:
            found["Hybrid"] = best_hybrid.ndcg
    search.best_fit = None  # the kept CF fit was for the Hybrid's tuning only
    return found


def confirm(search: Search, families: Iterable[str]) -> None:
    """Stage 3: the best configuration of each of the `confirm_top` leading `families` on the further inner splits,
    split by split, leader first; it stops at the first unaffordable evaluation so split counts follow the ranking."""
    contenders = sorted((search.best([f]) for f in families), key=lambda t: -t.ndcg if t else 0.0)
    leaders = [t for t in contenders[: search.config.confirm_top] if t is not None]
    for split in range(1, search.config.n_splits):
        for trial in leaders:
            if search.evaluate(trial.params, split, "confirm") is None:
                return


def refit_winner(search: Search) -> tuple[dict[str, Any], Any]:
    """Stage 4: the winner's params (Popularity when nothing was evaluated) and, unless the config says otherwise,
    the winner fitted on the whole matrix (else None)."""
    winner = search.best()
    best_params = dict(winner.params) if winner is not None else {"model": "Popularity"}
    model = build_model(best_params, search.content).fit(search.x) if search.config.refit else None
    return best_params, model


def checked_matrix(
    user_items: sp.csr_matrix, families: Sequence[str], content: ItemContent | None = None
) -> sp.csr_matrix:
    """`user_items` as a CSR matrix without duplicates; ValueError for an empty one, unknown families or content
    of another catalogue."""
    x = sp.csr_matrix(user_items)
    x.sum_duplicates()
    if x.nnz == 0:
        raise ValueError("user_items has no interactions")
    unknown = set(families) - set(FAMILIES)
    if unknown:
        raise ValueError(f"unknown families {sorted(unknown)}; known: {list(FAMILIES)}")
    if content is not None and content.n_items != x.shape[1]:
        raise ValueError(f"content describes {content.n_items} items, user_items has {x.shape[1]} columns")
    return x


def run_selection(
    user_items: sp.csr_matrix,
    budget: WorkBudget,
    config: SearchConfig = SearchConfig(),
    *,
    on_trial: TrialCallback | None = None,
    content: ItemContent | None = None,
) -> SelectionResult:
    """The stages in order within `budget`: screen, tune (then the Hybrid's tuning), confirm, refit."""
    x = checked_matrix(user_items, config.families, content)
    hybrid = "Hybrid" in config.families and content is not None
    search = Search(x, config, budget, on_trial, content if hybrid else None)
    screened = screen(search)
    if screened:
        tune(search, screened)
        confirm(search, tune_hybrid(search, screened))
    refit_started = time.perf_counter()
    best_params, model = refit_winner(search)
    done = time.perf_counter()
    return SelectionResult(
        model=model,
        best=best_params,
        trials=[replace(t, seconds=round(t.seconds, 3)) for t in search.trials.values()],
        elapsed_s=done - budget.started,
        time_budget_s=budget.seconds,
        refit_s=done - refit_started,
        budget_exhausted=budget.exhausted,
        protocol=config.protocol(),
        work_s=budget.spent_s,
        wall_capped=budget.wall_capped,
    )


def select_model_with_report(
    user_items: sp.csr_matrix,
    *,
    time_budget_s: float = 120.0,
    n_splits: int = 3,
    holdout_fraction: float = 0.2,
    min_user_items: int = 3,
    families: Sequence[str] = FAMILIES,
    tune_within: float = 0.9,
    tune_share: float = 0.6,
    confirm_top: int = 3,
    max_eval_users: int = 5000,
    ease_max_items: int = EASE_MAX_ITEMS,
    seed: int = 0,
    on_trial: TrialCallback | None = None,
    refit: bool = True,
    content: ItemContent | None = None,
    hybrid_share: float = 0.2,
) -> SelectionResult:
    """Tune every family on inner splits of `user_items` only and refit the best on all of it (see module doc).

    `refit=False` skips the final fit (`model` is then None) for callers that fit the chosen params themselves.

    `tune_within`: a family is tuned only when its screened NDCG@10 is at least this fraction of the leader's;
    tuning stops once `tune_share` of the budget is spent, leaving the rest to confirmation and the refit.
    `on_trial` receives the trial and the inner split after each evaluation (e.g. to log it to W&B).
    `content` (the catalogue's attributes over `user_items`' columns) enables the `Hybrid` family: it is tuned on
    top of the best CF configuration for `hybrid_share` of the budget after the CF families' tuning (which keeps
    its own share, so the CF leader is what it would be without content), then confirmed like any other.
    """
    budget = WorkBudget(time_budget_s)
    config = SearchConfig(
        n_splits=n_splits,
        holdout_fraction=holdout_fraction,
        min_user_items=min_user_items,
        families=families,
        tune_within=tune_within,
        tune_share=tune_share,
        hybrid_share=hybrid_share,
        confirm_top=confirm_top,
        max_eval_users=max_eval_users,
        ease_max_items=ease_max_items,
        seed=seed,
        refit=refit,
    )
    return run_selection(user_items, budget, config, on_trial=on_trial, content=content)


def select_model(user_items: sp.csr_matrix, **kwargs: Any) -> Any:
    """The best model for `user_items`, fitted on all of it; the trial log is attached as `.selection_report`."""
    result = select_model_with_report(user_items, **kwargs)
    result.model.selection_report = result.trials
    return result.model
