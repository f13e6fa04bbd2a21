"""The dense-kernel provider: configuration, switching, errors, and agreement between providers.

Each provider is also checked against NumPy directly, so that "the two providers agree" can never
hide a shared mistake.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import lindiff
from lindiff import EmpiricalStats, GaussianTarget


def rel_err(a, b) -> float:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


@pytest.fixture
def restore_provider(request):
    request.addfinalizer(lambda: lindiff.use_blas("auto"))


# ---------------------------------------------------------------------------------- configuration


def test_show_config_reports_a_provider():
    cfg = lindiff.show_config()
    assert cfg["provider"] in ("openblas", "eigen")
    assert cfg["version"] == lindiff.__version__
    assert cfg["simd"] in ("avx512", "avx2", "sse4.2", "baseline")
    if cfg["provider"] == "openblas":
        assert os.path.exists(cfg["path"])
        assert cfg["symbols"]
    assert set(lindiff.show_config()) >= {"provider", "path", "version", "simd"}


def test_use_blas_switches_and_restores(restore_provider):
    info = lindiff.use_blas("eigen")
    assert info["provider"] == "eigen"
    assert lindiff.show_config()["provider"] == "eigen"
    assert info["path"] == ""
    back = lindiff.use_blas("auto")
    assert back["provider"] in ("openblas", "eigen")
    assert lindiff.use_blas(None)["provider"] == back["provider"]
    assert lindiff.show_config()["provider"] == back["provider"]


def test_use_blas_explicit_path(openblas_provider):
    path = lindiff.show_config()["path"]
    lindiff.use_blas("eigen")
    info = lindiff.use_blas(path)
    assert info["provider"] == "openblas" and info["path"] == path


def test_use_blas_nonexistent_path_raises_and_keeps_provider(restore_provider):
    before = lindiff.show_config()["provider"]
    with pytest.raises(ValueError, match="no such library"):
        lindiff.use_blas("/nonexistent")
    with pytest.raises(ValueError, match="no such library"):
        lindiff.use_blas("/nonexistent/libopenblas64_.so")
    assert lindiff.show_config()["provider"] == before


def test_use_blas_rejects_files_without_the_symbols(tmp_path, restore_provider):
    before = lindiff.show_config()
    not_a_library = tmp_path / "libfake.so"
    not_a_library.write_bytes(b"not an ELF file")
    with pytest.raises(ValueError, match="does not export"):
        lindiff.use_blas(str(not_a_library))
    # a real shared library that lacks the CBLAS/LAPACKE entry points: lindiff's own extension
    with pytest.raises(ValueError, match="does not export"):
        lindiff.use_blas(lindiff._core.__file__)
    after = lindiff.show_config()
    assert (after["provider"], after["path"]) == (before["provider"], before["path"])


def _provider_in_subprocess(value: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, LINDIFF_BLAS=value)
    code = "import lindiff; print(lindiff.show_config()['provider'])"
    flags = ["-S"] if sys.flags.no_site else []  # the child imports lindiff the way we did
    return subprocess.run([sys.executable, *flags, "-c", code], env=env, capture_output=True,
                          text=True, timeout=120)


def test_environment_variable_selects_eigen():
    r = _provider_in_subprocess("eigen")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "eigen"


def test_environment_variable_with_missing_library_fails_clearly():
    r = _provider_in_subprocess("/nonexistent/libopenblas64_.so")
    assert r.returncode != 0
    assert "ValueError" in r.stderr and "no such library" in r.stderr


# ------------------------------------------------------------------- each provider against NumPy


@pytest.mark.parametrize("N,d", [(500, 30), (12, 30), (30, 30), (60, 30)])
def test_each_provider_matches_numpy(blas_provider, N, d):
    rng = np.random.default_rng(N * d)
    X = rng.standard_normal((N, d)) * np.linspace(2.0, 0.3, d) + 5.0
    C = np.cov(X, rowvar=False, ddof=0)
    s = EmpiricalStats(X)
    assert rel_err(s.cov, C) < 1e-13
    lam, V = s.eigvals, s.eigvecs
    np.testing.assert_allclose(lam, np.linalg.eigvalsh(C)[::-1], rtol=0, atol=1e-12 * lam[0])
    np.testing.assert_allclose(V.T @ V, np.eye(d), rtol=0, atol=1e-12)
    np.testing.assert_allclose(V.T @ C @ V, np.diag(lam), rtol=0, atol=1e-12 * lam[0])
    assert np.all(lam[min(d, N - 1):] == 0.0)


# ----------------------------------------------------------------- the providers agree to rounding


def _compute_all():
    rng = np.random.default_rng(99)
    d = 48
    thick = rng.standard_normal((400, d)) * np.linspace(3.0, 0.5, d) + 1.0
    thin = rng.standard_normal((20, d)) * np.linspace(3.0, 0.5, d) - 2.0
    target = GaussianTarget.power_law(d, 1.0, rotation="random", rng=4)
    out = {}
    for name, s in (
        ("thick", EmpiricalStats(thick)),
        ("thin-dual", EmpiricalStats(thin).eigh("dual")),
        ("thin-primal", EmpiricalStats(thin).eigh("primal")),
        ("wishart", target.empirical_stats(200, rng=5)),
        ("wishart-factor", target.empirical_stats(10, rng=5)),
    ):
        vals, vecs = s.range_basis
        out[name] = dict(mean=s.mean, cov=s.cov, eigvals=s.eigvals, eigvecs=s.eigvecs,
                         proj=vecs @ vecs.T, rank=vals.shape[0])
    return out


def test_providers_agree_to_rounding(openblas_provider):
    ob = _compute_all()
    lindiff.use_blas("eigen")
    assert lindiff.show_config()["provider"] == "eigen"
    ei = _compute_all()
    for name in ob:
        a, b = ob[name], ei[name]
        np.testing.assert_array_equal(a["mean"], b["mean"])  # the mean never uses BLAS
        assert rel_err(a["cov"], b["cov"]) < 1e-13, name
        top = a["eigvals"][0]
        np.testing.assert_allclose(a["eigvals"], b["eigvals"], rtol=0, atol=1e-12 * top,
                                   err_msg=name)
        assert a["rank"] == b["rank"], name
        np.testing.assert_allclose(a["proj"], b["proj"], rtol=0, atol=1e-10, err_msg=name)
        # eigenvectors agree up to sign (the spectra here are simple and well separated)
        lam = a["eigvals"][: a["rank"]]
        gaps = np.abs(np.diff(lam)) / top
        for j in range(a["rank"]):
            left = gaps[j - 1] if j > 0 else np.inf
            right = gaps[j] if j < len(gaps) else np.inf
            if min(left, right) > 1e-3:
                c = a["eigvecs"][:, j] @ b["eigvecs"][:, j]
                assert abs(abs(c) - 1.0) < 1e-9, (name, j)
        for V in (a["eigvecs"], b["eigvecs"]):
            np.testing.assert_allclose(V.T @ V, np.eye(V.shape[0]), rtol=0, atol=1e-12,
                                       err_msg=name)


def test_switching_provider_mid_stream(restore_provider):
    """Statistics built under one provider stay valid when the provider changes."""
    rng = np.random.default_rng(8)
    X = rng.standard_normal((90, 10)) + 3.0
    s = EmpiricalStats()
    lindiff.use_blas("eigen")
    s.partial_fit(X[:40])
    lindiff.use_blas("auto")
    s.partial_fit(X[40:])
    lindiff.use_blas("eigen")
    C = np.cov(X, rowvar=False, ddof=0)
    assert rel_err(s.cov, C) < 1e-13
    np.testing.assert_allclose(s.eigvals, np.linalg.eigvalsh(C)[::-1], rtol=0,
                               atol=1e-12 * s.eigvals[0])
