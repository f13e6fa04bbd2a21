"""LinearDiffusion: filters, denoisers, the generated law, losses, training, grids and the claims.

Every numerical result is checked against an independent reference written here:

- a *dense* NumPy model: every W_t, b_t, A_t, c_t is built as a d×d matrix from the raw data
  (np.mean / np.cov of the rows, never lindiff's eigendecomposition), W_t by ``np.linalg.solve``,
  gradient flow by ``scipy.linalg.expm``, discrete GD by ``np.linalg.matrix_power``, and the
  sampler is run by applying the literal DDPM update and the literal x̂₀ form of DDIM
  (theory.md §4) to the columns of I;
- the noise-averaged loss evaluated straight from the training points,
  (1/N) Σ_i E_ε‖ε − W(√ᾱ x_i + √(1−ᾱ) ε) − b‖² = ‖I − √(1−ᾱ)W‖²_F + (1/N) Σ_i ‖√ᾱ W x_i + b‖²,
  its gradient derived by hand and checked by finite differences, explicit Euler / GD iterations;
- closed forms and the headline claims of theory.md §5–§6.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy.linalg import expm

import lindiff
from lindiff import EmpiricalStats, GaussianTarget, LinearDiffusion, Schedule

# ---------------------------------------------------------------------------------------- helpers


def rel_err(a, b) -> float:
    """max|a − b| / max|b| (norm-wise relative error)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    scale = np.abs(b).max()
    return float(np.abs(a - b).max() / (scale if scale > 0 else 1.0))


class RefSchedule:
    """ᾱ_t, 1−ᾱ_t, ᾱ_{t−1}, 1−ᾱ_{t−1} computed here from the betas alone."""

    def __init__(self, betas):
        b = np.array(betas, dtype=np.float64)
        log_ab = np.cumsum(np.log1p(-b))
        self.beta = b
        self.T = b.shape[0]
        self.ab = np.exp(log_ab)
        self.om = -np.expm1(log_ab)  # 1 − ᾱ_t without cancellation
        self.abp = np.concatenate(([1.0], self.ab[:-1]))
        self.omp = np.concatenate(([0.0], self.om[:-1]))


def ref_moments(X):
    X = np.asarray(X, dtype=np.float64)
    return X.mean(axis=0), np.atleast_2d(np.cov(X, rowvar=False, ddof=0))


def ref_W(Shat, ab, om, gamma, training):
    """Dense W_t: optimum, gradient flow (expm) or n GD steps (matrix power), from W⁰ = init·I."""
    d = Shat.shape[0]
    I = np.eye(d)
    C = ab * Shat + (om + gamma) * I
    Wstar = math.sqrt(om) * np.linalg.solve(C, I)
    kind = training.get("kind", "opt")
    if kind in ("opt", "opt-inf"):
        return Wstar
    lr = training.get("lr", 1.0)
    W0 = training.get("init", 0.0) * I
    if kind == "flow":
        E = expm(-2.0 * lr * training["tau"] * C)
    else:
        E = np.linalg.matrix_power(I - 2.0 * lr * C, training["n"])
    return Wstar + (W0 - Wstar) @ E


def ref_model(X, rs: RefSchedule, ridge, training):
    """Dense (W_t, b_t) for t = 1..T (lists indexed t−1), from the raw data X."""
    mu, S = ref_moments(X)
    gam = np.broadcast_to(np.asarray(ridge, dtype=np.float64), (rs.T,))
    Ws, bs = [], []
    for k in range(rs.T):
        W = ref_W(S, rs.ab[k], rs.om[k], gam[k], training)
        Ws.append(W)
        bs.append(-math.sqrt(rs.ab[k]) * W @ mu)
    return Ws, bs


def ref_chain(Ws, bs, rs: RefSchedule, sampler="ddpm", sigma="beta", final_noise=True):
    """Mean and covariance of the reverse chain, run densely from u_T ~ N(0, I).

    Each step is the literal update map u ↦ u' applied to the columns of I and to 0, which gives
    the affine map u' = A u + c (+ σ z); then m ← A m + c and S ← A S Aᵀ + σ² I.
    """
    d = Ws[0].shape[0]
    I = np.eye(d)
    m = np.zeros(d)
    S = np.eye(d)
    for k in reversed(range(rs.T)):
        W, b = Ws[k], bs[k]
        beta, ab, om, abp, omp = rs.beta[k], rs.ab[k], rs.om[k], rs.abp[k], rs.omp[k]

        def eps(U, W=W, b=b):
            return W @ U + b[:, None]

        if sampler == "ddpm":
            def step(U, beta=beta, om=om, eps=eps):
                return (U - beta / math.sqrt(om) * eps(U)) / math.sqrt(1.0 - beta)

            s2 = beta if sigma == "beta" else beta * omp / om
            if k == 0 and not final_noise:
                s2 = 0.0
        else:
            def step(U, ab=ab, om=om, abp=abp, eps=eps):
                e = eps(U)
                x0 = (U - math.sqrt(om) * e) / math.sqrt(ab)
                return math.sqrt(abp) * x0 + math.sqrt(1.0 - abp) * e

            s2 = 0.0
        c = step(np.zeros((d, 1)))[:, 0]
        A = step(I) - c[:, None]
        m = A @ m + c
        S = A @ S @ A.T + s2 * I
    return m, S


def ref_loss(W, b, m, S, ab, om):
    """L_t(W, b; m, S) of theory.md §5."""
    R = np.eye(W.shape[0]) - math.sqrt(om) * W
    v = b + math.sqrt(ab) * W @ m
    return float(np.sum(R * R) + ab * np.trace(W @ S @ W.T) + v @ v)


def ref_loss_data(W, b, X, ab, om, gamma=0.0):
    """The noise-averaged loss straight from the training points, plus the ridge penalty."""
    R = np.eye(W.shape[0]) - math.sqrt(om) * W
    resid = math.sqrt(ab) * X @ W.T + b
    return float(np.sum(R * R) + np.mean(np.sum(resid * resid, axis=1)) + gamma * np.sum(W * W))


def ref_grad_data(W, b, X, ab, om, gamma=0.0):
    """∂/∂W and ∂/∂b of ref_loss_data, derived by hand:
    ∂W = −2√(1−ᾱ)(I − √(1−ᾱ)W) + (2√ᾱ/N) Σ_i (√ᾱ W x_i + b) x_iᵀ + 2γW,
    ∂b = (2/N) Σ_i (√ᾱ W x_i + b)."""
    n = X.shape[0]
    I = np.eye(W.shape[0])
    resid = math.sqrt(ab) * X @ W.T + b  # rows: √ᾱ W x_i + b
    gW = -2.0 * math.sqrt(om) * (I - math.sqrt(om) * W) + (2.0 * math.sqrt(ab) / n) * resid.T @ X
    gW += 2.0 * gamma * W
    gb = 2.0 * resid.mean(axis=0)
    return gW, gb


def ref_kl(m1, S1, m2, S2) -> float:
    """KL(N(m1,S1) ‖ N(m2,S2)), dense (solve + slogdet)."""
    d = m1.shape[0]
    s1, ld1 = np.linalg.slogdet(S1)
    s2, ld2 = np.linalg.slogdet(S2)
    assert s1 > 0 and s2 > 0
    dm = m2 - m1
    return 0.5 * float(np.trace(np.linalg.solve(S2, S1)) - d + dm @ np.linalg.solve(S2, dm) + ld2 - ld1)


def make_schedule(spec):
    kind, T = spec
    if kind == "paper":
        return Schedule.paper(T=T)
    if kind == "cosine":
        return Schedule.cosine(T=T)
    raise AssertionError(spec)


def model_kwargs(ridge, training):
    kw = {"ridge": ridge}
    kind = training.get("kind", "opt")
    if kind == "flow":
        kw.update(train_time=training["tau"], learning_rate=training.get("lr", 1.0),
                  init=training.get("init", 0.0))
    elif kind == "gd":
        kw.update(steps=training["n"], learning_rate=training["lr"], init=training.get("init", 0.0))
    elif kind == "opt-inf":
        kw.update(train_time=np.inf)
    return kw


CHAINS = [
    ("ddpm", "beta", True),
    ("ddpm", "beta", False),
    ("ddpm", "beta_tilde", True),
    ("ddpm", "beta_tilde", False),
    ("ddim", "beta", True),
]

# (id, d, N, schedule, ridge, training). ridge "array" means a length-T array with γ₁ = 0.
CASES = [
    ("T1-N<d", 6, 3, ("paper", 1), 0.0, {}),
    ("T1-N>d-flow", 5, 12, ("paper", 1), 0.3, {"kind": "flow", "tau": 4.0, "lr": 0.5}),
    ("T2-N<d-ridge", 6, 4, ("paper", 2), 0.1, {"kind": "opt-inf"}),
    ("T2-N>d-flow", 6, 20, ("paper", 2), 0.0, {"kind": "flow", "tau": 0.7}),
    ("T10-N<d-array", 12, 5, ("paper", 10), "array", {}),
    ("T10-N>d-flow-init", 12, 40, ("paper", 10), 0.0, {"kind": "flow", "tau": 3.0, "init": 0.4}),
    ("T10-cosine-N>d", 8, 30, ("cosine", 10), 0.05, {}),
    ("T10-cosine-N<d-flow", 8, 5, ("cosine", 10), 0.0, {"kind": "flow", "tau": 50.0}),
    ("T10-N<d-gd", 10, 4, ("paper", 10), 0.0, {"kind": "gd", "n": 7, "lr": 0.05}),
    ("T10-N>d-gd-array", 10, 30, ("paper", 10), "array", {"kind": "gd", "n": 25, "lr": 0.08}),
    ("T200-N<d", 40, 15, ("paper", 200), 0.0, {}),
    ("T200-N>d-ridge", 40, 90, ("paper", 200), 0.05, {}),
    ("T200-N<d-array-flow", 25, 10, ("paper", 200), "array", {"kind": "flow", "tau": 20.0}),
    ("T200-N>d-flow", 30, 60, ("paper", 200), 0.0, {"kind": "flow", "tau": 3.0, "lr": 0.5}),
]

_CACHE: dict = {}


def build_case(case):
    """Target, data, lindiff model and dense reference for one case (cached per session)."""
    cid, d, N, sched_spec, ridge, training = case
    if cid in _CACHE:
        return _CACHE[cid]
    seed = sum(map(ord, cid))
    sch = make_schedule(sched_spec)
    rs = RefSchedule(sch.betas)
    if isinstance(ridge, str):
        ridge = np.concatenate(([0.0], np.geomspace(1e-3, 0.5, sch.T - 1)))[: sch.T]
    tgt = GaussianTarget.power_law(d, 1.0, rotation="random", mean=np.linspace(-1.0, 1.5, d), rng=seed)
    X = tgt.sample(N, rng=seed + 1)
    model = LinearDiffusion(EmpiricalStats(X), sch, **model_kwargs(ridge, training))
    Ws, bs = ref_model(X, rs, ridge, training)
    out = {"tgt": tgt, "X": X, "model": model, "Ws": Ws, "bs": bs, "rs": rs, "sch": sch,
           "ridge": ridge, "training": training}
    _CACHE[cid] = out
    return out


# -------------------------------------------------------------- 1. dense reference of the model


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_sampling_distribution_matches_dense_chain(case):
    c = build_case(case)
    model, rs = c["model"], c["rs"]
    for sampler, sigma, fn in CHAINS:
        m_ref, S_ref = ref_chain(c["Ws"], c["bs"], rs, sampler, sigma, fn)
        g = model.sampling_distribution(sigma=sigma, final_noise=fn, sampler=sampler)
        assert isinstance(g, lindiff.Gaussian)
        assert rel_err(g.mean, m_ref) < 1e-10, (sampler, sigma, fn, rel_err(g.mean, m_ref))
        assert rel_err(g.cov, S_ref) < 1e-10, (sampler, sigma, fn, rel_err(g.cov, S_ref))
        # theory.md §4: μ_gen = μ̂ − √ᾱ_T A₁⋯A_T μ̂, for any W (the chain without its noise).
        if sampler == "ddpm":
            mu_hat = c["X"].mean(axis=0)
            P = np.eye(model.d)
            for k in range(rs.T):
                kap = rs.beta[k] / math.sqrt(rs.om[k])
                P = P @ ((np.eye(model.d) - kap * c["Ws"][k]) / math.sqrt(1.0 - rs.beta[k]))
            assert rel_err(g.mean, mu_hat - math.sqrt(rs.ab[-1]) * P @ mu_hat) < 1e-10


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_filters_are_the_eigenvalues_of_dense_W(case):
    c = build_case(case)
    model = c["model"]
    F = model.filters
    assert F.shape == (model.T, model.d)
    U = model.eigvecs
    for k in range(model.T):
        W = c["Ws"][k]
        scale = np.abs(W).max()
        # In lindiff's basis U: diagonal, with the filter values on the diagonal.
        D = U.T @ W @ U
        assert np.abs(D - np.diag(F[k])).max() < 1e-10 * scale, k
        # Basis-free: the spectrum of the dense W_t.
        ev = np.sort(np.linalg.eigvals(W).real)
        assert np.abs(ev - np.sort(F[k])).max() < 1e-10 * scale, k


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_denoiser_and_predict_noise_match_dense(case):
    c = build_case(case)
    model = c["model"]
    rng = np.random.default_rng(5)
    x = rng.standard_normal((7, model.d)) * 2.0 + 0.5
    for t in sorted({1, 2, (model.T + 1) // 2, model.T} & set(range(1, model.T + 1))):
        W_ref, b_ref = c["Ws"][t - 1], c["bs"][t - 1]
        W, b = model.denoiser(t)
        assert W.shape == (model.d, model.d) and b.shape == (model.d,)
        assert rel_err(W, W_ref) < 1e-10, t
        assert np.abs(b - b_ref).max() < 1e-10 * max(np.abs(b_ref).max(), np.abs(W_ref).max()), t
        eps_ref = x @ W_ref.T + b_ref
        eps = model.predict_noise(x, t)
        assert eps.shape == x.shape
        assert rel_err(eps, eps_ref) < 1e-10, t
        one = model.predict_noise(x[3], t)
        assert one.shape == (model.d,)
        assert rel_err(one, eps_ref[3]) < 1e-10
    # Inputs are not mutated, outputs are new arrays.
    x_before = x.copy()
    model.predict_noise(x, 1)
    assert np.array_equal(x, x_before)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_losses_match_dense(case):
    c = build_case(case)
    model, rs, X, tgt = c["model"], c["rs"], c["X"], c["tgt"]
    mu_hat, S_hat = ref_moments(X)
    train_ref = np.array([ref_loss(c["Ws"][k], c["bs"][k], mu_hat, S_hat, rs.ab[k], rs.om[k])
                          for k in range(rs.T)])
    # The same loss from the training points themselves (an independent route).
    train_data = np.array([ref_loss_data(c["Ws"][k], c["bs"][k], X, rs.ab[k], rs.om[k])
                           for k in range(rs.T)])
    np.testing.assert_allclose(train_ref, train_data, rtol=1e-10)
    tr = model.train_loss()
    assert tr.shape == (rs.T,)
    np.testing.assert_allclose(tr, train_ref, rtol=1e-10)

    test_ref = np.array([ref_loss(c["Ws"][k], c["bs"][k], tgt.mean, tgt.cov, rs.ab[k], rs.om[k])
                         for k in range(rs.T)])
    np.testing.assert_allclose(model.test_loss(tgt), test_ref, rtol=1e-10)
    np.testing.assert_allclose(model.test_loss(mean=tgt.mean, cov=tgt.cov), test_ref, rtol=1e-10)

    # Any (m, S), not just the target's.
    rng = np.random.default_rng(11)
    A = rng.standard_normal((model.d, model.d))
    S = A @ A.T / model.d
    m = rng.standard_normal(model.d)
    ref = np.array([ref_loss(c["Ws"][k], c["bs"][k], m, S, rs.ab[k], rs.om[k]) for k in range(rs.T)])
    np.testing.assert_allclose(model.test_loss(mean=m, cov=S), ref, rtol=1e-10)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_kl_matches_dense(case):
    c = build_case(case)
    model, tgt, rs = c["model"], c["tgt"], c["rs"]
    for sampler, sigma, fn in CHAINS:
        m_ref, S_ref = ref_chain(c["Ws"], c["bs"], rs, sampler, sigma, fn)
        got = model.kl(tgt, sigma=sigma, final_noise=fn, sampler=sampler)
        ev = np.linalg.eigvalsh(S_ref)
        if ev.min() < 1e-20 * ev.max():  # dense law degenerate (up to rounding)
            assert got == {"forward": math.inf, "reverse": math.inf}, (sampler, sigma, fn)
            continue
        fwd = ref_kl(tgt.mean, tgt.cov, m_ref, S_ref)
        rev = ref_kl(m_ref, S_ref, tgt.mean, tgt.cov)
        assert got["forward"] == pytest.approx(fwd, rel=1e-8), (sampler, sigma, fn)
        assert got["reverse"] == pytest.approx(rev, rel=1e-8), (sampler, sigma, fn)
        assert model.kl(tgt, "forward", sigma=sigma, final_noise=fn, sampler=sampler) == got["forward"]
        assert model.kl(tgt, "reverse", sigma=sigma, final_noise=fn, sampler=sampler) == got["reverse"]


# -------------------------------------------------------------- 2. the ridge normal equations


@pytest.mark.parametrize("N", [4, 30])
def test_W_solves_ridge_normal_equations(N):
    d, T = 9, 12
    sch = Schedule.paper(T=T)
    rs = RefSchedule(sch.betas)
    tgt = GaussianTarget.power_law(d, 1.5, rotation="random", mean=0.3, rng=1)
    X = tgt.sample(N, rng=2)
    _, S = ref_moments(X)
    gam = np.geomspace(1e-3, 1.0, T)
    gam[0] = 0.0
    model = LinearDiffusion(EmpiricalStats(X), sch, ridge=gam)
    for t in range(1, T + 1):
        k = t - 1
        W, _ = model.denoiser(t)
        lhs = W @ (rs.ab[k] * S + (rs.om[k] + gam[k]) * np.eye(d))
        assert np.abs(lhs - math.sqrt(rs.om[k]) * np.eye(d)).max() < 1e-12 * max(1.0, np.abs(W).max())


@pytest.mark.parametrize("N, gamma", [(4, 0.0), (4, 0.2), (25, 0.0), (25, 0.05)])
def test_loss_gradient_vanishes_at_the_model(N, gamma):
    """Central differences of the ridge-penalised noise-averaged loss (computed from the data):
    they match the hand-derived gradient at a random W and vanish at lindiff's (W_t, b_t)."""
    d, T = 5, 8
    sch = Schedule.paper(T=T)
    rs = RefSchedule(sch.betas)
    tgt = GaussianTarget.power_law(d, 1.0, rotation="random", mean=-0.4, rng=3)
    X = tgt.sample(N, rng=4)
    model = LinearDiffusion(EmpiricalStats(X), sch, ridge=gamma)
    rng = np.random.default_rng(6)
    h = 1e-4

    def fd_grad(W, b, k):
        gW = np.zeros_like(W)
        for i in range(d):
            for j in range(d):
                E = np.zeros_like(W)
                E[i, j] = h
                gW[i, j] = (ref_loss_data(W + E, b, X, rs.ab[k], rs.om[k], gamma)
                            - ref_loss_data(W - E, b, X, rs.ab[k], rs.om[k], gamma)) / (2 * h)
        gb = np.zeros(d)
        for i in range(d):
            e = np.zeros(d)
            e[i] = h
            gb[i] = (ref_loss_data(W, b + e, X, rs.ab[k], rs.om[k], gamma)
                     - ref_loss_data(W, b - e, X, rs.ab[k], rs.om[k], gamma)) / (2 * h)
        return gW, gb

    for t in (1, 4, T):
        k = t - 1
        # The analytic gradient is right (checked at a random point).
        W0 = rng.standard_normal((d, d))
        b0 = rng.standard_normal(d)
        gW_fd, gb_fd = fd_grad(W0, b0, k)
        gW, gb = ref_grad_data(W0, b0, X, rs.ab[k], rs.om[k], gamma)
        assert np.abs(gW_fd - gW).max() < 1e-6 * np.abs(gW).max()
        assert np.abs(gb_fd - gb).max() < 1e-6 * np.abs(gb).max()
        # ... and it vanishes at the model's denoiser (relative to its size at a random point).
        W, b = model.denoiser(t)
        gW_fd, gb_fd = fd_grad(W, b, k)
        gW, gb = ref_grad_data(W, b, X, rs.ab[k], rs.om[k], gamma)
        scale = np.abs(ref_grad_data(W0, b0, X, rs.ab[k], rs.om[k], gamma)[0]).max()
        assert np.abs(gW).max() < 1e-10 * scale * max(1.0, np.abs(W).max()), t
        assert np.abs(gW_fd).max() < 1e-6 * scale * max(1.0, np.abs(W).max()), t
        assert np.abs(gb_fd).max() < 1e-6 * scale, t
        # The model's W is a minimum: any perturbation raises the penalised loss.
        L0 = ref_loss_data(W, b, X, rs.ab[k], rs.om[k], gamma)
        for _ in range(5):
            P = rng.standard_normal((d, d)) * 1e-2
            assert ref_loss_data(W + P, b, X, rs.ab[k], rs.om[k], gamma) > L0


# -------------------------------------------------------------- 3. training dynamics


def _gd_setup(N=7, d=6, T=6, seed=8):
    sch = Schedule.paper(T=T)
    rs = RefSchedule(sch.betas)
    tgt = GaussianTarget.power_law(d, 1.0, rotation="random", mean=0.5, rng=seed)
    X = tgt.sample(N, rng=seed + 1)
    return sch, rs, X, EmpiricalStats(X)


@pytest.mark.parametrize("init, gamma", [(0.0, 0.0), (0.3, 0.1)])
def test_gradient_flow_matches_euler_integration(init, gamma):
    """Euler steps of dW/dτ = −η ∇_W L (gradient from the data, b kept at −√ᾱ W μ̂) converge to
    lindiff's closed-form W_t(τ) at first order."""
    sch, rs, X, st = _gd_setup()
    d = X.shape[1]
    mu_hat = X.mean(axis=0)
    tau, lr = 1.5, 0.8
    model = LinearDiffusion(st, sch, ridge=gamma, train_time=tau, learning_rate=lr, init=init)
    for t in (1, sch.T):
        k = t - 1
        W_model, b_model = model.denoiser(t)
        errs = []
        for n in (2000, 4000):
            dt = tau / n
            W = init * np.eye(d)
            for _ in range(n):
                b = -math.sqrt(rs.ab[k]) * W @ mu_hat
                gW, _ = ref_grad_data(W, b, X, rs.ab[k], rs.om[k], gamma)
                W = W - dt * lr * gW
            errs.append(rel_err(W_model, W))
        assert errs[1] < 2e-3, (t, errs)
        assert 1.8 < errs[0] / errs[1] < 2.2, (t, errs)  # first order: the Euler error halves
        np.testing.assert_allclose(b_model, -math.sqrt(rs.ab[k]) * W_model @ mu_hat, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("init, gamma, frac", [(0.0, 0.0, 0.45), (0.0, 0.05, 0.95), (-0.2, 0.0, 0.8)])
def test_steps_equal_explicit_gradient_descent(init, gamma, frac):
    """steps=n is exactly n explicit GD steps W ← W − η ∇_W L (b kept at its optimum); η = frac/c_max
    (frac > 1/2 makes 1 − 2ηc negative for the top modes, so the iterates oscillate)."""
    sch, rs, X, st = _gd_setup()
    d = X.shape[1]
    mu_hat, S = ref_moments(X)
    c_max = max(rs.ab[k] * np.linalg.eigvalsh(S).max() + rs.om[k] + gamma for k in range(rs.T))
    lr = frac / c_max
    for n in (0, 1, 13, 60):
        model = LinearDiffusion(st, sch, ridge=gamma, steps=n, learning_rate=lr, init=init)
        for t in range(1, sch.T + 1):
            k = t - 1
            W = init * np.eye(d)
            for _ in range(n):
                b = -math.sqrt(rs.ab[k]) * W @ mu_hat
                gW, _ = ref_grad_data(W, b, X, rs.ab[k], rs.om[k], gamma)
                W = W - lr * gW
            W_model, _ = model.denoiser(t)
            assert np.abs(W_model - W).max() < 1e-12 * max(1.0, np.abs(W).max()), (n, t)


def test_unstable_learning_rate_raises():
    sch, rs, X, st = _gd_setup()
    _, S = ref_moments(X)
    c_max = max(rs.ab[k] * np.linalg.eigvalsh(S).max() + rs.om[k] for k in range(rs.T))
    LinearDiffusion(st, sch, steps=10, learning_rate=0.999 / c_max)  # stable: fine
    with pytest.raises(ValueError, match="unstable"):
        LinearDiffusion(st, sch, steps=10, learning_rate=1.001 / c_max)
    with pytest.raises(ValueError, match="unstable"):
        LinearDiffusion(st, sch, ridge=1.0, steps=10, learning_rate=0.999 / c_max)
    with pytest.raises(ValueError, match="unstable"):
        lindiff.evaluate_grid(st, GaussianTarget.power_law(X.shape[1], 0), sch, steps=[1, 5],
                              learning_rate=1.001 / c_max)
    # Gradient flow has no such limit.
    LinearDiffusion(st, sch, train_time=3.0, learning_rate=10.0 / c_max)


def test_training_time_limits():
    """τ = 0 (and n = 0) leave W = init·I; τ → ∞ (and None) give the optimum; only ητ matters."""
    sch, rs, X, st = _gd_setup()
    d = X.shape[1]
    opt = LinearDiffusion(st, sch).filters
    np.testing.assert_array_equal(LinearDiffusion(st, sch, train_time=np.inf).filters, opt)
    np.testing.assert_allclose(LinearDiffusion(st, sch, train_time=1e9).filters, opt, rtol=1e-12)
    for t0 in (LinearDiffusion(st, sch, train_time=0.0, init=0.25),
               LinearDiffusion(st, sch, steps=0, learning_rate=0.01, init=0.25)):
        np.testing.assert_allclose(t0.filters, np.full((sch.T, d), 0.25), rtol=1e-14)
    a = LinearDiffusion(st, sch, train_time=2.0, learning_rate=0.5).filters
    b = LinearDiffusion(st, sch, train_time=0.5, learning_rate=2.0).filters
    np.testing.assert_allclose(a, b, rtol=1e-13)


def test_model_of_given_moments_with_n_at_most_d_uses_that_covariance():
    """EmpiricalStats.from_moments(n, μ, Σ) with n ≤ d and a full-rank Σ: the model must either be
    refused (a covariance of n points has rank ≤ n − 1) or be the model of Σ. Silently zeroing the
    d − n + 1 smallest eigenvalues of Σ (while stats.cov still returns Σ) is wrong."""
    d, n = 6, 4
    sch = Schedule.paper(T=5)
    rs = RefSchedule(sch.betas)
    rng = np.random.default_rng(81)
    A = rng.standard_normal((d, d))
    cov = A @ A.T + np.eye(d)
    mu = rng.standard_normal(d)
    try:
        st = EmpiricalStats.from_moments(n, mu, cov)
    except ValueError:
        return  # refusing inconsistent moments is a correct answer
    np.testing.assert_allclose(st.cov, cov, rtol=1e-14)
    model = LinearDiffusion(st, sch)
    for t in (1, sch.T):
        W_ref = ref_W(cov, rs.ab[t - 1], rs.om[t - 1], 0.0, {})
        assert rel_err(model.denoiser(t)[0], W_ref) < 1e-10, t


# -------------------------------------------------------------- 4. losses: floor and the gap


def test_bayes_floor_is_the_loss_of_the_targets_own_optimal_denoiser():
    d, T = 10, 30
    sch = Schedule.paper(T=T)
    rs = RefSchedule(sch.betas)
    tgt = GaussianTarget.power_law(d, 1.3, rotation="random", mean=0.7, rng=12)
    st = EmpiricalStats(tgt.sample(50, rng=13))
    model = LinearDiffusion(st, sch)
    floor = model.bayes_floor(tgt)
    ref = []
    for k in range(T):
        W = math.sqrt(rs.om[k]) * np.linalg.solve(rs.ab[k] * tgt.cov + rs.om[k] * np.eye(d), np.eye(d))
        b = -math.sqrt(rs.ab[k]) * W @ tgt.mean
        ref.append(ref_loss(W, b, tgt.mean, tgt.cov, rs.ab[k], rs.om[k]))
    np.testing.assert_allclose(floor, ref, rtol=1e-11)
    # It is a floor: no trained model does better on the target, whatever the ridge or τ.
    for kw in ({}, {"ridge": 0.1}, {"train_time": 2.0}):
        assert (LinearDiffusion(st, sch, **kw).test_loss(tgt) >= floor * (1 - 1e-12)).all()
    # The model built from the exact moments reaches it.
    exact = LinearDiffusion(EmpiricalStats.from_moments(10**12, tgt.mean, tgt.cov), sch)
    np.testing.assert_allclose(exact.test_loss(tgt), floor, rtol=1e-10)


def test_train_test_gap_at_t1_is_the_null_directions():
    """N < d, γ = 0: at t = 1 each null direction v of Σ̂ adds ≈ (ᾱ₁/(1−ᾱ₁)) vᵀΣv to the test loss
    and nothing to the train loss (theory.md §5): about 10⁴ per null direction here."""
    d, N, T = 20, 8, 100
    sch = Schedule.paper(T=T)
    rs = RefSchedule(sch.betas)
    tgt = GaussianTarget.power_law(d, 0.5, rotation="random", rng=14)
    X = tgt.sample(N, rng=15)
    _, S = ref_moments(X)
    ev, V = np.linalg.eigh(S)
    null = V[:, ev < 1e-10 * ev.max()]
    assert null.shape[1] == d - N + 1
    predicted = rs.ab[0] / rs.om[0] * np.einsum("ji,jk,ki->", null, tgt.cov, null)
    model = LinearDiffusion(EmpiricalStats(X), sch)
    gap = model.test_loss(tgt) - model.train_loss()
    # The order of magnitude: ᾱ₁/(1−ᾱ₁) ≈ 9.9·10³ times the target variance in the null space.
    assert 1e3 * (d - N) < predicted < 1e5 * (d - N)
    assert gap[0] > 1e3 * (d - N)
    assert 0.9 < gap[0] / predicted < 1.3, (gap[0], predicted)
    # The train loss is tiny there: it does not see the null directions at all.
    assert model.train_loss()[0] < 1e-2 * gap[0]
    # A ridge closes most of the gap at t = 1.
    ridged = LinearDiffusion(EmpiricalStats(X), sch, ridge=0.1)
    assert (ridged.test_loss(tgt) - ridged.train_loss())[0] < 1e-3 * gap[0]


# -------------------------------------------------------------- 5. KL of the model


@pytest.mark.parametrize("N", [6, 40])
@pytest.mark.parametrize("kw", [{}, {"ridge": 0.05}, {"train_time": 5.0}], ids=["opt", "ridge", "flow"])
def test_model_kl_equals_kl_divergence_of_its_law(N, kw):
    d = 12
    sch = Schedule.paper(T=60)
    tgt = GaussianTarget.power_law(d, 1.0, rotation="random", mean=0.2, rng=21)
    axis = GaussianTarget.power_law(d, 2.0)  # axis-aligned target: the other code path
    model = LinearDiffusion(EmpiricalStats(tgt.sample(N, rng=22)), sch, **kw)
    for sampler, sigma, fn in CHAINS:
        g = model.sampling_distribution(sigma=sigma, final_noise=fn, sampler=sampler)
        for target in (tgt, axis):
            got = model.kl(target, sigma=sigma, final_noise=fn, sampler=sampler)
            fwd = lindiff.kl_divergence(target, g)
            rev = lindiff.kl_divergence(g, target)
            for a, b in ((got["forward"], fwd), (got["reverse"], rev)):
                if math.isinf(b):
                    assert a == math.inf
                else:
                    assert a == pytest.approx(b, rel=1e-10, abs=1e-12)


@pytest.mark.parametrize(
    "options",
    [
        {"final_noise": False},
        {"sigma": "beta_tilde"},  # β̃₁ = 0: no noise at the last step either
        {"sampler": "ddim"},
    ],
    ids=["ddpm-no-final-noise", "ddpm-beta-tilde", "ddim"],
)
def test_kl_is_inf_when_generated_law_is_degenerate(options):
    d, N = 15, 6
    sch = Schedule.paper(T=50)
    tgt = GaussianTarget.power_law(d, 1.0, rotation="random", rng=31)
    st = EmpiricalStats(tgt.sample(N, rng=32))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = LinearDiffusion(st, sch)
        g = model.sampling_distribution(**options)
        assert g.is_degenerate
        # Exactly d − N + 1 null directions, each with generated variance exactly 0.
        assert np.count_nonzero(g.eigvals == 0.0) == d - N + 1
        both = model.kl(tgt, **options)
        assert both == {"forward": math.inf, "reverse": math.inf}
        assert model.kl(tgt, "forward", **options) == math.inf
        assert lindiff.kl_divergence(tgt, g) == math.inf
        grid = lindiff.evaluate_grid(st, tgt, sch, ridge=[0.0, 0.1], train_time=[np.inf, 3.0], **options)
        assert not np.isnan(grid.kl_forward).any() and not np.isnan(grid.kl_reverse).any()
        # Only (γ = 0, τ = ∞) is degenerate; a ridge or early stopping gives a density.
        assert np.isinf(grid.kl_forward[0, 0]) and np.isinf(grid.kl_reverse[0, 0])
        assert np.isfinite(grid.kl_forward).sum() == 3 and np.isfinite(grid.kl_reverse).sum() == 3
        # With noise at the last step the law has a density and the KL is finite (but huge).
        finite = model.kl(tgt)
        assert 1e3 < finite["forward"] < math.inf and 0 < finite["reverse"] < math.inf


# -------------------------------------------------------------- 6. grids and optima


@pytest.fixture(scope="module")
def grid_setup():
    d, N = 16, 9
    sch = Schedule.paper(T=80)
    tgt = GaussianTarget.power_law(d, 1.0, rotation="random", mean=0.3, rng=41)
    st = EmpiricalStats(tgt.sample(N, rng=42))
    return st, tgt, sch


@pytest.mark.parametrize("options", [{}, {"sampler": "ddim"}, {"sigma": "beta_tilde", "final_noise": True}],
                         ids=["ddpm", "ddim", "beta-tilde"])
def test_evaluate_grid_matches_per_setting_models(grid_setup, options):
    st, tgt, sch = grid_setup
    ridges = [0.0, 1e-3, 0.1, 2.0]
    times = [0.3, 10.0, np.inf]
    g = lindiff.evaluate_grid(st, tgt, sch, ridge=ridges, train_time=times, **options)
    assert g.kl_forward.shape == (4, 3) == g.test_loss.shape
    np.testing.assert_array_equal(g.ridge, ridges)
    np.testing.assert_array_equal(g.times, times)
    for i, r in enumerate(ridges):
        for j, tau in enumerate(times):
            m = LinearDiffusion(st, sch, ridge=r, train_time=tau)
            kl = m.kl(tgt, **options)
            for got, ref in ((g.kl_forward[i, j], kl["forward"]), (g.kl_reverse[i, j], kl["reverse"]),
                             (g.train_loss[i, j], m.train_loss().mean()),
                             (g.test_loss[i, j], m.test_loss(tgt).mean())):
                if math.isinf(ref):
                    assert got == ref
                else:
                    assert got == pytest.approx(ref, rel=1e-12, abs=0), (r, tau)


def test_evaluate_grid_steps_matches_per_setting_models(grid_setup):
    st, tgt, sch = grid_setup
    steps = [0, 3, 40]
    g = lindiff.evaluate_grid(st, tgt, sch, ridge=[0.0, 0.5], steps=steps, learning_rate=0.02)
    for i, r in enumerate([0.0, 0.5]):
        for j, n in enumerate(steps):
            m = LinearDiffusion(st, sch, ridge=r, steps=n, learning_rate=0.02)
            assert g.kl_forward[i, j] == pytest.approx(m.kl(tgt, "forward"), rel=1e-12)
            assert g.test_loss[i, j] == pytest.approx(m.test_loss(tgt).mean(), rel=1e-12)


def test_evaluate_grid_is_identical_for_any_number_of_workers(grid_setup):
    st, tgt, sch = grid_setup
    ridges = np.geomspace(1e-5, 10, 23)
    times = np.concatenate((np.geomspace(0.01, 1e4, 17), [np.inf]))
    results = [lindiff.evaluate_grid(st, tgt, sch, ridge=ridges, train_time=times, workers=w)
               for w in (1, 2, 7)]
    for other in results[1:]:
        for f in ("kl_forward", "kl_reverse", "train_loss", "test_loss"):
            assert np.array_equal(getattr(results[0], f), getattr(other, f)), f


def _per_mode_reference(rs, lam, ridges, trainings, sampler, sigma2, energies):
    """The grid kernel's outputs from theory.md §3–§5 written per mode in NumPy: the filter
    w = √(1−ᾱ)(1−e)/c + init·e with e = exp(−2ητc) (flow) or (1−2ηc)ⁿ (GD), the chain coefficient
    a_t, the mean gain g (μ_gen = U diag(g) Uᵀμ̂), the variance s₀ and the per-t losses."""
    T = rs.T
    out_var, out_gain, out_loss = [], [], []
    for gam in ridges:
        for kind, time, lr, init in trainings:
            var = np.ones_like(lam)
            gain = np.zeros_like(lam)
            loss = np.zeros((len(energies), T))
            for k in range(T - 1, -1, -1):
                ab, om, beta, abp = rs.ab[k], rs.om[k], rs.beta[k], rs.abp[k]
                c = ab * lam + gam[k] + om
                if kind == 0:
                    e = np.zeros_like(lam)
                elif kind == 1:
                    e = np.exp(-2.0 * lr * time * c)
                else:
                    e = (1.0 - 2.0 * lr * c) ** time
                w = math.sqrt(om) * (1.0 - e) / c + init * e
                if sampler == 0:
                    kap = beta / math.sqrt(om)
                    a = (1.0 - kap * w) / math.sqrt(1.0 - beta)
                    gcoef = kap * math.sqrt(ab) / math.sqrt(1.0 - beta)
                    var = a * a * var + sigma2[k]
                else:
                    q = math.sqrt(1.0 - abp) - math.sqrt(abp * om / ab)
                    a = math.sqrt(abp / ab) * (1.0 - math.sqrt(om) * w) + math.sqrt(1.0 - abp) * w
                    gcoef = -q * math.sqrt(ab)
                    var = a * a * var
                gain = a * gain + gcoef * w
                for q_, en in enumerate(energies):
                    loss[q_, k] = np.sum((1.0 - math.sqrt(om) * w) ** 2) + ab * np.sum(w * w * en)
            out_var.append(var)
            out_gain.append(gain)
            out_loss.extend(loss)
    return np.array(out_var), np.array(out_gain), np.array(out_loss)


@pytest.mark.parametrize("sampler", [0, 1], ids=["ddpm", "ddim"])
def test_grid_kernel_matches_per_mode_numpy_over_several_chunks(sampler):
    # d = 150 spans three chunks of the kernel's 64 modes (the last one partial); three energies take
    # its generic loss path; scalar and per-t ridges, optimum, flow over nine decades of ητ (the
    # kernel's own exp, down to underflow), GD, and init ≠ 0.
    from lindiff import _core

    rng = np.random.default_rng(5)
    sch = Schedule.paper(T=40)
    rs = RefSchedule(sch.betas)
    d = 150
    lam = np.sort(rng.gamma(0.7, 2.0, d))[::-1].copy()
    lam[-20:] = 0.0  # null directions
    ridges = np.stack([np.zeros(40), np.full(40, 0.3), np.geomspace(1e-4, 2.0, 40)])
    trainings = [(0, 0.0, 1.0, 0.0), (1, 1e-3, 1.0, 0.0), (1, 2.5, 0.4, 0.0), (1, 1e6, 1.0, 0.0),
                 (1, 3.0, 1.0, 0.35), (2, 12.0, 0.05, 0.0), (2, 5.0, 0.08, -0.2)]
    energies = np.abs(rng.normal(size=(3, d)))
    sigma2 = np.asarray(sch.betas, float).copy()
    m = LinearDiffusion(EmpiricalStats.from_moments(400, np.zeros(d), np.diag(lam)), sch)
    var, gain, losses = _core.evaluate_grid(*m._sched_arrays(), lam, ridges, trainings, sampler, sigma2,
                                            energies, 2)
    rv, rg, rl = _per_mode_reference(rs, lam, ridges, trainings, sampler, sigma2, energies)
    assert var.shape == rv.shape == (21, d) and losses.shape == rl.shape == (63, 40)
    # Relative accuracy, with an absolute floor at 1e-14 of the array's scale for entries that
    # cancel (the kernel closes DDIM's null directions at t = 1 exactly, where the reference's
    # rounding leaves ~1e-35).
    for got, ref in ((var, rv), (gain, rg), (losses, rl)):
        np.testing.assert_allclose(got, ref, rtol=1e-11, atol=1e-14 * np.abs(ref).max())
    # and the kernel itself is not trivially close: a wrong filter (no ridge) is far off
    wrong = _per_mode_reference(rs, lam, np.zeros_like(ridges), trainings, sampler, sigma2, energies)[0]
    assert np.abs(wrong - rv).max() > 1e-3 * np.abs(rv).max()


@pytest.mark.parametrize("objective", ["kl_forward", "kl_reverse", "test_loss"])
def test_optimal_ridge_and_stopping_find_interior_minima(grid_setup, objective):
    st, tgt, sch = grid_setup
    around = np.array([1.0, 0.97, 1.03, 0.8, 1.25, 0.1, 10.0])
    res = lindiff.optimal_ridge(st, tgt, sch, objective=objective)
    assert not res.at_boundary
    assert 1e-6 < res.argmin < 1e2
    g = lindiff.evaluate_grid(st, tgt, sch, ridge=res.argmin * around)
    vals = getattr(g, objective)[:, 0]
    assert vals[0] == pytest.approx(res.value, rel=1e-12)
    assert (vals[1:] >= res.value * (1 - 1e-9)).all(), vals
    assert vals[5] > res.value and vals[6] > res.value
    # Interior for N < d: strictly better than no ridge (and than a huge one).
    none = getattr(lindiff.evaluate_grid(st, tgt, sch, ridge=[0.0, 1e4]), objective)[:, 0]
    assert res.value < none[0] and res.value < none[1]

    stop = lindiff.optimal_stopping(st, tgt, sch, objective=objective)
    assert not stop.at_boundary
    g = lindiff.evaluate_grid(st, tgt, sch, train_time=stop.argmin * around)
    vals = getattr(g, objective)[0, :]
    assert vals[0] == pytest.approx(stop.value, rel=1e-12)
    assert (vals[1:] >= stop.value * (1 - 1e-9)).all(), vals
    assert vals[5] > stop.value and vals[6] > stop.value
    inf = getattr(lindiff.evaluate_grid(st, tgt, sch, train_time=[np.inf, 1e-3]), objective)[0, :]
    assert stop.value < inf[0] and stop.value < inf[1]


# -------------------------------------------------------------- 7. the large-N law (claim 2)


@pytest.mark.parametrize("k", [0, 1])
def test_kl_excess_follows_large_n_law(k):
    """For N ≫ d: E[KL − KL_opt]·4N/(d²+3d) → 1 (theory.md §6 claim 2), with the model's exact
    sampling law in place of the ideal sampler; KL_opt is the model of the exact moments."""
    d, N, seeds = 20, 20000, 40
    sch = Schedule.paper()
    tgt = GaussianTarget.power_law(d, k, mean=0.5)
    opt = LinearDiffusion(EmpiricalStats.from_moments(10**12, tgt.mean, tgt.cov), sch).kl(tgt)
    scale = 4 * N / (d * d + 3 * d)
    for direction in ("forward", "reverse"):
        ratios = np.array([
            (LinearDiffusion(tgt.empirical_stats(N, rng=s), sch).kl(tgt, direction) - opt[direction]) * scale
            for s in range(seeds)
        ])
        se = ratios.std(ddof=1) / math.sqrt(seeds)
        assert 0.05 < ratios.std(ddof=1) < 0.3  # the per-seed spread is ≈ √(4/(d²+3d)) ≈ 0.09
        assert abs(ratios.mean() - 1.0) < min(0.05, 4 * se), (direction, ratios.mean(), se)


def test_default_sampler_reproduces_the_training_spectrum():
    """theory.md §4: with σ_t² = β_t (paper schedule, T = 1000) the generated variance s₀ is within
    about 0.6% of λ̂ for λ̂ ∈ [0.1, 10], closer than with β̃_t."""
    lam = np.geomspace(0.1, 10.0, 41)
    st = EmpiricalStats.from_moments(10**12, np.zeros(41), np.diag(lam))
    model = LinearDiffusion(st)
    dev = {}
    for sigma in ("beta", "beta_tilde"):
        s0 = model.sampling_distribution(sigma=sigma).cov.diagonal()
        dev[sigma] = np.abs(s0 / lam - 1).max()
    assert dev["beta"] < 0.006 < dev["beta_tilde"], dev


# -------------------------------------------------------------- 8. headline claims (small sizes)


def _models(tgt, N, sch, seeds):
    return [LinearDiffusion(EmpiricalStats(tgt.sample(N, rng=1000 + s)), sch) for s in range(seeds)]


def test_claim1_transition_at_n_equals_d():
    d = 24
    sch = Schedule.paper(T=200)
    tgt = GaussianTarget.power_law(d, 1.0, rotation="random", rng=51)
    stats = {}
    for N in (d // 2, 2 * d):
        ms = _models(tgt, N, sch, 4)
        stats[N] = {
            "fwd": np.median([m.kl(tgt, "forward") for m in ms]),
            "rev": np.median([m.kl(tgt, "reverse") for m in ms]),
            "gap": np.median([(m.test_loss(tgt) - m.train_loss()).mean() for m in ms]),
        }
    lo, hi = stats[d // 2], stats[2 * d]
    assert lo["fwd"] > 1e3 * hi["fwd"], stats  # forward KL: orders of magnitude
    assert lo["rev"] > 10 * hi["rev"], stats  # reverse KL: one order of magnitude
    assert lo["gap"] > 100 * hi["gap"], stats  # the train/test gap collapses by N ≈ 2d
    assert hi["gap"] < 0.5 * d  # ... to O(d²/N)


def test_claim3_ridge_and_early_stopping_lower_kl_by_orders_of_magnitude():
    d, N = 24, 12
    sch = Schedule.paper(T=200)
    for k in (0, 1, 2):
        tgt = GaussianTarget.power_law(d, k, rotation="random", rng=61)
        st = EmpiricalStats(tgt.sample(N, rng=62))
        base = lindiff.evaluate_grid(st, tgt, sch)
        r = lindiff.optimal_ridge(st, tgt, sch, objective="kl_forward")
        s = lindiff.optimal_stopping(st, tgt, sch, objective="kl_forward")
        assert not r.at_boundary and not s.at_boundary
        assert base.kl_forward[0, 0] > 100 * r.value, (k, base.kl_forward, r)
        assert base.kl_forward[0, 0] > 100 * s.value, (k, base.kl_forward, s)
        # Reverse KL: interior optima too, but the gain is only 3-30x (not orders of magnitude).
        r = lindiff.optimal_ridge(st, tgt, sch, objective="kl_reverse")
        s = lindiff.optimal_stopping(st, tgt, sch, objective="kl_reverse")
        assert not r.at_boundary and not s.at_boundary
        assert base.kl_reverse[0, 0] > 3 * r.value and base.kl_reverse[0, 0] > 3 * s.value


def test_claim4_hierarchical_spectra_shrink_the_gap():
    """At fixed N < d the null directions of Σ̂ hold less target variance when the spectrum is
    steeper (with tr Σ = d), so the train/test gap, mean over t, shrinks from k = 0 to k = 2;
    so does the (γ = 0) KL in both directions."""
    d, N, seeds = 24, 12, 4
    sch = Schedule.paper(T=200)
    res = {}
    for k in (0, 2):
        tgt = GaussianTarget.power_law(d, k, rotation="random", rng=71)
        ms = _models(tgt, N, sch, seeds)
        res[k] = {
            "gap": np.array([(m.test_loss(tgt) - m.train_loss()).mean() for m in ms]),
            "fwd": np.array([m.kl(tgt, "forward") for m in ms]),
            "rev": np.array([m.kl(tgt, "reverse") for m in ms]),
        }
    assert res[2]["gap"].max() < 0.5 * res[0]["gap"].min(), res
    assert res[2]["fwd"].max() < 0.5 * res[0]["fwd"].min(), res
    assert np.median(res[2]["rev"]) < np.median(res[0]["rev"]), res


# -------------------------------------------------------------- 9. bad input


@pytest.fixture(scope="module")
def small():
    sch = Schedule.paper(T=10)
    tgt = GaussianTarget.power_law(4, 1.0)
    st = EmpiricalStats(tgt.sample(9, rng=0))
    return st, tgt, sch, LinearDiffusion(st, sch)


@pytest.mark.parametrize("betas", [[0.1, 1.0], [0.0, 0.2], [-0.01, 0.1], [0.5, 1.5]])
def test_schedule_betas_outside_unit_interval(betas):
    with pytest.raises(ValueError, match=r"strictly inside \(0, 1\)"):
        Schedule(betas)


def test_bad_ridge(small):
    st, tgt, sch, _ = small
    with pytest.raises(ValueError, match="ridge must be a scalar or have length T = 10"):
        LinearDiffusion(st, sch, ridge=np.ones(9))
    with pytest.raises(ValueError, match="ridge must be a scalar or have length T"):
        LinearDiffusion(st, sch, ridge=np.ones((10, 1)))
    with pytest.raises(ValueError, match="ridge must be >= 0"):
        LinearDiffusion(st, sch, ridge=-0.1)
    with pytest.raises(ValueError, match="ridge must be >= 0"):
        LinearDiffusion(st, sch, ridge=np.r_[np.ones(9), -1e-9])
    with pytest.raises(ValueError, match="ridge must be finite"):
        LinearDiffusion(st, sch, ridge=np.nan)
    with pytest.raises(ValueError, match="ridge must be finite"):
        LinearDiffusion(st, sch, ridge=np.r_[np.nan, np.ones(9)])
    with pytest.raises(ValueError, match="ridge must be finite"):
        LinearDiffusion(st, sch, ridge=np.inf)
    with pytest.raises(ValueError, match="ridge grid is empty"):
        lindiff.evaluate_grid(st, tgt, sch, ridge=[])
    with pytest.raises(ValueError, match="ridge must be >= 0"):
        lindiff.evaluate_grid(st, tgt, sch, ridge=[0.1, -1.0])
    with pytest.raises(ValueError, match="ridge must be finite"):
        lindiff.evaluate_grid(st, tgt, sch, ridge=[0.1, np.nan])


def test_bad_training_options(small):
    st, tgt, sch, _ = small
    with pytest.raises(ValueError, match="train_time must be >= 0"):
        LinearDiffusion(st, sch, train_time=-1.0)
    with pytest.raises(ValueError, match="train_time must be >= 0"):
        LinearDiffusion(st, sch, train_time=np.nan)
    with pytest.raises(ValueError, match="not both"):
        LinearDiffusion(st, sch, train_time=1.0, steps=3)
    for lr in (0.0, -0.5, np.nan, np.inf):
        with pytest.raises(ValueError, match="learning_rate must be a positive"):
            LinearDiffusion(st, sch, train_time=1.0, learning_rate=lr)
    with pytest.raises(ValueError, match="learning_rate must be a positive"):
        LinearDiffusion(st, sch, steps=3, learning_rate=0.0)
    with pytest.raises(ValueError, match="steps must be >= 0"):
        LinearDiffusion(st, sch, steps=-1, learning_rate=0.01)
    with pytest.raises(ValueError, match="train_time must be >= 0"):
        lindiff.evaluate_grid(st, tgt, sch, train_time=[1.0, -2.0])
    with pytest.raises(ValueError, match="train_time must be >= 0"):
        lindiff.evaluate_grid(st, tgt, sch, train_time=[np.nan])
    with pytest.raises(ValueError, match="not both"):
        lindiff.evaluate_grid(st, tgt, sch, train_time=[1.0], steps=[2])
    with pytest.raises(ValueError, match="training-time grid is empty"):
        lindiff.evaluate_grid(st, tgt, sch, train_time=[])
    with pytest.raises(ValueError, match="learning_rate must be a positive"):
        lindiff.evaluate_grid(st, tgt, sch, train_time=[1.0], learning_rate=-1.0)


def test_evaluate_grid_rejects_non_integer_step_counts(small):
    """LinearDiffusion(steps=2.5) raises; evaluate_grid(steps=[2.5]) must not silently run 2 steps
    (while reporting times = [2.5]), and NaN/inf step counts need the same clear message."""
    st, tgt, sch, _ = small
    with pytest.raises(TypeError, match="steps must be an integer"):
        LinearDiffusion(st, sch, steps=2.5, learning_rate=0.01)
    for bad in ([2.5], [3, 0.5], [np.nan], [np.inf]):
        with pytest.raises((TypeError, ValueError), match="steps must be an integer"):
            lindiff.evaluate_grid(st, tgt, sch, steps=bad, learning_rate=0.01)
    # Integral floats are accepted, as by LinearDiffusion, and mean that many steps.
    g = lindiff.evaluate_grid(st, tgt, sch, steps=[3.0], learning_rate=0.01)
    assert g.kl_forward[0, 0] == LinearDiffusion(st, sch, steps=3, learning_rate=0.01).kl(tgt, "forward")


def test_target_of_wrong_dimension(small):
    st, tgt, sch, model = small
    wrong = GaussianTarget.power_law(5, 1.0)
    with pytest.raises(ValueError, match="dimension 5 but the model has d = 4"):
        model.kl(wrong)
    with pytest.raises(ValueError, match="dimension 5 but the model has d = 4"):
        model.test_loss(wrong)
    with pytest.raises(ValueError, match="dimension 4"):
        model.bayes_floor(wrong)
    with pytest.raises(ValueError, match="dimension 5 but the model has d = 4"):
        lindiff.evaluate_grid(st, wrong, sch)
    with pytest.raises(ValueError, match="mean has length 5"):
        model.test_loss(mean=np.zeros(5), cov=np.eye(4))
    with pytest.raises(ValueError, match="cov must be a finite 4x4"):
        model.test_loss(mean=np.zeros(4), cov=np.eye(5))
    with pytest.raises(ValueError, match="give a target, or both mean and cov"):
        model.test_loss(mean=np.zeros(4))
    with pytest.raises(ValueError, match="not both"):
        model.test_loss(tgt, mean=np.zeros(4), cov=np.eye(4))


def test_t_and_x_out_of_range(small):
    _, _, _, model = small
    for t in (0, -1):
        with pytest.raises(ValueError, match="t must be >= 1"):
            model.denoiser(t)
    with pytest.raises(ValueError, match=r"t must be in 1\.\.T = 10"):
        model.denoiser(11)
    with pytest.raises(ValueError, match=r"t must be in 1\.\.T = 10"):
        model.predict_noise(np.zeros(4), 11)
    with pytest.raises(TypeError, match="t must be an integer"):
        model.denoiser(1.5)
    for x in (np.zeros((3, 5)), np.zeros(5), np.zeros((2, 3, 4)), np.zeros((4, 3))):
        with pytest.raises(ValueError, match=r"x must have shape \(n, 4\)"):
            model.predict_noise(x, 1)
    with pytest.raises(ValueError, match="NaN or inf"):
        model.predict_noise(np.array([0.0, np.nan, 0.0, 0.0]), 1)


def test_bad_option_strings(small):
    st, tgt, sch, model = small
    with pytest.raises(ValueError, match="sigma must be 'beta' or 'beta_tilde'"):
        model.sampling_distribution(sigma="betas")
    with pytest.raises(ValueError, match="sigma must be 'beta' or 'beta_tilde'"):
        model.kl(tgt, sigma="tilde")
    with pytest.raises(ValueError, match="sampler must be 'ddpm' or 'ddim'"):
        model.sampling_distribution(sampler="euler")
    with pytest.raises(ValueError, match="sampler must be 'ddpm' or 'ddim'"):
        lindiff.evaluate_grid(st, tgt, sch, sampler="DDPM")
    with pytest.raises(ValueError, match="direction must be 'forward', 'reverse' or 'both'"):
        model.kl(tgt, "backward")
    with pytest.raises(ValueError, match="direction must be"):
        lindiff.kl_pair(tgt, tgt, "fwd")
    with pytest.raises(ValueError, match="objective must be one of"):
        lindiff.optimal_ridge(st, tgt, sch, objective="kl")
    with pytest.raises(ValueError, match="bounds must satisfy"):
        lindiff.optimal_ridge(st, tgt, sch, bounds=(0.0, 1.0))
    with pytest.raises(ValueError, match="searches over train_time itself"):
        lindiff.optimal_stopping(st, tgt, sch, train_time=[1.0])
    with pytest.raises(TypeError, match="final_noise must be True or False"):
        model.sampling_distribution(final_noise="no")
    with pytest.raises(TypeError, match="stats must be a lindiff.EmpiricalStats"):
        LinearDiffusion(np.zeros((3, 4)), sch)
