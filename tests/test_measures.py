"""Measures between Gaussians: KL (both directions), Wasserstein-2, the sample-based fit, and the
expected KL of the ideal sampler (theory.md §5–§6).

References are independent of lindiff: dense NumPy formulas (np.linalg.solve / slogdet),
scipy.linalg.sqrtm, Monte Carlo estimates with scipy.stats.multivariate_normal whose tolerance is a
multiple of the estimate's own standard error, and training sets drawn here with NumPy.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy.linalg import sqrtm
from scipy.stats import multivariate_normal

import lindiff
from lindiff import Gaussian, GaussianTarget, gaussian_fit_kl, kl_divergence, kl_pair, wasserstein2

# ---------------------------------------------------------------------------------------- helpers


def dense_kl(m1, S1, m2, S2) -> float:
    """KL(N(m1,S1) ‖ N(m2,S2)) = ½[tr(S2⁻¹S1) − d + Δᵀ S2⁻¹ Δ + ln det S2 − ln det S1]."""
    d = m1.shape[0]
    s1, ld1 = np.linalg.slogdet(S1)
    s2, ld2 = np.linalg.slogdet(S2)
    assert s1 > 0 and s2 > 0
    dm = m2 - m1
    return 0.5 * float(np.trace(np.linalg.solve(S2, S1)) - d + dm @ np.linalg.solve(S2, dm) + ld2 - ld1)


def random_spd(rng, d, spread=1.0):
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    lam = np.exp(spread * rng.standard_normal(d))
    return (q * lam) @ q.T, lam, q


def gaussian_forms(rng, d):
    """The same kind of law built every way lindiff allows: from cov, from (eigvals, eigvecs), from
    unsorted eigvals with no eigvecs (a permuted standard basis), from descending eigvals alone."""
    mu = rng.standard_normal(d)
    cov, lam, q = random_spd(rng, d)
    diag = np.exp(rng.standard_normal(d))
    return {
        "cov": (Gaussian(mu, cov), mu, cov),
        "eig": (Gaussian(mu, eigvals=lam, eigvecs=q), mu, (q * lam) @ q.T),
        "unsorted-axis": (Gaussian(mu, eigvals=diag), mu, np.diag(diag)),
        "sorted-axis": (Gaussian(mu, eigvals=np.sort(diag)[::-1]), mu, np.diag(np.sort(diag)[::-1])),
    }


FORMS = ["cov", "eig", "unsorted-axis", "sorted-axis"]

# ---------------------------------------------------------------------------------- KL: dense


@pytest.mark.parametrize("d", [1, 3, 10, 40])
@pytest.mark.parametrize("fp", FORMS)
@pytest.mark.parametrize("fq", FORMS)
def test_kl_divergence_matches_dense_formula(d, fp, fq):
    rng = np.random.default_rng(d * 100 + FORMS.index(fp) * 10 + FORMS.index(fq))
    p, mp, Sp = gaussian_forms(rng, d)[fp]
    q, mq, Sq = gaussian_forms(rng, d)[fq]
    assert kl_divergence(p, q) == pytest.approx(dense_kl(mp, Sp, mq, Sq), rel=1e-10, abs=1e-12)
    assert kl_divergence(q, p) == pytest.approx(dense_kl(mq, Sq, mp, Sp), rel=1e-10, abs=1e-12)
    both = kl_pair(p, q)
    assert both == {"forward": kl_divergence(p, q), "reverse": kl_divergence(q, p)}
    assert kl_pair(p, q, "forward") == both["forward"] and kl_pair(p, q, "reverse") == both["reverse"]
    assert kl_divergence(p, p) == pytest.approx(0.0, abs=1e-12 * d)


def test_kl_divergence_of_target_objects_and_small_values():
    """GaussianTarget instances (rotated, with a mean) and nearly equal laws (KL ~ 1e-8)."""
    t1 = GaussianTarget.power_law(12, 1.0, rotation="random", mean=0.2, rng=1)
    S = t1.cov * (1 + 1e-4)
    g = Gaussian(t1.mean + 1e-4, S)
    ref = dense_kl(t1.mean, t1.cov, t1.mean + 1e-4, S)
    assert 1e-9 < ref < 1e-6
    assert kl_divergence(t1, g) == pytest.approx(ref, rel=1e-5)


@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_kl_divergence_matches_monte_carlo(direction):
    """KL(p‖q) = E_p[log p − log q], estimated with scipy's logpdf from n = 4·10⁵ draws (d = 3);
    the tolerance is 5 standard errors of the estimate."""
    rng = np.random.default_rng(2024)
    d = 3
    Sp, _, _ = random_spd(rng, d, 0.5)
    Sq, _, _ = random_spd(rng, d, 0.5)
    mp, mq = rng.standard_normal(d), rng.standard_normal(d) * 0.5
    p, q = Gaussian(mp, Sp), Gaussian(mq, Sq)
    if direction == "reverse":
        p, q, mp, mq, Sp, Sq = q, p, mq, mp, Sq, Sp
    n = 400_000
    x = rng.multivariate_normal(mp, Sp, size=n)
    ratio = multivariate_normal(mp, Sp).logpdf(x) - multivariate_normal(mq, Sq).logpdf(x)
    est, se = ratio.mean(), ratio.std(ddof=1) / math.sqrt(n)
    got = kl_pair(Gaussian(mp, Sp), Gaussian(mq, Sq), "forward")
    assert 0.2 < got < 20
    assert abs(got - est) < 5 * se, (got, est, se)
    assert se < 0.01 * got  # the check has teeth


def test_kl_is_inf_for_degenerate_laws_without_warnings():
    rng = np.random.default_rng(3)
    d = 5
    good = Gaussian(np.zeros(d), random_spd(rng, d)[0])
    lam = np.array([2.0, 1.0, 0.5, 0.0, 0.0])
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    for bad in (Gaussian(np.ones(d), eigvals=lam, eigvecs=q), Gaussian(np.zeros(d), eigvals=lam),
                Gaussian(np.zeros(d), np.diag(lam))):
        assert bad.is_degenerate
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            for val in (kl_divergence(good, bad), kl_divergence(bad, good), kl_divergence(bad, bad)):
                assert val == math.inf
            assert kl_pair(good, bad) == {"forward": math.inf, "reverse": math.inf}


def test_kl_bad_input():
    a = Gaussian(np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match="dimensions differ: 3 and 4"):
        kl_divergence(a, Gaussian(np.zeros(4), np.eye(4)))
    with pytest.raises(ValueError, match="dimensions differ"):
        wasserstein2(a, Gaussian(np.zeros(2), np.eye(2)))
    with pytest.raises(TypeError, match="two lindiff.Gaussian"):
        kl_divergence(a, (np.zeros(3), np.eye(3)))
    with pytest.raises(ValueError, match="direction must be"):
        kl_pair(a, a, "both-ways")
    with pytest.raises(ValueError, match="not positive semi-definite"):
        Gaussian(np.zeros(2), np.array([[1.0, 0.0], [0.0, -1.0]]))
    with pytest.raises(ValueError, match="positive definite"):
        GaussianTarget(np.zeros(2), eigvals=[1.0, 0.0])


# ---------------------------------------------------------------------------- Wasserstein-2


def scipy_w2(m1, S1, m2, S2) -> float:
    r = np.real(sqrtm(S1))
    cross = np.real(sqrtm(r @ S2 @ r))
    w2 = np.sum((m1 - m2) ** 2) + np.trace(S1) + np.trace(S2) - 2 * np.trace(cross)
    return math.sqrt(max(w2, 0.0))


@pytest.mark.parametrize("d", [1, 2, 7, 25])
def test_wasserstein2_matches_scipy_sqrtm(d):
    rng = np.random.default_rng(40 + d)
    forms_p = gaussian_forms(rng, d)
    forms_q = gaussian_forms(rng, d)
    for fp in FORMS:
        for fq in FORMS:
            p, mp, Sp = forms_p[fp]
            q, mq, Sq = forms_q[fq]
            ref = scipy_w2(mp, Sp, mq, Sq)
            assert wasserstein2(p, q) == pytest.approx(ref, rel=1e-8), (fp, fq)
            assert wasserstein2(q, p) == pytest.approx(ref, rel=1e-8), (fp, fq)


def test_wasserstein2_zero_for_identical_laws_and_closed_forms():
    rng = np.random.default_rng(50)
    d = 8
    for g, _, _ in gaussian_forms(rng, d).values():
        # W₂ is the square root of a difference of traces: rounding of order eps·tr Σ in W₂²
        # shows up as √(eps·tr Σ) ≈ 1e-8·√(tr Σ) in W₂, so "0" means below a few times that.
        floor = 4 * math.sqrt(np.finfo(float).eps * 2 * np.trace(g.cov))
        assert wasserstein2(g, g) <= floor
        same = Gaussian(g.mean.copy(), g.cov)
        assert wasserstein2(g, same) <= floor
        # ... while a relative change of 1e-6 is resolved.
        near = Gaussian(g.mean, g.cov * (1 + 1e-6))
        ref = math.sqrt(np.trace(g.cov)) * (math.sqrt(1 + 1e-6) - 1)  # commuting: √tr Σ·(√(1+ε) − 1)
        assert wasserstein2(g, near) == pytest.approx(ref, rel=0.05)
    # Commuting (axis-aligned) laws, degenerate ones included: W₂² = ‖Δm‖² + Σ(√a − √b)².
    a = np.array([4.0, 1.0, 0.25, 0.0])
    b = np.array([1.0, 1.0, 0.0, 0.0])
    m1, m2 = np.array([1.0, 0.0, 0.0, 2.0]), np.zeros(4)
    ref = math.sqrt(np.sum((m1 - m2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = wasserstein2(Gaussian(m1, np.diag(a)), Gaussian(m2, np.diag(b)))
        assert got == pytest.approx(ref, rel=1e-12)
        # A pure mean shift: W₂ = ‖Δm‖.
        g = GaussianTarget.power_law(6, 1.0, rotation="random", rng=2)
        shifted = Gaussian(g.mean + np.arange(6.0), g.cov)
        assert wasserstein2(g, shifted) == pytest.approx(np.linalg.norm(np.arange(6.0)), rel=1e-7)


# --------------------------------------------------------------------- sample-based fit KL


@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_gaussian_fit_kl_expectation_is_d2_plus_3d_over_4n(direction):
    """For n samples from the target itself, E KL ≈ (d²+3d)/(4n) (theory.md §6), up to O(d/n)."""
    d, n, seeds = 3, 2000, 400
    tgt = GaussianTarget.power_law(d, 1.0, rotation="random", mean=[1.0, -2.0, 0.5], rng=7)
    L = np.linalg.cholesky(tgt.cov)
    vals = []
    for s in range(seeds):
        X = np.random.default_rng(s).standard_normal((n, d)) @ L.T + tgt.mean
        vals.append(gaussian_fit_kl(X, tgt, direction))
    vals = np.array(vals)
    expected = (d * d + 3 * d) / (4 * n)
    se = vals.std(ddof=1) / math.sqrt(seeds)
    assert se < 0.05 * expected
    assert abs(vals.mean() - expected) < 4 * se + 0.01 * expected, (vals.mean(), expected, se)
    # And each value is the KL to the Gaussian fitted here with NumPy.
    X = np.random.default_rng(0).standard_normal((n, d)) @ L.T + tgt.mean
    mu, S = X.mean(axis=0), np.cov(X, rowvar=False, ddof=0)
    ref = dense_kl(tgt.mean, tgt.cov, mu, S) if direction == "forward" else dense_kl(mu, S, tgt.mean, tgt.cov)
    assert vals[0] == pytest.approx(ref, rel=1e-9)
    S1 = np.cov(X, rowvar=False, ddof=1)
    if direction == "forward":
        ref1 = dense_kl(tgt.mean, tgt.cov, mu, S1)
    else:
        ref1 = dense_kl(mu, S1, tgt.mean, tgt.cov)
    assert gaussian_fit_kl(X, tgt, direction, ddof=1) == pytest.approx(ref1, rel=1e-9)


def test_gaussian_fit_kl_is_inf_when_fit_is_singular():
    tgt = GaussianTarget.power_law(5, 0.0)
    X = np.random.default_rng(1).standard_normal((5, 5))  # n ≤ d: singular fit
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert gaussian_fit_kl(X, tgt) == {"forward": math.inf, "reverse": math.inf}


# ----------------------------------------------------------- expected KL of the ideal sampler


@pytest.mark.parametrize("d, N", [(4, 16), (2, 7), (6, 40)])
def test_expected_kl_ideal_matches_monte_carlo(d, N):
    """E KL(p ‖ N(μ̂, Σ̂)) and E KL(N(μ̂, Σ̂) ‖ p) over training sets drawn here with NumPy."""
    reps = 20000
    rng = np.random.default_rng(100 * d + N)
    Sigma, _, _ = random_spd(rng, d, 0.7)
    mu = rng.standard_normal(d)
    X = rng.standard_normal((reps, N, d)) @ np.linalg.cholesky(Sigma).T + mu
    mu_hat = X.mean(axis=1)
    Xc = X - mu_hat[:, None, :]
    S_hat = np.einsum("rni,rnj->rij", Xc, Xc) / N
    _, ld_hat = np.linalg.slogdet(S_hat)
    _, ld = np.linalg.slogdet(Sigma)
    dm = mu_hat - mu
    # forward: KL(p ‖ N(μ̂, Σ̂))
    tr_f = np.trace(np.linalg.solve(S_hat, np.broadcast_to(Sigma, S_hat.shape)), axis1=1, axis2=2)
    maha_f = np.einsum("ri,ri->r", dm, np.linalg.solve(S_hat, dm[..., None])[..., 0])
    fwd = 0.5 * (tr_f - d + maha_f + ld_hat - ld)
    # reverse: KL(N(μ̂, Σ̂) ‖ p)
    Sinv = np.linalg.inv(Sigma)
    tr_r = np.einsum("ij,rji->r", Sinv, S_hat)
    maha_r = np.einsum("ri,ij,rj->r", dm, Sinv, dm)
    rev = 0.5 * (tr_r - d + maha_r + ld - ld_hat)
    for name, vals in (("forward", fwd), ("reverse", rev)):
        theory = lindiff.theory.expected_kl_ideal(d, N, name)
        se = vals.std(ddof=1) / math.sqrt(reps)
        assert se < 0.03 * theory
        assert abs(vals.mean() - theory) < 5 * se, (name, vals.mean(), theory, se)
    f, r = lindiff.theory.expected_kl_ideal(d, N, "both")
    assert f == lindiff.theory.expected_kl_ideal(d, N)
    assert r == lindiff.theory.expected_kl_ideal(d, N, "reverse")


def test_expected_kl_ideal_matches_wishart_draws_and_large_n_law():
    """Through lindiff's exact (Wishart) draw of (μ̂, Σ̂) at d = 20, with the KL computed densely."""
    d, N, reps = 20, 60, 400
    tgt = GaussianTarget.power_law(d, 1.0, rotation="random", mean=0.3, rng=5)
    vals = []
    for s in range(reps):
        st = tgt.empirical_stats(N, rng=s)
        vals.append(dense_kl(tgt.mean, tgt.cov, st.mean, st.cov))
    vals = np.array(vals)
    theory = lindiff.theory.expected_kl_ideal(d, N)
    se = vals.std(ddof=1) / math.sqrt(reps)
    assert abs(vals.mean() - theory) < 5 * se, (vals.mean(), theory, se)
    # Large N: the exact expectation approaches (d²+3d)/(4N) with an O(d/N) relative correction.
    for big in (2e4, 2e6):
        exact = lindiff.theory.expected_kl_ideal(d, big, "both")
        law = (d * d + 3 * d) / (4 * big)
        for e in exact:
            assert abs(e / law - 1) < 3 * d / big
    # Domains: forward needs N > d + 2, reverse N > d.
    assert lindiff.theory.expected_kl_ideal(d, d + 2) == math.inf
    assert lindiff.theory.expected_kl_ideal(d, d, "reverse") == math.inf
    assert math.isfinite(lindiff.theory.expected_kl_ideal(d, d + 1, "reverse"))
