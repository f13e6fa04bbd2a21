"""Gaussian target distributions and exact draws of their empirical statistics (theory.md §1)."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _core
from ._validation import RNGLike, as_int, as_rng, as_square, as_vector, resolve_workers
from .stats import EmpiricalStats

__all__ = ["GaussianTarget"]


class GaussianTarget:
    """A Gaussian target N(μ, Σ), held in eigen form Σ = V diag(λ) Vᵀ.

    Parameters
    ----------
    mean : array_like, shape (d,)
    cov : array_like, shape (d, d), optional
        Symmetric positive-definite covariance. Give either ``cov`` or ``eigvals`` (with optional
        ``eigvecs``; omitted means the standard basis).
    eigvals : array_like, shape (d,), optional
        Positive eigenvalues; they are stored in descending order.
    eigvecs : array_like, shape (d, d), optional
        Orthonormal eigenvectors (columns) matching ``eigvals``.
    """

    def __init__(
        self,
        mean: Any,
        cov: Any = None,
        *,
        eigvals: Any = None,
        eigvecs: Any = None,
    ) -> None:
        mu = as_vector(mean, "mean")
        d = mu.shape[0]
        if d < 1:
            raise ValueError("d must be >= 1")
        if (cov is None) == (eigvals is None):
            raise ValueError("give exactly one of cov or eigvals")
        if cov is not None:
            c = as_square(cov, "cov", d)
            lam, vec = np.linalg.eigh(c)
            lam, vec = lam[::-1].copy(), vec[:, ::-1].copy()
            if lam[-1] <= 0:
                raise ValueError(
                    f"cov is not positive definite (smallest eigenvalue {lam[-1]:.3g})"
                )
        else:
            lam = as_vector(eigvals, "eigvals", d)
            if (lam <= 0).any():
                raise ValueError("eigvals must all be > 0 (a Gaussian target needs a positive-definite cov)")
            order = np.argsort(-lam, kind="stable")
            lam = lam[order]
            if eigvecs is None:
                vec = None if np.all(order == np.arange(d)) else np.eye(d)[:, order]
            else:
                v = as_square(eigvecs, "eigvecs", d, symmetric=False)
                if not np.allclose(v.T @ v, np.eye(d), atol=1e-8):
                    raise ValueError("eigvecs are not orthonormal")
                vec = v[:, order].copy()
        self._mean = mu.copy()
        self._eigvals = lam
        self._eigvecs = vec  # None: the standard basis
        self._mean.flags.writeable = False
        self._eigvals.flags.writeable = False

    @classmethod
    def power_law(
        cls,
        d: int,
        k: float,
        *,
        trace: float | None = None,
        rotation: Any = None,
        mean: Any = None,
        rng: RNGLike = None,
    ) -> GaussianTarget:
        """The paper's synthetic target: λ_ν ∝ ν^{-k}, ν = 1..d (theory.md §1).

        Parameters
        ----------
        d : int
            Dimension (>= 1).
        k : float
            Spectral exponent; 0 is isotropic, larger is "more hierarchical".
        trace : float, optional
            tr Σ; default d (mean eigenvalue 1, the scale of the forward noise).
        rotation : None, "random" or array (d, d)
            Eigenvectors: the standard basis (default), a Haar-random rotation drawn from ``rng``, or
            a given orthogonal matrix.
        mean : None, float or array (d,)
            Target mean; default 0.
        rng : int, Generator or None
            Only used by ``rotation="random"``.
        """
        d = as_int(d, "d", 1)
        k = float(k)
        if not np.isfinite(k):
            raise ValueError(f"k must be finite, got {k}")
        tr = float(d if trace is None else trace)
        if not np.isfinite(tr) or tr <= 0:
            raise ValueError(f"trace must be a positive finite number, got {trace}")
        lam = np.arange(1, d + 1, dtype=np.float64) ** (-k)
        lam *= tr / lam.sum()
        mu = np.zeros(d) if mean is None else np.broadcast_to(np.asarray(mean, float), (d,))
        if rotation is None:
            vec = None
        elif isinstance(rotation, str):
            if rotation != "random":
                raise ValueError(f"rotation must be None, 'random' or a matrix, got {rotation!r}")
            g = as_rng(rng).standard_normal((d, d))
            q, r = np.linalg.qr(g)
            vec = q * np.sign(np.diag(r))  # Haar measure (Mezzadri's sign fix)
        else:
            vec = rotation
        return cls(mu, eigvals=lam, eigvecs=vec)

    # ------------------------------------------------------------------ properties
    @property
    def d(self) -> int:
        return int(self._mean.shape[0])

    @property
    def mean(self) -> np.ndarray:
        return self._mean

    @property
    def eigvals(self) -> np.ndarray:
        """Eigenvalues λ, descending."""
        return self._eigvals

    @property
    def eigvecs(self) -> np.ndarray:
        """Eigenvectors V (columns), d×d."""
        return np.eye(self.d) if self._eigvecs is None else self._eigvecs

    @property
    def is_axis_aligned(self) -> bool:
        """True when the eigenvectors are the standard basis (no d×d rotation is stored)."""
        return self._eigvecs is None

    @property
    def cov(self) -> np.ndarray:
        """Σ = V diag(λ) Vᵀ, built on request."""
        if self._eigvecs is None:
            return np.diag(self._eigvals)
        v = self._eigvecs
        return (v * self._eigvals) @ v.T

    def __repr__(self) -> str:
        basis = "standard basis" if self._eigvecs is None else "rotated"
        return f"GaussianTarget(d={self.d}, tr={self._eigvals.sum():.4g}, {basis})"

    # ------------------------------------------------------------------ sampling
    def _transform(self, z: np.ndarray) -> np.ndarray:
        """μ + z diag(√λ) Vᵀ for rows z ~ N(0, I)."""
        y = z * np.sqrt(self._eigvals)
        if self._eigvecs is not None:
            y = y @ self._eigvecs.T
        return y + self._mean

    def sample(self, n: int, *, rng: RNGLike = None) -> np.ndarray:
        """Draw n i.i.d. points, shape (n, d). Uses ``rng.standard_normal`` (PCG64 by default)."""
        n = as_int(n, "n", 1)
        return self._transform(as_rng(rng).standard_normal((n, self.d)))

    def empirical_stats(
        self,
        n: int,
        *,
        ddof: int = 0,
        rng: RNGLike = None,
        workers: int | None = None,
    ) -> EmpiricalStats:
        """Exact draw of the statistics (μ̂, Σ̂) of n samples, without drawing the samples.

        With ν = n − 1: n·Σ̂_{ML} ~ Wishart_d(Σ, ν) and μ̂ ~ N(μ, Σ/n), independently
        (theory.md §1). For ν ≥ d the scatter is drawn by the Bartlett decomposition in O(d³),
        whatever n; for ν < d it is held as ν Gaussian rows F with FᵀF ~ Wishart_d(Σ, ν), which
        keeps the dual route open. Draw order from ``rng``: the mean's d normals, then the
        Bartlett χ² variates, then a d×d normal matrix (only its strict lower part is used), or the
        ν×d rows.
        """
        n = as_int(n, "n", 1 + ddof)
        if ddof not in (0, 1):
            raise ValueError(f"ddof must be 0 or 1, got {ddof!r}")
        w = resolve_workers(workers)
        g = as_rng(rng)
        d = self.d
        mean = self._transform(g.standard_normal(d)[None, :] / np.sqrt(n))[0]
        nu = n - 1
        if nu >= d:
            c = np.sqrt(g.chisquare(nu - np.arange(d)))
            z = g.standard_normal((d, d))
            v = np.empty((0, 0)) if self._eigvecs is None else self._eigvecs
            scatter = _core.bartlett_scatter(np.sqrt(self._eigvals), v, c, z, w)
            return EmpiricalStats._from_parts(n, mean, scatter=scatter, ddof=ddof)
        f = g.standard_normal((nu, d)) * np.sqrt(self._eigvals)
        if self._eigvecs is not None:
            f = f @ self._eigvecs.T
        return EmpiricalStats._from_parts(n, mean, factor=np.ascontiguousarray(f), ddof=ddof)
