"""SGD-trained affine denoisers (lindiff.training) against independent references.

References used here: a NumPy implementation of the SGD update in the residual form (same noise),
the closed-form expected trajectory (discrete GD) and gradient flow of theory.md §3 with a tolerance
derived from the gradient-noise variance, an independent expansion of the §5 loss, the §4 recursion
written from the theory's A_t, c_t, and Monte Carlo samples of the dense sampler.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import lindiff
from lindiff import AffineDenoisers, EmpiricalStats, Gaussian, LinearDiffusion, Schedule
from lindiff.training import compare_with_gradient_flow, gradient_flow_denoisers, train_denoisers

SCHED = Schedule.paper(1000)
TS = [1, 30, 300, 1000]


def _data(N: int = 40, d: int = 6, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    scales = np.linspace(0.4, 1.6, d)
    Q = np.linalg.qr(rng.standard_normal((d, d)))[0]
    return (rng.standard_normal((N, d)) * scales) @ Q.T + np.linspace(-1.0, 1.0, d)


# ---------------------------------------------------------------------- the update itself
def _numpy_sgd(X, sub, eta, gam, noise, center, draws):
    """Full-batch SGD in the residual form, from W = 0, b = 0, with given noise (steps, K, N·r, d)."""
    N, d = X.shape
    K = sub.T
    mu = X.mean(axis=0)
    X0 = X - mu if center else X
    ab = np.asarray(sub.alphas_bar)
    W = np.zeros((K, d, d))
    b = np.zeros((K, d))
    for k in range(K):
        a, s = math.sqrt(ab[k]), math.sqrt(1.0 - ab[k])
        for n in range(noise.shape[0]):
            eps = noise[n, k]  # row p·r + j: point p, draw j
            x = a * np.repeat(X0, draws, axis=0) + s * eps
            res = x @ W[k].T + b[k] - eps
            M = x.shape[0]
            gW = 2.0 * (res.T @ x) / M + 2.0 * gam * W[k]
            gb = 2.0 * res.sum(axis=0) / M
            W[k] -= eta * gW
            b[k] -= eta * gb
    if center:
        b = b - np.sqrt(ab)[:, None] * (W @ mu)
    return W, b


@pytest.mark.parametrize("center, draws", [(True, 1), (True, 2), (False, 3)])
def test_update_matches_numpy_residual_form(center, draws):
    X = _data(N=7, d=5)
    sub = SCHED.respace(TS[:3])
    steps, eta, gam = 3, 0.1, 0.05
    noise = np.random.default_rng(3).standard_normal((steps, 3, 7 * draws, 5))
    res = train_denoisers(X, SCHED, timesteps=TS[:3], learning_rate=eta, steps=steps, noise_draws=draws,
                          ridge=gam, center=center, _noise=noise)
    W, b = _numpy_sgd(X, sub, eta, gam, noise, center, draws)
    np.testing.assert_allclose(res.denoisers.W, W, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(res.denoisers.b, b, rtol=1e-11, atol=1e-12)
    assert np.abs(W).max() > 1e-3  # the update did something


# ---------------------------------------------------------------------- convergence to the closed form
def _gradient_noise_bound(X, sub, paths, batch_pairs, rng):
    """s_k² ≥ mean over pairs of E‖r x̃ᵀ‖²_F = E[‖r‖²(‖x‖² + 1)] along the expected path (centred
    coordinates, b' = 0), by Monte Carlo with 64 noises per point; max over the path points."""
    Xc = X - X.mean(axis=0)
    ab = np.asarray(sub.alphas_bar)
    out = np.zeros(sub.T)
    for Wpath in paths:
        for k in range(sub.T):
            eps = rng.standard_normal((64,) + Xc.shape)
            x = math.sqrt(ab[k]) * Xc + math.sqrt(1 - ab[k]) * eps
            r = x @ Wpath[k].T - eps
            out[k] = max(out[k], float(np.mean(np.sum(r * r, -1) * (np.sum(x * x, -1) + 1.0))))
    return out


def _contraction(X, sub, eta, gam):
    """ρ_k = ‖I − 2ηM_k‖₂ for the centred M_k = diag(C_k, 1), C_k = ᾱΣ̂ + (1−ᾱ+γ)I."""
    lam = np.linalg.eigvalsh(np.cov(X, rowvar=False, bias=True))
    ab = np.asarray(sub.alphas_bar)
    rho = np.empty(sub.T)
    for k in range(sub.T):
        mus = np.concatenate([ab[k] * lam + 1 - ab[k] + gam, [1.0]])
        rho[k] = np.max(np.abs(1 - 2 * eta * mus))
    return rho


@pytest.mark.parametrize("batch_size, draws, eta, n, runs, rel", [(None, 256, 0.05, 200, 1, 0.1), (20, 8, 0.01, 1000, 8, 0.25)])
def test_sgd_converges_to_closed_form(batch_size, draws, eta, n, runs, rel):
    """E[W_n] is exactly n GD steps; the deviation D_n = −η Σ_k Ξ_k (I − 2ηM)^{n−1−k} has
    E‖D_n‖² ≤ η² · 4s²/m · Σ_j ρ^{2j} ≤ η² · 4s²/m · min(n, 1/(1−ρ²)), where m = N·r pairs (full batch,
    noise only) or m = B (minibatch: the batch-sampling variance is bounded by the per-point second
    moment), Ξ = 2(mean of r x̃ᵀ − its expectation), s² the per-pair E‖r x̃ᵀ‖². We allow 5 standard
    deviations of that bound (doubled s² for the SGD path's distance from the GD path), plus, against
    the gradient flow, the exact distance between discrete GD and flow from the closed forms. For
    minibatches (larger gradient noise) we average ``runs`` independent runs: variance / runs."""
    X = _data()
    N = X.shape[0]
    sub = SCHED.respace(TS)
    fits = [train_denoisers(X, SCHED, timesteps=TS, learning_rate=eta, steps=n, noise_draws=draws,
                            batch_size=batch_size, rng=11 + i).denoisers for i in range(runs)]
    Wmean = np.mean([f.W for f in fits], axis=0)
    bmean = np.mean([f.b for f in fits], axis=0)
    gd = gradient_flow_denoisers(X, SCHED, timesteps=TS, learning_rate=eta, train_time=n, discrete=True)
    flow = gradient_flow_denoisers(X, SCHED, timesteps=TS, learning_rate=eta, train_time=n)
    paths = [gradient_flow_denoisers(X, SCHED, timesteps=TS, learning_rate=eta, train_time=m,
                                     discrete=True).W for m in (n // 8, n // 2, n)]
    s2 = 2.0 * _gradient_noise_bound(X, sub, paths, None, np.random.default_rng(5))
    rho = _contraction(X, sub, eta, 0.0)
    m = N * draws if batch_size is None else batch_size
    var = eta**2 * 4 * s2 / m * np.minimum(n, 1.0 / (1.0 - rho**2)) / runs
    tol = 5.0 * np.sqrt(var)
    mu = X.mean(axis=0)
    sa = np.sqrt(np.asarray(sub.alphas_bar))
    for k in range(sub.T):
        dW = Wmean[k] - gd.W[k]
        db_centred = bmean[k] + sa[k] * Wmean[k] @ mu  # b' (expectation 0)
        dist = math.sqrt(np.sum(dW**2) + np.sum(db_centred**2))
        assert dist <= tol[k], (k, dist, tol[k])
        # The tolerance is meaningful: small against W itself and against W at half the training time.
        if k >= 2:  # t = 300, 1000. At small t the noise is hardly visible in x_t (√(1−ᾱ) ≈ 0.01), the
            # gradient noise is large against W_t ≈ √(1−ᾱ)/(ᾱλ̂): there the bound is looser than W itself.
            assert tol[k] < rel * np.linalg.norm(gd.W[k]), (k, tol[k], np.linalg.norm(gd.W[k]))
        # Against the gradient flow at τ = n: add the exact GD-vs-flow distance.
        gap = np.linalg.norm(gd.W[k] - flow.W[k])
        assert np.linalg.norm(Wmean[k] - flow.W[k]) <= tol[k] + gap
    # ... and against the change of W between ητ = 0.25 and ητ = ηn = 10 (where training still moves W).
    early = gradient_flow_denoisers(X, SCHED, timesteps=TS, learning_rate=eta, train_time=n // 40, discrete=True)
    assert np.linalg.norm(early.W[2] - gd.W[2]) > 2 * tol[2]


def test_centred_closed_form_is_linear_diffusion():
    X = _data()
    st = EmpiricalStats(X)
    sub = SCHED.respace(TS)
    for discrete in (False, True):
        ref = gradient_flow_denoisers(X, SCHED, timesteps=TS, learning_rate=0.05, train_time=40, ridge=0.1,
                                      discrete=discrete)
        kw = {"steps": 40} if discrete else {"train_time": 40.0}
        m = LinearDiffusion(st, sub, learning_rate=0.05, ridge=0.1, **kw)
        for k in range(sub.T):
            W, b = m.denoiser(k + 1)
            np.testing.assert_allclose(ref.W[k], W, atol=1e-12)
            np.testing.assert_allclose(ref.b[k], b, atol=1e-12)


def test_joint_bias_closed_form_is_augmented_gd():
    """center=False: n exact GD steps on (W, b) with M = E[x̃x̃ᵀ] + γ diag(I, 0), iterated in NumPy."""
    X = _data(N=30, d=4)
    sub = SCHED.respace([5, 500])
    eta, n, gam = 0.04, 25, 0.2
    ref = gradient_flow_denoisers(X, SCHED, timesteps=[5, 500], learning_rate=eta, train_time=n, ridge=gam,
                                  center=False, discrete=True)
    d = X.shape[1]
    for k, ab in enumerate(np.asarray(sub.alphas_bar)):
        xt = np.hstack([X, np.ones((X.shape[0], 1))])
        M = ab * (xt.T @ xt) / X.shape[0]
        M[:d, d] = M[d, :d] = math.sqrt(ab) * X.mean(axis=0)
        M[:d, :d] += (1 - ab + gam) * np.eye(d)
        M[d, d] = 1.0
        R = np.hstack([math.sqrt(1 - ab) * np.eye(d), np.zeros((d, 1))])
        Wt = np.zeros((d, d + 1))
        for _ in range(n):
            Wt -= 2 * eta * (Wt @ M - R)
        np.testing.assert_allclose(ref.W[k], Wt[:, :d], atol=1e-12)
        np.testing.assert_allclose(ref.b[k], Wt[:, d], atol=1e-12)


# ---------------------------------------------------------------------- dense measures
def _random_denoisers(d=4, ts=(1, 3, 10, 40, 100), seed=2):
    rng = np.random.default_rng(seed)
    sub = Schedule.paper(100).respace(list(ts))
    K = sub.T
    W = np.stack([np.eye(d) * 0.8 + 0.3 * rng.standard_normal((d, d)) for _ in range(K)])  # non-commuting
    b = 0.2 * rng.standard_normal((K, d))
    return AffineDenoisers(W, b, sub, list(ts))


def test_losses_match_independent_expansion():
    model = _random_denoisers()
    rng = np.random.default_rng(1)
    X = rng.standard_normal((50, model.d)) + 0.5
    ab = np.asarray(model.schedule.alphas_bar)
    d = model.d
    # Training loss: average over the points of the noise-averaged per-point loss,
    # E‖ε − W(√ᾱx₀ + √(1−ᾱ)ε) − b‖² = d − 2√(1−ᾱ)trW + (1−ᾱ)‖W‖² + ‖√ᾱWx₀ + b‖².
    want = np.array([
        np.mean(d - 2 * math.sqrt(1 - a) * np.trace(W) + (1 - a) * np.sum(W * W)
                + np.sum((math.sqrt(a) * X @ W.T + b) ** 2, axis=1))
        for W, b, a in zip(model.W, model.b, ab)
    ])
    np.testing.assert_allclose(model.train_loss(X), want, rtol=1e-12)
    # Test loss against (m, S): d − 2√(1−ᾱ)trW + tr(W(ᾱ(S + mmᵀ) + (1−ᾱ)I)Wᵀ) + 2√ᾱ bᵀWm + ‖b‖².
    m = np.array([0.3, -0.2, 0.1, 0.0])
    A = rng.standard_normal((d, d))
    S = A @ A.T + 0.1 * np.eye(d)
    want = np.array([
        d - 2 * math.sqrt(1 - a) * np.trace(W) + np.trace(W @ (a * (S + np.outer(m, m)) + (1 - a) * np.eye(d)) @ W.T)
        + 2 * math.sqrt(a) * b @ W @ m + b @ b
        for W, b, a in zip(model.W, model.b, ab)
    ])
    np.testing.assert_allclose(model.test_loss(mean=m, cov=S), want, rtol=1e-12)
    np.testing.assert_allclose(model.test_loss(Gaussian(m, S)), want, rtol=1e-10)


def test_moments_match_theory_recursion():
    model = _random_denoisers()
    sch = model.schedule
    beta = np.asarray(sch.betas)
    ab = np.asarray(sch.alphas_bar)
    d = model.d
    for final_noise in (True, False):
        m, S = np.zeros(d), np.eye(d)
        for t in range(model.T, 0, -1):  # A_t = (I − κ_t W_t)/√(1−β_t), κ_t = β_t/√(1−ᾱ_t)
            kappa = beta[t - 1] / math.sqrt(1 - ab[t - 1])
            A = (np.eye(d) - kappa * model.W[t - 1]) / math.sqrt(1 - beta[t - 1])
            c = -kappa * model.b[t - 1] / math.sqrt(1 - beta[t - 1])
            s2 = beta[t - 1] if (t > 1 or final_noise) else 0.0
            m, S = A @ m + c, A @ S @ A.T + s2 * np.eye(d)
        mm, SS = model.moments(final_noise=final_noise)
        np.testing.assert_allclose(mm, m, atol=1e-12)
        np.testing.assert_allclose(SS, S, atol=1e-12)


def test_dense_law_matches_monte_carlo():
    X = _data(N=60, d=4)
    res = train_denoisers(X, Schedule.paper(100), timesteps=[1, 5, 20, 60, 100], learning_rate=0.1, steps=30,
                          noise_draws=2, rng=4)
    model = res.denoisers
    g = model.sampling_distribution()
    n = 20_000
    Y = model.sample(n, rng=9)
    S = g.cov
    se_mean = np.sqrt(np.diag(S) / n)
    assert np.all(np.abs(Y.mean(axis=0) - g.mean) < 5 * se_mean)
    C = np.cov(Y, rowvar=False)
    se_cov = np.sqrt((np.outer(np.diag(S), np.diag(S)) + S**2) / n)
    assert np.all(np.abs(C - S) < 5 * se_cov)


# ---------------------------------------------------------------------- reproducibility
@pytest.mark.parametrize("batch_size", [None, 16])
def test_bit_identical_across_workers_and_checkpoints(batch_size):
    X = _data(N=600, d=5)
    kw = dict(timesteps=TS, learning_rate=0.05, steps=6, noise_draws=3, batch_size=batch_size, rng=123)
    ref = train_denoisers(X, SCHED, workers=1, **kw).denoisers
    for w in (2, 7):
        other = train_denoisers(X, SCHED, workers=w, **kw).denoisers
        assert np.array_equal(ref.W, other.W) and np.array_equal(ref.b, other.b)
    cut = train_denoisers(X, SCHED, workers=2, checkpoints=[1, 2, 5], **kw).denoisers
    assert np.array_equal(ref.W, cut.W) and np.array_equal(ref.b, cut.b)
    again = train_denoisers(X, SCHED, workers=1, **{**kw, "rng": 124}).denoisers
    assert not np.array_equal(ref.W, again.W)


def test_history_and_epochs():
    X = _data()
    tgt = Gaussian(np.zeros(6), np.eye(6))
    res = train_denoisers(X, SCHED, timesteps=TS, learning_rate=0.05, epochs=2, batch_size=15, checkpoints=2,
                          target=tgt, rng=0)
    h = res.history
    assert list(h["step"]) == [0, 2, 4]  # 2 epochs of N // B = 2 steps
    np.testing.assert_allclose(h["eta_tau"], 0.05 * h["step"])
    # Checkpoint values are the model's own exact measures.
    np.testing.assert_allclose(h["train_loss"][-1], res.denoisers.train_loss(X).mean(), rtol=1e-12)
    np.testing.assert_allclose(h["test_loss"][-1], res.denoisers.test_loss(tgt).mean(), rtol=1e-12)
    assert h["kl_forward"][-1] == pytest.approx(res.denoisers.kl(tgt, "forward"), rel=1e-10)
    # At step 0 (W = 0, b = 0) the loss is d at every t.
    np.testing.assert_allclose(res.train_loss_t[0], 6.0)


def test_compare_with_gradient_flow_improves_with_draws():
    X = _data()
    tgt = Gaussian(X.mean(axis=0), np.cov(X, rowvar=False, bias=True) + 0.05 * np.eye(6))
    cmp = compare_with_gradient_flow(X, SCHED, timesteps=TS, learning_rate=0.05, steps=80, noise_draws=(1, 64),
                                     checkpoints=4, target=tgt, rng=0)
    assert np.isnan(cmp.rel_distance[:, 0]).all()  # τ = 0: W_flow = 0
    # Fluctuations scale like 1/√draws: 64 draws are ~8x closer.
    assert np.all(cmp.rel_distance[1, 1:] < cmp.rel_distance[0, 1:] / 2)
    st = EmpiricalStats(X)
    m = LinearDiffusion(st, SCHED.respace(TS), train_time=80.0, learning_rate=0.05)
    assert cmp.flow_kl_forward[-1] == pytest.approx(m.kl(tgt, "forward"), rel=1e-12)
    assert cmp.kl_forward[1, -1] == pytest.approx(cmp.flow_kl_forward[-1], rel=0.2)
    # The distance at the end, recomputed from a separate run with the same child generator.
    child = np.random.default_rng(0).spawn(2)[1]
    sgd = train_denoisers(X, SCHED, timesteps=TS, learning_rate=0.05, steps=80, noise_draws=64, rng=child).denoisers
    Wf = np.stack([m.denoiser(t)[0] for t in range(1, 5)])
    assert cmp.rel_distance[1, -1] == pytest.approx(np.linalg.norm(sgd.W - Wf) / np.linalg.norm(Wf), rel=1e-12)


# ---------------------------------------------------------------------- bad input
def test_bad_input():
    X = _data()
    ok = dict(learning_rate=0.05, steps=2, timesteps=TS)
    with pytest.raises(ValueError, match="0 rows"):
        train_denoisers(np.empty((0, 6)), SCHED, **ok)
    with pytest.raises(ValueError, match="NaN"):
        Xn = X.copy()
        Xn[3, 2] = np.nan
        train_denoisers(Xn, SCHED, **ok)
    with pytest.raises(ValueError, match="2-D"):
        train_denoisers(X[0], SCHED, **ok)
    with pytest.raises(ValueError, match="larger than the training set"):
        train_denoisers(X, SCHED, batch_size=41, **ok)
    for lr in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="learning_rate"):
            train_denoisers(X, SCHED, learning_rate=lr, steps=2)
    with pytest.raises(ValueError, match="unstable"):
        train_denoisers(X, SCHED, learning_rate=5.0, steps=2, timesteps=TS)
    with pytest.raises(ValueError, match="exactly one of steps or epochs"):
        train_denoisers(X, SCHED, learning_rate=0.05, timesteps=TS)
    for bad, msg in [([0, 5], "1..T"), ([5, 1001], "1..T"), ([5, 5], "strictly increasing"), ([], "non-empty")]:
        with pytest.raises(ValueError, match=msg):
            train_denoisers(X, SCHED, learning_rate=0.05, steps=2, timesteps=bad)
    with pytest.raises(TypeError, match="integers"):
        train_denoisers(X, SCHED, learning_rate=0.05, steps=2, timesteps=[1.5, 3])
    with pytest.raises(ValueError, match="init must have W of shape"):
        train_denoisers(X, SCHED, init=(np.zeros((4, 5, 5)), np.zeros((4, 5))), **ok)
    with pytest.raises(ValueError, match="target has dimension 3"):
        train_denoisers(X, SCHED, target=Gaussian(np.zeros(3), np.eye(3)), **ok)
    with pytest.raises(ValueError, match="sigma must be"):
        train_denoisers(X, SCHED, sigma="beta_hat", **ok)
    with pytest.raises(ValueError, match="noise_draws"):
        train_denoisers(X, SCHED, noise_draws=0, **ok)
    with pytest.raises(ValueError, match="ridge"):
        train_denoisers(X, SCHED, ridge=-1.0, **ok)
    with pytest.raises(ValueError, match=r"K·d²·8 = 4\.58 GiB"):  # 1000·784²·8 B = 4.9 GB of W_t
        train_denoisers(np.zeros((2, 784)) + np.arange(2)[:, None], SCHED, learning_rate=0.01, steps=1,
                        memory_limit=10**9)
    with pytest.raises(ValueError, match="not one of the trained timesteps"):
        train_denoisers(X, SCHED, **ok).denoisers.denoiser(2)


def test_memory_limit_can_be_raised_and_subset_fits():
    X = np.random.default_rng(0).standard_normal((20, 120))
    with pytest.raises(ValueError, match="memory_limit"):
        train_denoisers(X, Schedule.paper(100), learning_rate=0.01, steps=1, memory_limit=8 * 1024**2)
    res = train_denoisers(X, Schedule.paper(100), learning_rate=0.01, steps=1, memory_limit=16 * 1024**2)
    assert res.denoisers.W.shape == (100, 120, 120)
    sub = train_denoisers(X, Schedule.paper(100), timesteps=[1, 50, 100], learning_rate=0.01, steps=1,
                          memory_limit=8 * 1024**2)
    assert sub.denoisers.schedule.T == 3


# ---------------------------------------------------------------------- figure
def test_figure_training_vs_theory_renders(tmp_path):
    pytest.importorskip("matplotlib")
    from lindiff.figures import figure_training_vs_theory

    X = _data()
    tgt = Gaussian(X.mean(axis=0), np.cov(X, rowvar=False, bias=True) + 0.05 * np.eye(6))
    cmp = compare_with_gradient_flow(X, SCHED, timesteps=TS, learning_rate=0.05, steps=20, noise_draws=(1, 8),
                                     checkpoints=3, target=tgt, rng=0)
    fig = figure_training_vs_theory(cmp)
    assert len(fig.axes) == 3
    fig.savefig(tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 1000
    with pytest.raises(TypeError, match="not both"):
        figure_training_vs_theory(cmp, steps=3)


def test_figure_training_vs_theory_builtin_example():
    """With no arguments the figure runs its documented example; more noise draws sit closer to the flow."""
    pytest.importorskip("matplotlib")
    from lindiff.figures import figure_training_vs_theory

    fig = figure_training_vs_theory()
    lines = [ln for ln in fig.axes[0].get_lines() if "noise draw" in str(ln.get_label())]
    assert [ln.get_label() for ln in lines] == ["1 noise draw", "4 noise draws", "16 noise draws"]
    means = [float(np.mean(ln.get_ydata())) for ln in lines]
    assert means[0] > means[1] > means[2] > 0


def test_update_over_several_noise_chunks():
    """d·draws large enough that the kernel cuts the batch into chunks of 256 points (2 chunks here)."""
    d, N, draws = 128, 300, 128
    X = np.random.default_rng(0).standard_normal((N, d)) * 0.5
    noise = np.random.default_rng(1).standard_normal((1, 1, N * draws, d))
    res = train_denoisers(X, SCHED, timesteps=[400], learning_rate=0.1, steps=1, noise_draws=draws, center=False,
                          _noise=noise, workers=2)
    W, b = _numpy_sgd(X, SCHED.respace([400]), 0.1, 0.0, noise, False, draws)
    np.testing.assert_allclose(res.denoisers.W, W, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(res.denoisers.b, b, rtol=1e-10, atol=1e-12)
