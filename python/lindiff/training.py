"""Empirically trained linear denoisers: SGD on the sampled denoising loss (issue 6).

:func:`train_denoisers` trains one affine noise predictor ε_θ(x, t) = W_t x + b_t per timestep by
(minibatch) stochastic gradient descent on the actual denoising loss with sampled noise, in the
compiled core. The trained W_t are dense and no longer share one eigenbasis, so everything about them
is computed from the dense matrices: :class:`AffineDenoisers` gives the exact per-t losses (theory.md
§5 with dense W), the exact Gaussian law of the reverse chain (the dense recursion of §4), KLs, and
samples through the dense sampler (:func:`lindiff.sample_affine_chain`).
:func:`compare_with_gradient_flow` sets training against the closed-form gradient flow of §3.

Loss, gradient and time convention
----------------------------------
At timestep t, a step uses a batch of B training points x₀ (all N, in order, for full batch), each
with ``noise_draws`` = r fresh noises ε ~ N(0, I), x = √ᾱ_t x₀ + √(1−ᾱ_t) ε, M = B·r pairs::

    L̂(W, b) = (1/M) Σ ‖ε − W x − b‖² + γ_t ‖W‖_F²         (per-pair mean; bias not penalised)
    ∇_W L̂ = 2[(1/M) Σ (W x + b − ε) xᵀ + γ_t W],   ∇_b L̂ = (2/M) Σ (W x + b − ε)
    W ← W − η ∇_W L̂,   b ← b − η ∇_b L̂.

The noise-averaged loss over the training set has ∇_W L = 2(W C_t − √(1−ᾱ_t) I) when b is at its
optimum, C_t = ᾱ_t Σ̂ + (1−ᾱ_t+γ_t) I, so one full-batch GD step maps W − W* to (W − W*)(I − 2ηC_t):
n steps give the (1 − 2ηc)ⁿ of theory.md §3 exactly, and the gradient flow exp(−2ηcτ) at training time
**τ = n** (the step count) with learning rate η, i.e. ``LinearDiffusion(stats, schedule,
train_time=n, learning_rate=η)``. Full-batch SGD with fresh noise has an unbiased gradient that is
independent of the current W, so **its expectation is exactly that discrete GD path**; its fluctuation
around it shrinks like 1/√(N·draws) (see tests/test_training.py for the derived bound). With
minibatches the gradient is unbiased too, but batches drawn without replacement within an epoch are not
independent of W, so the mean follows GD up to O(η²) terms per epoch.

The bias: why ``center=True`` is the default
--------------------------------------------
The closed form of §3 assumes b_t = −√ᾱ_t W_t μ̂ at all times. Learning b jointly on the raw data does
*not* give that: with x̃ = (x, 1), GD on (W, b) is linear with the (d+1)×(d+1) matrix
M_t = E[x̃x̃ᵀ] = [[ᾱ_t(Σ̂ + μ̂μ̂ᵀ) + (1−ᾱ_t+γ_t)I, √ᾱ_t μ̂], [√ᾱ_t μ̂ᵀ, 1]], so the mean direction
couples W and b and W's trajectory differs from §3 whenever μ̂ ≠ 0 (it converges to the same
optimum). With ``center=True`` the data are centred at their empirical mean μ̂ before training and
the predictor is ε_θ(x, t) = W_t (x − √ᾱ_t μ̂) + b'_t, b'_t learnt jointly. Then M_t is block
diagonal, [[C_t, 0], [0, 1]]: W follows §3 exactly (in expectation), b' has expectation 0 at every
step (from b' = 0), and the stored raw bias is b_t = b'_t − √ᾱ_t W_t μ̂. :func:`compare_with_gradient_flow`
therefore uses ``center=True``. ``center=False`` (joint learning on raw data) is offered, and
:func:`gradient_flow_denoisers` gives its own exact closed form (flow or discrete GD with M_t above).

Random numbers and reproducibility
----------------------------------
``rng`` is advanced by one ``integers`` call; a :class:`numpy.random.SeedSequence` seeded from it
gives 4 words per trained timestep. In C++ every (timestep, step, block of 256 noisy samples) has its
own xoshiro256++ stream (Box–Muller normals) derived from those words, and the minibatch permutation
of every epoch its own too. Results are bit-identical for any ``workers`` and do not depend on
``checkpoints`` or on whether a progress bar is shown.

Minibatches: each epoch is a fresh random permutation of the N points, cut into N // B batches of B
(the N mod B points left over are not used in that epoch); ``epochs=e`` means e·(N // B) steps.

Memory
------
A trained model holds T'·d²·8 bytes of W_t (T' trained timesteps): 4.9 GB at d = 784, T' = 1000.
:func:`train_denoisers` refuses, naming the number, when its estimate exceeds ``memory_limit``
(default :data:`MEMORY_LIMIT` = 2 GiB; raise it, or train a subset ``timesteps=`` with the matching
respaced schedule, :meth:`Schedule.respace`). Working memory on top: the data twice (a copy and the
centred copy), 2·B·d for the batch and its noise sums, up to 32 MB of normals per chunk (several draws
only) and a few d×d matrices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Sequence

import numpy as np

from . import _core
from ._progress import Progress
from ._validation import RNGLike, as_data, as_int, as_rng, as_vector, resolve_workers
from .gaussian import Gaussian
from .measures import kl_pair
from .schedule import Schedule

__all__ = [
    "MEMORY_LIMIT",
    "AffineDenoisers",
    "FlowComparison",
    "TrainingResult",
    "compare_with_gradient_flow",
    "gradient_flow_denoisers",
    "train_denoisers",
]

#: Default largest estimated memory (bytes) :func:`train_denoisers` will use (T'·d²·8 plus buffers).
MEMORY_LIMIT: int = 2 * 1024**3

Direction = Literal["forward", "reverse", "both"]


# ---------------------------------------------------------------------- helpers
def _positive(x: Any, name: str) -> float:
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {x!r}")
    v = float(x)
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {x!r}")
    return v


def _timesteps(schedule: Schedule, timesteps: Any) -> tuple[np.ndarray, Schedule]:
    if timesteps is None:
        return np.arange(1, schedule.T + 1), schedule
    sub = schedule.respace(timesteps)  # validates (integers, 1..T, strictly increasing)
    return np.asarray(timesteps).astype(np.int64), sub


def _common_inputs(X: Any, schedule: Schedule | None, timesteps: Any, learning_rate: Any,
                   min_rows: int = 1) -> tuple[np.ndarray, Schedule, np.ndarray, Schedule, float]:
    """Validated (X, schedule, timesteps, the respaced schedule, learning rate) for training, its
    closed form and their comparison."""
    Xa = as_data(X, "X", min_rows=min_rows)
    sched = Schedule.paper() if schedule is None else schedule
    if not isinstance(sched, Schedule):
        raise TypeError("schedule must be a lindiff.Schedule")
    ts, sub = _timesteps(sched, timesteps)
    return Xa, sched, ts, sub, _positive(learning_rate, "learning_rate")


def _one_minus(schedule: Schedule) -> np.ndarray:
    om = np.array(schedule.one_minus_alphas_bar, dtype=float)
    om[0] = schedule.betas[0]  # 1 − ᾱ₁ = β₁ exactly
    return om


def _ridge(ridge: Any, n_t: int) -> np.ndarray:
    r = np.asarray(ridge, dtype=float)
    if r.ndim == 0:
        r = np.full(n_t, float(r))
    elif r.shape != (n_t,):
        raise ValueError(f"ridge must be a scalar or have one value per trained timestep ({n_t}), got shape {r.shape}")
    if not np.isfinite(r).all() or (r < 0).any():
        raise ValueError("ridge must be finite and >= 0")
    return np.ascontiguousarray(r)


def _moments(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu = X.mean(axis=0)
    Xc = X - mu
    return mu, (Xc.T @ Xc) / X.shape[0]


def _factor(cov: np.ndarray) -> np.ndarray:
    """F with F Fᵀ = cov (cov symmetric PSD), from its eigendecomposition."""
    lam, V = np.linalg.eigh(0.5 * (cov + cov.T))
    return V * np.sqrt(np.clip(lam, 0.0, None))


# ---------------------------------------------------------------------- the model
class AffineDenoisers:
    """A stack of dense affine noise predictors ε_θ(x, t) = W_t x + b_t on a (respaced) schedule.

    Parameters
    ----------
    W : array_like, shape (K, d, d)
    b : array_like, shape (K, d)
    schedule : Schedule
        The schedule the chain runs on: K steps, step k at the noise level of ``timesteps[k]``
        (a respaced schedule when a subset was trained).
    timesteps : array_like of int, optional
        The original timesteps (1-based) of the K denoisers; default 1..K.
    """

    def __init__(self, W: Any, b: Any, schedule: Schedule, timesteps: Any = None) -> None:
        if not isinstance(schedule, Schedule):
            raise TypeError("schedule must be a lindiff.Schedule")
        w = np.asarray(W, dtype=float)
        K = schedule.T
        if w.ndim != 3 or w.shape[0] != K or w.shape[1] != w.shape[2] or w.shape[1] < 1:
            raise ValueError(f"W must have shape (K, d, d) with K = schedule.T = {K}, got {w.shape}")
        d = w.shape[1]
        bb = np.asarray(b, dtype=float)
        if bb.shape != (K, d):
            raise ValueError(f"b must have shape (K, d) = {(K, d)}, got {bb.shape}")
        if not np.isfinite(w).all() or not np.isfinite(bb).all():
            raise ValueError("W and b must be finite")
        ts = np.arange(1, K + 1) if timesteps is None else np.asarray(timesteps).astype(np.int64)
        if ts.shape != (K,) or (np.diff(ts) <= 0).any() or ts[0] < 1:
            raise ValueError("timesteps must be K strictly increasing integers >= 1")
        self._W = np.ascontiguousarray(w)
        self._b = np.ascontiguousarray(bb)
        self._ts = ts
        self._schedule = schedule
        for a in (self._W, self._b, self._ts):
            a.flags.writeable = False

    @property
    def W(self) -> np.ndarray:
        """W_k, shape (K, d, d), read-only."""
        return self._W

    @property
    def b(self) -> np.ndarray:
        """b_k, shape (K, d), read-only."""
        return self._b

    @property
    def d(self) -> int:
        return int(self._W.shape[1])

    @property
    def T(self) -> int:
        """Number of chain steps K."""
        return int(self._W.shape[0])

    @property
    def timesteps(self) -> np.ndarray:
        return self._ts

    @property
    def schedule(self) -> Schedule:
        return self._schedule

    def __repr__(self) -> str:
        return f"AffineDenoisers(d={self.d}, K={self.T}, timesteps {self._ts[0]}..{self._ts[-1]})"

    def _index(self, t: Any) -> int:
        t = as_int(t, "t", 1)
        hit = np.flatnonzero(self._ts == t)
        if hit.size == 0:
            raise ValueError(f"t = {t} is not one of the trained timesteps")
        return int(hit[0])

    def denoiser(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """(W_t, b_t) for an original timestep t (one of :attr:`timesteps`)."""
        k = self._index(t)
        return self._W[k], self._b[k]

    def predict_noise(self, x: Any, t: int) -> np.ndarray:
        """ε_θ(x, t) = W_t x + b_t for x of shape (n, d) or (d,); t an original timestep."""
        k = self._index(t)
        arr = np.asarray(x, dtype=float)
        if arr.shape[-1:] != (self.d,) or arr.ndim > 2:
            raise ValueError(f"x must have shape (n, {self.d}) or ({self.d},), got {arr.shape}")
        if not np.isfinite(arr).all():
            raise ValueError("x contains NaN or inf")
        return arr @ self._W[k].T + self._b[k]

    # ------------------------------------------------------------------ losses (theory.md §5)
    def loss(self, mean: Any, cov: Any) -> np.ndarray:
        """Per-step noise-averaged loss L_k(W, b; m, S), shape (K,), against data with mean m, cov S.

        L = ‖I − √(1−ᾱ)W‖_F² + ᾱ tr(W S Wᵀ) + ‖b + √ᾱ W m‖² (no ridge term).
        """
        m = as_vector(mean, "mean", self.d)
        S = np.asarray(cov, dtype=float)
        if S.shape != (self.d, self.d) or not np.isfinite(S).all():
            raise ValueError(f"cov must be a finite {self.d}x{self.d} matrix")
        return self._loss(m, _factor(S))

    def _loss(self, m: np.ndarray, F: np.ndarray) -> np.ndarray:
        ab = np.asarray(self._schedule.alphas_bar, dtype=float)
        so = np.sqrt(_one_minus(self._schedule))
        out = np.empty(self.T)
        eye = np.eye(self.d)
        for k in range(self.T):
            W = self._W[k]
            A = eye - so[k] * W
            WF = W @ F
            r = self._b[k] + math.sqrt(ab[k]) * (W @ m)
            out[k] = np.sum(A * A) + ab[k] * np.sum(WF * WF) + r @ r
        return out

    def train_loss(self, X: Any) -> np.ndarray:
        """Per-step loss on a training set (its mean and 1/N covariance), shape (K,)."""
        Xa = as_data(X, "X")
        if Xa.shape[1] != self.d:
            raise ValueError(f"X has {Xa.shape[1]} features; the denoisers have d = {self.d}")
        mu, S = _moments(Xa)
        return self._loss(mu, _factor(S))

    def test_loss(self, target: Gaussian | None = None, *, mean: Any = None, cov: Any = None) -> np.ndarray:
        """Per-step loss against a Gaussian ``target`` (or ``mean`` and ``cov``), shape (K,)."""
        if target is not None:
            if mean is not None or cov is not None:
                raise ValueError("give a target or mean and cov, not both")
            _check_target(target, self.d)
            return self._loss(target.mean, target.eigvecs * np.sqrt(target.eigvals))
        if mean is None or cov is None:
            raise ValueError("give a target, or both mean and cov")
        return self.loss(mean, cov)

    # ------------------------------------------------------------------ the generated law (theory.md §4)
    def moments(self, sigma: str = "beta", final_noise: bool = True, sampler: str = "ddpm") -> tuple[np.ndarray, np.ndarray]:
        """Exact mean and covariance of the chain's output by the dense recursion.

        m_{k−1} = A_k m_k + c_k, S_{k−1} = A_k S_k A_kᵀ + σ_k² I, m_K = 0, S_K = I, with
        A_k = p_k I + q_k W_k, c_k = q_k b_k (DDPM: p = 1/√(1−β), q = −β/(√(1−ᾱ)√(1−β))).
        Cost 2 d³ per step.
        """
        from .sampling import _sigma, _step_coefficients

        sig = _sigma(self._schedule, sampler, sigma, final_noise)
        p, q = _step_coefficients(self._schedule, sampler)
        d = self.d
        m = np.zeros(d)
        S = np.eye(d)
        for k in range(self.T - 1, -1, -1):
            A = q[k] * self._W[k]
            A[np.diag_indices(d)] += p[k]
            m = A @ m + q[k] * self._b[k]
            S = A @ S @ A.T
            S = 0.5 * (S + S.T)
            S[np.diag_indices(d)] += sig[k] ** 2
        return m, S

    def sampling_distribution(self, sigma: str = "beta", final_noise: bool = True,
                              sampler: str = "ddpm") -> Gaussian:
        """The exact law N(μ_gen, Σ_gen) of the chain's samples (see :meth:`moments`)."""
        m, S = self.moments(sigma, final_noise, sampler)
        return Gaussian(m, S)

    def kl(self, target: Gaussian, direction: Direction = "both", *, sigma: str = "beta",
           final_noise: bool = True, sampler: str = "ddpm") -> Any:
        """KL between ``target`` and the generated law (forward KL(target‖gen), reverse, or both)."""
        _check_target(target, self.d)
        return kl_pair(target, self.sampling_distribution(sigma, final_noise, sampler), direction)

    def sample(self, n: int, *, rng: RNGLike = None, workers: int | None = None, sampler: str = "ddpm",
               sigma: str = "beta", final_noise: bool = True, return_trajectory: bool = False,
               trajectory_steps: Sequence[int] | None = None) -> Any:
        """Samples from the dense reverse chain on :attr:`schedule` (:func:`lindiff.sample_affine_chain`)."""
        from .sampling import sample_affine_chain

        return sample_affine_chain(self._W, self._b, self._schedule, n, rng=rng, workers=workers,
                                   sampler=sampler, sigma=sigma, final_noise=final_noise,
                                   return_trajectory=return_trajectory, trajectory_steps=trajectory_steps)


def _check_target(target: Any, d: int) -> None:
    if not isinstance(target, Gaussian):
        raise TypeError("target must be a lindiff.Gaussian (or GaussianTarget)")
    if target.d != d:
        raise ValueError(f"target has dimension {target.d}; the model has d = {d}")


# ---------------------------------------------------------------------- training
@dataclass
class TrainingResult:
    """What :func:`train_denoisers` returns.

    Attributes
    ----------
    denoisers : AffineDenoisers
        The trained model after the last step.
    history : dict of ndarray
        One entry per checkpoint: ``step``, ``train_time`` (τ = step, for
        ``LinearDiffusion(train_time=τ, learning_rate=η)``), ``eta_tau`` (η·step), ``train_loss`` and
        ``test_loss`` (exact noise-averaged losses, uniform mean over the trained timesteps; test only
        with a target), ``kl_forward``, ``kl_reverse`` (exact Gaussian KLs of the chain's law against the
        target; NaN without a target).
    train_loss_t, test_loss_t : ndarray, shape (n_checkpoints, K)
        The per-timestep losses behind the means.
    settings : dict
        The resolved options.
    """

    denoisers: AffineDenoisers
    history: dict[str, np.ndarray]
    train_loss_t: np.ndarray
    test_loss_t: np.ndarray
    settings: dict[str, Any] = field(default_factory=dict)

    def history_frame(self) -> Any:
        """:attr:`history` as a pandas DataFrame (needs pandas)."""
        import pandas as pd

        return pd.DataFrame(self.history)


def _checkpoints(checkpoints: Any, steps: int) -> np.ndarray:
    if checkpoints is None:
        return np.array(sorted({0, steps}), dtype=np.int64)
    if isinstance(checkpoints, (int, np.integer)) and not isinstance(checkpoints, bool):
        k = as_int(checkpoints, "checkpoints", 1)
        return np.unique(np.round(np.linspace(0, steps, k + 1)).astype(np.int64))
    c = np.asarray(checkpoints)
    if c.ndim == 1 and c.size == 0:
        return np.zeros(0, dtype=np.int64)  # no history: training only
    if c.ndim != 1 or not np.issubdtype(c.dtype, np.integer):
        raise TypeError("checkpoints must be None, an int or a 1-D sequence of step counts")
    if c.min() < 0 or c.max() > steps:
        raise ValueError(f"checkpoint steps must lie in 0..steps = {steps}")
    return np.unique(c.astype(np.int64))


def train_denoisers(
    X: Any,
    schedule: Schedule | None = None,
    *,
    learning_rate: float,
    steps: int | None = None,
    epochs: int | None = None,
    timesteps: Any = None,
    batch_size: int | None = None,
    noise_draws: int = 1,
    ridge: Any = 0.0,
    init: Any = None,
    center: bool = True,
    checkpoints: Any = None,
    target: Gaussian | None = None,
    sigma: str = "beta",
    final_noise: bool = True,
    callback: Callable[[int, AffineDenoisers], None] | None = None,
    rng: RNGLike = None,
    workers: int | None = None,
    progress: bool | None = None,
    memory_limit: int = MEMORY_LIMIT,
    _noise: Any = None,
) -> TrainingResult:
    """Train per-timestep affine noise predictors by SGD on the sampled denoising loss.

    See the module docstring for the loss normalisation, the time convention (τ = steps), the bias
    treatment (``center``), streams and memory.

    Parameters
    ----------
    X : array_like, shape (N, d)
        Training set (finite; N >= 1).
    schedule : Schedule, optional
        Default ``Schedule.paper()``.
    learning_rate : float
        η > 0. Full-batch GD converges for η < 1/max_t c_max(t) (checked; ``center=False`` uses an
        upper bound on c_max, so the check is sufficient only).
    steps, epochs : int
        Give one: SGD steps per timestep, or epochs (e·(N // B) steps).
    timesteps : sequence of int, optional
        Train only these timesteps (strictly increasing, in 1..T); the model then runs on
        ``schedule.respace(timesteps)``. Default: all T.
    batch_size : int, optional
        B in 1..N; default N (full batch, points in order).
    noise_draws : int, default 1
        Fresh noises per point and step.
    ridge : float or array (K,), default 0
        γ_t ≥ 0 on ‖W_t‖_F² (bias unpenalised).
    init : None, float, AffineDenoisers or (W, b)
        Start: zeros; W = init·I (with b = −√ᾱ W μ̂ when centred, 0 otherwise); or given raw (W, b).
    center : bool, default True
        Train on data centred at μ̂ (see the module docstring); the stored b_t are raw biases.
    checkpoints : None, int or sequence of int
        Steps at which the history is recorded: None = {0, steps}; k = k+1 evenly spaced; an empty
        sequence records nothing (no loss/KL evaluation, training only).
    target : Gaussian, optional
        For the test loss and the KLs in the history.
    sigma, final_noise
        Sampler options for the KLs (DDPM, σ² = β or β̃).
    callback : callable(step, denoisers), optional
        Called at each checkpoint with the current model: a read-only view of the training state, valid
        during the call only (training continues in place afterwards), so copy what you keep.
    rng : int, Generator or None
    workers : int or None
        Threads for the noise (the GEMMs use NumPy's BLAS pool); the result does not depend on it.
    progress : bool or None
        tqdm bar on stderr; None: only when stderr is a terminal.
    memory_limit : int
        Refuse when the estimated memory (T'·d²·8 bytes plus buffers) exceeds this many bytes.

    Returns
    -------
    TrainingResult
    """
    Xa, _, ts, sub, eta = _common_inputs(X, schedule, timesteps, learning_rate)
    N, d = Xa.shape
    K = sub.T
    if (steps is None) == (epochs is None):
        raise ValueError("give exactly one of steps or epochs")
    B = N if batch_size is None else as_int(batch_size, "batch_size", 1)
    if B > N:
        raise ValueError(f"batch_size = {B} is larger than the training set (N = {N})")
    n_steps = as_int(steps, "steps", 0) if steps is not None else as_int(epochs, "epochs", 0) * (N // B)
    r = as_int(noise_draws, "noise_draws", 1)
    gam = _ridge(ridge, K)
    if not isinstance(center, (bool, np.bool_)):
        raise TypeError("center must be True or False")
    if target is not None:
        _check_target(target, d)
    from .sampling import _sigma

    _sigma(sub, "ddpm", sigma, final_noise)  # validate the KL's sampler options before training
    ckpts = _checkpoints(checkpoints, n_steps)
    limit = as_int(memory_limit, "memory_limit", 1)
    # W_t stack + (X copy, centred copy, batch, Σε) + the noise chunk (as in training.cpp) + d×d temporaries.
    chunk_points = max(256, (2**22 // (d * r)) // 256 * 256)
    noise_cols = 0 if r == 1 else min(B, chunk_points) * r
    need = 8 * (K * d * d + 2 * N * d + 2 * B * d + noise_cols * d + 10 * d * d)
    if need > limit:
        raise ValueError(
            f"training would use about {need / 1024**3:.2f} GiB (K·d²·8 = {K * d * d * 8 / 1024**3:.2f} GiB of "
            f"W_t for K = {K} timesteps at d = {d}, plus buffers); memory_limit is {limit / 1024**3:.2f} GiB. "
            "Train a subset (timesteps=..., sampled on schedule.respace(timesteps)) or raise memory_limit."
        )
    workers_ = resolve_workers(workers)

    mu, S_hat = _moments(Xa)
    ab = np.asarray(sub.alphas_bar, dtype=float)
    om = _one_minus(sub)
    sa, so = np.sqrt(ab), np.sqrt(om)
    # Stability of the expected (full-batch GD) dynamics: η < 1/λ_max(M_t) for every t.
    if center:
        lam_max = float(np.linalg.eigvalsh(S_hat)[-1])
        c_max = float(np.max(np.maximum(ab * lam_max + om + gam, 1.0)))
    else:
        Kmat = np.empty((d + 1, d + 1))
        Kmat[:d, :d] = S_hat + np.outer(mu, mu)
        Kmat[:d, d] = Kmat[d, :d] = mu
        Kmat[d, d] = 1.0
        c_max = float(np.linalg.eigvalsh(Kmat)[-1] + np.max(om + gam))
    if eta >= 1.0 / c_max:
        raise ValueError(
            f"learning_rate {eta:.4g} is unstable: gradient descent needs η < 1/c_max = {1.0 / c_max:.4g} "
            f"(c_max = largest eigenvalue of the per-t second-moment matrix{'' if center else ', bounded'})"
        )

    # State in training coordinates: centred data and b' = b + √ᾱ W μ̂ (center), or raw.
    Xtrain = np.ascontiguousarray(Xa - mu) if center else np.ascontiguousarray(Xa)
    W = np.zeros((K, d, d))
    bt = np.zeros((K, d))
    if init is not None:
        if isinstance(init, AffineDenoisers):
            Wi, bi = init.W, init.b
        elif isinstance(init, tuple):
            if len(init) != 2:
                raise ValueError("init as a tuple must be (W, b)")
            Wi, bi = np.asarray(init[0], dtype=float), np.asarray(init[1], dtype=float)
        else:
            g0 = float(init)
            if not math.isfinite(g0):
                raise ValueError("init must be finite")
            Wi = np.broadcast_to(g0 * np.eye(d), (K, d, d))
            bi = -(sa[:, None] * g0 * mu[None, :]) if center else np.zeros((K, d))
        if np.shape(Wi) != (K, d, d) or np.shape(bi) != (K, d):
            raise ValueError(f"init must have W of shape {(K, d, d)} and b of shape {(K, d)}, "
                             f"got {np.shape(Wi)} and {np.shape(bi)}")
        if not (np.isfinite(Wi).all() and np.isfinite(bi).all()):
            raise ValueError("init contains NaN or inf")
        W[...] = Wi
        bt[...] = bi
        if center:
            bt += sa[:, None] * (W @ mu)
    noise = None
    if _noise is not None:
        noise = np.ascontiguousarray(_noise, dtype=float)
        if noise.shape != (n_steps, K, B * r, d):
            raise ValueError(f"_noise must have shape {(n_steps, K, B * r, d)}")

    gen = as_rng(rng)
    seeds = np.random.SeedSequence(gen.integers(2**63, size=4, dtype=np.uint64).tolist()).generate_state(
        4 * K, np.uint64)

    factors: dict[str, np.ndarray] = {}  # Σ̂ = F Fᵀ, computed at the first checkpoint
    targetF = None if target is None else target.eigvecs * np.sqrt(target.eigvals)

    def raw_model(copy: bool) -> AffineDenoisers:
        b_raw = bt - sa[:, None] * (W @ mu) if center else bt.copy()
        model = AffineDenoisers.__new__(AffineDenoisers)
        model._W = W.copy() if copy else W
        model._b = b_raw
        model._ts = ts
        model._schedule = sub
        return model

    hist: dict[str, list[float]] = {k: [] for k in
                                    ("step", "train_time", "eta_tau", "train_loss", "test_loss", "kl_forward", "kl_reverse")}
    tr_t: list[np.ndarray] = []
    te_t: list[np.ndarray] = []

    def record(step: int) -> None:
        model = raw_model(copy=False)
        if "hat" not in factors:
            factors["hat"] = _factor(S_hat)
        ltr = model._loss(mu, factors["hat"])
        lte = model._loss(target.mean, targetF) if target is not None else np.full(K, np.nan)
        if target is not None:
            kl = kl_pair(target, model.sampling_distribution(sigma, final_noise), "both")
        else:
            kl = {"forward": np.nan, "reverse": np.nan}
        hist["step"].append(step)
        hist["train_time"].append(float(step))
        hist["eta_tau"].append(eta * step)
        hist["train_loss"].append(float(ltr.mean()))
        hist["test_loss"].append(float(lte.mean()))
        hist["kl_forward"].append(kl["forward"])
        hist["kl_reverse"].append(kl["reverse"])
        tr_t.append(ltr)
        te_t.append(lte)
        if callback is not None:
            view = raw_model(copy=False)
            view._W = W.view()
            view._W.flags.writeable = False
            view._b.flags.writeable = False
            callback(step, view)

    # Segments: between checkpoints, cut further for the progress bar (streams are keyed by the global
    # step, so the cuts never change the result).
    bar = Progress(n_steps * K, progress, "lindiff training", "step")
    bounds = set(ckpts.tolist()) | {0, n_steps}
    if bar.active:
        bounds |= set(np.linspace(0, n_steps, min(n_steps, 100) + 1).round().astype(int).tolist())
    bounds_l = sorted(bounds)
    ck = set(ckpts.tolist())
    try:
        if 0 in ck:
            record(0)
        for a, b_ in zip(bounds_l[:-1], bounds_l[1:]):
            seg_noise = None if noise is None else noise[a:b_]
            _core.train_affine_sgd(Xtrain, sa, so, gam, seeds, eta, a, b_ - a, B, r, workers_, W, bt, seg_noise)
            bar.update((b_ - a) * K)
            if b_ in ck:
                record(b_)
    finally:
        bar.close()
    final = raw_model(copy=False)
    for arr in (final._W, final._b, final._ts):
        arr.flags.writeable = False
    history = {k: np.asarray(v, dtype=np.int64 if k == "step" else float) for k, v in hist.items()}
    settings = dict(learning_rate=eta, steps=n_steps, batch_size=B, noise_draws=r, center=bool(center),
                    timesteps=ts, ridge=gam, N=N, d=d)
    empty = np.zeros((0, K))
    return TrainingResult(final, history, np.array(tr_t) if tr_t else empty, np.array(te_t) if te_t else empty,
                          settings)


# ---------------------------------------------------------------------- the closed form
def gradient_flow_denoisers(
    X: Any,
    schedule: Schedule | None = None,
    *,
    learning_rate: float,
    train_time: float,
    timesteps: Any = None,
    ridge: Any = 0.0,
    center: bool = True,
    discrete: bool = False,
) -> AffineDenoisers:
    """The closed-form (expected) trajectory of :func:`train_denoisers` from zero initialisation.

    With x̃ = (x, 1) and M_t = E[x̃x̃ᵀ] + γ_t diag(I, 0) over the training set and the noise (block
    diagonal [[C_t, 0], [0, 1]] with ``center=True``), GD on (W, b) is W̃ ← W̃ − 2η(W̃M_t − R_t),
    R_t = [√(1−ᾱ_t) I, 0]. From W̃ = 0:

    - gradient flow (``discrete=False``): W̃(τ) = R_t M_t⁻¹ (I − exp(−2η M_t τ));
    - n = τ discrete steps (``discrete=True``): (I − 2ηM_t)ⁿ in place of the exponential, which is
      exactly the expectation of the SGD iterate.

    With ``center=True`` this is theory.md §3 (``LinearDiffusion(train_time=τ)``, or ``steps=n``),
    with b_t = −√ᾱ_t W_t μ̂. Cost: one eigendecomposition of Σ̂ (centred) or of M_t per timestep.
    """
    Xa, _, ts, sub, eta = _common_inputs(X, schedule, timesteps, learning_rate)
    N, d = Xa.shape
    K = sub.T
    tau = float(train_time)
    if not math.isfinite(tau) or tau < 0:
        raise ValueError(f"train_time must be finite and >= 0, got {train_time!r}")
    gam = _ridge(ridge, K)
    mu, S = _moments(Xa)
    ab = np.asarray(sub.alphas_bar, dtype=float)
    so = np.sqrt(_one_minus(sub))

    def gain(m: np.ndarray) -> np.ndarray:  # (1 − e^{−2ηmτ})/m or (1 − (1−2ηm)ⁿ)/m
        if discrete:
            return (1.0 - (1.0 - 2.0 * eta * m) ** tau) / m
        return -np.expm1(-2.0 * eta * m * tau) / m

    W = np.empty((K, d, d))
    b = np.empty((K, d))
    if center:
        lam, U = np.linalg.eigh(S)
        lam = np.clip(lam, 0.0, None)
        om = _one_minus(sub)
        for k in range(K):
            c = ab[k] * lam + om[k] + gam[k]
            W[k] = (U * (so[k] * gain(c))) @ U.T
            b[k] = -math.sqrt(ab[k]) * (W[k] @ mu)
    else:
        second = S + np.outer(mu, mu)
        om = _one_minus(sub)
        for k in range(K):
            M = np.empty((d + 1, d + 1))
            M[:d, :d] = ab[k] * second
            M[np.arange(d), np.arange(d)] += om[k] + gam[k]
            M[:d, d] = M[d, :d] = math.sqrt(ab[k]) * mu
            M[d, d] = 1.0
            m, V = np.linalg.eigh(M)
            Wt = so[k] * ((V[:d] * gain(m)) @ V.T)  # R M⁻¹(I − e^{−2ηMτ}) = √(1−ᾱ)·[V g Vᵀ]_{top rows}
            W[k] = Wt[:, :d]
            b[k] = Wt[:, d]
    return AffineDenoisers(W, b, sub, ts)


# ---------------------------------------------------------------------- theory vs training
@dataclass
class FlowComparison:
    """What :func:`compare_with_gradient_flow` returns (arrays over checkpoints; rows: noise draws).

    ``rel_distance[i, j]`` = ‖W_sgd − W_flow‖_F / ‖W_flow‖_F over the stacked W_t at checkpoint j for
    ``noise_draws[i]`` (NaN at τ = 0); ``flow_*`` are the closed-form gradient-flow values
    (``LinearDiffusion(train_time=τ, learning_rate=η)`` on the same schedule).
    """

    train_time: np.ndarray
    learning_rate: float
    noise_draws: np.ndarray
    rel_distance: np.ndarray
    train_loss: np.ndarray
    test_loss: np.ndarray
    kl_forward: np.ndarray
    kl_reverse: np.ndarray
    flow_train_loss: np.ndarray
    flow_test_loss: np.ndarray
    flow_kl_forward: np.ndarray
    flow_kl_reverse: np.ndarray
    d: int
    N: int
    K: int


def compare_with_gradient_flow(
    X: Any,
    schedule: Schedule | None = None,
    *,
    learning_rate: float,
    steps: int,
    noise_draws: Sequence[int] = (1, 4, 16, 64),
    timesteps: Any = None,
    batch_size: int | None = None,
    ridge: Any = 0.0,
    checkpoints: Any = 8,
    target: Gaussian | None = None,
    rng: RNGLike = None,
    workers: int | None = None,
    progress: bool | None = None,
    memory_limit: int = MEMORY_LIMIT,
) -> FlowComparison:
    """Train with several noise-draw counts and compare with the closed-form gradient flow.

    Training uses ``center=True`` (the bias treatment under which §3's closed form is the exact
    expectation; see the module docstring). Without a ``target`` the KLs are NaN and the test loss is
    omitted (NaN). Each noise-draw count gets its own child generator of ``rng``.
    """
    from .model import LinearDiffusion
    from .stats import EmpiricalStats

    draws = np.asarray([as_int(r, "noise_draws", 1) for r in np.atleast_1d(noise_draws)])
    if draws.size == 0:
        raise ValueError("noise_draws must not be empty")
    Xa, sched, ts, sub, eta = _common_inputs(X, schedule, timesteps, learning_rate, min_rows=2)
    gam = _ridge(ridge, sub.T)
    n_steps = as_int(steps, "steps", 1)
    ckpts = _checkpoints(checkpoints, n_steps)
    gens = as_rng(rng).spawn(draws.size)

    stats = EmpiricalStats(Xa)
    flow = {k: np.empty(ckpts.size) for k in ("tr", "te", "kf", "kr")}
    flow_models = {}
    for j, tau in enumerate(ckpts):
        model = LinearDiffusion(stats, sub, ridge=gam, train_time=float(tau), learning_rate=eta)
        flow["tr"][j] = model.train_loss().mean()
        flow["te"][j] = model.test_loss(target).mean() if target is not None else np.nan
        kl = model.kl(target) if target is not None else {"forward": np.nan, "reverse": np.nan}
        flow["kf"][j], flow["kr"][j] = kl["forward"], kl["reverse"]
        flow_models[int(tau)] = model

    rel = np.full((draws.size, ckpts.size), np.nan)
    out = {k: np.empty((draws.size, ckpts.size)) for k in ("tr", "te", "kf", "kr")}
    for i, r in enumerate(draws):
        def cb(step: int, model: AffineDenoisers, i: int = i) -> None:
            # ‖W_sgd − W_flow‖_F / ‖W_flow‖_F over the stacked W_t, one d×d flow matrix at a time.
            ref = flow_models[step]
            num = den = 0.0
            for k in range(sub.T):
                Wf = ref.denoiser(k + 1)[0]
                num += float(np.sum((model.W[k] - Wf) ** 2))
                den += float(np.sum(Wf * Wf))
            if den > 0:
                rel[i, int(np.searchsorted(ckpts, step))] = math.sqrt(num / den)

        res = train_denoisers(Xa, sched, learning_rate=eta, steps=n_steps, timesteps=timesteps,
                              batch_size=batch_size, noise_draws=int(r), ridge=gam, center=True,
                              checkpoints=ckpts, target=target, callback=cb, rng=gens[i], workers=workers,
                              progress=progress, memory_limit=memory_limit)
        h = res.history
        out["tr"][i], out["te"][i] = h["train_loss"], h["test_loss"]
        out["kf"][i], out["kr"][i] = h["kl_forward"], h["kl_reverse"]
    return FlowComparison(
        train_time=ckpts.astype(float), learning_rate=eta, noise_draws=draws, rel_distance=rel,
        train_loss=out["tr"], test_loss=out["te"], kl_forward=out["kf"], kl_reverse=out["kr"],
        flow_train_loss=flow["tr"], flow_test_loss=flow["te"], flow_kl_forward=flow["kf"],
        flow_kl_reverse=flow["kr"], d=Xa.shape[1], N=Xa.shape[0], K=sub.T,
    )
