# Type stubs for lindiff._core, the private compiled module (see cpp/bindings/).
from typing import Any

import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]

__version__: str
simd: str

# linalg (bind_linalg.cpp)
def blas_load(path: str) -> bool: ...
def blas_unload() -> None: ...
def blas_info() -> dict[str, str]: ...
def eigh_descending(S: F64, rank_bound: int, workers: int) -> tuple[F64, F64]: ...
def dual_eigh(F: F64, rank_bound: int, workers: int) -> tuple[F64, F64]: ...
def complete_basis(A: F64, workers: int) -> F64: ...

# statistics (bind_stats.cpp)
def column_mean(X: F64, shift: F64, workers: int) -> F64: ...
def centred_scatter(X: F64, shift: F64, mean: F64, workers: int, chunk_rows: int = 0) -> F64: ...
def centred_rows(X: F64, shift: F64, mean: F64, workers: int) -> F64: ...
def factor_scatter(F: F64, workers: int) -> F64: ...
def bartlett_scatter(sqrt_lambda: F64, V: F64, c: F64, z: F64, workers: int) -> F64: ...

# closed-form model (bind_model.cpp)
def filter_table(
    beta: F64, abar: F64, abar_prev: F64, one_minus_abar: F64, lam: F64, ridge: F64,
    training: tuple[int, float, float, float],
) -> F64: ...
def evaluate_grid(
    beta: F64, abar: F64, abar_prev: F64, one_minus_abar: F64, lam: F64, ridges: F64,
    trainings: list[tuple[int, float, float, float]], sampler: int, sigma2: F64, energies: F64,
    workers: int,
) -> tuple[F64, F64, F64]: ...

# samplers (bind_sampling.cpp): Python allocates `out`, C++ fills it
SAMPLE_BLOCK: int

def sample_eigen_chain(
    U: F64, a: F64, c: F64, sigma: F64, seeds: NDArray[np.uint64], workers: int, out: F64,
    noise: F64 | None = None, trajectory: F64 | None = None, slot: list[int] = ...,
) -> None: ...
def sample_dense_chain(
    W: F64, b: F64, p: F64, q: F64, sigma: F64, seeds: NDArray[np.uint64], workers: int, out: F64,
    noise: F64 | None = None, trajectory: F64 | None = None, slot: list[int] = ...,
) -> None: ...
def sample_gaussian(
    mean: F64, scale: F64, V: F64, seeds: NDArray[np.uint64], workers: int, out: F64
) -> None: ...
def standard_normal(n: int, seed: NDArray[np.uint64]) -> F64: ...


# training (issue 6)
TRAIN_BLOCK: int

def train_affine_sgd(
    X: F64, sqrt_abar: F64, sqrt_om: F64, ridge: F64, seeds: NDArray[np.uint64], learning_rate: float,
    step0: int, n_steps: int, batch: int, draws: int, workers: int, W: F64, b: F64,
    noise: F64 | None = None,
) -> None: ...
