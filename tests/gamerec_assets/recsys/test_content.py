"""Content similarity from catalogue attributes: tokens, IDF weights, the cosine top-K and its item order."""

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from gamerec_assets.recsys.catalogue_file import catalogue_pages, read_catalogue
from gamerec_assets.recsys.cleaning import clean_games
from gamerec_assets.recsys.content import ItemContent, content_similarity, item_tokens, term_matrix
from gamerec_assets.recsys.models import build_model
from gamerec_assets.recsys.rawg_pages import parse_pages
from tests.gamerec_assets.recsys.support import random_matrix

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def example_features() -> pl.DataFrame:
    features, _ = clean_games(parse_pages(catalogue_pages(read_catalogue(EXAMPLES / "catalogue.csv"))))
    return features


def catalogue() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "game_id": [1, 2, 3, 4],
            "name": ["Space Race", "Space Race 2", "Farm Life", "Dungeon Crawl"],
            "genres": [["Racing"], ["Racing"], ["Simulation"], ["RPG"]],
            "tags": [["Multiplayer"], ["Multiplayer", "Sci-fi"], [], ["Fantasy"]],
            "platforms": [["PC"], ["PC"], ["PC"], []],
        }
    )


def test_tokens_come_from_every_attribute_and_the_log_titles() -> None:
    logs = pl.DataFrame({"user_id": ["a", "b"], "game_id": [1, 10**12 + 5], "title": [None, "Space Race: Deluxe"]})
    tokens = item_tokens(catalogue(), logs)
    by_game = tokens.group_by("game_id").agg(pl.col("token")).sort("game_id")
    got = dict(zip(by_game["game_id"].to_list(), [set(t) for t in by_game["token"].to_list()], strict=True))
    assert got[2] == {"genre:racing", "tag:multiplayer", "tag:sci-fi", "platform:pc", "word:space", "word:race",
                      "word:2"}  # fmt: skip
    assert got[10**12 + 5] == {"word:space", "word:race", "word:deluxe"}  # a game only the log knows
    described = catalogue().with_columns(pl.Series("description", ["fast ships", None, "", "dark caves"]))
    assert "word:ships" in item_tokens(described)["token"].to_list()


def test_term_matrix_weights_by_idf_and_drops_tokens_of_one_item() -> None:
    tokens = item_tokens(catalogue())
    terms = term_matrix(tokens, np.array([1, 2, 3, 4, 99]))
    assert terms.shape[1] == 5 and terms[:, 4].nnz == 0  # an id without attributes has an empty column
    # shared tokens: racing, multiplayer, pc, space, race; "fantasy", "farm", "2" are one game's only
    assert terms.shape[0] == 5
    df = np.diff(terms.indptr)
    idf = terms.max(axis=1).toarray().ravel()
    assert np.all(np.diff(idf[np.argsort(df)]) <= 1e-12)  # the rarer the token, the heavier
    assert np.allclose(idf, np.log1p(4 / df))


def test_content_similarity_is_the_cosine_top_k_without_the_item_itself() -> None:
    terms = term_matrix(item_tokens(example_features()), example_features()["game_id"].sort().to_numpy())
    dense = terms.T.toarray()
    dense /= np.maximum(np.linalg.norm(dense, axis=1, keepdims=True), 1e-12)
    expected = dense @ dense.T
    np.fill_diagonal(expected, 0)
    sim = content_similarity(terms, neighbors=3)
    assert sim.shape == expected.shape and sim.diagonal().sum() == 0
    assert np.diff(sim.indptr).max() <= 3 and sim.data.min() > 0 and sim.data.max() <= 1 + 1e-6
    rows, cols = sim.nonzero()
    np.testing.assert_allclose(sim.toarray()[rows, cols], expected[rows, cols], rtol=1e-5)
    for i in range(expected.shape[0]):  # each row keeps its strongest pairs
        kept = sim[i].toarray().ravel()
        assert kept[kept > 0].min(initial=1) >= np.sort(expected[i])[-3] - 1e-6


def test_item_content_follows_the_given_item_order_and_computes_once() -> None:
    features = example_features()
    ids = np.sort(np.append(features["game_id"].to_numpy(), 5000))  # a played game the catalogue lacks
    content = ItemContent.of(features, None, ids)
    sim = content.similarity
    assert content.similarity is sim and sim.shape == (13, 13)
    assert not content.described()[-1] and content.described()[:-1].all()
    names = dict(zip(features["game_id"].to_list(), features["name"].to_list(), strict=True))
    row = sim[int(np.searchsorted(ids, 1002))]  # Dungeon Ledger: RPG, Turn-Based, Fantasy
    assert names[int(ids[row.indices[np.argmax(row.data)]])] == "Deep Vault"  # RPG, Fantasy
    with pytest.raises(ValueError, match="content describes"):
        build_model({"model": "Hybrid"}, content).fit(random_matrix(items=20))
