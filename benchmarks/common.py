"""Timing helpers shared by lindiff's benchmark scripts.

Nothing here depends on lindiff: the helpers time callables, describe the machine and format
tables. Principles (see README.md in this folder):

- Contenders for the same job run in the same process, *interleaved*: every repeat runs each
  contender once, and the order rotates from one repeat to the next, so slow drifts of a shared,
  noisy host (other tenants, frequency changes) hit every contender alike.
- We report medians, with the min-max spread, never means.
- Calls that take less than ``min_sample`` seconds are looped so that one sample lasts about that
  long (the per-call time is the loop time divided by the count); per-call setup (fresh objects)
  is done before the loop and is not timed.
"""

from __future__ import annotations

import gc
import json
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np


_CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
_clock = time.perf_counter


def set_clock(name: str) -> None:
    """``"wall"`` (default): elapsed time. ``"cpu"``: CPU time of the whole process (all threads).

    CPU time is robust to other tenants taking the cores, but only meaningful single-threaded
    (``--threads 1``): with more threads it also counts OpenBLAS's busy-waiting workers.
    """
    global _clock
    _clock = _CLOCKS[name]


def add_threads_clock_options(ap: Any) -> None:
    """--threads (a threadpoolctl limit on NumPy's BLAS pool, also lindiff's workers) and --clock."""
    ap.add_argument("--threads", type=int, default=None,
                    help="threadpoolctl limit on NumPy's BLAS pool; also sets --workers")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="cpu: process CPU time (robust on a busy host; meaningful with --threads 1)")


def apply_threads_clock(args: Any) -> Any:
    """Apply --clock and --threads; returns the threadpoolctl limiter (keep it alive) or None."""
    set_clock(args.clock)
    if args.threads is None:
        return None
    args.workers = args.threads
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        print("# threadpoolctl not installed: --threads only sets lindiff's workers")
        return None
    return threadpool_limits(limits=args.threads, user_api="blas")


def two_threads_one_blas(run: Callable[[int, np.random.SeedSequence], np.ndarray], n: int,
                         seed: int = 0) -> np.ndarray:
    """The strongest plain-NumPy form of a batched chain on two cores: two Python threads, each
    running ``run(n_half, seed_seq)`` on half of the samples with its own SeedSequence child, with
    OpenBLAS limited to one thread (threadpoolctl). NumPy releases the GIL in its GEMMs and ufuncs,
    so both cores work on the whole step (noise and updates too), not only inside the GEMMs."""
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    halves = [n // 2, n - n // 2]
    seqs = np.random.SeedSequence(seed).spawn(2)
    with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(2) as ex:
        parts = list(ex.map(run, halves, seqs))
    return np.concatenate(parts)


def wait_for_idle(max_load: float, timeout: float) -> float:
    """Wait (up to ``timeout`` s) until the 1-minute load average drops below ``max_load``."""
    t0 = time.monotonic()
    while os.getloadavg()[0] >= max_load and time.monotonic() - t0 < timeout:
        time.sleep(5)
    return os.getloadavg()[0]


@dataclass
class Contender:
    """One way of doing the job. ``fn(setup())`` is timed; ``setup`` (optional) is not."""

    name: str
    fn: Callable[[Any], Any]
    setup: Callable[[], Any] | None = None


@dataclass
class Timing:
    name: str
    samples: list[float] = field(default_factory=list)  # seconds per call, one per repeat
    number: int = 1  # calls per sample

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def spread(self) -> tuple[float, float]:
        return min(self.samples), max(self.samples)


def _time_once(c: Contender, number: int) -> float:
    args = [c.setup() if c.setup is not None else None for _ in range(number)]
    gc.collect()
    gc.disable()
    try:
        t0 = _clock()
        for a in args:
            c.fn(a)
        t1 = _clock()
    finally:
        gc.enable()
    del args
    return (t1 - t0) / number


def interleaved(
    contenders: list[Contender], repeat: int, *, min_sample: float = 0.02, warmup: int = 1
) -> dict[str, Timing]:
    """Time every contender ``repeat`` times, interleaved, rotating the order each repeat.

    The warm-up call (untimed by the statistics) also calibrates how many calls make one sample.
    """
    out: dict[str, Timing] = {}
    for c in contenders:
        t = min(_time_once(c, 1) for _ in range(max(warmup, 1)))
        number = 1 if t >= min_sample else min(1000, math.ceil(min_sample / max(t, 1e-7)))
        out[c.name] = Timing(c.name, number=number)
    k = len(contenders)
    for r in range(repeat):
        order = contenders[r % k:] + contenders[: r % k]
        for c in order:
            out[c.name].samples.append(_time_once(c, out[c.name].number))
    return out


# ---------------------------------------------------------------------------- machine description
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def n_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        return os.cpu_count() or 1


def threadpool_summary() -> list[dict[str, Any]]:
    """threadpoolctl's view of the BLAS/OpenMP pools loaded in this process (empty if absent)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return [{"error": "threadpoolctl not installed"}]
    keep = ("user_api", "internal_api", "num_threads", "version", "architecture",
            "threading_layer", "filepath")
    return [{k: p.get(k) for k in keep} for p in threadpool_info()]


def measured_peak(n: int = 2048, repeat: int = 3) -> float:
    """FP64 GFLOP/s of NumPy's DGEMM at n×n (best of ``repeat``): the machine's practical peak."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n))
    b = rng.standard_normal((n, n))
    a @ b  # warm the pool
    best = min(_time_once(Contender("gemm", lambda _: a @ b), 1) for _ in range(repeat))
    return 2.0 * n**3 / best / 1e9


def versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0], "numpy": np.__version__}
    try:
        import scipy

        out["scipy"] = scipy.__version__
    except ImportError:
        out["scipy"] = "-"
    return out


# ---------------------------------------------------------------------------- formatting
def fmt_time(t: float | None) -> str:
    if t is None or not math.isfinite(t):
        return "-"
    if t >= 1.0:
        return f"{t:.3g} s"
    if t >= 1e-3:
        return f"{t * 1e3:.3g} ms"
    return f"{t * 1e6:.3g} us"


def fmt_ratio(r: float | None) -> str:
    if r is None or not math.isfinite(r):
        return "-"
    return f"{r:.3g}x" if r < 100 else f"{r:.0f}x"


def table(headers: list[str], rows: list[list[str]], *, indent: str = "  ") -> str:
    cols = list(zip(headers, *rows)) if rows else [(h,) for h in headers]
    widths = [max(len(str(x)) for x in col) for col in cols]
    lines = [indent + "  ".join(str(h).rjust(w) for h, w in zip(headers, widths))]
    lines.append(indent + "  ".join("-" * w for w in widths))
    for r in rows:
        lines.append(indent + "  ".join(str(x).rjust(w) for x, w in zip(r, widths)))
    return "\n".join(lines)


def spread_str(t: Timing) -> str:
    lo, hi = t.spread
    return f"{fmt_time(lo)}..{fmt_time(hi)}"


def dump_json(path: str, payload: dict[str, Any]) -> None:
    with open(path, "w") as f:
        json.dump(payload, f, indent=1, default=float)
