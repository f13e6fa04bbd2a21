"""Sweeps over d, N, spectrum (or data set), ridge, training time, schedule, sampler and seeds.

:func:`sweep` turns a grid into a tidy :class:`pandas.DataFrame`, one row per configuration. Work
that can be shared is shared:

- one :class:`~lindiff.EmpiricalStats` per (target, d, N, seed): the exact Wishart draw for
  Gaussian targets (so N = 10⁶·d costs what N = d costs), nested prefixes of the shuffled rows for
  real data;
- one eigendecomposition per statistics;
- one :func:`~lindiff.evaluate_grid` call per (T, schedule, sampler, sigma, final_noise) covering
  every ridge × training time;
- the N = ∞ reference (KL_opt) and the Bayes floor once per target and setting (cached per
  process).

A *task* is one (target, d, N, seed) for Gaussian targets and one (data set, seed) for data (its
N values are nested prefixes). Tasks are independent, so they run on a thread pool (the C++ core
releases the GIL) or on a Dask cluster, with identical numbers: every random stream is derived from
SHA-256 of the task's parameters, never from scheduling. With ``results=DIR`` each finished task
is written atomically to a Parquet file (see :mod:`lindiff.store`) and a re-run computes only the
configurations that are missing.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import threading
import uuid
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from itertools import product
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .theory import overlay_columns
from ._progress import Progress
from ._validation import resolve_workers
from .store import (
    EMPIRICAL_COLUMNS,
    MEASURE_COLUMNS,
    PARAM_COLUMNS,
    ResultStore,
    _require,
    canonical_json,
    row_key,
    schema,
    stable_hash,
)

__all__ = ["GRID_KEYS", "load_grid", "summarise", "sweep"]

#: Accepted grid keys and what they mean (also the CLI's flags).
GRID_KEYS: dict[str, str] = {
    "d": "dimensions (list of int >= 1); for data sets, the data's own d (may be omitted)",
    "N": "training-set sizes (list of int >= 2)",
    "N_over_d": "training-set sizes as ratios N/d (list of float); N = round(ratio*d) >= 2",
    "k": "power-law exponents of the Gaussian target's spectrum, lambda_nu ∝ nu^-k (list of float)",
    "ridge": "ridge values gamma >= 0 (list, default [0.0])",
    "train_time": "gradient-flow times tau >= 0; None/inf = the converged optimum (list, default [inf])",
    "T": "diffusion steps (list of int >= 1, default [1000])",
    "schedule": "'paper', 'linear' or 'cosine' (or a list; default 'paper')",
    "sampler": "'ddpm' and/or 'ddim' (default ['ddpm'])",
    "sigma": "'beta' and/or 'beta_tilde' (DDPM noise variance; default ['beta']); DDIM rows say 'none'",
    "final_noise": "true and/or false: noise at the last DDPM step (default [true]); DDIM rows say false",
    "seeds": "number of training sets (int n: seeds 0..n-1) or a list of seeds (default 1)",
    "rotation": "None (axis-aligned target) or 'random' (Haar rotation, fixed per (d, k))",
    "dataset": "a lindiff.datasets name, or an array (n, d) of data; replaces k",
    "data_path": "a .npy/.npz file of data (n, d); replaces k",
    "dataset_options": "keyword arguments for lindiff.datasets.load",
    "drop_constant": "drop the data's constant features first (true/false, default false); d shrinks",
    "n_samples": "samples per configuration for empirical=True (default 10000)",
}

_SCHEDULES = ("paper", "linear", "cosine")
_SAMPLERS = ("ddpm", "ddim")
_SIGMAS = ("beta", "beta_tilde")


# ====================================================================== grid validation
def load_grid(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a grid from a TOML file (top level, or a ``[sweep]`` table)."""
    try:
        import tomllib as toml  # Python >= 3.11
    except ImportError:  # pragma: no cover - Python < 3.11
        try:
            import tomli as toml  # type: ignore[no-redef]
        except ImportError as exc:
            raise ImportError("reading TOML on Python < 3.11 needs tomli: pip install tomli") from exc
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"config file {str(p)!r} does not exist")
    try:
        with open(p, "rb") as fh:
            data = toml.load(fh)
    except toml.TOMLDecodeError as exc:
        raise ValueError(f"config file {str(p)!r} is not valid TOML: {exc}") from exc
    if set(data) == {"sweep"} and isinstance(data["sweep"], dict):
        data = data["sweep"]
    return data


def _as_list(grid: Mapping[str, Any], key: str, default: Any = None) -> list[Any] | None:
    v = grid.get(key)
    if v is None:
        return None if default is None else list(default)
    if isinstance(v, (str, bytes, bool, int, float, np.generic)) or v is None:
        v = [v]
    try:
        out = list(v)
    except TypeError:
        raise ValueError(f"grid key {key!r} must be a value or a list, got {type(v).__name__}") from None
    if not out:
        raise ValueError(f"grid key {key!r} is an empty list: nothing to sweep")
    return out


def _unique(vals: Iterable[Any]) -> list[Any]:
    seen: list[Any] = []
    keys = set()
    for v in vals:
        k = repr(v)
        if k not in keys:
            keys.add(k)
            seen.append(v)
    return seen


def _int(v: Any, key: str, minimum: int) -> int:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer, float, np.floating)):
        raise ValueError(f"{key} must be an integer >= {minimum}, got {v!r}")
    if isinstance(v, (float, np.floating)) and (not math.isfinite(v) or v != round(v)):
        raise ValueError(f"{key} must be an integer >= {minimum}, got {v!r}")
    if int(v) < minimum:
        raise ValueError(f"{key} must be >= {minimum}, got {int(v)}")
    return int(v)


def _float(v: Any, key: str, *, minimum: float | None = None, allow_inf: bool = False) -> float:
    if isinstance(v, str):
        s = v.strip().lower()
        if allow_inf and s in ("inf", "infinity", "none", "opt", "optimum"):
            return math.inf
        try:
            v = float(s)
        except ValueError:
            raise ValueError(f"{key} values must be numbers, got {v!r}") from None
    if v is None and allow_inf:
        return math.inf
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise ValueError(f"{key} values must be numbers, got {v!r}")
    f = float(v)
    if math.isnan(f) or (math.isinf(f) and not (allow_inf and f > 0)):
        raise ValueError(f"{key} values must be finite{' (or inf)' if allow_inf else ''}, got {v!r}")
    if minimum is not None and f < minimum:
        raise ValueError(f"{key} values must be >= {minimum:g}, got {f:g}")
    return f


def _choice(v: Any, key: str, options: Sequence[str]) -> str:
    if not isinstance(v, str) or v not in options:
        raise ValueError(f"{key} must be one of {', '.join(map(repr, options))}, got {v!r}")
    return v


def _bool(v: Any, key: str) -> bool:
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, str) and v.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
        return v.strip().lower() in ("true", "1", "yes")
    raise ValueError(f"{key} values must be true or false, got {v!r}")


class _Plan:
    """A validated grid: its axes, its sources (targets) and its configurations."""

    def __init__(self, grid: Mapping[str, Any]) -> None:
        if not isinstance(grid, Mapping):
            raise TypeError(f"grid must be a dict (or a TOML path), got {type(grid).__name__}")
        unknown = sorted(set(grid) - set(GRID_KEYS))
        if unknown:
            raise ValueError(f"unknown grid key(s) {', '.join(map(repr, unknown))}; valid keys: "
                             + ", ".join(GRID_KEYS))
        g = dict(grid)
        self.ctx: dict[str, Any] = {}  # data set id -> (X, target), shipped to the workers
        # ---------------------------------------------------------------- sources
        has_data = g.get("dataset") is not None or g.get("data_path") is not None
        if g.get("dataset") is not None and g.get("data_path") is not None:
            raise ValueError("give dataset or data_path, not both")
        if "N" in g and "N_over_d" in g:
            raise ValueError("give N or N_over_d, not both")
        if "N" not in g and "N_over_d" not in g:
            raise ValueError("the grid needs N (list of int) or N_over_d (list of float)")
        if has_data:
            if g.get("k") is not None:
                raise ValueError("k (the Gaussian target's spectrum) conflicts with dataset/data_path: "
                                 "the target of a data set is its own Gaussian fit")
            if g.get("rotation") is not None:
                raise ValueError("rotation applies to Gaussian targets, not to dataset/data_path")
            name, X = self._load_data(g)
            if _bool(g.get("drop_constant", False), "drop_constant"):
                keep = np.ptp(X, axis=0) > 0
                if not keep.all():
                    X = np.ascontiguousarray(X[:, keep])
                    name = f"{name}-drop{int((~keep).sum())}"
            from .gaussian import Gaussian

            target = Gaussian.fit(X)
            if target.is_degenerate:
                zero = int(np.sum(target.eigvals <= 0))
                const = int(np.sum(np.ptp(X, axis=0) == 0))
                hint = (f"{const} of its features are constant: set drop_constant = true (--drop-constant)"
                        if const else "project the data onto its leading components first")
                raise ValueError(f"the data set {name!r} has a singular covariance ({zero} zero-variance "
                                 f"directions), so its Gaussian fit cannot be a target; {hint}")
            ds = _as_list(g, "d")
            if ds is not None and [_int(v, "d", 1) for v in ds] != [X.shape[1]]:
                raise ValueError(f"d = {ds} conflicts with the data set's dimension {X.shape[1]}")
            self.ctx[name] = (X, target)
            self.sources = [{"kind": "data", "dataset": name, "k": math.nan, "d": int(X.shape[1]),
                             "rotation": None, "n_rows": int(X.shape[0])}]
        else:
            if g.get("dataset_options") is not None:
                raise ValueError("dataset_options needs dataset")
            if g.get("drop_constant") is not None:
                raise ValueError("drop_constant applies to dataset/data_path, not to Gaussian targets")
            ds = _as_list(g, "d")
            if ds is None:
                raise ValueError("the grid needs d (list of int) for Gaussian targets")
            ks = _as_list(g, "k")
            if ks is None:
                raise ValueError("the grid needs k (list of spectral exponents), or a dataset")
            rotation = g.get("rotation")
            if rotation not in (None, "random", "none", "None"):
                raise ValueError(f"rotation must be None or 'random', got {rotation!r}")
            rotation = "random" if rotation == "random" else None
            name = "gaussian" if rotation is None else "gaussian:rotated"
            d_vals = _unique(_int(v, "d", 1) for v in ds)
            k_vals = _unique(_float(v, "k") for v in ks)
            self.sources = [{"kind": "gaussian", "dataset": name, "k": k, "d": d, "rotation": rotation}
                            for k in k_vals for d in d_vals]
        # ---------------------------------------------------------------- N per d
        self.Ns: dict[int, list[int]] = {}
        for d in _unique(s["d"] for s in self.sources):
            if "N" in g:
                Ns = [_int(v, "N", 2) for v in _as_list(g, "N")]  # type: ignore[union-attr]
            else:
                Ns = []
                for r in _as_list(g, "N_over_d"):  # type: ignore[union-attr]
                    r = _float(r, "N_over_d", minimum=0.0)
                    N = int(round(r * d))
                    if N < 2:
                        raise ValueError(f"N_over_d = {r:g} gives N = {N} < 2 at d = {d}")
                    Ns.append(N)
            self.Ns[d] = sorted(set(Ns))
        for s in self.sources:
            if s["kind"] == "data" and self.Ns[s["d"]][-1] > s["n_rows"]:
                raise ValueError(f"N = {self.Ns[s['d']][-1]} exceeds the {s['n_rows']} rows of the data set "
                                 f"{s['dataset']!r}")
        # ---------------------------------------------------------------- other axes
        self.ridges = _unique(_float(v, "ridge", minimum=0.0) for v in _as_list(g, "ridge", [0.0]))  # type: ignore[union-attr]
        self.times = _unique(_float(v, "train_time", minimum=0.0, allow_inf=True)
                             for v in _as_list(g, "train_time", [None]))  # type: ignore[union-attr]
        self.Ts = _unique(_int(v, "T", 1) for v in _as_list(g, "T", [1000]))  # type: ignore[union-attr]
        self.schedules = _unique(_choice(v, "schedule", _SCHEDULES)
                                 for v in _as_list(g, "schedule", ["paper"]))  # type: ignore[union-attr]
        self.samplers = _unique(_choice(v, "sampler", _SAMPLERS) for v in _as_list(g, "sampler", ["ddpm"]))  # type: ignore[union-attr]
        self.sigmas = _unique(_choice(v, "sigma", _SIGMAS) for v in _as_list(g, "sigma", ["beta"]))  # type: ignore[union-attr]
        self.final_noise = _unique(_bool(v, "final_noise") for v in _as_list(g, "final_noise", [True]))  # type: ignore[union-attr]
        seeds = g.get("seeds", 1)
        if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, (bool, np.bool_)):
            self.seeds = list(range(_int(seeds, "seeds", 1)))
        else:
            self.seeds = _unique(_int(v, "seed", 0) for v in _as_list(g, "seeds"))  # type: ignore[union-attr]
        self.n_samples = _int(g.get("n_samples", 10000), "n_samples", 2)

    # ------------------------------------------------------------------ data
    @staticmethod
    def _load_data(g: Mapping[str, Any]) -> tuple[str, np.ndarray]:
        from ._validation import as_data

        opts = g.get("dataset_options") or {}
        if not isinstance(opts, Mapping):
            raise ValueError("dataset_options must be a table/dict of keyword arguments")
        src = g.get("dataset")
        if src is None:
            path = Path(str(g["data_path"]))
            if not path.is_file():
                raise ValueError(f"data_path {str(path)!r} does not exist")
            if path.suffix == ".npz":
                with np.load(path) as z:
                    if len(z.files) != 1:
                        raise ValueError(f"{path} holds arrays {z.files}; give a .npz with exactly one")
                    X = z[z.files[0]]
            elif path.suffix == ".npy":
                X = np.load(path, allow_pickle=False)
            else:
                raise ValueError(f"data_path must be a .npy or .npz file, got {str(path)!r}")
            label = path.stem
        elif isinstance(src, str):
            try:
                from . import datasets  # type: ignore[attr-defined]
            except ImportError as exc:
                raise ImportError(f"dataset {src!r} needs lindiff.datasets, which this lindiff does not "
                                  "have; pass the data as an array (dataset=X) or a .npy file (data_path)"
                                  ) from exc
            X = datasets.load(src, **dict(opts))
            label = src
        else:
            X = np.asarray(src)
            label = "array"
        try:
            X = np.ascontiguousarray(as_data(X, "dataset", min_rows=2), dtype=np.float64)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"data set {label!r}: {exc}") from None
        if isinstance(src, str) and not opts:
            return src, X  # a named data set: the name is its identity
        digest = stable_hash({"opts": dict(opts), "shape": list(X.shape)}, 8) + \
            __import__("hashlib").sha256(X.tobytes()).hexdigest()[:8]
        return f"{label}:{digest}", X

    # ------------------------------------------------------------------ configurations
    def configs(self) -> list[dict[str, Any]]:
        out = []
        for s in self.sources:
            seen: set[tuple[Any, ...]] = set()
            for N, seed, T, sch, smp, sig, fn, r, tt in product(
                self.Ns[s["d"]], self.seeds, self.Ts, self.schedules, self.samplers, self.sigmas,
                self.final_noise, self.ridges, self.times,
            ):
                sig, fn = _noise_options(smp, sig, fn)
                if (N, seed, T, sch, smp, sig, fn, r, tt) in seen:  # DDIM: one row, whatever sigma
                    continue
                seen.add((N, seed, T, sch, smp, sig, fn, r, tt))
                out.append({"dataset": s["dataset"], "k": s["k"], "d": s["d"], "N": N, "seed": seed,
                            "ridge": r, "train_time": tt, "T": T, "schedule": sch, "sampler": smp,
                            "sigma": sig, "final_noise": fn})
        return out

    def tasks(self, missing: Sequence[Mapping[str, Any]], empirical: bool) -> list[dict[str, Any]]:
        """Group missing configurations into tasks: (source, N, seed) for Gaussian targets,
        (data set, seed) for data (its N are nested prefixes)."""
        src_of = {(s["dataset"], None if math.isnan(s["k"]) else s["k"], s["d"]): s for s in self.sources}
        groups: dict[tuple[Any, ...], dict[int, dict[tuple[Any, ...], list[tuple[float, float]]]]] = {}
        for c in missing:
            s = src_of[(c["dataset"], None if math.isnan(c["k"]) else c["k"], c["d"])]
            tkey = (c["dataset"], c["k"] if s["kind"] == "gaussian" else None, c["d"], c["seed"],
                    c["N"] if s["kind"] == "gaussian" else None)
            setting = (c["T"], c["schedule"], c["sampler"], c["sigma"], c["final_noise"])
            groups.setdefault(tkey, {}).setdefault(c["N"], {}).setdefault(setting, []).append(
                (c["ridge"], c["train_time"]))
        out = []
        for tkey, by_N in groups.items():
            s = src_of[(tkey[0], tkey[1], tkey[2])]
            source = {k: s[k] for k in ("kind", "dataset", "k", "d", "rotation")}
            work = [[N, [[list(st), pairs] for st, pairs in sets.items()]] for N, sets in sorted(by_N.items())]
            spec = {"source": source, "seed": tkey[3], "work": work, "empirical": bool(empirical),
                    "n_samples": self.n_samples if empirical else 0}
            spec["key"] = stable_hash(spec)
            out.append(spec)
        return out


def _noise_options(sampler: str, sigma: str, final_noise: bool) -> tuple[str, bool]:
    """The (sigma, final_noise) recorded for a row. DDIM (η = 0) adds no noise at all, so its rows
    carry sigma = "none" and final_noise = False, once, instead of repeating identical numbers for
    every sigma and final_noise of the grid."""
    return ("none", False) if sampler == "ddim" else (sigma, final_noise)


def _model_options(sampler: str, sigma: str, final_noise: bool) -> dict[str, Any]:
    """Keyword arguments for the model's evaluate/sample calls (DDIM ignores sigma)."""
    return {"sampler": sampler, "sigma": "beta" if sigma == "none" else sigma, "final_noise": bool(final_noise)}


# ====================================================================== the task (runs anywhere)
_CACHE_LOCK = threading.Lock()
_TARGETS: dict[str, Any] = {}
_EXACT: dict[str, Any] = {}
_OPT: dict[tuple[Any, ...], tuple[float, float]] = {}
_BAYES: dict[tuple[Any, ...], float] = {}


def _entropy(obj: Any) -> list[int]:
    """128 bits of SHA-256 of the canonical JSON of ``obj``, as four uint32 for SeedSequence."""
    import hashlib

    digest = hashlib.sha256(canonical_json(obj).encode("ascii")).digest()
    return [int(x) for x in np.frombuffer(digest[:16], dtype="<u4")]


def _source_id(source: Mapping[str, Any]) -> str:
    return canonical_json({k: source[k] for k in ("kind", "dataset", "k", "d", "rotation")})


def _target(source: Mapping[str, Any], ctx: Mapping[str, Any] | None) -> Any:
    if source["kind"] == "data":
        return ctx[source["dataset"]][1]  # type: ignore[index]
    sid = _source_id(source)
    with _CACHE_LOCK:
        hit = _TARGETS.get(sid)
    if hit is None:
        from .targets import GaussianTarget

        rng = None
        if source["rotation"] == "random":
            rng = np.random.default_rng(np.random.SeedSequence(
                _entropy({"purpose": "rotation", "d": source["d"], "k": source["k"]})))
        hit = GaussianTarget.power_law(source["d"], source["k"], rotation=source["rotation"], rng=rng)
        with _CACHE_LOCK:
            hit = _TARGETS.setdefault(sid, hit)
    return hit


def stats_seed(source: Mapping[str, Any], N: int | None, seed: int) -> np.random.SeedSequence:
    """The SeedSequence of one training set: a Wishart draw (Gaussian, ``N`` given) or the row
    shuffle of a data set (``N=None``). Derived from SHA-256 of the parameters only."""
    if source["kind"] == "data":
        # "label:digest" for arrays and files: the digest of the content decides, not the label
        content = source["dataset"].rsplit(":", 1)[-1]
        return np.random.SeedSequence(_entropy({"purpose": "shuffle", "data": content, "seed": int(seed)}))
    return np.random.SeedSequence(_entropy({"purpose": "wishart", "dataset": source["dataset"],
                                            "k": source["k"], "d": source["d"], "N": int(N),  # type: ignore[arg-type]
                                            "seed": int(seed)}))


def _schedule(T: int, name: str) -> Any:
    from .schedule import Schedule

    return {"paper": Schedule.paper, "linear": Schedule.linear, "cosine": Schedule.cosine}[name](T)


def _exact_stats(sid: str, target: Any, workers: int) -> Any:
    with _CACHE_LOCK:
        hit = _EXACT.get(sid)
    if hit is None:
        from .stats import EmpiricalStats

        # The target's own eigen form: no eigendecomposition of its covariance is needed.
        hit = EmpiricalStats._from_eigen(2**62, target.mean, target.eigvals, target.eigvecs)
        with _CACHE_LOCK:
            hit = _EXACT.setdefault(sid, hit)
    return hit


def _opt_values(sid: str, target: Any, setting: Sequence[Any], ridges: Sequence[float],
                times: Sequence[float], workers: int) -> dict[tuple[float, float], tuple[float, float]]:
    """KL at N = ∞ (the exact moments) for each (ridge, time), cached per process."""
    from .model import evaluate_grid

    key = (sid, *setting)
    with _CACHE_LOCK:
        have = {(r, t): _OPT[(*key, r, t)] for r in ridges for t in times if (*key, r, t) in _OPT}
    need_r = _unique(r for r in ridges for t in times if (r, t) not in have)
    need_t = _unique(t for r in ridges for t in times if (r, t) not in have)
    if need_r:
        T, sch, smp, sig, fn = setting
        g = evaluate_grid(_exact_stats(sid, target, workers), target, _schedule(T, sch), ridge=need_r,
                          train_time=need_t, workers=workers, **_model_options(smp, sig, fn))
        with _CACHE_LOCK:
            for i, r in enumerate(need_r):
                for j, t in enumerate(need_t):
                    val = (float(g.kl_forward[i, j]), float(g.kl_reverse[i, j]))
                    _OPT.setdefault((*key, r, t), val)
                    have.setdefault((r, t), val)
    return have


def _bayes(sid: str, target: Any, T: int, sch: str, workers: int) -> float:
    key = (sid, T, sch)
    with _CACHE_LOCK:
        hit = _BAYES.get(key)
    if hit is None:
        from .model import LinearDiffusion

        model = LinearDiffusion(_exact_stats(sid, target, workers), _schedule(T, sch), workers=workers)
        hit = float(np.mean(model.bayes_floor(target)))
        with _CACHE_LOCK:
            _BAYES[key] = hit
    return hit


def _run_task(spec: Mapping[str, Any], ctx: Mapping[str, Any] | None, workers: int = 1) -> dict[str, list[Any]]:
    """Compute every row of one task; returns columns (a dict of equal-length lists)."""
    from .measures import gaussian_fit_kl
    from .model import LinearDiffusion, evaluate_grid
    from .stats import EmpiricalStats

    source = spec["source"]
    sid = _source_id(source)
    target = _target(source, ctx)
    seed = int(spec["seed"])
    Ns = [int(N) for N, _ in spec["work"]]
    if source["kind"] == "data":
        X = ctx[source["dataset"]][0]  # type: ignore[index]
        perm = np.random.default_rng(stats_seed(source, None, seed)).permutation(X.shape[0])
        all_stats = EmpiricalStats.prefixes(X[perm[: Ns[-1]]], Ns, workers=workers)
    else:
        all_stats = [target.empirical_stats(N, rng=stats_seed(source, N, seed), workers=workers) for N in Ns]
    cols: dict[str, list[Any]] = {c: [] for c in PARAM_COLUMNS + MEASURE_COLUMNS + EMPIRICAL_COLUMNS}
    for (N, settings), stats in zip(spec["work"], all_stats):
        stats.eigh("primal", workers=workers)  # one eigendecomposition for every setting below
        th = overlay_columns(source["d"], int(N))
        for setting, pairs in settings:
            T, sch, smp, sig, fn = setting
            ridges = _unique(float(r) for r, _ in pairs)
            times = _unique(float(t) for _, t in pairs)
            schedule = _schedule(T, sch)
            g = evaluate_grid(stats, target, schedule, ridge=ridges, train_time=times, workers=workers,
                              **_model_options(smp, sig, fn))
            opt = _opt_values(sid, target, setting, ridges, times, workers)
            bayes = _bayes(sid, target, T, sch, workers)
            ri = {r: i for i, r in enumerate(ridges)}
            ti = {t: j for j, t in enumerate(times)}
            for r, t in pairs:
                i, j = ri[float(r)], ti[float(t)]
                kf, kr = float(g.kl_forward[i, j]), float(g.kl_reverse[i, j])
                of, orv = opt[(float(r), float(t))]
                row = {"dataset": source["dataset"], "k": source["k"], "d": source["d"], "N": int(N),
                       "seed": seed, "ridge": float(r), "train_time": float(t), "T": int(T),
                       "schedule": sch, "sampler": smp, "sigma": sig, "final_noise": bool(fn),
                       "kl_forward": kf, "kl_reverse": kr, "kl_opt_forward": of, "kl_opt_reverse": orv,
                       "excess_forward": kf - of, "excess_reverse": kr - orv,
                       "train_loss": float(g.train_loss[i, j]), "test_loss": float(g.test_loss[i, j]),
                       "bayes_loss": bayes, **th,
                       "emp_kl_forward": math.nan, "emp_kl_reverse": math.nan, "n_samples": 0}
                if spec["empirical"]:
                    model = LinearDiffusion(stats, schedule, ridge=float(r),
                                            train_time=None if math.isinf(t) else float(t), workers=workers)
                    rng = np.random.SeedSequence(_entropy({"purpose": "samples", **{
                        c: row[c] for c in PARAM_COLUMNS}}))
                    samples = model.sample(int(spec["n_samples"]), rng=rng, **_model_options(smp, sig, fn))
                    emp = gaussian_fit_kl(samples, target, "both", workers=workers)
                    row["emp_kl_forward"], row["emp_kl_reverse"] = float(emp["forward"]), float(emp["reverse"])
                    row["n_samples"] = int(spec["n_samples"])
                for c in cols:
                    cols[c].append(row[c])
    return cols


def _execute(spec: Mapping[str, Any], ctx: Mapping[str, Any] | None, workers: int) -> dict[str, list[Any]]:
    # Looks _run_task up at call time (tests patch it to inject failures).
    return _run_task(spec, ctx, workers)


def _single_threaded_blas() -> Any:
    """NumPy's own BLAS calls (the small products around the C++ kernels) on one thread, so that
    their rounding never depends on how many tasks share the process: local and Dask runs then give
    identical numbers. Needs threadpoolctl (else a no-op: results may then differ in the last bits
    between a local run and Dask workers started with OPENBLAS_NUM_THREADS=1)."""
    global _CONTROLLER
    if _CONTROLLER is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # pragma: no cover - threadpoolctl is in the test and bench extras
            return contextlib.nullcontext()
        # One controller per process: building one scans the loaded libraries (1.6 ms), and a
        # Dask worker enters this once per batch. NumPy's BLAS is loaded before lindiff's core.
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=1, user_api="blas")


_CONTROLLER: Any = None


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
_GLIBC_MMAP_DEFAULT = 128 * 1024  # glibc's M_MMAP_THRESHOLD when its dynamic adjustment is off
_MALLOC_LOCK = threading.Lock()
_MALLOC_DEPTH = 0


@contextlib.contextmanager
def _keep_freed_memory() -> Any:
    """Inside a Dask worker: keep freed memory in the process for the duration of a batch.

    Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536`` (its
    ``distributed.nanny.pre-spawn-environ``), which also switches off glibc's dynamic mmap
    threshold: every d×d temporary (2 MB at d = 500) is then mmap'ed, page-faulted page by page and
    returned to the OS when freed. A task makes about ten of them, which cost 20% more CPU than the
    same task in a normal process (measured: 8 ms of page faults per task at d = 500). For one batch
    of tasks this raises glibc's thresholds (``mallopt``), then restores Dask's values and hands
    the freed memory back to the OS (``malloc_trim``), so between batches the worker's memory is
    released as Dask intends. A no-op unless glibc and that environment variable are present.
    """
    global _MALLOC_DEPTH
    libc = None
    trim = os.environ.get("MALLOC_TRIM_THRESHOLD_")
    if trim is not None and sys.platform.startswith("linux"):
        try:
            import ctypes
            import platform

            if platform.libc_ver()[0] == "glibc":
                libc = ctypes.CDLL(None)
                libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
                libc.malloc_trim.argtypes = [ctypes.c_size_t]
                old_trim = int(trim)
                old_mmap = int(os.environ.get("MALLOC_MMAP_THRESHOLD_", _GLIBC_MMAP_DEFAULT))
        except (OSError, AttributeError, ValueError):  # pragma: no cover - unusual libc
            libc = None
    if libc is None:
        yield
        return
    with _MALLOC_LOCK:
        _MALLOC_DEPTH += 1
        if _MALLOC_DEPTH == 1:
            libc.mallopt(_M_MMAP_THRESHOLD, 32 * 1024 * 1024)  # glibc's ceiling for the threshold
            libc.mallopt(_M_TRIM_THRESHOLD, 256 * 1024 * 1024)
    try:
        yield
    finally:
        with _MALLOC_LOCK:
            _MALLOC_DEPTH -= 1
            if _MALLOC_DEPTH == 0:
                libc.mallopt(_M_MMAP_THRESHOLD, old_mmap)
                libc.mallopt(_M_TRIM_THRESHOLD, old_trim)
                libc.malloc_trim(0)


def _dask_batch(specs_json: str, ctx: Mapping[str, Any] | None) -> list[dict[str, list[Any]]]:
    # Specs travel as JSON text (floats by repr, so exact): Dask does not walk a string looking for
    # futures, which for nested lists of (ridge, time) pairs costs more than a small task.
    with _single_threaded_blas(), _keep_freed_memory():
        return [_run_task(spec, ctx, 1) for spec in json.loads(specs_json)]


# ====================================================================== the driver
def _run_local(tasks: list[dict[str, Any]], ctx: Mapping[str, Any], workers: int | None,
               sink: Any) -> None:
    n = min(resolve_workers(workers), max(len(tasks), 1))
    inner = 1 if n > 1 else resolve_workers(workers)
    if n == 1:
        for spec in tasks:
            sink(spec, _execute(spec, ctx, inner))
        return
    error: BaseException | None = None
    with ThreadPoolExecutor(max_workers=n, thread_name_prefix="lindiff-sweep") as pool:
        # Keep at most 2n tasks queued so that an error stops the sweep quickly.
        pending: dict[Any, dict[str, Any]] = {}
        it = iter(tasks)
        while True:
            while error is None and len(pending) < 2 * n:
                spec = next(it, None)
                if spec is None:
                    break
                pending[pool.submit(_execute, spec, ctx, inner)] = spec
            if not pending:
                break
            done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for f in done:
                spec = pending.pop(f)
                exc = f.exception()
                if exc is not None:
                    error = error or exc
                    continue
                sink(spec, f.result())
    if error is not None:
        raise error


def _batches(tasks: list[dict[str, Any]], threads: int) -> list[list[dict[str, Any]]]:
    """Consecutive batches of tasks for Dask: up to 8 tasks (about 32 batches per worker thread),
    so that the scheduler's per-task cost is paid once per batch, and single tasks for the last
    2 per thread, so that the workers finish together. Batching never changes a number (every
    task has its own random streams)."""
    size = max(1, min(8, len(tasks) // (32 * threads)))
    tail = min(len(tasks), 2 * threads) if size > 1 else 0
    head = len(tasks) - tail
    out = [tasks[i:min(i + size, head)] for i in range(0, head, size)]
    return out + [[t] for t in tasks[head:]]


def _run_dask(tasks: list[dict[str, Any]], ctx: Mapping[str, Any], client: Any, sink: Any) -> None:
    try:
        from distributed import as_completed
    except ImportError as exc:
        raise ImportError("client= needs dask.distributed: pip install 'lindiff[dask]'") from exc
    if not tasks:
        return
    ctx_f = client.scatter([dict(ctx)], broadcast=True)[0] if ctx else None
    run = uuid.uuid4().hex[:8]
    threads = max(1, sum(client.nthreads().values()))
    futures = {}
    for batch in _batches(tasks, threads):
        f = client.submit(_dask_batch, json.dumps(batch), ctx_f,
                          key=f"lindiff-sweep-{batch[0]['key']}-{len(batch)}-{run}")
        futures[f.key] = (f, batch)
    error: BaseException | None = None
    finished = False
    try:
        # Each future is yielded once, whatever happened to the worker that first ran it (the
        # scheduler reruns tasks lost with a worker), so each task's rows are written once.
        for f in as_completed([f for f, _ in futures.values()]):
            batch = futures[f.key][1]
            if f.status == "error":
                error = error or f.exception()
                continue
            if f.status == "cancelled":
                error = error or RuntimeError(f"dask cancelled task {batch[0]['key']}")
                continue
            for spec, cols in zip(batch, f.result()):
                sink(spec, cols)
            f.release()
        finished = True
    finally:
        if not finished or error is not None:
            client.cancel([f for f, _ in futures.values() if not f.done()])
    if error is not None:
        raise error


def sweep(
    grid: Mapping[str, Any] | str | os.PathLike[str],
    *,
    results: str | os.PathLike[str] | None = None,
    client: Any = None,
    workers: int | None = None,
    progress: bool | None = None,
    empirical: bool = False,
) -> Any:
    """Evaluate the closed-form model over a grid; one row per configuration.

    Parameters
    ----------
    grid : dict or path of a TOML file
        Keys (see :data:`GRID_KEYS`): ``d``, ``N`` or ``N_over_d``, ``k`` (or ``dataset`` /
        ``data_path``), ``ridge``, ``train_time``, ``T``, ``schedule``, ``sampler``, ``sigma``,
        ``final_noise``, ``seeds``, ``rotation``. Each takes a value or a list; the grid is their
        product. Unknown keys, empty lists, N < 2, d < 1 or conflicting keys raise ``ValueError``.
    results : path, optional
        A results directory (:mod:`lindiff.store`): finished tasks are written there atomically as
        they complete, and configurations already there are not recomputed.
    client : dask.distributed.Client or address, optional
        Run the tasks on this Dask cluster (numbers identical to the local run).
    workers : int, optional
        Local threads (None or -1: all cores). Tasks run in parallel with single-threaded kernels.
    progress : bool, optional
        A tqdm progress bar on stderr; default: only when stderr is a terminal.
    empirical : bool
        Also generate ``n_samples`` samples per configuration (``LinearDiffusion.sample``) and add
        the Gaussian-fit KL columns ``emp_kl_forward``, ``emp_kl_reverse`` and ``n_samples``. A
        results store re-uses sample-based rows only when they were made with the same
        ``n_samples``.

    Returns
    -------
    pandas.DataFrame
        Columns: the parameters ``dataset, k, d, N, seed, ridge, train_time, T, schedule, sampler,
        sigma, final_noise`` (DDIM, which adds no noise, has one row per configuration with
        ``sigma = "none"`` and ``final_noise = False``) and the measures ``kl_forward, kl_reverse`` (exact KL of the generated
        law to the target), ``kl_opt_forward, kl_opt_reverse`` (the same settings built from the
        exact target moments, N = ∞), ``excess_* = kl_* − kl_opt_*``, ``train_loss, test_loss``
        (averaged over t), ``bayes_loss`` (the t-averaged Bayes floor), and the theory.md §6
        overlays ``theory_large_n = (d²+3d)/(4N)``, ``theory_ideal_*`` (Wishart expectation of the
        ideal sampler), ``theory_mp_*`` (d × Marchenko–Pastur limit; inf for N ≤ d).
    """
    pd = _require("pandas")
    _require("pyarrow")
    if isinstance(grid, (str, os.PathLike)):
        grid = load_grid(grid)
    plan = _Plan(grid)
    if empirical:
        from .model import LinearDiffusion

        if not hasattr(LinearDiffusion, "sample"):
            raise NotImplementedError("empirical=True needs LinearDiffusion.sample (the samplers issue), "
                                      "which this lindiff does not have yet")
    if client is not None and isinstance(client, str):
        try:
            from distributed import Client
        except ImportError as exc:
            raise ImportError("a Dask scheduler needs dask.distributed: pip install 'lindiff[dask]'") from exc
        client = Client(client)
        own_client = True
    else:
        own_client = False
    configs = plan.configs()
    keys = [row_key(c) for c in configs]
    store = ResultStore(results) if results is not None else None
    have = store.keys(n_samples=plan.n_samples if empirical else None) if store is not None else set()
    missing = [c for c, k in zip(configs, keys) if k not in have]
    tasks = plan.tasks(missing, empirical)
    wanted = set(keys)
    collected: list[dict[str, list[Any]]] = []
    bar = Progress(len(missing), progress, "lindiff sweep", "cfg")

    def sink(spec: Mapping[str, Any], cols: dict[str, list[Any]]) -> None:
        if store is not None:
            store.write(spec["key"], cols)
        else:
            collected.append(cols)
        bar.update(len(cols["dataset"]))

    try:
        if client is not None:
            _run_dask(tasks, plan.ctx, client, sink)
        elif tasks:
            with _single_threaded_blas():
                _run_local(tasks, plan.ctx, workers, sink)
    finally:
        bar.close()
        if own_client:
            client.close()

    pa = _require("pyarrow")
    sch = schema()
    if store is not None:
        table = store.read_table(plan.n_samples if empirical else None)
    elif collected:
        table = pa.concat_tables([pa.Table.from_pydict(c, schema=sch) for c in collected])
    else:
        table = sch.empty_table()
    df = table.to_pandas()
    row_keys = [row_key(dict(zip(PARAM_COLUMNS, v)))
                for v in zip(*(df[c].tolist() for c in PARAM_COLUMNS))] if len(df) else []
    pos = {k: i for i, k in enumerate(keys)}
    idx = [(pos[k], i) for i, k in enumerate(row_keys) if k in wanted]
    idx.sort()
    df = df.iloc[[i for _, i in idx]].reset_index(drop=True)
    if len(df) != len(configs):  # pragma: no cover - a bug, never a user error
        raise RuntimeError(f"sweep produced {len(df)} rows for {len(configs)} configurations")
    cols = list(PARAM_COLUMNS + MEASURE_COLUMNS) + (list(EMPIRICAL_COLUMNS) if empirical else [])
    return df[cols]


# ====================================================================== summary (CLI)
def summarise(df: Any, max_rows: int = 40) -> str:
    """A short text table: per (dataset, k, d, N), the mean over seeds of the γ = 0 (or smallest
    ridge), optimal-τ forward excess KL beside (d²+3d)/(4N), and the best ridge's mean KL."""
    if len(df) == 0:
        return "(no rows)"
    base = df[df["train_time"] == math.inf] if (df["train_time"] == math.inf).any() else df
    base = base.assign(_k=[("-" if math.isnan(k) else f"{k:g}") for k in base["k"]])
    keys = ["dataset", "_k", "d", "N"]
    r0 = base["ridge"].min()
    ex = base[base["ridge"] == r0].groupby(keys, sort=False)["excess_forward"].mean()
    law = base.groupby(keys, sort=False)["theory_large_n"].first()
    per_ridge = base.groupby(keys + ["ridge"], sort=False)["kl_forward"].mean().reset_index()
    best = per_ridge.loc[per_ridge.groupby(keys, sort=False)["kl_forward"].idxmin()].set_index(keys)
    lines = [f"{'dataset':>16} {'k':>5} {'d':>5} {'N':>9} {'N/d':>8} {'excess KL':>11} "
             f"{'(d²+3d)/4N':>11} {'ratio':>7} {'best ridge':>10} {'its KL':>10}",
             f"(excess KL: forward KL − KL at N = ∞, ridge {r0:g}, converged training, mean over seeds)"]
    for i, (key, e) in enumerate(ex.items()):
        if i >= max_rows:
            lines.append(f"... {len(ex) - max_rows} more groups")
            break
        ds, k, d, N = key
        b = best.loc[key]
        lines.append(f"{ds[:16]:>16} {k:>5} {d:5d} {N:9d} {N / d:8.3g} {e:11.4g} {law[key]:11.4g} "
                     f"{e / law[key]:7.3f} {b['ridge']:10.3g} {b['kl_forward']:10.4g}")
    return "\n".join(lines)
