"""lindiff: linear diffusion models in closed form and in simulation.

See README.md for conventions. The compiled core is ``lindiff._core`` (private).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from ._backend import show_config, use_blas
from . import sampling, theory, training
from .gaussian import Gaussian
from .measures import gaussian_fit_kl, kl_divergence, kl_pair, wasserstein2
from .model import (
    GridResult,
    LinearDiffusion,
    OptimumResult,
    evaluate_grid,
    optimal_ridge,
    optimal_stopping,
)
from .sampling import sample_affine_chain
from .schedule import Schedule
from .stats import EmpiricalStats
from .sweeps import sweep
from .targets import GaussianTarget
from .training import (
    AffineDenoisers,
    FlowComparison,
    TrainingResult,
    compare_with_gradient_flow,
    gradient_flow_denoisers,
    train_denoisers,
)

try:
    __version__ = version("lindiff")
except PackageNotFoundError:  # pragma: no cover
    __version__ = "0+unknown"

__all__ = [
    "AffineDenoisers",
    "FlowComparison",
    "TrainingResult",
    "compare_with_gradient_flow",
    "gradient_flow_denoisers",
    "train_denoisers",
    "EmpiricalStats",
    "Gaussian",
    "GaussianTarget",
    "GridResult",
    "LinearDiffusion",
    "OptimumResult",
    "Schedule",
    "__version__",
    "evaluate_grid",
    "gaussian_fit_kl",
    "kl_divergence",
    "kl_pair",
    "optimal_ridge",
    "optimal_stopping",
    "sample_affine_chain",
    "sampling",
    "show_config",
    "sweep",
    "theory",
    "training",
    "use_blas",
    "wasserstein2",
]
