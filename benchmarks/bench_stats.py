#!/usr/bin/env python
"""lindiff's statistics against the best NumPy/SciPy code for the same job, in one process.

Sections (``--only`` picks some, comma-separated):

  cov      mean + centred scatter (1/N): ``EmpiricalStats(X).cov`` against
           ``Xc = X - X.mean(0); C = Xc.T @ Xc; C /= N`` (NumPy takes SYRK for ``Xc.T @ Xc``).
  eigh     eigendecomposition of the covariance, from statistics built beforehand: lindiff's
           ``.eigh()`` (+ eigvals, + range basis, + full basis) against numpy.linalg.eigh /
           eigvalsh, scipy.linalg.eigh(driver="evd") and a NumPy version of the dual (Gram) route.
  wishart  statistics of 1e5 draws from a d = 512 Gaussian: lindiff's exact Wishart draw
           ``GaussianTarget.empirical_stats`` against sampling + mean + cov in NumPy.

``--rss`` is a separate mode: it streams N = 1e6 rows at d = 1000 in chunks of 1e4 rows into
``EmpiricalStats.partial_fit`` (and, for reference, into a NumPy Chan-merge loop), each in a fresh
subprocess, and reports the peak RSS (ru_maxrss) over the baseline.

``--compare label=file.json ...`` prints several ``--json`` outputs side by side (used by
compare_builds.sh for the portable vs native builds).

Ratios are numpy_time / lindiff_time: above 1 means lindiff is faster. See README.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

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
    set_clock,
    wait_for_idle,
    n_cpus,
    spread_str,
    table,
    threadpool_summary,
    versions,
)

SECTIONS = ("cov", "eigh", "wishart")


# ============================================================================ results
class Results:
    """Rows of (lindiff contender vs reference contenders) with their raw samples."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add(
        self,
        section: str,
        key: str,
        t: dict[str, Timing],
        lindiff: str,
        refs: list[str],
        *,
        target: str | None = None,
        flops: float | None = None,
        ref_flops: float | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """``refs``: NumPy/SciPy contenders doing the same job; the fastest is 'best'.
        ``target``: the reference an issue target is stated against (e.g. numpy.linalg.eigh)."""
        lt = t[lindiff].median
        best = min(refs, key=lambda r: t[r].median)
        bt = t[best].median
        row: dict[str, Any] = {
            "section": section,
            "key": key,
            "lindiff": lindiff,
            "lindiff_s": lt,
            "best_ref": best,
            "best_ref_s": bt,
            "ratio": bt / lt,
            "samples": {k: v.samples for k, v in t.items()},
            "number": {k: v.number for k, v in t.items()},
            **extra,
        }
        if target is not None:
            row["target_ref"] = target
            row["target_ref_s"] = t[target].median
            row["target_ratio"] = t[target].median / lt
        if flops is not None:
            row["gflops_lindiff"] = flops / lt / 1e9
            row["gflops_ref"] = (ref_flops if ref_flops is not None else flops) / bt / 1e9
        self.rows.append(row)
        return row


def print_timings(t: dict[str, Timing]) -> None:
    rows = [[k, fmt_time(v.median), spread_str(v), str(len(v.samples)), str(v.number)]
            for k, v in t.items()]
    print(table(["contender", "median", "min..max", "reps", "calls/rep"], rows, indent="      "))


# ============================================================================ covariance
def bench_cov(cfg: argparse.Namespace, res: Results, peak: float) -> None:
    import lindiff

    print("\n## 1. Covariance: mean + centred scatter, 1/N  (FLOPs = N d^2, SYRK)")
    print("   lindiff: EmpiricalStats(X).cov   numpy: Xc = X - X.mean(0); C = Xc.T @ Xc; C /= N")
    w = cfg.threads
    cases = [(d, n) for d in cfg.cov_d for n in (d // 4, d, 4 * d)]
    if cfg.quick:
        cases = [(d, n) for d, n in cases if d < 2048 or n == 4 * d]
    rows_out = []
    for d, n in cases:
        rng = np.random.default_rng(1)
        X = rng.standard_normal((n, d))
        X += 3.0  # an offset mean, so that centring matters

        def lind(_: Any) -> np.ndarray:
            return lindiff.EmpiricalStats(X, workers=w).cov

        def npy(_: Any) -> np.ndarray:
            Xc = X - X.mean(axis=0)
            C = Xc.T @ Xc
            C /= n
            return C

        err = np.abs(lind(None) - npy(None)).max()
        assert err < 1e-9 * max(1.0, d / n) * 10, f"cov mismatch {err}"
        rep = cfg.repeat_large if d >= 2048 else cfg.repeat_small
        t = interleaved([Contender("lindiff", lind), Contender("numpy", npy)], rep)
        flops = float(n) * d * d
        row = res.add("cov", f"cov d={d} N={n}", t, "lindiff", ["numpy"], flops=flops,
                      holds_factor=n <= 2 * d)
        if cfg.verbose:
            print(f"   d={d} N={n}")
            print_timings(t)
        rows_out.append([
            str(d), str(n), "factor" if n <= 2 * d else "dense",
            fmt_time(row["lindiff_s"]), fmt_time(row["best_ref_s"]), fmt_ratio(row["ratio"]),
            f"{row['gflops_lindiff']:.1f}", f"{row['gflops_ref']:.1f}",
            f"{100 * row['gflops_lindiff'] / peak:.0f}%", f"{100 * row['gflops_ref'] / peak:.0f}%",
        ])
        del X
    print(table(["d", "N", "held", "lindiff", "numpy", "ratio", "GF/s lindiff", "GF/s numpy",
                 "%peak l", "%peak n"], rows_out))


# ============================================================================ eigendecomposition
def numpy_dual(Xc: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The dual (Gram) route in plain NumPy, from centred data Xc (m×d, m < d)."""
    G = Xc @ Xc.T  # SYRK
    mu, V = np.linalg.eigh(G)
    mu, V = mu[::-1], V[:, ::-1]
    tol = max(mu[0], 0.0) * max(Xc.shape) * np.finfo(float).eps
    r = min(int(np.count_nonzero(mu > tol)), n - 1)
    U = Xc.T @ (V[:, :r] / np.sqrt(mu[:r]))
    return mu[:r] / n, U


def bench_eigh(cfg: argparse.Namespace, res: Results) -> None:
    import lindiff

    sl = None
    if not cfg.no_scipy:
        import scipy.linalg as sl
    print("\n## 2. Eigendecomposition of the covariance (statistics built beforehand)")
    print("   data: GaussianTarget.power_law(d, 1, rotation='random').sample(N)")
    print("   lindiff: c = stats.copy(); c.eigh(); c.eigvals [; c.range_basis] [; c.eigvecs]")
    print("   numpy.linalg.eigh(C) is the issue's reference; 'best' also considers eigvalsh,")
    print("   scipy.linalg.eigh(C, driver='evd') and the dual route written in NumPy")
    w = cfg.threads

    def ns(d: int) -> tuple[int, ...]:  # N = d is in the full run (or with --eigh-n-equal-d)
        return (d // 8, d, 4 * d) if cfg.eigh_n_equal_d or not cfg.quick else (d // 8, 4 * d)

    rows_out = []
    for d in cfg.eigh_d:
        target = lindiff.GaussianTarget.power_law(d, 1.0, rotation="random", rng=2)
        for n in ns(d):
            X = target.sample(n, rng=3)
            stats = lindiff.EmpiricalStats(X, workers=w)
            stats.scatter  # built beforehand (and cached) also when the factor is held
            C = stats.cov
            Xc = X - X.mean(axis=0)
            dual = stats.holds_factor and n < d

            def fresh() -> Any:
                return stats.copy()

            def l_vals(c: Any) -> Any:
                c.eigh(workers=w)
                return c.eigvals

            def l_range(c: Any) -> Any:
                c.eigh(workers=w)
                return c.eigvals, c.range_basis

            def l_full(c: Any) -> Any:
                c.eigh(workers=w)
                return c.eigvals, c.eigvecs

            # The primal route yields the full basis with the eigenvalues: one contender serves
            # all deliverables there (timing eigvals alone would just repeat the same work).
            if dual:
                cs = [Contender("lindiff eigh+eigvals", l_vals, fresh),
                      Contender("lindiff +range_basis", l_range, fresh),
                      Contender("lindiff +eigvecs(full)", l_full, fresh)]
            else:
                cs = [Contender("lindiff eigh+eigvals+eigvecs", l_full, fresh)]
            cs.append(Contender("numpy.linalg.eigh", lambda _: np.linalg.eigh(C)))
            cs.append(Contender("numpy.linalg.eigvalsh", lambda _: np.linalg.eigvalsh(C)))
            if sl is not None:
                cs.append(Contender("scipy.linalg.eigh evd",
                                    lambda _: sl.eigh(C, driver="evd", check_finite=False)))
            if dual:
                cs.append(Contender("numpy dual (Gram)", lambda _: numpy_dual(Xc, n)))

            # correctness of what we time
            c = fresh()
            c.eigh(workers=w)
            ref = np.linalg.eigvalsh(C)[::-1]
            r = min(d, n - 1)
            scale = ref[0]
            assert np.abs(c.eigvals[:r] - ref[:r]).max() < 1e-8 * scale, "eigvals mismatch"
            assert c.route == ("dual" if dual else "primal"), c.route

            rep = cfg.repeat_large if d >= 2048 else cfg.repeat_small
            t = interleaved(cs, rep)
            if cfg.verbose:
                print(f"   d={d} N={n} route={c.route}")
                print_timings(t)
            full_refs = ["numpy.linalg.eigh"] + (["scipy.linalg.eigh evd"] if sl else [])
            if dual:
                deliverables = [
                    ("eigvals", "lindiff eigh+eigvals",
                     full_refs + ["numpy.linalg.eigvalsh", "numpy dual (Gram)"]),
                    ("eigvals+range basis", "lindiff +range_basis",
                     full_refs + ["numpy dual (Gram)"]),
                    ("eigvals+full basis", "lindiff +eigvecs(full)", full_refs),
                ]
            else:
                deliverables = [
                    ("eigvals", "lindiff eigh+eigvals+eigvecs",
                     full_refs + ["numpy.linalg.eigvalsh"]),
                    ("eigvals+full basis", "lindiff eigh+eigvals+eigvecs", full_refs),
                ]
            for what, lname, refs in deliverables:
                row = res.add("eigh", f"eigh d={d} N={n} {what}", t, lname, refs,
                              target="numpy.linalg.eigh", route=c.route)
                rows_out.append([
                    str(d), str(n), c.route, what, fmt_time(row["lindiff_s"]),
                    fmt_time(row["target_ref_s"]), fmt_ratio(row["target_ratio"]),
                    row["best_ref"].replace("numpy.linalg.", "np.").replace("scipy.linalg.", "sp."),
                    fmt_time(row["best_ref_s"]), fmt_ratio(row["ratio"]),
                ])
            del X, Xc, C, stats, c
    print(table(["d", "N", "route", "deliverable", "lindiff", "np.eigh", "vs np.eigh",
                 "best NumPy/SciPy", "its time", "vs best"], rows_out))


# ============================================================================ Wishart
def bench_wishart(cfg: argparse.Namespace, res: Results) -> None:
    import lindiff

    d, n = 512, 100_000
    print(f"\n## 3. Statistics of n = {n} draws from a d = {d} Gaussian (power law k = 1)")
    print("   lindiff: s = target.empirical_stats(n, rng=g); s.mean; s.cov   (exact Wishart draw)")
    print("   numpy naive: Z = g.standard_normal((n, d)); Y = Z @ L.T + mu; mean; centre;")
    print("                C = Y.T @ Y / n")
    w = cfg.threads
    n_threads = cfg.threads or n_cpus()
    print(f"   numpy best:  Z filled by {n_threads} thread(s), one Generator each; stats of Z,")
    print("                then C = L Cz L^T, mean = mu + L mz   (no n*d^2 GEMM on the samples)")
    pool = ThreadPoolExecutor(n_threads)
    rows_out = []
    for label, rot in (("rotated", "random"), ("axis-aligned", None)):
        target = lindiff.GaussianTarget.power_law(d, 1.0, rotation=rot, rng=4)
        sq = np.sqrt(target.eigvals)
        mu = target.mean
        L = None if target.is_axis_aligned else np.ascontiguousarray(target.eigvecs * sq)
        seeds = iter(range(10**6))

        def fresh_rng() -> np.random.Generator:
            return np.random.default_rng(next(seeds))

        def fresh_rngs() -> list[np.random.Generator]:
            return [np.random.default_rng(s) for s in
                    np.random.SeedSequence(next(seeds)).spawn(n_threads)]

        def lind(g: np.random.Generator) -> Any:
            s = target.empirical_stats(n, rng=g, workers=w)
            return s.mean, s.cov

        def np_naive(g: np.random.Generator) -> Any:
            Z = g.standard_normal((n, d))
            Y = Z * sq if L is None else Z @ L.T
            del Z
            Y += mu
            m = Y.mean(axis=0)
            Y -= m
            C = Y.T @ Y
            C /= n
            return m, C

        bounds = np.linspace(0, n, n_threads + 1).astype(int)

        def np_best(gs: list[np.random.Generator]) -> Any:
            Z = np.empty((n, d))
            list(pool.map(lambda i: gs[i].standard_normal(out=Z[bounds[i]:bounds[i + 1]]),
                          range(n_threads)))
            mz = Z.mean(axis=0)
            Z -= mz
            Cz = Z.T @ Z
            Cz /= n
            if L is None:
                C = Cz * sq[:, None] * sq[None, :]
                m = mu + sq * mz
            else:
                C = L @ Cz @ L.T
                m = mu + L @ mz
            return m, C

        # sanity: all three estimate the same covariance (tr ≈ d within a few per cent)
        for f, s in ((lind, fresh_rng), (np_naive, fresh_rng), (np_best, fresh_rngs)):
            _, C = f(s())
            assert abs(np.trace(C) / d - 1) < 0.05, (f.__name__, np.trace(C) / d)

        t = interleaved([Contender("lindiff", lind, fresh_rng),
                         Contender("numpy naive", np_naive, fresh_rng),
                         Contender("numpy best", np_best, fresh_rngs)], cfg.repeat_large)
        if cfg.verbose:
            print(f"   {label}")
            print_timings(t)
        row = res.add("wishart", f"wishart d={d} n={n} {label}", t, "lindiff",
                      ["numpy naive", "numpy best"])
        rows_out.append([label, fmt_time(row["lindiff_s"]), fmt_time(t["numpy naive"].median),
                         fmt_ratio(t["numpy naive"].median / row["lindiff_s"]),
                         fmt_time(t["numpy best"].median),
                         fmt_ratio(t["numpy best"].median / row["lindiff_s"])])
    pool.shutdown()
    print(table(["target", "lindiff", "numpy naive", "ratio", "numpy best", "ratio"], rows_out))


# ============================================================================ streaming RSS
def _maxrss_bytes() -> int:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r if sys.platform == "darwin" else r * 1024  # Linux reports KiB


def _current_rss_bytes() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return -1


def rss_child(impl: str, n: int, d: int, chunk: int) -> None:
    """Runs in its own process: stream n rows in chunks, print one JSON line."""
    import lindiff  # noqa: F401  (imported in both modes, so the baselines match)

    g = np.random.default_rng(0)
    if impl == "lindiff":
        stats = lindiff.EmpiricalStats()
    else:
        count, mean, m2 = 0, np.zeros(d), np.zeros((d, d))
    base_peak, base_now = _maxrss_bytes(), _current_rss_bytes()
    t_gen = t_fit = 0.0
    for start in range(0, n, chunk):
        t0 = time.perf_counter()
        X = g.standard_normal((min(chunk, n - start), d))
        t1 = time.perf_counter()
        if impl == "lindiff":
            stats.partial_fit(X)
        else:  # the same Chan et al. merge, dense, in NumPy
            nb = X.shape[0]
            mb = X.mean(axis=0)
            Xc = X - mb
            sb = Xc.T @ Xc
            del Xc
            delta = mb - mean
            tot = count + nb
            mean += delta * (nb / tot)
            m2 += sb
            m2 += np.outer(delta, delta) * (count * nb / tot)
            count = tot
            del sb
        t2 = time.perf_counter()
        del X
        t_gen += t1 - t0
        t_fit += t2 - t1
    cov = stats.cov if impl == "lindiff" else m2 / count
    err = abs(np.trace(cov) / d - 1)
    print(json.dumps({
        "impl": impl, "n": n, "d": d, "chunk": chunk,
        "baseline_peak": base_peak, "baseline_now": base_now,
        "peak": _maxrss_bytes(), "end_now": _current_rss_bytes(),
        "t_gen": t_gen, "t_fit": t_fit, "trace_err": err,
    }))


def run_rss(cfg: argparse.Namespace) -> list[dict[str, Any]]:
    n, d, chunk = cfg.rss_n, cfg.rss_d, cfg.rss_chunk
    mb = 1024.0**2
    dd = d * d * 8
    ch = chunk * d * 8
    print(f"\n## 4. Streaming memory: N = {n} rows, d = {d}, chunks of {chunk} rows "
          f"(one fresh subprocess per implementation)")
    print(f"   unit sizes: d x d float64 = {dd / mb:.1f} MiB, one chunk = {ch / mb:.1f} MiB, "
          f"the whole array would be {n * d * 8 / mb / 1024:.2f} GiB")
    out = []
    env = dict(os.environ)
    for impl in cfg.rss_impls:
        cmd = [sys.executable, os.path.abspath(__file__), "--rss-child", impl,
               "--rss-n", str(n), "--rss-d", str(d), "--rss-chunk", str(chunk)]
        p = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if p.returncode != 0:
            print("\n".join(line[:300] for line in p.stderr.splitlines()[-25:]))
            raise SystemExit(f"rss child {impl} failed")
        r = json.loads(p.stdout.strip().splitlines()[-1])
        out.append(r)
    rows = []
    for r in out:
        inc = r["peak"] - r["baseline_peak"]
        rows.append([
            "EmpiricalStats.partial_fit" if r["impl"] == "lindiff" else "NumPy Chan merge",
            f"{r['baseline_peak'] / mb:.0f}", f"{r['peak'] / mb:.0f}", f"{inc / mb:.0f}",
            f"{inc / dd:.1f}", f"{inc / ch:.2f}", f"{r['end_now'] / mb:.0f}",
            f"{r['t_gen']:.1f} s", f"{r['t_fit']:.1f} s",
            f"{n * d * d / r['t_fit'] / 1e9:.1f}",
        ])
    print(table(["impl", "baseline MiB", "peak MiB", "increase MiB", "in dxd", "in chunks",
                 "RSS at end MiB", "generate", "fit", "GF/s fit"], rows))
    return out


# ============================================================================ compare mode
def compare(specs: list[str]) -> None:
    runs = []
    for s in specs:
        label, _, path = s.partition("=")
        with open(path) as f:
            runs.append((label, json.load(f)))
    print("configurations:")
    for label, data in runs:
        cfgi = data["meta"]["lindiff_config"]
        print(f"  {label:18s} simd={cfgi.get('simd')} provider={cfgi.get('provider')} "
              f"peak={data['meta']['peak_gflops']:.0f} GF/s")
    keys = [r["key"] for r in runs[0][1]["rows"]]
    by = [{r["key"]: r for r in data["rows"]} for _, data in runs]
    # pairs of labels that differ only in the build ("portable/x" vs "native/x")
    groups: dict[str, list[int]] = {}
    for i, (label, _) in enumerate(runs):
        groups.setdefault(label.split("/", 1)[-1], []).append(i)
    pairs = [(g[0], g[1]) for g in groups.values() if len(g) == 2]
    headers = ["case"]
    for label, _ in runs:
        headers += [f"{label} lindiff", "ratio"]
    for a, b in pairs:  # e.g. "openblas: portable/native"
        la, lb = runs[a][0], runs[b][0]
        headers.append(f"{la.split('/', 1)[-1]}: {la.split('/')[0]}/{lb.split('/')[0]}")
    rows = []
    for k in keys:
        if not all(k in b for b in by):
            continue
        row = [k]
        for b in by:
            row += [fmt_time(b[k]["lindiff_s"]), fmt_ratio(b[k]["ratio"])]
        for a, bb in pairs:  # > 1: the second build is faster
            row.append(f"{by[a][k]['lindiff_s'] / by[bb][k]['lindiff_s']:.2f}")
        rows.append(row)
    print("\nlindiff median and ratio (best NumPy time / lindiff time) per configuration; the last")
    print("column(s): lindiff time of the first build over the second (>1: second is faster)")
    print(table(headers, rows))


# ============================================================================ main
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="short run: fewer sizes (d=2048 only where the issue sets a target), "
                         "fewer repeats")
    ap.add_argument("--repeat", type=int, default=None,
                    help="repeats per contender (default 7 small / 3 large; quick: 5 / 3)")
    ap.add_argument("--only", default=",".join(SECTIONS), help=f"sections, from {SECTIONS}")
    ap.add_argument("--threads", type=int, default=None,
                    help="BLAS threads (threadpoolctl limit) and lindiff workers; default: all")
    ap.add_argument("--blas", default=None,
                    help="lindiff provider: 'eigen', 'auto' or a library path "
                         "(default: LINDIFF_BLAS, else auto)")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="wall time (default) or process CPU time (robust on a busy host; "
                         "use with --threads 1)")
    ap.add_argument("--wait-idle", type=float, default=None, metavar="LOAD",
                    help="before starting, wait (up to 10 min) for the 1-min load average "
                         "to drop below LOAD")
    ap.add_argument("--no-scipy", action="store_true",
                    help="do not import SciPy (one OpenBLAS pool only)")
    ap.add_argument("--eigh-n-equal-d", action="store_true",
                    help="also run eigh at N = d in --quick mode (always in the full run)")
    ap.add_argument("--json", default=None, help="write all samples and derived numbers here")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every contender's timings")
    ap.add_argument("--rss", action="store_true", help="streaming peak-RSS mode (subprocesses)")
    ap.add_argument("--rss-n", type=int, default=1_000_000)
    ap.add_argument("--rss-d", type=int, default=1000)
    ap.add_argument("--rss-chunk", type=int, default=10_000)
    ap.add_argument("--rss-impls", default="lindiff,numpy",
                    help="which streaming implementations to measure (lindiff, numpy)")
    ap.add_argument("--rss-child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--compare", nargs="+", metavar="LABEL=FILE.json", default=None,
                    help="print --json outputs side by side and exit")
    cfg = ap.parse_args(argv)

    if cfg.rss_child:
        rss_child(cfg.rss_child, cfg.rss_n, cfg.rss_d, cfg.rss_chunk)
        return
    if cfg.compare:
        compare(cfg.compare)
        return

    import lindiff

    if cfg.blas:
        lindiff.use_blas(cfg.blas)
    if not cfg.no_scipy and not cfg.rss:
        try:
            import scipy.linalg  # noqa: F401  (load it now so threadpoolctl lists its pool)
        except ImportError:
            cfg.no_scipy = True

    small = 5 if cfg.quick else 7
    large = 3
    cfg.repeat_small = cfg.repeat if cfg.repeat else small
    cfg.repeat_large = cfg.repeat if cfg.repeat else large
    cfg.cov_d = (256, 1024, 2048)
    cfg.eigh_d = (256, 1024, 2048)
    cfg.rss_impls = [s for s in cfg.rss_impls.split(",") if s]
    sections = [s for s in cfg.only.split(",") if s]
    bad = set(sections) - set(SECTIONS)
    if bad:
        ap.error(f"unknown sections {sorted(bad)}")

    set_clock(cfg.clock)
    if cfg.clock == "cpu" and cfg.threads != 1:
        print("warning: --clock cpu counts every thread (and OpenBLAS spin-waits); use --threads 1")
    if cfg.wait_idle is not None:
        load = wait_for_idle(cfg.wait_idle, 600)
        print(f"waited for the host: load average now {load:.1f}")
    limiter = None
    if cfg.threads:
        from threadpoolctl import threadpool_limits

        limiter = threadpool_limits(limits=cfg.threads)

    flags = cpu_flags()
    simd = "avx512f" if "avx512f" in flags else "avx2" if "avx2" in flags else "no avx2"
    print("# lindiff statistics benchmark")
    print(f"machine   : {cpu_model()}, {n_cpus()} CPUs, {simd}; "
          f"load average {os.getloadavg()[0]:.1f} (other processes compete for the cores)")
    print(f"versions  : {versions()}  lindiff {lindiff.__version__}")
    print(f"lindiff   : {lindiff.show_config()}")
    print("threadpools (threadpoolctl):")
    for p in threadpool_summary():
        print(f"  {p}")
    t0 = time.perf_counter()
    meta = {"argv": sys.argv[1:], "lindiff_config": lindiff.show_config(), "versions": versions(),
            "clock": cfg.clock, "threads": cfg.threads,
            "cpu": cpu_model(), "ncpu": n_cpus(), "loadavg_start": os.getloadavg()[0],
            "threadpools": threadpool_summary()}

    if cfg.rss:
        out = run_rss(cfg)
        if cfg.json:
            dump_json(cfg.json, {"meta": meta, "rss": out})
        print(f"\ntotal {time.perf_counter() - t0:.0f} s")
        return

    peak = measured_peak(1536 if cfg.quick else 2048)
    meta["peak_gflops"] = peak
    print(f"peak      : NumPy DGEMM {peak:.1f} GFLOP/s (the '%peak' reference)")
    print(f"clock     : {cfg.clock}; threads: {cfg.threads or 'all (' + str(n_cpus()) + ')'}")
    print(f"repeats   : {cfg.repeat_small} (d <= 1024), {cfg.repeat_large} (d = 2048, Wishart); "
          "medians; ratio = numpy time / lindiff time (>1: lindiff faster)")

    res = Results()
    if "cov" in sections:
        bench_cov(cfg, res, peak)
    if "eigh" in sections:
        bench_eigh(cfg, res)
    if "wishart" in sections:
        bench_wishart(cfg, res)
    peak_end = measured_peak(1536 if cfg.quick else 2048)
    meta["peak_gflops_end"] = peak_end
    meta["loadavg_end"] = os.getloadavg()[0]
    print(f"\nNumPy DGEMM at the end: {peak_end:.1f} GFLOP/s (start {peak:.1f}: host drift); "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"total {time.perf_counter() - t0:.0f} s")
    if cfg.json:
        dump_json(cfg.json, {"meta": meta, "rows": res.rows})
    if limiter is not None:
        limiter.restore_original_limits()


if __name__ == "__main__":
    main()
