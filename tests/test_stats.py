"""EmpiricalStats: moments, streaming, eigendecomposition, workers and bad input.

Every numerical result is compared with an independent reference: NumPy (np.mean, np.cov,
np.linalg.eigvalsh), extended precision (np.longdouble) or exact rational arithmetic
(fractions.Fraction). The library's own code paths are never used as the reference, except where a
test is explicitly about two of its paths agreeing (chunked vs one-shot, dual vs primal, workers).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from lindiff import EmpiricalStats

# ---------------------------------------------------------------------------------------- helpers


def np_cov(X, ddof: int = 0) -> np.ndarray:
    """Independent reference: NumPy's covariance of the rows of X (always d×d)."""
    X = np.asarray(X, dtype=np.float64)
    d = X.shape[1]
    return np.atleast_2d(np.cov(X, rowvar=False, ddof=ddof)).reshape(d, d)


def rel_err(a, b) -> float:
    """max|a − b| / max|b| (norm-wise relative error; safe for near-zero entries of b)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    scale = np.abs(b).max()
    return float(np.abs(a - b).max() / (scale if scale > 0 else 1.0))


def anisotropic(rng, n: int, d: int, offset: float = 0.0) -> np.ndarray:
    """Gaussian data with distinct, well-separated population variances and a generic rotation."""
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    scales = np.linspace(3.0, 0.5, d)
    return offset + (rng.standard_normal((n, d)) * scales) @ q.T + rng.standard_normal(d)


# ---------------------------------------------------------------- mean and covariance vs NumPy


def _layouts(base: np.ndarray) -> dict[str, np.ndarray]:
    ints = np.round(base * 10).astype(np.int64)
    return {
        "C": np.ascontiguousarray(base),
        "F": np.asfortranarray(base),
        "strided": base[::2, ::3],
        "strided-F": np.asfortranarray(base)[::2, ::3],
        "reversed-rows": base[::-1],
        "reversed-cols": base[:, ::-1],
        "column-slice": np.hstack([base, base])[:, : base.shape[1]],  # row stride > d
        "float32": base.astype(np.float32),
        "int64": ints,
        "int8": np.clip(ints, -128, 127).astype(np.int8),
        "big-endian": base.astype(">f8"),
        "list": base.tolist(),
    }


LAYOUTS = list(_layouts(np.zeros((4, 4))).keys())


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", [(15, 12), (300, 12)], ids=["thin-factor", "thick-dense"])
@pytest.mark.parametrize("ddof", [0, 1])
def test_mean_cov_match_numpy_for_every_layout_and_dtype(rng, layout, shape, ddof):
    base = rng.standard_normal(shape) * np.linspace(0.5, 2.0, shape[1]) + 3.0
    X = _layouts(base)[layout]
    Xref = np.array(X, dtype=np.float64)  # what NumPy sees: the same values, converted once
    X_before = np.array(X, copy=True)
    s = EmpiricalStats(X, ddof=ddof)
    assert s.n == Xref.shape[0] and s.d == Xref.shape[1] and s.ddof == ddof
    np.testing.assert_allclose(s.mean, np.mean(Xref, axis=0), rtol=1e-14, atol=1e-14)
    assert rel_err(s.cov, np_cov(Xref, ddof)) < 1e-13
    assert rel_err(s.scatter, np_cov(Xref, 0) * Xref.shape[0]) < 1e-13
    assert s.cov.shape == (Xref.shape[1],) * 2
    assert np.array_equal(s.cov, s.cov.T)
    # Inputs are never mutated.
    assert np.array_equal(np.array(X), X_before)


@pytest.mark.parametrize("axis", ["rows", "cols"])
def test_zero_stride_broadcast_input(axis):
    """np.broadcast_to views have stride 0; they are valid inputs and must be read correctly."""
    if axis == "rows":
        row = np.arange(5.0)
        X = np.broadcast_to(row, (7, 5))  # every row the same: mean = row, cov = 0
    else:
        X = np.broadcast_to(np.arange(7.0)[:, None], (7, 5))  # every column the same
    assert 0 in X.strides
    Xref = np.array(X)
    s = EmpiricalStats(X)
    np.testing.assert_allclose(s.mean, Xref.mean(axis=0), rtol=0, atol=1e-14)
    np.testing.assert_allclose(s.cov, np_cov(Xref), rtol=0, atol=1e-12)


def test_single_feature_and_single_row():
    x = np.array([[1.0], [2.0], [4.0], [7.0]])
    s = EmpiricalStats(x, ddof=1)
    assert s.cov.shape == (1, 1)
    np.testing.assert_allclose(s.cov[0, 0], np.var(x[:, 0], ddof=1), rtol=1e-15)
    one = EmpiricalStats(np.array([[1.0, -2.0, 3.0]]))  # N = 1, ddof = 0: a point mass
    np.testing.assert_array_equal(one.mean, [1.0, -2.0, 3.0])
    np.testing.assert_array_equal(one.cov, np.zeros((3, 3)))


def test_from_moments_round_trip(rng):
    d = 5
    A = rng.standard_normal((d, d))
    cov = A @ A.T
    mu = rng.standard_normal(d)
    for ddof in (0, 1):
        s = EmpiricalStats.from_moments(40, mu, cov, ddof=ddof)
        assert s.n == 40
        np.testing.assert_array_equal(s.mean, mu)
        np.testing.assert_allclose(s.cov, cov, rtol=1e-15, atol=0)
        np.testing.assert_allclose(s.scatter, cov * (40 - ddof), rtol=1e-15, atol=0)
        np.testing.assert_allclose(s.eigvals, np.linalg.eigvalsh(cov)[::-1], rtol=1e-12)


# ----------------------------------------------------------- large offsets: stability of the scatter


@pytest.fixture(scope="module")
def offset_data():
    """N = 2000, d = 20, mean 1e6, unit variance, with an extended-precision two-pass reference."""
    if np.finfo(np.longdouble).eps > 1e-18:
        pytest.skip("needs an extended-precision np.longdouble")
    rng = np.random.default_rng(7)
    X = 1e6 + rng.standard_normal((2000, 20))
    Xl = X.astype(np.longdouble)
    m = Xl.sum(axis=0) / Xl.shape[0]
    C = Xl - m
    S = C.T @ C / Xl.shape[0]
    return X, m.astype(np.float64), S.astype(np.float64)


def test_large_offset_covariance_vs_extended_precision(offset_data):
    X, m_ref, S_ref = offset_data
    N = X.shape[0]
    s = EmpiricalStats(X)
    tol = 1e-10
    assert rel_err(s.cov, S_ref) < tol
    np.testing.assert_allclose(s.mean, m_ref, rtol=1e-14, atol=0)

    # The textbook one-pass formula Σxxᵀ/N − μμᵀ, in the same float64, is far outside that tolerance:
    # this test therefore distinguishes a stable algorithm from a naive one.
    mu = X.mean(axis=0)
    naive = X.T @ X / N - np.outer(mu, mu)
    assert rel_err(naive, S_ref) > 1e3 * tol


def test_large_offset_exact_rational_reference():
    """A small case checked against exact rational arithmetic (platform independent)."""
    rng = np.random.default_rng(11)
    N, d = 6, 3
    X = 1e8 + rng.standard_normal((N, d))
    F = [[Fraction(float(v)) for v in row] for row in X]
    mean = [sum(F[i][j] for i in range(N)) / N for j in range(d)]
    exact = np.array(
        [[float(sum((F[i][a] - mean[a]) * (F[i][b] - mean[b]) for i in range(N)) / N)
          for b in range(d)] for a in range(d)]
    )
    s = EmpiricalStats(X)
    assert rel_err(s.cov, exact) < 1e-12
    np.testing.assert_allclose(s.mean, [float(m) for m in mean], rtol=1e-15, atol=0)
    mu = X.mean(axis=0)
    naive = X.T @ X / N - np.outer(mu, mu)
    assert rel_err(naive, exact) > 1e-3  # catastrophic cancellation: the test can fail


@pytest.mark.parametrize("how", ["partial_fit", "merge", "prefixes"])
def test_streamed_large_offset_equals_one_shot(offset_data, how):
    """partial_fit's docstring: 'Chunked input equals one-shot input to rounding'. One shot is
    accurate to ~1e-16 on these data; the streamed statistics must stay within ~1e-12."""
    X, m_ref, S_ref = offset_data
    cuts = [1, 8, 45, 400, 401, 1500]
    if how == "partial_fit":
        s = EmpiricalStats()
        for part in np.split(X, cuts):
            s.partial_fit(part)
    elif how == "merge":
        s = EmpiricalStats(X[:700]).merge(EmpiricalStats(X[700:]))
    else:
        s = EmpiricalStats.prefixes(X, cuts + [X.shape[0]])[-1]
    one_shot = EmpiricalStats(X)
    assert rel_err(one_shot.cov, S_ref) < 1e-14
    assert rel_err(s.cov, one_shot.cov) < 1e-12
    assert rel_err(s.cov, S_ref) < 1e-12
    np.testing.assert_allclose(s.mean, m_ref, rtol=1e-14, atol=0)


# ------------------------------------------------------------------------------------- streaming


def _stream(X, sizes, ddof=0):
    s = EmpiricalStats(ddof=ddof)
    parts = np.split(X, np.cumsum(sizes)[:-1])
    assert sum(p.shape[0] for p in parts) == X.shape[0]
    for p in parts:
        out = s.partial_fit(p)
        assert out is s
    return s


@pytest.mark.parametrize(
    "sizes",
    [
        [1, 2, 17, 3, 100, 1, 76],  # uneven
        [1] * 200,  # one row at a time
        [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4, 6, 2, 6, 4, 3, 3, 8, 3,
         2, 7, 9],  # many small chunks whose running total crosses 2d = 24 rows (factor → dense)
        [200],
    ],
    ids=["uneven", "single-rows", "many-small", "one-chunk"],
)
@pytest.mark.parametrize("ddof", [0, 1])
def test_partial_fit_equals_one_shot(rng, sizes, ddof):
    d = 12
    n = sum(sizes)
    X = anisotropic(rng, n, d, offset=50.0)
    s = _stream(X, sizes, ddof)
    ref = EmpiricalStats(X, ddof=ddof)
    assert s.n == n
    assert rel_err(s.mean, ref.mean) < 1e-12
    assert rel_err(s.cov, ref.cov) < 1e-12
    # and both against NumPy
    assert rel_err(s.cov, np_cov(X, ddof)) < 1e-12
    np.testing.assert_allclose(s.mean, X.mean(axis=0), rtol=1e-13)
    np.testing.assert_allclose(s.eigvals, np.linalg.eigvalsh(np_cov(X, ddof))[::-1],
                               rtol=0, atol=1e-11 * s.eigvals[0])


def test_streaming_crosses_factor_to_dense_threshold(rng):
    d = 10
    X = anisotropic(rng, 60, d)
    s = EmpiricalStats()
    held = []
    for i in range(0, 60, 3):
        s.partial_fit(X[i : i + 3])
        held.append(s.holds_factor)
        assert rel_err(s.cov, np_cov(X[: i + 3])) < 1e-12
    assert held[0] and not held[-1], "the stream must start thin (factor) and end dense"


def test_merge_equals_concatenation(rng):
    d = 8
    for na, nb in [(3, 4), (5, 30), (30, 2), (40, 50), (1, 1)]:
        A = anisotropic(rng, na, d, offset=-20.0)
        B = anisotropic(rng, nb, d, offset=35.0)  # different means exercise Chan's correction
        a, b = EmpiricalStats(A), EmpiricalStats(B)
        a_cov, b_cov = a.cov.copy(), b.cov.copy()
        m = a.merge(b)
        both = np.vstack([A, B])
        assert m.n == na + nb
        np.testing.assert_allclose(m.mean, both.mean(axis=0), rtol=1e-13, atol=1e-13)
        assert rel_err(m.cov, np_cov(both)) < 1e-12
        # merging creates a new object and leaves both operands as they were
        assert m is not a and m is not b
        assert a.n == na and b.n == nb
        np.testing.assert_array_equal(a.cov, a_cov)
        np.testing.assert_array_equal(b.cov, b_cov)
    empty = EmpiricalStats()
    s = EmpiricalStats(A)
    assert rel_err(empty.merge(s).cov, np_cov(A)) == 0
    assert rel_err(s.merge(empty).cov, np_cov(A)) < 1e-15


@pytest.mark.parametrize("ddof", [0, 1])
def test_prefixes_equal_stats_of_each_prefix(rng, ddof):
    d = 7
    X = anisotropic(rng, 100, d, offset=1e3)
    ns = [2, 3, 7, 14, 15, 40, 99, 100]  # across the factor → dense threshold 2d = 14
    out = EmpiricalStats.prefixes(X, ns, ddof=ddof)
    assert [s.n for s in out] == ns
    for k, s in zip(ns, out):
        np.testing.assert_allclose(s.mean, X[:k].mean(axis=0), rtol=1e-13)
        assert rel_err(s.cov, np_cov(X[:k], ddof)) < 1e-12
    # numpy integer entries are fine
    assert EmpiricalStats.prefixes(X, np.array([5, 9]))[1].n == 9


def test_prefixes_of_one_row_with_ddof0(rng):
    X = rng.standard_normal((5, 3))
    first = EmpiricalStats.prefixes(X, [1, 5])[0]
    np.testing.assert_array_equal(first.mean, X[0])
    np.testing.assert_array_equal(first.cov, np.zeros((3, 3)))


def test_mismatched_chunk_width_names_the_dimension(rng):
    s = EmpiricalStats(rng.standard_normal((4, 5)))
    with pytest.raises(ValueError, match=r"3 features.*d = 5"):
        s.partial_fit(rng.standard_normal((4, 3)))
    assert s.n == 4 and s.d == 5  # unchanged by the failed call
    with pytest.raises(ValueError, match=r"dimension 5 and 3"):
        s.merge(EmpiricalStats(rng.standard_normal((4, 3))))


def test_failed_partial_fit_leaves_statistics_unchanged(rng):
    X = rng.standard_normal((10, 4))
    s = EmpiricalStats(X)
    bad = rng.standard_normal((3, 4))
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        s.partial_fit(bad)
    assert s.n == 10
    assert rel_err(s.cov, np_cov(X)) < 1e-14


def test_merge_rejects_different_ddof_and_non_stats(rng):
    X = rng.standard_normal((6, 3))
    with pytest.raises(ValueError, match="different ddof"):
        EmpiricalStats(X, ddof=0).merge(EmpiricalStats(X, ddof=1))
    with pytest.raises(TypeError, match="EmpiricalStats"):
        EmpiricalStats(X).merge(X)


# ------------------------------------------------------------------------------ eigendecomposition


def _check_spectrum(s: EmpiricalStats, X: np.ndarray, ddof: int) -> None:
    """eigvals / eigvecs of s against NumPy, for data X."""
    N, d = X.shape
    C = np_cov(X, ddof)
    lam, V = s.eigvals, s.eigvecs
    top = max(lam[0], 1e-300)
    assert lam.shape == (d,) and V.shape == (d, d)
    assert np.all(np.diff(lam) <= 0), "eigenvalues must be descending"
    assert np.all(lam >= 0)
    np.testing.assert_allclose(lam, np.linalg.eigvalsh(C)[::-1], rtol=0, atol=1e-12 * top)
    np.testing.assert_allclose(V.T @ V, np.eye(d), rtol=0, atol=1e-12)
    np.testing.assert_allclose(V.T @ C @ V, np.diag(lam), rtol=0, atol=1e-12 * top)
    r = min(d, N - 1)
    assert np.all(lam[r:] == 0.0), "eigenvalues beyond rank N−1 must be exactly 0"


EIG_CASES = [(N, 12, ddof) for N in (200, 30, 12, 5, 2, 1) for ddof in (0, 1)
             if N > ddof]  # N = 1 with ddof = 1 has no covariance: see the bad-input section


@pytest.mark.parametrize("N,d,ddof", EIG_CASES, ids=[f"N{n}-d{d}-ddof{k}" for n, d, k in EIG_CASES])
@pytest.mark.parametrize("route", ["auto", "primal", "dual"])
def test_eigendecomposition_matches_numpy(rng, N, d, ddof, route):
    X = anisotropic(rng, N, d, offset=4.0)
    s = EmpiricalStats(X, ddof=ddof)
    if route == "dual" and not s.holds_factor:
        with pytest.raises(ValueError, match="dual route needs the centred data"):
            s.eigh("dual")
        return
    assert s.eigh(route) is s
    _check_spectrum(s, X, ddof)
    vals, vecs = s.range_basis
    r = vals.shape[0]
    assert r <= s.rank_bound == min(d, N - 1)
    np.testing.assert_array_equal(vals, s.eigvals[:r])
    np.testing.assert_allclose(vecs, s.eigvecs[:, :r], rtol=0, atol=0)


DUAL_D = 40
DUAL_CASES = [(1, 0), (2, 0), (DUAL_D // 4, 0), (DUAL_D - 1, 0), (DUAL_D, 0), (DUAL_D + 1, 0),
              (2 * DUAL_D, 0), (2, 1), (DUAL_D - 1, 1), (DUAL_D + 1, 1)]


@pytest.mark.parametrize("N,ddof", DUAL_CASES, ids=[f"N{n}-ddof{k}" for n, k in DUAL_CASES])
def test_dual_route_agrees_with_primal_route(rng, N, ddof):
    d = DUAL_D
    X = anisotropic(rng, N, d, offset=-7.0)
    primal = EmpiricalStats(X, ddof=ddof).eigh("primal")
    dual = EmpiricalStats(X, ddof=ddof).eigh("dual")
    assert primal.route == "primal" and dual.route == "dual"
    r = min(d, N - 1)
    top = max(primal.eigvals[0], 1e-300)

    # the same eigenvalues, and both equal to NumPy's
    np.testing.assert_allclose(dual.eigvals, primal.eigvals, rtol=0, atol=1e-10 * top)
    _check_spectrum(primal, X, ddof)
    _check_spectrum(dual, X, ddof)
    assert np.count_nonzero(dual.eigvals) == np.count_nonzero(primal.eigvals) == r

    # the same range (projectors) and, for well-separated eigenvalues, the same eigenvectors
    Up, Ud = primal.eigvecs[:, :r], dual.eigvecs[:, :r]
    np.testing.assert_allclose(Ud @ Ud.T, Up @ Up.T, rtol=0, atol=1e-9)
    lam = primal.eigvals[:r]
    for j in range(r):
        others = np.delete(lam, j)
        gap = np.min(np.abs(others - lam[j])) if others.size else np.inf
        if gap > 1e-3 * top:
            assert abs(abs(Ud[:, j] @ Up[:, j]) - 1.0) < 1e-9

    # the null space: the completed basis is orthogonal to the range and annihilates the data
    Xc = X - X.mean(axis=0)
    for s in (primal, dual):
        V = s.eigvecs
        null = V[:, r:]
        assert null.shape[1] == d - r
        np.testing.assert_allclose(V[:, :r].T @ null, 0.0, atol=1e-12)
        scale = max(np.abs(Xc).max(), 1.0)
        np.testing.assert_allclose(Xc @ null, 0.0, atol=1e-12 * scale * np.sqrt(N))


@pytest.mark.parametrize("N", [DUAL_D - 1, DUAL_D, DUAL_D + 1])
def test_dual_route_eigvecs_orthonormal_near_square(N):
    """N ≈ d makes the smallest nonzero eigenvalue tiny (Marchenko–Pastur edge at 0); the dual
    route's u = Fᵀv/√μ must still give an orthonormal basis, as the primal route does."""
    d = DUAL_D
    worst = {"primal": 0.0, "dual": 0.0}
    for seed in range(20):
        X = anisotropic(np.random.default_rng(seed), N, d)
        for route in worst:
            V = EmpiricalStats(X).eigh(route).eigvecs
            worst[route] = max(worst[route], np.abs(V.T @ V - np.eye(d)).max())
    assert worst["primal"] < 1e-12
    assert worst["dual"] < 1e-12, f"dual route: max |VᵀV − I| = {worst['dual']:.2e}"


def test_dual_route_needs_a_factor(rng):
    d = 6
    with pytest.raises(ValueError, match="dual route needs the centred data"):
        EmpiricalStats.from_moments(10, np.zeros(d), np.eye(d)).eigh("dual")
    thick = EmpiricalStats(rng.standard_normal((2 * d + 1, d)))  # N > 2d: only the d×d scatter
    assert not thick.holds_factor
    with pytest.raises(ValueError, match="dual route needs the centred data"):
        thick.eigh("dual")
    thin = EmpiricalStats(rng.standard_normal((2 * d, d)))  # N = 2d: still a factor
    assert thin.holds_factor
    assert thin.eigh("dual").route == "dual"
    with pytest.raises(ValueError, match="route must be"):
        thin.eigh("both")


def test_auto_route_picks_dual_for_few_samples(rng):
    d = 30
    for N in (2, 10, d - 1):
        assert EmpiricalStats(rng.standard_normal((N, d))).route == "dual"
    for N in (d + 1, 2 * d, 5 * d):
        assert EmpiricalStats(rng.standard_normal((N, d))).route == "primal"


def test_auto_route_picks_dual_for_few_samples_when_streamed(rng):
    """The docstring promises the dual route for N < d whenever the data are held; the way the
    rows arrived (one chunk or several) must not matter."""
    d = 30
    X = rng.standard_normal((d - 5, d))
    s = EmpiricalStats()
    for part in np.array_split(X, 12):
        s.partial_fit(part)
    assert s.holds_factor and s.n < d
    assert s.route == "dual"
    _check_spectrum(s, X, 0)


def test_switching_routes_recomputes(rng):
    X = anisotropic(rng, 10, 20)
    s = EmpiricalStats(X)
    lam_dual = s.eigh("dual").eigvals
    lam_primal = s.eigh("primal").eigvals
    assert s.route == "primal"
    np.testing.assert_allclose(lam_dual, lam_primal, rtol=0, atol=1e-12 * lam_primal[0])
    Y = anisotropic(rng, 30, 20)
    s.partial_fit(Y)  # new data: the cached spectrum must be dropped
    _check_spectrum(s, np.vstack([X, Y]), 0)


# ---------------------------------------------------------------------- outputs are new arrays


OUTPUTS = ["mean", "cov", "scatter", "eigvals", "eigvecs", "range_basis.values",
           "range_basis.vectors"]


def _get(s: EmpiricalStats, name: str) -> np.ndarray:
    if name.startswith("range_basis"):
        vals, vecs = s.range_basis
        return vals if name.endswith("values") else vecs
    return getattr(s, name)


@pytest.mark.parametrize("route", ["primal", "dual"])
@pytest.mark.parametrize("written", OUTPUTS)
def test_outputs_do_not_alias_internal_state(rng, written, route):
    """Conventions: "outputs are new arrays". Writing into a returned array (when it is writeable)
    must not change anything the object reports afterwards."""
    X = anisotropic(rng, 8, 12)
    s = EmpiricalStats(X).eigh(route)
    before = {k: np.array(_get(s, k), copy=True) for k in OUTPUTS}
    arr = _get(s, written)
    if arr.flags.writeable:
        arr[...] = -123.0
    for k, v in before.items():
        np.testing.assert_array_equal(_get(s, k), v, err_msg=f"writing into {written} changed {k}")


# -------------------------------------------------------------------------------------- workers


WORKER_CASES = [(400, 40), (30, 40), (1000, 300), (100, 200)]


@pytest.mark.parametrize("N,d", WORKER_CASES, ids=[f"N{n}-d{d}" for n, d in WORKER_CASES])
def test_results_bitwise_identical_for_any_workers(blas_provider, N, d):
    """The EmpiricalStats docstring: 'results do not depend on this number'. d = 300 (primal) and
    the 100×100 Gram matrix of the dual case are large enough for OpenBLAS/LAPACK to use several
    threads internally; the d = 40 cases are not."""
    X = anisotropic(np.random.default_rng(N + d), N, d, offset=2.0)
    quantities = ("mean", "cov", "eigvals", "eigvecs")
    out = {}
    for w in (1, 2, 7):
        s = EmpiricalStats(X, workers=w).eigh(workers=w)
        out[w] = {q: getattr(s, q) for q in quantities}
    differ = [f"{q} (workers=1 vs {w})" for w in (2, 7) for q in quantities
              if not np.array_equal(out[1][q], out[w][q])]
    assert not differ, f"{blas_provider}: not bit-identical: {', '.join(differ)}"


def test_streaming_and_prefixes_bitwise_identical_for_any_workers(blas_provider):
    X = anisotropic(np.random.default_rng(3), 120, 16)
    ref = None
    for w in (1, 2, 7):
        s = EmpiricalStats(workers=w)
        for part in np.array_split(X, 9):
            s.partial_fit(part, workers=w)
        p = EmpiricalStats.prefixes(X, [5, 20, 120], workers=w)
        got = (s.mean, s.cov, p[0].cov, p[1].cov, p[2].cov)
        if ref is None:
            ref = got
        else:
            for a, b in zip(ref, got):
                assert np.array_equal(a, b)


# ------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "X,exc,match",
    [
        (np.zeros(5), ValueError, "2-D"),
        (np.zeros((2, 3, 4)), ValueError, "2-D"),
        (np.zeros((5, 0)), ValueError, "no features"),
        (np.zeros((0, 3)), ValueError, "0 rows"),
        (np.array([["a", "b"], ["c", "d"]]), TypeError, "numeric"),
        (np.array([[1.0, "x"], [2.0, 3.0]], dtype=object), TypeError, "numeric"),
        (np.ones((3, 2), dtype=complex), TypeError, "complex128"),
    ],
    ids=["1-D", "3-D", "d=0", "N=0", "strings", "object", "complex"],
)
def test_bad_data_shape_and_dtype(X, exc, match):
    with pytest.raises(exc, match=match):
        EmpiricalStats(X)
    with pytest.raises(exc, match=match):
        EmpiricalStats().partial_fit(X)
    with pytest.raises(exc, match=match):
        EmpiricalStats.prefixes(X, [1])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_data(rng, bad):
    X = rng.standard_normal((6, 4))
    X[4, 2] = bad
    with pytest.raises(ValueError, match=r"NaN or inf \(first at row 4, column 2\)"):
        EmpiricalStats(X)
    with pytest.raises(ValueError, match="NaN or inf"):
        EmpiricalStats.prefixes(X, [2, 6])
    Xt = rng.standard_normal((300, 4))  # a thick array (dense scatter path) too
    Xt[250, 0] = bad
    with pytest.raises(ValueError, match="NaN or inf"):
        EmpiricalStats(Xt)


def test_one_sample_with_ddof1(rng):
    s = EmpiricalStats(rng.standard_normal((1, 4)), ddof=1)
    with pytest.raises(ValueError, match="covariance needs N > ddof"):
        s.cov
    with pytest.raises(ValueError, match="covariance needs N > ddof"):
        s.eigvals
    p = EmpiricalStats.prefixes(rng.standard_normal((5, 4)), [1, 5], ddof=1)
    with pytest.raises(ValueError, match="covariance needs N > ddof"):
        p[0].cov
    with pytest.raises(ValueError, match=r"n must be >= 2"):
        EmpiricalStats.from_moments(1, np.zeros(2), np.eye(2), ddof=1)


def test_empty_statistics():
    s = EmpiricalStats()
    with pytest.raises(ValueError, match="empty"):
        s.cov
    with pytest.raises(ValueError, match="empty"):
        s.d


@pytest.mark.parametrize("ddof", [2, -1, 0.5])
def test_bad_ddof(rng, ddof):
    with pytest.raises(ValueError, match="ddof must be 0 or 1"):
        EmpiricalStats(rng.standard_normal((5, 2)), ddof=ddof)
    with pytest.raises(ValueError, match="ddof must be 0 or 1"):
        EmpiricalStats.from_moments(10, np.zeros(2), np.eye(2), ddof=ddof)


@pytest.mark.parametrize(
    "workers,exc,match",
    [(0, ValueError, "workers must be >= 1"), (-2, ValueError, "workers must be >= 1"),
     (1.5, TypeError, "workers must be an int"), (True, TypeError, "workers must be an int")],
)
def test_bad_workers(rng, workers, exc, match):
    X = rng.standard_normal((6, 3))
    with pytest.raises(exc, match=match):
        EmpiricalStats(X, workers=workers)
    with pytest.raises(exc, match=match):
        EmpiricalStats(X).eigh(workers=workers)
    with pytest.raises(exc, match=match):
        EmpiricalStats.prefixes(X, [3, 6], workers=workers)
    with pytest.raises(exc, match=match):
        EmpiricalStats(X).merge(EmpiricalStats(X), workers=workers)


def test_valid_workers_spellings(rng):
    X = rng.standard_normal((6, 3))
    ref = np_cov(X)
    for w in (None, -1, 1, np.int64(2)):
        assert rel_err(EmpiricalStats(X, workers=w).cov, ref) < 1e-14


@pytest.mark.parametrize(
    "ns,match",
    [([3, 3], "strictly increasing"), ([5, 2], "strictly increasing"), ([2, 11], "asks for 11 rows"),
     ([], "empty"), ([0, 3], "must be >= 1"), ([2.5], "integer")],
)
def test_bad_prefixes(rng, ns, match):
    X = rng.standard_normal((10, 3))
    exc = TypeError if ns == [2.5] else ValueError
    with pytest.raises(exc, match=match):
        EmpiricalStats.prefixes(X, ns)


def test_from_moments_bad_input():
    with pytest.raises(ValueError, match="not symmetric"):
        EmpiricalStats.from_moments(5, np.zeros(2), np.array([[1.0, 0.5], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="expected 3x3"):
        EmpiricalStats.from_moments(5, np.zeros(3), np.eye(2))
    with pytest.raises(ValueError, match="NaN or inf"):
        EmpiricalStats.from_moments(5, [0.0, np.nan], np.eye(2))
