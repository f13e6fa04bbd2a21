"""Nearest neighbours and memorisation diagnostics against brute-force NumPy and scipy's cKDTree."""

from __future__ import annotations

import numpy as np
import pytest

import lindiff
from lindiff import _core, memorisation, nearest_neighbours


def brute(Q: np.ndarray, R: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Squared distances from the differences; order by (distance, index)."""
    d2 = ((Q[:, None, :] - R[None, :, :]) ** 2).sum(-1)
    idx = np.argsort(d2, axis=1, kind="stable")[:, :k]  # stable: equal distances keep index order
    return np.sqrt(np.take_along_axis(d2, idx, 1)), idx


@pytest.mark.parametrize("k", [1, 2, 5])
def test_matches_brute_force(rng: np.random.Generator, k: int) -> None:
    Q = rng.standard_normal((300, 17))
    R = rng.standard_normal((900, 17)) * 1.3 + 0.2
    dist, idx = nearest_neighbours(Q, R, k, workers=2)
    rd, ri = brute(Q, R, k)
    np.testing.assert_array_equal(idx, ri)
    np.testing.assert_allclose(dist, rd, rtol=1e-13, atol=0)


def test_several_chunks_and_ckdtree(rng: np.random.Generator) -> None:
    from scipy.spatial import cKDTree

    # More than one query chunk (2048) and reference chunk (2048), with ragged ends.
    Q = rng.standard_normal((2100, 4))
    R = rng.standard_normal((4500, 4))
    dist, idx = nearest_neighbours(Q, R, 3)
    td, ti = cKDTree(R).query(Q, k=3)
    np.testing.assert_allclose(dist, td, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(idx, ti)  # continuous data: no ties
    rd, ri = brute(Q[:200], R, 3)
    np.testing.assert_array_equal(idx[:200], ri)


def test_ties_ordered_by_index(rng: np.random.Generator) -> None:
    from scipy.spatial import cKDTree

    # Small integers in d = 3: exact ties everywhere (and exact arithmetic in both methods).
    R = rng.integers(0, 3, size=(400, 3)).astype(float)
    Q = rng.integers(0, 3, size=(250, 3)).astype(float)
    dist, idx = nearest_neighbours(Q, R, 6, workers=3)
    rd, ri = brute(Q, R, 6)
    np.testing.assert_array_equal(dist, rd)
    np.testing.assert_array_equal(idx, ri)  # ties broken by the smaller index
    td, _ = cKDTree(R).query(Q, k=6)  # the tree orders ties arbitrarily: compare distances only
    np.testing.assert_allclose(dist, td, rtol=0, atol=1e-12)


def test_duplicated_reference_points_take_the_exact_fallback(rng: np.random.Generator) -> None:
    base = rng.standard_normal((50, 8)) + 100.0
    R = np.concatenate([base, np.repeat(base[:1], 20, axis=0), base + 1e-3])  # 21 copies of row 0
    Q = base[:1] + 1e-7 * rng.standard_normal((5, 8))
    dist = np.empty((5, 3))
    idx = np.empty((5, 3), dtype=np.int64)
    fallbacks = _core.nearest_neighbours(np.ascontiguousarray(Q), R, 3, 1, dist, idx)
    rd, ri = brute(Q, R, 3)
    np.testing.assert_array_equal(idx, ri)
    np.testing.assert_allclose(dist, rd, rtol=1e-12)
    assert fallbacks == 5  # 21 tied points cannot be certified from k + 4 candidates


def test_near_duplicates_get_accurate_small_distances(rng: np.random.Generator) -> None:
    X = rng.standard_normal((400, 50)) * 3.0 + 50.0  # ‖x‖ ~ 350: the expansion cancels badly
    delta = rng.standard_normal((30, 50))
    delta *= (1e-9 / np.linalg.norm(delta, axis=1))[:, None]
    Q = X[:30] + delta
    true = np.linalg.norm(Q - X[:30], axis=1)  # ~1e-9 up to rounding of Q itself
    dist, idx = nearest_neighbours(Q, X, 2)
    np.testing.assert_array_equal(idx[:, 0], np.arange(30))
    np.testing.assert_allclose(dist[:, 0], true, rtol=1e-6)
    # The naive expansion cannot resolve these distances: the test is meaningful.
    naive = np.sqrt(np.maximum((Q * Q).sum(1) + (X[:30] ** 2).sum(1) - 2 * (Q * X[:30]).sum(1), 0))
    assert np.max(np.abs(naive - true) / true) > 10


@pytest.mark.parametrize("provider", ["openblas", "eigen"])
def test_workers_and_providers_identical(rng: np.random.Generator, request: pytest.FixtureRequest,
                                         provider: str) -> None:
    request.getfixturevalue(f"{provider}_provider")
    Q = rng.standard_normal((700, 30))
    R = rng.standard_normal((2500, 30))
    outs = [nearest_neighbours(Q, R, 2, workers=w) for w in (1, 2, 7)]
    for d, i in outs[1:]:
        np.testing.assert_array_equal(d, outs[0][0])
        np.testing.assert_array_equal(i, outs[0][1])
    rd, ri = brute(Q[:100], R, 2)
    np.testing.assert_array_equal(outs[0][1][:100], ri)


def test_bad_input() -> None:
    R = np.zeros((5, 3))
    with pytest.raises(ValueError, match="d = 4"):
        nearest_neighbours(np.zeros((2, 4)), R)
    with pytest.raises(ValueError, match="0 rows"):
        nearest_neighbours(np.zeros((2, 3)), np.zeros((0, 3)))
    with pytest.raises(ValueError, match="NaN"):
        nearest_neighbours(np.array([[0.0, np.nan, 0.0]]), R)
    with pytest.raises(ValueError, match="NaN"):
        nearest_neighbours(np.zeros((1, 3)), np.full((5, 3), np.inf))
    with pytest.raises(ValueError, match="k must be >= 1"):
        nearest_neighbours(np.zeros((1, 3)), R, k=0)
    with pytest.raises(ValueError, match="exceeds"):
        nearest_neighbours(np.zeros((1, 3)), R, k=6)
    with pytest.raises(ValueError, match="2-D"):
        nearest_neighbours(np.zeros(3), R)
    with pytest.raises(ValueError, match="workers"):
        nearest_neighbours(np.zeros((1, 3)), R, workers=0)
    for thr in (0.0, 1.0, -0.1, 1.5, np.nan):
        with pytest.raises(ValueError, match="threshold"):
            memorisation(np.zeros((1, 3)), R, threshold=thr)
    with pytest.raises(ValueError, match="held_out"):
        memorisation(np.zeros((1, 3)), R, held_out=np.zeros((4, 2)))
    with pytest.raises(ValueError, match="0 rows"):
        memorisation(np.zeros((0, 3)), R)
    d, i = nearest_neighbours(np.zeros((0, 3)), R, 2)  # no queries: empty answers
    assert d.shape == (0, 2) and i.shape == (0, 2)


# ---------------------------------------------------------------------- memorisation
def test_memorisation_against_brute_force(rng: np.random.Generator) -> None:
    X = rng.standard_normal((60, 5))
    S = np.concatenate([X[:10] + 1e-3 * rng.standard_normal((10, 5)), rng.standard_normal((40, 5))])
    H = rng.standard_normal((30, 5))
    m = memorisation(S, X, held_out=H, threshold=0.3)
    rd, ri = brute(S, X, 2)
    np.testing.assert_allclose(m.d1, rd[:, 0], rtol=1e-12)
    np.testing.assert_allclose(m.d2, rd[:, 1], rtol=1e-12)
    np.testing.assert_array_equal(m.nearest, ri[:, 0])
    ratio = rd[:, 0] / rd[:, 1]
    np.testing.assert_allclose(m.ratio, ratio, rtol=1e-12)
    np.testing.assert_array_equal(m.memorised, ratio < 0.3)
    assert m.memorised[:10].all()
    assert m.fraction == pytest.approx(np.mean(ratio < 0.3))
    hd, hi = brute(S, H, 1)
    np.testing.assert_allclose(m.d_held_out, hd[:, 0], rtol=1e-12)
    np.testing.assert_array_equal(m.nearest_held_out, hi[:, 0])
    assert m.closer_to_train == pytest.approx(np.mean(rd[:, 0] < hd[:, 0]))
    assert set(m.summary()) >= {"fraction", "median_d1", "closer_to_train"}


def test_memorisation_edge_cases(rng: np.random.Generator) -> None:
    one = rng.standard_normal((1, 4))
    S = rng.standard_normal((7, 4))
    m = memorisation(S, one)
    assert np.isinf(m.d2).all() and (m.ratio == 0).all() and m.fraction == 1.0
    np.testing.assert_allclose(m.d1, np.linalg.norm(S - one, axis=1), rtol=1e-13)
    # Exact copies of a duplicated training point: d1 = d2 = 0, ratio 0 (memorised).
    X = np.concatenate([one, one, rng.standard_normal((5, 4))])
    m = memorisation(np.repeat(one, 3, axis=0), X)
    assert (m.d1 == 0).all() and (m.d2 == 0).all() and (m.ratio == 0).all() and m.fraction == 1.0
    assert m.closer_to_train is None


def test_linear_model_memorises_only_for_tiny_n(rng: np.random.Generator) -> None:
    d = 6
    target = lindiff.GaussianTarget.power_law(d, 1.0)
    sched = lindiff.Schedule.paper(T=200)
    X1 = target.sample(1, rng=rng)
    model = lindiff.LinearDiffusion(lindiff.EmpiricalStats(X1), sched)  # N = 1, γ = 0
    S = model.sample(200, rng=1, final_noise=False)
    m = memorisation(S, X1)
    assert m.fraction == 1.0
    np.testing.assert_allclose(S, np.repeat(X1, 200, axis=0), atol=1e-12)  # every sample is x_1
    X = target.sample(4000, rng=rng)  # N ≫ d: samples are new draws from ≈ N(μ, Σ)
    model = lindiff.LinearDiffusion(lindiff.EmpiricalStats(X), lindiff.Schedule.paper())
    m = memorisation(model.sample(500, rng=2), X)
    assert m.fraction < 0.02
