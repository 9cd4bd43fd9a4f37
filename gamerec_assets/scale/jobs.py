"""The scale location's jobs: one per stage, so a backfill of the blocks job is the distributed fit."""

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

BLOCKS_JOB = "item_similarity_blocks_job"


def make_jobs() -> list[UnresolvedAssetJobDefinition]:
    return [
        dg.define_asset_job(
            BLOCKS_JOB,
            selection=["item_similarity_blocks"],
            description="One item block per run: a backfill of this job over all partitions is the distributed fit.",
        ),
        dg.define_asset_job("item_similarity_merge_job", selection=["item_similarity_merged"]),
        dg.define_asset_job("item_cf_inputs_job", selection=["item_cf_inputs"]),
    ]
