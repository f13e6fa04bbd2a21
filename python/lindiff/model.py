"""The linear diffusion model in closed form (theory.md §3–§5).

A :class:`LinearDiffusion` is the per-t linear noise predictor ε_θ(x, t) = W_t x + b_t that is
optimal (or gradient-trained for a time τ) on the noise-averaged loss for a training set with
statistics (μ̂, Σ̂ = U diag(λ̂) Uᵀ). Every such W_t is a spectral filter of Σ̂, so the model is
stored as U, λ̂, μ̂ and a T×d table of filter values, never as T dense d×d matrices.

Conventions (all defaults are theory.md's; each can be changed)
---------------------------------------------------------------
- Ridge: penalty γ_t‖W_t‖_F² (bias unpenalised): W_t = √(1−ᾱ_t)(ᾱ_t Σ̂ + (1−ᾱ_t+γ_t)I)⁻¹,
  b_t = −√ᾱ_t W_t μ̂. ``ridge`` is a scalar or one value per t.
- Training: gradient flow with learning rate η for a time τ from W⁰ = init·I,
  W_t(τ) = W* + (W⁰ − W*) exp(−2η C_t τ), C_t = ᾱ_tΣ̂ + (1−ᾱ_t+γ_t)I; or ``steps`` = n discrete
  gradient steps, (1−2ηC_t)ⁿ in place of the exponential (stable for η < 1/c_max). The bias is kept
  at its optimum for the current W (b_t = −√ᾱ_t W_t μ̂).
- Sampler: DDPM ancestral, σ_t² = β_t (``sigma="beta"``, default) or β̃_t (``"beta_tilde"``); noise
  at the last step unless ``final_noise=False``; or deterministic DDIM (η = 0).
- Losses: L_t(W, b; m, S) of theory.md §5, per t; train uses (μ̂, Σ̂), test a target (μ, Σ).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, Sequence

import numpy as np

from . import _core
from ._validation import as_int, as_vector, resolve_workers
from .gaussian import Gaussian
from .schedule import Schedule
from .stats import EmpiricalStats

__all__ = [
    "GridResult",
    "LinearDiffusion",
    "OptimumResult",
    "evaluate_grid",
    "optimal_ridge",
    "optimal_stopping",
]

SigmaChoice = Literal["beta", "beta_tilde"]
SamplerChoice = Literal["ddpm", "ddim"]
Direction = Literal["forward", "reverse"]

_OPTIMUM, _FLOW, _GD = 0, 1, 2


# ---------------------------------------------------------------------- option handling
def _sigma2(schedule: Schedule, sampler: str, sigma: str, final_noise: bool) -> np.ndarray:
    if sampler not in ("ddpm", "ddim"):
        raise ValueError(f"sampler must be 'ddpm' or 'ddim', got {sampler!r}")
    if sigma not in ("beta", "beta_tilde"):
        raise ValueError(f"sigma must be 'beta' or 'beta_tilde', got {sigma!r}")
    if not isinstance(final_noise, (bool, np.bool_)):
        raise TypeError("final_noise must be True or False")
    if sampler == "ddim":
        return np.zeros(schedule.T)
    if sigma == "beta":
        s2 = np.array(schedule.betas, dtype=float)
    elif sigma == "beta_tilde":
        s2 = np.array(schedule.beta_tilde, dtype=float)
    else:
        raise ValueError(f"sigma must be 'beta' or 'beta_tilde', got {sigma!r}")
    if not isinstance(final_noise, (bool, np.bool_)):
        raise TypeError("final_noise must be True or False")
    if not final_noise:
        s2[0] = 0.0
    return s2


def _ridge_array(ridge: Any, T: int) -> np.ndarray:
    r = np.asarray(ridge, dtype=float)
    if r.ndim == 0:
        r = np.full(T, float(r))
    elif r.ndim != 1 or r.shape[0] != T:
        raise ValueError(f"ridge must be a scalar or have length T = {T}, got shape {r.shape}")
    if not np.isfinite(r).all():
        raise ValueError("ridge must be finite")
    if (r < 0).any():
        raise ValueError(f"ridge must be >= 0, got min {r.min():.3g}")
    return np.ascontiguousarray(r)


def _training(
    train_time: float | None, learning_rate: float, steps: int | None, init: float
) -> tuple[int, float, float, float]:
    lr = float(learning_rate)
    if not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"learning_rate must be a positive finite number, got {learning_rate}")
    init = float(init)
    if not math.isfinite(init):
        raise ValueError("init must be finite")
    if train_time is not None and steps is not None:
        raise ValueError("give train_time (gradient flow) or steps (discrete gradient descent), not both")
    if steps is not None:
        n = as_int(steps, "steps", 0)
        return (_GD, float(n), lr, init)
    if train_time is None:
        return (_OPTIMUM, 0.0, lr, init)
    tau = float(train_time)
    if math.isnan(tau) or tau < 0:
        raise ValueError(f"train_time must be >= 0 (or inf), got {train_time}")
    return (_FLOW, tau, lr, init) if math.isfinite(tau) else (_OPTIMUM, 0.0, lr, init)


def _check_gd_stable(training: tuple[int, float, float, float], lam_max: float,
                     schedule: Schedule, ridges: np.ndarray) -> None:
    if training[0] != _GD:
        return
    ab = np.asarray(schedule.alphas_bar)
    c_max = float(np.max(ab * lam_max + 1 - ab + ridges.max(axis=0)))
    if training[2] >= 1.0 / c_max:
        raise ValueError(
            f"learning_rate {training[2]:.4g} is unstable for discrete gradient descent: it needs "
            f"η < 1/c_max = {1.0 / c_max:.4g} (c_max = max_t ᾱ_t λ̂_max + 1 − ᾱ_t + γ_t)"
        )


# ---------------------------------------------------------------------- the target in U's basis
class _Projection:
    """A Gaussian target expressed in the model's eigenbasis U: computed once, reused by every
    (ridge, τ, T) setting. Cost: one d×d product VᵀU (none for an axis-aligned target)."""

    def __init__(self, U: np.ndarray, mu_hat_c: np.ndarray, target: Gaussian) -> None:
        d = U.shape[0]
        if not isinstance(target, Gaussian):
            raise TypeError("target must be a lindiff.Gaussian / GaussianTarget")
        if target.d != d:
            raise ValueError(f"target has dimension {target.d} but the model has d = {d}")
        if target.is_degenerate:
            raise ValueError("target covariance must be positive definite")
        lam = target.eigvals
        R = U if target.is_axis_aligned else target.eigvecs.T @ U  # R[j, i] = v_jᵀ u_i
        R2 = R * R
        self.R = R
        self.lam = lam
        self.P = R2.T @ lam  # u_iᵀ Σ u_i
        self.Pinv = R2.T @ (1.0 / lam)  # u_iᵀ Σ⁻¹ u_i
        self.mu_c = U.T @ target.mean
        self.mu_hat_c = mu_hat_c
        self.logdet = float(np.sum(np.log(lam)))
        self.d = d
        off = self.mu_c - mu_hat_c
        self.test_energy = self.P + off * off  # e_i for the test loss

    def kl(self, var: np.ndarray, gain: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Forward and reverse KL for rows of per-mode variances s₀ and mean gains g."""
        var = np.atleast_2d(var)
        gain = np.atleast_2d(gain)
        delta = gain * self.mu_hat_c - self.mu_c  # (μ_gen − μ) in U coordinates
        degenerate = ~(var > 0).all(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            logdet_gen = np.sum(np.log(var), axis=1)
            fwd = 0.5 * (np.sum((self.P + delta * delta) / var, axis=1) - self.d + logdet_gen - self.logdet)
        y = delta @ self.R.T  # (μ_gen − μ) in the target's eigenbasis
        rev = 0.5 * (var @ self.Pinv - self.d + np.sum(y * y / self.lam, axis=1) + self.logdet - logdet_gen)
        fwd = np.where(degenerate, np.inf, np.maximum(fwd, 0.0))
        rev = np.where(degenerate, np.inf, np.maximum(rev, 0.0))
        return fwd, rev


# ---------------------------------------------------------------------- the model
class LinearDiffusion:
    """The closed-form linear diffusion model of a training set.

    Parameters
    ----------
    stats : EmpiricalStats
        Training-set statistics (from data, or a target's exact Wishart draw).
    schedule : Schedule, optional
        Default: the paper's schedule, ``Schedule.paper()`` (T = 1000, β from 1e-4 to 1e-2).
    ridge : float or array (T,), default 0
        γ_t ≥ 0.
    train_time : float, optional
        Gradient-flow time τ ≥ 0 (``inf`` or ``None``: the converged optimum).
    learning_rate : float, default 1
        η. For gradient flow only the product ητ matters.
    steps : int, optional
        Number of discrete gradient-descent steps instead of gradient flow.
    init : float, default 0
        Initialisation W⁰ = init · I (it must commute with Σ̂ for the closed form).
    workers : int or None
        Threads for the C++ kernels (None or -1: all cores).
    """

    def __init__(
        self,
        stats: EmpiricalStats,
        schedule: Schedule | None = None,
        *,
        ridge: Any = 0.0,
        train_time: float | None = None,
        learning_rate: float = 1.0,
        steps: int | None = None,
        init: float = 0.0,
        workers: int | None = None,
    ) -> None:
        if not isinstance(stats, EmpiricalStats):
            raise TypeError("stats must be a lindiff.EmpiricalStats")
        self._schedule = Schedule.paper() if schedule is None else schedule
        if not isinstance(self._schedule, Schedule):
            raise TypeError("schedule must be a lindiff.Schedule")
        self._workers = resolve_workers(workers)
        self._stats = stats
        self._lam = np.ascontiguousarray(stats.eigvals)
        self._U = stats.eigvecs
        self._mu_hat = stats.mean
        self._mu_hat_c = self._U.T @ self._mu_hat
        self._ridge = _ridge_array(ridge, self._schedule.T)
        self._training = _training(train_time, learning_rate, steps, init)
        _check_gd_stable(self._training, float(self._lam[0]), self._schedule, self._ridge[None, :])
        self._filters: np.ndarray | None = None

    # ------------------------------------------------------------------ basic properties
    @property
    def d(self) -> int:
        return int(self._lam.shape[0])

    @property
    def T(self) -> int:
        return self._schedule.T

    @property
    def schedule(self) -> Schedule:
        return self._schedule

    @property
    def stats(self) -> EmpiricalStats:
        return self._stats

    @property
    def ridge(self) -> np.ndarray:
        return self._ridge.copy()

    @property
    def eigvals(self) -> np.ndarray:
        """λ̂ (descending), the spectrum the filters act on."""
        return self._lam

    @property
    def eigvecs(self) -> np.ndarray:
        """U, the shared eigenbasis of every W_t."""
        return self._U

    def _sched_arrays(self) -> tuple[np.ndarray, ...]:
        s = self._schedule
        om = np.array(s.one_minus_alphas_bar, dtype=float)
        om[0] = s.betas[0]  # 1 − ᾱ₁ = β₁ exactly (ᾱ₀ = 1): null directions then close exactly at t = 1
        return (np.asarray(s.betas, float), np.asarray(s.alphas_bar, float),
                np.asarray(s.alphas_bar_prev, float), om)

    @property
    def filters(self) -> np.ndarray:
        """Filter values w_t(λ̂_i), shape (T, d); row t−1 is timestep t."""
        if self._filters is None:
            f = _core.filter_table(*self._sched_arrays(), self._lam, self._ridge, self._training)
            f.flags.writeable = False
            self._filters = f
        return self._filters

    def _t_index(self, t: Any) -> int:
        t = as_int(t, "t", 1)
        if t > self.T:
            raise ValueError(f"t must be in 1..T = {self.T}, got {t}")
        return t - 1

    def denoiser(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """The dense (W_t, b_t) for timestep t ∈ 1..T, built on request (d×d and d)."""
        k = self._t_index(t)
        w = self.filters[k]
        W = (self._U * w) @ self._U.T
        b = -math.sqrt(self._schedule.alphas_bar[k]) * (W @ self._mu_hat)
        return W, b

    def predict_noise(self, x: Any, t: int) -> np.ndarray:
        """ε_θ(x, t) = W_t x + b_t for a batch x of shape (n, d) (or one point of shape (d,))."""
        k = self._t_index(t)
        arr = np.asarray(x, dtype=float)
        single = arr.ndim == 1
        arr = np.atleast_2d(arr)
        if arr.ndim != 2 or arr.shape[1] != self.d:
            raise ValueError(f"x must have shape (n, {self.d}) or ({self.d},), got {np.shape(x)}")
        if not np.isfinite(arr).all():
            raise ValueError("x contains NaN or inf")
        centred = arr - math.sqrt(self._schedule.alphas_bar[k]) * self._mu_hat
        out = ((centred @ self._U) * self.filters[k]) @ self._U.T
        return out[0] if single else out

    # ------------------------------------------------------------------ the shared evaluator
    def _projection(self, target: Gaussian) -> _Projection:
        # Cached on the statistics (the projection depends only on U, μ̂ and the target), so grids
        # and 1-D searches that build many models pay the d×d product once.
        cache = self._stats._projections
        hit = cache.get(id(target))
        if hit is not None and hit[0] is target:
            return hit[1]
        proj = _Projection(self._U, self._mu_hat_c, target)
        cache[id(target)] = (target, proj)
        return proj

    def _evaluate(
        self,
        ridges: np.ndarray,
        trainings: list[tuple[int, float, float, float]],
        sigma2: np.ndarray,
        sampler: str,
        energies: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return _core.evaluate_grid(
            *self._sched_arrays(),
            self._lam,
            np.ascontiguousarray(ridges),
            trainings,
            0 if sampler == "ddpm" else 1,
            sigma2,
            np.ascontiguousarray(energies.reshape(-1, self.d)),
            self._workers,
        )

    # ------------------------------------------------------------------ generated law
    def sampling_distribution(
        self,
        sigma: SigmaChoice = "beta",
        final_noise: bool = True,
        sampler: SamplerChoice = "ddpm",
    ) -> Gaussian:
        """The exact law N(μ_gen, Σ_gen) of samples from the reverse chain (theory.md §4).

        Σ_gen = U diag(s₀) Uᵀ from the per-mode recursion s_{t−1} = a_t² s_t + σ_t², s_T = 1; the
        mean from the same recursion for m_t with m_T = 0. The result keeps the eigen form.
        """
        s2 = _sigma2(self._schedule, sampler, sigma, final_noise)
        var, gain, _ = self._evaluate(self._ridge[None, :], [self._training], s2, sampler, np.empty((0, self.d)))
        mean = self._U @ (gain[0] * self._mu_hat_c)
        # U is the statistics' own orthonormal basis: no need to re-check it (that check was ~90% of
        # this call at d = 2000).
        return Gaussian._from_eigen(mean, var[0], self._U)

    def sample(
        self,
        n: int,
        *,
        rng: Any = None,
        workers: int | None = None,
        method: Literal["eigen", "dense", "exact"] = "eigen",
        sampler: SamplerChoice = "ddpm",
        sigma: SigmaChoice = "beta",
        final_noise: bool = True,
        return_trajectory: bool = False,
        trajectory_steps: Sequence[int] | None = None,
        progress: bool | None = None,
        _noise: Any = None,
    ) -> Any:
        """Draw n samples from the model's reverse chain (theory.md §4), shape (n, d).

        Parameters
        ----------
        n : int
            Number of samples (>= 1).
        rng : int, Generator or None
            Seeds the compiled generator (xoshiro256++ with Box–Muller, one stream per block of 256
            samples, seeds from ``numpy.random.SeedSequence``; see :mod:`lindiff.sampling`). The
            same ``rng`` gives bit-identical samples for any ``workers``.
        workers : int or None
            Threads; None uses the model's setting (-1: all cores).
        method : {"eigen", "dense", "exact"}
            "eigen": the chain in the eigenbasis U (O(n·T·d)); "dense": the chain with the dense
            W_t (builds T·d²·8 bytes, refused above ``lindiff.sampling.DENSE_MEMORY_LIMIT``);
            "exact": i.i.d. draws from :meth:`sampling_distribution` (no trajectory).
        sampler, sigma, final_noise
            As in :meth:`sampling_distribution`.
        return_trajectory : bool
            Also return the states u_t at ``trajectory_steps`` (only those are stored).
        trajectory_steps : sequence of int in 0..T, optional
            Default: 11 evenly spaced steps from T to 0.
        progress : bool or None
            A progress bar with ETA on stderr; None (default): only when stderr is a terminal and
            the call lasts more than a second. It never changes the samples.

        Returns
        -------
        samples : ndarray (n, d)
            Or, with ``return_trajectory``, a tuple (samples, trajectory (len(steps), n, d), steps).
        """
        from .sampling import sample_model

        return sample_model(self, n, rng=rng, workers=workers, method=method, sampler=sampler, sigma=sigma,
                            final_noise=final_noise, return_trajectory=return_trajectory,
                            trajectory_steps=trajectory_steps, progress=progress, _noise=_noise)

    def kl(
        self,
        target: Gaussian,
        direction: Literal["forward", "reverse", "both"] = "both",
        *,
        sigma: SigmaChoice = "beta",
        final_noise: bool = True,
        sampler: SamplerChoice = "ddpm",
    ) -> Any:
        """KL between ``target`` and the generated law: forward KL(target‖gen), reverse
        KL(gen‖target), or both as a dict. ``inf`` when the generated law is degenerate."""
        if direction not in ("forward", "reverse", "both"):
            raise ValueError(f"direction must be 'forward', 'reverse' or 'both', got {direction!r}")
        proj = self._projection(target)
        s2 = _sigma2(self._schedule, sampler, sigma, final_noise)
        var, gain, _ = self._evaluate(self._ridge[None, :], [self._training], s2, sampler, np.empty((0, self.d)))
        fwd, rev = proj.kl(var, gain)
        out = {"forward": float(fwd[0]), "reverse": float(rev[0])}
        return out if direction == "both" else out[direction]

    # ------------------------------------------------------------------ losses
    def _losses(self, energy: np.ndarray) -> np.ndarray:
        s2 = np.zeros(self.T)
        _, _, losses = self._evaluate(self._ridge[None, :], [self._training], s2, "ddpm", energy[None, :])
        return losses[0]

    def train_loss(self) -> np.ndarray:
        """Per-t training loss L_t(W_t, b_t; μ̂, Σ̂), shape (T,). Average with ``.mean()``; divide by d
        for the per-dimension value."""
        return self._losses(self._lam)

    def test_loss(self, target: Any = None, *, mean: Any = None, cov: Any = None) -> np.ndarray:
        """Per-t loss against a Gaussian (a ``target``, or ``mean`` and ``cov``), shape (T,)."""
        if target is not None:
            if mean is not None or cov is not None:
                raise ValueError("give a target or mean and cov, not both")
            return self._losses(self._projection(target).test_energy)
        if mean is None or cov is None:
            raise ValueError("give a target, or both mean and cov")
        m = as_vector(mean, "mean", self.d)
        c = np.asarray(cov, dtype=float)
        if c.shape != (self.d, self.d) or not np.isfinite(c).all():
            raise ValueError(f"cov must be a finite {self.d}x{self.d} matrix")
        P = np.einsum("ji,jk,ki->i", self._U, c, self._U)
        off = self._U.T @ m - self._mu_hat_c
        return self._losses(P + off * off)

    def bayes_floor(self, target: Gaussian) -> np.ndarray:
        """L*_t = Σ_ν ᾱ_t λ_ν / (ᾱ_t λ_ν + 1 − ᾱ_t): the loss of the target's own optimal denoiser."""
        if not isinstance(target, Gaussian) or target.d != self.d:
            raise ValueError(f"target must be a Gaussian of dimension {self.d}")
        ab = np.asarray(self._schedule.alphas_bar)[:, None]
        lam = target.eigvals[None, :]
        return np.sum(ab * lam / (ab * lam + 1 - ab), axis=1)

    def __repr__(self) -> str:
        kind = {_OPTIMUM: "optimum", _FLOW: f"flow τ={self._training[1]:g}", _GD: f"GD n={self._training[1]:g}"}
        return (f"LinearDiffusion(d={self.d}, N={self._stats.n}, T={self.T}, "
                f"ridge={'per-t' if np.ptp(self._ridge) else self._ridge[0]:}, {kind[self._training[0]]})")


# ---------------------------------------------------------------------- grids and optima
@dataclass(frozen=True)
class GridResult:
    """KL and losses over a ridge × training-time grid. Arrays have shape (len(ridge), len(times)).

    ``times`` holds τ (gradient flow) or step counts (``steps`` grids); ``inf`` is the optimum.
    Losses are uniform averages over t (divide by d for per-dimension values).
    """

    ridge: np.ndarray
    times: np.ndarray
    kl_forward: np.ndarray
    kl_reverse: np.ndarray
    train_loss: np.ndarray
    test_loss: np.ndarray

    def to_dict(self) -> dict[str, np.ndarray]:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


def evaluate_grid(
    stats: EmpiricalStats,
    target: Gaussian,
    schedule: Schedule | None = None,
    *,
    ridge: Sequence[float] | float = 0.0,
    train_time: Sequence[float] | float | None = None,
    steps: Sequence[int] | None = None,
    learning_rate: float = 1.0,
    init: float = 0.0,
    sigma: SigmaChoice = "beta",
    final_noise: bool = True,
    sampler: SamplerChoice = "ddpm",
    workers: int | None = None,
) -> GridResult:
    """KL (both directions) and average train/test losses over a grid of ridges and training times.

    One eigendecomposition and one target projection serve the whole grid; each grid point then
    costs O(T·d) in the C++ core (threads over grid points).

    Parameters
    ----------
    ridge : float or sequence of float
        Scalar ridge values γ (each applied at every t).
    train_time : float, sequence of float or None
        Gradient-flow times τ; ``None`` or ``inf`` means the converged optimum.
    steps : sequence of int, optional
        Discrete gradient-descent step counts instead of ``train_time``.
    """
    model = LinearDiffusion(stats, schedule, workers=workers)
    ridges = np.atleast_1d(np.asarray(ridge, dtype=float))
    if ridges.ndim != 1 or ridges.size == 0:
        raise ValueError("ridge grid is empty")
    R = np.stack([_ridge_array(g, model.T) for g in ridges])
    if steps is not None:
        if train_time is not None:
            raise ValueError("give train_time or steps, not both")
        times = np.atleast_1d(np.asarray(steps))
        trainings = [_training(None, learning_rate, n, init) for n in times.tolist()]
    else:
        times = np.atleast_1d(np.asarray(np.inf if train_time is None else train_time, dtype=float))
        trainings = [_training(float(t), learning_rate, None, init) for t in times]
    if times.size == 0:
        raise ValueError("training-time grid is empty")
    for tr in trainings:
        _check_gd_stable(tr, float(model.eigvals[0]), model.schedule, R)
    proj = model._projection(target)
    energies = np.stack([model.eigvals, proj.test_energy])
    s2 = _sigma2(model.schedule, sampler, sigma, final_noise)
    var, gain, losses = model._evaluate(R, trainings, s2, sampler, energies)
    fwd, rev = proj.kl(var, gain)
    shape = (ridges.size, times.size)
    avg = losses.mean(axis=1).reshape(ridges.size * times.size, 2)
    return GridResult(
        ridge=ridges,
        times=times.astype(float),
        kl_forward=fwd.reshape(shape),
        kl_reverse=rev.reshape(shape),
        train_loss=avg[:, 0].reshape(shape),
        test_loss=avg[:, 1].reshape(shape),
    )


@dataclass(frozen=True)
class OptimumResult:
    """The minimiser of a 1-D search and the value there. ``at_boundary`` flags a minimum on the
    edge of the search interval (widen ``bounds``)."""

    argmin: float
    value: float
    at_boundary: bool


def _minimise_log(f: Any, lo: float, hi: float, n_grid: int, rtol: float) -> OptimumResult:
    """Coarse log-grid scan, then golden-section refinement between the best point's neighbours."""
    if not (0 < lo < hi) or not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"bounds must satisfy 0 < low < high < inf, got ({lo}, {hi})")
    xs = np.geomspace(lo, hi, n_grid)
    vals = f(xs)
    i = int(np.argmin(vals))
    at_boundary = i in (0, n_grid - 1)
    a = math.log(xs[max(i - 1, 0)])
    b = math.log(xs[min(i + 1, n_grid - 1)])
    g = (math.sqrt(5) - 1) / 2
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = float(f(np.array([math.exp(c)]))[0]), float(f(np.array([math.exp(d)]))[0])
    while b - a > rtol:
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = float(f(np.array([math.exp(c)]))[0])
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = float(f(np.array([math.exp(d)]))[0])
    x, v = (c, fc) if fc < fd else (d, fd)
    if vals[i] < v:
        return OptimumResult(float(xs[i]), float(vals[i]), at_boundary)
    return OptimumResult(math.exp(x), v, at_boundary)


def _objective_key(objective: str) -> str:
    keys = {"kl_forward": "kl_forward", "kl_reverse": "kl_reverse", "test_loss": "test_loss",
            "forward": "kl_forward", "reverse": "kl_reverse"}
    if objective not in keys:
        raise ValueError(f"objective must be one of {sorted(keys)}, got {objective!r}")
    return keys[objective]


def optimal_ridge(
    stats: EmpiricalStats,
    target: Gaussian,
    schedule: Schedule | None = None,
    *,
    objective: str = "kl_forward",
    bounds: tuple[float, float] = (1e-8, 1e4),
    n_grid: int = 49,
    rtol: float = 1e-4,
    **options: Any,
) -> OptimumResult:
    """The ridge γ > 0 minimising ``objective`` ("kl_forward", "kl_reverse" or "test_loss").

    A log-spaced scan over ``bounds`` followed by golden-section refinement in log γ. ``options``
    go to :func:`evaluate_grid` (sampler conventions, train_time, workers …).
    """
    key = _objective_key(objective)

    def f(g: np.ndarray) -> np.ndarray:
        return getattr(evaluate_grid(stats, target, schedule, ridge=g, **options), key)[:, 0]

    return _minimise_log(f, float(bounds[0]), float(bounds[1]), n_grid, rtol)


def optimal_stopping(
    stats: EmpiricalStats,
    target: Gaussian,
    schedule: Schedule | None = None,
    *,
    objective: str = "kl_forward",
    bounds: tuple[float, float] = (1e-2, 1e8),
    n_grid: int = 61,
    rtol: float = 1e-4,
    **options: Any,
) -> OptimumResult:
    """The gradient-flow training time τ minimising ``objective`` (see :func:`optimal_ridge`)."""
    key = _objective_key(objective)
    if "train_time" in options or "steps" in options:
        raise ValueError("optimal_stopping searches over train_time itself")

    def f(taus: np.ndarray) -> np.ndarray:
        return getattr(evaluate_grid(stats, target, schedule, train_time=taus, **options), key)[0, :]

    return _minimise_log(f, float(bounds[0]), float(bounds[1]), n_grid, rtol)
