"""The main code location: assets, checks, the refresh job, its schedule and its events sensor, and the resources
`Settings` selects.

Backends are chosen in `gamerec_assets.backends` from `gamerec_assets.settings` and mapped to resources by
`gamerec_assets.resources.from_settings.build_resources` (shared with the scale location); this module only
assembles.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import dagster as dg

from gamerec_assets import backends
from gamerec_assets.assets import features, ingestion, interactions, modeling, online, serving
from gamerec_assets.resources.from_settings import build_resources
from gamerec_assets.schedules import daily_refresh, refresh_all
from gamerec_assets.sensors import build_retrain_sensor
from gamerec_assets.settings import Settings

# Steps run in parallel processes forked from a server that has already imported the project: without the
# preload every step pays the full import of dagster + polars + scipy (about 5 s each on this machine).
EXECUTOR = dg.multiprocess_executor.configured(
    {"start_method": {"forkserver": {"preload_modules": ["gamerec_assets.definitions"]}}}
)
ASSET_MODULES = [ingestion, features, interactions, modeling, serving, online]
log = logging.getLogger("gamerec")


def build_definitions(env: Mapping[str, str] | None = None) -> dg.Definitions:
    """The location for the environment `env` (None: this process's), with the kernels' thread count applied."""
    settings = Settings.from_env(env)
    settings.threads.apply()
    log.info("gamerec backends: %s", backends.describe(settings.storage))
    return dg.Definitions(
        assets=dg.load_assets_from_modules(ASSET_MODULES),
        asset_checks=dg.load_asset_checks_from_modules(ASSET_MODULES),
        jobs=[refresh_all],
        schedules=[daily_refresh],
        sensors=[
            build_retrain_sensor(
                settings.retrain.min_events, settings.retrain.min_sources, settings.retrain.burst_window_s
            )
        ],
        resources=build_resources(settings),
        executor=EXECUTOR,
    )


defs = build_definitions()
