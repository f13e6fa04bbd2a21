"""Which dense-kernel provider the compiled core uses, and how it was chosen.

The core never links a BLAS. At import we look for the ILP64 OpenBLAS that NumPy's wheels bundle
(``numpy.libs/libscipy_openblas64_*.so``, already loaded in this process by ``import numpy``) and
hand its path to the core, which looks up ``cblas_dsyrk``, ``cblas_dgemm``, ``LAPACKE_dsyevd``,
``LAPACKE_dgeqrf`` and ``LAPACKE_dorgqr``. Using NumPy's own library means NumPy's speed, a single
OpenBLAS thread pool in the process (threadpoolctl limits apply to both) and no extra dependency.

Set ``LINDIFF_BLAS=eigen`` to use Eigen's kernels instead (same results to rounding, slower), or
``LINDIFF_BLAS=/path/to/libopenblas64_.so`` to use another ILP64 OpenBLAS.
"""

from __future__ import annotations

import glob
import os
from typing import Any

import numpy as np

from . import _core

__all__ = ["show_config", "use_blas"]


def _numpy_openblas_candidates() -> list[str]:
    root = os.path.dirname(os.path.dirname(np.__file__))
    pats = [
        os.path.join(root, "numpy.libs", "libscipy_openblas64_*.so*"),
        os.path.join(root, "numpy.libs", "libopenblas64_*.so*"),
        os.path.join(os.path.dirname(np.__file__), ".dylibs", "libscipy_openblas64_*.dylib"),
    ]
    out: list[str] = []
    for p in pats:
        out.extend(sorted(glob.glob(p)))
    return out


def use_blas(choice: str | None = None) -> dict[str, Any]:
    """Choose the dense-kernel provider.

    Parameters
    ----------
    choice : str or None
        ``None`` or ``"auto"``: NumPy's bundled OpenBLAS when found, else Eigen. ``"eigen"``: Eigen's
        own kernels. Anything else is taken as the path of an ILP64 OpenBLAS shared library.

    Returns
    -------
    dict
        The provider now in use (see :func:`show_config`).
    """
    if choice is None or choice == "auto":
        for path in _numpy_openblas_candidates():
            if _core.blas_load(path):
                break
        else:
            _core.blas_unload()
    elif choice == "eigen":
        _core.blas_unload()
    else:
        if not os.path.exists(choice):
            raise ValueError(f"LINDIFF_BLAS / use_blas: no such library: {choice!r}")
        if not _core.blas_load(choice):
            raise ValueError(
                f"{choice!r} does not export the ILP64 CBLAS/LAPACKE symbols lindiff needs "
                "(cblas_dsyrk, cblas_dgemm, LAPACKE_dsyevd, LAPACKE_dgeqrf, LAPACKE_dorgqr)"
            )
    return dict(_core.blas_info())


def show_config() -> dict[str, Any]:
    """The compiled core's configuration: version, SIMD level and dense-kernel provider."""
    info = dict(_core.blas_info())
    info["version"] = _core.__version__
    info["simd"] = _core.simd
    return info


use_blas(os.environ.get("LINDIFF_BLAS") or None)
