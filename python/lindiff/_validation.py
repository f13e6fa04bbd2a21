"""Input checking shared by the public API: one place for every conversion and message."""

from __future__ import annotations

import os
from typing import Any, Union

import numpy as np

RNGLike = Union[None, int, np.random.SeedSequence, np.random.Generator]


def cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def resolve_workers(workers: int | None) -> int:
    """``None`` or ``-1``: all available cores; ``n >= 1``: n threads."""
    if workers is None or (isinstance(workers, (int, np.integer)) and workers == -1):
        return cpu_count()
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)):
        raise TypeError(f"workers must be an int, -1 or None, got {type(workers).__name__}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, or -1/None for all cores; got {workers}")
    return int(workers)


def as_rng(rng: RNGLike) -> np.random.Generator:
    return np.random.default_rng(rng)


def as_data(x: Any, name: str = "X", *, min_rows: int = 1, allow_copy: bool = True) -> np.ndarray:
    """A finite 2-D float64 array (n_samples, n_features). float32/int inputs are converted.

    The result may be a strided view (no copy) when the input is already float64: the core reads any
    strides.
    """
    arr = np.asarray(x)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
        or arr.dtype == np.bool_
    ):
        raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise TypeError(f"{name} must be real, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape {arr.shape}")
    n, d = arr.shape
    if d < 1:
        raise ValueError(f"{name} has no features (shape {arr.shape}); need d >= 1")
    if n < min_rows:
        raise ValueError(f"{name} has {n} rows; need at least {min_rows}")
    if arr.dtype != np.float64:
        arr = arr.astype(np.float64)
    elif (
        any((st <= 0 and ln > 1) or st % arr.itemsize for st, ln in zip(arr.strides, arr.shape))
        or not arr.dtype.isnative
    ):
        arr = np.ascontiguousarray(arr, dtype=np.float64)  # the core reads positive, non-zero strides only
    if not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(f"{name} contains NaN or inf (first at row {bad[0]}, column {bad[1]})")
    return arr


def as_vector(x: Any, name: str, d: int | None = None) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if d is not None and arr.shape[0] != d:
        raise ValueError(f"{name} has length {arr.shape[0]}; expected {d}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def as_square(x: Any, name: str, d: int | None = None, *, symmetric: bool = True) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}")
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise ValueError(f"{name} must be a square matrix, got shape {arr.shape}")
    if d is not None and arr.shape[0] != d:
        raise ValueError(f"{name} is {arr.shape[0]}x{arr.shape[0]}; expected {d}x{d}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or inf")
    if symmetric:
        scale = max(np.abs(arr).max(), 1e-300)
        if not np.allclose(arr, arr.T, rtol=0, atol=1e-10 * scale):
            raise ValueError(f"{name} is not symmetric")
    return arr


def as_int(x: Any, name: str, minimum: int) -> int:
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)):
        if isinstance(x, (float, np.floating)) and float(x).is_integer():
            x = int(x)
        else:
            raise TypeError(f"{name} must be an integer, got {x!r}")
    if x < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {x}")
    return int(x)
