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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lindiff", description="Linear diffusion models in closed form.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="quick KL-vs-N sweep with theory; prints a table, writes a figure",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--d", type=int, default=64, help="dimension (default 64)")
    p.add_argument("--seeds", type=int, default=5, help="training sets per (N, k) (default 5)")
    p.add_argument("--T", type=int, default=1000, help="diffusion steps of the paper schedule (default 1000)")
    p.add_argument("--out", default="lindiff-demo.png", help="figure path (default lindiff-demo.png)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=_cmd_demo)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except UserError as exc:
        print(f"lindiff: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
