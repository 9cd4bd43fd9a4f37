"""Where a served version's data came from, read from its manifest's `data` block (`state.data_sources`)."""

from __future__ import annotations

from gamerec_api.state import data_sources


def test_sources_are_the_manifests_with_file_names_only() -> None:
    data = {"interactions": "file:/srv/site/data/interactions.csv", "catalog": "file:data/games.parquet"}
    assert data_sources({"data": data}) == ("file:interactions.csv", "file:games.parquet")
    assert data_sources({"data": {"interactions": "steam:/d/steam-200k.csv.gz", "catalog": "rawg"}}) == (
        "steam:steam-200k.csv.gz",
        "rawg",
    )
    assert data_sources({"data": {"interactions": "simulated", "catalog": "rawg"}}) == ("simulated", "rawg")


def test_a_version_that_does_not_record_its_sources_says_nothing() -> None:
    assert data_sources({}) == (None, None)  # versions from before the manifest's `data` block
    assert data_sources({"data": {"interactions": "unknown", "catalog": "unknown"}}) == (None, None)
    assert data_sources({"data": "garbage"}) == (None, None)
