"""GaussianTarget: power-law spectra, sampling, and the exact (Wishart) draw of the statistics.

References are independent of the library: closed forms (theory.md §1, Wishart moments), NumPy
dense algebra (eigvalsh, Cholesky) and Monte Carlo estimates from explicit NumPy draws, with
tolerances of a few standard errors that shrink like 1/sqrt(M).
"""

from __future__ import annotations

import numpy as np
import pytest

import lindiff
from lindiff import EmpiricalStats, GaussianTarget

Z = 5.0  # tolerance in standard errors for every Monte Carlo comparison (seeds are fixed)


def rel_err(a, b) -> float:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


def random_spd(rng, d: int) -> np.ndarray:
    """A generic SPD matrix with clearly nonzero off-diagonal entries."""
    A = rng.standard_normal((d, d))
    return A @ A.T / d + 0.5 * np.eye(d) + 0.3  # + 0.3: all entries correlated


# ------------------------------------------------------------------------------------ power law


@pytest.mark.parametrize("k", [0.0, 0.5, 1.0, 2.0, 3.5])
@pytest.mark.parametrize("d", [1, 2, 17, 100])
def test_power_law_spectrum(d, k):
    t = GaussianTarget.power_law(d, k)
    nu = np.arange(1, d + 1, dtype=float)
    lam = t.eigvals
    assert lam.shape == (d,)
    assert np.all(np.diff(lam) <= 0), "eigenvalues must be descending"
    ratio = lam * nu**k  # constant when λ_ν ∝ ν^{-k}
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-13)
    np.testing.assert_allclose(lam.sum(), d, rtol=1e-13)  # default tr Σ = d
    assert t.d == d
    assert t.is_axis_aligned
    np.testing.assert_array_equal(t.eigvecs, np.eye(d))
    np.testing.assert_allclose(t.cov, np.diag(nu**-k) * d / np.sum(nu**-k), rtol=1e-13, atol=0)
    np.testing.assert_array_equal(t.mean, np.zeros(d))
    if k == 0:
        np.testing.assert_allclose(lam, 1.0, rtol=1e-15)  # isotropic


@pytest.mark.parametrize("trace", [1.0, 0.37, 250.0, 1e-6])
def test_power_law_given_trace(trace):
    t = GaussianTarget.power_law(12, 1.3, trace=trace)
    np.testing.assert_allclose(t.eigvals.sum(), trace, rtol=1e-13)
    np.testing.assert_allclose(np.trace(t.cov), trace, rtol=1e-13)
    nu = np.arange(1, 13, dtype=float)
    np.testing.assert_allclose(t.eigvals, trace * nu**-1.3 / np.sum(nu**-1.3), rtol=1e-13)


def test_power_law_random_rotation():
    d = 25
    t = GaussianTarget.power_law(d, 1.0, rotation="random", rng=3)
    V = t.eigvecs
    assert not t.is_axis_aligned
    np.testing.assert_allclose(V.T @ V, np.eye(d), rtol=0, atol=1e-12)
    np.testing.assert_allclose(V @ V.T, np.eye(d), rtol=0, atol=1e-12)
    lam = t.eigvals
    expected = (V * lam) @ V.T  # V diag(λ) Vᵀ
    assert rel_err(t.cov, expected) < 1e-14
    assert np.array_equal(t.cov, t.cov.T) or rel_err(t.cov, t.cov.T) < 1e-15
    np.testing.assert_allclose(np.linalg.eigvalsh(t.cov)[::-1], lam, rtol=1e-12)
    # the rotation is not trivially the identity or a permutation
    assert np.abs(V).max() < 0.99
    # the columns really are the eigenvectors of cov
    np.testing.assert_allclose(t.cov @ V, V * lam, rtol=0, atol=1e-13 * lam[0])


def test_power_law_rotation_reproducible():
    a = GaussianTarget.power_law(10, 1.0, rotation="random", rng=42)
    b = GaussianTarget.power_law(10, 1.0, rotation="random", rng=42)
    c = GaussianTarget.power_law(10, 1.0, rotation="random", rng=43)
    assert np.array_equal(a.eigvecs, b.eigvecs)
    assert not np.allclose(a.eigvecs, c.eigvecs)
    g1, g2 = np.random.default_rng(5), np.random.default_rng(5)
    assert np.array_equal(
        GaussianTarget.power_law(6, 2.0, rotation="random", rng=g1).eigvecs,
        GaussianTarget.power_law(6, 2.0, rotation="random", rng=g2).eigvecs,
    )


def test_random_rotation_is_haar_distributed():
    """E[V_ij] = 0 and E[V_ij²] = 1/d for a Haar rotation. Without Mezzadri's sign fix, LAPACK's QR
    makes the first column's first entry almost always negative, which this test catches."""
    d, M = 3, 600
    g = np.random.default_rng(9)
    Vs = np.stack([GaussianTarget.power_law(d, 1.0, rotation="random", rng=g).eigvecs
                   for _ in range(M)])
    se_mean = np.sqrt(1.0 / d / M)  # Var V_ij = 1/d
    assert np.abs(Vs.mean(axis=0)).max() < Z * se_mean
    sq = Vs**2
    se_sq = sq.std(axis=0, ddof=1) / np.sqrt(M)
    assert np.all(np.abs(sq.mean(axis=0) - 1.0 / d) < Z * se_sq)


def test_power_law_given_rotation():
    d = 5
    q, _ = np.linalg.qr(np.random.default_rng(1).standard_normal((d, d)))
    t = GaussianTarget.power_law(d, 1.0, rotation=q)
    lam = d * np.arange(1, d + 1.0) ** -1.0 / np.sum(np.arange(1, d + 1.0) ** -1.0)
    assert rel_err(t.cov, (q * lam) @ q.T) < 1e-14


@pytest.mark.parametrize("mean", [None, 0.0, 3.5, -1e6, [1.0, -2.0, 0.5, 4.0]])
def test_power_law_mean(mean):
    t = GaussianTarget.power_law(4, 1.0, mean=mean)
    expected = np.zeros(4) if mean is None else np.broadcast_to(np.asarray(mean, float), (4,))
    np.testing.assert_array_equal(t.mean, expected)
    assert t.mean.shape == (4,)


def test_target_from_cov_and_from_eigvals(rng):
    d = 6
    S = random_spd(rng, d)
    mu = rng.standard_normal(d)
    t = GaussianTarget(mu, S)
    assert rel_err(t.cov, S) < 1e-13
    np.testing.assert_allclose(t.eigvals, np.linalg.eigvalsh(S)[::-1], rtol=1e-13)
    np.testing.assert_array_equal(t.mean, mu)
    # eigvals in any order are stored descending, with their eigenvectors
    lam = np.array([0.5, 3.0, 1.0, 2.0])
    q, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    t2 = GaussianTarget(np.zeros(4), eigvals=lam, eigvecs=q)
    np.testing.assert_array_equal(t2.eigvals, np.sort(lam)[::-1])
    assert rel_err(t2.cov, (q * lam) @ q.T) < 1e-14
    t3 = GaussianTarget(np.zeros(4), eigvals=lam)  # standard basis, permuted
    np.testing.assert_allclose(t3.cov, np.diag(lam), rtol=0, atol=0)


def test_target_outputs_do_not_alias_internal_state():
    """Writing into a returned array (when writeable) must not change the target."""
    t = GaussianTarget.power_law(5, 1.0, rotation="random", rng=0, mean=1.0)
    before = {k: np.array(getattr(t, k), copy=True) for k in ("mean", "eigvals", "eigvecs", "cov")}
    for k in before:
        arr = getattr(t, k)
        if arr.flags.writeable:
            arr[...] = -7.0
    for k, v in before.items():
        np.testing.assert_array_equal(getattr(t, k), v, err_msg=f"{k} changed")


# ---------------------------------------------------------------------------------------- sample


@pytest.mark.parametrize("rotated", [False, True])
def test_sample_moments_monte_carlo(rotated):
    d, n = 5, 200_000
    t = GaussianTarget.power_law(d, 1.0, rotation="random" if rotated else None, rng=11,
                                 mean=[1.0, -2.0, 0.0, 10.0, 1e3])
    S = t.cov if not rotated else (t.eigvecs * t.eigvals) @ t.eigvecs.T
    mu = np.array([1.0, -2.0, 0.0, 10.0, 1e3])
    X = t.sample(n, rng=12)
    assert X.shape == (n, d) and X.dtype == np.float64
    se_mean = np.sqrt(np.diag(S) / n)
    assert np.all(np.abs(X.mean(axis=0) - mu) < Z * se_mean)
    C = np.cov(X, rowvar=False)
    dS = np.diag(S)
    se_cov = np.sqrt((np.outer(dS, dS) + S**2) / n)
    assert np.all(np.abs(C - S) < Z * se_cov)
    # The tolerance is tight enough to see a 3% error in the covariance scale.
    assert np.any(np.abs(C - 1.03 * S) > Z * se_cov)


def test_sample_reproducible():
    t = GaussianTarget.power_law(4, 1.0, rotation="random", rng=0)
    a, b = t.sample(50, rng=7), t.sample(50, rng=7)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, t.sample(50, rng=8))
    g = np.random.default_rng(3)
    c1, c2 = t.sample(20, rng=g), t.sample(20, rng=g)  # a Generator is advanced
    assert not np.array_equal(c1, c2)
    g = np.random.default_rng(3)
    assert np.array_equal(t.sample(20, rng=g), c1)


def test_sample_bad_n():
    t = GaussianTarget.power_law(3, 1.0)
    with pytest.raises(ValueError, match="n must be >= 1"):
        t.sample(0)
    with pytest.raises(TypeError, match="n must be an integer"):
        t.sample(2.5)


# ---------------------------------------------------------------------- Wishart (exact) route

WISHART_D = 4
WISHART_M = 4000


@pytest.fixture(scope="module")
def wishart_target():
    g = np.random.default_rng(2024)
    S = random_spd(g, WISHART_D)
    mu = np.array([1.0, -3.0, 0.5, 100.0])
    off = S[~np.eye(WISHART_D, dtype=bool)]
    assert np.abs(off).min() > 0.05  # clearly nonzero off-diagonals
    return GaussianTarget(mu, S), mu, S


def _moments_check(est, exact, label):
    """est: (M, ...) replicate values; exact: (mean, var) arrays. Compares at Z standard errors."""
    M = est.shape[0]
    m, v = exact
    sample_mean = est.mean(axis=0)
    sample_var = est.var(axis=0, ddof=1)
    se_mean = np.sqrt(v / M)
    c = est - sample_mean
    se_var = np.sqrt(np.maximum((c**4).mean(axis=0) - sample_var**2, 0) / M)
    bad_m = np.abs(sample_mean - m) > Z * se_mean
    bad_v = np.abs(sample_var - v) > Z * se_var
    assert not bad_m.any(), f"{label}: mean off at {np.argwhere(bad_m).tolist()}"
    assert not bad_v.any(), f"{label}: variance off at {np.argwhere(bad_v).tolist()}"


def _two_sample_check(a, b, label):
    """Same mean and variance for two independent replicate sets (Welch-type z at Z)."""
    Ma, Mb = a.shape[0], b.shape[0]
    se = np.sqrt(a.var(axis=0, ddof=1) / Ma + b.var(axis=0, ddof=1) / Mb)
    assert np.all(np.abs(a.mean(axis=0) - b.mean(axis=0)) < Z * se), f"{label}: means differ"

    def var_se(x):
        c = x - x.mean(axis=0)
        return ((c**4).mean(axis=0) - x.var(axis=0) ** 2) / x.shape[0]

    se_v = np.sqrt(var_se(a) + var_se(b))
    dv = np.abs(a.var(axis=0, ddof=1) - b.var(axis=0, ddof=1))
    assert np.all(dv < Z * se_v), f"{label}: variances differ"


@pytest.mark.parametrize("n,ddof", [(3, 0), (5, 0), (12, 0), (12, 1), (3, 1)],
                         ids=["n3-factor", "n5-bartlett-edge", "n12-bartlett", "n12-ddof1",
                              "n3-ddof1"])
def test_wishart_draw_matches_exact_moments_and_explicit_sampling(wishart_target, n, ddof):
    t, mu, S = wishart_target
    d, M = WISHART_D, WISHART_M
    iu = np.triu_indices(d)

    g = np.random.default_rng(1000 + 10 * n + ddof)
    covs = np.empty((M, len(iu[0])))
    means = np.empty((M, d))
    for i in range(M):
        s = t.empirical_stats(n, ddof=ddof, rng=g)
        assert s.n == n and s.ddof == ddof
        covs[i] = s.cov[iu]
        means[i] = s.mean
    nu = n - 1
    assert s.holds_factor == (nu < d)
    if nu < d:  # rank ν: the remaining eigenvalues are exactly zero
        assert np.all(s.eigvals[nu:] == 0.0) and np.all(s.eigvals[:nu] > 0)

    # Exact moments: (n − ddof) Σ̂ = A ~ W(Σ, ν), μ̂ ~ N(μ, Σ/n), independent.
    scale = 1.0 / (n - ddof)
    dS = np.diag(S)
    exact_cov = (nu * scale * S[iu], nu * scale**2 * (S**2 + np.outer(dS, dS))[iu])
    exact_mean = (mu, dS / n)
    _moments_check(covs, exact_cov, f"Σ̂ (n={n})")
    _moments_check(means, exact_mean, f"μ̂ (n={n})")
    # For ddof = 0 the estimator is biased by (n − 1)/n; make sure the test can see that.
    if ddof == 0:
        se = np.sqrt(exact_cov[1] / M)
        assert np.any(np.abs(covs.mean(axis=0) - S[iu]) > Z * se)

    # Independence of μ̂ and Σ̂: all cross-correlations ≈ 0 (SE ≈ 1/sqrt(M)).
    cm = (means - means.mean(0)) / means.std(0)
    cc = (covs - covs.mean(0)) / covs.std(0)
    corr = cm.T @ cc / M
    assert np.abs(corr).max() < Z / np.sqrt(M)

    # The same moments from explicit draws: n points from N(μ, Σ) with NumPy, statistics by NumPy.
    L = np.linalg.cholesky(S)
    h = np.random.default_rng(5000 + 10 * n + ddof)
    X = mu + h.standard_normal((M, n, d)) @ L.T
    xm = X.mean(axis=1)
    Xc = X - xm[:, None, :]
    xc = np.einsum("mni,mnj->mij", Xc, Xc) / (n - ddof)
    _two_sample_check(covs, xc[:, iu[0], iu[1]], f"Σ̂ vs explicit (n={n})")
    _two_sample_check(means, xm, f"μ̂ vs explicit (n={n})")
    _moments_check(xc[:, iu[0], iu[1]], exact_cov, f"explicit Σ̂ (n={n})")  # sanity of the reference


def test_wishart_draw_single_sample(wishart_target):
    t, mu, S = wishart_target
    s = t.empirical_stats(1, rng=0)
    assert s.n == 1
    np.testing.assert_array_equal(s.cov, np.zeros((4, 4)))
    np.testing.assert_array_equal(s.eigvals, np.zeros(4))
    assert np.all(np.isfinite(s.mean))


def test_wishart_draw_large_n_is_consistent():
    """For n ≫ d the drawn Σ̂ concentrates at (n−1)/n Σ with relative spread ~ sqrt(2/n)."""
    t = GaussianTarget.power_law(30, 1.0, rotation="random", rng=1, mean=2.0)
    n = 10**7
    s = t.empirical_stats(n, rng=2)
    S = t.cov
    dS = np.diag(S)
    sd = np.sqrt((n - 1) * (S**2 + np.outer(dS, dS))) / n
    assert np.all(np.abs(s.cov - (n - 1) / n * S) < Z * sd)
    assert np.all(np.abs(s.mean - 2.0) < Z * np.sqrt(dS / n))


def test_wishart_draw_reproducible(wishart_target):
    t, _, _ = wishart_target
    for n in (3, 12):
        a, b = t.empirical_stats(n, rng=77), t.empirical_stats(n, rng=77)
        assert np.array_equal(a.cov, b.cov) and np.array_equal(a.mean, b.mean)
        c = t.empirical_stats(n, rng=78)
        assert not np.array_equal(a.cov, c.cov)


@pytest.mark.parametrize("d,n", [(6, 4), (40, 100), (300, 1000)],
                         ids=["d6-factor", "d40-bartlett", "d300-bartlett"])
def test_wishart_draw_bitwise_identical_for_any_workers(blas_provider, d, n):
    """conventions.md: 'The same rng gives the same numbers for any number of workers.'"""
    t = GaussianTarget.power_law(d, 1.0, rotation="random", rng=5)
    out = [t.empirical_stats(n, rng=9, workers=w) for w in (1, 2, 7)]
    for w, s in zip((2, 7), out[1:]):
        assert np.array_equal(out[0].mean, s.mean), f"mean: workers=1 vs {w}"
        assert np.array_equal(out[0].cov, s.cov), f"cov: workers=1 vs {w}"


# ------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize("trace", [-1.0, 0.0, np.nan, np.inf, -np.inf])
def test_power_law_bad_trace(trace):
    with pytest.raises(ValueError, match="trace must be a positive finite number"):
        GaussianTarget.power_law(5, 1.0, trace=trace)


def test_power_law_bad_arguments():
    with pytest.raises(ValueError, match="k must be finite"):
        GaussianTarget.power_law(5, np.nan)
    with pytest.raises(ValueError, match="d must be >= 1"):
        GaussianTarget.power_law(0, 1.0)
    with pytest.raises(TypeError, match="d must be an integer"):
        GaussianTarget.power_law(2.5, 1.0)
    with pytest.raises(ValueError, match="rotation must be"):
        GaussianTarget.power_law(5, 1.0, rotation="haar")
    with pytest.raises(ValueError, match="not orthonormal"):
        GaussianTarget.power_law(3, 1.0, rotation=np.array([[1.0, 1, 0], [0, 1, 0], [0, 0, 1]]))
    with pytest.raises(ValueError, match="expected 3x3"):
        GaussianTarget.power_law(3, 1.0, rotation=np.eye(4))
    with pytest.raises(ValueError, match="NaN or inf"):
        GaussianTarget.power_law(3, 1.0, mean=np.nan)


def test_power_law_mean_of_wrong_length_is_named():
    with pytest.raises(ValueError, match="mean"):
        GaussianTarget.power_law(4, 1.0, mean=[1.0, 2.0])


def test_target_bad_covariances():
    z = np.zeros(2)
    with pytest.raises(ValueError, match=r"positive (semi-)?definite"):
        GaussianTarget(z, np.array([[1.0, 2.0], [2.0, 1.0]]))  # indefinite
    with pytest.raises(ValueError, match="not positive definite"):
        GaussianTarget(z, np.array([[1.0, 1.0], [1.0, 1.0]]))  # singular: no density
    with pytest.raises(ValueError, match="not symmetric"):
        GaussianTarget(z, np.array([[1.0, 0.5], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="NaN or inf"):
        GaussianTarget(z, np.array([[1.0, np.nan], [np.nan, 1.0]]))
    with pytest.raises(ValueError, match="expected 2x2"):
        GaussianTarget(z, np.eye(3))
    with pytest.raises(ValueError, match="exactly one of cov or eigvals"):
        GaussianTarget(z, np.eye(2), eigvals=[1.0, 1.0])
    with pytest.raises(ValueError, match="exactly one of cov or eigvals"):
        GaussianTarget(z)
    with pytest.raises(ValueError):
        GaussianTarget(z, eigvals=[1.0, 0.0])
    with pytest.raises(ValueError, match="eigvals"):
        GaussianTarget(z, eigvals=[1.0, -1.0])
    with pytest.raises(ValueError, match="not orthonormal"):
        GaussianTarget(z, eigvals=[1.0, 2.0], eigvecs=[[1.0, 1.0], [0.0, 1.0]])
    with pytest.raises(TypeError, match="numeric"):
        GaussianTarget(z, np.array([["a", "b"], ["c", "d"]]))


def test_empirical_stats_bad_arguments():
    t = GaussianTarget.power_law(3, 1.0)
    with pytest.raises(ValueError, match="ddof must be 0 or 1"):
        t.empirical_stats(12, ddof=2)
    with pytest.raises(ValueError, match="n must be >= 1"):
        t.empirical_stats(0)
    with pytest.raises(ValueError, match="n must be >= 2"):
        t.empirical_stats(1, ddof=1)
    for w, exc in ((0, ValueError), (-2, ValueError), (1.5, TypeError)):
        with pytest.raises(exc, match="workers must be"):
            t.empirical_stats(10, workers=w)


def test_empirical_stats_bad_ddof_is_reported_as_ddof():
    """With ddof=2 the complaint must be about ddof, whatever n is."""
    t = GaussianTarget.power_law(3, 1.0)
    with pytest.raises(ValueError, match="ddof must be 0 or 1"):
        t.empirical_stats(2, ddof=2)


def test_empirical_stats_returns_empirical_stats():
    s = GaussianTarget.power_law(3, 1.0).empirical_stats(10, rng=0)
    assert isinstance(s, EmpiricalStats)
    assert isinstance(lindiff.GaussianTarget.power_law(2, 0.0), GaussianTarget)
