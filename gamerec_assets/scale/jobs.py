"""The scale location's jobs: the whole fit (inputs, every item block, the merge) as one run, and the sharded
scoring of `batch_recommendations` (`batch_shards`) as another."""

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

FIT_JOB = "item_similarity_fit_job"
# Runs of the fit carry this tag, so a run coordinator can bound them (`tag_concurrency_limits`), e.g. to one at a
# time on a Dask cluster, whose task keys are `job.step` and collide between concurrent runs of the same job.
FIT_TAG = {"gamerec/scale": "fit"}
SCORE_JOB = "batch_recommendations_sharded_job"
SCORE_TAG = {"gamerec/scale": "score"}


def make_jobs() -> list[UnresolvedAssetJobDefinition]:
    return [
        dg.define_asset_job(
            FIT_JOB,
            selection=["item_cf_inputs", "item_similarity_merged"],
            tags=FIT_TAG,
            description="The item-item fit in one run: inputs, one step per item block (in parallel), the merge.",
        ),
    ]
