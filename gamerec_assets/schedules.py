"""When the graph refreshes."""

from __future__ import annotations

import dagster as dg

refresh_all = dg.define_asset_job(
    "refresh_all",
    selection=dg.AssetSelection.all(),
    description="Rebuild every asset: ingestion -> features -> interactions -> model -> report -> recommendations.",
)

daily_refresh = dg.ScheduleDefinition(
    name="daily_refresh",
    job=refresh_all,
    cron_schedule="0 4 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,  # schedules start stopped otherwise
    run_config_fn=lambda context: {
        "ops": {"raw_games": {"config": {"crawl_date": context.scheduled_execution_time.strftime("%Y-%m-%d")}}}
    },
)
