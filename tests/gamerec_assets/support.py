"""Shared by the Dagster-layer tests."""

# Every asset of the graph, by key: what `build_definitions` declares and what `--select '*'` materialises.
ASSETS = {
    "raw_games",
    "game_features",
    "user_logs",
    "item_similarity",
    "evaluation_report",
    "production_model",
    "batch_recommendations",
    "online_evaluation",
}
