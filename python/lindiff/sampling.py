"""Sampling from linear diffusion models (theory.md §4).

Three samplers, which agree in distribution:

- ``"eigen"``: the reverse chain run in the model's eigenbasis U. Rotate once (y = Uᵀu), take T
  diagonal steps y ← a_t∘y + c_t + σ_t z, rotate back. Cost O(n·T·d) plus two n×d×d products.
- ``"dense"``: the chain with a full d×d matrix per step, for any per-t affine noise predictor
  ε_θ(u, t) = W_t u + b_t (:func:`sample_affine_chain`). Cost O(n·T·d²).
- ``"exact"``: i.i.d. draws from the chain's exact law N(μ_gen, Σ_gen)
  (:meth:`LinearDiffusion.sampling_distribution`): mean + (z∘√s) Uᵀ.

The dense and exact samplers do their matrix products with NumPy's OpenBLAS (or Eigen, see
:func:`lindiff.show_config`), one product per block of samples (and step) on the worker thread that
holds the block. While such a call runs, lindiff limits OpenBLAS to one thread per call, process-wide,
as ``threadpoolctl.threadpool_limits(1)`` would, and restores the previous setting when the call
returns or raises: NumPy calls made meanwhile from other Python threads also run single-threaded.
(Two workers then multiply side by side instead of queueing for OpenBLAS's pool, whose idle threads
would also keep spinning on the cores the noise and updates need.) Results do not depend on it.

Random numbers
--------------
The compiled core draws all noise with **xoshiro256++** and the **Box–Muller** transform (written in
``cpp/include/lindiff/rng.hpp``): each stream runs eight xoshiro256++ lanes in lock step (lane l is
lane 0 jumped by l·2¹²⁸), so that one AVX-512 register (two AVX2, four SSE) holds them and the
transform (branch-free polynomial ln, sin, cos; correctly rounded sqrt and division; no FMA) runs
on eight pairs at once. The AVX-512, AVX2 and baseline builds give bit-identical numbers; the
path is picked at run time. The noise is generated and used in one fused pass (16 normals in
registers, then the update of 16 coordinates). The n samples are cut into blocks of
``BLOCK_SIZE`` = 256 rows, a constant that does not depend on ``workers``; block j has its own
stream seeded with four 64-bit words. The words come from NumPy: one call ``rng.integers(2**63, size=4)`` on the
caller's generator becomes the entropy of a ``numpy.random.SeedSequence``, whose
``generate_state(4 * n_blocks, np.uint64)`` gives the per-block seeds (an all-zero seed, probability
2⁻²⁵⁶, is replaced by a fixed nonzero word). Each block writes only its own rows, so the same ``rng``
gives bit-identical samples for any number of workers. ``rng`` is advanced by exactly one
``integers`` call per sampling call.

Progress
--------
Long calls show a tqdm progress bar with an ETA on stderr when stderr is a terminal (``progress=None``,
the default; the bar appears only after a second), always with ``progress=True`` and never with
``progress=False``. The compiled loop reports finished blocks (and, for the dense chain, steps) from
the calling thread between batches, where it also checks for Ctrl-C; the bar never changes the
samples.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence


import numpy as np

from . import _core
from ._progress import Progress
from ._validation import RNGLike, as_int, as_rng, resolve_workers
from .schedule import Schedule

if TYPE_CHECKING:  # pragma: no cover
    from .model import LinearDiffusion

__all__ = ["BLOCK_SIZE", "DENSE_MEMORY_LIMIT", "sample_affine_chain", "sample_model"]

BLOCK_SIZE: int = int(_core.SAMPLE_BLOCK)
#: Largest stack of dense W_t (T·d²·8 bytes) that ``model.sample(method="dense")`` will build.
DENSE_MEMORY_LIMIT: int = 2 * 1024**3

_METHODS = ("eigen", "dense", "exact")


# ---------------------------------------------------------------------- helpers
def _seed_words(rng: RNGLike, n: int) -> np.ndarray:
    """4 uint64 words per block of BLOCK_SIZE samples, from a SeedSequence seeded by ``rng``."""
    gen = as_rng(rng)
    n_blocks = -(-n // BLOCK_SIZE)
    ss = np.random.SeedSequence(gen.integers(2**63, size=4, dtype=np.uint64).tolist())
    words = ss.generate_state(4 * n_blocks, np.uint64).reshape(n_blocks, 4)
    zero = ~words.any(axis=1)
    if zero.any():  # xoshiro cannot leave the all-zero state (probability 2^-256 per block)
        words[zero, 0] = np.uint64(0x9E3779B97F4A7C15)
    return np.ascontiguousarray(words.reshape(-1))


def _check_n(n: Any) -> int:
    return as_int(n, "n", 1)


def _sigma(schedule: Schedule, sampler: str, sigma: str, final_noise: bool) -> np.ndarray:
    from .model import _sigma2

    return np.sqrt(_sigma2(schedule, sampler, sigma, final_noise))


def _step_coefficients(schedule: Schedule, sampler: str) -> tuple[np.ndarray, np.ndarray]:
    """(p_t, q_t) with u_{t−1} = p_t u_t + q_t ε_θ(u_t, t) (+ σ_t z_t), index t−1.

    DDPM: p = 1/√(1−β_t), q = −β_t/(√(1−ᾱ_t)√(1−β_t)).
    DDIM (η = 0): p = √(ᾱ_{t−1}/ᾱ_t), q = √(1−ᾱ_{t−1}) − √(ᾱ_{t−1}(1−ᾱ_t)/ᾱ_t).
    """
    beta = np.asarray(schedule.betas, dtype=float)
    abar = np.asarray(schedule.alphas_bar, dtype=float)
    abar_prev = np.asarray(schedule.alphas_bar_prev, dtype=float)
    om = np.array(schedule.one_minus_alphas_bar, dtype=float)
    om[0] = beta[0]  # 1 − ᾱ₁ = β₁ exactly
    if sampler == "ddpm":
        p = 1.0 / np.sqrt(1.0 - beta)
        q = -beta / np.sqrt(om) * p
    elif sampler == "ddim":
        om_prev = np.concatenate([[0.0], om[:-1]])
        p = np.sqrt(abar_prev / abar)
        q = np.sqrt(om_prev) - np.sqrt(abar_prev * om / abar)
    else:
        raise ValueError(f"sampler must be 'ddpm' or 'ddim', got {sampler!r}")
    return np.ascontiguousarray(p), np.ascontiguousarray(q)


def _trajectory(T: int, n: int, d: int, return_trajectory: bool,
                trajectory_steps: Sequence[int] | None) -> tuple[np.ndarray | None, list[int], np.ndarray | None]:
    """Allocate the trajectory output and the slot table (slot[t] = row of u_t or −1)."""
    if not isinstance(return_trajectory, (bool, np.bool_)):
        raise TypeError("return_trajectory must be True or False")
    if not return_trajectory:
        if trajectory_steps is not None:
            raise ValueError("trajectory_steps needs return_trajectory=True")
        return None, [], None
    if trajectory_steps is None:
        steps = np.unique(np.round(np.linspace(0, T, min(T, 10) + 1)).astype(int))[::-1]
    else:
        raw = np.asarray(trajectory_steps)
        if raw.ndim != 1 or raw.size == 0 or not np.issubdtype(raw.dtype, np.integer):
            raise TypeError("trajectory_steps must be a non-empty 1-D sequence of integers t in 0..T")
        steps = raw.astype(np.int64)
        if steps.min() < 0 or steps.max() > T:
            raise ValueError(f"trajectory_steps must lie in 0..T = {T}")
        if np.unique(steps).size != steps.size:
            raise ValueError("trajectory_steps must not repeat a timestep")
    slot = [-1] * (T + 1)
    for i, t in enumerate(steps):
        slot[int(t)] = i
    traj = np.empty((steps.size, n, d))
    return traj, slot, steps


def _noise_array(noise: Any, T: int, n: int, d: int) -> np.ndarray | None:
    if noise is None:
        return None
    z = np.ascontiguousarray(noise, dtype=np.float64)
    if z.shape != (T + 1, n, d):
        raise ValueError(f"_noise must have shape (T+1, n, d) = {(T + 1, n, d)}, got {z.shape}")
    if not np.isfinite(z).all():
        raise ValueError("_noise contains NaN or inf")
    return z


def _finish(out: np.ndarray, traj: np.ndarray | None, steps: np.ndarray | None) -> Any:
    if traj is None:
        return out
    return out, traj, steps


# ---------------------------------------------------------------------- public samplers
def sample_affine_chain(
    W: Any,
    b: Any,
    schedule: Schedule,
    n: int,
    *,
    rng: RNGLike = None,
    workers: int | None = None,
    sampler: str = "ddpm",
    sigma: str = "beta",
    final_noise: bool = True,
    return_trajectory: bool = False,
    trajectory_steps: Sequence[int] | None = None,
    progress: bool | None = None,
    _noise: Any = None,
) -> Any:
    """Run the reverse chain for an arbitrary per-t affine noise predictor ε_θ(u, t) = W_t u + b_t.

    DDPM: u_{t−1} = (u_t − β_t/√(1−ᾱ_t) ε_θ(u_t, t))/√(1−β_t) + σ_t z_t; DDIM (η = 0) as in
    theory.md §4. u_T ~ N(0, I). Each step is one matrix product over a block of 256 samples.

    Parameters
    ----------
    W : array_like, shape (T, d, d)
        ``W[t-1]`` is W_t. The W_t need not commute or be symmetric.
    b : array_like, shape (T, d)
        ``b[t-1]`` is b_t.
    schedule : Schedule
        Its T must match W.
    n : int
        Number of samples (>= 1).
    rng : int, Generator or None
        Seeds the per-block xoshiro256++ streams (see the module docstring).
    workers : int or None
        Threads (None or -1: all cores). The output does not depend on it.
    sampler : {"ddpm", "ddim"}
    sigma : {"beta", "beta_tilde"}
        σ_t² = β_t or β̃_t (DDPM only).
    final_noise : bool
        Add noise at the last step t = 1 (DDPM only).
    return_trajectory : bool
        Also return the states u_t at ``trajectory_steps``.
    trajectory_steps : sequence of int in 0..T, optional
        Default: 11 evenly spaced steps from T down to 0. Only these states are stored.
    progress : bool or None
        A progress bar with ETA on stderr; None (default): only when stderr is a terminal and the
        call lasts more than a second. It never changes the samples.

    Returns
    -------
    samples : ndarray, shape (n, d)
    trajectory : ndarray, shape (len(steps), n, d)
        Only with ``return_trajectory``; ``trajectory[i]`` is u_{steps[i]} (u_T the initial noise,
        u_0 the samples).
    steps : ndarray of int
        Only with ``return_trajectory``.
    """
    if not isinstance(schedule, Schedule):
        raise TypeError("schedule must be a lindiff.Schedule")
    n = _check_n(n)
    w = np.asarray(W)
    if w.dtype == object or not (np.issubdtype(w.dtype, np.floating) or np.issubdtype(w.dtype, np.integer)):
        raise TypeError(f"W must be a real numeric array, got dtype {w.dtype}")
    T = schedule.T
    if w.ndim != 3 or w.shape[0] != T or w.shape[1] != w.shape[2] or w.shape[1] < 1:
        raise ValueError(f"W must have shape (T, d, d) with T = {T}, got {w.shape}")
    d = w.shape[1]
    w = np.ascontiguousarray(w, dtype=np.float64)
    if not np.isfinite(w).all():
        raise ValueError("W contains NaN or inf")
    bb = np.asarray(b)
    if bb.dtype == object or not (np.issubdtype(bb.dtype, np.floating) or np.issubdtype(bb.dtype, np.integer)):
        raise TypeError(f"b must be a real numeric array, got dtype {bb.dtype}")
    if bb.shape != (T, d):
        raise ValueError(f"b must have shape (T, d) = {(T, d)}, got {bb.shape}")
    bb = np.ascontiguousarray(bb, dtype=np.float64)
    if not np.isfinite(bb).all():
        raise ValueError("b contains NaN or inf")
    return _run_dense(w, bb, schedule, n, rng=rng, workers=resolve_workers(workers), sampler=sampler,
                      sigma=sigma, final_noise=final_noise, return_trajectory=return_trajectory,
                      trajectory_steps=trajectory_steps, noise=_noise, progress=progress)


def _run_dense(W: np.ndarray, b: np.ndarray, schedule: Schedule, n: int, *, rng: RNGLike, workers: int,
               sampler: str, sigma: str, final_noise: bool, return_trajectory: bool,
               trajectory_steps: Sequence[int] | None, noise: Any, progress: bool | None) -> Any:
    T, d = W.shape[0], W.shape[1]
    sig = _sigma(schedule, sampler, sigma, final_noise)
    p, q = _step_coefficients(schedule, sampler)
    traj, slot, steps = _trajectory(T, n, d, return_trajectory, trajectory_steps)
    z = _noise_array(noise, T, n, d)
    seeds = _seed_words(rng, n)
    out = np.empty((n, d))
    with Progress(seeds.size // 4 * T, progress, f"lindiff sample (dense, n={n})", "block-step") as bar:
        _core.sample_dense_chain(W, b, p, q, sig, seeds, workers, out, z, traj, slot, bar.callback)
    return _finish(out, traj, steps)


def _eigen_tables(model: LinearDiffusion, sampler: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-mode a_t (T×d) and c_t (T×d) of the chain in U-coordinates (as in model.cpp).

    With ε_θ = W_t u + b_t, W_t = U diag(w_t) Uᵀ and b_t = −√ᾱ_t W_t μ̂, the step
    u ← p_t u + q_t ε_θ(u) becomes y ← (p_t + q_t w_t)∘y − q_t √ᾱ_t w_t∘(Uᵀμ̂).
    """
    p, q = _step_coefficients(model.schedule, sampler)
    w = model.filters
    sq_abar = np.sqrt(np.asarray(model.schedule.alphas_bar, dtype=float))
    a = p[:, None] + q[:, None] * w
    c = (-(q * sq_abar))[:, None] * w * (model.eigvecs.T @ model.stats.mean)[None, :]
    return np.ascontiguousarray(a), np.ascontiguousarray(c)


def sample_model(
    model: LinearDiffusion,
    n: int,
    *,
    rng: RNGLike = None,
    workers: int | None = None,
    method: str = "eigen",
    sampler: str = "ddpm",
    sigma: str = "beta",
    final_noise: bool = True,
    return_trajectory: bool = False,
    trajectory_steps: Sequence[int] | None = None,
    progress: bool | None = None,
    _noise: Any = None,
) -> Any:
    """Implementation of :meth:`LinearDiffusion.sample` (see there)."""
    if not isinstance(method, str) or method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    n = _check_n(n)
    workers_ = model._workers if workers is None else resolve_workers(workers)
    T, d = model.T, model.d
    if method == "exact":
        if return_trajectory or trajectory_steps is not None:
            raise ValueError("method='exact' draws from the final law only; it has no trajectory")
        if _noise is not None:
            raise ValueError("_noise is only supported by the chain methods")
        dist = model.sampling_distribution(sigma=sigma, final_noise=final_noise, sampler=sampler)
        seeds = _seed_words(rng, n)
        out = np.empty((n, d))
        with Progress(seeds.size // 4, progress, f"lindiff sample (exact, n={n})", "block") as bar:
            _core.sample_gaussian(dist.mean, np.sqrt(dist.eigvals), np.ascontiguousarray(dist.eigvecs),
                                  seeds, workers_, out, bar.callback)
        return out
    if method == "dense":
        need = T * d * d * 8
        if need > DENSE_MEMORY_LIMIT:
            raise ValueError(
                f"method='dense' would build T·d²·8 = {need / 1024**3:.1f} GiB of W_t (T = {T}, d = {d}); "
                f"the limit is {DENSE_MEMORY_LIMIT / 1024**3:.0f} GiB. Use method='eigen' (same chain, "
                "in the eigenbasis) or 'exact'."
            )
        sig = _sigma(model.schedule, sampler, sigma, final_noise)  # validate options before the big build
        del sig
        W = np.empty((T, d, d))
        b = np.empty((T, d))
        for t in range(1, T + 1):
            W[t - 1], b[t - 1] = model.denoiser(t)
        return _run_dense(W, b, model.schedule, n, rng=rng, workers=workers_, sampler=sampler, sigma=sigma,
                          final_noise=final_noise, return_trajectory=return_trajectory,
                          trajectory_steps=trajectory_steps, noise=_noise, progress=progress)
    # eigen
    sig = _sigma(model.schedule, sampler, sigma, final_noise)
    a, c = _eigen_tables(model, sampler)
    traj, slot, steps = _trajectory(T, n, d, return_trajectory, trajectory_steps)
    z = _noise_array(_noise, T, n, d)
    seeds = _seed_words(rng, n)
    out = np.empty((n, d))
    U = np.ascontiguousarray(model.eigvecs)
    with Progress(seeds.size // 4 * T, progress, f"lindiff sample (eigen, n={n})", "block-step") as bar:
        _core.sample_eigen_chain(U, a, c, sig, seeds, workers_, out, z, traj, slot, bar.callback)
    return _finish(out, traj, steps)


def _standard_normal(n: int, rng: RNGLike = None) -> np.ndarray:
    """n normals from one NormalStream (8 xoshiro256++ lanes + Box–Muller; private: tests, benchmarks)."""
    words = np.random.SeedSequence(as_rng(rng).integers(2**63, size=4, dtype=np.uint64).tolist())
    return _core.standard_normal(int(n), words.generate_state(4, np.uint64))

