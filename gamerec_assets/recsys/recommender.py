"""The one contract every model of the core keeps, in the shape of implicit's `RecommenderBase`.

Evaluation, selection, the artifact and the benchmarks treat models interchangeably, so they rely only on this:
`fit(user_items)` learns from a users × items matrix and returns the model; `recommend(user_items, N)` ranks the
top-N unseen items of each row (ids padded with -1, scores with 0); `similar_items(item_ids, N)` ranks the N most
similar other items of each item (never the item itself); and `params` is the dict `models.build_model` turns back
into an equal unfitted model, which is what manifests and run configs store.

Everything works on matrix indices; the id mapping lives in `Interactions` and the model artifact.

The base class keeps the checks every model would otherwise repeat, so they fail the same way everywhere: using
a model before `fit` raises RuntimeError, an item index outside the learned catalogue raises IndexError. A model
says what it learned (`_learned`, None before fit) and ranks from it (`_recommend`, `_similar_items`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Self

import numpy as np
import scipy.sparse as sp

Learned = sp.csr_matrix | np.ndarray
Ranked = tuple[np.ndarray, np.ndarray]


class Recommender(ABC):
    """A model that learns from a users × items matrix (see the module docstring for the contract)."""

    name: ClassVar[str]

    # -- what a subclass provides --------------------------------------------------------------------------------

    @abstractmethod
    def fit(self, user_items: sp.spmatrix) -> Self:
        """Learn from a non-negative users × items matrix; returns the model itself, so calls chain."""

    @abstractmethod
    def _learned(self) -> Learned | None:
        """What `fit` learned, one row (or entry) per item; None before `fit`."""

    @abstractmethod
    def _recommend(self, learned: Any, user_items: sp.csr_matrix, N: int) -> Ranked:
        """`recommend` once the model is known to be fitted."""

    @abstractmethod
    def _similar_items(self, learned: Any, item_ids: np.ndarray, N: int) -> Ranked:
        """`similar_items` once the model is fitted and the indices are known to be in range (int64)."""

    def _hyperparameters(self) -> dict[str, Any]:
        """The constructor's keyword arguments, as `params` records them."""
        return {}

    # -- the contract --------------------------------------------------------------------------------------------

    @property
    def params(self) -> dict[str, Any]:
        """The model's kind and hyperparameters: `models.build_model(params)` rebuilds it, unfitted."""
        return {"model": self.name, **self._hyperparameters()}

    def recommend(self, user_items: sp.csr_matrix, N: int = 10) -> Ranked:
        """Top-N unseen item indices and float32 scores per row of user_items, as (rows, N) arrays padded -1 / 0."""
        return self._recommend(self._fitted(), user_items, N)

    def similar_items(self, item_ids: np.ndarray | list[int], N: int = 10) -> Ranked:
        """The N most similar other items of each given item index, as (items, N) arrays padded -1 / 0."""
        learned = self._fitted()
        idx = np.asarray(item_ids, dtype=np.int64)
        n_items = learned.shape[0]
        if idx.size and (idx.min() < 0 or idx.max() >= n_items):
            raise IndexError(f"item index out of range [0, {n_items})")
        return self._similar_items(learned, idx, N)

    def _fitted(self) -> Learned:
        learned = self._learned()
        if learned is None:
            raise RuntimeError(f"{self.name} is not fitted: call fit(user_items) first")
        return learned
