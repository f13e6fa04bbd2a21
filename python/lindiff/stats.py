"""Empirical statistics of a training set: mean, covariance and their eigendecomposition.

Conventions (theory.md §1)
--------------------------
- ``cov`` is the maximum-likelihood covariance ``(1/N) Σ (x−μ̂)(x−μ̂)ᵀ`` by default (``ddof=0``),
  the normalisation produced by the noise-averaged training loss. ``ddof=1`` gives the unbiased one.
- Eigenvalues are in **descending** order (λ̂₁ ≥ λ̂₂ ≥ …), eigenvectors are the matching columns.
- A scatter of N centred points has rank at most N−1: the remaining d−N+1 eigenvalues are set to
  exactly 0. These are the *null directions* the training set never saw.

How the scatter is held
-----------------------
While the data are thin (at most ``2d`` rows), the statistics keep a *factor* F with
``FᵀF = Σ (x−μ̂)(x−μ̂)ᵀ``: the centred rows themselves (or, for a Wishart draw, ν Gaussian rows).
That costs no more memory than the d×d matrix and allows the *dual route*: the N×N Gram matrix
F Fᵀ is eigendecomposed instead of the d×d covariance, at O(N²d) instead of O(d³). Thicker data are
reduced to the dense d×d scatter. Merging (``partial_fit``, ``merge``) uses Chan, Golub & LeVeque's
pairwise update, which in factor form is just stacking rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Sequence

import numpy as np

from . import _core
from ._validation import as_data, as_int, as_square, as_vector, resolve_workers

__all__ = ["EmpiricalStats"]

Route = Literal["auto", "primal", "dual"]


@dataclass(frozen=True)
class _Spectrum:
    values: np.ndarray  # descending, covariance scale, length r (nonzero part) or d
    vectors: np.ndarray  # d×r (dual: the range only) or d×d
    route: str


class EmpiricalStats:
    """Mean, covariance and eigendecomposition of a data set, built fast and stably.

    Parameters
    ----------
    X : array_like, shape (N, d), optional
        Training data, one sample per row. Any float or integer dtype, any memory order; float64
        input is read in place without a copy. Omit it to start empty and use :meth:`partial_fit`.
    ddof : {0, 1}, default 0
        Covariance normalisation 1/(N−ddof). The default 0 is the maximum-likelihood convention of
        theory.md §1.
    workers : int or None, keyword-only
        Threads for the C++ kernels. ``None`` or ``-1``: all cores. The dense products run in the
        OpenBLAS that NumPy loaded (see :func:`lindiff.show_config`); results do not depend on this
        number.

    Examples
    --------
    >>> import numpy as np, lindiff
    >>> X = np.random.default_rng(0).standard_normal((500, 10))
    >>> s = lindiff.EmpiricalStats(X)
    >>> np.allclose(s.cov, np.cov(X, rowvar=False, ddof=0))
    True
    """

    def __init__(self, X: Any = None, *, ddof: int = 0, workers: int | None = None) -> None:
        if isinstance(ddof, bool) or ddof not in (0, 1):
            raise ValueError(f"ddof must be 0 or 1, got {ddof!r}")
        self._ddof = int(ddof)
        self._n = 0
        self._mean: np.ndarray | None = None  # relative to _shift
        self._shift: np.ndarray | None = None
        self._scatter: np.ndarray | None = None
        self._factor: np.ndarray | None = None
        self._spectrum: _Spectrum | None = None
        self._full_vectors: np.ndarray | None = None
        self._from_given_moments = False
        # Targets projected onto this eigenbasis, reused by every model/grid built on these
        # statistics (lindiff.model._Projection); cleared whenever the statistics change.
        self._projections: dict[int, Any] = {}
        if X is not None:
            self.partial_fit(X, workers=workers)

    # ------------------------------------------------------------------ construction
    @classmethod
    def _from_parts(
        cls,
        n: int,
        mean: np.ndarray,
        *,
        scatter: np.ndarray | None = None,
        factor: np.ndarray | None = None,
        ddof: int = 0,
        shift: np.ndarray | None = None,
    ) -> EmpiricalStats:
        self = cls(ddof=ddof)
        self._n = int(n)
        self._mean = mean
        self._shift = np.zeros_like(mean) if shift is None else shift
        self._scatter = scatter
        self._factor = factor
        return self

    @classmethod
    def from_moments(
        cls, n: int, mean: Any, cov: Any, *, ddof: int = 0
    ) -> EmpiricalStats:
        """Statistics from a known sample size, mean and covariance (normalised by 1/(n−ddof))."""
        if ddof not in (0, 1):
            raise ValueError(f"ddof must be 0 or 1, got {ddof!r}")
        n = as_int(n, "n", 1 + ddof)
        m = as_vector(mean, "mean")
        c = as_square(cov, "cov", m.shape[0])
        out = cls._from_parts(n, m.copy(), scatter=c * (n - ddof), ddof=ddof)
        out._from_given_moments = True  # the given cov is trusted: no rank bound from n
        return out

    @classmethod
    def _from_eigen(cls, n: int, mean: np.ndarray, eigvals: np.ndarray, eigvecs: np.ndarray) -> EmpiricalStats:
        """Internal: statistics whose covariance is known in eigen form (eigvals descending and
        positive, eigvecs orthonormal; e.g. a target's own moments), with that eigendecomposition
        already in place instead of a dsyevd of V diag(λ) Vᵀ."""
        vals = np.array(eigvals, dtype=float)
        vecs = np.array(eigvecs, dtype=float)
        out = cls.from_moments(n, mean, (vecs * vals) @ vecs.T)
        vals.flags.writeable = False
        vecs.flags.writeable = False
        out._spectrum = _Spectrum(vals, vecs, "primal")
        out._full_vectors = vecs
        return out

    @classmethod
    def _of_block(
        cls, X: np.ndarray, ddof: int, workers: int, shift: np.ndarray | None = None
    ) -> EmpiricalStats:
        """Statistics of one block, relative to ``shift`` (default: the block's first row)."""
        n, d = X.shape
        s = np.array(X[0], dtype=float) if shift is None else shift
        mean = _core.column_mean(X, s, workers)
        if n <= 2 * d:
            factor = _core.centred_rows(X, s, mean, workers)
            return cls._from_parts(n, mean, factor=factor, ddof=ddof, shift=s)
        scatter = _core.centred_scatter(X, s, mean, workers)
        return cls._from_parts(n, mean, scatter=scatter, ddof=ddof, shift=s)

    def partial_fit(self, X: Any, *, workers: int | None = None) -> EmpiricalStats:
        """Add a chunk of rows; returns ``self``. Chunked input equals one-shot input to rounding.

        Memory stays at a few d×d matrices plus the chunk, whatever the total number of rows.
        """
        w = resolve_workers(workers)
        X = as_data(X, "X")
        if self._mean is not None and X.shape[1] != self.d:
            raise ValueError(
                f"chunk has {X.shape[1]} features but the statistics have d = {self.d}"
            )
        block = self._of_block(X, self._ddof, w, self._shift)
        merged = block if self._n == 0 else self.merge(block, workers=w)
        self._n, self._mean, self._shift = merged._n, merged._mean, merged._shift
        self._scatter, self._factor = merged._scatter, merged._factor
        self._spectrum = self._full_vectors = None
        self._projections = {}
        return self

    def merge(self, other: EmpiricalStats, *, workers: int | None = None) -> EmpiricalStats:
        """Statistics of the union of two data sets (Chan et al.'s pairwise update); a new object."""
        if not isinstance(other, EmpiricalStats):
            raise TypeError("can only merge EmpiricalStats")
        if other._ddof != self._ddof:
            raise ValueError("cannot merge statistics with different ddof")
        if self._n == 0:
            return other.copy()
        if other._n == 0:
            return self.copy()
        if other.d != self.d:
            raise ValueError(f"cannot merge statistics of dimension {self.d} and {other.d}")
        w = resolve_workers(workers)
        na, nb = self._n, other._n
        n = na + nb
        assert self._mean is not None and other._mean is not None
        assert self._shift is not None and other._shift is not None
        # Both means relative to self's shift; a difference of nearby shifts is exact.
        other_rel = other._mean if other._shift is self._shift else (other._shift - self._shift) + other._mean
        delta = other_rel - self._mean
        mean = self._mean + delta * (nb / n)
        corr = np.sqrt(na * nb / n) * delta
        if self._factor is not None and other._factor is not None:
            rows = self._factor.shape[0] + other._factor.shape[0] + 1
            if rows <= 2 * self.d:
                factor = np.vstack([self._factor, other._factor, corr[None, :]])
                return self._from_parts(n, mean, factor=factor, ddof=self._ddof, shift=self._shift)
        scatter = self._dense_scatter(w) + other._dense_scatter(w)
        scatter += np.outer(corr, corr)
        out = self._from_parts(n, mean, scatter=scatter, ddof=self._ddof, shift=self._shift)
        out._from_given_moments = self._from_given_moments or other._from_given_moments
        return out

    @classmethod
    def prefixes(
        cls,
        X: Any,
        ns: Sequence[int],
        *,
        ddof: int = 0,
        workers: int | None = None,
    ) -> list[EmpiricalStats]:
        """Statistics of the first ``ns[0] < ns[1] < …`` rows of X, in one pass over the data.

        Each row is read once: the statistics of each new segment are merged into the running ones.
        """
        w = resolve_workers(workers)
        X = as_data(X, "X")
        ns_arr = [as_int(k, "ns entry", 1) for k in ns]
        if not ns_arr:
            raise ValueError("ns is empty")
        if any(b <= a for a, b in zip(ns_arr, ns_arr[1:])):
            raise ValueError(f"ns must be strictly increasing, got {list(ns)}")
        if ns_arr[-1] > X.shape[0]:
            raise ValueError(f"ns asks for {ns_arr[-1]} rows but X has {X.shape[0]}")
        out: list[EmpiricalStats] = []
        running = cls(ddof=ddof)
        shift = np.array(X[0], dtype=float)
        start = 0
        for stop in ns_arr:
            running = running.merge(cls._of_block(X[start:stop], ddof, w, shift), workers=w)
            out.append(running)
            start = stop
        return out

    def copy(self) -> EmpiricalStats:
        """A copy (arrays are shared read-only; the object is never mutated in place except by
        :meth:`partial_fit`, which rebinds them)."""
        c = self._from_parts(self._n, self._mean, scatter=self._scatter, factor=self._factor,  # type: ignore[arg-type]
                             ddof=self._ddof, shift=self._shift)
        c._spectrum, c._full_vectors = self._spectrum, self._full_vectors
        c._from_given_moments = self._from_given_moments
        return c

    # ------------------------------------------------------------------ moments
    def _require(self) -> None:
        if self._n == 0:
            raise ValueError("these statistics are empty: call partial_fit first")
        if self._n - self._ddof < 1:
            raise ValueError(
                f"the covariance needs N > ddof; N = {self._n} with ddof = {self._ddof} "
                "(N < 2 samples cannot give an unbiased covariance)"
            )

    def _dense_scatter(self, workers: int) -> np.ndarray:
        if self._scatter is None:
            assert self._factor is not None
            self._scatter = _core.factor_scatter(self._factor, workers)
        return self._scatter

    @property
    def n(self) -> int:
        """Number of samples N."""
        return self._n

    @property
    def d(self) -> int:
        """Dimension d."""
        if self._mean is None:
            raise ValueError("these statistics are empty: call partial_fit first")
        return int(self._mean.shape[0])

    @property
    def ddof(self) -> int:
        return self._ddof

    @property
    def mean(self) -> np.ndarray:
        """Sample mean μ̂ (a new array)."""
        if self._n == 0:
            raise ValueError("these statistics are empty: call partial_fit first")
        assert self._mean is not None and self._shift is not None
        return self._shift + self._mean

    @property
    def scatter(self) -> np.ndarray:
        """Σ (x−μ̂)(x−μ̂)ᵀ (a copy)."""
        self._require()
        return self._dense_scatter(resolve_workers(None)).copy()

    @property
    def cov(self) -> np.ndarray:
        """Covariance Σ̂ = scatter / (N − ddof)."""
        self._require()
        return self._dense_scatter(resolve_workers(None)) / (self._n - self._ddof)

    @property
    def rank_bound(self) -> int:
        """min(d, N−1): the covariance of N points has at most this many nonzero eigenvalues.

        Statistics built by :meth:`from_moments` trust the given covariance instead (bound d).
        """
        if self._from_given_moments:
            return self.d
        return min(self.d, self._n - 1)

    @property
    def holds_factor(self) -> bool:
        """True while the scatter is held as a thin factor (so the dual route is available)."""
        return self._factor is not None

    # ------------------------------------------------------------------ spectrum
    def eigh(self, route: Route = "auto", *, workers: int | None = None) -> EmpiricalStats:
        """Compute (and cache) the eigendecomposition of the covariance; returns ``self``.

        Parameters
        ----------
        route : {"auto", "primal", "dual"}
            ``"primal"``: LAPACK ``dsyevd`` on the d×d covariance. ``"dual"``: eigendecompose the
            N×N Gram matrix of the centred data and map its eigenvectors back (needs the data, i.e.
            at most 2d rows). ``"auto"`` takes the dual route when it is available and N < d.
        """
        self._require()
        w = resolve_workers(workers)
        if route not in ("auto", "primal", "dual"):
            raise ValueError(f"route must be 'auto', 'primal' or 'dual', got {route!r}")
        if route == "auto":
            route = "dual" if self._factor is not None and self._n < self.d else "primal"
        if self._spectrum is not None and self._spectrum.route == route:
            return self
        scale = 1.0 / (self._n - self._ddof)
        if route == "dual":
            if self._factor is None:
                raise ValueError(
                    "the dual route needs the centred data, but these statistics hold only the d×d "
                    f"scatter (N = {self._n} > 2d = {2 * self.d}, or built from moments); use "
                    "route='primal'"
                )
            vals, vecs = _core.dual_eigh(self._factor, self.rank_bound, w)
        else:
            vals, vecs = _core.eigh_descending(self._dense_scatter(w), self.rank_bound, w)
        vals = vals * scale
        vals.flags.writeable = False
        vecs.flags.writeable = False
        self._spectrum = _Spectrum(vals, vecs, route)
        self._full_vectors = vecs if vecs.shape[1] == self.d else None
        self._projections = {}
        return self

    def _spec(self) -> _Spectrum:
        if self._spectrum is None:
            self.eigh()
        assert self._spectrum is not None
        return self._spectrum

    @property
    def eigvals(self) -> np.ndarray:
        """Eigenvalues of the covariance, descending, length d (null directions are exactly 0)."""
        s = self._spec()
        out = np.zeros(self.d)
        out[: s.values.shape[0]] = s.values
        return out

    @property
    def eigvecs(self) -> np.ndarray:
        """Orthonormal eigenvectors (columns), d×d, matching :attr:`eigvals` (read-only).

        After the dual route, the null space is completed by a Householder QR of the range basis
        (computed once, on first access).
        """
        s = self._spec()
        if self._full_vectors is None:
            full = _core.complete_basis(s.vectors, resolve_workers(None))
            # Keep the range columns exactly as computed (QR may flip their signs).
            full[:, : s.vectors.shape[1]] = s.vectors
            full.flags.writeable = False
            self._full_vectors = full
        return self._full_vectors

    @property
    def range_basis(self) -> tuple[np.ndarray, np.ndarray]:
        """(values, vectors) of the nonzero part of the spectrum: length r and d×r, r ≤ rank_bound.

        Every other direction has eigenvalue 0. Computations that only need the complement's
        projector I − UUᵀ use this and never build the d×d basis.
        """
        s = self._spec()
        r = int(np.count_nonzero(s.values > 0)) if s.vectors.shape[1] == self.d else s.values.shape[0]
        return s.values[:r], s.vectors[:, :r]

    @property
    def route(self) -> str:
        """The route that produced the current eigendecomposition."""
        return self._spec().route

    def __repr__(self) -> str:
        if self._n == 0:
            return "EmpiricalStats(empty)"
        held = f"factor {self._factor.shape[0]}x{self.d}" if self._factor is not None else "dense scatter"
        return f"EmpiricalStats(n={self._n}, d={self.d}, ddof={self._ddof}, {held})"
