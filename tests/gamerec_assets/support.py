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


def seed_ab_traffic(
    storage: object,
    production: str,
    challenger: str,
    ctr_p: float,
    ctr_c: float,
    name: str = "online-test",
    n: int = 300,
) -> int:
    """An A/B experiment's traffic as the API records it: `n` answers of 5 games per arm on each of the last two
    days (`experiment_answers`), the first ctr × 5n games of each day's arm clicked (`interaction_events`, quoting
    the answer's request id); returns the events stored. `storage`: the StorageSettings of the home."""
    from gamerec_assets import backends
    from gamerec_assets.recsys.experiment_ids import Attribution, tag
    from gamerec_assets.recsys.feedback import Event, now_us
    from gamerec_assets.store.experiment_answers import AnswerRecord, ExperimentAnswers

    tables = backends.table_store(storage)  # type: ignore[arg-type]
    now, day = now_us(), 86_400_000_000
    records, events = [], []
    for d, served in enumerate((now - day, now - 60_000_000)):
        for arm, ctr, version in (("p", ctr_p, production), ("c", ctr_c, challenger)):
            clicks = round(ctr * 5 * n)
            for a in range(n):
                rid = tag(f"s{d}{arm}{a:05d}", Attribution(name, "production" if arm == "p" else "challenger", version))
                games = tuple(range(1 + a % 50, 6 + a % 50))
                records.append(AnswerRecord(rid, name, arm, version, "", f"u{a}", served, games, arm * 5))
                events += [
                    Event(f"{rid}-{g}", f"u{a}", g, "click", None, served + 1_000_000, served + 1_000_000, rid)
                    for i, g in enumerate(games)
                    if a * 5 + i < clicks
                ]
    ExperimentAnswers(tables).append(records)
    return backends.event_store(tables).append(events).n_accepted
