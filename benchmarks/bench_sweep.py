#!/usr/bin/env python
"""The issue's KL-vs-N sweep: lindiff.sweep against a straightforward NumPy script, and Dask.

The sweep: d = 500, 30 log-spaced N from d/4 to 1000·d, k ∈ {0, 1, 2}, 5 seeds, 20 ridge values
(γ = 0 and 19 log-spaced values from 1e-5 to 1), the paper's schedule (T = 1000), DDPM with
σ² = β, converged training: 9000 configurations, each with forward/reverse KL, KL at N = ∞, the
t-averaged train/test losses and the theory columns.

Contenders
----------
lindiff   ``lindiff.sweep(grid, results=DIR)`` with the embedded default (threads over tasks, all
          cores), writing its Parquet store as it goes.
numpy     What a good engineer writes without lindiff: for each (k, seed, N) draw the N points
          (chunks of 20 000 rows), accumulate the mean and XᵀX, ``numpy.linalg.eigh``, then the
          per-mode recursion s_{t−1} = a_t² s_t + σ_t² (and the mean and the losses) vectorised
          over modes (the issue's script: one ridge at a time) or over modes *and* ridges (the faster
          version; both are reported), T Python-level steps; KL in the eigenbasis. It is checked against
          lindiff on the same statistics first. It runs on a subset (``--numpy-subset``, default one
          (k, seed) pair with all 30 N: 1/15 of the work) and is extrapolated linearly.
dask      The same lindiff sweep on a 2-worker ``LocalCluster`` (processes, 1 thread each), into a
          fresh store, interleaved with the local runs; wall and CPU (driver + workers) overheads
          against the local run are reported (cluster start-up apart). By default the cluster gets
          slower housekeeping ticks (QUIET_DASK; ``--dask-default-config`` keeps Dask's defaults).

Run: ``python benchmarks/bench_sweep.py`` (about 8 minutes on 2 cores); ``--quick`` shrinks d.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import shutil
import sys
import tempfile
import time

import numpy as np

import lindiff


QUIET_DASK = {
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "2s",
    "distributed.worker.memory.monitor-interval": "1s",
    "distributed.worker.profile.enabled": False,
}


def issue_grid(d: int, n_ratio: int = 30, seeds: int = 5) -> dict:
    return {
        "d": [d],
        "N": sorted({int(round(x)) for x in np.geomspace(d / 4, 1000 * d, n_ratio)}),
        "k": [0.0, 1.0, 2.0],
        "ridge": [0.0] + [float(g) for g in np.geomspace(1e-5, 1.0, 19)],
        "train_time": [None],
        "T": [1000],
        "seeds": seeds,
    }


# ---------------------------------------------------------------------- the NumPy script
def numpy_measures(mean: np.ndarray, cov: np.ndarray, lam: np.ndarray, ridges: np.ndarray,
                   sched: lindiff.Schedule) -> dict[str, np.ndarray]:
    """KL (both), train and test loss (t-averaged) for each ridge, from (μ̂, Σ̂); axis-aligned
    zero-mean target with variances ``lam``."""
    d = lam.shape[0]
    lam_hat, U = np.linalg.eigh(cov)
    lam_hat = np.clip(lam_hat, 0.0, None)
    U2 = U * U
    P = U2.T @ lam  # u_iᵀ Σ u_i
    Pinv = U2.T @ (1.0 / lam)
    mu_hat_c = U.T @ mean
    off2 = mu_hat_c**2  # target mean 0
    betas = np.asarray(sched.betas)
    ab = np.asarray(sched.alphas_bar)
    om = np.asarray(sched.one_minus_alphas_bar).copy()
    om[0] = betas[0]
    R = ridges[:, None]
    s = np.ones((ridges.size, d))
    m = np.zeros((ridges.size, d))
    train = np.zeros(ridges.size)
    test = np.zeros(ridges.size)
    for t in range(sched.T - 1, -1, -1):
        w = math.sqrt(om[t]) / (ab[t] * lam_hat + om[t] + R)
        kappa = betas[t] / math.sqrt(om[t])
        a = (1.0 - kappa * w) / math.sqrt(1.0 - betas[t])
        c = kappa * math.sqrt(ab[t]) * w * mu_hat_c / math.sqrt(1.0 - betas[t])
        s = a * a * s + betas[t]
        m = a * m + c
        base = (1.0 - math.sqrt(om[t]) * w) ** 2
        train += np.sum(base + ab[t] * w * w * lam_hat, axis=1)
        test += np.sum(base + ab[t] * w * w * (P + off2), axis=1)
    delta = m  # μ_gen − μ in U coordinates (μ = 0)
    logdet_t = np.sum(np.log(lam))
    with np.errstate(divide="ignore"):
        logdet_g = np.sum(np.log(s), axis=1)
    fwd = 0.5 * (np.sum((P + delta**2) / s, axis=1) - d + logdet_g - logdet_t)
    y = delta @ U.T
    rev = 0.5 * (s @ Pinv - d + np.sum(y * y / lam, axis=1) + logdet_t - logdet_g)
    return {"kl_forward": fwd, "kl_reverse": rev, "train_loss": train / sched.T, "test_loss": test / sched.T}


def numpy_sweep(grid: dict, pairs: list[tuple[float, int]], chunk: int = 20_000,
                over_ridges: bool = False) -> list[dict]:
    d = grid["d"][0]
    sched = lindiff.Schedule.paper(grid["T"][0])
    ridges = np.asarray(grid["ridge"], float)
    out = []
    for k, seed in pairs:
        lam = np.arange(1, d + 1, dtype=float) ** (-k)
        lam *= d / lam.sum()
        sd = np.sqrt(lam)
        exact = numpy_measures(np.zeros(d), np.diag(lam), lam, ridges, sched)  # N = ∞
        for N in grid["N"]:
            rng = np.random.default_rng([seed, N, int(10 * k)])
            S = np.zeros((d, d))
            tot = np.zeros(d)
            for start in range(0, N, chunk):
                X = rng.standard_normal((min(chunk, N - start), d)) * sd
                tot += X.sum(axis=0)
                S += X.T @ X
            mean = tot / N
            cov = S / N - np.outer(mean, mean)
            if over_ridges:  # one recursion over a (ridges × modes) array
                res = numpy_measures(mean, cov, lam, ridges, sched)
            else:  # the issue's script: the recursion vectorised over modes, one ridge at a time
                per = [numpy_measures(mean, cov, lam, ridges[i:i + 1], sched) for i in range(ridges.size)]
                res = {key: np.concatenate([p[key] for p in per]) for key in per[0]}
            res["kl_opt_forward"] = exact["kl_forward"]
            out.append(res)
    return out


def check_numpy_against_lindiff(d: int = 40) -> float:
    """The NumPy script and lindiff on the same (μ̂, Σ̂): max relative difference."""
    rng = np.random.default_rng(0)
    target = lindiff.GaussianTarget.power_law(d, 1.0)
    X = target.sample(3 * d, rng=rng)
    stats = lindiff.EmpiricalStats(X)
    ridges = np.array([0.0, 1e-3, 0.1])
    sched = lindiff.Schedule.paper()
    ref = lindiff.evaluate_grid(stats, target, sched, ridge=ridges)
    got = numpy_measures(stats.mean, stats.cov, target.eigvals, ridges, sched)
    worst = 0.0
    for key in ("kl_forward", "kl_reverse", "train_loss", "test_loss"):
        a, b = got[key], getattr(ref, key)[:, 0]
        worst = max(worst, float(np.max(np.abs(a - b) / np.abs(b))))
    return worst


# ---------------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--d", type=int, default=500)
    ap.add_argument("--quick", action="store_true", help="d = 100 (a smoke run)")
    ap.add_argument("--numpy-subset", type=int, default=1, help="(k, seed) pairs the NumPy script runs")
    ap.add_argument("--skip-dask", action="store_true")
    ap.add_argument("--skip-numpy", action="store_true")
    ap.add_argument("--dask-default-config", action="store_true",
                    help="keep Dask's default housekeeping intervals (see QUIET_DASK)")
    ap.add_argument("--repeats", type=int, default=1, help="interleaved local/Dask runs (medians reported)")
    ap.add_argument("--json", help="write the numbers here")
    args = ap.parse_args()
    d = 100 if args.quick else args.d
    grid = issue_grid(d)
    n_cfg = len(grid["N"]) * len(grid["k"]) * grid["seeds"] * len(grid["ridge"])
    n_tasks = len(grid["N"]) * len(grid["k"]) * grid["seeds"]
    print(f"sweep: d = {d}, {len(grid['N'])} N from {grid['N'][0]} to {grid['N'][-1]}, k ∈ {grid['k']}, "
          f"{grid['seeds']} seeds, {len(grid['ridge'])} ridges, T = 1000: {n_cfg} configurations, "
          f"{n_tasks} tasks; {os.cpu_count()} cores; {lindiff.show_config()['provider']}")
    out: dict = {"d": d, "configurations": n_cfg, "tasks": n_tasks}

    print(f"load average (1 min) at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    err = check_numpy_against_lindiff()
    print(f"NumPy script vs lindiff on the same statistics: max relative difference {err:.1e}")
    out["numpy_check_rel"] = err

    tmp = tempfile.mkdtemp(prefix="lindiff-bench-")
    client = cluster = None
    try:
        # Warm-up, alike for both: imports (SciPy's digamma for the theory columns) in this process
        # and on every Dask worker; the per-process caches (targets, N = ∞ references) start empty.
        lindiff.sweep({**grid, "N": grid["N"][:1], "k": [0.0], "seeds": 1}, progress=False)

        def clear_caches() -> None:
            m = importlib.import_module("lindiff.sweeps")
            for cache in (m._TARGETS, m._EXACT, m._OPT, m._BAYES):
                cache.clear()

        if not args.skip_dask:
            import distributed

            if not args.dask_default_config:
                # Dask's housekeeping ticks (20 ms event-loop watchdog, 100 ms memory monitor, 10 ms
                # profiler) cost ~0.11 CPU-s per second for 2 workers on this host, ~10% of a 2-core
                # machine: slower ticks bring that to ~0.02. Worker processes inherit this config.
                import dask

                dask.config.set(QUIET_DASK)
                print(f"Dask config: {QUIET_DASK}")
            t0 = time.perf_counter()
            cluster = distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                               dashboard_address=None, silence_logs=50)
            client = distributed.Client(cluster)
            client.run(lambda: lindiff.theory.expected_kl_ideal(10, 20.0) and None)  # imports on the workers
            out["dask_startup_s"] = time.perf_counter() - t0

        def worker_cpu() -> float:
            import psutil

            return sum(client.run(lambda: sum(psutil.Process().cpu_times()[:2])).values())

        # Local and Dask runs of the whole sweep, interleaved (local, dask, local, dask, …) so that
        # the load of a shared host hits both alike; wall time and CPU time (driver + workers).
        walls: dict[str, list[float]] = {"local": [], "dask": []}
        cpus: dict[str, list[float]] = {"local": [], "dask": []}
        frames = {}
        for rep in range(args.repeats):
            for mode in (["local"] if args.skip_dask else ["local", "dask"]):
                store = os.path.join(tmp, f"{mode}-{rep}")
                clear_caches()
                if client is not None:
                    client.run(clear_caches)
                c0, w0 = time.process_time(), (worker_cpu() if mode == "dask" else 0.0)
                t0 = time.perf_counter()
                df = lindiff.sweep(grid, results=store, progress=False, client=client if mode == "dask" else None)
                walls[mode].append(time.perf_counter() - t0)
                cpus[mode].append(time.process_time() - c0 + ((worker_cpu() - w0) if mode == "dask" else 0.0))
                assert len(df) == n_cfg
                frames[mode] = df
                print(f"  run {rep + 1} {mode:5s}: {walls[mode][-1]:6.1f} s wall, {cpus[mode][-1]:6.1f} s CPU "
                      f"(load {os.getloadavg()[0]:.1f})")
                shutil.rmtree(store, ignore_errors=True)
        t_local = float(np.median(walls["local"]))
        print(f"lindiff.sweep (embedded default, all cores, writing the store): {t_local:.1f} s "
              f"(target < 180 s)  [{t_local / n_tasks * 1e3:.0f} ms per task]")
        out.update(lindiff_s=t_local, lindiff_runs_s=walls["local"], lindiff_cpu_s=cpus["local"])
        if client is not None:
            t_dask = float(np.median(walls["dask"]))
            same = frames["dask"].equals(frames["local"])
            cpu_over = float(np.median(cpus["dask"])) / float(np.median(cpus["local"])) - 1
            print(f"Dask LocalCluster (2 processes × 1 thread): {t_dask:.1f} s (+{out['dask_startup_s']:.1f} s "
                  f"start-up); wall overhead {100 * (t_dask / t_local - 1):+.1f}%, CPU overhead "
                  f"{100 * cpu_over:+.1f}% (target < 10%); identical numbers: {same}")
            out.update(dask_s=t_dask, dask_runs_s=walls["dask"], dask_cpu_s=cpus["dask"],
                       dask_overhead_wall=t_dask / t_local - 1, dask_overhead_cpu=cpu_over,
                       dask_identical=bool(same))
            client.close()
            cluster.close()
            client = cluster = None

        # The NumPy script on a subset, extrapolated by the share of (k, seed) pairs.
        pairs = [(k, s) for s in range(grid["seeds"]) for k in grid["k"]][: args.numpy_subset]
        share = len(pairs) / (len(grid["k"]) * grid["seeds"])
        for label, over in [] if args.skip_numpy else [("modes", False), ("modes+ridges", True)]:
            t0 = time.perf_counter()
            numpy_sweep(grid, pairs, over_ridges=over)
            t_np_sub = time.perf_counter() - t0
            t_np = t_np_sub / share
            print(f"NumPy script, recursion vectorised over {label}: {t_np_sub:.1f} s for {len(pairs)} (k, seed) "
                  f"pair(s) × {len(grid['N'])} N (load {os.getloadavg()[0]:.1f}); extrapolated: {t_np:.0f} s; "
                  f"ratio NumPy / lindiff {t_np / t_local:.1f}×  (target >= 20×)")
            out[f"numpy_{label}_subset_s"] = t_np_sub
            out[f"numpy_{label}_extrapolated_s"] = t_np
            out[f"ratio_{label}"] = t_np / t_local
    finally:
        if client is not None:
            client.close()
            cluster.close()
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
