"""Pure recommendation core: numpy, scipy and polars (implicit for the MF families' fits); no Dagster, no Litestar."""

from gamerec_assets.recsys.cleaning import CleaningReport, clean_games
from gamerec_assets.recsys.evaluation import KS, Holdout, HoldoutResult, evaluate_holdout
from gamerec_assets.recsys.factors import ALS, BPR, FoldIn
from gamerec_assets.recsys.itemcf import ItemCF, Popularity, item_similarity_matrix
from gamerec_assets.recsys.matrix import Interactions, build_matrix
from gamerec_assets.recsys.metrics import catalogue_coverage, hit_matrix, per_user_metrics, ranking_metrics
from gamerec_assets.recsys.model_artifact import ArtifactError, ModelArtifact, fingerprint
from gamerec_assets.recsys.models import (
    BM25,
    EASE,
    MODELS,
    TFIDF,
    AsymmetricCosine,
    RP3beta,
    ServableModel,
    build_model,
)
from gamerec_assets.recsys.rawg_pages import RawgPageError, parse_pages, validate_page
from gamerec_assets.recsys.recommender import Recommender
from gamerec_assets.recsys.selection import (
    SelectionResult,
    Trial,
    inner_split,
    select_model,
    select_model_with_report,
    trials_frame,
)
from gamerec_assets.recsys.simulate import SimulationParams, simulate_user_logs
from gamerec_assets.recsys.split import SplitParams, split_interactions
from gamerec_assets.recsys.steam import implicit_weight, read_steam_log
from gamerec_assets.recsys.training import TrainingParams, TrainingResult, train

__all__ = [
    "ALS",
    "BM25",
    "BPR",
    "EASE",
    "KS",
    "MODELS",
    "TFIDF",
    "ArtifactError",
    "AsymmetricCosine",
    "CleaningReport",
    "FoldIn",
    "Holdout",
    "HoldoutResult",
    "Interactions",
    "ItemCF",
    "ModelArtifact",
    "Popularity",
    "RP3beta",
    "RawgPageError",
    "Recommender",
    "SelectionResult",
    "ServableModel",
    "SimulationParams",
    "SplitParams",
    "TrainingParams",
    "TrainingResult",
    "Trial",
    "build_matrix",
    "build_model",
    "catalogue_coverage",
    "clean_games",
    "evaluate_holdout",
    "fingerprint",
    "hit_matrix",
    "implicit_weight",
    "inner_split",
    "item_similarity_matrix",
    "parse_pages",
    "per_user_metrics",
    "ranking_metrics",
    "read_steam_log",
    "select_model",
    "select_model_with_report",
    "simulate_user_logs",
    "split_interactions",
    "train",
    "trials_frame",
    "validate_page",
]
