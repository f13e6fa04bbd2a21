"""lindiff: linear diffusion models in closed form and in simulation.

See README.md for conventions. The compiled core is ``lindiff._core`` (private).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from ._backend import show_config, use_blas
from .stats import EmpiricalStats
from .targets import GaussianTarget

try:
    __version__ = version("lindiff")
except PackageNotFoundError:  # pragma: no cover
    __version__ = "0+unknown"

__all__ = ["EmpiricalStats", "GaussianTarget", "__version__", "show_config", "use_blas"]
