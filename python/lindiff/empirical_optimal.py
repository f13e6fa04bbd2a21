"""The empirical-optimal denoiser: the exact score of the training set, the model that memorises.

For training points x_1..x_N the forward process turns the empirical law (1/N) Σ δ(x − x_i) into
p_t = (1/N) Σ_i N(√ᾱ_t x_i, (1−ᾱ_t) I). Its exact noise predictor is

    ε*(x, t) = (x − √ᾱ_t m(x, t)) / √(1−ᾱ_t),   m = Σ_i w_i x_i,
    w = softmax_i( −‖x − √ᾱ_t x_i‖² / (2(1−ᾱ_t)) ),

where m(x, t) = E[x₀ | x_t = x] is the posterior mean. It is the minimiser of the denoising loss on
the training set over *all* functions, linear or not: the "ideal nonlinear" model to put beside
:class:`lindiff.LinearDiffusion`. Sampled with enough steps, its reverse chain lands on the training
points: it memorises perfectly (use :func:`lindiff.memorisation` to see it).

Numerics: the softmax is taken with max-subtraction (log-sum-exp), so nothing overflows at small t
where 1−ᾱ_t ≈ 1e-4 and the logits span ~10⁶. The logits come from one matrix product,
(√ᾱ/(1−ᾱ)) x·x_i − (ᾱ/(1−ᾱ)) ‖x_i‖²/2; where the softmax is peaked (at most 32 weights above
e⁻⁴⁰ of the largest, the small-t regime), those few logits are recomputed from the differences
‖x − √ᾱ x_i‖², so the expansion's cancellation does not reach the result. Weights below e⁻⁷⁰⁸ of
the largest are 0.

Sampling uses the conventions of the linear samplers (theory.md §4, :mod:`lindiff.sampling`): DDPM
with σ_t² = β_t or β̃_t, optional noise at the last step, or DDIM (η = 0); u_T ~ N(0, I); the same
per-block xoshiro256++ streams (blocks of 256 samples, seeds from ``numpy.random.SeedSequence``),
so the same ``rng`` gives bit-identical samples for any ``workers``. Cost per step: two products
of n×N×d and n·N exponentials, fused per block of 8 samples in lindiff's worker threads
(register-tiled kernels and a vectorised exp, runtime-dispatched to x86-64-v4 / v3 / baseline
code; no BLAS, whose own thread pool would oversubscribe the cores). Where the softmax is peaked,
the second product and the exponentials are skipped: the mean is the sum over the few significant
points. The sampler also skips the first product there: a row whose softmax was peaked keeps that
state u_a and its ≤ 32 nearest points (candidates); at a later step the triangle inequality,
‖u − s x_i‖ ≥ ‖u_a − s_a x_i‖ − ‖u − u_a‖ − |s − s_a|·max‖x_i‖, bounds every other point's distance,
and while that bound keeps their weights below e⁻⁴⁰ of the largest, the mean comes from the
candidates alone (exact differences, 32·d work instead of 2·N·d). When the bound fails the row is
evaluated in full again. The result is the same as without the shortcut up to that e⁻⁴⁰ cut, the
one the refinement above already makes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _core
from ._progress import Progress
from ._validation import RNGLike, as_data, as_int, resolve_workers
from .sampling import _check_n, _noise_array, _seed_words, _sigma, _step_coefficients
from .schedule import Schedule

__all__ = ["EmpiricalOptimalDenoiser"]


class EmpiricalOptimalDenoiser:
    """The exact denoiser (noise predictor) of the empirical distribution of a training set.

    Parameters
    ----------
    X : array_like, shape (N, d)
        The training set (N >= 1, finite). It is copied.
    schedule : Schedule, optional
        Default ``Schedule.paper()`` (T = 1000).
    workers : int or None
        Default threads for :meth:`predict_noise` and :meth:`sample` (None or -1: all cores).
    """

    def __init__(self, X: Any, schedule: Schedule | None = None, *, workers: int | None = None) -> None:
        arr = as_data(X, "X", min_rows=1)
        self._X = np.array(arr, dtype=np.float64, order="C", copy=True)
        self._X.flags.writeable = False
        self._schedule = Schedule.paper() if schedule is None else schedule
        if not isinstance(self._schedule, Schedule):
            raise TypeError("schedule must be a lindiff.Schedule")
        self._workers = resolve_workers(workers)

    # ------------------------------------------------------------------ properties
    @property
    def X(self) -> np.ndarray:
        """The training set (read-only)."""
        return self._X

    @property
    def N(self) -> int:
        return int(self._X.shape[0])

    @property
    def d(self) -> int:
        return int(self._X.shape[1])

    @property
    def T(self) -> int:
        return self._schedule.T

    @property
    def schedule(self) -> Schedule:
        return self._schedule

    def _coeffs(self) -> tuple[np.ndarray, np.ndarray]:
        s = self._schedule
        om = np.array(s.one_minus_alphas_bar, dtype=float)
        om[0] = float(s.betas[0])  # 1 − ᾱ₁ = β₁ exactly
        return np.sqrt(np.asarray(s.alphas_bar, dtype=float)), om

    def _t_index(self, t: Any) -> int:
        t = as_int(t, "t", 1)
        if t > self.T:
            raise ValueError(f"t must be in 1..T = {self.T}, got {t}")
        return t - 1

    def _batch(self, x: Any) -> tuple[np.ndarray, bool]:
        arr = np.asarray(x)
        single = arr.ndim == 1
        if single:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[1] != self.d:
            raise ValueError(f"x must have shape (n, {self.d}) or ({self.d},), got {np.shape(x)}")
        return np.ascontiguousarray(as_data(arr, "x", min_rows=1)), single

    def _predict(self, x: Any, t: Any, workers: int | None) -> tuple[np.ndarray, np.ndarray, bool]:
        k = self._t_index(t)
        arr, single = self._batch(x)
        sq, om = self._coeffs()
        eps = np.empty_like(arr)
        mean = np.empty_like(arr)
        w = self._workers if workers is None else resolve_workers(workers)
        _core.empirical_optimal_predict(self._X, arr, float(sq[k]), float(om[k]), w, eps, mean)
        return eps, mean, single

    # ------------------------------------------------------------------ the denoiser
    def predict_noise(self, x: Any, t: int, *, workers: int | None = None) -> np.ndarray:
        """ε*(x, t) for a batch x of shape (n, d) (or one point of shape (d,)), t ∈ 1..T."""
        eps, _, single = self._predict(x, t, workers)
        return eps[0] if single else eps

    def posterior_mean(self, x: Any, t: int, *, workers: int | None = None) -> np.ndarray:
        """E[x₀ | x_t = x] = Σ_i w_i(x) x_i, the denoised estimate (same shapes as :meth:`predict_noise`)."""
        _, mean, single = self._predict(x, t, workers)
        return mean[0] if single else mean

    def sample(
        self,
        n: int,
        *,
        rng: RNGLike = None,
        workers: int | None = None,
        sampler: str = "ddpm",
        sigma: str = "beta",
        final_noise: bool = True,
        progress: bool | None = None,
        _noise: Any = None,
    ) -> np.ndarray:
        """Draw n samples from the reverse chain with ε*, shape (n, d).

        Parameters
        ----------
        n : int
            Number of samples (>= 1).
        rng : int, Generator or None
            Seeds the per-block xoshiro256++ streams (see :mod:`lindiff.sampling`); ``rng`` is
            advanced by one ``integers`` call.
        workers : int or None
            Threads (None: the object's setting). The output does not depend on it. Batches with
            little work per step (rows × N × (4d + 16) below 2²¹, e.g. N = 50, d = 8, 1000 samples)
            run on the calling thread, where starting threads every step would cost more.
        sampler : {"ddpm", "ddim"}
        sigma : {"beta", "beta_tilde"}
            σ_t² = β_t or β̃_t (DDPM only).
        final_noise : bool
            Add noise at the last step t = 1 (DDPM only). With ``False`` (or DDIM) and enough steps,
            samples land on training points up to the chain's discretisation.
        progress : bool or None
            A tqdm bar with ETA on stderr (None: only when stderr is a terminal). The samples do not
            depend on it.

        Notes
        -----
        Memory: the output, n×d posterior means, and 8×N doubles of logits per 32 samples of a
        batch (a batch is workers × 1024 samples); plus two padded copies of the training set.
        Trajectories are not offered. Ctrl-C is honoured between steps.
        """
        n = _check_n(n)
        w = self._workers if workers is None else resolve_workers(workers)
        sig = _sigma(self._schedule, sampler, sigma, final_noise)
        p, q = _step_coefficients(self._schedule, sampler)
        sq, om = self._coeffs()
        z = _noise_array(_noise, self.T, n, self.d)
        seeds = _seed_words(rng, n)
        out = np.empty((n, self.d))
        with Progress(seeds.size // 4 * self.T, progress, f"lindiff sample (empirical optimal, n={n})",
                      "block-step") as bar:
            _core.sample_empirical_optimal(self._X, sq, om, p, q, np.ascontiguousarray(sig), seeds, w, out, z,
                                           bar.callback)
        return out

    def __repr__(self) -> str:
        return f"EmpiricalOptimalDenoiser(N={self.N}, d={self.d}, T={self.T})"


