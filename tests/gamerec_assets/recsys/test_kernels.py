"""The compiled kernels against plain numpy references: same values, same tie order, any thread count.

The references are the numpy implementations the kernels replaced (copied here), so a kernel change that alters
a result (one tie, one bit of a simulated draw) fails a test.
"""

import ast
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from gamerec_assets.recsys import kernels
from gamerec_assets.recsys.itemcf import (
    PreparedItems,
    item_blocks,
    item_similarity_block,
    item_similarity_matrix,
    merge_item_blocks,
    prepare_user_items,
    recommend_from_similarity,
)
from gamerec_assets.recsys.kernels import kernel_threads
from gamerec_assets.recsys.simulate import SimulationParams, preference_weights, simulate_interactions
from gamerec_assets.recsys.topk import dense_rows_topk, sparse_topk

# ----------------------------------------------------------------------------------------------------------------
# references: the numpy code before the kernels


def ref_rank_within_rows(indptr: np.ndarray, order: np.ndarray) -> np.ndarray:
    counts = np.diff(indptr)
    starts = np.repeat(indptr[:-1], counts)
    return np.arange(len(order)) - starts


def ref_sparse_topk(matrix: sp.csr_matrix, k: int) -> sp.csr_matrix:
    matrix = matrix.tocsr()
    matrix.sum_duplicates()
    rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    order = np.lexsort((matrix.indices, -matrix.data, rows))
    rank = ref_rank_within_rows(matrix.indptr, order)
    keep = order[rank < k]
    keep.sort()
    return sp.csr_matrix(
        (
            matrix.data[keep],
            matrix.indices[keep],
            np.concatenate([[0], np.cumsum(np.minimum(np.diff(matrix.indptr), k))]),
        ),
        shape=matrix.shape,
    )


def ref_dense_rows_topk(matrix: sp.csr_matrix, n: int, pad_id: int = -1) -> tuple[np.ndarray, np.ndarray]:
    matrix = matrix.tocsr()
    n_rows = matrix.shape[0]
    rows = np.repeat(np.arange(n_rows), np.diff(matrix.indptr))
    order = np.lexsort((matrix.indices, -matrix.data, rows))
    rank = ref_rank_within_rows(matrix.indptr, order)
    sel = order[rank < n]
    sel_rank = rank[rank < n]
    ids = np.full((n_rows, n), pad_id, dtype=np.int64)
    scores = np.zeros((n_rows, n), dtype=np.float32)
    ids[rows[sel], sel_rank] = matrix.indices[sel]
    scores[rows[sel], sel_rank] = matrix.data[sel]
    return ids, scores


def ref_item_similarity(user_items: sp.csr_matrix, similarity: str, neighbors: int) -> sp.csr_matrix:
    """The scipy implementation: full XᵀX, Jaccard transform, top-K with the item itself, drop the diagonal."""
    x = sp.csr_matrix(user_items, dtype=np.float64)
    if similarity == "cosine":
        norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=0)).ravel())
        inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
        x = (x @ sp.diags(inv)).tocsr()
        counts = norms
    else:
        x.data = np.ones_like(x.data)
        counts = np.asarray(x.sum(axis=0)).ravel()
    product = (x.T @ x).tocsr()
    if similarity == "jaccard":
        product.sort_indices()
        rows = np.repeat(np.arange(product.shape[0]), np.diff(product.indptr))
        product.data = product.data / np.maximum(counts[rows] + counts[product.indices] - product.data, 1e-12)
    full = ref_sparse_topk(product, neighbors)
    full.setdiag(0)
    full.eliminate_zeros()
    full.data = np.clip(full.data, 0.0, 1.0).astype(np.float32)
    full.sort_indices()
    return full


def ref_recommend(similarity: sp.csr_matrix, user_items: sp.csr_matrix, n: int, exclude_seen: bool = True):
    user_items = sp.csr_matrix(user_items)
    scores = (user_items @ similarity).tocsr()
    if exclude_seen:
        seen = user_items.copy()
        seen.data = np.ones_like(seen.data)
        scores = (scores - scores.multiply(seen)).tocsr()
    scores.data[scores.data < 0] = 0
    scores.eliminate_zeros()
    return ref_dense_rows_topk(scores, n)


def ref_simulate_interactions(game_ids, p_weight, params, chunk_users=20_000):
    """simulate_interactions before the kernel, verbatim: the draw the default pipeline's quality gate was set on."""
    game_ids = np.asarray(game_ids, dtype=np.int64)
    n_games = len(game_ids)
    params.validate(n_games)
    rng = np.random.default_rng(params.seed)
    base = params.alpha * np.asarray(p_weight, np.float64) + (1 - params.alpha) / n_games
    k_max = params.max_games
    users_out = []
    games_out = []
    for start in range(0, params.n_users, chunk_users):
        n = min(chunk_users, params.n_users - start)
        counts = rng.integers(1, k_max, size=n, endpoint=True)
        probs = (
            base + rng.normal(0.0, params.noise_scale, size=(n, n_games))
            if params.noise_scale
            else np.broadcast_to(base, (n, n_games)).copy()
        )
        np.clip(probs, 0.0, None, out=probs)
        empty = probs.sum(axis=1) == 0
        probs[empty] = 1.0
        with np.errstate(divide="ignore"):
            keys = np.log(rng.random((n, n_games))) / probs
        counts = np.minimum(counts, (probs > 0).sum(axis=1))
        top = (
            np.argpartition(-keys, k_max - 1, axis=1)[:, :k_max]
            if k_max < n_games
            else np.tile(np.arange(n_games), (n, 1))
        )
        order = np.argsort(-np.take_along_axis(keys, top, axis=1), axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        keep = np.arange(k_max)[None, :] < counts[:, None]
        users_out.append(np.broadcast_to(np.arange(start + 1, start + n + 1)[:, None], (n, k_max))[keep])
        games_out.append(game_ids[top[keep]])
    return np.concatenate(users_out), np.concatenate(games_out)


# ----------------------------------------------------------------------------------------------------------------


def play_matrix(users: int, items: int, density: float, seed: int, weighted: bool) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    m = sp.random(users, items, density=density, random_state=seed, format="csr", dtype=np.float32)
    m.data = (rng.random(m.nnz) + 0.1).astype(np.float32) if weighted else np.ones(m.nnz, np.float32)
    return m


def assert_same_csr(a: sp.csr_matrix, b: sp.csr_matrix) -> None:
    assert a.shape == b.shape
    np.testing.assert_array_equal(a.indptr, b.indptr)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.data, b.data)


@pytest.fixture(params=["1", "2"])
def threads(request: pytest.FixtureRequest) -> Iterator[str]:
    kernels.set_threads(int(request.param))
    yield request.param
    kernels.set_threads(None)


def test_thread_knob() -> None:
    try:
        kernels.set_threads(None)
        assert kernels.thread_count() >= 1
        every_core = kernels.thread_count()
        for wanted, expected in ((1, 1), (3, 3), (None, every_core), (-2, 1), (0, 1)):
            kernels.set_threads(wanted)
            assert kernels.thread_count() == expected
    finally:
        kernels.set_threads(None)


def test_the_setting_is_read_live_through_the_package() -> None:
    try:
        kernels.set_threads(3)
        assert kernels._threads == 3 == kernel_threads._threads  # the package reads the pool module's setting
    finally:
        kernels.set_threads(None)
    assert kernels._threads is None


def test_every_large_call_runs_on_the_one_thread_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each entry point splits a large call through kernel_threads.run_rows, and no other module starts threads."""
    pools: list[int] = []

    class CountingPool(ThreadPoolExecutor):
        def __init__(self, max_workers: int, thread_name_prefix: str) -> None:
            pools.append(max_workers)
            super().__init__(max_workers=max_workers, thread_name_prefix=thread_name_prefix)

    monkeypatch.setattr(kernel_threads, "ThreadPoolExecutor", CountingPool)
    n = kernels.PARALLEL_MIN_ROWS + 1  # rows of every call: users, items, simulated players
    x = play_matrix(n, n, 0.02, seed=3, weighted=True)
    sim = item_similarity_matrix(x, "cosine", 10)
    rng = np.random.default_rng(0)
    probs = rng.random((n, 40), dtype=np.float32)
    exponentials = rng.standard_exponential((n, 40), dtype=np.float32)
    counts = np.full(n, 5, np.int64)
    calls = {
        "item_topk_rows": lambda: item_similarity_matrix(x, "cosine", 10),
        "recommend_rows": lambda: recommend_from_similarity(sim, x, 5, True),
        "csr_rows_topn": lambda: sparse_topk(x, 5),
        "simulate_select": lambda: kernels.simulate_select(np.zeros(40), probs, -exponentials, counts.copy(), 5),
        "weighted_select": lambda: kernels.weighted_select(probs, exponentials, counts, 5),
    }
    try:
        kernels.set_threads(2)
        for name, call in calls.items():
            before = len(pools)
            call()
            assert pools[before:] == [2], name
    finally:
        kernels.set_threads(None)
    for module in Path(kernels.__file__).parent.glob("*.py"):
        imported = set()
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.split(".")[0])
        starts_threads = imported & {"concurrent", "threading", "_thread", "multiprocessing"}
        assert not starts_threads or module.name == "kernel_threads.py", module.name


def test_kernel_functions_stay_short() -> None:
    for module in Path(kernels.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.FunctionDef):
                length = node.end_lineno - node.lineno + 1  # type: ignore[operator]
                assert length <= 80, f"{module.name}:{node.name} is {length} lines"


@pytest.mark.parametrize("similarity", ["cosine", "jaccard"])
@pytest.mark.parametrize("neighbors", [1, 4, 30])
def test_weighted_fit_equals_the_scipy_reference_bit_for_bit(threads: str, similarity: str, neighbors: int) -> None:
    x = play_matrix(600, 300, 0.03, seed=neighbors, weighted=True)  # >= PARALLEL_MIN_ROWS items: threads are used
    assert_same_csr(item_similarity_matrix(x, similarity, neighbors), ref_item_similarity(x, similarity, neighbors))


@pytest.mark.parametrize("similarity", ["cosine", "jaccard"])
def test_binary_fit_counts_co_occurrences_and_breaks_exact_ties_to_the_lower_index(similarity: str) -> None:
    # Items 0..3 are played by the same users: exact ties, which the counting kernel keeps exact.
    x = play_matrix(400, 40, 0.1, seed=3, weighted=False).tolil()
    for item in (1, 2, 3):
        x[:, item] = x[:, 0]
    x = x.tocsr()
    sim = item_similarity_matrix(x, similarity, neighbors=3)
    assert sim[0].indices.tolist() == [1, 2]  # 0 itself, then 1 and 2 (ties with 3 go to the lower index)
    np.testing.assert_allclose(sim[0].data, [1.0, 1.0], rtol=1e-6)
    dense = (x.toarray() > 0).astype(np.float64)
    inter = dense.T @ dense
    counts = dense.sum(axis=0)
    if similarity == "cosine":
        expected = inter / np.sqrt(np.outer(counts, counts))
    else:
        expected = inter / (counts[:, None] + counts[None, :] - inter)
    full = item_similarity_matrix(x, similarity, neighbors=40).toarray()
    np.fill_diagonal(expected, 0)
    np.testing.assert_allclose(full, expected, rtol=1e-6, atol=1e-7)


def test_any_block_split_gives_the_same_matrix(threads: str) -> None:
    x = play_matrix(700, 310, 0.04, seed=8, weighted=False)
    single = item_similarity_matrix(x, "cosine", 20)
    for size in (1, 7, 100, 309, 310, 10_000):
        assert_same_csr(item_similarity_matrix(x, "cosine", 20, block_size=size), single)
    prepared = PreparedItems.from_arrays(prepare_user_items(x, "cosine").to_arrays())  # what a block worker sees
    blocks = [item_similarity_block(prepared, a, b, 20) for a, b in item_blocks(prepared.n_items, 5)]
    assert_same_csr(merge_item_blocks(blocks, prepared.n_items), single)
    assert item_blocks(3, 5) == [(0, 0), (0, 1), (1, 1), (1, 2), (2, 3)]


def test_fit_rejects_bad_input() -> None:
    x = play_matrix(20, 5, 0.5, seed=1, weighted=True)
    with pytest.raises(ValueError, match="non-negative"):
        item_similarity_matrix(-x)
    with pytest.raises(ValueError, match="neighbors"):
        item_similarity_matrix(x, neighbors=0)
    with pytest.raises(ValueError, match="block"):
        item_similarity_block(prepare_user_items(x), 3, 9)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("exclude_seen", [True, False])
def test_recommend_equals_the_scipy_reference(threads: str, dtype: type, exclude_seen: bool) -> None:
    x = play_matrix(900, 200, 0.03, seed=4, weighted=True).astype(dtype)
    sim = item_similarity_matrix(x, "cosine", 25)
    for n in (1, 10, 300):
        ids, scores = recommend_from_similarity(sim, x, n, exclude_seen)
        ref_ids, ref_scores = ref_recommend(sim, x, n, exclude_seen)
        np.testing.assert_array_equal(ids, ref_ids)
        np.testing.assert_array_equal(scores, ref_scores)
        assert scores.dtype == np.float32 and ids.dtype == np.int64


def test_recommend_with_signed_weights_ranks_only_positive_scores(threads: str) -> None:
    x = play_matrix(500, 120, 0.05, seed=6, weighted=False)
    sim = sp.random(120, 120, density=0.3, random_state=7, format="csr", dtype=np.float32)
    sim.data -= 0.4  # EASE-like: negative weights
    for n in (3, 50):
        ids, scores = recommend_from_similarity(sim, x, n)
        ref_ids, ref_scores = ref_recommend(sim, x, n)
        np.testing.assert_array_equal(ids, ref_ids)
        np.testing.assert_array_equal(scores, ref_scores)
        assert (scores[ids >= 0] > 0).all() and (scores[ids < 0] == 0).all()


def test_row_topk_equals_the_lexsort_reference(threads: str) -> None:
    m = sp.random(700, 60, density=0.2, random_state=5, format="csr")
    m.data = np.round(m.data * 4) - 1  # many ties, zeros and negative values
    for n in (1, 3, 10, 100):
        ids, values = dense_rows_topk(m, n)
        ref_ids, ref_values = ref_dense_rows_topk(m, n)
        np.testing.assert_array_equal(ids, ref_ids)
        np.testing.assert_array_equal(values, ref_values)
        assert_same_csr(sparse_topk(m, n), ref_sparse_topk(m, n))
    ids, _ = dense_rows_topk(sp.csr_matrix((3, 4)), 2, pad_id=-7)
    assert (ids == -7).all()


CATALOGUE = np.random.default_rng(0)
WEIGHTS = {n: preference_weights(CATALOGUE.uniform(0, 5, n), CATALOGUE.uniform(0, 1, n)) for n in (5, 60, 400)}


@pytest.mark.parametrize(
    ("n_games", "params", "chunk"),
    [
        (400, SimulationParams(n_users=21_000), 20_000),  # the pipeline's defaults (seed 42), two chunks
        (60, SimulationParams(n_users=3_000, max_games=60, alpha=0.9, noise_scale=2.0, seed=3), 20_000),
        (60, SimulationParams(n_users=3_000, max_games=3, alpha=1.0, noise_scale=0.0, seed=1), 777),
        (5, SimulationParams(n_users=2_000, max_games=5, alpha=0.2, noise_scale=0.5, seed=9), 300),
    ],
)
def test_simulation_is_bit_identical_to_the_reference(threads: str, n_games: int, params, chunk: int) -> None:
    ids = np.arange(n_games) + 10
    ours = simulate_interactions(ids, WEIGHTS[n_games], params, chunk)
    ref = ref_simulate_interactions(ids, WEIGHTS[n_games], params, chunk)
    np.testing.assert_array_equal(ours[0], ref[0])
    np.testing.assert_array_equal(ours[1], ref[1])


def test_simulation_with_zero_probability_games_is_identical() -> None:
    weights = np.zeros(10)
    weights[:3] = [0.5, 0.3, 0.2]
    params = SimulationParams(n_users=3_000, max_games=5, alpha=1.0, noise_scale=0.0)
    ours = simulate_interactions(np.arange(10), weights, params)
    ref = ref_simulate_interactions(np.arange(10), weights, params)
    np.testing.assert_array_equal(ours[0], ref[0])
    np.testing.assert_array_equal(ours[1], ref[1])
    assert set(np.unique(ours[1])) == {0, 1, 2}


# ----------------------------------------------------------------------------------------------------------------
# one request: recommend_history


def ref_recommend_history(sim: sp.csr_matrix, history: list[int], k: int, n_because: int):
    """Dense brute force: sums in history order in float64, positive unseen scores, value desc / index asc."""
    dense = sim.toarray().astype(np.float64)
    score = np.zeros(sim.shape[1])
    for i in history:  # the order the kernel sums in
        score += dense[i]
    touched = np.zeros(sim.shape[1], bool)
    for i in history:
        touched[sim.indices[sim.indptr[i] : sim.indptr[i + 1]]] = True
    cand = [j for j in range(sim.shape[1]) if touched[j] and j not in set(history) and score[j] > 0]
    cand.sort(key=lambda j: (-score[j], j))
    top = cand[:k]
    because = []
    for j in top:
        contrib = sorted((-dense[i, j], i) for i in history if dense[i, j] > 0)
        because.append([i for _, i in contrib[:n_because]])
    return top, [score[j] for j in top], because


@pytest.mark.parametrize("method", [None, "dense", "sorted"])
@pytest.mark.parametrize("signed", [False, True])
def test_recommend_history_equals_the_brute_force_reference(signed: bool, method: str | None) -> None:
    rng = np.random.default_rng(11)
    sim = sp.random(150, 150, density=0.08, random_state=12, format="csr", dtype=np.float32)
    sim.data = np.round(sim.data * 4).astype(np.float32) / 4  # many exact ties in values and in sums
    if signed:
        sim.data -= 0.4
    arrays = (sim.indptr, sim.indices, sim.data)
    for trial in range(300):
        size = int(rng.choice([1, 2, 5, 30, 149]))
        history = sorted(rng.choice(150, size, replace=False).tolist())
        k = int(rng.choice([1, 3, 10, 150]))
        n_because = int(rng.choice([0, 1, 3]))
        ids, scores, because = kernels.recommend_history(arrays, np.asarray(history, np.int64), k, n_because, method)
        top, ref_scores, ref_because = ref_recommend_history(sim, history, k, n_because)
        assert ids.tolist() == top, trial
        assert scores.tolist() == ref_scores, trial  # the same summation order: bit-identical
        assert [[i for i in row if i >= 0] for row in because.tolist()] == ref_because, trial
        assert because.shape == (len(top), n_because)


def test_recommend_history_ranks_as_the_batch_kernel() -> None:
    """The request path (one history) and the batch path (recommend_rows, float64 sums) give the same lists."""
    x = play_matrix(300, 120, 0.05, seed=8, weighted=False)
    sim = item_similarity_matrix(x, "cosine", 10).astype(np.float32)
    batch_ids, _ = kernels.recommend_rows(
        (x.indptr, x.indices, x.data), (sim.indptr, sim.indices, sim.data), 120, 20, True, np.dtype(np.float64)
    )
    for u in range(x.shape[0]):
        history = np.sort(x.indices[x.indptr[u] : x.indptr[u + 1]]).astype(np.int64)
        ids, _, _ = kernels.recommend_history((sim.indptr, sim.indices, sim.data), history, 20, 3)
        assert ids.tolist() == [j for j in batch_ids[u].tolist() if j >= 0], u


def test_recommend_history_of_nothing_or_isolated_items_is_empty() -> None:
    sim = sp.csr_matrix((np.ones(2, np.float32), ([0, 1], [1, 0])), shape=(4, 4))
    arrays = (sim.indptr, sim.indices, sim.data)
    for method in (None, "dense", "sorted"):
        for history in ([], [2, 3], [0, 1]):  # nothing, items without neighbours, neighbours all seen
            ids, scores, because = kernels.recommend_history(arrays, np.asarray(history, np.int64), 5, 3, method)
            assert ids.size == scores.size == 0 and because.shape == (0, 3)
