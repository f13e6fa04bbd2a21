#!/usr/bin/env python
"""lindiff's closed-form model (theory.md §3-§5) against NumPy for the same job, in one process.

Sections (``--only`` picks some, comma-separated):

  sampling  The generated law and its KL to the target, given the statistics (eigh done) of
            N = d/2 draws from a power-law target (k = 1, random rotation), d = 2000, T = 1000:
            ``LinearDiffusion(stats, schedule).kl(target)``. The first call also projects the
            target onto the eigenbasis (one d x d GEMM; timed on a fresh ``stats.copy()``, since
            the projection is cached on the statistics); later calls reuse it, so first and repeat
            calls are reported apart (and ``sampling_distribution()`` for reference). The reference is the dense NumPy chain:
            per t build W_t = U diag(w_t) U^T and A_t = (I - kappa_t W_t)/sqrt(1-beta_t) as d x d,
            m <- A m + c_t, S <- A S A^T + sigma_t^2 I, then both KLs with slogdet/solve. It is
            timed at d = 500 with T = 100 steps and extrapolated to d = 2000, T = 1000 as
            recursion x (T/100) x (2000/500)^3 + KL x (2000/500)^3 (its cost is 6 d^3 per step).
            lindiff is also timed on exactly the small job, for a measured same-size ratio.
  grid      ``lindiff.evaluate_grid(stats, target, schedule, ridge=50 values, train_time=20
            values)`` at d = 1000, T = 1000 (1000 settings; KL both ways and average train/test
            losses), workers = 1 and 2, against a vectorised NumPy version of the same eigen-form
            computation written here (the per-mode recursion on arrays of shape (ridges, times, d)
            blocked to stay in cache, the filter with exp(-2 eta c tau), the losses and the KL
            reduction), on 1 thread and on 2 Python threads. Both sides project the target onto
            the eigenbasis once and reuse it (lindiff caches it on the EmpiricalStats), so the
            timed calls are repeat grids on the same statistics.
  optimum   How much of the grid time is exp(): the same number of settings (1000 ridge values)
            at the converged optimum (train_time=None, no exp), next to the flow grid of
            ``grid``, and a breakdown of the raw kernel (``lindiff._core.evaluate_grid``) with and
            without the exp and the loss reductions.

Ratios are numpy_time / lindiff_time (above 1: lindiff faster). Every contender is checked
against the others before it is timed. Medians of interleaved repeats (common.py); the host is
shared and noisy, so the tables also give the process CPU time per call (``time.process_time``,
summed over threads; for the NumPy/BLAS contenders it includes OpenBLAS's spinning threads),
which other tenants disturb much less than the wall time.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (  # noqa: E402
    Contender,
    Timing,
    cpu_flags,
    cpu_model,
    dump_json,
    fmt_ratio,
    fmt_time,
    interleaved,
    measured_peak,
    n_cpus,
    spread_str,
    table,
    threadpool_summary,
    versions,
    wait_for_idle,
)

SECTIONS = ("sampling", "grid", "optimum")


# ============================================================================ timing with CPU time
class CpuClock:
    """Wraps contenders so that each timed call also records its process CPU time.

    ``common.interleaved`` measures the wall time; the wrapper adds ``time.process_time`` around
    the call (≈1 us of overhead, negligible at the sizes timed here). Calls made during the
    warm-up/calibration are dropped.
    """

    def __init__(self) -> None:
        self.cpu: dict[str, list[float]] = {}
        self.warm: dict[str, int] = {}

    def wrap(self, name: str, fn: Callable[[Any], Any], setup: Callable[[], Any] | None = None,
             warmup: int = 1) -> Contender:
        self.cpu[name] = []
        self.warm[name] = warmup

        def run(a: Any) -> Any:
            c0 = time.process_time()
            out = fn(a)
            self.cpu[name].append(time.process_time() - c0)
            return out

        return Contender(name, run, setup)

    def median(self, name: str) -> float:
        xs = self.cpu[name][self.warm[name]:] or self.cpu[name]
        return statistics.median(xs)


def run_timed(cs: list[tuple[str, Callable[[Any], Any], Callable[[], Any] | None]], repeat: int,
              *, min_sample: float = 0.02) -> tuple[dict[str, Timing], dict[str, float]]:
    clock = CpuClock()
    contenders = [clock.wrap(n, f, s) for n, f, s in cs]
    t = interleaved(contenders, repeat, min_sample=min_sample)
    return t, {n: clock.median(n) for n, _, _ in cs}


def print_timings(t: dict[str, Timing], cpu: dict[str, float]) -> None:
    rows = [[k, fmt_time(v.median), spread_str(v), fmt_time(cpu[k]), str(len(v.samples)),
             str(v.number)] for k, v in t.items()]
    print(table(["contender", "median", "min..max", "cpu/call", "reps", "calls/rep"], rows,
                indent="      "))


def rel_err(a: Any, b: Any) -> float:
    a = np.asarray(a, float)
    b = np.asarray(b, float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))


# ============================================================================ problems
def make_problem(d: int, n: int, seed: int) -> tuple[Any, Any]:
    """A power-law target (k = 1, Haar-random rotation) and the statistics of n draws from it,
    with the eigendecomposition and the full eigenbasis computed beforehand (not timed)."""
    import lindiff

    target = lindiff.GaussianTarget.power_law(d, 1.0, rotation="random", rng=seed)
    stats = target.empirical_stats(n, rng=seed + 1)
    stats.eigh()
    stats.eigvecs  # noqa: B018  (completes the basis after the dual route; cached)
    return target, stats


def schedule_arrays(sch: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """beta, alpha_bar, alpha_bar_prev and 1 - alpha_bar with 1 - alpha_bar_1 = beta_1 exactly
    (the convention of theory.md §4 that closes null directions exactly at t = 1)."""
    beta = np.array(sch.betas, dtype=float)
    ab = np.array(sch.alphas_bar, dtype=float)
    abp = np.array(sch.alphas_bar_prev, dtype=float)
    om = np.array(sch.one_minus_alphas_bar, dtype=float)
    om[0] = beta[0]
    return beta, ab, abp, om


# ============================================================================ 1. dense reference
def numpy_dense_chain(U: np.ndarray, lam: np.ndarray, mu_hat: np.ndarray, sch: Any,
                      ridge: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The DDPM chain (sigma_t^2 = beta_t, noise at the last step) run on d x d matrices:
    m_{t-1} = A_t m_t + c_t, S_{t-1} = A_t S_t A_t^T + sigma_t^2 I from m_T = 0, S_T = I.

    W_t = sqrt(1-ab)(ab Sigma_hat + (1-ab+gamma) I)^-1 is built densely as U diag(w_t) U^T
    (one GEMM; cheaper than an inverse), A_t = (I - kappa_t W_t)/sqrt(1-beta_t),
    b_t = -sqrt(ab) W_t mu_hat, c_t = -kappa_t b_t / sqrt(1-beta_t). 6 d^3 FLOPs per step.
    """
    beta, ab, _, om = schedule_arrays(sch)
    d = lam.shape[0]
    m = np.zeros(d)
    S = np.eye(d)
    eye = np.eye(d)
    for k in range(beta.shape[0] - 1, -1, -1):
        w = math.sqrt(om[k]) / (ab[k] * lam + om[k] + ridge)
        W = (U * w) @ U.T
        kappa = beta[k] / math.sqrt(om[k])
        s = 1.0 / math.sqrt(1.0 - beta[k])
        A = eye - kappa * W
        A *= s
        b = -math.sqrt(ab[k]) * (W @ mu_hat)
        m = A @ m - (kappa * s) * b
        S = A @ S @ A.T
        S.flat[:: d + 1] += beta[k]
    return m, S


def numpy_dense_kl(m: np.ndarray, S: np.ndarray, mu: np.ndarray, Sigma: np.ndarray) -> tuple[float, float]:
    """Forward KL(N(mu, Sigma) || N(m, S)) and reverse KL(N(m, S) || N(mu, Sigma)), dense."""
    d = m.shape[0]
    _, ld_s = np.linalg.slogdet(S)
    _, ld_t = np.linalg.slogdet(Sigma)
    delta = m - mu
    X = np.linalg.solve(S, np.column_stack([Sigma, delta]))
    fwd = 0.5 * (np.trace(X[:, :d]) - d + delta @ X[:, d] + ld_s - ld_t)
    Y = np.linalg.solve(Sigma, np.column_stack([S, delta]))
    rev = 0.5 * (np.trace(Y[:, :d]) - d + delta @ Y[:, d] + ld_t - ld_s)
    return float(fwd), float(rev)


def bench_sampling(cfg: argparse.Namespace, res: dict[str, Any], peak: float) -> None:
    import lindiff

    d, T, dd, Td = cfg.s_d, cfg.T, cfg.s_dense_d, cfg.s_dense_T
    w = cfg.workers
    print(f"\n## 1. Generated law + KL, given the statistics: d = {d}, N = {d // 2}, T = {T}")
    print("   lindiff: m = LinearDiffusion(stats, Schedule.paper(T)); m.kl(target)  (both directions)")
    print(f"   numpy:   dense chain on d x d matrices, T steps, then slogdet/solve KL; timed at "
          f"d = {dd}, T = {Td},")
    print(f"            extrapolated: recursion x (T/{Td}) x ({d}/{dd})^3 + KL x ({d}/{dd})^3")
    sch = lindiff.Schedule.paper(T)
    target, stats = make_problem(d, d // 2, 11)
    # the same job at the dense size, for validation and a measured same-size ratio
    sch_s = lindiff.Schedule.paper(Td)
    target_s, stats_s = make_problem(dd, dd // 2, 21)
    U_s, lam_s, mu_hat_s = stats_s.eigvecs, stats_s.eigvals, stats_s.mean
    Sigma_s, mu_s = target_s.cov, target_s.mean

    # correctness: dense chain vs lindiff on the small job; lindiff's law vs its KL at full size
    m_s, S_s = numpy_dense_chain(U_s, lam_s, mu_hat_s, sch_s)
    kd = numpy_dense_kl(m_s, S_s, mu_s, Sigma_s)
    kl_s = lindiff.LinearDiffusion(stats_s, sch_s, workers=w).kl(target_s)
    err = max(rel_err(kd[0], kl_s["forward"]), rel_err(kd[1], kl_s["reverse"]))
    assert err < 1e-6, f"dense KL {kd} vs lindiff {kl_s}: rel err {err:.2g}"
    gen = lindiff.LinearDiffusion(stats_s, sch_s, workers=w).sampling_distribution()
    err_cov = float(np.abs(gen.cov - S_s).max() / np.abs(S_s).max())
    assert err_cov < 1e-8, f"dense S vs lindiff sampling_distribution: {err_cov:.2g}"
    print(f"   check at d = {dd}, T = {Td}: KL fwd {kd[0]:.6g} / rev {kd[1]:.6g}, "
          f"lindiff vs dense rel err {err:.1e}; covariance max rel err {err_cov:.1e}")

    m_rep = lindiff.LinearDiffusion(stats, sch, workers=w)
    kl_full = m_rep.kl(target)  # the repeat contender reuses this projection

    # A first call needs statistics that have not projected this target yet: lindiff caches the
    # projection on the EmpiricalStats (shared by every model and grid built on them), and
    # stats.copy() keeps the eigendecomposition but not that cache.
    def fresh() -> Any:
        return lindiff.LinearDiffusion(stats.copy(), sch, workers=w)

    def fresh_small() -> Any:
        return lindiff.LinearDiffusion(stats_s.copy(), sch_s, workers=w)

    cs = [
        ("lindiff kl, first call", lambda m: m.kl(target), fresh),
        ("lindiff kl, repeat call", lambda _: m_rep.kl(target), None),
        ("lindiff sampling_distribution", lambda _: m_rep.sampling_distribution(), None),
        (f"lindiff kl first, d={dd} T={Td}", lambda m: m.kl(target_s), fresh_small),
        (f"numpy dense chain, d={dd} T={Td}",
         lambda _: numpy_dense_chain(U_s, lam_s, mu_hat_s, sch_s), None),
        (f"numpy dense KL, d={dd}", lambda _: numpy_dense_kl(m_s, S_s, mu_s, Sigma_s), None),
    ]
    t, cpu = run_timed(cs, cfg.repeat_small)
    if cfg.verbose:
        print_timings(t, cpu)
    med = {k: v.median for k, v in t.items()}
    scale = (d / dd) ** 3
    t_rec = med[f"numpy dense chain, d={dd} T={Td}"]
    t_kl = med[f"numpy dense KL, d={dd}"]
    est = t_rec * (T / Td) * scale + t_kl * scale
    gf = 6.0 * dd**3 * Td / t_rec / 1e9
    first, rep, sd = med["lindiff kl, first call"], med["lindiff kl, repeat call"], \
        med["lindiff sampling_distribution"]
    small = med[f"lindiff kl first, d={dd} T={Td}"]
    rows = [
        [f"lindiff kl, first call (projects target)", f"{d}", f"{T}", fmt_time(first),
         fmt_time(cpu["lindiff kl, first call"]), fmt_time(est) + " (est.)", fmt_ratio(est / first)],
        ["lindiff kl, repeat call", f"{d}", f"{T}", fmt_time(rep),
         fmt_time(cpu["lindiff kl, repeat call"]), fmt_time(est) + " (est.)", fmt_ratio(est / rep)],
        ["lindiff sampling_distribution()", f"{d}", f"{T}", fmt_time(sd),
         fmt_time(cpu["lindiff sampling_distribution"]), "-", "-"],
        ["lindiff kl, first call, same job as dense", f"{dd}", f"{Td}", fmt_time(small),
         fmt_time(cpu[f"lindiff kl first, d={dd} T={Td}"]), fmt_time(t_rec + t_kl),
         fmt_ratio((t_rec + t_kl) / small)],
    ]
    print(table(["lindiff", "d", "T", "lindiff", "cpu", "numpy dense", "ratio"], rows))
    print(f"   dense chain at d = {dd}: {fmt_time(t_rec / Td)} per step = {gf:.1f} GFLOP/s "
          f"({100 * gf / peak:.0f}% of the DGEMM peak); dense KL {fmt_time(t_kl)}")
    print(f"   target >= 100x: first call {'met' if est / first >= 100 else 'MISSED'}, "
          f"repeat call {'met' if est / rep >= 100 else 'MISSED'};  KL at d = {d}: "
          f"fwd {kl_full['forward']:.6g}, rev {kl_full['reverse']:.6g}")
    res["sampling"] = {
        "d": d, "T": T, "dense_d": dd, "dense_T": Td, "samples": {k: v.samples for k, v in t.items()},
        "number": {k: v.number for k, v in t.items()}, "cpu": cpu, "median": med,
        "dense_estimate_s": est, "dense_gflops": gf, "ratio_first": est / first,
        "ratio_repeat": est / rep, "ratio_same_size": (t_rec + t_kl) / small,
    }


# ============================================================================ 2./3. NumPy grid
class NumpyGrid:
    """evaluate_grid's job in vectorised NumPy on the same eigen form (DDPM, sigma_t^2 = beta_t,
    noise at the last step, gradient flow from W0 = 0 with eta = 1, scalar ridges).

    State arrays have shape (ridges in block, times, d) and are updated in place over t. Per t,
    everything that does not depend on tau (c = ab lam + gamma + 1 - ab, q = 1/c, the optimum parts
    of a_t and of the losses) is computed once per ridge on (block, 1, d) and broadcast over the
    times; only e = exp(-2 eta tau c) and what it touches live on (block, times, d). With
    e = 0 (the optimum, tau = inf) the exp and the times axis disappear. Blocks of ridges keep the
    working set of ~6 arrays in L2; ``threads`` > 1 runs blocks on a thread pool (NumPy releases
    the GIL inside ufuncs).
    """

    EXP_FLOOR = -700.0
    """exp() arguments are clamped here first: glibc's exp takes 2-3x longer on arguments that
    underflow (about 60% of them in the grid of section 2), and exp(-700) = 1e-304 instead of 0
    changes no result (checked against lindiff)."""

    def __init__(self, sch: Any, block_elems: int = 1 << 14, threads: int = 1) -> None:
        self.beta, self.ab, _, self.om = schedule_arrays(sch)
        self.block_elems = block_elems
        self.threads = threads
        self.pool = ThreadPoolExecutor(threads) if threads > 1 else None
        self._proj: dict[tuple[int, int, int], tuple[Any, dict[str, Any]]] = {}

    def projection_cached(self, U: np.ndarray, mu_hat: np.ndarray, target: Any) -> dict[str, Any]:
        """Like lindiff (which caches it on the EmpiricalStats), project a target once per basis."""
        key = (id(U), id(mu_hat), id(target))
        hit = self._proj.get(key)
        if hit is None or hit[0] is not target:
            hit = (target, self.projection(U, mu_hat, target))
            self._proj[key] = hit
        return hit[1]

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()

    @staticmethod
    def projection(U: np.ndarray, mu_hat: np.ndarray, target: Any) -> dict[str, Any]:
        """The target in U's basis (one d x d GEMM), as theory.md §5."""
        V, lt, mu = target.eigvecs, target.eigvals, target.mean
        R = V.T @ U
        R2 = R * R
        mu_hat_c = U.T @ mu_hat
        mu_c = U.T @ mu
        P = R2.T @ lt
        off = mu_c - mu_hat_c
        return {"R": R, "lam": lt, "P": P, "Pinv": R2.T @ (1.0 / lt), "mu_c": mu_c,
                "mu_hat_c": mu_hat_c, "logdet": float(np.log(lt).sum()), "test_energy": P + off * off}

    @staticmethod
    def kl(pr: dict[str, Any], var: np.ndarray, gain: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d = var.shape[1]
        delta = gain * pr["mu_hat_c"] - pr["mu_c"]
        logdet_gen = np.log(var).sum(axis=1)
        fwd = 0.5 * (((pr["P"] + delta * delta) / var).sum(axis=1) - d + logdet_gen - pr["logdet"])
        y = delta @ pr["R"].T
        rev = 0.5 * (var @ pr["Pinv"] - d + (y * y / pr["lam"]).sum(axis=1) + pr["logdet"] - logdet_gen)
        return fwd, rev

    def _block(self, lam: np.ndarray, energies: np.ndarray, gammas: np.ndarray, taus: np.ndarray,
               out_var: np.ndarray, out_gain: np.ndarray, out_loss: np.ndarray) -> None:
        beta, ab, om = self.beta, self.ab, self.om
        B, J, d = gammas.shape[0], taus.shape[0], lam.shape[0]
        g = gammas[:, None, None]
        opt = ~np.isfinite(taus)
        all_opt = bool(opt.all())
        m2tau = (-2.0 * np.where(opt, 0.0, taus))[None, :, None]
        shape = (B, 1 if all_opt else J, d)
        V = np.ones(shape)
        G = np.zeros(shape)
        L = np.zeros((B, shape[1], 2))
        et = energies.T  # (d, 2)
        if not all_opt:
            e = np.empty(shape)
            eq = np.empty(shape)
            a = np.empty(shape)
            tmp = np.empty(shape)
        for k in range(beta.shape[0] - 1, -1, -1):
            bk, omk, abk = beta[k], om[k], ab[k]
            inv = 1.0 / math.sqrt(1.0 - bk)
            gco = bk * math.sqrt(abk) * inv  # gain += gco * h, h = (1 - e)/c
            signal = abk * lam + g  # (B, 1, d)
            c = signal + omk
            q = 1.0 / c
            a0 = (signal + (omk - bk)) * q  # 1 - beta h at e = 0, formed exactly
            a0 *= inv
            sq = signal * q  # 1 - (1-ab) h at e = 0
            if all_opt:
                G *= a0
                G += gco * q
                V *= a0 * a0
                V += bk
                L += (abk * omk) * ((q * q) @ et)
                L += (sq * sq).sum(axis=-1)[..., None]
                continue
            np.multiply(c, m2tau, out=e)  # (B, J, d)
            np.maximum(e, self.EXP_FLOOR, out=e)
            np.exp(e, out=e)
            if opt.any():
                e[:, opt, :] = 0.0
            np.multiply(e, q, out=eq)  # e/c
            np.multiply(eq, bk * inv, out=a)  # a = a0 + beta e/c / sqrt(1 - beta)
            a += a0
            G *= a
            np.subtract(q, eq, out=tmp)  # h
            tmp *= gco
            G += tmp
            V *= a
            V *= a
            V += bk
            np.subtract(q, eq, out=tmp)  # h again: w^2 = (1-ab) h^2
            tmp *= tmp
            L += (abk * omk) * (tmp @ et)
            np.multiply(eq, omk, out=tmp)  # 1 - (1-ab) h = signal q + (1-ab) e q
            tmp += sq
            tmp *= tmp
            L += tmp.sum(axis=-1)[..., None]
        out_var[...] = V
        out_gain[...] = G
        out_loss[...] = L

    def __call__(self, U: np.ndarray, lam: np.ndarray, mu_hat: np.ndarray, target: Any,
                 ridges: np.ndarray, taus: np.ndarray) -> dict[str, np.ndarray]:
        pr = self.projection_cached(U, mu_hat, target)
        energies = np.stack([lam, pr["test_energy"]])
        R, J, d = ridges.shape[0], taus.shape[0], lam.shape[0]
        var = np.empty((R, J, d))
        gain = np.empty((R, J, d))
        loss = np.empty((R, J, 2))
        rb = max(1, self.block_elems // (J * d))
        jobs = [(r0, min(r0 + rb, R)) for r0 in range(0, R, rb)]

        def run(job: tuple[int, int]) -> None:
            a, b = job
            self._block(lam, energies, ridges[a:b], taus, var[a:b], gain[a:b], loss[a:b])

        if self.pool is None:
            for j in jobs:
                run(j)
        else:
            list(self.pool.map(run, jobs))
        fwd, rev = self.kl(pr, var.reshape(R * J, d), gain.reshape(R * J, d))
        T = self.beta.shape[0]
        return {"kl_forward": fwd.reshape(R, J), "kl_reverse": rev.reshape(R, J),
                "train_loss": loss[..., 0] / T, "test_loss": loss[..., 1] / T}


def check_grid(a: Any, b: dict[str, np.ndarray], what: str, tol: float = 1e-7) -> float:
    err = 0.0
    for f in ("kl_forward", "kl_reverse", "train_loss", "test_loss"):
        x, y = getattr(a, f), b[f]
        assert x.shape == y.shape, (what, f, x.shape, y.shape)
        e = rel_err(y, x)
        assert e <= tol, f"{what}: {f} differs, rel err {e:.2g}"
        err = max(err, e)
    return err


def grid_setup(cfg: argparse.Namespace) -> dict[str, Any]:
    import lindiff

    d, T = cfg.g_d, cfg.T
    target, stats = make_problem(d, d // 2, 31)
    sch = lindiff.Schedule.paper(T)
    return {
        "d": d, "T": T, "target": target, "stats": stats, "sch": sch,
        "U": stats.eigvecs, "lam": stats.eigvals, "mu_hat": stats.mean,
        # the ranges optimal_ridge / optimal_stopping scan; tau spans the regime where the exp
        # matters (exp(-2 tau c) from ~1 down to underflow)
        "ridges": np.geomspace(1e-6, 1e2, cfg.g_ridges),
        "taus": np.geomspace(1.0, 1e6, cfg.g_times),
        "ridges_opt": np.geomspace(1e-6, 1e2, cfg.g_ridges * cfg.g_times),
    }


def bench_grid(cfg: argparse.Namespace, res: dict[str, Any], P: dict[str, Any]) -> None:
    import lindiff

    d, T, R, J = P["d"], P["T"], P["ridges"].size, P["taus"].size
    S = R * J
    nw = cfg.workers_all
    print(f"\n## 2. Grid of {R} ridges x {J} training times (gradient flow, eta = 1) at d = {d}, "
          f"N = {d // 2}, T = {T}: {S} settings")
    print("   lindiff: evaluate_grid(stats, target, schedule, ridge=..., train_time=..., workers=w)")
    print("   numpy:   the same eigen-form job vectorised over (ridges, times, modes), per t, in "
          "place, in blocks of ridges (NumpyGrid)")
    stats, target, sch = P["stats"], P["target"], P["sch"]
    ridges, taus = P["ridges"], P["taus"]
    npg1 = NumpyGrid(sch, cfg.block_elems, 1)
    npg2 = NumpyGrid(sch, cfg.block_elems, nw)
    args = (P["U"], P["lam"], P["mu_hat"], target, ridges, taus)

    def lind(w: int) -> Callable[[Any], Any]:
        return lambda _: lindiff.evaluate_grid(stats, target, sch, ridge=ridges, train_time=taus,
                                               workers=w)

    ref = lind(nw)(None)
    e1 = check_grid(ref, npg1(*args), "numpy 1 thread")
    e2 = check_grid(ref, npg2(*args), f"numpy pool of {nw} threads")
    one = lind(1)(None)
    e3 = check_grid(ref, {f: getattr(one, f) for f in ("kl_forward", "kl_reverse", "train_loss",
                                                       "test_loss")}, "lindiff workers=1", 0.0)
    print(f"   check: numpy vs lindiff max rel err {max(e1, e2):.1e}; workers=1 vs {nw} "
          f"bit-identical ({e3 == 0.0}); KL fwd in [{ref.kl_forward.min():.4g}, "
          f"{ref.kl_forward.max():.4g}]")
    # (distinct names even with --threads 1, where both pairs do the same thing)
    names = {"l2": f"lindiff workers={nw} (all)", "l1": "lindiff workers=1", "n1": "numpy 1 thread",
             "n2": f"numpy pool of {nw} threads"}
    cs = [(names["l2"], lind(nw), None), (names["l1"], lind(1), None),
          (names["n1"], lambda _: npg1(*args), None), (names["n2"], lambda _: npg2(*args), None)]
    t, cpu = run_timed(cs, cfg.repeat_large)
    npg1.close()
    npg2.close()
    if cfg.verbose:
        print_timings(t, cpu)
    med = {k: v.median for k, v in t.items()}
    unit = S * T * d
    rows = []
    for key in ("l2", "l1", "n1", "n2"):
        n = names[key]
        rows.append([n, fmt_time(med[n]), spread_str(t[n]), fmt_time(cpu[n]),
                     f"{med[n] / unit * 1e9:.2f}", f"{cpu[n] / unit * 1e9:.2f}",
                     fmt_ratio(med[names['n1']] / med[n]), fmt_ratio(med[names['n2']] / med[n])])
    print(table(["contender", "median", "min..max", "cpu", "ns/(s*t*mode)", "cpu ns/(s*t*mode)",
                 "numpy1/this", f"numpy pool{nw}/this"], rows))
    best_np = min(med[names["n1"]], med[names["n2"]])
    print(f"   ratio best numpy / lindiff workers={nw}: {fmt_ratio(best_np / med[names['l2']])};  "
          f"workers=1 -> {nw}: {med[names['l1']] / med[names['l2']]:.2f}x faster;  target < 1 s: "
          f"{'met' if med[names['l2']] < 1.0 else 'MISSED'} ({fmt_time(med[names['l2']])})")
    res["grid"] = {"d": d, "T": T, "R": R, "J": J, "samples": {k: v.samples for k, v in t.items()},
                   "number": {k: v.number for k, v in t.items()}, "cpu": cpu, "median": med,
                   "ns_per_unit": {k: v / unit * 1e9 for k, v in med.items()},
                   "ratio_best_numpy": best_np / med[names["l2"]]}


def bench_optimum(cfg: argparse.Namespace, res: dict[str, Any], P: dict[str, Any]) -> None:
    import lindiff
    from lindiff import _core

    d, T, R, J = P["d"], P["T"], P["ridges"].size, P["taus"].size
    S = R * J
    nw = cfg.workers_all
    ro = P["ridges_opt"]
    print(f"\n## 3. The cost of exp(): {ro.size} ridges at the optimum (train_time=None, no exp) "
          f"vs the {R} x {J} flow grid, d = {d}, T = {T}, workers = {nw}")
    print("   kernel rows: lindiff._core.evaluate_grid alone (no target projection, no KL "
          "reduction), with E = 2 loss energies (as evaluate_grid) or E = 0 (KL only)")
    stats, target, sch = P["stats"], P["target"], P["sch"]
    ridges, taus = P["ridges"], P["taus"]
    npo1 = NumpyGrid(sch, cfg.block_elems, 1)
    npo2 = NumpyGrid(sch, cfg.block_elems, nw)
    inf = np.array([np.inf])
    args_o = (P["U"], P["lam"], P["mu_hat"], target, ro, inf)

    # the raw kernel, with the arguments evaluate_grid passes
    sa = schedule_arrays(sch)
    lam = np.ascontiguousarray(P["lam"])
    pr = NumpyGrid.projection(P["U"], P["mu_hat"], target)
    en2 = np.ascontiguousarray(np.stack([lam, pr["test_energy"]]))
    en0 = np.empty((0, d))
    s2 = np.array(sch.betas, dtype=float)
    Rg = np.ascontiguousarray(np.repeat(ridges[:, None], T, axis=1))
    Ro = np.ascontiguousarray(np.repeat(ro[:, None], T, axis=1))
    flow = [(1, float(x), 1.0, 0.0) for x in taus]
    optm = [(0, 0.0, 1.0, 0.0)]

    def kern(Rm: np.ndarray, trs: list[Any], en: np.ndarray) -> Callable[[Any], Any]:
        return lambda _: _core.evaluate_grid(*sa, lam, Rm, trs, 0, s2, en, nw)

    ref_o = lindiff.evaluate_grid(stats, target, sch, ridge=ro, workers=nw)
    e = check_grid(ref_o, npo1(*args_o), "numpy optimum")
    check_grid(ref_o, npo2(*args_o), "numpy optimum, threads")
    v_k, g_k, _ = kern(Rg, flow, en0)(None)
    ref_f = lindiff.evaluate_grid(stats, target, sch, ridge=ridges, train_time=taus, workers=nw)
    kf, _ = NumpyGrid.kl(pr, v_k, g_k)
    assert rel_err(kf.reshape(R, J), ref_f.kl_forward) < 1e-12
    print(f"   check: numpy vs lindiff at the optimum max rel err {e:.1e}")

    names = {
        "flow": f"evaluate_grid flow {R}x{J}",
        "opt": f"evaluate_grid optimum {ro.size}x1",
        "n1": f"numpy optimum {ro.size}x1, 1 thread",
        "n2": f"numpy optimum {ro.size}x1, pool of {nw}",
        "kf2": "kernel flow, E=2",
        "kf0": "kernel flow, E=0",
        "ko2": "kernel optimum, E=2",
        "ko0": "kernel optimum, E=0",
    }
    cs = [
        (names["flow"], lambda _: lindiff.evaluate_grid(stats, target, sch, ridge=ridges,
                                                        train_time=taus, workers=nw), None),
        (names["opt"], lambda _: lindiff.evaluate_grid(stats, target, sch, ridge=ro, workers=nw), None),
        (names["n1"], lambda _: npo1(*args_o), None),
        (names["n2"], lambda _: npo2(*args_o), None),
        (names["kf2"], kern(Rg, flow, en2), None),
        (names["kf0"], kern(Rg, flow, en0), None),
        (names["ko2"], kern(Ro, optm, en2), None),
        (names["ko0"], kern(Ro, optm, en0), None),
    ]
    t, cpu = run_timed(cs, cfg.repeat_large)
    npo1.close()
    npo2.close()
    if cfg.verbose:
        print_timings(t, cpu)
    med = {k: v.median for k, v in t.items()}
    unit = S * T * d
    rows = []
    for key in names:
        n = names[key]
        rows.append([n, fmt_time(med[n]), spread_str(t[n]), fmt_time(cpu[n]),
                     f"{med[n] / unit * 1e9:.2f}", f"{cpu[n] / unit * 1e9:.2f}",
                     f"{med[n] / med[names['flow']]:.2f}"])
    print(table(["contender", "median", "min..max", "cpu", "ns/(s*t*mode)", "cpu ns/(s*t*mode)",
                 "/ flow grid"], rows))
    share = 1.0 - med[names["opt"]] / med[names["flow"]]
    share_cpu = 1.0 - cpu[names["opt"]] / cpu[names["flow"]]
    k_exp = 1.0 - med[names["ko2"]] / med[names["kf2"]]
    k_loss = 1.0 - med[names["kf0"]] / med[names["kf2"]]
    k_exp_cpu = 1.0 - cpu[names["ko2"]] / cpu[names["kf2"]]
    k_loss_cpu = 1.0 - cpu[names["kf0"]] / cpu[names["kf2"]]
    py = 1.0 - med[names["kf2"]] / med[names["flow"]]
    print(f"   exp() share of the flow grid: {100 * share:.0f}% wall ({100 * share_cpu:.0f}% cpu); "
          f"in the kernel: exp {100 * k_exp:.0f}% ({100 * k_exp_cpu:.0f}% cpu), "
          f"loss reductions {100 * k_loss:.0f}% ({100 * k_loss_cpu:.0f}% cpu); "
          f"projection + KL in Python {100 * py:.0f}%")
    print(f"   optimum grid: numpy 1 thread / lindiff = "
          f"{fmt_ratio(med[names['n1']] / med[names['opt']])}, numpy pool of {nw} / lindiff = "
          f"{fmt_ratio(med[names['n2']] / med[names['opt']])}")
    res["optimum"] = {"samples": {k: v.samples for k, v in t.items()},
                      "number": {k: v.number for k, v in t.items()}, "cpu": cpu, "median": med,
                      "exp_share": share, "exp_share_kernel": k_exp, "loss_share_kernel": k_loss}


# ============================================================================ main
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="small sizes (d = 500/200, T = 200, a 10 x 5 grid), for a smoke run")
    ap.add_argument("--repeat", type=int, default=None,
                    help="repeats per contender (default 5 for section 1, 3 for sections 2-3)")
    ap.add_argument("--only", default=",".join(SECTIONS), help=f"sections, from {SECTIONS}")
    ap.add_argument("--threads", type=int, default=None,
                    help="BLAS threads (threadpoolctl limit) and lindiff workers; default all cores")
    ap.add_argument("--block-elems", type=int, default=1 << 14,
                    help="NumPy grid: elements per (ridges x times x d) block (default 16384)")
    ap.add_argument("--json", default=None, help="write all samples and derived numbers here")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every contender's timings")
    ap.add_argument("--wait-idle", type=float, default=None, metavar="LOAD",
                    help="first wait (up to 10 min) for the 1-minute load average to fall below LOAD")
    cfg = ap.parse_args(argv)

    import lindiff

    sections = [s for s in cfg.only.split(",") if s]
    bad = set(sections) - set(SECTIONS)
    if bad:
        ap.error(f"unknown sections {sorted(bad)}")
    cfg.workers_all = cfg.threads or n_cpus()
    cfg.workers = cfg.workers_all
    if cfg.quick:
        cfg.T, cfg.s_d, cfg.s_dense_d, cfg.s_dense_T = 200, 500, 125, 20
        cfg.g_d, cfg.g_ridges, cfg.g_times = 200, 10, 5
    else:
        cfg.T, cfg.s_d, cfg.s_dense_d, cfg.s_dense_T = 1000, 2000, 500, 100
        cfg.g_d, cfg.g_ridges, cfg.g_times = 1000, 50, 20
    cfg.repeat_small = cfg.repeat or 5
    cfg.repeat_large = cfg.repeat or 3

    limiter = None
    if cfg.threads:
        from threadpoolctl import threadpool_limits

        limiter = threadpool_limits(limits=cfg.threads)

    if cfg.wait_idle is not None:
        wait_for_idle(cfg.wait_idle, 600.0)
    flags = cpu_flags()
    simd = "avx512f" if "avx512f" in flags else "avx2" if "avx2" in flags else "no avx2"
    print("# lindiff model benchmark (closed-form generated law, KL, grids)")
    print(f"machine   : {cpu_model()}, {n_cpus()} CPUs, {simd}; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"versions  : {versions()}  lindiff {lindiff.__version__}")
    print(f"lindiff   : {lindiff.show_config()}")
    print("threadpools (threadpoolctl):")
    for p in threadpool_summary():
        print(f"  {p}")
    t0 = time.perf_counter()
    peak = measured_peak(1536 if cfg.quick else 2048)
    print(f"peak      : NumPy DGEMM {peak:.1f} GFLOP/s")
    print(f"repeats   : {cfg.repeat_small} (section 1), {cfg.repeat_large} (sections 2-3), "
          "interleaved; medians; ratio = numpy time / lindiff time (>1: lindiff faster)")
    meta = {"argv": sys.argv[1:], "lindiff_config": lindiff.show_config(), "versions": versions(),
            "cpu": cpu_model(), "ncpu": n_cpus(), "threadpools": threadpool_summary(),
            "peak_gflops": peak, "loadavg_start": os.getloadavg()}
    res: dict[str, Any] = {}
    if "sampling" in sections:
        bench_sampling(cfg, res, peak)
    if "grid" in sections or "optimum" in sections:
        P = grid_setup(cfg)
        if "grid" in sections:
            bench_grid(cfg, res, P)
        if "optimum" in sections:
            bench_optimum(cfg, res, P)
    peak_end = measured_peak(1536 if cfg.quick else 2048)
    meta["peak_gflops_end"] = peak_end
    meta["loadavg_end"] = os.getloadavg()
    print(f"\nNumPy DGEMM at the end: {peak_end:.1f} GFLOP/s (start {peak:.1f}: drift of the host); "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"total {time.perf_counter() - t0:.0f} s")
    if cfg.json:
        dump_json(cfg.json, {"meta": meta, **res})
    if limiter is not None:
        limiter.restore_original_limits()


if __name__ == "__main__":
    main()
