"""Gaussian distributions held in eigen form Σ = V diag(λ) Vᵀ.

Every Gaussian lindiff produces (targets, fitted training sets, the exact law of generated samples)
keeps this form, so that measures never invert a d×d matrix: inverses, square roots and
log-determinants are taken on the eigenvalues.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._validation import RNGLike, as_data, as_int, as_rng, as_square, as_vector

__all__ = ["Gaussian"]


class Gaussian:
    """A (possibly degenerate) Gaussian N(μ, V diag(λ) Vᵀ).

    Parameters
    ----------
    mean : array_like, shape (d,)
    cov : array_like, shape (d, d), optional
        Symmetric positive semi-definite covariance. Give either ``cov`` or ``eigvals``.
    eigvals : array_like, shape (d,), optional
        Variances along ``eigvecs`` (>= 0; zeros make the law degenerate). Stored in descending
        order.
    eigvecs : array_like, shape (d, d), optional
        Orthonormal columns matching ``eigvals``; omitted means the standard basis.
    """

    _allow_singular = True

    def __init__(self, mean: Any, cov: Any = None, *, eigvals: Any = None, eigvecs: Any = None) -> None:
        mu = as_vector(mean, "mean")
        d = mu.shape[0]
        if d < 1:
            raise ValueError("d must be >= 1")
        if (cov is None) == (eigvals is None):
            raise ValueError("give exactly one of cov or eigvals")
        vec: np.ndarray | None
        if cov is not None:
            c = as_square(cov, "cov", d)
            lam, v = np.linalg.eigh(c)
            lam, vec = lam[::-1].copy(), v[:, ::-1].copy()
            tol = 1e-10 * max(abs(lam[0]), 1e-300)
            if lam[-1] < -tol:
                raise ValueError(f"cov is not positive semi-definite (smallest eigenvalue {lam[-1]:.3g})")
            lam = np.maximum(lam, 0.0)
        else:
            lam = as_vector(eigvals, "eigvals", d)
            if (lam < 0).any():
                raise ValueError("eigvals must be >= 0")
            order = np.argsort(-lam, kind="stable")
            lam = lam[order]
            if eigvecs is None:
                vec = None if np.array_equal(order, np.arange(d)) else np.eye(d)[:, order]
            else:
                v = as_square(eigvecs, "eigvecs", d, symmetric=False)
                if not np.allclose(v.T @ v, np.eye(d), atol=1e-8):
                    raise ValueError("eigvecs are not orthonormal")
                vec = v[:, order].copy()
        if not self._allow_singular and lam[-1] <= 0:
            raise ValueError(
                f"cov is not positive definite (smallest eigenvalue {lam[-1]:.3g}); "
                "a target needs a density"
            )
        self._mean = mu.copy()
        self._eigvals = lam
        self._eigvecs = vec  # None: the standard basis
        for a in (self._mean, self._eigvals, self._eigvecs):
            if a is not None:
                a.flags.writeable = False

    @classmethod
    def _from_eigen(cls, mean: np.ndarray, eigvals: np.ndarray, eigvecs: np.ndarray) -> Gaussian:
        """Internal: a Gaussian from an eigen form lindiff itself produced (finite, eigvals >= 0,
        orthonormal eigvecs), without the O(d³) orthonormality check of the public constructor."""
        lam = np.asarray(eigvals, dtype=float)
        order = np.argsort(-lam, kind="stable")
        self = cls.__new__(cls)
        self._mean = np.array(mean, dtype=float)
        self._eigvals = lam[order]
        self._eigvecs = np.ascontiguousarray(eigvecs[:, order])
        for a in (self._mean, self._eigvals, self._eigvecs):
            a.flags.writeable = False
        return self

    @classmethod
    def fit(cls, X: Any, *, ddof: int = 0, workers: int | None = None) -> Gaussian:
        """The Gaussian with the sample mean and covariance of the rows of X."""
        from .stats import EmpiricalStats

        s = EmpiricalStats(as_data(X, "X", min_rows=1 + ddof), ddof=ddof, workers=workers)
        return cls(s.mean, eigvals=s.eigvals, eigvecs=s.eigvecs)

    # ------------------------------------------------------------------ properties
    @property
    def d(self) -> int:
        return int(self._mean.shape[0])

    @property
    def mean(self) -> np.ndarray:
        return self._mean

    @property
    def eigvals(self) -> np.ndarray:
        """Variances along the eigenvectors, descending."""
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

    @property
    def is_degenerate(self) -> bool:
        """True when some variance is exactly 0 (no density: KLs involving it are infinite)."""
        return bool(self._eigvals[-1] <= 0.0)

    def logdet(self) -> float:
        """ln det Σ as a sum of logs (no overflow); -inf for a degenerate law."""
        if self.is_degenerate:
            return -np.inf
        return float(np.sum(np.log(self._eigvals)))

    def __repr__(self) -> str:
        basis = "standard basis" if self._eigvecs is None else "rotated"
        return f"{type(self).__name__}(d={self.d}, tr={self._eigvals.sum():.4g}, {basis})"

    # ------------------------------------------------------------------ sampling
    def _transform(self, z: np.ndarray) -> np.ndarray:
        """μ + z diag(√λ) Vᵀ for rows z ~ N(0, I)."""
        y = z * np.sqrt(self._eigvals)
        if self._eigvecs is not None:
            y = y @ self._eigvecs.T
        return y + self._mean

    def sample(self, n: int, *, rng: RNGLike = None) -> np.ndarray:
        """Draw n i.i.d. points, shape (n, d), with ``rng.standard_normal`` (PCG64 by default)."""
        n = as_int(n, "n", 1)
        return self._transform(as_rng(rng).standard_normal((n, self.d)))
