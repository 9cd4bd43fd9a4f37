"""Stage 6: online evaluation. What players did with the answers each model gave during an experiment, and the
verdict: challenger better / worse / not yet significant (`recsys.online_evaluation`).

Reads `interaction_events` (observed first: it is this asset's upstream) and `experiment_answers` through
`OnlineEvaluationResource`, over the retention window (GAMEREC_ONLINE_RETENTION_DAYS, answers older than it are
pruned here), and publishes the per-day and total figures as the `online_evaluation` table. The verdict's test is an
mSPRT whose p-value stays valid however often it is read, so this runs with every refresh (the schedule, the events
sensor) and on demand. `production_model`'s online rule (GAMEREC_ONLINE_GATE) asks the same resource at promotion.
"""

import dagster as dg
import numpy as np
import polars as pl

from gamerec_assets.assets.interactions import interaction_events
from gamerec_assets.assets.metadata import figure, markdown_table, png_markdown
from gamerec_assets.recsys.online_evaluation import TOTAL, OnlineResult
from gamerec_assets.resources.online_gate import OnlineEvaluationResource

VERDICT_COLUMNS = [
    "experiment",
    "mode",
    "metric",
    "production_value",
    "challenger_value",
    "effect",
    "p_value",
    "verdict",
    "impressions",
    "impressions_needed",
]
TOTAL_COLUMNS = [
    "experiment",
    "variant",
    "team",
    "model_version",
    "answers",
    "impressions",
    "clicks",
    "ctr",
    "ctr_low",
    "ctr_high",
    "conversions",
    "conversion_rate",
    "conversion_low",
    "conversion_high",
    "coverage",
    "wins",
    "ties",
    "preference_share",
]


def method_description(result: OnlineResult) -> str:
    p = result.params
    return (
        f"mSPRT (Johari et al. 2017), normal mixture: always-valid p-value over daily looks, alpha {p.alpha}; "
        f"A/B on {p.metric} (tau² {p.tau2_ab:g}, a look needs {p.min_impressions} impressions per arm), "
        f"interleaving on the preference share vs 0.5 (tau² {p.tau2_interleave:g}, {p.min_decisive} decisive "
        "answers); impressions still needed: where the same mSPRT would reject if the observed effect, rates and "
        "split held"
    )


def verdict_text(row: dict) -> str:
    """One line per experiment, e.g. `canary: challenger better (ctr 0.061 vs 0.050, p 0.003)`."""
    if row["effect"] is None:
        return f"{row['experiment']}: {row['verdict']} (no data yet)"
    text = (
        f"{row['experiment']}: {row['verdict']} ({row['metric']} {row['challenger_value']:.4f} vs "
        f"{row['production_value']:.4f}, always-valid p {row['p_value']:.4g}, {row['impressions']:,} impressions)"
    )
    if row["impressions_needed"] is not None:
        text += f"; about {row['impressions_needed']:,} more impressions to reach significance at this effect"
    return text


def plot(result: OnlineResult) -> dg.MetadataValue:
    """Daily CTR per variant (Wilson intervals) and the always-valid p-value after each day, per experiment."""
    fig, ax = figure(11, 3.5)
    ax.remove()
    left, right = fig.subplots(1, 2)
    daily = result.metrics.filter(pl.col("day") != TOTAL)
    for (exp, team, variant), part in daily.group_by("experiment", "team", "variant", maintain_order=True):
        part = part.sort("day")
        ctr = part["ctr"].to_numpy()
        err = np.vstack([ctr - part["ctr_low"].to_numpy(), part["ctr_high"].to_numpy() - ctr])
        label = f"{exp} {team} team" if variant == "interleave" else f"{exp} {variant}"
        left.errorbar(part["day"].to_list(), ctr, yerr=err, marker="o", capsize=3, label=label)
    left.set_ylabel("CTR (95 % Wilson)" if result.params.alpha == 0.05 else "CTR (Wilson)")
    left.set_title("CTR per day")
    left.legend(fontsize=7)
    left.tick_params(axis="x", rotation=30)
    for (exp,), part in result.looks.group_by("experiment", maintain_order=True):
        right.plot(part["day"].to_list(), part["p_value"].to_numpy(), marker="o", label=exp)
    right.axhline(result.params.alpha, color="grey", linestyle="--", label=f"alpha {result.params.alpha}")
    right.set_yscale("log")
    right.set_title("always-valid p-value (mSPRT)")
    right.legend(fontsize=7)
    right.tick_params(axis="x", rotation=30)
    return png_markdown(fig, "online evaluation")


@dg.asset(
    group_name="experiments",
    kinds={"polars", "table"},
    deps=[interaction_events],
    io_manager_key="table_io_manager",
    metadata={"primary_key": ["experiment", "variant", "team", "model_version", "day"]},
)
def online_evaluation(context: dg.AssetExecutionContext, online: OnlineEvaluationResource) -> dg.Output[pl.DataFrame]:
    """Per experiment, variant (production / challenger / interleave), team (the model that drafted the games) and
    model version, per day (UTC) and in total (`day` = "total"): answers, impressions, clicks, CTR, conversions
    (plays or purchases within 24 h of the answer), their rates with Wilson intervals, coverage; for interleaving
    each team's wins, the ties and its preference share (team-draft credit, Chapelle et al. 2012). The metadata
    holds the verdict of each experiment (`recsys.online_evaluation`: an mSPRT, valid under daily looks), the
    impressions still needed, a plot, and what was pruned."""
    pruned = online.prune()
    experiments = online.experiments()
    result = online.evaluate(experiments)
    running = next((e for e in experiments if e.running), None)
    meta: dict[str, object] = {
        "experiments": result.verdicts.height,
        "running": running.name if running else "none",
        "retention_days": online.retention_days,
        "pruned_answers": pruned,
        "alpha": result.params.alpha,
        "test": method_description(result),
    }
    if result.empty:
        context.log.info("online_evaluation: no experiment recorded and no experiment traffic: nothing to evaluate")
        meta["verdict"] = "no experiment recorded: nothing to evaluate"
        return dg.Output(result.metrics, metadata=meta)
    verdicts = result.verdicts.iter_rows(named=True)
    lines = [verdict_text(v) for v in verdicts]
    for line in lines:
        context.log.info(f"online_evaluation: {line}")
    shown = result.verdicts.filter(pl.col("experiment") == running.name) if running else result.verdicts.head(1)
    current = shown.row(0, named=True) if shown.height else result.verdicts.row(0, named=True)
    meta |= {
        "verdict": verdict_text(current),
        "verdicts": markdown_table(result.verdicts, 20, VERDICT_COLUMNS),
        "verdict_details": dg.MetadataValue.json(result.verdicts.to_dicts()),
        "totals": markdown_table(result.metrics.filter(pl.col("day") == TOTAL), 20, TOTAL_COLUMNS),
        "daily": markdown_table(result.metrics.filter(pl.col("day") != TOTAL), 30, ["day", *TOTAL_COLUMNS[:9]]),
        "unattributed_events": int(result.verdicts["unattributed_events"].sum()),
    }
    if result.metrics.height:
        meta["plot"] = plot(result)
    return dg.Output(result.metrics, metadata=meta)
