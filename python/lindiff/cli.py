"""The ``lindiff`` command line.

``lindiff demo`` is the quick sweep of the README: KL between a power-law Gaussian target and the
generated law of the optimal linear denoiser, over N/d from 1/4 to 1000, for several spectra, with
theory beside it. It prints the transition at N ≈ d and the (d²+3d)/(4N) law, and writes a figure.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Sequence

import numpy as np

__all__ = ["demo_sweep", "main"]


class UserError(Exception):
    """A mistake in the command line: reported as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``lindiff <cmd>: error: …``, exit 2) instead of usage + error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def demo_sweep(
    d: int = 64,
    ks: Sequence[float] = (0.0, 1.0, 2.0),
    ratios: Sequence[float] | None = None,
    seeds: int = 5,
    T: int = 1000,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """Run the demo sweep and return its results as arrays indexed [k, N, seed].

    Each (k, N, seed) draws the training statistics exactly (Wishart route), builds the optimal
    linear denoiser (γ = 0) on the paper's schedule and computes the forward KL(target‖generated),
    the train and test losses (averaged over t), and the optimal-ridge KL.
    """
    from .model import LinearDiffusion, optimal_ridge
    from .schedule import Schedule
    from .stats import EmpiricalStats
    from .targets import GaussianTarget

    if ratios is None:
        ratios = np.geomspace(0.25, 1000.0, 14)
    schedule = Schedule.paper(T=T)
    Ns = np.unique(np.maximum(2, np.round(np.asarray(ratios) * d).astype(int)))
    shape = (len(ks), len(Ns), seeds)
    kl = np.empty(shape)
    kl_ridge = np.empty(shape)
    train = np.empty(shape)
    test = np.empty(shape)
    kl_opt = np.empty(len(ks))
    total, done, t0 = len(ks) * len(Ns) * seeds, 0, time.perf_counter()
    for a, k in enumerate(ks):
        target = GaussianTarget.power_law(d, k)
        # N = ∞: the model built from the exact moments (the sampler's own floor, KL_opt).
        exact = EmpiricalStats.from_moments(2**62, target.mean, target.cov)
        kl_opt[a] = LinearDiffusion(exact, schedule).kl(target, "forward")
        for b, N in enumerate(Ns):
            for s in range(seeds):
                stats = target.empirical_stats(int(N), rng=np.random.SeedSequence([int(N), a, s]))
                model = LinearDiffusion(stats, schedule)
                kl[a, b, s] = model.kl(target, "forward")
                train[a, b, s] = model.train_loss().mean()
                test[a, b, s] = model.test_loss(target).mean()
                kl_ridge[a, b, s] = optimal_ridge(stats, target, schedule, n_grid=25, rtol=1e-2).value
                done += 1
                if progress:
                    el = time.perf_counter() - t0
                    sys.stderr.write(f"\r  {done}/{total}  {el:5.1f}s elapsed, ~{el / done * (total - done):5.1f}s left")
    if progress:
        sys.stderr.write("\n")
    return {"d": np.array(d), "ks": np.asarray(ks, float), "N": Ns, "kl": kl, "kl_opt": kl_opt,
            "kl_ridge": kl_ridge, "train": train, "test": test}


def _print_table(res: dict[str, np.ndarray]) -> None:
    d = int(res["d"])
    Ns, ks = res["N"], res["ks"]
    print(f"\nForward KL(target ‖ generated), optimal linear denoiser (γ = 0), d = {d}, paper schedule")
    print("excess = KL − KL(N=∞); law = (d²+3d)/(4N) (theory.md §6); mean over seeds\n")
    head = f"{'N/d':>8} " + " ".join(f"{'k=' + format(k, 'g') + ' excess':>15} {'/law':>6}" for k in ks)
    head += f" {'best-ridge KL k=0':>18} {'test−train (k=0)':>17}"
    print(head)
    law = (d * d + 3 * d) / (4.0 * Ns)
    for b, N in enumerate(Ns):
        row = f"{N / d:8.3g} "
        for a in range(len(ks)):
            ex = res["kl"][a, b].mean() - res["kl_opt"][a]
            row += f"{ex:15.4g} {ex / law[b]:6.2f} "
        gap = (res["test"][0, b] - res["train"][0, b]).mean()
        row += f"{res['kl_ridge'][0, b].mean():18.4g} {gap:17.4g}"
        print(row)
    # The transition: where the excess KL drops below d (one nat per ten dimensions would be d/10).
    ex0 = res["kl"][0].mean(axis=1) - res["kl_opt"][0]
    below = np.nonzero(ex0 < d)[0]
    if below.size:
        print(f"\nTransition (k=0): the excess KL falls below d = {d} nats at N/d ≈ {Ns[below[0]] / d:.3g};")
    big = Ns >= 10 * d
    if big.any():
        r = (ex0[big] / law[big])
        print(f"for N ≥ 10d the excess / law ratio is {r.min():.3f}–{r.max():.3f} (→ 1 as N → ∞).")


def _figure(res: dict[str, np.ndarray], path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on extras
        raise UserError("the figure needs matplotlib: pip install 'lindiff[plot]'") from exc
    from .theory import kl_marchenko_pastur

    d = int(res["d"])
    Ns = res["N"]
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    for a, k in enumerate(res["ks"]):
        ex = res["kl"][a] - res["kl_opt"][a]
        ax.errorbar(Ns / d, ex.mean(axis=1), yerr=ex.std(axis=1, ddof=1) if ex.shape[1] > 1 else None,
                    fmt="o", ms=4, capsize=2, label=f"simulation, k = {k:g}")
    grid = np.geomspace(Ns.min(), Ns.max(), 200)
    ax.plot(grid / d, (d * d + 3 * d) / (4 * grid), "k-", label=r"$(d^2+3d)/(4N)$")
    q = d / grid[grid > d]
    ax.plot(grid[grid > d] / d, d * kl_marchenko_pastur(q, "forward"), "k--", lw=1,
            label="ideal sampler, Marchenko–Pastur")
    ax.axvline(1.0, color="0.6", lw=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("N / d")
    ax.set_ylabel(r"KL(target ‖ generated) − KL$_{N=\infty}$")
    ax.set_title(f"Linear diffusion, d = {d}: memorisation → generalisation")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _cmd_demo(args: argparse.Namespace) -> int:
    if args.d < 2:
        raise UserError(f"--d must be >= 2, got {args.d}")
    if args.seeds < 1:
        raise UserError(f"--seeds must be >= 1, got {args.seeds}")
    if args.T < 1:
        raise UserError(f"--T must be >= 1, got {args.T}")
    show = not args.quiet and sys.stderr.isatty()
    t0 = time.perf_counter()
    res = demo_sweep(d=args.d, seeds=args.seeds, T=args.T, progress=show)
    _print_table(res)
    _figure(res, args.out)
    print(f"\nwrote {args.out}  ({time.perf_counter() - t0:.1f} s)")
    return 0


_SWEEP_DOC = """Sweep the closed-form model over a grid and store one row per configuration.

The grid is the product of the lists given by the flags below (comma-separated) or by a TOML file
(--config; flags override its keys). Example:

  lindiff sweep --d 50,100 --N-over-d 0.5,1,2,10 --k 0,1 --ridge 0,0.01 --seeds 3

Rows go to --results DIR (default ./lindiff-results) as Parquet files written atomically, one per
finished task; re-running the same or an overlapping grid computes only what is missing. Read them
with pandas.read_parquet(DIR), with or without lindiff. --scheduler tcp://host:port runs the tasks
on a Dask cluster (pip install 'lindiff[dask]'); the numbers are identical to a local run.

TOML example (keys as in lindiff.sweep; lists or single values):

  d = [100]
  N_over_d = [0.25, 0.5, 1, 2, 4, 16, 64]
  k = [0, 1, 2]
  ridge = [0.0, 1e-3, 1e-2, 1e-1]
  train_time = ["inf", 10.0, 100.0]
  seeds = 5
"""


def _csv(kind: str):  # type: ignore[no-untyped-def]
    def parse(text: str) -> list:  # type: ignore[type-arg]
        items = [t.strip() for t in text.split(",")]
        if not text.strip() or any(not t for t in items):
            raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}")
        out = []
        for t in items:
            try:
                if kind == "int":
                    f = float(t)
                    if f != int(f):
                        raise ValueError
                    out.append(int(f))
                elif kind == "float":
                    out.append(float(t))
                else:
                    out.append(t)
            except ValueError:
                raise argparse.ArgumentTypeError(f"{t!r} is not a{'n integer' if kind == 'int' else ' number'}") from None
        return out
    return parse


def _seeds(text: str) -> object:
    vals = _csv("int")(text)
    return vals[0] if "," not in text else vals


# flag dest -> grid key
_SWEEP_FLAGS = {
    "d": "d", "N": "N", "N_over_d": "N_over_d", "k": "k", "ridge": "ridge", "train_time": "train_time",
    "T": "T", "schedule": "schedule", "sampler": "sampler", "sigma": "sigma", "final_noise": "final_noise",
    "seeds": "seeds", "rotation": "rotation", "dataset": "dataset", "data_path": "data_path",
    "n_samples": "n_samples", "drop_constant": "drop_constant",
}


def _cmd_sweep(args: argparse.Namespace) -> int:
    try:
        from .sweeps import load_grid, summarise, sweep
        from .store import _require

        _require("pandas")
        _require("pyarrow")
        grid: dict = load_grid(args.config) if args.config else {}  # type: ignore[type-arg]
        for dest, key in _SWEEP_FLAGS.items():
            val = getattr(args, dest)
            if val is not None:
                grid[key] = val
        if args.N is not None:
            grid.pop("N_over_d", None)
        if args.N_over_d is not None:
            grid.pop("N", None)
        client = None
        if args.scheduler:
            try:
                from distributed import Client
            except ImportError:
                raise UserError("--scheduler needs dask.distributed: pip install 'lindiff[dask]'") from None
            try:
                client = Client(args.scheduler, timeout=args.connect_timeout)
            except (OSError, TimeoutError) as exc:
                raise UserError(f"cannot reach the Dask scheduler at {args.scheduler}: {exc}") from None
        t0 = time.perf_counter()
        try:
            df = sweep(grid, results=args.results, client=client, workers=args.workers,
                       progress=False if args.quiet else None, empirical=args.empirical)
        finally:
            if client is not None:
                client.close()
    except (ValueError, ImportError, NotImplementedError) as exc:
        raise UserError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
    print(summarise(df))
    print(f"\n{len(df)} configurations in {args.results}  ({time.perf_counter() - t0:.1f} s); "
          f"read them with pandas.read_parquet({str(args.results)!r})")
    return 0


def _cmd_figures(args: argparse.Namespace) -> int:
    try:
        from . import figures  # type: ignore[attr-defined]
    except ImportError as exc:
        raise UserError(f"lindiff figures needs lindiff.figures and matplotlib ({exc}); "
                        "pip install 'lindiff[plot,sweep]'") from None
    try:
        from .store import ResultStore, _require

        _require("pandas")
        from pathlib import Path

        if not Path(args.results).is_dir():
            raise UserError(f"results directory {args.results!r} does not exist (run lindiff sweep first)")
        df = ResultStore(args.results).read()
    except (ValueError, ImportError) as exc:
        raise UserError(str(exc).splitlines()[0]) from None
    if len(df) == 0:
        raise UserError(f"results directory {args.results!r} holds no rows")
    paths = figures.render_all(df, args.out)
    for p in paths:
        print(p)
    return 0


def _cmd_paper_figures(args: argparse.Namespace) -> int:
    try:
        from . import figures  # type: ignore[attr-defined]

        figures._mpl()
    except ImportError as exc:
        raise UserError(f"lindiff paper-figures needs matplotlib ({exc}); pip install 'lindiff[plot]'") from None
    if args.dpi < 10:
        raise UserError(f"--dpi must be at least 10, got {args.dpi}")
    t0 = time.perf_counter()

    def say(message: str) -> None:
        if not args.quiet:
            print(f"[{time.perf_counter() - t0:6.1f} s] {message}", file=sys.stderr, flush=True)

    try:
        paths = figures.paper_figures(args.out, quick=args.quick, dpi=args.dpi, extras=not args.no_extras,
                                      progress=say)
    except ImportError as exc:
        raise UserError(str(exc).splitlines()[0]) from None
    for p in paths:
        print(p)
    return 0


def _add_sweep_parser(sub) -> None:  # type: ignore[no-untyped-def]
    p = sub.add_parser("sweep", help="sweep a grid (flags or TOML); resumable Parquet results; local or Dask",
                       description=_SWEEP_DOC, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("grid (comma-separated lists; override --config)")
    g.add_argument("--config", metavar="FILE.toml", help="grid as a TOML file (keys as the flags, with _)")
    g.add_argument("--d", type=_csv("int"), help="dimensions, e.g. 50,100")
    n = g.add_mutually_exclusive_group()
    n.add_argument("--N", type=_csv("int"), help="training-set sizes, each >= 2")
    n.add_argument("--N-over-d", dest="N_over_d", type=_csv("float"),
                   help="training-set sizes as N/d, e.g. 0.5,1,2 (N = round(ratio*d))")
    g.add_argument("--k", type=_csv("float"), help="power-law exponents of the target spectrum, e.g. 0,1,2")
    g.add_argument("--ridge", type=_csv("float"), help="ridge values gamma >= 0 (default 0)")
    g.add_argument("--train-time", dest="train_time", type=_csv("str"),
                   help="gradient-flow times tau; 'inf' = converged optimum (default inf)")
    g.add_argument("--T", type=_csv("int"), help="diffusion steps (default 1000)")
    g.add_argument("--schedule", type=_csv("str"), help="paper, linear and/or cosine (default paper)")
    g.add_argument("--sampler", type=_csv("str"), help="ddpm and/or ddim (default ddpm)")
    g.add_argument("--sigma", type=_csv("str"), help="beta and/or beta_tilde (default beta)")
    g.add_argument("--final-noise", dest="final_noise", type=_csv("str"),
                   help="true and/or false: noise at the last DDPM step (default true)")
    g.add_argument("--seeds", type=_seeds, help="a count n (seeds 0..n-1) or a list 0,5,7 (default 1)")
    g.add_argument("--rotation", choices=["none", "random"], default=None,
                   help="eigenbasis of the Gaussian target (default none: axis-aligned)")
    g.add_argument("--dataset", help="a lindiff.datasets name (replaces --k; target = Gaussian fit)")
    g.add_argument("--data-path", dest="data_path", help="a .npy/.npz data file (n, d) (replaces --k)")
    g.add_argument("--drop-constant", dest="drop_constant", action="store_const", const=True, default=None,
                   help="drop the data's constant features (e.g. digits' blank pixels); d shrinks")
    g.add_argument("--n-samples", dest="n_samples", type=int, help="samples per configuration with --empirical")
    r = p.add_argument_group("running")
    r.add_argument("--results", default="lindiff-results", help="results directory (default ./lindiff-results)")
    r.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="run on this Dask scheduler")
    r.add_argument("--connect-timeout", dest="connect_timeout", type=float, default=10.0,
                   help="seconds to wait for --scheduler (default 10)")
    r.add_argument("--workers", type=int, default=None, help="local threads (default: all cores)")
    r.add_argument("--empirical", action="store_true",
                   help="also sample the model and add Gaussian-fit KL columns (slow)")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_sweep)

    f = sub.add_parser("figures", help="render the figures from a results directory",
                       description="Render every figure of lindiff.figures from a results directory "
                                   "written by lindiff sweep.")
    f.add_argument("--results", default="lindiff-results", help="results directory (default ./lindiff-results)")
    f.add_argument("--out", default="lindiff-figures", help="output directory (default ./lindiff-figures)")
    f.set_defaults(func=_cmd_figures)

    pf = sub.add_parser("paper-figures", help="compute default data and write the paper's figures and lindiff's own",
                        description="Compute small default data and write the paper's six figures, the "
                                    "memorisation figure and the training-vs-theory figure as PNGs "
                                    "(lindiff.figures.paper_figures: a few minutes on 2 cores; --quick: "
                                    "well under a minute). Real data sets that are absent are skipped.")
    pf.add_argument("--out", default="lindiff-figures", help="output directory (default ./lindiff-figures)")
    pf.add_argument("--quick", action="store_true", help="smaller grids (d = 16, fewer seeds and steps)")
    pf.add_argument("--no-extras", dest="no_extras", action="store_true",
                    help="only the paper's six figures (no memorisation / training figures)")
    pf.add_argument("--dpi", type=int, default=110, help="PNG resolution (default 110)")
    pf.add_argument("--quiet", action="store_true", help="no progress messages")
    pf.set_defaults(func=_cmd_paper_figures)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _Parser(prog="lindiff", description="Linear diffusion models in closed form.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="quick KL-vs-N sweep with theory; prints a table, writes a figure",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--d", type=int, default=64, help="dimension (default 64)")
    p.add_argument("--seeds", type=int, default=5, help="training sets per (N, k) (default 5)")
    p.add_argument("--T", type=int, default=1000, help="diffusion steps of the paper schedule (default 1000)")
    p.add_argument("--out", default="lindiff-demo.png", help="figure path (default lindiff-demo.png)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=_cmd_demo)
    _add_sweep_parser(sub)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except UserError as exc:
        print(f"lindiff: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
