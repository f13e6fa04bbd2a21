"""lindiff.theory against SciPy, Monte Carlo with plain NumPy, and closed forms (theory.md 5-6)."""

from __future__ import annotations

import contextlib
import math

import numpy as np
import pytest
import scipy.optimize
import scipy.special

from lindiff import theory
from lindiff.schedule import Schedule
from lindiff.theory import (
    bayes_floor,
    deterministic_equivalent_losses,
    expected_kl_ideal,
    kappa_fixed_point,
    kl_large_n,
    kl_marchenko_pastur,
)

EULER_GAMMA = 0.57721566490153286061


def single_blas_thread():
    """Dense kernels in the Monte Carlo references are tiny: avoid BLAS thread contention."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        return contextlib.nullcontext()
    return threadpool_limits(1)


def power_law(d, k):
    lam = np.arange(1, d + 1, dtype=float) ** (-float(k))
    return lam * (d / lam.sum())


# --------------------------------------------------------------------------------- digamma
def test_numpy_digamma_matches_scipy():
    x = np.concatenate(
        [
            np.logspace(-10, 10, 4001),
            np.linspace(0.01, 12.0, 2399),
            theory._ROOT_HI + np.linspace(-0.3, 0.3, 601),  # through the positive zero
            np.arange(1, 60) / 2.0,  # the half-integers that the Wishart formula uses
        ]
    )
    ours = theory._digamma_numpy(x)
    ref = scipy.special.digamma(x)
    np.testing.assert_allclose(ours, ref, rtol=1e-13, atol=0)


def test_numpy_digamma_special_values():
    psi = theory._digamma_numpy
    assert psi(np.array(1.0)) == pytest.approx(-EULER_GAMMA, rel=1e-15)
    assert psi(np.array(0.5)) == pytest.approx(-EULER_GAMMA - 2 * math.log(2), rel=1e-15)
    # psi(x + 1) = psi(x) + 1/x across every region boundary.
    x = np.array([0.3, 1.2, 1.46, 1.7, 9.5, 10.0, 123.4])
    np.testing.assert_allclose(psi(x + 1), psi(x) + 1 / x, rtol=2e-15)
    # The double-double root really is the zero: |psi| ~ psi'(x0) * half an ulp.
    assert abs(psi(np.array(theory._ROOT_HI))) < 1e-16
    assert np.isnan(psi(np.array([0.0, -1.0, np.nan]))).all()


def test_digamma_minus_log_for_large_arguments():
    x = np.array([10.0, 20.0, 1e3, 1e8, 1e15])
    ours = theory._digamma_minus_log(x)
    # psi(x) - ln x = -1/(2x) - 1/(12 x^2) + 1/(120 x^4) - 1/(252 x^6) + 1/(240 x^8) - ...;
    # these five terms are exact to 2e-11 relative at x = 10 and to rounding beyond.
    series = (-1 / (2 * x) - 1 / (12 * x**2) + 1 / (120 * x**4) - 1 / (252 * x**6)
              + 1 / (240 * x**8))
    np.testing.assert_allclose(ours, series, rtol=1e-10)
    np.testing.assert_allclose(ours[2:], series[2:], rtol=1e-15)
    np.testing.assert_allclose(ours[:2], scipy.special.digamma(x[:2]) - np.log(x[:2]), rtol=1e-13)


def test_kl_is_the_same_with_the_numpy_digamma(monkeypatch):
    d = np.array([1, 3, 10, 40])
    N = np.array([5.0, 7.0, 50.0, 123.0])
    with_scipy = expected_kl_ideal(d, N, "both")
    monkeypatch.setattr(theory, "_digamma_impl", theory._digamma_numpy)
    without = expected_kl_ideal(d, N, "both")
    np.testing.assert_allclose(without, with_scipy, rtol=1e-13)


# ----------------------------------------------------------------------- E KL of the ideal
def _mc_ideal_kl(d, N, n_sets, rng):
    """KL between N(mu, Sigma) and N(xbar, S) (S the 1/N covariance), over simulated sets."""
    A = rng.standard_normal((d, d))
    Sigma = A @ A.T / d + 0.5 * np.eye(d)  # the expectation must not depend on mu, Sigma
    mu = rng.standard_normal(d)
    L = np.linalg.cholesky(Sigma)
    X = mu + rng.standard_normal((n_sets, N, d)) @ L.T
    xbar = X.mean(axis=1)
    Xc = X - xbar[:, None, :]
    S = np.einsum("mni,mnj->mij", Xc, Xc) / N
    Sinv = np.linalg.inv(S)
    Sigma_inv = np.linalg.inv(Sigma)
    dm = xbar - mu
    logdet_S = np.linalg.slogdet(S)[1]
    logdet_Sigma = np.linalg.slogdet(Sigma)[1]
    fwd = 0.5 * (
        np.einsum("mij,ji->m", Sinv, Sigma) - d
        + np.einsum("mi,mij,mj->m", dm, Sinv, dm) + logdet_S - logdet_Sigma
    )
    rev = 0.5 * (
        np.einsum("ij,mji->m", Sigma_inv, S) - d
        + np.einsum("mi,ij,mj->m", dm, Sigma_inv, dm) + logdet_Sigma - logdet_S
    )
    return fwd, rev


def test_expected_kl_ideal_against_monte_carlo():
    d, N, n_sets = 5, 20, 4000
    with single_blas_thread():
        fwd, rev = _mc_ideal_kl(d, N, n_sets, np.random.default_rng(20250530))
    e_fwd, e_rev = expected_kl_ideal(d, N, "both")
    for sample, exact in ((fwd, e_fwd), (rev, e_rev)):
        se = sample.std(ddof=1) / math.sqrt(n_sets)
        assert abs(sample.mean() - exact) < 4 * se, (sample.mean(), exact, se)
        # The test has power: a 10% error in the formula would be many standard errors off.
        assert 0.1 * exact > 8 * se
    assert expected_kl_ideal(d, N, "forward") == e_fwd
    assert expected_kl_ideal(d, N, "reverse") == e_rev


def test_expected_kl_ideal_d1_closed_form():
    # d = 1: N s^2 / sigma^2 ~ chi^2_{N-1}; E 1/chi^2_k = 1/(k-2), E ln chi^2_k = psi(k/2) + ln 2.
    N = 11.0
    k = N - 1
    e_inv = N / (k - 2)  # E[sigma^2 / s^2]
    e_log = scipy.special.digamma(k / 2) + math.log(2) - math.log(N)  # E ln(s^2/sigma^2)
    fwd = 0.5 * (e_inv - 1 + e_inv / N + e_log)  # the mean term: E[(xbar-mu)^2/s^2] = E[1/s^2]/N
    rev = 0.5 * ((N - 1) / N - 1 + 1 / N - e_log)
    assert expected_kl_ideal(1, N) == pytest.approx(fwd, rel=1e-13)
    assert expected_kl_ideal(1, N, "reverse") == pytest.approx(rev, rel=1e-13)


def test_expected_kl_ideal_domain_and_broadcasting():
    d = 4
    N = np.array([2.0, 4.0, 5.0, 6.0, 7.0, 100.0])
    fwd, rev = expected_kl_ideal(d, N, "both")
    assert np.isinf(fwd[:4]).all() and np.isfinite(fwd[4:]).all()  # forward needs N > d + 2
    assert np.isinf(rev[:2]).all() and np.isfinite(rev[2:]).all()  # reverse needs N > d
    assert (fwd[4:] > 0).all() and (rev[2:] > 0).all()
    # Broadcasting d against N equals elementwise scalar calls.
    dd = np.array([[1], [3], [8]])
    NN = np.array([12.0, 30.0, 1000.0])
    grid = expected_kl_ideal(dd, NN, "reverse")
    assert grid.shape == (3, 3)
    for i in range(3):
        for j in range(3):
            assert grid[i, j] == expected_kl_ideal(int(dd[i, 0]), NN[j], "reverse")
    assert isinstance(expected_kl_ideal(3, 10), float)
    # Decreasing in N.
    assert np.all(np.diff(expected_kl_ideal(10, np.arange(13, 200))) < 0)


@pytest.mark.parametrize("d", [1, 5, 50])
def test_large_n_law_and_its_first_correction(d):
    N = np.array([1e2, 1e3, 1e4, 1e5]) * d
    fwd, rev = expected_kl_ideal(d, N, "both")
    lead = kl_large_n(d, N)
    np.testing.assert_allclose(lead, (d * d + 3 * d) / (4 * N), rtol=1e-15)
    # The ratio tends to 1 with corrections O(d/N) ...
    for value in (fwd, rev):
        assert np.all(np.abs(value / lead - 1) < 3 * (d + 2) / N)
    # ... whose coefficients follow from psi(x) - ln x = -1/(2x) - 1/(12x^2) + ... :
    # E KL - lead = c2 / N^2 + O(d^4 / N^3) with
    base = d * (d + 1) / 2 + d / 3 + d * (d + 1) * (2 * d + 1) / 12
    c2_rev = 0.5 * base
    c2_fwd = 0.5 * (d * (d + 2) * (d + 3) - base)
    # At N = 1e5 d the difference is ~1e-12 of values ~1e-5: this also checks that the digamma
    # sum is evaluated without cancellation.
    assert (fwd[-1] - lead[-1]) * N[-1] ** 2 == pytest.approx(c2_fwd, rel=1e-3)
    assert (rev[-1] - lead[-1]) * N[-1] ** 2 == pytest.approx(c2_rev, rel=1e-3)


def test_kl_large_n_known_mean():
    assert kl_large_n(10, 1000, known_mean=True) == pytest.approx(110 / 4000, rel=1e-15)
    assert kl_large_n(10, 1000) == pytest.approx(130 / 4000, rel=1e-15)
    out = kl_large_n(np.array([1, 2]), np.array([[10.0], [20.0]]))
    assert out.shape == (2, 2)


# ------------------------------------------------------------------------- Marchenko-Pastur
def test_marchenko_pastur_matches_finite_d():
    d, N = 400, 800
    fwd, rev = expected_kl_ideal(d, N, "both")
    mp_fwd, mp_rev = kl_marchenko_pastur(d / N, "both")
    assert fwd / d == pytest.approx(mp_fwd, rel=0.02)
    assert rev / d == pytest.approx(mp_rev, rel=0.02)
    # And the finite-d value converges to the limit as d grows at q = 1/2.
    errs = [abs(expected_kl_ideal(k, 2 * k) / k - mp_fwd) for k in (50, 100, 200, 400)]
    assert all(a > b for a, b in zip(errs, errs[1:]))


def test_marchenko_pastur_closed_form_and_limits():
    q = np.array([0.2, 0.5, 0.9])
    g = (1 - q) / q * np.log(1 - q)
    np.testing.assert_allclose(kl_marchenko_pastur(q), 0.5 * (q / (1 - q) - 1 - g), rtol=1e-14)
    np.testing.assert_allclose(kl_marchenko_pastur(q, "reverse"), 0.5 * (1 + g), rtol=1e-14)
    fwd, rev = kl_marchenko_pastur(np.array([0.0, 1.0, 2.0, np.inf]), "both")
    np.testing.assert_array_equal(fwd, [0.0, np.inf, np.inf, np.inf])
    np.testing.assert_array_equal(rev, [0.0, np.inf, np.inf, np.inf])
    # Small q: both ~ q/4 (the large-N law per dimension); second order 5q^2/12 and q^2/12.
    for q0 in (1e-300, 1e-12, 1e-6):
        assert kl_marchenko_pastur(q0) == pytest.approx(q0 / 4 + 5 * q0**2 / 12, rel=1e-14)
        assert kl_marchenko_pastur(q0, "reverse") == pytest.approx(
            q0 / 4 + q0**2 / 12, rel=1e-14)
    # Near 1 the forward KL diverges like 1/(2(1-q)).
    assert kl_marchenko_pastur(1 - 1e-9) * 2e-9 == pytest.approx(1.0, rel=1e-6)


def test_marchenko_pastur_is_continuous_across_the_series_switch():
    edge = theory._MP_SERIES_MAX_Q
    below, above = np.nextafter(edge, 0.0), edge
    for direction in ("forward", "reverse"):
        a = kl_marchenko_pastur(below, direction)
        b = kl_marchenko_pastur(above, direction)
        assert a == pytest.approx(b, rel=1e-14)
    # And the series agrees with a 50-digit-accurate evaluation of the closed form at q = 1e-3:
    # from the expansion with all terms, fwd = sum_k q^k (1 - 1/(k(k+1)))/2.
    q0 = 1e-3
    ref = sum(q0**k * (1 - 1 / (k * (k + 1))) / 2 for k in range(1, 40))
    assert kl_marchenko_pastur(q0) == pytest.approx(ref, rel=1e-15)


# ---------------------------------------------------------------------------- kappa(z)
def fixed_point_residual(kappa, z, lam, N):
    return kappa - z - kappa / N * np.sum(lam / (lam + kappa))


@pytest.mark.parametrize(("d", "N"), [(200, 100), (200, 200), (200, 400), (1, 2), (50, 7.5)])
def test_kappa_fixed_point_residual_and_brentq(d, N):
    lam = np.random.default_rng(d).lognormal(sigma=1.5, size=d)
    z = np.logspace(-8, 6, 29)
    k = kappa_fixed_point(z, lam, N)
    assert k.shape == z.shape
    assert np.all(k >= z) and np.all(np.diff(k) > 0)
    for zi, ki in zip(z, k):
        # Relative to the scale of the terms in the equation.
        assert abs(fixed_point_residual(ki, zi, lam, N)) <= 1e-13 * ki
        ref = scipy.optimize.brentq(
            lambda x, zi=zi: 1 - zi / x - np.sum(lam / (lam + x)) / N,
            zi, zi + lam.sum() / N, xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=500,
        )
        assert ki == pytest.approx(ref, rel=1e-12)


def test_kappa_isotropic_closed_form():
    # lam = 1: (kappa - z)(1 + kappa) = q kappa, a quadratic.
    d, N = 300, 200
    q = d / N
    z = np.logspace(-6, 3, 19)
    b = 1 - z - q
    closed = (-b + np.sqrt(b * b + 4 * z)) / 2
    np.testing.assert_allclose(kappa_fixed_point(z, np.ones(d), N), closed, rtol=1e-10)


def test_kappa_at_zero_and_extremes():
    lam = power_law(100, 1.0)
    assert kappa_fixed_point(0.0, lam, 100) == 0.0  # d <= N: kappa(0) = 0
    assert kappa_fixed_point(0.0, lam, 300) == 0.0
    k0 = kappa_fixed_point(0.0, lam, 40)  # d > N: sum kappa/(lam + kappa) = d - N
    assert k0 > 0
    assert np.sum(k0 / (lam + k0)) == pytest.approx(100 - 40, rel=1e-13)
    # Continuity at z -> 0+ in both regimes; small-z slope 1/(1 - d/N) when d < N.
    assert kappa_fixed_point(1e-12, lam, 40) == pytest.approx(k0, rel=1e-9)
    assert kappa_fixed_point(1e-12, lam, 400) == pytest.approx(1e-12 / (1 - 100 / 400), rel=1e-9)
    # Extreme z stays finite and accurate: kappa ~ z + tr(Sigma)/N for huge z.
    with np.errstate(all="raise"):
        k = kappa_fixed_point(np.array([1e-300, 1e300]), lam, 400)
    assert k[0] == pytest.approx(1e-300 / (1 - 100 / 400), rel=1e-12)
    assert k[1] == pytest.approx(1e300, rel=1e-15)


# ------------------------------------------------------------- losses: Bayes floor and DE
def test_bayes_floor_against_dense_population_denoiser():
    rng = np.random.default_rng(7)
    d = 30
    A = rng.standard_normal((d, d))
    Sigma = A @ A.T / d + 0.1 * np.eye(d)
    sched = Schedule.paper(T=50, beta_max=0.2)
    floor = bayes_floor(np.linalg.eigvalsh(Sigma), sched)
    eye = np.eye(d)
    for t in (0, 10, 49):
        ab = sched.alphas_bar[t]
        W = math.sqrt(1 - ab) * np.linalg.inv(ab * Sigma + (1 - ab) * eye)
        M = eye - math.sqrt(1 - ab) * W
        dense = np.sum(M * M) + ab * np.trace(W @ Sigma @ W.T)
        assert floor[t] == pytest.approx(dense, rel=1e-12)


def _mc_losses(X, mu, lam, sched, gammas, known_mean):
    """Exact train and test loss per t of the fitted ridge denoiser, for one training set.

    Dense NumPy: one eigendecomposition of Sigma_hat, then every t and ridge in its eigenbasis
    (validated against a direct inverse in test_mc_reference_matches_direct_inverse).
    """
    N, d = X.shape
    mu_hat = np.zeros(d) if known_mean else X.mean(axis=0)
    Xc = X - mu_hat
    S = Xc.T @ Xc / N
    ev, U = np.linalg.eigh(S)
    ev = np.clip(ev, 0.0, None)
    sig_proj = np.einsum("ij,i,ij->j", U, lam, U)  # u_j^T Sigma u_j (Sigma is diagonal)
    mean_err = np.zeros(d) if known_mean else (U.T @ (mu_hat - mu)) ** 2
    ab = np.asarray(sched.alphas_bar)[:, None]
    om = np.asarray(sched.one_minus_alphas_bar)[:, None]
    out = {}
    for g in gammas:
        w = np.sqrt(om) / (ab * ev + om + g)  # filter values w_t(lambda_hat)
        fit = np.sum((1 - np.sqrt(om) * w) ** 2, axis=1)
        train = fit + ab[:, 0] * np.sum(w * w * ev, axis=1)
        test = fit + ab[:, 0] * np.sum(w * w * (sig_proj + mean_err), axis=1)
        out[g] = (train, test)
    return out


def test_mc_reference_matches_direct_inverse():
    rng = np.random.default_rng(3)
    d, N = 40, 25
    lam = power_law(d, 1.0)
    mu = rng.standard_normal(d)
    X = mu + rng.standard_normal((N, d)) * np.sqrt(lam)
    sched = Schedule.paper(T=100)
    Sigma, eye = np.diag(lam), np.eye(d)
    for known_mean in (True, False):
        res = _mc_losses(X, mu, lam, sched, [0.0, 0.3], known_mean)
        mu_hat = np.zeros(d) if known_mean else X.mean(axis=0)
        S = (X - mu_hat).T @ (X - mu_hat) / N
        for g in (0.0, 0.3):
            for t in (0, 30, 99):
                ab = sched.alphas_bar[t]
                s = math.sqrt(1 - ab)
                W = s * np.linalg.solve(ab * S + (1 - ab + g) * eye, eye)
                b = -math.sqrt(ab) * W @ mu_hat
                M = eye - s * W
                base = np.sum(M * M)
                m_true = mu if not known_mean else np.zeros(d)
                test = base + ab * np.trace(W @ Sigma @ W.T) + np.sum(
                    (b + math.sqrt(ab) * W @ m_true) ** 2)
                train = base + ab * np.trace(W @ S @ W.T) + np.sum(
                    (b + math.sqrt(ab) * W @ mu_hat) ** 2)
                assert res[g][0][t] == pytest.approx(train, rel=1e-9)
                assert res[g][1][t] == pytest.approx(test, rel=1e-9)


_DE_D = 200
_DE_SEEDS = 8
_DE_GAMMAS = (0.0, 0.05)


@pytest.fixture(scope="module")
def monte_carlo_losses():
    """{(N, known_mean, gamma): (train, test)} arrays of shape (seeds, T), paper schedule."""
    sched = Schedule.paper()
    lam = power_law(_DE_D, 1.0)
    rng = np.random.default_rng(2505)
    mu = rng.standard_normal(_DE_D)
    out = {}
    with single_blas_thread():
        for N in (100, 400):
            acc = {}
            for _ in range(_DE_SEEDS):
                X = mu + rng.standard_normal((N, _DE_D)) * np.sqrt(lam)
                for known_mean in (True, False):
                    Xk = X - mu if known_mean else X  # known mean: the data are centred exactly
                    mk = np.zeros(_DE_D) if known_mean else mu
                    res = _mc_losses(Xk, mk, lam, sched, _DE_GAMMAS, known_mean)
                    for g, (tr, te) in res.items():
                        acc.setdefault((N, known_mean, g), ([], []))
                        acc[(N, known_mean, g)][0].append(tr)
                        acc[(N, known_mean, g)][1].append(te)
            for key, (tr, te) in acc.items():
                out[key] = (np.array(tr), np.array(te))
    return sched, lam, out


@pytest.mark.parametrize("N", [100, 400])
@pytest.mark.parametrize("known_mean", [True, False])
@pytest.mark.parametrize("gamma", _DE_GAMMAS)
def test_deterministic_equivalents_against_monte_carlo(monte_carlo_losses, N, known_mean, gamma):
    # d = 200 is large enough: even at gamma = 0 with N = 100 < d, where the test loss reaches
    # ~4e5 at t = 1 (the null directions), the mean over 8 training sets agrees with the
    # deterministic equivalent to < 0.5% at every one of the 1000 steps.
    sched, lam, mc = monte_carlo_losses
    de = deterministic_equivalent_losses(lam, N, sched, gamma, known_mean=known_mean)
    for name, sample in zip(("train", "test"), mc[(N, known_mean, gamma)]):
        mean = sample.mean(axis=0)
        se = sample.std(axis=0, ddof=1) / math.sqrt(sample.shape[0])
        # Monte Carlo error (4 SE) plus the O(1/d) finite-size bias of a deterministic equivalent.
        tol = 4 * se + 0.01 * de[name]
        bad = np.abs(mean - de[name]) > tol
        assert not bad.any(), (name, np.flatnonzero(bad)[:5], mean[bad][:5], de[name][bad][:5])
    assert np.all(de["train"] < de["test"])
    assert np.all(de["test"] >= de["bayes"])


def test_deterministic_equivalents_structure():
    lam = power_law(100, 1.5)
    sched = Schedule.paper(T=200)
    out = deterministic_equivalent_losses(lam, 50, sched)
    assert set(out) >= {"train", "test", "bayes", "kappa"}
    assert all(out[k].shape == (200,) for k in ("train", "test", "bayes", "kappa"))
    np.testing.assert_allclose(out["bayes"], bayes_floor(lam, sched), rtol=0)
    # kappa is the fixed point at z_t = (1 - abar_t)/abar_t.
    z = np.asarray(sched.one_minus_alphas_bar / sched.alphas_bar)
    np.testing.assert_allclose(out["kappa"], kappa_fixed_point(z, lam, 50), rtol=1e-14)
    # gamma = 0: train = sum lam/(lam + kappa) exactly (docstring).
    k = out["kappa"][:, None]
    np.testing.assert_allclose(out["train"], np.sum(lam / (lam + k), axis=1), rtol=1e-12)
    # A scalar ridge equals the same ridge given per step.
    a = deterministic_equivalent_losses(lam, 50, sched, 0.2)
    b = deterministic_equivalent_losses(lam, 50, sched, np.full(200, 0.2))
    for key in ("train", "test"):
        np.testing.assert_array_equal(a[key], b[key])
    # Infinite data: train and test both reach the Bayes floor (error O(d/N)).
    big = deterministic_equivalent_losses(lam, 1e10, sched)
    np.testing.assert_allclose(big["test"], big["bayes"], rtol=1e-7)
    np.testing.assert_allclose(big["train"], big["bayes"], rtol=1e-7)
    # The train/test gap at t = 1 for N < d, gamma = 0: null directions add
    # (abar_1/(1 - abar_1)) v^T Sigma v to the test loss (theory.md section 5): ~1e4 per unit.
    assert out["test"][0] > 1e3 * out["train"][0]


def test_ridge_gives_interior_optimum_for_n_below_d():
    # Claim 3 of theory.md, on the t-averaged test loss: for N < d a moderate ridge beats both
    # gamma = 0 (memorisation: ~1500 per step here) and gamma -> inf (W = 0: loss d = 200).
    lam = power_law(200, 1.0)
    sched = Schedule.paper()
    gammas = (0.0, 1e-2, 1e-1, 1.0, 1e3)
    avg = np.array([deterministic_equivalent_losses(lam, 100, sched, g)["test"].mean()
                    for g in gammas])
    best = int(np.argmin(avg))
    assert 0 < best < len(gammas) - 1
    assert avg[0] > 10 * avg[best] and avg[-1] > 2 * avg[best]


# --------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("direction", ["fwd", "Forward", "", None, 1])
def test_bad_direction(direction):
    with pytest.raises(ValueError, match="direction must be one of 'forward', 'reverse', 'both'"):
        expected_kl_ideal(3, 10, direction)
    with pytest.raises(ValueError, match="direction must be one of"):
        kl_marchenko_pastur(0.5, direction)


@pytest.mark.parametrize(
    ("d", "N", "exc", "match"),
    [
        (0, 10, ValueError, r"d must be >= 1; got d = 0.0"),
        (2.5, 10, ValueError, r"d must be an integer"),
        (np.nan, 10, ValueError, r"d must be finite"),
        (3, 1, ValueError, r"N must be >= 2; got N = 1.0"),
        (3, [10, np.nan], ValueError, r"N must be finite; got N\[1\] = nan"),
        (3, [10, -4], ValueError, r"N must be >= 2; got N\[1\] = -4.0"),
        ("3", 10, TypeError, r"d must be real and numeric"),
        (3, True, TypeError, r"N must be real and numeric"),
    ],
)
def test_bad_d_and_N(d, N, exc, match):
    with pytest.raises(exc, match=match):
        expected_kl_ideal(d, N)
    with pytest.raises(exc, match=match):
        kl_large_n(d, N)


@pytest.mark.parametrize(
    ("q", "match"), [(-0.1, r"q = d/N must be >= 0; got q = -0.1"), ([0.5, np.nan], "NaN")]
)
def test_bad_q(q, match):
    with pytest.raises(ValueError, match=match):
        kl_marchenko_pastur(q)


@pytest.mark.parametrize(
    ("eigvals", "match"),
    [
        ([1.0, 0.0], r"eigvals must be > 0 .*eigvals\[1\] = 0.0"),
        ([1.0, -2.0], r"eigvals\[1\] = -2.0"),
        ([1.0, np.nan], r"eigvals must be finite"),
        ([[1.0, 2.0]], r"1-D"),
        ([], r"empty"),
    ],
)
def test_bad_eigvals(eigvals, match):
    sched = Schedule.paper(T=10)
    with pytest.raises(ValueError, match=match):
        kappa_fixed_point(1.0, eigvals, 10)
    with pytest.raises(ValueError, match=match):
        deterministic_equivalent_losses(eigvals, 10, sched)
    with pytest.raises(ValueError, match=match):
        bayes_floor(eigvals, sched)


def test_bad_kappa_and_loss_arguments():
    lam = np.ones(5)
    sched = Schedule.paper(T=10)
    with pytest.raises(ValueError, match=r"z must be >= 0; got z\[1\] = -1.0"):
        kappa_fixed_point([1.0, -1.0], lam, 10)
    with pytest.raises(ValueError, match="z must be finite"):
        kappa_fixed_point(np.inf, lam, 10)
    with pytest.raises(ValueError, match="N must be > 0"):
        kappa_fixed_point(1.0, lam, 0)
    with pytest.raises(ValueError, match="N must be a scalar"):
        kappa_fixed_point(1.0, lam, [10, 20])
    with pytest.raises(ValueError, match="N must be >= 2"):
        deterministic_equivalent_losses(lam, 1, sched)
    with pytest.raises(ValueError, match=r"ridge must be >= 0; got ridge\[0\] = -0.1"):
        deterministic_equivalent_losses(lam, 10, sched, -0.1)
    with pytest.raises(ValueError, match=r"ridge must be a scalar or have shape \(10,\)"):
        deterministic_equivalent_losses(lam, 10, sched, np.zeros(9))
    with pytest.raises(ValueError, match="ridge must be finite"):
        deterministic_equivalent_losses(lam, 10, sched, np.nan)
    with pytest.raises(TypeError, match=r"schedule must be a lindiff\.schedule\.Schedule"):
        deterministic_equivalent_losses(lam, 10, np.linspace(1e-4, 0.02, 10))
    with pytest.raises(TypeError, match="schedule must be"):
        bayes_floor(lam, None)
