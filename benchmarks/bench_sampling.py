#!/usr/bin/env python
"""lindiff's samplers against the best NumPy code for the same job, in one process.

Sections (``--only`` picks some, comma-separated):

  rng    normals/s: lindiff's NormalStream (8 xoshiro256++ lanes + vectorised Box–Muller), one
         stream on one thread, by wall and by CPU time, on every SIMD path this CPU runs
         (AVX-512, AVX2, x86-64-v2 baseline; all bit-identical), and two streams on two threads;
         against NumPy's ``Generator(PCG64).standard_normal(out=)`` (ziggurat) on 1 and 2 threads.
         The two-thread lindiff rate is the RNG-bound limit of the chains at workers = 2.
  eigen  the reverse chain in the eigenbasis, d = 256, T = 1000, n = 1e4, workers = 2, against
         NumPy: the same chain vectorised over samples, cache-sized row chunks, in-place ufuncs and
         ``standard_normal(out=)`` into a preallocated buffer, on 1 and on 2 Python threads (one
         Generator per thread; NumPy releases the GIL in both).
  dense  the dense chain (W_t of the model), same sizes, against NumPy's chain with one
         ``X @ W_t.T`` (OpenBLAS GEMM) per step and in-place updates.
  exact  exact draws, d = 1000, n = 1e5, against ``mean + (z * sqrt(s)) @ U.T``; and the eigen
         chain at T = 1000 on the same model (per-sample time ratio; the chain is timed on fewer
         samples).

Throughput is samples·steps·d per second (= normals drawn per second in the chains), set against
the RNG-bound limit measured in the rng section. Ratios are numpy_time / lindiff_time (above 1:
lindiff faster). Each issue target is printed at the end as "met" or "missed" with the load average.
``--quick`` shrinks every size for a smoke run (its verdicts are not the targets').
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (  # noqa: E402
    Contender,
    Timing,
    _time_once,
    cpu_model,
    fmt_ratio,
    fmt_time,
    interleaved,
    measured_peak,
    n_cpus,
    spread_str,
    table,
    two_threads_one_blas,
)

import lindiff  # noqa: E402
from lindiff import EmpiricalStats, LinearDiffusion, Schedule, _core  # noqa: E402
from lindiff.sampling import _eigen_tables, _sigma, _step_coefficients  # noqa: E402

SECTIONS = ("rng", "eigen", "dense", "exact")

# Measured facts shared between sections, and the issue targets' verdicts.
FACTS: dict[str, float] = {}
VERDICTS: list[str] = []


def verdict(name: str, value: float, target: float, note: str = "") -> None:
    ok = value >= target
    line = (f"  {name}: {value:.3g}x (target >= {target:g}x): {'met' if ok else 'MISSED'}"
            f"  [load {os.getloadavg()[0]:.1f}]" + (f"  {note}" if note else ""))
    VERDICTS.append(line)
    print(line)


def make_model(d: int, T: int, seed: int = 0) -> LinearDiffusion:
    r = np.random.default_rng(seed)
    N = 2 * d
    X = r.standard_normal((N, d)) * np.linspace(2.0, 0.2, d) + 0.5
    return LinearDiffusion(EmpiricalStats(X), Schedule.paper(T=T), ridge=0.01, workers=2)


def interleaved_long(contenders: list[Contender], repeat: int) -> dict[str, Timing]:
    """Like common.interleaved, without the untimed calibration call: for calls of many seconds
    (first-call effects are negligible there), each contender runs ``repeat`` times, interleaved,
    the order rotating every repeat."""
    out = {c.name: Timing(c.name) for c in contenders}
    k = len(contenders)
    for r in range(repeat):
        for c in contenders[r % k:] + contenders[: r % k]:
            out[c.name].samples.append(_time_once(c, 1))
    return out


# ---------------------------------------------------------------------- NumPy contenders
def numpy_eigen_chain(U: np.ndarray, a: np.ndarray, c: np.ndarray, sig: np.ndarray, n: int,
                      threads: int, seed: int = 0, chunk: int = 512) -> np.ndarray:
    T, d = a.shape
    out = np.empty((n, d))
    parts = np.array_split(np.arange(n), threads)
    gens = [np.random.Generator(np.random.PCG64(s)) for s in np.random.SeedSequence(seed).spawn(threads)]

    def run(part: np.ndarray, gen: np.random.Generator) -> None:
        for r0 in range(part[0], part[-1] + 1, chunk):
            r1 = min(r0 + chunk, part[-1] + 1)
            Y = gen.standard_normal((r1 - r0, d))
            Z = np.empty_like(Y)
            for k in range(T - 1, -1, -1):
                Y *= a[k]
                Y += c[k]
                if sig[k] != 0.0:
                    gen.standard_normal(out=Z)
                    Z *= sig[k]
                    Y += Z
            np.matmul(Y, U.T, out=out[r0:r1])

    if threads == 1:
        run(parts[0], gens[0])
    else:
        with ThreadPoolExecutor(threads) as ex:
            list(ex.map(run, parts, gens))
    return out


def numpy_dense_chain(W: np.ndarray, b: np.ndarray, p: np.ndarray, q: np.ndarray, sig: np.ndarray,
                      n: int, seed: Any = 0) -> np.ndarray:
    T, d, _ = W.shape
    gen = np.random.default_rng(seed)
    X = gen.standard_normal((n, d))
    E = np.empty_like(X)
    Z = np.empty_like(X)
    for k in range(T - 1, -1, -1):
        np.matmul(X, W[k].T, out=E)
        E += b[k]
        E *= q[k]
        X *= p[k]
        X += E
        if sig[k] != 0.0:
            gen.standard_normal(out=Z)
            Z *= sig[k]
            X += Z
    return X


# ---------------------------------------------------------------------- sections
def report(title: str, res: dict[str, Any], work: float | None, baseline: str, ours: str) -> None:
    rows = []
    for name, t in res.items():
        thr = f"{work / t.median / 1e9:.2f} G/s" if work else ""
        ratio = fmt_ratio(t.median and res[name].median / res[ours].median) if name != ours else "1"
        rows.append([name, fmt_time(t.median), spread_str(t), thr, ratio])
    print(f"\n{title}")
    print(table(["contender", "median", "min-max", "samples·steps·d/s", "time / lindiff"], rows))
    print(f"  lindiff speed-up over {baseline}: {fmt_ratio(res[baseline].median / res[ours].median)}")


def _rate(fn, n: int, repeat: int) -> tuple[float, float]:
    """Median normals/s of fn() by wall time and by this thread's CPU time."""
    fn()
    walls, cpus = [], []
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.thread_time()
        fn()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.thread_time() - c0)
    return n / float(np.median(walls)), n / float(np.median(cpus))


def _two_threads(fns, n_total: int, repeat: int) -> float:
    """Median normals/s of two callables run at once on two Python threads (both release the GIL)."""
    with ThreadPoolExecutor(2) as ex:
        list(ex.map(lambda f: f(), fns))
        walls = []
        for _ in range(repeat):
            w0 = time.perf_counter()
            list(ex.map(lambda f: f(), fns))
            walls.append(time.perf_counter() - w0)
    return n_total / float(np.median(walls))


def bench_rng(args: argparse.Namespace) -> None:
    n = 1_000_000 if args.quick else 4_000_000
    rep = 5
    seeds = np.random.SeedSequence(1).generate_state(8, np.uint64).reshape(2, 4)
    gens = [np.random.default_rng(s) for s in (0, 1)]
    bufs = [np.empty(n), np.empty(n)]
    ours = [np.empty(n), np.empty(n)]  # both sides write into preallocated arrays
    rows = []
    paths = _core.sampling_simd_available()
    best = paths[0]
    try:
        for path in paths:
            _core.set_sampling_simd(path)
            w, c = _rate(lambda: _core.standard_normal(n, seeds[0], ours[0]), n, rep)
            rows.append([f"lindiff NormalStream, {path}, 1 thread", f"{w / 1e6:.0f} M/s", f"{c / 1e6:.0f} M/s"])
            FACTS[f"rng_{path}"] = w
        _core.set_sampling_simd(best)
        two = _two_threads([lambda: _core.standard_normal(n, seeds[0], ours[0]),
                            lambda: _core.standard_normal(n, seeds[1], ours[1])], 2 * n, rep)
        rows.append([f"lindiff NormalStream, {best}, 2 threads", f"{two / 1e6:.0f} M/s", ""])
    finally:
        _core.set_sampling_simd("auto")
    FACTS["rng_2"] = two
    w, c = _rate(lambda: gens[0].standard_normal(out=bufs[0]), n, rep)
    rows.append(["numpy PCG64 standard_normal(out=), 1 thread", f"{w / 1e6:.0f} M/s", f"{c / 1e6:.0f} M/s"])
    FACTS["numpy_rng_1"] = w
    two_np = _two_threads([lambda: gens[0].standard_normal(out=bufs[0]), lambda: gens[1].standard_normal(out=bufs[1])],
                          2 * n, rep)
    rows.append(["numpy PCG64 standard_normal(out=), 2 threads", f"{two_np / 1e6:.0f} M/s", ""])
    print(f"\nrng: {n:.0e} normals per stream (medians of {rep}; CPU time = this thread's)")
    print(table(["generator", "wall", "CPU"], rows))
    print(f"  RNG-bound limit of a chain at workers=2 (2 streams, {best}): {two / 1e9:.2f} G normals/s")


def bench_eigen(args: argparse.Namespace) -> None:
    d, T, n = (256, 200, 2000) if args.quick else (256, 1000, 10_000)
    m = make_model(d, T)
    a, c = _eigen_tables(m, "ddpm")
    sig = _sigma(m.schedule, "ddpm", "beta", True)
    U = np.ascontiguousarray(m.eigvecs)
    res = interleaved_long([
        Contender("lindiff eigen (workers=2)", lambda _: m.sample(n, rng=0, workers=2, progress=False)),
        Contender("numpy eigen chain, 1 thread", lambda _: numpy_eigen_chain(U, a, c, sig, n, 1)),
        Contender("numpy eigen chain, 2 threads", lambda _: numpy_eigen_chain(U, a, c, sig, n, 2)),
    ], args.repeat)
    report(f"eigen chain: d={d}, T={T}, n={n}", res, float(n) * T * d, "numpy eigen chain, 2 threads",
           "lindiff eigen (workers=2)")
    ours = res["lindiff eigen (workers=2)"].median
    best_np = min(res["numpy eigen chain, 1 thread"].median, res["numpy eigen chain, 2 threads"].median)
    thr = float(n) * T * d / ours
    if "rng_2" in FACTS:
        print(f"  lindiff eigen: {thr / 1e9:.2f} G samples·steps·d/s = {100 * thr / FACTS['rng_2']:.0f}% of the "
              f"RNG-bound limit ({FACTS['rng_2'] / 1e9:.2f} G normals/s on 2 threads)")
    verdict(f"target 1, eigen chain d={d} T={T} n={n}, workers=2 vs best NumPy", best_np / ours, 4.0)


def bench_dense(args: argparse.Namespace) -> None:
    d, T, n = (256, 100, 2000) if args.quick else (256, 1000, 10_000)
    m = make_model(d, T)
    W = np.empty((T, d, d))
    b = np.empty((T, d))
    for t in range(1, T + 1):
        W[t - 1], b[t - 1] = m.denoiser(t)
    p, q = _step_coefficients(m.schedule, "ddpm")
    sig = _sigma(m.schedule, "ddpm", "beta", True)
    contenders = [
        Contender("lindiff dense (workers=2)",
                  lambda _: lindiff.sample_affine_chain(W, b, m.schedule, n, rng=0, workers=2, progress=False)),
        Contender("numpy dense chain (OpenBLAS)", lambda _: numpy_dense_chain(W, b, p, q, sig, n)),
    ]
    try:
        import threadpoolctl  # noqa: F401

        contenders.append(Contender("numpy dense, 2 threads x 1-thread BLAS",
                                    lambda _: two_threads_one_blas(
                                        lambda m, ss: numpy_dense_chain(W, b, p, q, sig, m, ss), n)))
    except ImportError:
        print("  (threadpoolctl missing: the 2-thread NumPy dense contender is skipped)")
    res = interleaved_long(contenders, args.repeat)
    best_name = min((k for k in res if k.startswith("numpy")), key=lambda k: res[k].median)
    report(f"dense chain: d={d}, T={T}, n={n} (2·n·d²·T = {2 * n * d * d * T / 1e9:.0f} GFLOP)", res,
           float(n) * T * d, best_name, "lindiff dense (workers=2)")
    flops = 2.0 * n * d * d * T
    for k, t in res.items():
        print(f"  {k}: {flops / t.median / 1e9:.1f} GFLOP/s in the GEMMs (upper bound)")
    verdict(f"target 2, dense chain d={d} T={T} n={n}, workers=2 vs best NumPy ({best_name})",
            res[best_name].median / res["lindiff dense (workers=2)"].median, 1.5)


def bench_exact(args: argparse.Namespace) -> None:
    d, n, T, n_chain = (1000, 10_000, 200, 200) if args.quick else (1000, 100_000, 1000, 1000)
    m = make_model(d, T)
    g = m.sampling_distribution()
    mean, s, V = g.mean, g.eigvals, np.ascontiguousarray(g.eigvecs)
    sq = np.sqrt(s)
    gen = np.random.default_rng(0)
    res = interleaved([
        Contender("lindiff exact (workers=2)", lambda _: m.sample(n, rng=0, method="exact", workers=2,
                                                                  progress=False)),
        Contender("numpy mean + (z*sqrt(s)) @ U.T", lambda _: mean + (gen.standard_normal((n, d)) * sq) @ V.T),
    ], args.repeat)
    report(f"exact: d={d}, n={n}", res, None, "numpy mean + (z*sqrt(s)) @ U.T", "lindiff exact (workers=2)")
    verdict(f"target 3a, exact d={d} n={n} vs NumPy", res["numpy mean + (z*sqrt(s)) @ U.T"].median
            / res["lindiff exact (workers=2)"].median, 1.0)
    chain = interleaved([Contender("lindiff eigen chain", lambda _: m.sample(n_chain, rng=0, workers=2,
                                                                         progress=False))],
                        args.repeat)["lindiff eigen chain"]
    per_chain = chain.median / n_chain
    per_exact = res["lindiff exact (workers=2)"].median / n
    R = float(n_chain) * T * d / chain.median  # normals (= samples·steps·d) per second in the chain
    print(f"  eigen chain T={T} on the same model: {fmt_time(chain.median)} for n={n_chain} "
          f"({R / 1e9:.2f} G samples·steps·d/s); per sample {per_chain / per_exact:.0f}x the exact draw")
    # The bound: per sample the chain draws T·d normals; the exact draw d normals plus a d×d
    # rotation (2d² flop). At R normals/s and G flop/s the ratio is at most
    #   (T·d/R) / (d/R + 2d²/G) = T / (1 + 2·d·R/G).
    G = FACTS.get("gemm") or measured_peak(2048 if not args.quick else 1024) * 1e9
    FACTS["gemm"] = G
    bound = T / (1.0 + 2.0 * d * R / G)
    if T > 500:
        need = (f"500x would need 1 + 2dR/G <= T/500 = {T / 500:g}, i.e. R < {(T / 500 - 1) * G / (2 * d) / 1e9:.3f} "
                f"G normals/s (a generator {R / ((T / 500 - 1) * G / (2 * d)):.0f}x slower) at this G.")
    else:
        need = f"With T = {T} <= 500 the ratio is below T whatever R and G: 500x is impossible."
    print(f"  bound on chain/exact per sample: T / (1 + 2·d·R/G) with R = {R / 1e9:.2f} G normals/s (the chain's "
          f"own rate), G = {G / 1e9:.0f} GFLOP/s (NumPy DGEMM, this machine)\n"
          f"    = {T} / (1 + 2·{d}·{R / 1e9:.2f}e9/{G / 1e9:.0f}e9) = {bound:.0f}x; the exact draw reaches "
          f"{per_chain / per_exact / bound * 100:.0f}% of it (R and G are measured at other moments: on a loaded "
          f"host this can exceed 100%).\n    A faster generator LOWERS the bound. {need}")
    verdict(f"target 3b, exact vs eigen chain T={T} per sample", per_chain / per_exact, 500.0,
            f"(bound on this machine: {bound:.0f}x, see above)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    ap.add_argument("--only", default=",".join(SECTIONS))
    ap.add_argument("--repeat", type=int, default=None)
    args = ap.parse_args()
    if args.repeat is None:
        args.repeat = 2  # the target run takes about 5 minutes on a quiet 2-core machine
    print(f"lindiff {lindiff.__version__} (build {_core.simd}, sampler path {_core.sampling_simd()}), numpy {np.__version__}; {cpu_model()}, "
          f"{n_cpus()} cpus, load {os.getloadavg()[0]:.1f}")
    for name in args.only.split(","):
        if name not in SECTIONS:
            raise SystemExit(f"unknown section {name!r}; choose from {SECTIONS}")
        globals()[f"bench_{name}"](args)
    if VERDICTS:
        print(f"\nIssue targets ({'QUICK sizes, not the targets' if args.quick else 'target sizes'}; "
              f"load {os.getloadavg()[0]:.1f} on {n_cpus()} cpus):")
        print("\n".join(VERDICTS))


if __name__ == "__main__":
    main()
