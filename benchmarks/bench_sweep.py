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
          (k, seed) pair with all 30 N: 1/15 of the work), cut into one part per repeat that runs
          right after that repeat's lindiff/Dask runs (same load), and is extrapolated linearly.
          The issue's one-ridge-at-a-time script is timed on one N per repeat only: its sampling
          is the same code as the faster script's (timed there), its per-N work does not depend
          on N. The verdict uses the faster script.
dask      The same lindiff sweep on a 2-worker ``LocalCluster`` (processes, 1 thread each), into a
          fresh store, interleaved with the local runs; wall and CPU (driver + workers) overheads
          against the local run are reported. Cluster start-up and the workers' first imports are
          timed apart and not counted: the overhead is that of a sweep on a running cluster. By
          default the cluster gets slower housekeeping ticks (QUIET_DASK; ``--dask-default-config``
          keeps Dask's defaults).

Run: ``python benchmarks/bench_sweep.py`` (3 local/Dask pairs and the NumPy subset: 5.5 minutes at
load average 5 on 2 cores, less when quiet); ``--quick`` (d = 100, under a minute) is a smoke run. The
last lines print each issue target's measured ratio with "met"/"missed" and the load average.
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


_EXACT_NUMPY: dict = {}  # the script's N = ∞ reference, computed once per (d, k, T, ridges, variant)


def numpy_sweep(grid: dict, pairs: list[tuple[float, int]], chunk: int = 20_000,
                over_ridges: bool = False, timings: dict | None = None) -> list[dict]:
    """The script. ``timings`` (optional) accumulates the seconds spent drawing the points and
    forming the covariance ("sample"), in eigh + recursion + KL per N ("measures") and in the N = ∞
    reference ("exact", once per (k, variant))."""
    d = grid["d"][0]
    sched = lindiff.Schedule.paper(grid["T"][0])
    ridges = np.asarray(grid["ridge"], float)
    tm = {"sample": 0.0, "measures": 0.0, "exact": 0.0} if timings is None else timings
    out = []
    for k, seed in pairs:
        lam = np.arange(1, d + 1, dtype=float) ** (-k)
        lam *= d / lam.sum()
        sd = np.sqrt(lam)
        key = (d, k, sched.T, tuple(ridges), over_ridges)  # each variant pays for it once
        t0 = time.perf_counter()
        if key not in _EXACT_NUMPY:  # N = ∞
            _EXACT_NUMPY[key] = numpy_measures(np.zeros(d), np.diag(lam), lam, ridges, sched)
        exact = _EXACT_NUMPY[key]
        tm["exact"] += time.perf_counter() - t0
        for N in grid["N"]:
            t0 = time.perf_counter()
            rng = np.random.default_rng([seed, N, int(10 * k)])
            S = np.zeros((d, d))
            tot = np.zeros(d)
            for start in range(0, N, chunk):
                X = rng.standard_normal((min(chunk, N - start), d)) * sd
                tot += X.sum(axis=0)
                S += X.T @ X
            mean = tot / N
            cov = S / N - np.outer(mean, mean)
            t1 = time.perf_counter()
            if over_ridges:  # one recursion over a (ridges × modes) array
                res = numpy_measures(mean, cov, lam, ridges, sched)
            else:  # the issue's script: the recursion vectorised over modes, one ridge at a time
                per = [numpy_measures(mean, cov, lam, ridges[i:i + 1], sched) for i in range(ridges.size)]
                res = {key: np.concatenate([p[key] for p in per]) for key in per[0]}
            res["kl_opt_forward"] = exact["kl_forward"]
            out.append(res)
            tm["sample"] += t1 - t0
            tm["measures"] += time.perf_counter() - t1
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
def _load() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


def _verdict(ok: bool) -> str:
    return "met" if ok else "missed"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--d", type=int, default=500)
    ap.add_argument("--quick", action="store_true",
                    help="d = 100, one repeat, NumPy on 10 of the 30 N (a smoke run, about 1 minute)")
    ap.add_argument("--numpy-subset", type=int, default=1, help="(k, seed) pairs the NumPy script runs")
    ap.add_argument("--skip-dask", action="store_true")
    ap.add_argument("--skip-numpy", action="store_true")
    ap.add_argument("--dask-default-config", action="store_true",
                    help="keep Dask's default housekeeping intervals (see QUIET_DASK)")
    ap.add_argument("--repeats", type=int, default=3,
                    help="interleaved local/Dask pairs, order alternating (medians reported; default 3)")
    ap.add_argument("--json", help="write the numbers here")
    args = ap.parse_args()
    d = 100 if args.quick else args.d
    repeats = 1 if args.quick else args.repeats
    grid = issue_grid(d)
    n_cfg = len(grid["N"]) * len(grid["k"]) * grid["seeds"] * len(grid["ridge"])
    n_tasks = len(grid["N"]) * len(grid["k"]) * grid["seeds"]
    print(f"sweep: d = {d}, {len(grid['N'])} N from {grid['N'][0]} to {grid['N'][-1]}, k ∈ {grid['k']}, "
          f"{grid['seeds']} seeds, {len(grid['ridge'])} ridges, T = 1000: {n_cfg} configurations, "
          f"{n_tasks} tasks; {os.cpu_count()} cores; {lindiff.show_config()['provider']}")
    out: dict = {"d": d, "configurations": n_cfg, "tasks": n_tasks, "load_start": os.getloadavg()[0]}
    print(f"load average (1 min) at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
          "(the host is shared: compare ratios taken in this run, not absolute times)")
    err = check_numpy_against_lindiff()
    print(f"NumPy script vs lindiff on the same statistics: max relative difference {err:.1e}")
    out["numpy_check_rel"] = err

    tmp = tempfile.mkdtemp(prefix="lindiff-bench-")
    client = cluster = None
    try:
        # Warm-up, alike for both: imports (SciPy's digamma for the theory columns, pyarrow) in this
        # process and on every Dask worker; the per-process caches (targets, N = ∞ references) are
        # emptied before every timed run, so each run computes them as a fresh sweep would.
        lindiff.sweep({**grid, "N": grid["N"][:1], "k": [0.0], "seeds": 1}, progress=False,
                      results=os.path.join(tmp, "warm"))

        def clear_caches() -> None:
            m = importlib.import_module("lindiff.sweeps")
            for cache in (m._TARGETS, m._EXACT, m._OPT, m._BAYES):
                cache.clear()

        if not args.skip_dask:
            import distributed

            if not args.dask_default_config:
                # Dask's housekeeping ticks (20 ms event-loop watchdog, 100 ms memory monitor, 10 ms
                # profiler) cost ~0.11 CPU-s per second for an idle 2-worker cluster on this host
                # (5% of a 2-core machine); these slower ticks bring that to ~0.013. Worker
                # processes inherit this config.
                import dask

                dask.config.set(QUIET_DASK)
                print(f"Dask config: {QUIET_DASK}")
            else:
                print("Dask config: defaults")
            t0 = time.perf_counter()
            cluster = distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                               dashboard_address=":0", silence_logs=50)
            client = distributed.Client(cluster)
            out["dask_startup_s"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            # the same warm-up on the workers: lindiff, SciPy, pyarrow imported once per process
            client.run(lambda: lindiff.sweep({**grid, "N": grid["N"][:1], "k": [0.0], "seeds": 1},
                                             progress=False) is None)
            out["dask_worker_warmup_s"] = time.perf_counter() - t0

        def worker_cpu() -> float:
            import psutil

            return sum(client.run(lambda: sum(psutil.Process().cpu_times()[:2])).values())

        # Local and Dask runs of the whole sweep, interleaved and alternating (local, dask, dask,
        # local, …) so that the load of a shared host hits both alike; wall time and CPU time
        # (this process, which also hosts the scheduler and the nannies, + the workers). The NumPy
        # script runs on a subset, cut into one part per repeat (every repeats-th N), each part run
        # after that repeat's lindiff runs, so it sees the same load; its parts are summed and
        # extrapolated by the share of (k, seed) pairs (and in --quick of N).
        pairs_ks = [(k, s) for s in range(grid["seeds"]) for k in grid["k"]][: args.numpy_subset]
        sub_N = grid["N"][::3] if args.quick else grid["N"]
        share = len(pairs_ks) / (len(grid["k"]) * grid["seeds"])
        if args.quick:  # the script's cost is ~ sampling (∝ N) + per-N work (∝ count): scale by both
            share *= 0.5 * (sum(sub_N) / sum(grid["N"]) + len(sub_N) / len(grid["N"]))
        parts = [sub_N[i::repeats] for i in range(repeats)]
        variants = [] if args.skip_numpy else [("modes", False), ("modes+ridges", True)]
        np_times = {label: {"sample": 0.0, "measures": 0.0, "exact": 0.0} for label, _ in variants}
        np_counts = {label: 0 for label, _ in variants}
        walls: dict[str, list[float]] = {"local": [], "dask": []}
        cpus: dict[str, list[float]] = {"local": [], "dask": []}
        frames = {}
        modes = ["local"] if args.skip_dask else ["local", "dask"]
        for rep in range(repeats):
            for mode in (modes if rep % 2 == 0 else modes[::-1]):
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
                      f"({_load()})", flush=True)
                shutil.rmtree(store, ignore_errors=True)
            # The best script on this repeat's part of the subset; the issue's script (one ridge at
            # a time) only on the part's first N: its sampling is the same code as the best
            # script's, and its per-N work (eigh, 20 recursions) does not depend on N.
            for label, over_r in variants:
                Ns = parts[rep] if over_r else parts[rep][:1]
                if not Ns:
                    continue
                t0 = time.perf_counter()
                numpy_sweep({**grid, "N": Ns}, pairs_ks, over_ridges=over_r, timings=np_times[label])
                print(f"  run {rep + 1} NumPy script over {label}: {time.perf_counter() - t0:6.1f} s for "
                      f"{len(pairs_ks)} (k, seed) pair(s) × {len(Ns)} N ({_load()})", flush=True)
                np_counts[label] += len(Ns)
        t_local = float(np.median(walls["local"]))
        out.update(lindiff_s=t_local, lindiff_runs_s=walls["local"], lindiff_cpu_s=cpus["local"])
        if client is not None:
            t_dask = float(np.median(walls["dask"]))
            same = frames["dask"].equals(frames["local"])
            over = t_dask / t_local - 1
            pairs = [dw / lw - 1 for dw, lw in zip(walls["dask"], walls["local"])]
            cpu_over = float(np.median(cpus["dask"])) / float(np.median(cpus["local"])) - 1
            out.update(dask_s=t_dask, dask_runs_s=walls["dask"], dask_cpu_s=cpus["dask"],
                       dask_overhead_wall=over, dask_overhead_pairs=pairs, dask_overhead_cpu=cpu_over,
                       dask_identical=bool(same))
            client.close()
            cluster.close()
            client = cluster = None
        if variants:
            best = np_times["modes+ridges"]
            t_sample = best["sample"]  # the same sampling code in both variants
            for label, _ in variants:
                per_n = np_times[label]["measures"] / np_counts[label]
                t_exact = np_times[label]["exact"]
                t_sub = t_sample + t_exact + per_n * len(sub_N)
                t_np = t_sub / share
                print(f"NumPy script, recursion vectorised over {label}: {t_sub:.1f} s for {len(pairs_ks)} (k, seed) "
                      f"pair(s) × {len(sub_N)} N (sampling {t_sample:.1f} s + N = ∞ {t_exact:.2f} s + {len(sub_N)} × "
                      f"{per_n:.2f} s per N, "
                      f"measured on {np_counts[label]} N); extrapolated to the sweep: {t_np:.0f} s")
                out[f"numpy_{label}_subset_s"] = t_sub
                out[f"numpy_{label}_extrapolated_s"] = t_np
                out[f"ratio_{label}"] = t_np / t_local
    finally:
        if client is not None:
            client.close()
            cluster.close()
        shutil.rmtree(tmp, ignore_errors=True)

    out["load_end"] = os.getloadavg()[0]
    print()
    print(f"=== issue targets (d = {d}{', --quick: not the issue size' if d != 500 else ''}; "
          f"load average {out['load_start']:.1f} at start, {out['load_end']:.1f} at end, "
          f"{os.cpu_count()} cores) ===")
    print(f"lindiff.sweep, embedded default (threads, all cores, writing its Parquet store): "
          f"{t_local:.1f} s median of {len(walls['local'])} (runs {', '.join(f'{w:.1f}' for w in walls['local'])}; "
          f"{t_local / n_tasks * 1e3:.0f} ms per task)")
    print(f"[1a] sweep under 3 minutes: {t_local:.1f} s -> {_verdict(t_local < 180)}")
    if "ratio_modes+ridges" in out:
        r_best, r_issue = out["ratio_modes+ridges"], out["ratio_modes"]
        print(f"[1b] >= 20× faster than the NumPy script: {r_best:.1f}× against the best script (recursion "
              f"over modes and ridges) -> {_verdict(r_best >= 20)};  {r_issue:.1f}× against the issue's "
              f"script (over modes, one ridge at a time) -> {_verdict(r_issue >= 20)}")
    if "dask_s" in out:
        print(f"Dask LocalCluster (2 processes × 1 thread, {'default config' if args.dask_default_config else 'QUIET_DASK'}): "
              f"{out['dask_s']:.1f} s median (runs {', '.join(f'{w:.1f}' for w in walls['dask'])}); cluster start-up "
              f"{out['dask_startup_s']:.1f} s + worker warm-up {out['dask_worker_warmup_s']:.1f} s, not counted; "
              f"identical numbers to the local run: {out['dask_identical']}")
        print(f"    overhead = wall of lindiff.sweep(grid, client=…) on a running, warmed-up cluster over the "
              f"local wall (both include planning, the N = ∞ references, transfers and the store writes)")
        print(f"    CPU (driver + scheduler + nannies + workers) vs local: {100 * out['dask_overhead_cpu']:+.1f}%;"
              f"  per-pair wall overheads: {', '.join(f'{100 * p:+.0f}%' for p in out['dask_overhead_pairs'])}")
        print(f"[2] Dask scheduling overhead under 10%: {100 * out['dask_overhead_wall']:+.1f}% (ratio of medians) "
              f"-> {_verdict(out['dask_overhead_wall'] < 0.10)}{' and identical results' if out['dask_identical'] else '; RESULTS DIFFER'}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
