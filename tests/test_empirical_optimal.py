"""The empirical-optimal denoiser and its sampler against direct NumPy formulas."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest

import lindiff
from lindiff import EmpiricalOptimalDenoiser, Schedule, _core, memorisation
from lindiff.sampling import _sigma, _step_coefficients


def reference_eps(X: np.ndarray, x: np.ndarray, s: float, v: float) -> tuple[np.ndarray, np.ndarray]:
    """ε* and the posterior mean from the direct formula with log-sum-exp (differences, no GEMM)."""
    lg = -((x[:, None, :] - s * X[None, :, :]) ** 2).sum(-1) / (2.0 * v)
    lg -= lg.max(axis=1, keepdims=True)
    w = np.exp(lg)
    w /= w.sum(axis=1, keepdims=True)
    m = w @ X
    return (x - s * m) / np.sqrt(v), m


def sched_sv(sched: Schedule, t: int) -> tuple[float, float]:
    v = float(sched.betas[0]) if t == 1 else float(sched.one_minus_alphas_bar[t - 1])
    return float(np.sqrt(sched.alphas_bar[t - 1])), v


@pytest.mark.parametrize("offset", [0.0, 30.0])
def test_predict_noise_matches_direct_formula(rng: np.random.Generator, offset: float) -> None:
    sched = Schedule.paper()
    X = rng.standard_normal((80, 12)) + offset
    den = EmpiricalOptimalDenoiser(X, sched, workers=2)
    for t in (1, 2, 10, 100, 500, 1000):
        s, v = sched_sv(sched, t)
        # Points near the noised training points (the relevant region) and generic points.
        x = np.concatenate([s * X[:20] + np.sqrt(v) * rng.standard_normal((20, 12)),
                            s * offset + 3 * rng.standard_normal((20, 12))])
        ref, m_ref = reference_eps(X, x, s, v)
        eps = den.predict_noise(x, t)
        assert np.isfinite(eps).all()
        scale = np.abs(x).max() / np.sqrt(v)  # ε is a difference of O(‖x‖/√v) terms
        np.testing.assert_allclose(eps, ref, rtol=0, atol=1e-11 * scale)
        np.testing.assert_allclose(den.posterior_mean(x, t), m_ref, rtol=0, atol=1e-11 * np.abs(X).max())
    one = den.predict_noise(X[0], 1)
    assert one.shape == (12,)


def test_extreme_t_no_overflow(rng: np.random.Generator) -> None:
    X = rng.standard_normal((40, 30)) * 10.0
    sched = Schedule.paper(T=5, beta_min=1e-8, beta_max=1e-8)  # 1 − ᾱ₁ = 1e-8
    den = EmpiricalOptimalDenoiser(X, sched)
    x = rng.standard_normal((10, 30)) * 10.0  # logits ~ -1e10: exp would overflow/underflow naively
    eps = den.predict_noise(x, 1)
    s, v = sched_sv(sched, 1)
    ref, _ = reference_eps(X, x, s, v)
    assert np.isfinite(eps).all()
    np.testing.assert_allclose(eps, ref, rtol=1e-9, atol=0)
    # A point exactly between two training points: equal weights, no NaN.
    X2 = np.array([[1.0, 0.0], [-1.0, 0.0]])
    den2 = EmpiricalOptimalDenoiser(X2, sched)
    np.testing.assert_allclose(den2.posterior_mean(np.zeros(2), 1), [0.0, 0.0], atol=1e-15)


def test_vectorised_exp() -> None:
    x = np.concatenate([-np.geomspace(1e-300, 708.0, 5000), [0.0, -0.0, -800.0, -np.inf]])
    out, total = _core.exp_nonpositive(x)
    ref = np.where(x < -708.0, 0.0, np.exp(x))
    np.testing.assert_allclose(out, ref, rtol=4e-16, atol=0)
    assert total == pytest.approx(ref.sum(), rel=1e-14)


def numpy_chain(X: np.ndarray, sched: Schedule, noise: np.ndarray, sampler: str, sigma: str,
                final_noise: bool, steer: Callable[[int, np.ndarray, np.ndarray], Any] | None = None) -> np.ndarray:
    """The reverse chain written out with the direct formula for ε*.

    ``steer(t, u_t, u_next)`` may return the state wanted at step t − 1 instead of ``u_next`` (or
    None): the step's noise in ``noise`` is then rewritten in place to reach it, so that the sampler
    fed the same noise afterwards is steered the same way."""
    p, q = _step_coefficients(sched, sampler)
    sig = _sigma(sched, sampler, sigma, final_noise)
    T = sched.T
    u = noise[0].copy()
    for t in range(T, 0, -1):
        s, v = sched_sv(sched, t)
        eps, _ = reference_eps(X, u, s, v)
        z = noise[T - t + 1]
        nxt = p[t - 1] * u + q[t - 1] * eps + sig[t - 1] * z
        want = None if steer is None else steer(t, u, nxt)
        if want is not None:
            z += (want - nxt) / sig[t - 1]
            nxt = p[t - 1] * u + q[t - 1] * eps + sig[t - 1] * z
        u = nxt
    return u


@pytest.mark.parametrize("sampler,sigma,final_noise", [
    ("ddpm", "beta", True), ("ddpm", "beta_tilde", True), ("ddpm", "beta", False), ("ddim", "beta", False)])
def test_sampler_matches_numpy_with_injected_noise(rng: np.random.Generator, sampler: str, sigma: str,
                                                   final_noise: bool) -> None:
    sched = Schedule.paper(T=40)
    X = rng.standard_normal((15, 4))
    n = 300  # two blocks
    noise = rng.standard_normal((sched.T + 1, n, 4))
    den = EmpiricalOptimalDenoiser(X, sched)
    got = den.sample(n, sampler=sampler, sigma=sigma, final_noise=final_noise, _noise=noise, workers=2)
    ref = numpy_chain(X, sched, noise, sampler, sigma, final_noise)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-9)


@pytest.mark.parametrize("N,d,sampler", [(200, 16, "ddpm"), (120, 40, "ddpm"), (200, 16, "ddim"),
                                         (200, 8, "clusters")])
def test_sampler_with_anchored_candidates_matches_numpy(rng: np.random.Generator, N: int, d: int,
                                                        sampler: str) -> None:
    """N above the candidate count (32), and enough steps for the softmax to become peaked: most rows
    then take the anchored shortcut (candidates only, other points bounded away), which must still
    give the direct formula's chain."""
    sched = Schedule.paper(T=200)
    if sampler == "clusters":
        # Clusters of 40 points (more than the 32 candidates) with small spreads: while the softmax
        # narrows, points outside a row's candidates still matter, and the bound has to see it.
        centres = 3.0 * rng.standard_normal((N // 40, d))
        X = np.repeat(centres, 40, axis=0) + rng.standard_normal((N, d)) * np.geomspace(0.01, 0.3, N)[:, None]
        sampler = "ddpm"
    else:
        X = rng.standard_normal((N, d)) * np.linspace(1.5, 0.5, d)
    n = 300
    noise = rng.standard_normal((sched.T + 1, n, d))
    den = EmpiricalOptimalDenoiser(X, sched)
    got = den.sample(n, sampler=sampler, _noise=noise, workers=2)
    ref = numpy_chain(X, sched, noise, sampler, "beta", sampler == "ddpm")
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-9)


def test_anchored_rows_see_a_jump(rng: np.random.Generator) -> None:
    """At a late step, where rows are anchored to their nearest points, inject jumps straight towards
    a training point outside the candidates (the 40th nearest), of several lengths: the bound must
    notice and the rows be evaluated in full again. Checked against the direct formula's chain."""
    sched = Schedule.paper(T=100)
    N, d, n = 150, 4, 320
    X = 2.0 * rng.standard_normal((N, d))
    noise = rng.standard_normal((sched.T + 1, n, d))
    t_jump = 6
    s = sched_sv(sched, t_jump)[0]
    frac = np.repeat([0.0, 0.3, 0.6, 0.8, 0.9, 0.95, 1.0, 1.1], n // 8)[:, None]

    def jump(t: int, u: np.ndarray, nxt: np.ndarray) -> np.ndarray | None:
        if t != t_jump:
            return None
        far = np.argsort(((u[:, None, :] - s * X[None]) ** 2).sum(-1), axis=1)[:, 39]
        return nxt + frac * (s * X[far] - u)

    ref = numpy_chain(X, sched, noise, "ddpm", "beta", True, steer=jump)
    got = EmpiricalOptimalDenoiser(X, sched).sample(n, _noise=noise, workers=2)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-9)


def test_anchor_bound_counts_the_change_in_s(rng: np.random.Generator) -> None:
    """The bound's |s − s_a|·max‖x‖ term. Rows are anchored at x₁ at step 2 (u = s₂x₁); at step 1
    the state has not moved but s grows by a fifth, and x₂ (far at step 2: R = ‖s₂x₁ − s₂x₂‖ is
    larger than the step-1 distance to x₁ by a margin the bound without that term would accept)
    is now nearer than x₁. A bound that ignored the change in s would keep x₁ alone (checked with
    that mutant)."""
    sched = Schedule([0.3, 0.3, 0.5])  # s₂ = 0.7, s₁ = 0.837: a jump in s the paper schedule never makes
    (s1, v1), (s2, _) = sched_sv(sched, 1), sched_sv(sched, 2)
    L = 1000.0
    d1 = (s1 - s2) * L                                   # step 1: distance from u = s₂x₁ to s₁x₁
    along = s2 / s1 * L                                  # x₂ = along·e₁ + h·e₂
    h_lo = np.sqrt(max(0.0, (d1**2 + 80 * v1) / s2**2 - (L - along) ** 2))
    h = 0.5 * (h_lo + d1 / s1)                           # between "accepted without the term" and "x₂ nearer"
    X = np.zeros((42, 3))
    X[0, 0] = L
    X[1, :2] = along, h
    X[2:] = [0.0, 0.0, -600.0] + 5.0 * rng.standard_normal((40, 3))  # fillers: N > kRefine, far away
    R = s2 * np.linalg.norm(X[0] - X[1])
    d2 = np.linalg.norm(s2 * X[0] - s1 * X[1])
    xmax = np.linalg.norm(X, axis=1).max()
    assert R**2 - d1**2 > 80 * v1 and d2 < d1 and R - (s1 - s2) * xmax < d1  # the design holds
    n = 64
    u3 = sched_sv(sched, 3)[0] * X[0] + 0.01 * rng.standard_normal((n, 3))
    u2 = s2 * X[0] + 0.01 * rng.standard_normal((n, 3))
    noise = rng.standard_normal((sched.T + 1, n, 3))
    noise[0] = u3
    targets = {2: u2, 1: u2}  # steered states u_{t-1}
    ref = numpy_chain(X, sched, noise, "ddpm", "beta", True, steer=lambda t, u, nxt: targets.get(t - 1))
    got = EmpiricalOptimalDenoiser(X, sched).sample(n, _noise=noise, workers=2)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-9 * L)


def test_anchor_bound_keeps_weights_above_the_cut(rng: np.random.Generator) -> None:
    """The bound's threshold. Rows anchored at x₁ = 0 at step 2 move straight towards the nearest
    other point x_j (s almost unchanged: the triangle inequality is then tight), so that at step 1
    x_j's weight relative to x₁'s is e^-k for k from 2 to 32, below the e^-40 cut. Each row must be
    evaluated in full: a bound accepting at a lower threshold drops a weight e^-k, here an error
    e^-k·‖x_j‖ in the mean, caught for cuts up to about e^-28 (checked with mutants at e^0 and e^-20)."""
    sched = Schedule([0.5, 1e-12, 0.5])
    (s1, v1), (s2, v2) = sched_sv(sched, 1), sched_sv(sched, 2)
    R = np.sqrt(2 * v2 * 200.0)                         # x_j's weight at step 2: e^-200, not a candidate
    X = np.zeros((42, 2))
    X[1, 0] = R / s2                                    # x_j
    X[2:] = [0.0, -40.0] + rng.standard_normal((40, 2))  # fillers
    ks = np.array([2.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 32.0])
    delta = (R**2 - 2 * v1 * ks) / (2 * R)              # (R − δ)² − δ² = 2·v·k
    n = 8 * len(ks)
    u2 = np.zeros((n, 2))
    u1 = np.zeros((n, 2))
    u1[:, 0] = np.repeat(delta, 8)
    # u_3 beyond the fillers, far from x₁ and x_j: any step-3 anchor has R < ‖u_3‖, the jump to
    # u_2 = 0, so step 2 evaluates every row in full and anchors it afresh, at x₁ alone with R the
    # distance to x_j.
    u3 = [0.0, -300.0] + rng.standard_normal((n, 2))
    noise = rng.standard_normal((sched.T + 1, n, 2))
    noise[0] = u3
    targets = {2: u2, 1: u1}
    ref = numpy_chain(X, sched, noise, "ddpm", "beta", True, steer=lambda t, u, nxt: targets.get(t - 1))
    got = EmpiricalOptimalDenoiser(X, sched).sample(n, _noise=noise, workers=2)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-13 * R)


def test_reproduces_training_points(rng: np.random.Generator) -> None:
    X = rng.standard_normal((10, 5))
    den = EmpiricalOptimalDenoiser(X)  # paper schedule, T = 1000
    S = den.sample(400, rng=3, final_noise=False)
    m = memorisation(S, X)
    assert m.fraction == 1.0
    assert np.max(m.d1) < 1e-8  # on the training points, up to rounding
    # Every training point is reached (400 draws over 10 points).
    assert set(m.nearest.tolist()) == set(range(10))
    # With the last step's noise the samples sit within ~σ₁·√d of the training points.
    m2 = memorisation(den.sample(200, rng=4), X)
    assert m2.fraction == 1.0 and np.max(m2.d1) < 0.01 * 6


@pytest.mark.parametrize("provider", ["openblas", "eigen"])
def test_workers_bit_identical(rng: np.random.Generator, request: pytest.FixtureRequest, provider: str) -> None:
    request.getfixturevalue(f"{provider}_provider")
    X = rng.standard_normal((200, 6))  # 600 rows × 200 points: above the sampler's run-on-one-thread size
    den = EmpiricalOptimalDenoiser(X, Schedule.paper(T=30))
    outs = [den.sample(600, rng=11, workers=w) for w in (1, 2, 7)]
    for o in outs[1:]:
        np.testing.assert_array_equal(o, outs[0])
    x = rng.standard_normal((300, 6))
    preds = [den.predict_noise(x, 3, workers=w) for w in (1, 2, 7)]
    for o in preds[1:]:
        np.testing.assert_array_equal(o, preds[0])
    assert not np.array_equal(outs[0], den.sample(600, rng=12))


def test_progress_counts_every_block_step_and_changes_nothing(rng: np.random.Generator,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    X = rng.standard_normal((40, 4))
    den = EmpiricalOptimalDenoiser(X, Schedule.paper(T=25))
    n = 600  # 3 blocks of 256 rows
    quiet = den.sample(n, rng=5, workers=2, progress=False)
    loud = den.sample(n, rng=5, workers=2, progress=True)
    np.testing.assert_array_equal(quiet, loud)
    assert "empirical optimal" in capsys.readouterr().err
    got: list[int] = []
    sq, om = den._coeffs()
    p, q = _step_coefficients(den.schedule, "ddpm")
    sig = _sigma(den.schedule, "ddpm", "beta", True)
    from lindiff.sampling import _seed_words

    out = np.empty((n, 4))
    _core.sample_empirical_optimal(den.X, sq, om, p, q, np.ascontiguousarray(sig), _seed_words(5, n), 2, out,
                                   None, got.append)
    assert sum(got) == 3 * 25
    np.testing.assert_array_equal(out, quiet)
    with pytest.raises(TypeError, match="progress"):
        den.sample(10, progress="yes")


def test_bad_input(rng: np.random.Generator) -> None:
    with pytest.raises(ValueError, match="0 rows"):
        EmpiricalOptimalDenoiser(np.zeros((0, 3)))
    with pytest.raises(ValueError, match="NaN"):
        EmpiricalOptimalDenoiser(np.array([[0.0, np.nan]]))
    with pytest.raises(TypeError, match="Schedule"):
        EmpiricalOptimalDenoiser(np.zeros((2, 3)), schedule="paper")  # type: ignore[arg-type]
    den = EmpiricalOptimalDenoiser(rng.standard_normal((5, 3)), Schedule.paper(T=10))
    with pytest.raises(ValueError, match="shape"):
        den.predict_noise(np.zeros((2, 4)), 1)
    with pytest.raises(ValueError, match="NaN"):
        den.predict_noise(np.array([[0.0, np.inf, 0.0]]), 1)
    with pytest.raises(ValueError, match="1..T"):
        den.predict_noise(np.zeros((2, 3)), 11)
    with pytest.raises(ValueError, match="t must be >= 1"):
        den.predict_noise(np.zeros((2, 3)), 0)
    with pytest.raises(ValueError, match="sampler"):
        den.sample(3, sampler="euler")
    with pytest.raises(ValueError, match="sigma"):
        den.sample(3, sigma="big")
    with pytest.raises(ValueError, match="n must be >= 1"):
        den.sample(0)
    with pytest.raises(ValueError, match="_noise"):
        den.sample(3, _noise=np.zeros((11, 3, 2)))
    assert "N=5" in repr(den) and isinstance(lindiff.EmpiricalOptimalDenoiser, type)
