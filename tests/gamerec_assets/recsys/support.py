"""Shared helpers for the recsys tests: random weighted matrices and the comparison with implicit."""

from typing import Any

import numpy as np
import scipy.sparse as sp


def random_matrix(users: int = 300, items: int = 80, density: float = 0.08, seed: int = 1) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    m = sp.random(users, items, density=density, random_state=seed, format="csr")
    m.data = rng.random(m.nnz) + 0.1  # continuous weights: no score ties, so comparisons are exact
    return m


def assert_recommends_like_implicit(ours: Any, ref: Any, x: sp.csr_matrix, n: int = 10) -> None:
    """Fit both on x; every real recommendation (not padding) must equal implicit's, ids and scores."""
    rows = np.arange(x.shape[0])
    ref.fit(x, show_progress=False)
    ref_ids, ref_scores = ref.recommend(rows, x, N=n)
    ids, scores = ours.fit(x).recommend(x, N=n)
    real = ids >= 0
    assert real.mean() > 0.9
    np.testing.assert_array_equal(ids[real], ref_ids[real])
    np.testing.assert_allclose(scores[real], ref_scores[real], rtol=1e-5)
    assert np.all(ref_scores[~real] <= 0)  # where we pad, implicit has no candidate left either
