"""Gaussian target distributions and exact draws of their empirical statistics (theory.md §1)."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _core
from ._validation import RNGLike, as_int, as_rng, as_vector, resolve_workers
from .gaussian import Gaussian
from .stats import EmpiricalStats

__all__ = ["GaussianTarget"]


class GaussianTarget(Gaussian):
    """A Gaussian target N(μ, Σ) with a positive-definite Σ, held in eigen form Σ = V diag(λ) Vᵀ.

    Parameters are those of :class:`lindiff.Gaussian`; ``cov`` (or ``eigvals``) must be positive
    definite.
    """

    _allow_singular = False

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
        if mean is None:
            mu = np.zeros(d)
        elif np.ndim(mean) == 0:
            mu = np.full(d, float(mean))
        else:
            mu = as_vector(mean, "mean", d)
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
        if ddof not in (0, 1) or isinstance(ddof, bool):
            raise ValueError(f"ddof must be 0 or 1, got {ddof!r}")
        n = as_int(n, "n", 1 + ddof)
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
