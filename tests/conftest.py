"""Shared fixtures for the lindiff test suite.

Only fixtures live here (no helper imports from test files): the tests import the installed
package, never this directory.
"""

from __future__ import annotations

import numpy as np
import pytest

import lindiff


@pytest.fixture
def rng() -> np.random.Generator:
    """A fixed-seed generator, so that every statistical test is reproducible."""
    return np.random.default_rng(20250601)


def _switch_provider(request: pytest.FixtureRequest, which: str) -> str:
    # Register the restore first, so that the provider is put back even if switching fails.
    request.addfinalizer(lambda: lindiff.use_blas("auto"))
    if which == "eigen":
        info = lindiff.use_blas("eigen")
    else:
        info = lindiff.use_blas("auto")
        if info["provider"] != "openblas":
            pytest.skip("NumPy's bundled ILP64 OpenBLAS was not found; only Eigen is available")
    assert info["provider"] == which
    assert lindiff.show_config()["provider"] == which
    return which


@pytest.fixture(params=["openblas", "eigen"])
def blas_provider(request: pytest.FixtureRequest) -> str:
    """Run the test once with NumPy's OpenBLAS and once with Eigen's kernels; restore "auto"."""
    return _switch_provider(request, request.param)


@pytest.fixture
def eigen_provider(request: pytest.FixtureRequest) -> str:
    return _switch_provider(request, "eigen")


@pytest.fixture
def openblas_provider(request: pytest.FixtureRequest) -> str:
    return _switch_provider(request, "openblas")
