"""When the graph refreshes: daily (`daily_refresh`), and when enough players' events arrived (`sensors`)."""

from __future__ import annotations

import warnings
from typing import Any

import dagster as dg

with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.BetaWarning)  # include_sources is beta in Dagster 1.13
    # include_sources: the run observes `interaction_events` first, so user_logs records which events it read
    REFRESH_SELECTION = dg.AssetSelection.all(include_sources=True)

refresh_all = dg.define_asset_job(
    "refresh_all",
    selection=REFRESH_SELECTION,
    description="Rebuild every asset: ingestion -> features -> interactions (+ events) -> model -> report -> "
    "recommendations, and the online evaluation of experiments.",
)


def refresh_run_config(day: str) -> dict[str, Any]:
    """The run config of a refresh on `day` (YYYY-MM-DD): the crawl is dated, whoever requests it."""
    return {"ops": {"raw_games": {"config": {"crawl_date": day}}}}


daily_refresh = dg.ScheduleDefinition(
    name="daily_refresh",
    job=refresh_all,
    cron_schedule="0 4 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,  # schedules start stopped otherwise
    run_config_fn=lambda context: refresh_run_config(context.scheduled_execution_time.strftime("%Y-%m-%d")),
)
