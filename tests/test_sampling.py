"""Tests of the samplers (lindiff.sampling, LinearDiffusion.sample).

References: the exact law of the chain (LinearDiffusion.sampling_distribution, checked by
Monte Carlo with tolerances of 5 standard errors computed from n), a plain NumPy implementation of
the dense chain fed the same noise, and the closed forms of theory.md §4.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from scipy import stats as sps

import lindiff
from lindiff import EmpiricalStats, LinearDiffusion, Schedule, sample_affine_chain
from lindiff import _core
from lindiff import sampling as lsampling

T_SMALL = 100
N_MC = 200_000


# ---------------------------------------------------------------------- fixtures and references
@pytest.fixture(scope="module")
def model() -> LinearDiffusion:
    r = np.random.default_rng(7)
    d, N = 6, 40
    A = r.standard_normal((d, d)) * np.linspace(1.5, 0.3, d)
    X = r.standard_normal((N, d)) @ A.T + np.linspace(-2.0, 2.0, d)
    return LinearDiffusion(EmpiricalStats(X), Schedule.paper(T=T_SMALL), ridge=0.05, workers=2)


def numpy_chain(W: np.ndarray, b: np.ndarray, schedule: Schedule, noise: np.ndarray, sampler: str,
                sigma2: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """The reverse chain written directly from theory.md §4, one step at a time, in NumPy."""
    beta = np.asarray(schedule.betas)
    abar = np.asarray(schedule.alphas_bar)
    u = noise[0].copy()
    states = [u.copy()]  # u_T, u_{T-1}, ..., u_0
    T = schedule.T
    for t in range(T, 0, -1):
        k = t - 1
        eps = u @ W[k].T + b[k]
        if sampler == "ddpm":
            u = (u - beta[k] / math.sqrt(1 - abar[k]) * eps) / math.sqrt(1 - beta[k])
            u = u + math.sqrt(sigma2[k]) * noise[T - t + 1]
        else:
            ab_prev = abar[k - 1] if k > 0 else 1.0
            x0 = (u - math.sqrt(1 - abar[k]) * eps) / math.sqrt(abar[k])
            u = math.sqrt(ab_prev) * x0 + math.sqrt(1 - ab_prev) * eps
        states.append(u.copy())
    return u, states


def dense_stack(m: LinearDiffusion) -> tuple[np.ndarray, np.ndarray]:
    W = np.empty((m.T, m.d, m.d))
    b = np.empty((m.T, m.d))
    for t in range(1, m.T + 1):
        W[t - 1], b[t - 1] = m.denoiser(t)
    return W, b


def sigma2_of(schedule: Schedule, sigma: str, final_noise: bool) -> np.ndarray:
    s2 = np.array(schedule.betas if sigma == "beta" else schedule.beta_tilde, dtype=float)
    if not final_noise:
        s2[0] = 0.0
    return s2


def assert_moments(x: np.ndarray, mean: np.ndarray, cov: np.ndarray, k: float = 5.0) -> None:
    """Sample mean and covariance within k standard errors per entry (Gaussian sampling theory)."""
    n = x.shape[0]
    sd = np.sqrt(np.diag(cov))
    err_mean = np.abs(x.mean(axis=0) - mean)
    assert (err_mean <= k * sd / math.sqrt(n) + 1e-12).all(), (err_mean, k * sd / math.sqrt(n))
    xc = x - mean  # the true mean: the covariance estimate then has sd sqrt((S_ii S_jj + S_ij²)/n)
    S = xc.T @ xc / n
    se = np.sqrt((np.outer(sd**2, sd**2) + cov**2) / n)
    err = np.abs(S - cov)
    assert (err <= k * se + 1e-12).all(), np.max(err / se)


# ---------------------------------------------------------------------- distribution of each method
@pytest.mark.parametrize("method", ["eigen", "dense", "exact"])
def test_moments_match_sampling_distribution(model: LinearDiffusion, method: str) -> None:
    x = model.sample(N_MC, rng=11, method=method)
    assert x.shape == (N_MC, model.d) and x.dtype == np.float64
    g = model.sampling_distribution()
    assert_moments(x, g.mean, g.cov)


@pytest.mark.parametrize(
    "opts",
    [dict(sampler="ddim"), dict(sigma="beta_tilde"), dict(final_noise=False)],
    ids=["ddim", "beta_tilde", "no_final_noise"],
)
def test_moments_sampler_options(model: LinearDiffusion, opts: dict) -> None:
    x = model.sample(N_MC, rng=12, method="eigen", **opts)
    g = model.sampling_distribution(**opts)
    assert_moments(x, g.mean, g.cov)


def test_moments_catch_a_wrong_law(model: LinearDiffusion) -> None:
    """The moment check can fail: DDPM samples do not have the DDIM law."""
    x = model.sample(N_MC, rng=13, method="eigen")
    g = model.sampling_distribution(sampler="ddim")
    with pytest.raises(AssertionError):
        assert_moments(x, g.mean, g.cov)


def test_affine_chain_noncommuting_moments() -> None:
    """An arbitrary (non-symmetric, non-commuting) W_t stack against the dense moment recursion
    m_{t−1} = A_t m_t + c_t, S_{t−1} = A_t S_t A_tᵀ + σ_t² I of theory.md §4."""
    r = np.random.default_rng(3)
    d, T, n = 3, 20, 200_000
    sch = Schedule.paper(T=T)
    W = 0.5 * r.standard_normal((T, d, d))
    b = r.standard_normal((T, d))
    beta = np.asarray(sch.betas)
    om = np.asarray(sch.one_minus_alphas_bar)
    m, S = np.zeros(d), np.eye(d)
    for k in range(T - 1, -1, -1):
        kappa = beta[k] / math.sqrt(om[k])
        A = (np.eye(d) - kappa * W[k]) / math.sqrt(1 - beta[k])
        c = -kappa * b[k] / math.sqrt(1 - beta[k])
        m = A @ m + c
        S = A @ S @ A.T + beta[k] * np.eye(d)
    x = sample_affine_chain(W, b, sch, n, rng=5, workers=2)
    assert_moments(x, m, S)


# ---------------------------------------------------------------------- agreement given the same noise
@pytest.mark.parametrize(
    "opts",
    [dict(), dict(sampler="ddim"), dict(sigma="beta_tilde", final_noise=False)],
    ids=["ddpm", "ddim", "beta_tilde_nofinal"],
)
def test_dense_eigen_numpy_agree_with_injected_noise(model: LinearDiffusion, opts: dict) -> None:
    r = np.random.default_rng(21)
    n = 300  # more than one block
    noise = r.standard_normal((model.T + 1, n, model.d))
    steps = [model.T, 57, 1, 0]
    xe, te, _ = model.sample(n, method="eigen", _noise=noise, return_trajectory=True, trajectory_steps=steps, **opts)
    xd, td, _ = model.sample(n, method="dense", _noise=noise, return_trajectory=True, trajectory_steps=steps, **opts)
    W, b = dense_stack(model)
    sampler = opts.get("sampler", "ddpm")
    s2 = sigma2_of(model.schedule, opts.get("sigma", "beta"), opts.get("final_noise", True))
    xr, states = numpy_chain(W, b, model.schedule, noise, sampler, s2)
    scale = max(1.0, float(np.abs(xr).max()))
    assert np.abs(xe - xd).max() <= 1e-12 * scale
    assert np.abs(xd - xr).max() <= 1e-12 * scale
    for i, t in enumerate(steps):
        ref = states[model.T - t]
        assert np.abs(te[i] - ref).max() <= 1e-12 * scale
        assert np.abs(td[i] - ref).max() <= 1e-12 * scale
    np.testing.assert_array_equal(td[0], noise[0])  # u_T is the injected start
    np.testing.assert_array_equal(td[-1], xd)


def test_dense_and_exact_with_each_blas_provider(model: LinearDiffusion, blas_provider: str) -> None:
    """The GEMMs of the dense and exact samplers go through NumPy's OpenBLAS or Eigen: both give the
    NumPy reference chain and worker-independent output."""
    r = np.random.default_rng(5)
    n = 2 * lsampling.BLOCK_SIZE + 3
    noise = r.standard_normal((model.T + 1, n, model.d))
    W, b = dense_stack(model)
    xr, _ = numpy_chain(W, b, model.schedule, noise, "ddpm", sigma2_of(model.schedule, "beta", True))
    xd = sample_affine_chain(W, b, model.schedule, n, _noise=noise, workers=2)
    assert np.abs(xd - xr).max() <= 1e-12 * max(1.0, float(np.abs(xr).max()))
    for method in ("dense", "exact"):
        np.testing.assert_array_equal(model.sample(n, rng=6, method=method, workers=1),
                                      model.sample(n, rng=6, method=method, workers=3))


@pytest.fixture(scope="module")
def wide_model() -> LinearDiffusion:
    """d large enough that the dense chain spreads its blocks over several threads."""
    r = np.random.default_rng(17)
    d, N = 48, 200
    X = r.standard_normal((N, d)) * np.linspace(2.0, 0.2, d) + 0.5
    return LinearDiffusion(EmpiricalStats(X), Schedule.paper(T=12), ridge=0.1)


def test_dense_threaded_blocks_match_reference_and_any_workers(wide_model: LinearDiffusion,
                                                               blas_provider: str) -> None:
    """Several blocks per step on several threads, each with its own single-threaded product: the
    NumPy reference chain to 1e-12 with injected noise, and bit-identical draws for workers 1, 2, 7."""
    m = wide_model
    n = 5 * lsampling.BLOCK_SIZE + 11
    noise = np.random.default_rng(3).standard_normal((m.T + 1, n, m.d))
    W, b = dense_stack(m)
    xr, _ = numpy_chain(W, b, m.schedule, noise, "ddpm", sigma2_of(m.schedule, "beta", True))
    for w in (1, 2):
        xd = sample_affine_chain(W, b, m.schedule, n, _noise=noise, workers=w)
        assert np.abs(xd - xr).max() <= 1e-12 * max(1.0, float(np.abs(xr).max()))
    for method in ("dense", "exact"):
        ref = m.sample(n, rng=21, method=method, workers=1)
        for w in (2, 7):
            np.testing.assert_array_equal(m.sample(n, rng=21, method=method, workers=w), ref)


def test_blas_thread_limit_is_restored(wide_model: LinearDiffusion, openblas_provider: str) -> None:
    """The dense and exact samplers run NumPy's OpenBLAS on one thread while they work (each worker
    issues its own products) and give NumPy its setting back afterwards, also when interrupted, when
    nested calls run from two Python threads, and under a threadpoolctl limit."""
    import threading

    threadpoolctl = pytest.importorskip("threadpoolctl")

    # Other OpenBLAS copies (SciPy ships its own) may be loaded too: watch the one lindiff drives.
    ours = os.path.realpath(lindiff.show_config()["path"])

    def blas_threads() -> int:
        infos = [i for i in threadpoolctl.threadpool_info()
                 if i["internal_api"] == "openblas" and os.path.realpath(i["filepath"]) == ours]
        if not infos:
            pytest.skip("threadpoolctl does not see the OpenBLAS lindiff uses")
        return int(infos[0]["num_threads"])

    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        assert blas_threads() == 2
        seen: list[int] = []

        def progress(units: int) -> None:
            seen.append(blas_threads())

        n, d, T = 3 * lsampling.BLOCK_SIZE, 8, 5
        seeds = np.arange(1, 4 * 3 + 1, dtype=np.uint64)
        out = np.empty((n, d))
        _core.sample_dense_chain(np.zeros((T, d, d)), np.zeros((T, d)), np.ones(T), np.ones(T), np.ones(T),
                                 seeds, 2, out, progress=progress)
        assert seen and set(seen) == {1}
        assert blas_threads() == 2

        def stop(units: int) -> None:
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            _core.sample_gaussian(np.zeros(d), np.ones(d), np.eye(d), seeds, 2, out, progress=stop)
        assert blas_threads() == 2

        errors: list[BaseException] = []

        def work() -> None:
            try:
                for method in ("dense", "exact", "dense"):
                    wide_model.sample(2 * lsampling.BLOCK_SIZE, rng=1, method=method, workers=2)
            except BaseException as e:  # pragma: no cover - reported below
                errors.append(e)

        threads = [threading.Thread(target=work) for _ in range(2)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert not errors
        assert blas_threads() == 2
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        wide_model.sample(10, rng=1, method="dense")
        assert blas_threads() == 1


def test_eigen_and_dense_differ_without_shared_noise(model: LinearDiffusion) -> None:
    # The agreement above is not trivial: with independent noise the paths differ.
    assert not np.allclose(model.sample(10, rng=1, method="eigen"), model.sample(10, rng=2, method="dense"))


# ---------------------------------------------------------------------- reproducibility
@pytest.mark.parametrize("method", ["eigen", "dense", "exact"])
def test_bit_identical_for_any_workers(model: LinearDiffusion, method: str) -> None:
    n = 3 * lsampling.BLOCK_SIZE + 17
    ref = model.sample(n, rng=99, workers=1, method=method)
    for w in (2, 7):
        np.testing.assert_array_equal(model.sample(n, rng=99, workers=w, method=method), ref)
    np.testing.assert_array_equal(model.sample(n, rng=np.random.default_rng(99), workers=1, method=method), ref)
    other = model.sample(n, rng=100, workers=1, method=method)
    assert not np.any(other == ref)


def test_trajectory_bit_identical_for_any_workers(model: LinearDiffusion) -> None:
    n = 2 * lsampling.BLOCK_SIZE + 5
    out1 = model.sample(n, rng=4, workers=1, return_trajectory=True)
    out7 = model.sample(n, rng=4, workers=7, return_trajectory=True)
    for a, b in zip(out1, out7):
        np.testing.assert_array_equal(a, b)


def test_generator_is_advanced(model: LinearDiffusion) -> None:
    g = np.random.default_rng(5)
    a = model.sample(50, rng=g)
    b = model.sample(50, rng=g)
    assert not np.any(a == b)


def test_first_samples_do_not_depend_on_n(model: LinearDiffusion) -> None:
    # Blocks are fixed and their seeds are a prefix of one SeedSequence output, so the first block
    # is the same whatever n.
    a = model.sample(lsampling.BLOCK_SIZE, rng=8)
    b = model.sample(3 * lsampling.BLOCK_SIZE, rng=8)
    np.testing.assert_array_equal(a, b[: lsampling.BLOCK_SIZE])


@pytest.mark.parametrize("method", ["eigen", "dense"])
def test_ctrl_c_interrupts_between_batches(model: LinearDiffusion, method: str) -> None:
    """A SIGINT during a long run raises KeyboardInterrupt soon after, not at the end."""
    import _thread
    import threading
    import time

    n = 4_000_000  # tens of seconds of work
    timer = threading.Timer(0.3, _thread.interrupt_main)
    t0 = time.perf_counter()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            model.sample(n, rng=0, workers=2, method=method)
    finally:
        timer.cancel()
    assert time.perf_counter() - t0 < 10.0


# ---------------------------------------------------------------------- the generator itself
def test_standard_normal_quality() -> None:
    n = 2_000_000
    seed = np.random.SeedSequence(2024).generate_state(4, np.uint64)
    z = _core.standard_normal(n, seed)
    assert z.shape == (n,) and np.isfinite(z).all()
    k = 5.0
    assert abs(z.mean()) < k / math.sqrt(n)
    assert abs(z.var() - 1) < k * math.sqrt(2 / n)
    assert abs(sps.skew(z)) < k * math.sqrt(6 / n)
    assert abs(sps.kurtosis(z)) < k * math.sqrt(24 / n)
    assert sps.kstest(z, "norm").pvalue > 1e-3
    # Pairs (cos, sin) from one Box–Muller draw must be uncorrelated too: a round's cosine and sine
    # are 8 apart, successive outputs of one lane 16 apart; lag correlations within 5 standard errors.
    for lag in (1, 8, 16):
        assert abs(np.mean(z[:-lag] * z[lag:])) < k / math.sqrt(n)
    # Tails: P(|z| > 3) within MC error of the normal value.
    p3 = 2 * sps.norm.sf(3)
    assert abs(np.mean(np.abs(z) > 3) - p3) < k * math.sqrt(p3 / n)


# ---------------------------------------------------------------------- the generator's definition
MASK64 = (1 << 64) - 1


def _rotl(x: int, k: int) -> int:
    return ((x << k) | (x >> (64 - k))) & MASK64


def _xoshiro_next(s: list[int]) -> int:
    """xoshiro256++ (Blackman & Vigna), written from the paper's reference code with Python ints."""
    result = (_rotl((s[0] + s[3]) & MASK64, 23) + s[0]) & MASK64
    t = (s[1] << 17) & MASK64
    s[2] ^= s[0]
    s[3] ^= s[1]
    s[1] ^= s[2]
    s[0] ^= s[3]
    s[2] ^= t
    s[3] = _rotl(s[3], 45)
    return result


def _state_bits(s: list[int]) -> np.ndarray:
    return np.array([(s[i] >> b) & 1 for i in range(4) for b in range(64)], dtype=np.int64)


def _bits_state(v: np.ndarray) -> list[int]:
    return [sum(int(v[64 * i + b]) << b for b in range(64)) for i in range(4)]


def test_jump_is_two_to_the_128_steps() -> None:
    """The lanes are 2¹²⁸ steps apart: the state update is linear over GF(2), so its 256×256 matrix M
    raised to 2¹²⁸ (128 squarings mod 2) must map a state to the C++ jump of it."""
    M = np.zeros((256, 256), dtype=np.int64)
    for j in range(256):  # column j = image of the j-th unit state
        e = np.zeros(256, dtype=np.int64)
        e[j] = 1
        s = _bits_state(e)
        _xoshiro_next(s)
        M[:, j] = _state_bits(s)
    P = M.copy()
    for _ in range(128):
        P = (P @ P) % 2
    for seed in ([1, 2, 3, 4], [0x9E3779B97F4A7C15, 7, 2**63 + 5, 12345678901234567]):
        want = _bits_state((P @ _state_bits(list(seed))) % 2)
        got = _core.xoshiro_jump(np.array(seed, dtype=np.uint64))
        assert [int(x) for x in got] == want


def test_normal_stream_definition() -> None:
    """The first rounds of a stream, recomputed in Python from the documented definition (rng.hpp):
    lane l = seed jumped l times; per round u₁ = 1 − (x₁>>12)2⁻⁵², u₂ = (x₂>>12)2⁻⁵²,
    out[l] = √(−2 ln u₁) cos 2πu₂, out[8+l] = … sin 2πu₂."""
    seed = np.random.SeedSequence(31).generate_state(4, np.uint64)
    lanes = [[int(x) for x in seed]]
    for _ in range(7):
        lanes.append([int(x) for x in _core.xoshiro_jump(np.array(lanes[-1], dtype=np.uint64))])
    rounds = 100
    ref = np.empty(16 * rounds)
    for r in range(rounds):
        for lane, s in enumerate(lanes):
            x1, x2 = _xoshiro_next(s), _xoshiro_next(s)
            u1 = 1.0 - (x1 >> 12) * 2.0**-52
            u2 = (x2 >> 12) * 2.0**-52
            rad = math.sqrt(-2.0 * math.log(u1))
            ref[16 * r + lane] = rad * math.cos(2 * math.pi * u2)
            ref[16 * r + 8 + lane] = rad * math.sin(2 * math.pi * u2)
    got = _core.standard_normal(16 * rounds, seed)
    # A few ulp: polynomial ln/sin/cos against libm (whose 2π·u₂ itself rounds by ~1e-16 absolute).
    np.testing.assert_allclose(got, ref, rtol=1e-14, atol=4e-15)


@pytest.fixture()
def simd_paths():
    paths = _core.sampling_simd_available()
    yield paths
    _core.set_sampling_simd("auto")


def test_simd_paths_bit_identical(model: LinearDiffusion, simd_paths: list[str]) -> None:
    """Every SIMD path this CPU runs (AVX-512, AVX2, baseline) gives the same bits: raw normals and
    the three samplers (fused loops included)."""
    assert simd_paths[-1] == "baseline" and _core.sampling_simd() == simd_paths[0]
    seed = np.random.SeedSequence(5).generate_state(4, np.uint64)
    n = 3 * lsampling.BLOCK_SIZE + 5
    ref = None
    for path in simd_paths:
        _core.set_sampling_simd(path)
        assert _core.sampling_simd() == path
        got = [_core.standard_normal(100_003, seed)] + [
            model.sample(n, rng=3, method=m, workers=2) for m in ("eigen", "dense", "exact")
        ]
        if ref is None:
            ref = got
        else:
            for a, b in zip(got, ref):
                np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="unknown"):
        _core.set_sampling_simd("avx1024")


def test_chain_noise_is_the_block_stream() -> None:
    """The fused chain step draws the block's stream continuously, row after row, whatever d (here
    d = 7, so rounds of 16 straddle rows): with U = I, a = 0, c = 0, T = 1, σ = 1 the output is the
    normals m·d .. 2m·d of the block's stream (the first m·d are u_T)."""
    d, m = 7, 37
    seed = np.random.SeedSequence(9).generate_state(4, np.uint64)
    out = np.empty((m, d))
    _core.sample_eigen_chain(np.eye(d), np.zeros((1, d)), np.zeros((1, d)), np.ones(1), seed, 1, out)
    z = _core.standard_normal(2 * m * d, seed)
    np.testing.assert_array_equal(out.ravel(), z[m * d:])
    # Drawn in pieces (two steps) the stream continues where it stopped.
    out2 = np.empty((m, d))
    a = np.zeros((2, d))
    a[1] = 1.0  # step t = 2 (index 1) keeps u_T + z_2, step t = 1 then replaces it by z_1
    _core.sample_eigen_chain(np.eye(d), a, np.zeros((2, d)), np.array([1.0, 0.5]), seed, 1, out2)
    z3 = _core.standard_normal(3 * m * d, seed)
    np.testing.assert_array_equal(out2.ravel(), z3[2 * m * d:])


# ---------------------------------------------------------------------- progress
@pytest.mark.parametrize("method", ["eigen", "dense", "exact"])
def test_progress_does_not_change_samples(model: LinearDiffusion, method: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    n = 3 * lsampling.BLOCK_SIZE + 1
    quiet = model.sample(n, rng=17, method=method, workers=2, progress=False)
    assert capsys.readouterr().err == ""
    loud = model.sample(n, rng=17, method=method, workers=2, progress=True)
    err = capsys.readouterr().err
    assert "lindiff sample" in err and "100%" in err
    np.testing.assert_array_equal(loud, quiet)
    # Default: a bar only on a terminal; pytest's captured stderr is not one.
    np.testing.assert_array_equal(model.sample(n, rng=17, method=method, workers=2), quiet)
    assert capsys.readouterr().err == ""


def test_progress_callback_counts_all_work() -> None:
    """The raw samplers report every unit of work once: block-steps for the chains, blocks for exact."""
    d, T, n = 3, 4, 2 * lsampling.BLOCK_SIZE + 9
    n_blocks = 3
    seeds = np.arange(1, 4 * n_blocks + 1, dtype=np.uint64)
    out = np.empty((n, d))
    got: list[int] = []
    _core.sample_eigen_chain(np.eye(d), np.ones((T, d)), np.zeros((T, d)), np.ones(T), seeds, 2, out,
                             progress=got.append)
    assert sum(got) == n_blocks * T and all(u > 0 for u in got)
    got.clear()
    _core.sample_dense_chain(np.zeros((T, d, d)), np.zeros((T, d)), np.ones(T), np.ones(T), np.ones(T), seeds, 2,
                             out, progress=got.append)
    assert sum(got) == n_blocks * T and len(got) == T  # one group of blocks, one report per step
    got.clear()
    _core.sample_gaussian(np.zeros(d), np.ones(d), np.eye(d), seeds, 2, out, progress=got.append)
    assert sum(got) == n_blocks


def test_progress_affine_chain_and_bad_value(model: LinearDiffusion, capsys: pytest.CaptureFixture[str]) -> None:
    W, b = dense_stack(model)
    a = sample_affine_chain(W, b, model.schedule, 300, rng=2, progress=True)
    assert "100%" in capsys.readouterr().err
    np.testing.assert_array_equal(a, sample_affine_chain(W, b, model.schedule, 300, rng=2, progress=False))
    with pytest.raises(TypeError, match="progress"):
        model.sample(10, progress="yes")


def test_standard_normal_streams() -> None:
    s1 = np.array([1, 2, 3, 4], dtype=np.uint64)
    s2 = np.array([1, 2, 3, 5], dtype=np.uint64)
    a = _core.standard_normal(1001, s1)
    np.testing.assert_array_equal(a, _core.standard_normal(1001, s1))
    assert not np.any(a == _core.standard_normal(1001, s2))
    zero = _core.standard_normal(100, np.zeros(4, dtype=np.uint64))  # all-zero seed is fixed up
    assert np.isfinite(zero).all() and zero.std() > 0.5
    assert _core.standard_normal(0, s1).shape == (0,)
    with pytest.raises(ValueError):
        _core.standard_normal(10, np.zeros(3, dtype=np.uint64))


# ---------------------------------------------------------------------- memorisation (theory.md §4)
@pytest.mark.parametrize("method", ["eigen", "dense", "exact"])
def test_single_training_point_is_memorised(method: str) -> None:
    """N = 1, γ = 0, no final noise: every direction is null, a₁ = 0, and μ_gen = μ̂ − √ᾱ_T P_T μ̂ = μ̂:
    each sample lands on the training point."""
    x0 = np.array([[1.5, -2.0, 0.25, 3.0]])
    m = LinearDiffusion(EmpiricalStats(x0), Schedule.paper(T=T_SMALL), ridge=0.0)
    s = m.sample(1000, rng=1, method=method, final_noise=False)
    assert np.abs(s - x0).max() <= 1e-9 * np.abs(x0).max()
    # With the final noise the samples spread by σ₁ = √β₁ around it.
    s = m.sample(20_000, rng=2, method=method)
    sd = math.sqrt(m.schedule.betas[0])
    assert abs((s - x0).std() / sd - 1) < 0.03


# ---------------------------------------------------------------------- trajectories
def test_trajectory_default_and_shape(model: LinearDiffusion) -> None:
    x, traj, steps = model.sample(40, rng=1, return_trajectory=True)
    assert steps[0] == model.T and steps[-1] == 0 and len(steps) == 11
    assert traj.shape == (11, 40, model.d)
    np.testing.assert_array_equal(traj[-1], x)
    # u_T ~ N(0, I): no data mean in it.
    assert np.abs(traj[0]).max() < 7


def test_trajectory_bad_steps(model: LinearDiffusion) -> None:
    with pytest.raises(ValueError):
        model.sample(4, return_trajectory=True, trajectory_steps=[model.T + 1])
    with pytest.raises(ValueError):
        model.sample(4, return_trajectory=True, trajectory_steps=[-1])
    with pytest.raises(ValueError):
        model.sample(4, return_trajectory=True, trajectory_steps=[3, 3])
    with pytest.raises(TypeError):
        model.sample(4, return_trajectory=True, trajectory_steps=[1.5])
    with pytest.raises(ValueError):
        model.sample(4, trajectory_steps=[3])
    with pytest.raises(ValueError):
        model.sample(4, method="exact", return_trajectory=True)


# ---------------------------------------------------------------------- bad input
def test_bad_arguments(model: LinearDiffusion) -> None:
    for n in (0, -3):
        with pytest.raises(ValueError):
            model.sample(n)
    with pytest.raises(TypeError):
        model.sample(2.5)
    with pytest.raises(ValueError):
        model.sample(4, workers=0)
    with pytest.raises(TypeError):
        model.sample(4, workers=1.5)
    with pytest.raises(ValueError):
        model.sample(4, method="magic")
    with pytest.raises(ValueError):
        model.sample(4, sampler="euler")
    with pytest.raises(ValueError):
        model.sample(4, sigma="big")
    with pytest.raises(TypeError):
        model.sample(4, final_noise="yes")
    with pytest.raises(ValueError):
        model.sample(4, _noise=np.zeros((model.T, 4, model.d)))
    with pytest.raises(ValueError):
        model.sample(4, _noise=np.full((model.T + 1, 4, model.d), np.nan))


def test_dense_memory_limit(model: LinearDiffusion, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lsampling, "DENSE_MEMORY_LIMIT", 1000)
    with pytest.raises(ValueError, match="GiB"):
        model.sample(4, method="dense")


_MEMORY_PROBE = """
import sys, numpy as np, lindiff
method, n, d = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
target = lindiff.GaussianTarget.power_law(d, 1.0, rng=0)
model = lindiff.LinearDiffusion(lindiff.EmpiricalStats(target.sample(3 * d, rng=1)),
                                lindiff.Schedule.paper(T=10), workers=2)
model.sample(3000, method=method, rng=0, workers=2)  # warm up: thread stacks, caches, dense W stack

def status():
    with open("/proc/self/status") as f:
        fields = dict(line.split(":", 1) for line in f)
    return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024

try:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak (VmHWM) to the current RSS
except OSError:
    pass  # the warm-up's peak is small beside the output anyway
rss0, _ = status()
x = model.sample(n, method=method, rng=0, workers=2)
_, peak = status()
print(peak - rss0, x.nbytes)
"""


@pytest.mark.parametrize("method", ["eigen", "dense", "exact"])
def test_sampling_memory_is_the_output_plus_blocks(method: str) -> None:
    """Issue 4: 10⁶ samples at d = 100 hold the output (763 MiB) plus O(workers × block × d), here
    a few MiB, measured as the growth of the process's peak RSS in a fresh interpreter. One n×d
    temporary (a noise array, a transposed copy, a float32 copy) would add ≥ 381 MiB."""
    import subprocess
    import sys

    if not os.path.exists("/proc/self/status"):
        pytest.skip("needs Linux /proc to read the peak RSS")
    r = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, method, str(10**6), "100"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    growth, output = map(int, r.stdout.split())
    assert output == 10**6 * 100 * 8
    assert output <= growth < output + 48 * 2**20, (growth - output) / 2**20


def test_affine_chain_bad_input() -> None:
    sch = Schedule.paper(T=5)
    d = 3
    W = np.zeros((5, d, d))
    b = np.zeros((5, d))
    assert sample_affine_chain(W, b, sch, 2, rng=0).shape == (2, d)
    with pytest.raises(ValueError):
        sample_affine_chain(np.zeros((4, d, d)), b, sch, 2)  # T mismatch
    with pytest.raises(ValueError):
        sample_affine_chain(np.zeros((5, d, d + 1)), b, sch, 2)  # not square
    with pytest.raises(ValueError):
        sample_affine_chain(np.zeros((5, d)), b, sch, 2)  # not 3-D
    with pytest.raises(ValueError):
        sample_affine_chain(W, np.zeros((5, d + 1)), sch, 2)
    bad = W.copy()
    bad[2, 1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        sample_affine_chain(bad, b, sch, 2)
    badb = b.copy()
    badb[0, 0] = np.inf
    with pytest.raises(ValueError, match="NaN or inf"):
        sample_affine_chain(W, badb, sch, 2)
    with pytest.raises(TypeError):
        sample_affine_chain(W.astype(object), b, sch, 2)
    with pytest.raises(TypeError):
        sample_affine_chain(W, b, "paper", 2)
    with pytest.raises(ValueError):
        sample_affine_chain(W, b, sch, 0)
    with pytest.raises(ValueError):
        sample_affine_chain(W, b, sch, 2, workers=0)
    with pytest.raises(ValueError):
        sample_affine_chain(W, b, sch, 2, sampler="ddpm2")


def test_core_checks_again() -> None:
    """The raw bindings reject inconsistent input with ValueError, not a crash."""
    d, T, n = 2, 3, 5
    U = np.eye(d)
    a = np.ones((T, d))
    c = np.zeros((T, d))
    sig = np.ones(T)
    seeds = np.ones(4, dtype=np.uint64)
    out = np.empty((n, d))
    _core.sample_eigen_chain(U, a, c, sig, seeds, 1, out)
    with pytest.raises(ValueError):
        _core.sample_eigen_chain(U, a, c, sig, np.ones(8, dtype=np.uint64), 1, out)  # wrong seed count
    with pytest.raises(ValueError):
        _core.sample_eigen_chain(U, a, c, np.ones(T + 1), seeds, 1, out)
    with pytest.raises(ValueError):
        _core.sample_eigen_chain(U, a, c, sig, seeds, 0, out)
    with pytest.raises(ValueError):
        _core.sample_eigen_chain(U, a, np.full((T, d), np.nan), sig, seeds, 1, out)
    with pytest.raises(ValueError):
        _core.sample_dense_chain(np.zeros((T, d, d + 1)), c, np.ones(T), np.ones(T), sig, seeds, 1, out)
    with pytest.raises(TypeError):  # the output must be a writable float64 C array: no silent copy
        _core.sample_gaussian(np.zeros(d), np.ones(d), U, seeds, 1, np.empty((n, d), dtype=np.float32))


def test_public_exports() -> None:
    assert lindiff.sample_affine_chain is sample_affine_chain
    assert "sample_affine_chain" in lindiff.__all__
    assert lsampling.BLOCK_SIZE == 256
