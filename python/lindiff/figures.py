"""The paper's figures: theory as lines, simulation as points with error bars over seeds.

Figures 1–4 read a tidy :class:`pandas.DataFrame` with the columns of :func:`lindiff.sweep`
(:data:`COLUMNS`); figure 5 takes model objects; figure 6 computes its own data (or reads a
DataFrame of real-data rows). Each function returns a :class:`matplotlib.figure.Figure` built
without pyplot (no global state, no GUI backend needed: ``fig.savefig`` works headless); in a
notebook, display it with ``display(fig)`` or just leave it as the cell's value.

======  ===========================  ========================================================
figure  function                     shows
======  ===========================  ========================================================
1       :func:`kl_vs_n`              excess KL (KL − KL at N = ∞) vs N/d, log-log, per spectrum
                                     k; lines: (d²+3d)/(4N), the ideal sampler's Wishart
                                     expectation and its Marchenko–Pastur limit
2       :func:`losses_vs_n`          train and test loss per dimension vs N/d, the gap shaded;
                                     lines: Bayes floor, deterministic equivalents (Gaussian)
3       :func:`kl_vs_ridge`          KL vs ridge γ for one N < d and one N > d, optimum marked
4       :func:`kl_vs_training_time`  KL and test loss vs gradient-flow time τ, optimal stopping
                                     time marked
5       :func:`spectra`              target, empirical and generated eigenvalues, rank-ordered
6       :func:`kl_vs_n_real`         figure 1 on real data (digits, image patches,
                                     Fashion-MNIST), the Gaussian fit of the full data set as
                                     target, N by nested prefixes of a shuffled data set
======  ===========================  ========================================================

:func:`render_all` writes PNGs of every figure the rows of a DataFrame support;
:func:`paper_figures` computes small default data for all six, and lindiff's memorisation and
training-vs-theory figures, and writes them (``lindiff paper-figures``); ``lindiff figures``
renders figures 1–4 from a results directory of ``lindiff sweep``.

Choosing rows
-------------
A figure varies some columns (N, k and seed for figure 1) and needs one value of every other
parameter column. Where a DataFrame holds several, the figure takes ``ridge = 0`` and
``train_time = inf`` (the converged, unregularised model) when present, and otherwise the most
frequent value; pass ``where={"T": 100, ...}`` to choose. The values used are shown in the title.
Figures 1–4 use the synthetic (``dataset == "gaussian"``) rows when there are any.

Error bars are ±1 standard deviation over seeds (training sets). On log axes a lower bar that would
reach 0 is clipped at a tenth of the mean; points whose mean is not finite and positive (e.g. an
infinite KL of a degenerate generated law) are left out.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import numpy as np

from .theory import overlay_columns

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from .gaussian import Gaussian
    from .model import LinearDiffusion
    from .stats import EmpiricalStats

__all__ = [
    "COLUMNS",
    "NotApplicable",
    "gaussian_frame",
    "kl_vs_n",
    "kl_vs_n_real",
    "kl_vs_ridge",
    "kl_vs_training_time",
    "losses_vs_n",
    "MEMORISATION_COLUMNS",
    "memorisation_frame",
    "memorisation_vs_n",
    "paper_figures",
    "real_data_frame",
    "render_all",
    "spectra",
]

#: The columns of a results DataFrame (as produced by :func:`lindiff.sweep`).
COLUMNS = (
    "dataset", "k", "d", "N", "seed", "ridge", "train_time", "T", "schedule", "sampler", "sigma",
    "final_noise", "kl_forward", "kl_reverse", "kl_opt_forward", "kl_opt_reverse",
    "excess_forward", "excess_reverse", "train_loss", "test_loss", "bayes_loss",
    "theory_large_n", "theory_ideal_forward", "theory_ideal_reverse", "theory_mp_forward",
    "theory_mp_reverse",
)
_PARAMS = ("dataset", "d", "T", "schedule", "sampler", "sigma", "final_noise", "ridge",
           "train_time", "N", "k")
_DIRECTIONS = ("forward", "reverse")
_DIR_LABEL = {"forward": r"KL(target $\|$ generated)", "reverse": r"KL(generated $\|$ target)"}
_REAL_DEFAULT = ("digits", "patches", "fashion_mnist")


class NotApplicable(ValueError):
    """The rows given do not contain what a figure needs (e.g. fewer than two values of N)."""


# ============================================================================ plumbing
def _mpl() -> Any:
    try:
        import matplotlib
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the extras
        raise ImportError("lindiff.figures needs matplotlib: pip install 'lindiff[plot]'") from exc
    return matplotlib, Figure


def _pd() -> Any:
    try:
        import pandas as pd
    except ImportError as exc:  # pragma: no cover - depends on the extras
        raise ImportError("lindiff.figures needs pandas: pip install 'lindiff[plot,sweep]'"
                          ) from exc
    return pd


def _new_figure(ncols: int = 1, *, width: float = 6.4, height: float = 4.6,
                sharey: bool = False) -> tuple[Figure, list[Axes]]:
    _, Figure = _mpl()
    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False, sharey=sharey)[0]
    return fig, list(axes)


def _check_frame(df: Any, needed: Iterable[str] = COLUMNS) -> pd.DataFrame:
    pd = _pd()
    if not isinstance(df, pd.DataFrame):
        raise TypeError(
            f"expected a pandas DataFrame (from lindiff.sweep), got {type(df).__name__}")
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise ValueError(f"the DataFrame lacks the columns {missing} (see lindiff.figures.COLUMNS)")
    if len(df) == 0:
        raise NotApplicable("the DataFrame has no rows")
    return df


def _check_direction(direction: str) -> str:
    if direction not in _DIRECTIONS:
        raise ValueError(f"direction must be 'forward' or 'reverse', got {direction!r}")
    return direction


def _equal(col: Any, value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return col.isna()
    return col == value


def _mode(col: Any) -> Any:
    counts = col.value_counts(dropna=False, sort=False)
    best = counts.max()
    tied = [v for v, c in counts.items() if c == best]
    try:
        return sorted(tied)[0]
    except TypeError:
        return tied[0]


def _select(df: pd.DataFrame, vary: set[str], where: Mapping[str, Any] | None,
            prefer: Mapping[str, Any]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Fix every parameter column not in ``vary``: ``where`` first, then ``prefer`` when present,
    then the most frequent value. Returns the rows and the values fixed."""
    sub = df
    chosen: dict[str, Any] = {}
    for col, val in (where or {}).items():
        if col not in df.columns:
            raise ValueError(f"where= names an unknown column {col!r}")
        sub = sub[_equal(sub[col], val)]
        chosen[col] = val
        if len(sub) == 0:
            raise NotApplicable(f"no rows with {col} = {val!r}")
    if "dataset" not in chosen and "dataset" in vary and (sub["dataset"] == "gaussian").any():
        sub = sub[sub["dataset"] == "gaussian"]
        chosen["dataset"] = "gaussian"
    for col in _PARAMS:
        if col in vary or col in chosen:
            continue
        values = sub[col].unique()
        if len(values) == 1:
            chosen[col] = values[0]
            continue
        pick = prefer.get(col)
        if pick is None or not _equal(sub[col], pick).any():
            pick = _mode(sub[col])
        sub = sub[_equal(sub[col], pick)]
        chosen[col] = pick
    return sub, chosen


def _describe(chosen: Mapping[str, Any], skip: Iterable[str] = ()) -> str:
    parts = []
    skip = set(skip)
    for key, fmt in (("d", "d = {:g}"), ("T", "T = {:g}"), ("schedule", "{} schedule"),
                     ("sampler", "{}"), ("ridge", r"$\gamma$ = {:g}"),
                     ("train_time", r"$\tau$ = {:g}")):
        if key in chosen and key not in skip:
            v = chosen[key]
            if key == "train_time" and v == np.inf:
                parts.append(r"$\tau = \infty$")
            else:
                parts.append(fmt.format(v))
    return ", ".join(parts)


def _groups(sub: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """Curves: one per (dataset, k), gaussian spectra first by k, then data sets by name."""
    out = []
    for (ds, k), g in sub.groupby(["dataset", "k"], dropna=False, sort=False):
        if ds == "gaussian":
            label, key = f"k = {k:g}", (0, float(k), "")
        else:
            label, key = str(ds), (1, 0.0, str(ds))
        out.append((key, label, g))
    out.sort(key=lambda t: t[0])
    return [(label, g) for _, label, g in out]


def _aggregate(g: pd.DataFrame, x: str, y: str | Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and standard deviation over seeds of ``y`` (a column name or a Series) at each ``x``."""
    vals = g[y] if isinstance(y, str) else y
    frame = _pd().DataFrame({"x": g[x].to_numpy(float), "y": np.asarray(vals, float)})
    agg = frame.groupby("x", sort=True)["y"].agg(["mean", "std", "count"])
    xs = agg.index.to_numpy(float)
    mean = agg["mean"].to_numpy(float)
    std = np.nan_to_num(agg["std"].to_numpy(float), nan=0.0, posinf=0.0)
    return xs, mean, std


def _errorbar(ax: Axes, x: np.ndarray, mean: np.ndarray, std: np.ndarray, *, logy: bool = True,
              **kw: Any) -> Any:
    ok = np.isfinite(mean) & np.isfinite(x) & (x > 0)
    if logy:
        ok &= mean > 0
    if not ok.any():
        return None
    x, mean, std = x[ok], mean[ok], std[ok]
    lower = np.minimum(std, 0.9 * mean) if logy else std
    kw.setdefault("fmt", "o")
    kw.setdefault("ms", 4)
    kw.setdefault("capsize", 2)
    kw.setdefault("elinewidth", 0.8)
    return ax.errorbar(x, mean, yerr=np.vstack([lower, std]), **kw)


def _loglog(ax: Axes) -> None:
    ax.set_xscale("log")
    ax.set_yscale("log")


def _only(sub: pd.DataFrame, col: str) -> Any:
    vals = sub[col].unique()
    if len(vals) != 1:  # pragma: no cover - _select guarantees it
        raise NotApplicable(f"expected one value of {col}, got {list(vals)}")
    return vals[0]


def _schedule_for(name: Any, T: Any) -> Any:
    from .schedule import Schedule

    makers = {"paper": Schedule.paper, "linear": Schedule.linear, "cosine": Schedule.cosine}
    maker = makers.get(str(name).lower())
    return None if maker is None else maker(int(T))


def _pick_n(Ns: np.ndarray, d: float, below: bool) -> float | None:
    """The N < d closest (in log) to d/2, or the N > d closest to 4d."""
    cand = Ns[Ns < d] if below else Ns[Ns > d]
    if cand.size == 0:
        return None
    aim = d / 2 if below else 4 * d
    return float(cand[np.argmin(np.abs(np.log(cand / aim)))])


def _colors(n: int) -> list[Any]:
    matplotlib, _ = _mpl()
    cycle = matplotlib.rcParams["axes.prop_cycle"].by_key().get("color", ["C0"])
    return [cycle[i % len(cycle)] for i in range(n)]


# ============================================================================ figure 1
def _theory_kl_lines(ax: Axes, d: int, n_lo: float, n_hi: float, direction: str) -> None:
    from . import theory

    grid = np.geomspace(max(n_lo, 2.0), max(n_hi, 3.0), 240)
    ax.plot(grid / d, theory.kl_large_n(d, grid), "k-", lw=1.2, label=r"$(d^2+3d)/(4N)$")
    above = grid[grid > 1.05 * d + 3]
    if above.size:
        ax.plot(above / d, theory.expected_kl_ideal(d, above, direction), ":", color="0.25",
                lw=1.2, label="ideal sampler, exact (Wishart)")
        ax.plot(above / d, d * theory.kl_marchenko_pastur(d / above, direction), "--",
                color="0.45", lw=1.0, label="ideal sampler, Marchenko–Pastur")
    if n_lo < d < n_hi:
        ax.axvline(1.0, color="0.7", lw=0.8, zorder=0)


def _draw_kl_vs_n(ax: Axes, sub: pd.DataFrame, direction: str, *, legend: bool = True) -> None:
    d = int(_only(sub, "d"))
    col = f"excess_{direction}"
    groups = _groups(sub)
    for (label, g), color in zip(groups, _colors(len(groups))):
        x, mean, std = _aggregate(g, "N", col)
        _errorbar(ax, x / d, mean, std, color=color, label=f"simulation, {label}")
    Ns = sub["N"].to_numpy(float)
    _theory_kl_lines(ax, d, Ns.min(), Ns.max(), direction)
    _loglog(ax)
    ax.set_xlabel(r"$N / d$")
    ax.set_ylabel(_DIR_LABEL[direction] + r" $-$ KL$_{N=\infty}$")
    if legend:
        ax.legend(fontsize=7)


def kl_vs_n(df: pd.DataFrame, direction: str = "forward", *, where: Mapping[str, Any] | None = None,
            ax: Axes | None = None) -> Figure:
    """Figure 1: excess KL (KL − KL at N = ∞) vs N/d, log-log, one series per spectrum k.

    Points: the mean over seeds with ±1 s.d. Lines: the large-N law (d²+3d)/(4N), the exact
    Wishart expectation of the ideal sampler N(μ̂, Σ̂) and its Marchenko–Pastur limit
    (theory.md §6), and N = d.

    Parameters
    ----------
    df : DataFrame
        Rows of :func:`lindiff.sweep` (:data:`COLUMNS`) with at least two values of N.
    direction : {"forward", "reverse"}
    where : dict, optional
        Column values to select (see the module docstring); default ridge 0, τ = ∞.
    ax : Axes, optional
        Draw into this axes (its figure is returned) instead of a new figure.
    """
    _check_direction(direction)
    df = _check_frame(df)
    sub, chosen = _select(df, {"N", "k", "seed", "dataset"}, where,
                          {"ridge": 0.0, "train_time": np.inf})
    if sub["N"].nunique() < 2:
        raise NotApplicable("kl_vs_n needs at least two values of N")
    fig, ax = (ax.figure, ax) if ax is not None else _first(_new_figure())
    _draw_kl_vs_n(ax, sub, direction)
    ax.set_title(f"Excess KL vs N ({_describe(chosen)})", fontsize=9)
    return fig


def _first(pair: tuple[Figure, list[Axes]]) -> tuple[Figure, Axes]:
    return pair[0], pair[1][0]


# ============================================================================ figure 2
def _loss_theory(chosen: Mapping[str, Any], k: float, d: int,
                 Ns: np.ndarray) -> tuple[np.ndarray, ...] | None:
    """Deterministic-equivalent train/test losses per dimension (Gaussian power-law targets)."""
    from . import theory

    if (chosen.get("dataset") != "gaussian" or not np.isfinite(k)
            or chosen.get("train_time") != np.inf):
        return None
    schedule = _schedule_for(chosen.get("schedule"), chosen.get("T"))
    if schedule is None:
        return None
    lam = np.arange(1, d + 1, dtype=float) ** (-float(k))
    lam *= d / lam.sum()  # tr Σ = d, GaussianTarget.power_law's default
    lo, hi = max(Ns.min(), 3.0), max(Ns.max(), 4.0)
    grid = np.geomspace(lo, hi, 40)
    near = np.geomspace(0.7 * d, 1.6 * d, 16)  # the test loss turns sharply at N ≈ d
    grid = np.unique(np.concatenate([grid, near[(near > lo) & (near < hi)]]))
    train = np.empty_like(grid)
    test = np.empty_like(grid)
    for i, N in enumerate(grid):
        out = theory.deterministic_equivalent_losses(lam, N, schedule,
                                                     float(chosen.get("ridge", 0.0)),
                                                     known_mean=False)
        train[i], test[i] = out["train"].mean() / d, out["test"].mean() / d
    return grid, train, test


def losses_vs_n(df: pd.DataFrame, *, where: Mapping[str, Any] | None = None,
                ax: Axes | None = None, theory: bool = True) -> Figure:
    """Figure 2: train and test loss per dimension (averaged over t) vs N/d, the gap shaded.

    Points: test (filled circles) and train (open squares), mean ± s.d. over seeds. Lines: the
    Bayes floor (dotted) and, for Gaussian power-law targets with a known schedule, the
    proportional-limit deterministic equivalents of the train and test losses (theory.md §6;
    ``theory=False`` leaves them out).
    """
    df = _check_frame(df)
    sub, chosen = _select(df, {"N", "k", "seed", "dataset"}, where,
                          {"ridge": 0.0, "train_time": np.inf})
    if sub["N"].nunique() < 2:
        raise NotApplicable("losses_vs_n needs at least two values of N")
    d = int(_only(sub, "d"))
    fig, ax = (ax.figure, ax) if ax is not None else _first(_new_figure())
    groups = _groups(sub)
    for (label, g), color in zip(groups, _colors(len(groups))):
        x, test, test_sd = _aggregate(g, "N", g["test_loss"] / d)
        _, train, train_sd = _aggregate(g, "N", g["train_loss"] / d)
        _errorbar(ax, x / d, test, test_sd, color=color, label=f"test, {label}")
        _errorbar(ax, x / d, train, train_sd, color=color, fmt="s", mfc="none",
                  label=f"train, {label}")
        ok = np.isfinite(test) & np.isfinite(train) & (train > 0)
        ax.fill_between(x[ok] / d, train[ok], test[ok], color=color, alpha=0.12, lw=0)
        bayes = float(np.mean(g["bayes_loss"])) / d
        ax.plot([x.min() / d, x.max() / d], [bayes, bayes], ":", color=color, lw=1.2,
                label=f"Bayes floor, {label}")
        if theory:
            k = float(g["k"].iloc[0])
            curves = _loss_theory(chosen, k, d, x)
            if curves is not None:
                grid, tr, te = curves
                ax.plot(grid / d, te, "-", color=color, lw=1.0,
                        label=f"test, deterministic equivalent, {label}")
                ax.plot(grid / d, tr, "--", color=color, lw=1.0,
                        label=f"train, deterministic equivalent, {label}")
    if sub["N"].min() < d < sub["N"].max():
        ax.axvline(1.0, color="0.7", lw=0.8, zorder=0)
    _loglog(ax)
    ax.set_xlabel(r"$N / d$")
    ax.set_ylabel("loss per dimension (mean over t)")
    ax.set_title(f"Train / test gap ({_describe(chosen)})", fontsize=9)
    ax.legend(fontsize=6, ncol=2)
    return fig


# ============================================================================ figure 3
def _reference_mask(ref: np.ndarray, values: Any) -> np.ndarray:
    """Points of a reference line to draw on a log axis: positive, and no lower than a hundredth
    of the smallest simulated value in the panel (the N = ∞ KL can be ~0, e.g. exactly 0 for an
    isotropic target, and would otherwise stretch the axis over many empty decades)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    lo = 1e-2 * v.min() if v.size else 0.0
    return np.isfinite(ref) & (ref > 0) & (ref >= lo)


def _mark_optimum(ax: Axes, x: np.ndarray, mean: np.ndarray, color: Any, what: str) -> float | None:
    ok = np.isfinite(mean) & (mean > 0) & (x > 0)
    if not ok.any():
        return None
    i = int(np.argmin(np.where(ok, mean, np.inf)))
    edge = " (grid edge)" if i in (0, len(x) - 1) else ""
    ax.plot([x[i]], [mean[i]], "*", ms=13, mec="k", mew=0.6, color=color, zorder=5,
            label=f"optimum {what} = {x[i]:.3g}{edge}")
    ax.axvline(x[i], color=color, lw=0.7, ls=":", zorder=0)
    return float(x[i])


def kl_vs_ridge(df: pd.DataFrame, direction: str = "forward", *, N: Sequence[float] | None = None,
                where: Mapping[str, Any] | None = None) -> Figure:
    """Figure 3: KL vs ridge γ (log-log) for one N < d (left) and one N > d (right).

    Points: mean ± s.d. over seeds at each γ > 0; a star marks the minimum of the mean (the
    optimal ridge). Lines: the same setting at N = ∞ (``kl_opt_*``, solid) and the unregularised
    model γ = 0 (dashed, when those rows are present).

    Parameters
    ----------
    N : pair of float, optional
        The training-set sizes of the two panels; default the N < d closest to d/2 and the N > d
        closest to 4d among those present.
    """
    _check_direction(direction)
    df = _check_frame(df)
    sub, chosen = _select(df, {"N", "k", "seed", "dataset", "ridge"}, where,
                          {"train_time": np.inf})
    d = float(_only(sub, "d"))
    pos = sub[sub["ridge"] > 0]
    if pos["ridge"].nunique() < 2:
        raise NotApplicable("kl_vs_ridge needs at least two positive ridge values")
    Ns = np.unique(pos["N"].to_numpy(float))
    panels = list(N) if N is not None else [_pick_n(Ns, d, True), _pick_n(Ns, d, False)]
    panels = [n for n in panels if n is not None]
    if not panels:  # pragma: no cover - Ns is not empty
        raise NotApplicable("no N for kl_vs_ridge")
    fig, axes = _new_figure(len(panels), width=5.2 * len(panels), height=4.4)
    col = f"kl_{direction}"
    for ax, n in zip(axes, panels):
        rows = sub[sub["N"] == n]
        if len(rows) == 0:
            raise NotApplicable(f"no rows with N = {n:g}")
        groups = _groups(rows)
        for (label, g), color in zip(groups, _colors(len(groups))):
            gp = g[g["ridge"] > 0]
            x, mean, std = _aggregate(gp, "ridge", col)
            _errorbar(ax, x, mean, std, color=color, label=f"simulation, {label}")
            _mark_optimum(ax, x, mean, color, r"$\gamma$")
            xo, opt, _ = _aggregate(gp, "ridge", f"kl_opt_{direction}")
            okk = _reference_mask(opt, rows[col])
            ax.plot(xo[okk], opt[okk], "-", color=color, lw=1.0,
                    label=f"$N = \\infty$, {label}")
            g0 = g[g["ridge"] == 0][col].to_numpy(float)
            if g0.size and np.isfinite(g0).all() and g0.mean() > 0:
                ax.axhline(g0.mean(), color=color, ls="--", lw=0.9, label=fr"$\gamma = 0$, {label}")
        _loglog(ax)
        ax.set_xlabel(r"ridge $\gamma$")
        ax.set_ylabel(_DIR_LABEL[direction])
        regime = "N < d" if n < d else ("N > d" if n > d else "N = d")
        ax.set_title(f"{regime}: N = {n:g}, N/d = {n / d:.3g}", fontsize=9)
        ax.legend(fontsize=6)
    fig.suptitle(f"KL vs ridge ({_describe(chosen, skip=('ridge',))})", fontsize=10)
    return fig


# ============================================================================ figure 4
def kl_vs_training_time(df: pd.DataFrame, direction: str = "forward", *, N: float | None = None,
                        where: Mapping[str, Any] | None = None) -> Figure:
    """Figure 4: KL (left) and test loss per dimension (right) vs gradient-flow time τ, log-log.

    Points: mean ± s.d. over seeds at each finite τ > 0 (train loss as open squares on the
    right). A star marks the optimal stopping time (the minimum of the mean KL, left; of the mean
    test loss, right). Lines: the converged model τ = ∞ (dashed), the same τ at N = ∞ (solid,
    left) and the Bayes floor (dotted, right).

    Parameters
    ----------
    N : float, optional
        Training-set size; default the N < d closest to d/2 (early stopping matters for N < d),
        else the smallest N present.
    """
    _check_direction(direction)
    df = _check_frame(df)
    sub, chosen = _select(df, {"N", "k", "seed", "dataset", "train_time"}, where, {"ridge": 0.0})
    d = float(_only(sub, "d"))
    fin = sub[np.isfinite(sub["train_time"]) & (sub["train_time"] > 0)]
    if fin["train_time"].nunique() < 2:
        raise NotApplicable("kl_vs_training_time needs at least two finite positive training times")
    Ns = np.unique(fin["N"].to_numpy(float))
    if N is None:
        N = _pick_n(Ns, d, True)
        if N is None:
            N = float(Ns.min())
    rows = sub[sub["N"] == N]
    if len(rows) == 0:
        raise NotApplicable(f"no rows with N = {N:g}")
    fig, (ax_kl, ax_loss) = _new_figure(2, width=10.4, height=4.4)
    col = f"kl_{direction}"
    groups = _groups(rows)
    for (label, g), color in zip(groups, _colors(len(groups))):
        gf = g[np.isfinite(g["train_time"]) & (g["train_time"] > 0)]
        conv = g[~np.isfinite(g["train_time"])]
        x, mean, std = _aggregate(gf, "train_time", col)
        _errorbar(ax_kl, x, mean, std, color=color, label=f"simulation, {label}")
        _mark_optimum(ax_kl, x, mean, color, r"$\tau$")
        xo, opt, _ = _aggregate(gf, "train_time", f"kl_opt_{direction}")
        okk = _reference_mask(opt, rows[col])
        ax_kl.plot(xo[okk], opt[okk], "-", color=color, lw=1.0,
                   label=f"$N = \\infty$, {label}")
        if len(conv) and np.isfinite(conv[col]).all() and conv[col].mean() > 0:
            ax_kl.axhline(conv[col].mean(), color=color, ls="--", lw=0.9,
                          label=fr"$\tau = \infty$, {label}")
        xt, test, test_sd = _aggregate(gf, "train_time", gf["test_loss"] / d)
        _, train, train_sd = _aggregate(gf, "train_time", gf["train_loss"] / d)
        _errorbar(ax_loss, xt, test, test_sd, color=color, label=f"test, {label}")
        _errorbar(ax_loss, xt, train, train_sd, color=color, fmt="s", mfc="none",
                  label=f"train, {label}")
        _mark_optimum(ax_loss, xt, test, color, r"$\tau$")
        bayes = float(np.mean(g["bayes_loss"])) / d
        ax_loss.axhline(bayes, color=color, ls=":", lw=1.2, label=f"Bayes floor, {label}")
        if len(conv) and np.isfinite(conv["test_loss"]).all():
            ax_loss.axhline(conv["test_loss"].mean() / d, color=color, ls="--", lw=0.9,
                            label=fr"test, $\tau = \infty$, {label}")
    for ax in (ax_kl, ax_loss):
        _loglog(ax)
        ax.set_xlabel(r"training time $\tau$ (gradient flow, $\eta = 1$)")
        ax.legend(fontsize=6)
    ax_kl.set_ylabel(_DIR_LABEL[direction])
    ax_loss.set_ylabel("loss per dimension (mean over t)")
    fig.suptitle(f"Early stopping: N = {N:g}, N/d = {N / d:.3g} "
                 f"({_describe(chosen, skip=('train_time',))})", fontsize=10)
    return fig


# ============================================================================ figure 5
def spectra(target: Gaussian, stats: EmpiricalStats, model: LinearDiffusion | None = None, *,
            sigma: str = "beta", final_noise: bool = True, sampler: str = "ddpm",
            ax: Axes | None = None) -> Figure:
    """Figure 5: target, empirical and generated eigenvalues, rank-ordered, log-log.

    Line: the target spectrum λ_ν. Points: the empirical Σ̂ (null directions, eigenvalue 0, are
    counted in the legend and not drawn) and the exact generated covariance Σ_gen of ``model``
    (``model.sampling_distribution(sigma, final_noise, sampler)``; default: the optimal γ = 0
    model of ``stats`` on the paper's schedule).
    """
    from .gaussian import Gaussian
    from .model import LinearDiffusion
    from .stats import EmpiricalStats

    if not isinstance(target, Gaussian):
        raise TypeError("target must be a lindiff.Gaussian / GaussianTarget")
    if not isinstance(stats, EmpiricalStats):
        raise TypeError("stats must be a lindiff.EmpiricalStats")
    if model is None:
        model = LinearDiffusion(stats)
    if not isinstance(model, LinearDiffusion):
        raise TypeError("model must be a lindiff.LinearDiffusion")
    if not (target.d == stats.d == model.d):
        raise ValueError(f"dimensions differ: target {target.d}, stats {stats.d}, model {model.d}")
    fig, ax = (ax.figure, ax) if ax is not None else _first(_new_figure())
    d = target.d
    rank = np.arange(1, d + 1)
    lam = np.sort(target.eigvals)[::-1]
    okt = lam > 0
    ax.plot(rank[okt], lam[okt], "k-", lw=1.4, label=r"target $\Sigma$")
    emp = np.sort(stats.eigvals)[::-1]
    oke = emp > 0
    null = int(d - oke.sum())
    extra = f"; {null} null directions not shown" if null else ""
    ax.plot(rank[oke], emp[oke], "o", ms=3.5, color="C0", mfc="none",
            label=fr"empirical $\hat\Sigma$ (N = {stats.n}{extra})")
    gen = np.sort(model.sampling_distribution(sigma=sigma, final_noise=final_noise,
                                              sampler=sampler).eigvals)[::-1]
    okg = gen > 0
    ax.plot(rank[okg], gen[okg], "x", ms=4, color="C3",
            label=r"generated $\Sigma_{\rm gen}$ (" + f"{sampler}, "
            + r"$\sigma^2$ = " + f"{sigma})")
    _loglog(ax)
    ax.set_xlabel(r"rank $\nu$")
    ax.set_ylabel("eigenvalue")
    ax.set_title(f"Spectra: d = {d}, N = {stats.n}, N/d = {stats.n / d:.3g}", fontsize=9)
    ax.legend(fontsize=7)
    return fig


# ============================================================================ data frames
def _exact_stats(target: Gaussian) -> EmpiricalStats:
    from .stats import EmpiricalStats

    return EmpiricalStats.from_moments(2**62, target.mean, target.cov)


def gaussian_frame(
    d: int = 64,
    ks: Sequence[float] = (0.0, 1.0, 2.0),
    ratios: Sequence[float] | None = None,
    seeds: int = 5,
    *,
    ridges: Sequence[float] | None = None,
    train_times: Sequence[float] | None = None,
    scan_ratios: Sequence[float] = (0.5, 4.0),
    T: int = 1000,
    rng: int = 0,
) -> pd.DataFrame:
    """Results for figures 1–4 from the model API directly, in the :data:`COLUMNS` schema.

    For power-law Gaussian targets (``GaussianTarget.power_law(d, k)``, paper schedule, DDPM with
    σ² = β and final noise), ``seeds`` exact Wishart draws of the statistics for each N:

    - every ``N = round(ratio·d)``: ridge 0, τ = ∞;
    - N = ``scan_ratios[0]``·d and ``scan_ratios[1]``·d: every ridge in ``ridges`` (and 0),
      τ = ∞;
    - N = ``scan_ratios[0]``·d: every τ in ``train_times`` (and ∞), ridge 0.

    It is what :func:`paper_figures` uses when :func:`lindiff.sweep` is not available; the same
    numbers as the sweep for the same (statistics, setting), but not the sweep's random streams.
    """
    pd = _pd()
    from .model import LinearDiffusion, evaluate_grid
    from .schedule import Schedule
    from .targets import GaussianTarget

    if ratios is None:
        ratios = np.geomspace(0.25, 1000.0, 14)
    ridges = list(np.geomspace(1e-4, 1e2, 13) if ridges is None else ridges)
    train_times = list(np.geomspace(1e-2, 1e5, 15) if train_times is None else train_times)
    schedule = Schedule.paper(T=T)
    d = int(d)
    Ns = sorted({max(2, int(round(r * d))) for r in ratios})
    scan = [max(2, int(round(r * d))) for r in scan_ratios]
    plans: dict[int, list[tuple[list[float], list[float]]]] = {}
    for N in Ns:
        plans.setdefault(N, []).append(([0.0], [np.inf]))
    for N in scan:
        plans.setdefault(N, []).append(([0.0] + ridges, [np.inf]))
    plans[scan[0]].append(([0.0], train_times + [np.inf]))
    rows: list[dict[str, Any]] = []
    for a, k in enumerate(ks):
        target = GaussianTarget.power_law(d, float(k))
        exact = _exact_stats(target)
        bayes = float(np.mean(LinearDiffusion(exact, schedule).bayes_floor(target)))
        opt_cache: dict[tuple[tuple[float, ...], tuple[float, ...]], Any] = {}
        for N in sorted(plans):
            th = overlay_columns(d, N)
            for seed in range(int(seeds)):
                stats = target.empirical_stats(N, rng=np.random.SeedSequence([rng, d, a, N, seed]))
                for rs, ts in plans[N]:
                    key = (tuple(rs), tuple(ts))
                    if key not in opt_cache:
                        opt_cache[key] = evaluate_grid(exact, target, schedule, ridge=rs,
                                                       train_time=ts)
                    opt = opt_cache[key]
                    g = evaluate_grid(stats, target, schedule, ridge=rs, train_time=ts)
                    for i, r in enumerate(rs):
                        for j, t in enumerate(ts):
                            kf, kr = float(g.kl_forward[i, j]), float(g.kl_reverse[i, j])
                            of, orr = float(opt.kl_forward[i, j]), float(opt.kl_reverse[i, j])
                            rows.append({
                                "dataset": "gaussian", "k": float(k), "d": d, "N": N, "seed": seed,
                                "ridge": float(r), "train_time": float(t), "T": T,
                                "schedule": "paper", "sampler": "ddpm", "sigma": "beta",
                                "final_noise": True, "kl_forward": kf, "kl_reverse": kr,
                                "kl_opt_forward": of, "kl_opt_reverse": orr,
                                "excess_forward": kf - of, "excess_reverse": kr - orr,
                                "train_loss": float(g.train_loss[i, j]),
                                "test_loss": float(g.test_loss[i, j]), "bayes_loss": bayes, **th,
                            })
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    key = ["dataset", "k", "d", "N", "seed", "ridge", "train_time"]
    return df.drop_duplicates(subset=key).reset_index(drop=True)


def _load_real(name: str, quick: bool, rng: int) -> np.ndarray:
    from . import datasets

    if name == "digits":
        return datasets.digits()
    if name in ("patches", "image_patches"):
        return datasets.image_patches(k=6 if quick else 8, n=4000 if quick else 20000, rng=rng)
    if name in ("fashion_mnist", "fashion-mnist"):
        return datasets.fashion_mnist(pool=2 if quick else 1, n=10000 if quick else None)
    if name == "lfw":
        return datasets.lfw()
    return datasets.load(name)


def _standardise(X: np.ndarray) -> np.ndarray:
    """Drop zero-variance features; scale so that the covariance has mean eigenvalue 1."""
    var = X.var(axis=0)
    keep = var > 1e-12 * max(float(var.max()), 1e-300)
    X = X[:, keep]
    return X * math.sqrt(X.shape[1] / float(var[keep].sum()))


def real_data_frame(
    datasets: Sequence[str | tuple[str, Any]] = _REAL_DEFAULT,
    *,
    ratios: Sequence[float] | None = None,
    seeds: int = 3,
    T: int = 1000,
    max_fraction: float = 0.5,
    standardise: bool = True,
    quick: bool = False,
    rng: int = 0,
) -> pd.DataFrame:
    """KL-vs-N results on real data, in the :data:`COLUMNS` schema (``k`` is NaN).

    For each data set X (n × d): the target is the Gaussian fit of all of X (``Gaussian.fit``);
    for each seed the rows are shuffled and the training sets are nested prefixes of the shuffle
    (``EmpiricalStats.prefixes``), N = round(ratio·d) up to ``max_fraction``·n (training sets are
    drawn without replacement from X, so their excess KL falls below the i.i.d. value as N → n).
    Model: ridge 0, τ = ∞, paper schedule with ``T`` steps, DDPM, σ² = β, final noise.

    Parameters
    ----------
    datasets : sequence
        Names for :func:`lindiff.datasets.load` (``digits``, ``patches``, ``fashion_mnist``,
        ``lfw``, or a file), or ``(name, array)`` pairs. A data set whose loader is missing (no
        Fashion-MNIST files, no scikit-learn / scikit-image) is skipped; the reasons are in
        ``df.attrs["skipped"]``.
    standardise : bool, default True
        Drop zero-variance features (their fitted variance is 0: no density) and scale X so that
        tr Σ = d (mean eigenvalue 1, the synthetic targets' convention and the noise's scale).
    quick : bool
        Smaller defaults: 6×6 patches (4000), Fashion-MNIST pooled to 14×14 (first 10 000 images).
    """
    pd = _pd()
    from .gaussian import Gaussian
    from .model import LinearDiffusion
    from .schedule import Schedule
    from .stats import EmpiricalStats

    schedule = Schedule.paper(T=T)
    skipped: dict[str, str] = {}
    rows: list[dict[str, Any]] = []
    for item in datasets:
        if isinstance(item, tuple):
            name, X = item[0], np.asarray(item[1], dtype=float)
        else:
            name = str(item)
            try:
                X = _load_real(name, quick, rng)
            except (FileNotFoundError, ImportError) as exc:
                skipped[name] = str(exc)
                continue
        if standardise:
            X = _standardise(X)
        n, d = X.shape
        target = Gaussian.fit(X)
        if target.is_degenerate:
            skipped[name] = (f"the Gaussian fit of {n} samples in d = {d} is degenerate "
                             "(n ≤ d or collinear features): no target density")
            continue
        n_max = int(max_fraction * n)
        rs = (np.geomspace(0.25, max(n_max / d, 0.5), 6 if quick else 10)
              if ratios is None else ratios)
        Ns = sorted({int(round(r * d)) for r in rs if 2 <= round(r * d) <= n_max})
        if len(Ns) < 2:
            skipped[name] = f"too few samples (n = {n}) for two training-set sizes at d = {d}"
            continue
        exact = LinearDiffusion(_exact_stats(target), schedule)
        opt = exact.kl(target)
        bayes = float(np.mean(exact.bayes_floor(target)))
        for seed in range(int(seeds)):
            entropy = [rng, seed, len(name)] + [ord(c) for c in name]
            g = np.random.default_rng(np.random.SeedSequence(entropy))
            perm = g.permutation(n)[: Ns[-1]]
            for N, stats in zip(Ns, EmpiricalStats.prefixes(X[perm], Ns)):
                model = LinearDiffusion(stats, schedule)
                kl = model.kl(target)
                rows.append({
                    "dataset": name, "k": np.nan, "d": d, "N": N, "seed": seed, "ridge": 0.0,
                    "train_time": np.inf, "T": T, "schedule": "paper", "sampler": "ddpm",
                    "sigma": "beta", "final_noise": True,
                    "kl_forward": kl["forward"], "kl_reverse": kl["reverse"],
                    "kl_opt_forward": opt["forward"], "kl_opt_reverse": opt["reverse"],
                    "excess_forward": kl["forward"] - opt["forward"],
                    "excess_reverse": kl["reverse"] - opt["reverse"],
                    "train_loss": float(model.train_loss().mean()),
                    "test_loss": float(model.test_loss(target).mean()), "bayes_loss": bayes,
                    **overlay_columns(d, N),
                })
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    df.attrs["skipped"] = skipped
    return df


# ============================================================================ figure 6
def kl_vs_n_real(
    datasets: Sequence[str | tuple[str, Any]] = _REAL_DEFAULT,
    direction: str = "forward",
    *,
    results: pd.DataFrame | None = None,
    ratios: Sequence[float] | None = None,
    seeds: int = 3,
    T: int = 1000,
    quick: bool = False,
    rng: int = 0,
) -> Figure:
    """Figure 6: figure 1 on real data, one panel per data set, the Gaussian fit of the full data
    set as target.

    The data are computed by :func:`real_data_frame` (see there for the options), or taken from
    ``results``: rows of a sweep whose ``dataset`` is not ``"gaussian"``. Data sets that cannot be
    loaded (Fashion-MNIST absent, a missing optional dependency) are skipped and named under the
    figure. Raises :class:`NotApplicable` when no data set is left.
    """
    _check_direction(direction)
    if results is None:
        results = real_data_frame(datasets, ratios=ratios, seeds=seeds, T=T, quick=quick, rng=rng)
        skipped = dict(results.attrs.get("skipped", {}))
    else:
        results = _check_frame(results)
        names = {str(x if isinstance(x, str) else x[0]) for x in datasets}
        results = results[results["dataset"] != "gaussian"]
        if datasets is not _REAL_DEFAULT:
            results = results[results["dataset"].isin(names)]
        skipped = {}
    if len(results) == 0:
        why = "; ".join(f"{k}: {v}" for k, v in skipped.items()) or "no real-data rows"
        raise NotApplicable(f"no data set to plot ({why})")
    names_present = list(dict.fromkeys(results["dataset"]))
    fig, axes = _new_figure(len(names_present), width=4.6 * len(names_present), height=4.4)
    for ax, name in zip(axes, names_present):
        sub, chosen = _select(results[results["dataset"] == name], {"N", "k", "seed"}, None,
                              {"ridge": 0.0, "train_time": np.inf})
        if sub["N"].nunique() < 2:
            raise NotApplicable(f"{name}: needs at least two values of N")
        _draw_kl_vs_n(ax, sub, direction)
        ax.set_title(f"{name}: d = {int(chosen['d'])}, {sub['seed'].nunique()} shuffles",
                     fontsize=9)
    title = "Excess KL vs N on real data (target: Gaussian fit of the full data set)"
    fig.suptitle(title, fontsize=10)
    if skipped:
        note = "skipped: " + "; ".join(f"{k} ({v})" for k, v in skipped.items())
        fig.text(0.01, 0.005, note[:300], fontsize=6, color="0.35", ha="left", va="bottom")
    return fig


# ============================================================================ batch rendering
def _save(fig: Figure, path: Path, dpi: int) -> str:
    fig.savefig(path, dpi=dpi)
    return str(path)


def render_all(df: pd.DataFrame, outdir: str | os.PathLike[str], *, dpi: int = 110,
               prefix: str = "") -> list[str]:
    """Write a PNG of every figure the rows of ``df`` support; returns the paths written.

    - ``kl_vs_n_forward.png``, ``kl_vs_n_reverse.png``, ``losses_vs_n.png``: two or more N at
      ridge 0, τ = ∞ (synthetic rows when there are any);
    - ``kl_vs_ridge.png``: two or more positive ridges at τ = ∞;
    - ``kl_vs_training_time.png``: two or more finite positive τ;
    - ``kl_vs_n_real.png``: rows of real data sets (``dataset != "gaussian"``).

    Figure 5 (spectra) needs model objects, not rows: see :func:`paper_figures`.
    """
    df = _check_frame(df)
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    jobs: list[tuple[str, Any]] = [
        ("kl_vs_n_forward", lambda: kl_vs_n(df, "forward")),
        ("kl_vs_n_reverse", lambda: kl_vs_n(df, "reverse")),
        ("losses_vs_n", lambda: losses_vs_n(df)),
        ("kl_vs_ridge", lambda: kl_vs_ridge(df)),
        ("kl_vs_training_time", lambda: kl_vs_training_time(df)),
    ]
    if (df["dataset"] != "gaussian").any():
        jobs.append(("kl_vs_n_real", lambda: kl_vs_n_real(results=df)))
    written = []
    for name, make in jobs:
        try:
            fig = make()
        except NotApplicable:
            continue
        written.append(_save(fig, out / f"{prefix}{name}.png", dpi))
    return written


def _sweep_frame(d: int, ks: Sequence[float], ratios: Sequence[float], seeds: int,
                 ridges: Sequence[float], times: Sequence[float], T: int) -> pd.DataFrame | None:
    """The same rows as :func:`gaussian_frame`, computed by :func:`lindiff.sweep`; None when the
    sweep (or its pyarrow/pandas dependencies) is not installed."""
    try:
        from .sweeps import sweep
    except ImportError:
        return None
    pd = _pd()
    common = {"d": [d], "k": list(ks), "seeds": seeds, "T": [T], "schedule": "paper"}
    half, four = 0.5, 4.0
    grids = [
        {**common, "N_over_d": list(ratios)},
        {**common, "N_over_d": [half, four], "ridge": [0.0] + list(ridges)},
        {**common, "N_over_d": [half], "train_time": list(times) + [math.inf]},
    ]
    try:
        parts = [sweep(g, progress=False) for g in grids]
    except ImportError:
        return None
    df = pd.concat(parts, ignore_index=True)
    key = ["dataset", "k", "d", "N", "seed", "ridge", "train_time"]
    return df.drop_duplicates(subset=key).reset_index(drop=True)[list(COLUMNS)]


def paper_figures(outdir: str | os.PathLike[str], quick: bool = False, *, engine: str = "auto",
                  datasets: Sequence[str] = _REAL_DEFAULT, dpi: int = 110, extras: bool = True,
                  progress: Any = None) -> list[str]:
    """Compute small default data for all six figures and write them as PNGs into ``outdir``.

    With ``extras`` (default) it also writes lindiff's two figures beyond the paper:
    ``memorisation_vs_n.png`` (:func:`memorisation_vs_n`: the linear model against the
    empirical-optimal baseline on a Gaussian target, digits and Fashion-MNIST when present) and
    ``training_vs_theory.png`` (:func:`figure_training_vs_theory`, its built-in example: SGD
    against the gradient flow). They add about 15 s on 2 cores (10 s with ``quick``), about a minute
    when Fashion-MNIST is installed.

    Default (``quick=False``, a few minutes on 2 cores): d = 64, k ∈ {0, 1, 2}, 14 values of N/d
    from 1/4 to 1000, 5 seeds, 13 ridges and 15 training times, T = 1000; spectra at d = 200,
    k = 1, N = d/2 and 2d (T = 1000); real data as in :func:`real_data_frame` (Fashion-MNIST at
    d = 784). ``quick=True`` (well under a minute): d = 16, k ∈ {0, 2}, 6 values of N/d, 3 seeds,
    7 ridges and times, T = 200; spectra at d = 64; real data in its quick form, 2 seeds.

    Parameters
    ----------
    engine : {"auto", "sweep", "direct"}
        Figures 1–4 from :func:`lindiff.sweep` (``"auto"``: when it is installed) or from
        :func:`gaussian_frame` (the model API directly).
    datasets : sequence of str
        Real data sets for figure 6 (absent ones are skipped; if none is left, figure 6 is).
    progress : callable, optional
        Called with a short message before each stage (the CLI prints them).

    Returns
    -------
    list of str
        The paths written.
    """
    if engine not in ("auto", "sweep", "direct"):
        raise ValueError(f"engine must be 'auto', 'sweep' or 'direct', got {engine!r}")
    from .model import LinearDiffusion
    from .schedule import Schedule
    from .targets import GaussianTarget

    if quick:
        d, ks, ratios, seeds, T = 16, (0.0, 2.0), np.geomspace(0.25, 100.0, 6), 3, 200
        ridges, times = np.geomspace(1e-3, 1e1, 7), np.geomspace(1e-2, 1e4, 7)
        d_spec, real_seeds = 64, 2
    else:
        d, ks, ratios, seeds, T = 64, (0.0, 1.0, 2.0), np.geomspace(0.25, 1000.0, 14), 5, 1000
        ridges, times = np.geomspace(1e-4, 1e2, 13), np.geomspace(1e-2, 1e5, 15)
        d_spec, real_seeds = 200, 3
    say = progress if progress is not None else (lambda message: None)
    df = None
    say(f"figures 1-4: synthetic sweep, d = {d}")
    if engine in ("auto", "sweep"):
        df = _sweep_frame(d, ks, ratios, seeds, ridges, times, T)
        if df is None and engine == "sweep":
            raise ImportError("engine='sweep' needs lindiff.sweep and its dependencies: "
                              "pip install 'lindiff[sweep]'")
    if df is None:
        df = gaussian_frame(d, ks, ratios, seeds, ridges=ridges, train_times=times, T=T)
    out = Path(outdir)
    paths = render_all(df, out, dpi=dpi)
    # Figure 5: spectra below and above N = d (always T = 1000: with fewer steps the chain's
    # start N(0, I) is far from the data's noised law, which would hide the effect shown).
    say(f"figure 5: spectra, d = {d_spec}")
    target = GaussianTarget.power_law(d_spec, 1.0)
    schedule = Schedule.paper()
    fig, axes = _new_figure(2, width=10.4, height=4.4, sharey=True)
    for ax, N in zip(axes, (d_spec // 2, 2 * d_spec)):
        stats = target.empirical_stats(N, rng=np.random.SeedSequence([d_spec, N]))
        spectra(target, stats, LinearDiffusion(stats, schedule), ax=ax)
    paths.append(_save(fig, out / "spectra.png", dpi))
    # Figure 6.
    say("figure 6: real data (" + ", ".join(datasets) + ")")
    try:
        fig = kl_vs_n_real(tuple(datasets), seeds=real_seeds, T=T, quick=quick)
    except NotApplicable:
        pass
    else:
        paths.append(_save(fig, out / "kl_vs_n_real.png", dpi))
    if extras:
        say("memorisation vs N: linear model and the empirical-optimal baseline")
        try:
            fig = memorisation_vs_n(quick=quick)
        except NotApplicable:
            pass
        else:
            paths.append(_save(fig, out / "memorisation_vs_n.png", dpi))
        say("SGD training vs the gradient flow")
        paths.append(_save(figure_training_vs_theory(), out / "training_vs_theory.png", dpi))
    return paths


# ---- issue 6: memorisation
# The memorised fraction and the KL vs N for the linear model and for the empirical-optimal
# baseline (lindiff.EmpiricalOptimalDenoiser, the exact score of the training set).

#: Columns of :func:`memorisation_frame`.
MEMORISATION_COLUMNS = (
    "dataset", "d", "N", "seed", "model", "n_samples", "T", "threshold", "memorised_fraction",
    "median_d1", "median_ratio", "median_d_held_out", "closer_to_train", "kl_closed_forward",
    "kl_closed_reverse", "kl_fit_forward", "kl_fit_reverse", "kl_fit_bias", "kl_fit_bias_forward",
    "kl_fit_bias_reverse",
)
_MEM_MODELS = ("linear", "empirical_optimal")
_MEM_LABEL = {"linear": "linear model", "empirical_optimal": "empirical-optimal (memorises)"}


def _memorisation_data(name: str, d: int, k: float, quick: bool, rng: int,
                       n_held: int) -> tuple[np.ndarray | None, Any, np.ndarray | None, str | None]:
    """(pool, target, held_out, skipped reason). For "gaussian" the pool is None (fresh draws)."""
    from .gaussian import Gaussian
    from .targets import GaussianTarget

    if name == "gaussian":
        target = GaussianTarget.power_law(d, k)
        held = target.sample(n_held, rng=np.random.SeedSequence([rng, 17, d]))
        return None, target, held, None
    from . import datasets

    try:
        if name in ("fashion_mnist", "fashion-mnist"):
            X = datasets.fashion_mnist(pool=4 if quick else 2, n=10000)
        else:
            X = _load_real(name, quick, rng)
    except (FileNotFoundError, ImportError) as exc:
        return None, None, None, str(exc)
    X = _standardise(X)
    target = Gaussian.fit(X)
    if target.is_degenerate:
        return None, None, None, "the Gaussian fit of the full data set is degenerate"
    return X, target, None, None


def memorisation_frame(
    datasets: Sequence[str] = ("gaussian", "digits", "fashion_mnist"),
    *,
    d: int = 16,
    k: float = 1.0,
    ratios: Sequence[float] | None = None,
    max_train: int = 1024,
    seeds: int = 3,
    n_samples: int = 400,
    T: int = 1000,
    threshold: float = 1.0 / 3.0,
    quick: bool = False,
    rng: int = 0,
    workers: int | None = None,
) -> pd.DataFrame:
    """Memorisation and KL of the linear model and the empirical-optimal baseline vs N (tidy rows).

    For each data set, training-set size N and seed, both models are built on the same training
    set X (N × d) and each draws ``n_samples`` samples (paper schedule with ``T`` steps, DDPM,
    σ² = β, noise at the last step):

    - ``model = "linear"``: :class:`lindiff.LinearDiffusion` (ridge 0, τ = ∞), sampled in its
      eigenbasis; ``kl_closed_*`` is its closed-form KL to the target (theory.md §4–5);
    - ``model = "empirical_optimal"``: :class:`lindiff.EmpiricalOptimalDenoiser` (closed-form KL:
      NaN, its samples are not Gaussian).

    For both, ``memorised_fraction`` is :func:`lindiff.memorisation` of the samples against X
    (d₁/d₂ < ``threshold``), ``median_d_held_out``/``closer_to_train`` compare with held-out points
    (fresh draws for Gaussian targets; the rest of the shuffled data set for real data, at most
    2000 points), and ``kl_fit_*`` is :func:`lindiff.gaussian_fit_kl` of the samples (the KL of a
    Gaussian fitted to them). ``kl_fit_bias_forward``/``_reverse`` are that estimate's own upward
    bias: its exact expectation for n samples drawn from the target itself
    (:func:`lindiff.theory.expected_kl_ideal` with N = n, the Wishart expectation of theory.md §6;
    inf when n ≤ d + 2 or n ≤ d). Values near it cannot be told from 0. ``kl_fit_bias`` is its
    leading order (d²+3d)/(4n) for both directions, good only for n ≫ d (at d = 196, n = 400 it is
    24 against the exact 67 forward).

    What the Gaussian-fit KL means for the empirical-optimal model: its samples sit within about
    σ₁√d = √β₁·√d of the N training points, so for N ≤ d their fitted covariance has d − N + 1
    directions of variance ≈ β₁ = 1e-4 (rank N − 1 from the training points, plus the last step's
    noise). The fitted KL is then large (≈ ½·Σ over those directions of (λ/β₁ − ln(λ/β₁) − 1)) and
    measures the collapse onto the training points, not how far the law is from the target in any
    finer sense; for N > d it approaches the KL of the training set's own Gaussian fit, N(μ̂, Σ̂)
    (the empirical law has those moments), i.e. the linear model's value.

    Data sets: ``"gaussian"`` (``GaussianTarget.power_law(d, k)``), and names for
    :func:`lindiff.datasets.load` (``digits``; ``fashion_mnist`` pooled 2×2 to d = 196, 4×4 with
    ``quick``, first 10 000 images), standardised as in :func:`real_data_frame` with the Gaussian
    fit of the full data set as target. Absent data sets are skipped (``df.attrs["skipped"]``).
    N = round(ratio·d) for ``ratios`` (default 1/16 … 8 in factors of 2; N >= 1), capped at
    ``max_train`` and, for real data, at half the data set. Cost: the baseline's sampler does
    4·n·N·d·T flops per run; the defaults (d = 16, digits at d = 61, 400 samples, T = 1000, 3
    seeds) take well under a minute on 2 idle cores.
    """
    pd = _pd()
    from .empirical_optimal import EmpiricalOptimalDenoiser
    from .measures import gaussian_fit_kl
    from .model import LinearDiffusion
    from .neighbours import memorisation
    from .schedule import Schedule
    from .stats import EmpiricalStats
    from .theory import expected_kl_ideal

    if ratios is None:
        ratios = np.geomspace(1 / 16, 8, 5 if quick else 8)
    schedule = Schedule.paper(T=T)
    n_samples = int(n_samples)
    skipped: dict[str, str] = {}
    rows: list[dict[str, Any]] = []
    for name in datasets:
        pool, target, held, why = _memorisation_data(str(name), int(d), float(k), quick, rng, 2000)
        if why is not None:
            skipped[str(name)] = why
            continue
        dd = target.d
        cap = int(max_train) if pool is None else min(int(max_train), pool.shape[0] // 2)
        Ns = sorted({min(cap, max(1, int(round(r * dd)))) for r in ratios})
        bias = (dd * dd + 3 * dd) / (4.0 * n_samples)
        bias_fwd, bias_rev = expected_kl_ideal(dd, n_samples, "both")
        for seed in range(int(seeds)):
            ss = np.random.SeedSequence([rng, seed, len(str(name))] + [ord(c) for c in str(name)])
            g = np.random.default_rng(ss)
            if pool is None:
                draws = target.sample(Ns[-1], rng=g)
                held_out = held
            else:
                perm = g.permutation(pool.shape[0])
                draws = pool[perm[: Ns[-1]]]
                held_out = pool[perm[Ns[-1]:][:2000]]
            for N in Ns:
                X = draws[:N]
                linear = LinearDiffusion(EmpiricalStats(X), schedule, workers=workers)
                kl = linear.kl(target)
                samples = {
                    "linear": linear.sample(n_samples, rng=g),
                    "empirical_optimal": EmpiricalOptimalDenoiser(X, schedule, workers=workers)
                    .sample(n_samples, rng=g),
                }
                for model, S in samples.items():
                    mem = memorisation(S, X, held_out=held_out, threshold=threshold, workers=workers)
                    fit = gaussian_fit_kl(S, target)
                    rows.append({
                        "dataset": str(name), "d": dd, "N": N, "seed": seed, "model": model,
                        "n_samples": n_samples, "T": T, "threshold": float(threshold),
                        "memorised_fraction": mem.fraction,
                        "median_d1": float(np.median(mem.d1)),
                        "median_ratio": float(np.median(mem.ratio)),
                        "median_d_held_out": float(np.median(mem.d_held_out)),
                        "closer_to_train": mem.closer_to_train,
                        "kl_closed_forward": kl["forward"] if model == "linear" else np.nan,
                        "kl_closed_reverse": kl["reverse"] if model == "linear" else np.nan,
                        "kl_fit_forward": fit["forward"], "kl_fit_reverse": fit["reverse"],
                        "kl_fit_bias": bias, "kl_fit_bias_forward": bias_fwd,
                        "kl_fit_bias_reverse": bias_rev,
                    })
    df = pd.DataFrame(rows, columns=list(MEMORISATION_COLUMNS))
    df.attrs["skipped"] = skipped
    return df


def memorisation_vs_n(
    df: pd.DataFrame | None = None,
    direction: str = "forward",
    *,
    quick: bool = False,
    **options: Any,
) -> Figure:
    """Memorised fraction (top) and KL (bottom) vs N/d, one column per data set.

    Top: the fraction of samples with d₁/d₂ < threshold, mean ± s.d. over seeds, for the linear
    model and the empirical-optimal baseline. Bottom (log-log): the linear model's closed-form KL
    (line, mean over seeds), the Gaussian-fit KL of the same model's samples and of the baseline's
    samples (points), and the fit's own expected bias for n samples (dotted): see :func:`memorisation_frame`
    for what the baseline's fitted KL means when N ≤ d. The grey line marks N = d.

    Parameters
    ----------
    df : DataFrame, optional
        Rows of :func:`memorisation_frame`; computed with ``quick`` and ``options`` when omitted.
    direction : {"forward", "reverse"}
    """
    _check_direction(direction)
    if df is None:
        df = memorisation_frame(quick=quick, **options)
    pd = _pd()
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"expected a DataFrame from memorisation_frame, got {type(df).__name__}")
    missing = [c for c in MEMORISATION_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"the DataFrame lacks the columns {missing} (see MEMORISATION_COLUMNS)")
    if len(df) == 0:
        why = "; ".join(f"{k}: {v}" for k, v in df.attrs.get("skipped", {}).items())
        raise NotApplicable("no rows to plot" + (f" ({why})" if why else ""))
    names = list(dict.fromkeys(df["dataset"]))
    _, Figure = _mpl()
    fig = Figure(figsize=(4.6 * len(names), 7.6), layout="constrained")
    axes = fig.subplots(2, len(names), squeeze=False)
    colors = dict(zip(_MEM_MODELS, _colors(2)))
    for j, name in enumerate(names):
        sub = df[df["dataset"] == name]
        d = int(_only(sub, "d"))
        top, bottom = axes[0][j], axes[1][j]
        for model in _MEM_MODELS:
            g = sub[sub["model"] == model]
            if len(g) == 0:
                continue
            x, mean, std = _aggregate(g, "N", "memorised_fraction")
            _errorbar(top, x / d, mean, std, logy=False, color=colors[model], label=_MEM_LABEL[model])
            x, mean, std = _aggregate(g, "N", f"kl_fit_{direction}")
            _errorbar(bottom, x / d, mean, std, color=colors[model],
                      fmt="o" if model == "linear" else "s",
                      label=f"{_MEM_LABEL[model]}: Gaussian fit of samples")
            if model == "linear":
                xc, mc, _ = _aggregate(g, "N", f"kl_closed_{direction}")
                ok = np.isfinite(mc) & (mc > 0)
                bottom.plot(xc[ok] / d, mc[ok], "-", color=colors[model], lw=1.2,
                            label="linear model: closed form")
        bias = float(sub[f"kl_fit_bias_{direction}"].iloc[0])
        Ns = sub["N"].to_numpy(float)
        if np.isfinite(bias):
            bottom.plot([Ns.min() / d, Ns.max() / d], [bias, bias], ":", color="0.3", lw=1.0,
                        label="fit bias (expected KL of a fit to n target draws)")
        for ax in (top, bottom):
            ax.set_xscale("log")
            if Ns.min() < d < Ns.max():
                ax.axvline(1.0, color="0.7", lw=0.8, zorder=0)
            ax.set_xlabel(r"$N / d$")
        bottom.set_yscale("log")
        top.set_ylim(-0.03, 1.03)
        top.set_ylabel(fr"memorised fraction ($d_1/d_2 < {float(_only(sub, 'threshold')):.3g}$)")
        bottom.set_ylabel(_DIR_LABEL[direction])
        top.set_title(f"{name}: d = {d}, n = {int(_only(sub, 'n_samples'))} samples, "
                      f"T = {int(_only(sub, 'T'))}, {sub['seed'].nunique()} seeds", fontsize=9)
        top.legend(fontsize=7)
        bottom.legend(fontsize=6)
    skipped = df.attrs.get("skipped", {})
    if skipped:
        note = "skipped: " + "; ".join(f"{k} ({v})" for k, v in skipped.items())
        fig.supxlabel(note[:200], fontsize=6, color="0.35")
    fig.suptitle("Memorisation vs N: linear model and the empirical-optimal baseline", fontsize=10)
    return fig
# ---- issue 6: training vs theory
def figure_training_vs_theory(comparison: Any = None, *, direction: str = "forward", **compare_options: Any
                              ) -> Figure:
    """SGD-trained denoisers against the closed-form gradient flow, for several noise-draw counts.

    Three panels against ητ (learning rate × steps; the flow's exp(−2ηcτ) clock): the relative
    Frobenius distance ‖W_sgd − W_flow‖/‖W_flow‖ over the stacked W_t (log-log), the train and test
    losses (per dimension, mean over the trained timesteps), and the KL of the generated law. Lines:
    the gradient flow (``LinearDiffusion(train_time=τ)``); markers: training with each noise-draw count.

    Parameters
    ----------
    comparison : FlowComparison, optional
        From :func:`lindiff.compare_with_gradient_flow`; computed from ``compare_options`` (which
        must then include ``X`` and the training options) when omitted. With neither, a built-in
        example runs (about 10 s on 2 cores): a power-law Gaussian target (d = 20, k = 1), N = 200
        training points, 12 log-spaced timesteps of the paper schedule, η = 0.05, 300 full-batch
        steps, 1, 4 and 16 noise draws.
    direction : {"forward", "reverse"}
        Which KL to plot.
    """
    from .training import FlowComparison, compare_with_gradient_flow

    direction = _check_direction(direction)
    if comparison is None and not compare_options:
        from .targets import GaussianTarget

        target = GaussianTarget.power_law(20, 1.0, rng=0)
        compare_options = dict(X=target.sample(200, rng=1), learning_rate=0.05, steps=300,
                               noise_draws=(1, 4, 16), target=target, rng=2,
                               timesteps=np.unique(np.geomspace(1, 1000, 12).astype(int)))
    if comparison is None:
        comparison = compare_with_gradient_flow(**compare_options)
    elif compare_options:
        raise TypeError("give a comparison or the options to compute one, not both")
    if not isinstance(comparison, FlowComparison):
        raise TypeError("comparison must be a lindiff.FlowComparison")
    c = comparison
    x = c.learning_rate * c.train_time
    fig, axes = _new_figure(3, width=14.0, height=4.2)
    colors = _colors(len(c.noise_draws))
    pos = x > 0
    for i, r in enumerate(c.noise_draws):
        rel = c.rel_distance[i]
        ok = pos & np.isfinite(rel) & (rel > 0)
        axes[0].plot(x[ok], rel[ok], "o-", color=colors[i], label=f"{r} noise draw{'s' if r != 1 else ''}")
        axes[1].plot(x, c.train_loss[i] / c.d, "o", color=colors[i], mfc="none")
        if np.isfinite(c.test_loss[i]).any():
            axes[1].plot(x, c.test_loss[i] / c.d, "s", color=colors[i])
        kl = c.kl_forward[i] if direction == "forward" else c.kl_reverse[i]
        ok = pos & np.isfinite(kl) & (kl > 0)
        axes[2].plot(x[ok], kl[ok], "o", color=colors[i], label=f"SGD, {r} draws")
    axes[0].set_xscale("log")
    axes[0].set_yscale("log")
    axes[0].set_xlabel("ητ")
    axes[0].set_ylabel("‖W_sgd − W_flow‖_F / ‖W_flow‖_F")
    axes[0].legend(fontsize=8)
    axes[1].plot(x, c.flow_train_loss / c.d, "k-", label="train (flow)")
    if np.isfinite(c.flow_test_loss).any():
        axes[1].plot(x, c.flow_test_loss / c.d, "k--", label="test (flow)")
    axes[1].set_xlabel("ητ")
    axes[1].set_ylabel("loss per dimension (open: train, filled: test)")
    axes[1].legend(fontsize=8)
    flow_kl = c.flow_kl_forward if direction == "forward" else c.flow_kl_reverse
    ok = pos & np.isfinite(flow_kl) & (flow_kl > 0)
    if ok.any():
        axes[2].plot(x[ok], flow_kl[ok], "k-", label="gradient flow")
        axes[2].set_yscale("log")
    axes[2].set_xscale("log")
    axes[2].set_xlabel("ητ")
    axes[2].set_ylabel(f"KL ({direction})")
    axes[2].legend(fontsize=8)
    fig.suptitle(f"SGD training vs gradient flow: d = {c.d}, N = {c.N}, {c.K} timesteps")
    return fig


__all__ += ["figure_training_vs_theory"]
