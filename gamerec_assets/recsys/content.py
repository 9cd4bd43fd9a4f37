"""Content similarity from catalogue attributes: what a game nobody has played yet can still be compared by.

Each item is a bag of tokens from what the catalogue says about it: `genre:`, `tag:`, `platform:`, `developer:`
(lists), `word:` (the words of its name, and of its `description` where the catalogue has one). A game only the
play log knows (an unmatched steam-200k title) still has its log title's words. Tokens are weighted by IDF
(binary term frequency: a tag either applies or not) and two items are compared by the cosine of their vectors;
tokens carried by a single item are dropped, as they cannot relate two items.

The item-item product is `itemcf.item_similarity_matrix` (the compiled, block-wise cosine kernel) on the
tokens × items matrix, so the content similarity has the collaborative one's form: items × items CSR, each row's
top-K neighbours, values in [0, 1], no self-similarity.

`ItemContent` ties the attributes to one item order (a model's columns) and computes the similarity once, on
first use, however many models of a selection run read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl
import scipy.sparse as sp

from gamerec_assets.recsys.itemcf import item_similarity_matrix
from gamerec_assets.recsys.matrix import _lookup

CONTENT_NEIGHBORS = 100  # neighbours kept per item (the item itself is counted, then dropped)
LIST_FIELDS = {"genres": "genre", "tags": "tag", "platforms": "platform", "developers": "developer"}
TEXT_FIELDS = ("name", "description")
_WORD = r"[0-9a-z]+"


def _list_tokens(frame: pl.DataFrame, column: str, prefix: str) -> pl.DataFrame:
    values = frame[column]
    if values.dtype == pl.Utf8:  # a catalogue may give a list as "A|B" or "A, B" text
        values = values.str.split("|")
    tokens = (
        pl.DataFrame({"game_id": frame["game_id"], "token": values.cast(pl.List(pl.Utf8))})
        .explode("token")
        .drop_nulls()
        .with_columns(pl.col("token").str.strip_chars().str.to_lowercase())
    )
    return tokens.filter(pl.col("token") != "").select(
        "game_id", (pl.lit(f"{prefix}:") + pl.col("token")).alias("token")
    )


def _word_tokens(game_ids: pl.Series, text: pl.Series) -> pl.DataFrame:
    words = pl.DataFrame({"game_id": game_ids, "token": text.cast(pl.Utf8).str.to_lowercase().str.extract_all(_WORD)})
    return words.explode("token").drop_nulls().select("game_id", (pl.lit("word:") + pl.col("token")).alias("token"))


def item_tokens(game_features: pl.DataFrame, user_logs: pl.DataFrame | None = None) -> pl.DataFrame:
    """(game_id, token) pairs, distinct, from whatever attributes the catalogue carries (and log titles)."""
    parts = [pl.DataFrame(schema={"game_id": pl.Int64, "token": pl.Utf8})]
    for column, prefix in LIST_FIELDS.items():
        if column in game_features.columns:
            parts.append(_list_tokens(game_features, column, prefix))
    for column in TEXT_FIELDS:
        if column in game_features.columns:
            parts.append(_word_tokens(game_features["game_id"], game_features[column].fill_null("")))
    if user_logs is not None and "title" in user_logs.columns:
        titles = user_logs.filter(pl.col("title").is_not_null()).unique("game_id", keep="first")
        titles = titles.filter(~pl.col("game_id").is_in(game_features["game_id"].implode()))
        parts.append(_word_tokens(titles["game_id"], titles["title"]))
    frame = pl.concat([p.cast({"game_id": pl.Int64}) for p in parts])
    return frame.unique(maintain_order=True)


def term_matrix(tokens: pl.DataFrame, item_ids: np.ndarray) -> sp.csr_matrix:
    """tokens × items IDF weights (binary tf): columns in `item_ids` order; tokens of one item only are dropped."""
    item_ids = np.asarray(item_ids, np.int64)
    cols = _lookup(item_ids, tokens["game_id"].to_numpy())
    keep = cols >= 0
    cols = cols[keep]
    names = tokens["token"].to_numpy()[keep]
    if not len(cols):
        return sp.csr_matrix((0, len(item_ids)), dtype=np.float64)
    n_docs = int(np.unique(cols).size)  # the items with any attribute
    _, rows = np.unique(names, return_inverse=True)
    df = np.bincount(rows)
    shared = df[rows] >= 2
    _, rows = np.unique(rows[shared], return_inverse=True)
    cols = cols[shared]
    df = np.bincount(rows).astype(np.float64)
    idf = np.log1p(n_docs / df)  # > 0 even for a token every item has, so such a catalogue still compares
    matrix = sp.csr_matrix((idf[rows], (rows, cols)), shape=(len(df), len(item_ids)))
    matrix.sum_duplicates()
    return matrix


def content_similarity(terms: sp.csr_matrix, neighbors: int = CONTENT_NEIGHBORS) -> sp.csr_matrix:
    """items × items cosine of the items' IDF vectors, each row's top neighbours, no diagonal, values in [0, 1]."""
    return item_similarity_matrix(terms, "cosine", neighbors + 1)


@dataclass(eq=False)
class ItemContent:
    """The catalogue's attributes over one item order, and their similarity, computed once when first read."""

    item_ids: np.ndarray
    tokens: pl.DataFrame
    neighbors: int = CONTENT_NEIGHBORS
    _similarity: sp.csr_matrix | None = field(default=None, repr=False)

    @classmethod
    def of(cls, game_features: pl.DataFrame, user_logs: pl.DataFrame | None, item_ids: np.ndarray) -> ItemContent:
        return cls(np.asarray(item_ids, np.int64), item_tokens(game_features, user_logs))

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def similarity(self) -> sp.csr_matrix:
        if self._similarity is None:
            self._similarity = content_similarity(term_matrix(self.tokens, self.item_ids), self.neighbors)
        return self._similarity

    def described(self) -> np.ndarray:
        """Which items have at least one token shared with another item (the ones content can place)."""
        return np.diff(sp.csc_matrix(term_matrix(self.tokens, self.item_ids)).indptr) > 0
