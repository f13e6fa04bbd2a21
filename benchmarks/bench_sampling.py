#!/usr/bin/env python
"""lindiff's samplers against the best NumPy code for the same job, in one process.

Sections (``--only`` picks some, comma-separated):

  rng    normals/s: lindiff's xoshiro256++ + Box–Muller (one stream, one thread) against
         NumPy's ``Generator(PCG64).standard_normal(out=)``.
  eigen  the reverse chain in the eigenbasis, d = 256, T = 1000, n = 1e4, workers = 2, against
         NumPy: the same chain vectorised over samples, cache-sized row chunks, in-place ufuncs and
         ``standard_normal(out=)`` into a preallocated buffer, on 1 and on 2 Python threads (one
         Generator per thread; NumPy releases the GIL in both).
  dense  the dense chain (W_t of the model), same sizes, against NumPy's chain with one
         ``X @ W_t.T`` (OpenBLAS GEMM) per step and in-place updates.
  exact  exact draws, d = 1000, n = 1e5, against ``mean + (z * sqrt(s)) @ U.T``; and the eigen
         chain at T = 1000 on the same model (per-sample time ratio; the chain is timed on fewer
         samples).

Throughput is samples·steps·d per second. Ratios are numpy_time / lindiff_time (above 1: lindiff
faster). ``--quick`` shrinks every size for a smoke run.
"""

from __future__ import annotations

import argparse
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (  # noqa: E402
    Contender,
    cpu_model,
    fmt_ratio,
    fmt_time,
    interleaved,
    n_cpus,
    spread_str,
    table,
)

import lindiff  # noqa: E402
from lindiff import EmpiricalStats, LinearDiffusion, Schedule, _core  # noqa: E402
from lindiff.sampling import _eigen_tables, _sigma, _step_coefficients  # noqa: E402

SECTIONS = ("rng", "eigen", "dense", "exact")


def make_model(d: int, T: int, seed: int = 0) -> LinearDiffusion:
    r = np.random.default_rng(seed)
    N = 2 * d
    X = r.standard_normal((N, d)) * np.linspace(2.0, 0.2, d) + 0.5
    return LinearDiffusion(EmpiricalStats(X), Schedule.paper(T=T), ridge=0.01, workers=2)


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
                      n: int, seed: int = 0) -> np.ndarray:
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


def bench_rng(args: argparse.Namespace) -> None:
    n = 2_000_000 if args.quick else 20_000_000
    seed = np.array([1, 2, 3, 4], dtype=np.uint64)
    buf = np.empty(n)
    gen = np.random.default_rng(0)
    res = interleaved([
        Contender("lindiff xoshiro256++/Box-Muller (1 thread)", lambda _: _core.standard_normal(n, seed)),
        Contender("numpy PCG64 standard_normal(out=)", lambda _: gen.standard_normal(out=buf)),
    ], args.repeat)
    print(f"\nrng: {n:.0e} normals")
    rows = [[k, fmt_time(t.median), spread_str(t), f"{n / t.median / 1e6:.0f} M/s"] for k, t in res.items()]
    print(table(["generator", "median", "min-max", "normals/s"], rows))


def bench_eigen(args: argparse.Namespace) -> None:
    d, T, n = (256, 200, 2000) if args.quick else (256, 1000, 10_000)
    m = make_model(d, T)
    a, c = _eigen_tables(m, "ddpm")
    sig = _sigma(m.schedule, "ddpm", "beta", True)
    U = np.ascontiguousarray(m.eigvecs)
    res = interleaved([
        Contender("lindiff eigen (workers=2)", lambda _: m.sample(n, rng=0, workers=2)),
        Contender("lindiff eigen (workers=1)", lambda _: m.sample(n, rng=0, workers=1)),
        Contender("numpy eigen chain, 1 thread", lambda _: numpy_eigen_chain(U, a, c, sig, n, 1)),
        Contender("numpy eigen chain, 2 threads", lambda _: numpy_eigen_chain(U, a, c, sig, n, 2)),
    ], args.repeat)
    report(f"eigen chain: d={d}, T={T}, n={n}", res, float(n) * T * d, "numpy eigen chain, 2 threads",
           "lindiff eigen (workers=2)")


def bench_dense(args: argparse.Namespace) -> None:
    d, T, n = (256, 100, 2000) if args.quick else (256, 1000, 10_000)
    m = make_model(d, T)
    W = np.empty((T, d, d))
    b = np.empty((T, d))
    for t in range(1, T + 1):
        W[t - 1], b[t - 1] = m.denoiser(t)
    p, q = _step_coefficients(m.schedule, "ddpm")
    sig = _sigma(m.schedule, "ddpm", "beta", True)
    res = interleaved([
        Contender("lindiff dense (workers=2)",
                  lambda _: lindiff.sample_affine_chain(W, b, m.schedule, n, rng=0, workers=2)),
        Contender("numpy dense chain (OpenBLAS)", lambda _: numpy_dense_chain(W, b, p, q, sig, n)),
    ], args.repeat)
    report(f"dense chain: d={d}, T={T}, n={n} (2·n·d²·T = {2 * n * d * d * T / 1e9:.0f} GFLOP)", res,
           float(n) * T * d, "numpy dense chain (OpenBLAS)", "lindiff dense (workers=2)")
    flops = 2.0 * n * d * d * T
    for k, t in res.items():
        print(f"  {k}: {flops / t.median / 1e9:.1f} GFLOP/s in the GEMMs (upper bound)")


def bench_exact(args: argparse.Namespace) -> None:
    d, n, T, n_chain = (1000, 10_000, 200, 200) if args.quick else (1000, 100_000, 1000, 1000)
    m = make_model(d, T)
    g = m.sampling_distribution()
    mean, s, V = g.mean, g.eigvals, np.ascontiguousarray(g.eigvecs)
    sq = np.sqrt(s)
    gen = np.random.default_rng(0)
    res = interleaved([
        Contender("lindiff exact (workers=2)", lambda _: m.sample(n, rng=0, method="exact", workers=2)),
        Contender("numpy mean + (z*sqrt(s)) @ U.T", lambda _: mean + (gen.standard_normal((n, d)) * sq) @ V.T),
    ], args.repeat)
    report(f"exact: d={d}, n={n}", res, None, "numpy mean + (z*sqrt(s)) @ U.T", "lindiff exact (workers=2)")
    chain = interleaved([Contender("lindiff eigen chain", lambda _: m.sample(n_chain, rng=0, workers=2))],
                        max(1, args.repeat - 1))["lindiff eigen chain"]
    per_chain = chain.median / n_chain
    per_exact = res["lindiff exact (workers=2)"].median / n
    print(f"  eigen chain T={T} on the same model: {fmt_time(chain.median)} for n={n_chain} "
          f"({float(n_chain) * T * d / chain.median / 1e9:.2f} G samples·steps·d/s); per sample "
          f"{per_chain / per_exact:.0f}x the exact draw")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    ap.add_argument("--only", default=",".join(SECTIONS))
    ap.add_argument("--repeat", type=int, default=None)
    args = ap.parse_args()
    if args.repeat is None:
        args.repeat = 2 if args.quick else 3
    print(f"lindiff {lindiff.__version__} ({_core.simd}), numpy {np.__version__}; {cpu_model()}, "
          f"{n_cpus()} cpus, load {os.getloadavg()[0]:.1f}")
    for name in args.only.split(","):
        if name not in SECTIONS:
            raise SystemExit(f"unknown section {name!r}; choose from {SECTIONS}")
        globals()[f"bench_{name}"](args)


if __name__ == "__main__":
    main()
