"""Nearest neighbours and memorisation diagnostics for generated samples (theory.md §5).

:func:`nearest_neighbours` is an exact k-nearest-neighbour search (Euclidean) built for the shapes
of memorisation studies: 10⁴ samples against 6·10⁴ training images at d = 784 take one pass of
matrix products. The squared distances are expanded as ‖q‖² + ‖r‖² − 2 q·r and computed block by
block with one GEMM per block (NumPy's OpenBLAS), the best k + 4 candidates of each query are kept
by a scan fused after each block (the full n×M matrix is never formed), and then:

- the candidates' distances are **recomputed exactly from the differences** Σ (q − r)², so a
  near-duplicate (a memorised sample at distance 1e-8 from its training image) gets an accurate small
  distance, not the ~1e-7·‖x‖ noise of the expansion's cancellation;
- a rounding bound certifies that no point outside the candidates can be closer than the k-th; a
  query where it cannot (many points tied within rounding, e.g. duplicated training images) is
  answered by an exact scan over all reference points.

The result is exact: the k nearest reference rows ordered by (distance, index), ties broken by the
smaller index. It does not depend on ``workers``.

:func:`memorisation` applies the criterion of Yoon et al., Gu et al. and Bonnaire et al.: a sample is
*memorised* when d₁/d₂ < 1/3, with d₁, d₂ its distances to the nearest and second-nearest training
points.

Edge cases (defined here, tested):

- a training set of one point: d₂ = inf, so the ratio is 0 and every sample counts as memorised
  (with a single training point there is nothing else to be near);
- d₁ = 0 (an exact copy of a training point): the ratio is 0 (memorised), also when the training
  set holds that point twice (d₂ = 0 too, where 0/0 would be undefined);
- otherwise the ratio is d₁/d₂ ∈ (0, 1]. A duplicated training point makes the ratio 1 for samples
  near it (d₁ = d₂); deduplicate the training set first if duplicates matter to you.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _core
from ._validation import as_data, as_int, resolve_workers

__all__ = ["Memorisation", "memorisation", "nearest_neighbours"]


def _pair(queries: Any, reference: Any, qname: str, rname: str) -> tuple[np.ndarray, np.ndarray]:
    R = as_data(reference, rname, min_rows=1)
    Q = as_data(queries, qname, min_rows=0)
    if Q.shape[1] != R.shape[1]:
        raise ValueError(f"{qname} have d = {Q.shape[1]} features but {rname} has d = {R.shape[1]}")
    return np.ascontiguousarray(Q), np.ascontiguousarray(R)


def _search(Q: np.ndarray, R: np.ndarray, k: int, workers: int) -> tuple[np.ndarray, np.ndarray, int]:
    dist = np.empty((Q.shape[0], k))
    index = np.empty((Q.shape[0], k), dtype=np.int64)
    fallbacks = _core.nearest_neighbours(Q, R, k, workers, dist, index)
    return dist, index, int(fallbacks)


def nearest_neighbours(
    queries: Any, reference: Any, k: int = 2, *, workers: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours (Euclidean) of each query row among the reference rows.

    Parameters
    ----------
    queries : array_like, shape (n, d)
        Points to look up (n may be 0).
    reference : array_like, shape (M, d)
        The reference set (M >= 1), e.g. the training set.
    k : int, default 2
        Number of neighbours, 1 <= k <= M.
    workers : int or None
        Threads for the candidate selection and the exact recomputation (None or -1: all cores).
        The matrix products use NumPy's OpenBLAS with its own thread setting. Results do not depend
        on ``workers``.

    Returns
    -------
    distances : ndarray, shape (n, k)
        Euclidean distances, ascending along each row, computed from the differences.
    indices : ndarray of int64, shape (n, k)
        Rows of ``reference``; equal distances are ordered by index.
    """
    Q, R = _pair(queries, reference, "queries", "reference")
    k = as_int(k, "k", 1)
    if k > R.shape[0]:
        raise ValueError(f"k = {k} exceeds the number of reference points ({R.shape[0]})")
    dist, index, _ = _search(Q, R, k, resolve_workers(workers))
    return dist, index


@dataclass(frozen=True)
class Memorisation:
    """Memorisation diagnostics of n samples against a training set (see :func:`memorisation`).

    Attributes
    ----------
    d1, d2 : ndarray (n,)
        Distances to the nearest and second-nearest training points (d2 = inf for one training point).
    ratio : ndarray (n,)
        d1/d2, with 0 where d1 = 0 or d2 = inf.
    memorised : ndarray of bool (n,)
        ratio < threshold.
    nearest : ndarray of int64 (n,)
        Index of the nearest training point.
    threshold : float
    d_held_out : ndarray (n,) or None
        Distance to the nearest held-out point, when ``held_out`` was given.
    nearest_held_out : ndarray of int64 (n,) or None
    """

    d1: np.ndarray
    d2: np.ndarray
    ratio: np.ndarray
    memorised: np.ndarray
    nearest: np.ndarray
    threshold: float
    d_held_out: np.ndarray | None = None
    nearest_held_out: np.ndarray | None = None

    @property
    def n(self) -> int:
        return int(self.d1.shape[0])

    @property
    def fraction(self) -> float:
        """The memorised fraction: the mean of ``memorised``."""
        return float(np.mean(self.memorised))

    @property
    def closer_to_train(self) -> float | None:
        """Fraction of samples nearer to a training point than to any held-out point (None without
        ``held_out``). For samples from the data law itself this is about M/(M + M_held_out)."""
        if self.d_held_out is None:
            return None
        return float(np.mean(self.d1 < self.d_held_out))

    def summary(self) -> dict[str, float]:
        """Scalar summaries: fraction, median d1, d2 and ratio, and the held-out comparisons."""
        out = {
            "fraction": self.fraction,
            "median_d1": float(np.median(self.d1)),
            "median_d2": float(np.median(self.d2)),
            "median_ratio": float(np.median(self.ratio)),
        }
        if self.d_held_out is not None:
            out["median_d_held_out"] = float(np.median(self.d_held_out))
            out["closer_to_train"] = float(self.closer_to_train)  # type: ignore[arg-type]
        return out


def memorisation(
    samples: Any,
    train: Any,
    *,
    held_out: Any = None,
    threshold: float = 1.0 / 3.0,
    workers: int | None = None,
) -> Memorisation:
    """Nearest-neighbour memorisation diagnostics of generated samples against a training set.

    A sample is memorised when d₁/d₂ < ``threshold`` (1/3 by default), d₁ and d₂ being its
    distances to the nearest and second-nearest training points. See the module docstring for the
    edge cases (one training point, exact copies, duplicates).

    Parameters
    ----------
    samples : array_like, shape (n, d)
        Generated samples (n >= 1).
    train : array_like, shape (N, d)
        The training set (N >= 1).
    held_out : array_like, shape (M, d), optional
        Points of the data law not used for training: the distance to the nearest of them is
        reported beside d₁ (a generalising model's samples are as close to held-out points as to
        training points).
    threshold : float in (0, 1)
    workers : int or None
        Threads (None or -1: all cores); results do not depend on it.
    """
    S, X = _pair(samples, train, "samples", "train")
    if S.shape[0] < 1:
        raise ValueError("samples has 0 rows; need at least 1")
    try:
        thr = float(threshold)
    except (TypeError, ValueError):
        raise TypeError(f"threshold must be a number in (0, 1), got {threshold!r}") from None
    if not (0.0 < thr < 1.0):
        raise ValueError(f"threshold must lie strictly between 0 and 1, got {threshold!r}")
    w = resolve_workers(workers)
    k = 2 if X.shape[0] >= 2 else 1
    dist, index, _ = _search(S, X, k, w)
    d1 = dist[:, 0].copy()
    d2 = dist[:, 1].copy() if k == 2 else np.full(S.shape[0], np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where((d1 == 0) | np.isinf(d2), 0.0, d1 / d2)
    d_h = n_h = None
    if held_out is not None:
        H = as_data(held_out, "held_out", min_rows=1)
        if H.shape[1] != S.shape[1]:
            raise ValueError(f"held_out has d = {H.shape[1]} features but samples have d = {S.shape[1]}")
        dh, ih, _ = _search(S, np.ascontiguousarray(H), 1, w)
        d_h, n_h = dh[:, 0].copy(), ih[:, 0].copy()
    return Memorisation(d1=d1, d2=d2, ratio=ratio, memorised=ratio < thr, nearest=index[:, 0].copy(),
                        threshold=thr, d_held_out=d_h, nearest_held_out=n_h)
