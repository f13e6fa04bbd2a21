"""lindiff: linear diffusion models in closed form and in simulation.

See README.md for conventions. The compiled core is ``lindiff._core`` (private).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from ._backend import show_config, use_blas
from . import sampling, theory, training
from .empirical_optimal import EmpiricalOptimalDenoiser
from .gaussian import Gaussian
from .measures import gaussian_fit_kl, kl_divergence, kl_pair, wasserstein2
from .neighbours import Memorisation, memorisation, nearest_neighbours
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
    "__version__",
    "AffineDenoisers",
    "compare_with_gradient_flow",
    "EmpiricalOptimalDenoiser",
    "EmpiricalStats",
    "evaluate_grid",
    "FlowComparison",
    "Gaussian",
    "gaussian_fit_kl",
    "GaussianTarget",
    "gradient_flow_denoisers",
    "GridResult",
    "kl_divergence",
    "kl_pair",
    "LinearDiffusion",
    "Memorisation",
    "memorisation",
    "nearest_neighbours",
    "optimal_ridge",
    "optimal_stopping",
    "OptimumResult",
    "sample_affine_chain",
    "sampling",
    "Schedule",
    "show_config",
    "sweep",
    "theory",
    "train_denoisers",
    "training",
    "TrainingResult",
    "use_blas",
    "wasserstein2",
]
