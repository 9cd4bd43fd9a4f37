import numpy as np
import pytest
import scipy.sparse as sp
from ranx import Qrels, Run, evaluate

from gamerec_assets.recsys import per_user_metrics, ranking_metrics
from gamerec_assets.recsys.metrics import catalogue_coverage


def random_case(seed: int, users: int = 40, items: int = 30, n: int = 20) -> tuple[np.ndarray, sp.csr_matrix]:
    rng = np.random.default_rng(seed)
    recs = np.stack([rng.permutation(items)[:n] for _ in range(users)])
    rel = sp.random(users, items, density=0.15, random_state=seed, format="csr")
    rel.data[:] = 1
    return recs, rel


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("k", [5, 10, 20])
def test_metrics_agree_with_ranx(seed: int, k: int) -> None:
    recs, rel = random_case(seed)
    users = np.flatnonzero(np.diff(rel.indptr) > 0)
    qrels = Qrels({f"u{u:04d}": {f"i{i:04d}": 1 for i in rel[u].indices} for u in users})
    run = Run({f"u{u:04d}": {f"i{i:04d}": float(len(recs[u]) - r) for r, i in enumerate(recs[u])} for u in users})
    ref = evaluate(
        qrels,
        run,
        [f"precision@{k}", f"recall@{k}", f"hit_rate@{k}", f"map@{k}", f"ndcg@{k}"],
        return_mean=False,
    )
    ours = per_user_metrics(recs, rel, k)
    n_rel = np.diff(rel.indptr)[users]
    np.testing.assert_allclose(ours["precision"], ref[f"precision@{k}"], atol=1e-9)
    np.testing.assert_allclose(ours["recall"], ref[f"recall@{k}"], atol=1e-9)
    np.testing.assert_allclose(ours["hit_rate"], ref[f"hit_rate@{k}"], atol=1e-9)
    np.testing.assert_allclose(ours["ndcg"], ref[f"ndcg@{k}"], atol=1e-9)
    # ranx divides AP by |relevant|; ours by min(k, |relevant|)
    np.testing.assert_allclose(ours["map"], ref[f"map@{k}"] * n_rel / np.minimum(n_rel, k), atol=1e-9)


def test_perfect_and_empty_lists() -> None:
    rel = sp.csr_matrix(np.array([[1, 1, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 1, 0, 0]], dtype=float))
    perfect = np.array([[0, 1, 2], [0, 1, 2], [2, -1, -1]])
    m = ranking_metrics(perfect, rel, 3)
    assert m["users"] == 2 and m["ndcg"] == pytest.approx(1.0) and m["map"] == pytest.approx(1.0)
    assert m["precision"] == pytest.approx((2 / 3 + 1 / 3) / 2)
    nothing = ranking_metrics(np.full((3, 3), -1), rel, 3)
    assert nothing["ndcg"] == 0 and nothing["hit_rate"] == 0
    assert catalogue_coverage(perfect, 5) == pytest.approx(0.6)
