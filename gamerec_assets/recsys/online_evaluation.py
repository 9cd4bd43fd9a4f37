"""Online evaluation of experiments: what players did with the answers each model gave, and whether the challenger
is better, worse, or not yet distinguishable from production, with a verdict that stays valid when read every day.

Inputs: the `interaction_events` frame (user_id, game_id, type, timestamp_us, request_id) and the
`experiment_answers` frame (one row per answer served under an experiment: its games and which model drafted each).

Attribution. An event counts for an experiment through the `request_id` it quotes (`recsys.experiment_ids`, parsed
here vectorised with the same rules). With the answer's row, the event's game must be in the answer (an event on
another game is counted as `outside_answer` and ignored). Without the row: an A/B id still names its arm and version,
so the answer is rebuilt from its events (the games they name are taken as shown: a lower bound on what it showed,
its time the earliest event's); an interleaved id cannot say which model drafted which game, so its events are
skipped and counted as `unattributed_events`.

Per answer, each distinct game shown is one **impression**; a **click** is a game of the answer clicked (any time);
a **conversion** a game of the answer played or purchased within `window_us` (24 h) after the answer was served
(minus `skew_us`, an allowance for client clocks). CTR = clicks / impressions, conversion rate = conversions /
impressions, each with a Wilson score interval. Coverage = distinct games shown / catalogue size (when given).

Interleaving (team-draft, Chapelle et al., TOIS 2012, section 4): per answer, each team's credit is the number of its
games clicked or converted; the team with more credit wins the answer, equal non-zero credit is a tie, an answer
without credit counts for neither. Preference share = challenger wins / (challenger wins + production wins).

The sequential test: mSPRT (Johari, Koomen, Pekelis, Walsh, "Peeking at A/B tests", KDD 2017), normal approximation.
For an estimated effect θ̂ with variance V (A/B: θ̂ = p̂_c - p̂_p of the primary rate, V = p̂_c(1-p̂_c)/n_c +
p̂_p(1-p̂_p)/n_p; interleaving: θ̂ = share - 1/2 over n decisive answers, V = 1/(4n), exact under the null), mixing the
alternative over θ ~ N(0, τ²) gives the likelihood ratio

    Λ = sqrt(V / (V + τ²)) · exp(θ̂² τ² / (2 V (V + τ²)))

and the always-valid p-value p = min(1, min over looks of 1/Λ): under the null, P(p ever <= α) <= α however often
it is looked at. The looks are the end of each day of data (cumulative) and the total, so the p-value depends only on
the data, not on when the asset ran. A look with fewer than `min_impressions` per arm (A/B) or `min_decisive`
decisive answers (interleaving) is not taken: the normal approximation needs some data. τ² defaults: 1e-4 for A/B
(τ = 1 percentage point of CTR) and 0.0025 for interleaving (τ = 5 points of preference share): Johari et al.
recommend τ near the effects one expects, and the test is most powerful for |θ| about τ.

Still needed (not yet significant): the impressions at which this mSPRT would reject at α if the observed effect,
rates and traffic split held (the same formula, V shrinking as 1/n, solved for n), minus the impressions seen; no
figure when the observed effect is zero. An extrapolation, not a promise: with a true effect smaller than the
observed one it takes longer.

Assumption: impressions are treated as independent trials (the clustering of impressions within an answer and a
user is ignored), as the normal approximation on two proportions does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
import polars as pl
from scipy import optimize, stats

DAY_US = 86_400_000_000
CONVERSION_TYPES = ("play", "purchase")
COUNTED_TYPES = ("impression", "click", *CONVERSION_TYPES)
TOTAL = "total"  # the `day` of the rows over every day
VERDICTS = ("challenger better", "challenger worse", "not yet significant")
# the request id grammar of `recsys.experiment_ids` (base, experiment, arm, version[, challenger version])
_FIELD = "[A-Za-z0-9-]{1,40}"
REQUEST_ID = rf"^[^~]*~({_FIELD})~([pci])~({_FIELD})(?:~({_FIELD}))?$"
VARIANTS = {"p": "production", "c": "challenger", "i": "interleave"}

METRICS_SCHEMA: dict[str, pl.DataType] = {
    "experiment": pl.String(),
    "mode": pl.String(),
    "variant": pl.String(),  # production | challenger | interleave
    "team": pl.String(),  # which model drafted the games counted (A/B: the arm's)
    "model_version": pl.String(),
    "day": pl.String(),  # YYYY-MM-DD (UTC, the answer's), or "total"
    "answers": pl.Int64(),
    "impressions": pl.Int64(),
    "clicks": pl.Int64(),
    "ctr": pl.Float64(),
    "ctr_low": pl.Float64(),
    "ctr_high": pl.Float64(),
    "conversions": pl.Int64(),
    "conversion_rate": pl.Float64(),
    "conversion_low": pl.Float64(),
    "conversion_high": pl.Float64(),
    "games_shown": pl.Int64(),
    "coverage": pl.Float64(),
    "wins": pl.Int64(),  # interleave only: answers this team won
    "ties": pl.Int64(),  # interleave only
    "preference_share": pl.Float64(),  # interleave only: this team's wins / decisive answers
}
VERDICT_SCHEMA: dict[str, pl.DataType] = {
    "experiment": pl.String(),
    "mode": pl.String(),
    "production": pl.String(),
    "challenger": pl.String(),
    "metric": pl.String(),  # what the test compares: ctr | conversion_rate | preference_share
    "production_value": pl.Float64(),
    "challenger_value": pl.Float64(),
    "effect": pl.Float64(),  # challenger - production (interleave: share - 0.5)
    "p_value": pl.Float64(),  # always valid (mSPRT)
    "alpha": pl.Float64(),
    "tau2": pl.Float64(),
    "looks": pl.Int64(),  # looks taken (days with enough data)
    "verdict": pl.String(),
    "impressions": pl.Int64(),
    "impressions_needed": pl.Int64(),  # more impressions to reach significance (extrapolated); null: unknown
    "decisive_answers": pl.Int64(),  # interleave only
    "answers_without_row": pl.Int64(),  # A/B answers rebuilt from their events (no experiment_answers row)
    "unattributed_events": pl.Int64(),  # interleaved events whose answer has no row: skipped
    "outside_answer": pl.Int64(),  # events on a game their answer did not show: ignored
}


class ExperimentLike(Protocol):
    """What the evaluation needs of an experiment record (`store.experiments.Experiment` has it)."""

    name: str
    mode: str
    production: str
    challenger: str


@dataclass(frozen=True)
class OnlineParams:
    alpha: float = 0.05  # the test's level: a verdict when the always-valid p-value is <= alpha
    tau2_ab: float = 1e-4  # mSPRT mixing variance of the A/B rate difference (tau = 0.01)
    tau2_interleave: float = 0.0025  # mSPRT mixing variance of preference share - 1/2 (tau = 0.05)
    metric: Literal["ctr", "conversion_rate"] = "ctr"  # the A/B test's rate
    window_us: int = DAY_US  # a play or purchase converts within this after the answer
    skew_us: int = 300_000_000  # client clocks: an event up to 5 min "before" its answer still counts
    min_impressions: int = 100  # per arm, before an A/B look is taken
    min_decisive: int = 20  # decisive interleaved answers before a look is taken

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if not (self.tau2_ab > 0 and self.tau2_interleave > 0):
            raise ValueError("tau2 must be > 0")


@dataclass(frozen=True)
class OnlineResult:
    metrics: pl.DataFrame  # METRICS_SCHEMA: per experiment, variant, team/version, day and in total
    verdicts: pl.DataFrame  # VERDICT_SCHEMA: one row per experiment
    looks: pl.DataFrame  # experiment, day, impressions, effect, p_value: the test's path, for the plot
    params: OnlineParams = field(default_factory=OnlineParams)

    @property
    def empty(self) -> bool:
        return self.verdicts.height == 0

    def verdict(self, experiment: str) -> dict[str, object] | None:
        rows = self.verdicts.filter(pl.col("experiment") == experiment)
        return rows.row(0, named=True) if rows.height else None


# -- statistics --------------------------------------------------------------------------------------------------


def wilson(successes: np.ndarray, trials: np.ndarray, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval (Wilson 1927) of successes / trials at level 1 - alpha, vectorised; NaN where
    trials == 0. Unlike the Wald interval it stays in [0, 1] and keeps its coverage at small counts and rates."""
    x = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    z = float(stats.norm.ppf(1.0 - alpha / 2.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        p = x / n
        denom = 1.0 + z * z / n
        centre = (p + z * z / (2.0 * n)) / denom
        half = z / denom * np.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n))
    low = np.where(n > 0, np.clip(centre - half, 0.0, 1.0), np.nan)
    high = np.where(n > 0, np.clip(centre + half, 0.0, 1.0), np.nan)
    return low, high


def msprt_log_lr(effect: np.ndarray, variance: np.ndarray, tau2: float) -> np.ndarray:
    """log Λ of the normal-mixture SPRT (the module docstring), vectorised; 0 (Λ = 1: no evidence) where the
    variance is not positive."""
    theta = np.asarray(effect, dtype=np.float64)
    v = np.asarray(variance, dtype=np.float64)
    ok = v > 0
    safe = np.where(ok, v, 1.0)
    out = 0.5 * np.log(safe / (safe + tau2)) + theta * theta * tau2 / (2.0 * safe * (safe + tau2))
    return np.where(ok, out, 0.0)


def always_valid_p(log_lr: np.ndarray, axis: int = -1) -> np.ndarray:
    """p after each look: min(1, running min of 1/Λ) along `axis` (the looks)."""
    return np.minimum(1.0, np.exp(-np.maximum.accumulate(np.asarray(log_lr, dtype=np.float64), axis=axis)))


def two_proportion(x_p: np.ndarray, n_p: np.ndarray, x_c: np.ndarray, n_c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(p̂_c - p̂_p, its plug-in variance), vectorised; variance 0 where an arm has no trials."""
    n_p = np.asarray(n_p, dtype=np.float64)
    n_c = np.asarray(n_c, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        pp = np.where(n_p > 0, np.asarray(x_p) / n_p, 0.0)
        pc = np.where(n_c > 0, np.asarray(x_c) / n_c, 0.0)
        var = np.where((n_p > 0) & (n_c > 0), pp * (1 - pp) / n_p + pc * (1 - pc) / n_c, 0.0)
    return pc - pp, var


def needed_scale(effect: float, variance: float, tau2: float, alpha: float) -> float | None:
    """The factor s >= 1 by which the sample must grow (V -> V / s) for the mSPRT to reach 1/Λ <= alpha with the
    observed effect; None when the effect is 0 or the variance unknown."""
    if effect == 0.0 or not variance > 0 or not math.isfinite(effect):
        return None
    target = math.log(1.0 / alpha)

    def gap(log_s: float) -> float:
        return float(msprt_log_lr(np.array(effect), np.array(variance / math.exp(log_s)), tau2)) - target

    if gap(0.0) >= 0:
        return 1.0
    high = 1.0
    while gap(high) < 0:  # log Λ grows without bound as V -> 0 when the effect is not 0
        high *= 2.0
        if high > 200:  # e^200: never, in practice
            return None
    return math.exp(optimize.brentq(gap, 0.0, high, xtol=1e-6))


def ab_path(
    x_p: np.ndarray, n_p: np.ndarray, x_c: np.ndarray, n_c: np.ndarray, params: OnlineParams
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The A/B test along its looks (the last axis; cumulative successes and trials per arm): (effect, variance,
    always-valid p after each look, look taken). Vectorised over leading axes, so a simulation runs many at once."""
    effect, var = two_proportion(x_p, n_p, x_c, n_c)
    taken = np.minimum(n_p, n_c) >= params.min_impressions
    log_lr = np.where(taken, msprt_log_lr(effect, var, params.tau2_ab), 0.0)
    return effect, var, always_valid_p(log_lr), taken


def interleave_path(
    wins_p: np.ndarray, wins_c: np.ndarray, params: OnlineParams
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The interleaving test along its looks (cumulative wins per team): (challenger's preference share, the
    variance of share - 1/2 under the null, always-valid p after each look, look taken)."""
    decisive = np.asarray(wins_p, dtype=np.float64) + np.asarray(wins_c, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(decisive > 0, wins_c / decisive, 0.5)
        var = np.where(decisive > 0, 0.25 / decisive, 0.0)
    taken = decisive >= params.min_decisive
    log_lr = np.where(taken, msprt_log_lr(share - 0.5, var, params.tau2_interleave), 0.0)
    return share, var, always_valid_p(log_lr), taken


# -- attribution ------------------------------------------------------------------------------------------------


def attribute(events: pl.DataFrame) -> pl.DataFrame:
    """The events whose request_id carries an experiment, with experiment, arm, version, challenger_version parsed
    from it (`experiment_ids.parse`'s rules, vectorised)."""
    parts = (
        events.filter(pl.col("request_id").str.contains("~", literal=True))
        .with_columns(pl.col("request_id").str.extract_groups(REQUEST_ID).alias("_id"))
        .unnest("_id")
        .rename({"1": "experiment", "2": "arm", "3": "version", "4": "challenger_version"})
    )
    interleaved = pl.col("arm") == "i"
    return parts.filter(
        pl.col("experiment").is_not_null() & (interleaved == pl.col("challenger_version").is_not_null())
    )


def _answers(events: pl.DataFrame, answers: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, dict]]:
    """(answers, attributed events, per-experiment counts): the answers with a row, plus A/B answers rebuilt from
    their events; the events of answers that can be attributed."""
    ev = attribute(events)
    known = answers.select("request_id").unique()
    orphan = ev.join(known, on="request_id", how="anti")
    rebuilt = (
        orphan.filter(pl.col("arm") != "i")
        .group_by("request_id", maintain_order=True)
        .agg(
            pl.col("experiment").first(),
            pl.col("arm").first(),
            pl.col("version").first(),
            pl.lit("").alias("challenger_version"),
            pl.col("timestamp_us").min().alias("served_us"),
            pl.col("game_id").unique(maintain_order=True).alias("game_ids"),
        )
        .with_columns(pl.col("arm").repeat_by(pl.col("game_ids").list.len()).list.join("").alias("teams"))
    )
    counts: dict[str, dict] = {}
    for exp, n in orphan.filter(pl.col("arm") == "i").group_by("experiment").len().iter_rows():
        counts.setdefault(exp, {})["unattributed_events"] = int(n)
    for exp, n in rebuilt.group_by("experiment").len().iter_rows():
        counts.setdefault(exp, {})["answers_without_row"] = int(n)
    cols = ["request_id", "experiment", "arm", "version", "challenger_version", "served_us", "game_ids", "teams"]
    all_answers = pl.concat(
        [
            answers.select(cols).with_columns(pl.col("challenger_version").fill_null("")),
            rebuilt.select(cols).cast({"game_ids": pl.List(pl.Int64)}),
        ]
    )
    with_row = pl.col("request_id").is_in(known["request_id"].implode())
    return all_answers, ev.filter((pl.col("arm") != "i") | with_row), counts


def shown_items(answers: pl.DataFrame, events: pl.DataFrame, params: OnlineParams) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One row per (answer, distinct game shown): its team, model version, day, clicked, converted; and the events
    on games their answer did not show (per experiment)."""
    items = (
        answers.with_columns(pl.col("teams").str.split("").alias("team"))
        .explode("game_ids", "team")
        .rename({"game_ids": "game_id"})
        .filter(pl.col("game_id").is_not_null())
        .unique(["request_id", "game_id"], keep="first", maintain_order=True)
        .with_columns(
            pl.when(pl.col("arm") == "i")
            .then(pl.lit("interleave"))
            .otherwise(pl.col("arm").replace_strict(VARIANTS, default=None))
            .alias("variant"),
            pl.when((pl.col("team") == "c") & (pl.col("arm") == "i"))
            .then(pl.col("challenger_version"))
            .otherwise(pl.col("version"))  # A/B: the arm's version
            .alias("model_version"),
            pl.from_epoch(pl.col("served_us"), time_unit="us").dt.strftime("%Y-%m-%d").alias("day"),
        )
    )
    hits = events.select("request_id", "game_id", "type", "timestamp_us").join(
        items.select("request_id", "game_id", "served_us"), on=["request_id", "game_id"], how="left"
    )
    outside = hits.filter(pl.col("served_us").is_null()).join(
        events.select("request_id", "experiment").unique(), on="request_id"
    )
    delay = pl.col("timestamp_us") - pl.col("served_us")
    converted = pl.col("type").is_in(CONVERSION_TYPES) & (delay >= -params.skew_us) & (delay <= params.window_us)
    per_item = (
        hits.filter(pl.col("served_us").is_not_null())
        .group_by("request_id", "game_id")
        .agg((pl.col("type") == "click").any().alias("clicked"), converted.any().alias("converted"))
    )
    items = items.join(per_item, on=["request_id", "game_id"], how="left").with_columns(
        pl.col("clicked").fill_null(False), pl.col("converted").fill_null(False)
    )
    return items, outside.group_by("experiment").len("outside_answer")


def _rates(frame: pl.DataFrame, alpha: float, catalogue_size: int | None) -> pl.DataFrame:
    lo_c, hi_c = wilson(frame["clicks"].to_numpy(), frame["impressions"].to_numpy(), alpha)
    lo_v, hi_v = wilson(frame["conversions"].to_numpy(), frame["impressions"].to_numpy(), alpha)
    n = pl.col("impressions")
    return frame.with_columns(
        pl.when(n > 0).then(pl.col("clicks") / n).alias("ctr"),
        pl.Series("ctr_low", lo_c).fill_nan(None),
        pl.Series("ctr_high", hi_c).fill_nan(None),
        pl.when(n > 0).then(pl.col("conversions") / n).alias("conversion_rate"),
        pl.Series("conversion_low", lo_v).fill_nan(None),
        pl.Series("conversion_high", hi_v).fill_nan(None),
        (pl.col("games_shown") / catalogue_size if catalogue_size else pl.lit(None, pl.Float64)).alias("coverage"),
    )


def _answer_outcomes(items: pl.DataFrame) -> pl.DataFrame:
    """Per interleaved answer: each team's credit and the outcome (Chapelle et al.'s team-draft credit)."""
    credited = pl.col("clicked") | pl.col("converted")
    return (
        items.filter(pl.col("arm") == "i")
        .group_by("experiment", "request_id", "day")
        .agg(
            (credited & (pl.col("team") == "p")).sum().alias("credit_p"),
            (credited & (pl.col("team") == "c")).sum().alias("credit_c"),
        )
        .with_columns(
            (pl.col("credit_c") > pl.col("credit_p")).alias("win_c"),
            (pl.col("credit_p") > pl.col("credit_c")).alias("win_p"),
            ((pl.col("credit_p") == pl.col("credit_c")) & (pl.col("credit_p") > 0)).alias("tie"),
        )
    )


def metrics_frame(items: pl.DataFrame, alpha: float, catalogue_size: int | None) -> pl.DataFrame:
    """METRICS_SCHEMA rows, per day and in total."""
    keys = ["experiment", "mode", "variant", "team", "model_version"]
    outcomes = _answer_outcomes(items)
    items = items.with_columns(
        pl.when(pl.col("arm") == "i").then(pl.lit("interleave")).otherwise(pl.lit("ab")).alias("mode"),
        pl.col("team").replace_strict({"p": "production", "c": "challenger"}),
    )
    aggs = [
        pl.col("request_id").n_unique().alias("answers"),
        pl.len().cast(pl.Int64).alias("impressions"),
        pl.col("clicked").sum().cast(pl.Int64).alias("clicks"),
        pl.col("converted").sum().cast(pl.Int64).alias("conversions"),
        pl.col("game_id").n_unique().cast(pl.Int64).alias("games_shown"),
    ]
    daily = items.group_by(*keys, "day").agg(aggs)
    total = items.group_by(keys).agg(aggs).with_columns(pl.lit(TOTAL).alias("day"))
    frame = pl.concat([daily, total.select(daily.columns)])
    if outcomes.height:
        per_day = outcomes.group_by("experiment", "day").agg(
            pl.col("win_p").sum().alias("wins_p"), pl.col("win_c").sum().alias("wins_c"), pl.col("tie").sum()
        )
        whole = outcomes.group_by("experiment").agg(
            pl.col("win_p").sum().alias("wins_p"), pl.col("win_c").sum().alias("wins_c"), pl.col("tie").sum()
        )
        wins = pl.concat([per_day, whole.with_columns(pl.lit(TOTAL).alias("day")).select(per_day.columns)])
        frame = frame.join(wins, on=["experiment", "day"], how="left").with_columns(
            pl.when(pl.col("mode") == "interleave")
            .then(pl.when(pl.col("team") == "challenger").then(pl.col("wins_c")).otherwise(pl.col("wins_p")))
            .alias("wins"),
            pl.when(pl.col("mode") == "interleave").then(pl.col("tie")).alias("ties"),
        )
        decisive = pl.col("wins_p") + pl.col("wins_c")
        frame = frame.with_columns(
            pl.when((pl.col("mode") == "interleave") & (decisive > 0))
            .then(pl.col("wins") / decisive)
            .alias("preference_share")
        )
    else:
        frame = frame.with_columns(
            pl.lit(None, pl.Int64).alias("wins"),
            pl.lit(None, pl.Int64).alias("ties"),
            pl.lit(None, pl.Float64).alias("preference_share"),
        )
    frame = _rates(frame, alpha, catalogue_size)
    order = {"production": 0, "challenger": 1, "interleave": 2}
    return (
        frame.with_columns(pl.col("variant").replace_strict(order, return_dtype=pl.Int8).alias("_v"))
        .sort("experiment", "_v", "team", "day", descending=[False, False, True, False])
        .select([pl.col(c).cast(t) for c, t in METRICS_SCHEMA.items()])
    )


# -- the tests --------------------------------------------------------------------------------------------------


def _ab_test(items: pl.DataFrame, params: OnlineParams) -> tuple[dict[str, object], pl.DataFrame]:
    """The A/B verdict fields of one experiment's items, and its looks (one per day, cumulative)."""
    success = "clicked" if params.metric == "ctr" else "converted"
    daily = (
        items.group_by("day", "arm")
        .agg(pl.len().alias("n"), pl.col(success).sum().alias("x"))
        .pivot(on="arm", index="day", values=["n", "x"])
        .sort("day")
    )
    for col in ("n_p", "n_c", "x_p", "x_c"):
        if col not in daily.columns:
            daily = daily.with_columns(pl.lit(0, pl.Int64).alias(col))
    daily = daily.fill_null(0)
    cum = {c: np.cumsum(daily[c].to_numpy().astype(np.float64)) for c in ("n_p", "n_c", "x_p", "x_c")}
    effect, var, p, taken = ab_path(cum["x_p"], cum["n_p"], cum["x_c"], cum["n_c"], params)
    n_p, n_c, x_p, x_c = (float(cum[c][-1]) if len(daily) else 0.0 for c in ("n_p", "n_c", "x_p", "x_c"))
    final_effect, final_var = (float(effect[-1]), float(var[-1])) if len(daily) else (0.0, 0.0)
    looks = pl.DataFrame(
        {"day": daily["day"], "impressions": (cum["n_p"] + cum["n_c"]).astype(np.int64), "effect": effect, "p_value": p}
    )
    fields: dict[str, object] = {
        "metric": params.metric,
        "production_value": x_p / n_p if n_p else None,
        "challenger_value": x_c / n_c if n_c else None,
        "effect": final_effect if n_p and n_c else None,
        "p_value": float(p[-1]) if len(p) else 1.0,
        "tau2": params.tau2_ab,
        "looks": int(taken.sum()),
        "impressions": int(n_p + n_c),
    }
    needed: int | None = None
    if fields["p_value"] > params.alpha and n_p and n_c:  # type: ignore[operator]
        scale = needed_scale(final_effect, final_var, params.tau2_ab, params.alpha)
        if scale is not None:
            floor = params.min_impressions / min(n_p, n_c)  # a look needs min_impressions per arm
            needed = max(0, math.ceil(max(scale, floor) * (n_p + n_c) - (n_p + n_c)))
    fields["impressions_needed"] = needed
    return fields, looks


def _interleave_test(items: pl.DataFrame, params: OnlineParams) -> tuple[dict[str, object], pl.DataFrame]:
    outcomes = _answer_outcomes(items)
    daily = (
        outcomes.group_by("day").agg(pl.col("win_p").sum().alias("wp"), pl.col("win_c").sum().alias("wc")).sort("day")
    )
    shown = items.group_by("day").len("n").sort("day")
    daily = shown.join(daily, on="day", how="left").fill_null(0).sort("day")
    wp, wc = np.cumsum(daily["wp"].to_numpy()), np.cumsum(daily["wc"].to_numpy())
    n_imp = np.cumsum(daily["n"].to_numpy())
    decisive = (wp + wc).astype(np.float64)
    share, var, p, taken = interleave_path(wp, wc, params)
    looks = pl.DataFrame(
        {"day": daily["day"], "impressions": n_imp.astype(np.int64), "effect": share - 0.5, "p_value": p}
    )
    d = float(decisive[-1]) if len(daily) else 0.0
    imp = int(n_imp[-1]) if len(daily) else 0
    fields: dict[str, object] = {
        "metric": "preference_share",
        "production_value": float(wp[-1] / d) if d else None,
        "challenger_value": float(wc[-1] / d) if d else None,
        "effect": float(share[-1] - 0.5) if d else None,
        "p_value": float(p[-1]) if len(p) else 1.0,
        "tau2": params.tau2_interleave,
        "looks": int(taken.sum()),
        "impressions": imp,
        "decisive_answers": int(d),
    }
    needed: int | None = None
    if fields["p_value"] > params.alpha and d:  # type: ignore[operator]
        scale = needed_scale(float(share[-1] - 0.5), float(var[-1]), params.tau2_interleave, params.alpha)
        if scale is not None:  # decisive answers grow with impressions at the rate seen so far
            scale = max(scale, params.min_decisive / d)
            needed = max(0, math.ceil(scale * imp - imp))
    fields["impressions_needed"] = needed
    return fields, looks


def _verdict(fields: dict[str, object], alpha: float) -> str:
    p, effect = fields["p_value"], fields["effect"]
    if effect is None or p is None or p > alpha:  # type: ignore[operator]
        return "not yet significant"
    return "challenger better" if effect > 0 else "challenger worse"  # type: ignore[operator]


def evaluate(
    events: pl.DataFrame,
    answers: pl.DataFrame,
    experiments: Sequence[ExperimentLike] = (),
    catalogue_size: int | None = None,
    params: OnlineParams | None = None,
) -> OnlineResult:
    """Every experiment the data names (and every one in `experiments`, even without data yet): the metrics per
    variant, version and day, and one verdict each (the module docstring says how)."""
    params = params or OnlineParams()
    events = events.filter(pl.col("type").is_in(COUNTED_TYPES))  # likes and dislikes say nothing about an answer
    all_answers, attributed, counts = _answers(events, answers)
    items, outside = shown_items(all_answers, attributed, params)
    for exp, n in outside.iter_rows():
        counts.setdefault(exp, {})["outside_answer"] = int(n)
    metrics = (
        metrics_frame(items, params.alpha, catalogue_size) if items.height else pl.DataFrame(schema=METRICS_SCHEMA)
    )
    known = {e.name: e for e in experiments}
    names = list(dict.fromkeys([*known, *sorted(set(items["experiment"].unique().to_list()) | set(counts))]))
    verdicts, looks = [], []
    for name in names:  # one per experiment: a handful
        mine = items.filter(pl.col("experiment") == name)
        record = known.get(name)
        interleaved = (record.mode == "interleave") if record else bool((mine["arm"] == "i").any())
        if record is not None:
            production, challenger = record.production, record.challenger
        else:
            first = mine.row(0, named=True) if mine.height else {}
            if interleaved:
                production, challenger = first.get("version", ""), first.get("challenger_version", "")
            else:
                arms = mine.group_by("arm").agg(pl.col("version").first())
                version = dict(arms.iter_rows())
                production, challenger = version.get("p", ""), version.get("c", "")
        mode_items = mine.filter((pl.col("arm") == "i") if interleaved else (pl.col("arm") != "i"))
        fields, path = (_interleave_test if interleaved else _ab_test)(mode_items, params)
        extra = counts.get(name, {})
        verdicts.append(
            {
                "experiment": name,
                "mode": "interleave" if interleaved else "ab",
                "production": production,
                "challenger": challenger,
                **fields,
                "alpha": params.alpha,
                "verdict": _verdict(fields, params.alpha),
                "decisive_answers": fields.get("decisive_answers"),
                "answers_without_row": extra.get("answers_without_row", 0),
                "unattributed_events": extra.get("unattributed_events", 0),
                "outside_answer": extra.get("outside_answer", 0),
            }
        )
        looks.append(path.with_columns(pl.lit(name).alias("experiment")))
    look_schema = {
        "experiment": pl.String,
        "day": pl.String,
        "impressions": pl.Int64,
        "effect": pl.Float64,
        "p_value": pl.Float64,
    }
    return OnlineResult(
        metrics=metrics,
        verdicts=pl.DataFrame(verdicts, schema=VERDICT_SCHEMA) if verdicts else pl.DataFrame(schema=VERDICT_SCHEMA),
        looks=pl.concat([lk.select(list(look_schema)).cast(look_schema) for lk in looks])
        if looks
        else pl.DataFrame(schema=look_schema),
        params=params,
    )
