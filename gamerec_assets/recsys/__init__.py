"""Pure recommendation core: numpy, scipy and polars only (no Dagster, no Litestar)."""

from gamerec_assets.recsys.artifact import ArtifactError, ModelArtifact, fingerprint
from gamerec_assets.recsys.evaluation import KS, HoldoutResult, evaluate_holdout, make_model
from gamerec_assets.recsys.features import CleaningReport, clean_games
from gamerec_assets.recsys.itemcf import ItemCF, Popularity, item_similarity_matrix
from gamerec_assets.recsys.matrix import Interactions, build_matrix
from gamerec_assets.recsys.metrics import catalogue_coverage, hit_matrix, per_user_metrics, ranking_metrics
from gamerec_assets.recsys.rawg import RawgPageError, parse_pages, validate_page
from gamerec_assets.recsys.simulate import SimulationParams, simulate_user_logs
from gamerec_assets.recsys.split import SplitParams, split_interactions

__all__ = [
    "KS",
    "ArtifactError",
    "CleaningReport",
    "HoldoutResult",
    "Interactions",
    "ItemCF",
    "ModelArtifact",
    "Popularity",
    "RawgPageError",
    "SimulationParams",
    "SplitParams",
    "build_matrix",
    "catalogue_coverage",
    "clean_games",
    "evaluate_holdout",
    "fingerprint",
    "hit_matrix",
    "item_similarity_matrix",
    "make_model",
    "parse_pages",
    "per_user_metrics",
    "ranking_metrics",
    "simulate_user_logs",
    "split_interactions",
    "validate_page",
]
