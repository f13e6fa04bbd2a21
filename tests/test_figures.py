"""lindiff.figures: every figure renders headless with the expected artists (theory as Line2D
lines, simulation as error-bar points, log axes), the plotted numbers are those of the results, and
render_all / paper_figures write the files."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")  # before any pyplot import: headless
pd = pytest.importorskip("pandas")

from matplotlib.collections import PolyCollection  # noqa: E402
from matplotlib.container import ErrorbarContainer  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

import lindiff  # noqa: E402
from lindiff import datasets, figures  # noqa: E402

D = 8
T = 50
KS = (0.0, 2.0)
NS = (4, 6, 16, 40, 200)  # N/d = 0.5 … 25
SEEDS = 3
RIDGES = (0.0, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
TIMES = (0.01, 0.1, 1.0, 10.0, 100.0, math.inf)


def _results() -> pd.DataFrame:
    """The sweep's columns, computed here directly with the model API (independently of
    lindiff.figures.gaussian_frame and of lindiff.sweep)."""
    schedule = lindiff.Schedule.paper(T=T)
    rows = []
    for k in KS:
        target = lindiff.GaussianTarget.power_law(D, k)
        exact = lindiff.EmpiricalStats.from_moments(2**62, target.mean, target.cov)

        def opt(r: float, t: float) -> dict:
            return lindiff.LinearDiffusion(exact, schedule, ridge=r, train_time=t).kl(target)

        bayes = float(lindiff.LinearDiffusion(exact, schedule).bayes_floor(target).mean())
        for N in NS:
            theory = {
                "theory_large_n": (D * D + 3 * D) / (4 * N),
                "theory_ideal_forward": lindiff.theory.expected_kl_ideal(D, N, "forward"),
                "theory_ideal_reverse": lindiff.theory.expected_kl_ideal(D, N, "reverse"),
                "theory_mp_forward": D * lindiff.theory.kl_marchenko_pastur(D / N, "forward"),
                "theory_mp_reverse": D * lindiff.theory.kl_marchenko_pastur(D / N, "reverse"),
            }
            settings = {(0.0, math.inf)}
            if N in (4, 40):
                settings |= {(r, math.inf) for r in RIDGES}
            if N == 4:
                settings |= {(0.0, t) for t in TIMES}
            for seed in range(SEEDS):
                stats = target.empirical_stats(N, rng=np.random.SeedSequence([7, N, seed, int(k)]))
                for r, t in sorted(settings):
                    model = lindiff.LinearDiffusion(stats, schedule, ridge=r, train_time=t)
                    kl, ko = model.kl(target), opt(r, t)
                    rows.append({
                        "dataset": "gaussian", "k": k, "d": D, "N": N, "seed": seed, "ridge": r,
                        "train_time": t, "T": T, "schedule": "paper", "sampler": "ddpm",
                        "sigma": "beta", "final_noise": True,
                        "kl_forward": kl["forward"], "kl_reverse": kl["reverse"],
                        "kl_opt_forward": ko["forward"], "kl_opt_reverse": ko["reverse"],
                        "excess_forward": kl["forward"] - ko["forward"],
                        "excess_reverse": kl["reverse"] - ko["reverse"],
                        "train_loss": model.train_loss().mean(),
                        "test_loss": model.test_loss(target).mean(), "bayes_loss": bayes, **theory,
                    })
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def results() -> pd.DataFrame:
    return _results()


def _errorbars(ax) -> list[ErrorbarContainer]:
    return [c for c in ax.containers if isinstance(c, ErrorbarContainer)]


def _line(ax, label_part: str) -> Line2D:
    found = [ln for ln in ax.get_lines() if label_part in str(ln.get_label())]
    labels = [ln.get_label() for ln in ax.get_lines()]
    assert found, f"no line labelled …{label_part}… in {labels}"
    return found[0]


def _means(df: pd.DataFrame, x: str, y: str) -> pd.Series:
    return df.groupby(x)[y].mean()


# --------------------------------------------------------------------------- figure 1
@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_kl_vs_n(results: pd.DataFrame, direction: str) -> None:
    fig = figures.kl_vs_n(results, direction)
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    bars = _errorbars(ax)
    assert len(bars) == len(KS)  # one series of points per spectrum
    base = results[(results.ridge == 0) & np.isinf(results.train_time)]
    for bar, k in zip(bars, KS):
        x, y = bar.lines[0].get_data()
        want = _means(base[base.k == k], "N", f"excess_{direction}")
        np.testing.assert_allclose(x, np.asarray(want.index) / D)
        np.testing.assert_allclose(y, want.to_numpy(), rtol=1e-12)
        assert bar.lines[2], "error bars are drawn"
        assert bar.get_label() == f"simulation, k = {k:g}"
    law = _line(ax, "(d^2+3d)/(4N)")
    lx, ly = law.get_data()
    np.testing.assert_allclose(ly, (D * D + 3 * D) / (4 * lx * D))
    mp = _line(ax, "Marchenko")
    mx, my = mp.get_data()
    assert mx.min() > 1.0  # only for N > d
    np.testing.assert_allclose(my, D * lindiff.theory.kl_marchenko_pastur(1 / mx, direction))
    _line(ax, "Wishart")
    assert "d = 8" in ax.get_title() and "T = 50" in ax.get_title()


def test_kl_vs_n_selects_and_validates(results: pd.DataFrame) -> None:
    other_T = results.assign(T=100, kl_forward=results.kl_forward + 1)
    both = pd.concat([results, other_T, other_T.iloc[:3]], ignore_index=True)
    fig = figures.kl_vs_n(both, where={"T": 50})
    assert "T = 50" in fig.axes[0].get_title()
    fig = figures.kl_vs_n(both)  # the most frequent T
    assert "T = 100" in fig.axes[0].get_title()
    with pytest.raises(ValueError, match="direction"):
        figures.kl_vs_n(results, "sideways")
    with pytest.raises(ValueError, match=r"lacks the columns \['excess_forward'\]"):
        figures.kl_vs_n(results.drop(columns="excess_forward"))
    with pytest.raises(figures.NotApplicable, match="two values of N"):
        figures.kl_vs_n(results[results.N == 4])
    with pytest.raises(figures.NotApplicable, match="no rows with T = 7"):
        figures.kl_vs_n(results, where={"T": 7})
    with pytest.raises(TypeError, match="DataFrame"):
        figures.kl_vs_n(results.to_dict())


def test_kl_vs_n_clips_nonpositive_and_infinite(results: pd.DataFrame) -> None:
    bad = results.copy()
    bad.loc[bad.N == 200, "excess_forward"] = -1.0  # below the floor: not drawable on log axes
    bad.loc[(bad.N == 4) & (bad.seed == 0), "excess_forward"] = np.inf
    fig = figures.kl_vs_n(bad)
    for bar in _errorbars(fig.axes[0]):
        x, y = bar.lines[0].get_data()
        assert set(np.round(x * D).astype(int)) == {6, 16, 40}
        assert (y > 0).all() and np.isfinite(y).all()


# --------------------------------------------------------------------------- figure 2
def test_losses_vs_n(results: pd.DataFrame) -> None:
    fig = figures.losses_vs_n(results)
    (ax,) = fig.axes
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    bars = _errorbars(ax)
    assert len(bars) == 2 * len(KS)  # test and train per spectrum
    base = results[(results.ridge == 0) & np.isinf(results.train_time) & (results.k == 0)]
    test_bar = next(b for b in bars if b.get_label() == "test, k = 0")
    train_bar = next(b for b in bars if b.get_label() == "train, k = 0")
    np.testing.assert_allclose(test_bar.lines[0].get_ydata(), _means(base, "N", "test_loss") / D)
    np.testing.assert_allclose(train_bar.lines[0].get_ydata(), _means(base, "N", "train_loss") / D)
    gaps = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(gaps) == len(KS)  # the shaded gap
    floor = _line(ax, "Bayes floor, k = 0")
    np.testing.assert_allclose(floor.get_ydata(), base.bayes_loss.iloc[0] / D)
    de = _line(ax, "test, deterministic equivalent, k = 0")
    x, y = de.get_data()
    want = lindiff.theory.deterministic_equivalent_losses(
        np.ones(D), x[-1] * D, lindiff.Schedule.paper(T=T), known_mean=False)["test"].mean() / D
    np.testing.assert_allclose(y[-1], want)
    _line(ax, "train, deterministic equivalent, k = 2")
    # The gap is huge below N = d and closes above it (claim 1 of theory.md §6).
    t, tr = test_bar.lines[0].get_ydata(), train_bar.lines[0].get_ydata()
    assert t[0] / tr[0] > 10 and t[-1] / tr[-1] < 1.2
    fig2 = figures.losses_vs_n(results, theory=False)
    assert not [ln for ln in fig2.axes[0].get_lines() if "deterministic" in str(ln.get_label())]


# --------------------------------------------------------------------------- figure 3
def test_kl_vs_ridge(results: pd.DataFrame) -> None:
    fig = figures.kl_vs_ridge(results)
    axes = fig.axes
    assert len(axes) == 2
    for ax, N in zip(axes, (4, 40)):
        assert f"N = {N}" in ax.get_title()
        assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
        bars = _errorbars(ax)
        assert len(bars) == len(KS)
        rows = results[(results.N == N) & np.isinf(results.train_time) & (results.k == 0)]
        want = _means(rows[rows.ridge > 0], "ridge", "kl_forward")
        x, y = bars[0].lines[0].get_data()
        np.testing.assert_allclose(x, want.index)
        np.testing.assert_allclose(y, want.to_numpy())
        star = _line(ax, "optimum")
        assert star.get_marker() == "*"
        np.testing.assert_allclose([star.get_xdata()[0], star.get_ydata()[0]],
                                   [want.idxmin(), want.min()])
        zero = _line(ax, r"$\gamma = 0$, k = 0")
        np.testing.assert_allclose(zero.get_ydata()[0], rows[rows.ridge == 0].kl_forward.mean())
        _line(ax, r"$N = \infty$")
    # Claim 3: for N < d a ridge lowers the KL by orders of magnitude.
    left = _errorbars(axes[0])[0].lines[0].get_ydata()
    assert left.min() < 1e-2 * _line(axes[0], r"$\gamma = 0$, k = 0").get_ydata()[0]
    one = figures.kl_vs_ridge(results, N=(40,))
    assert len(one.axes) == 1
    with pytest.raises(figures.NotApplicable, match="positive ridge"):
        figures.kl_vs_ridge(results[results.ridge == 0])


# --------------------------------------------------------------------------- figure 4
def test_kl_vs_training_time(results: pd.DataFrame) -> None:
    fig = figures.kl_vs_training_time(results, "reverse")
    ax_kl, ax_loss = fig.axes
    for ax in (ax_kl, ax_loss):
        assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert "N = 4" in fig.get_suptitle()
    rows = results[(results.N == 4) & (results.ridge == 0) & (results.k == 2)]
    fin = rows[np.isfinite(rows.train_time)]
    want = _means(fin, "train_time", "kl_reverse")
    bar = next(b for b in _errorbars(ax_kl) if b.get_label() == "simulation, k = 2")
    np.testing.assert_allclose(bar.lines[0].get_xdata(), want.index)
    np.testing.assert_allclose(bar.lines[0].get_ydata(), want.to_numpy())
    stars = [ln for ln in ax_kl.get_lines() if ln.get_marker() == "*"]
    assert len(stars) == len(KS)
    assert want.idxmin() in [s.get_xdata()[0] for s in stars]
    conv = _line(ax_kl, r"$\tau = \infty$, k = 2")
    np.testing.assert_allclose(conv.get_ydata()[0],
                               rows[np.isinf(rows.train_time)].kl_reverse.mean())
    assert len(_errorbars(ax_loss)) == 2 * len(KS)
    _line(ax_loss, "Bayes floor")
    assert [ln for ln in ax_loss.get_lines() if ln.get_marker() == "*"]
    with pytest.raises(figures.NotApplicable, match="training times"):
        figures.kl_vs_training_time(results[np.isinf(results.train_time)])


# --------------------------------------------------------------------------- figure 5
def test_spectra() -> None:
    d, N = 30, 12
    target = lindiff.GaussianTarget.power_law(d, 1.0)
    stats = target.empirical_stats(N, rng=5)
    model = lindiff.LinearDiffusion(stats, lindiff.Schedule.paper(T=100))
    fig = figures.spectra(target, stats, model)
    (ax,) = fig.axes
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    tl, el, gl = _line(ax, "target"), _line(ax, "empirical"), _line(ax, "generated")
    assert tl.get_linestyle() == "-"
    assert el.get_linestyle() == gl.get_linestyle() == "None"  # points
    np.testing.assert_allclose(tl.get_ydata(), target.eigvals)
    np.testing.assert_array_equal(el.get_xdata(), np.arange(1, N))  # rank N−1; the rest is null
    np.testing.assert_allclose(el.get_ydata(), stats.eigvals[: N - 1])
    assert f"{d - N + 1} null directions" in el.get_label()
    gen = np.sort(model.sampling_distribution().eigvals)[::-1]
    np.testing.assert_allclose(gl.get_ydata(), gen)
    assert np.all(np.diff(gl.get_ydata()) <= 0)  # rank-ordered
    fig2 = figures.spectra(target, stats, sampler="ddim")  # default model: γ = 0, paper schedule
    assert "ddim" in _line(fig2.axes[0], "generated").get_label()
    with pytest.raises(ValueError, match="dimensions differ"):
        figures.spectra(lindiff.GaussianTarget.power_law(d + 1, 1.0), stats, model)


# --------------------------------------------------------------------------- figure 6
def _toy(n: int, d: int, seed: int) -> np.ndarray:
    g = np.random.default_rng(seed)
    X = g.laplace(size=(n, d)) * np.linspace(2.0, 0.5, d)  # non-Gaussian, anisotropic
    X[:, 0] += X[:, 1]
    return np.column_stack([X, np.full(n, 3.0)])  # plus a constant feature (dropped)


def test_real_data_frame() -> None:
    X = _toy(400, 6, 0)
    df = figures.real_data_frame([("toy", X)], ratios=[1.0, 3.0, 400 / 6], seeds=2, T=T,
                                 max_fraction=1.0)
    assert list(df.columns) == list(figures.COLUMNS)
    assert set(df.dataset) == {"toy"} and df.k.isna().all() and (df.d == 6).all()
    assert sorted(df.N.unique()) == [6, 18, 400]
    np.testing.assert_allclose(df.excess_forward, df.kl_forward - df.kl_opt_forward)
    np.testing.assert_allclose(df.theory_large_n, (36 + 18) / (4 * df.N))
    # N = n: the training set is the whole data set, whose Gaussian fit is the target, so the
    # model equals the N = ∞ one.
    full = df[df.N == 400]
    np.testing.assert_allclose(full.kl_forward, full.kl_opt_forward, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(full.test_loss, full.train_loss, rtol=1e-9)
    assert (df[df.N == 6].excess_forward > 100).all()  # N = d: memorisation
    # Seeds shuffle differently; the same seed reproduces.
    a = df[(df.N == 18)].sort_values("seed").kl_forward.to_numpy()
    assert a[0] != a[1]
    again = figures.real_data_frame([("toy", X)], ratios=[1.0, 3.0, 400 / 6], seeds=2, T=T,
                                    max_fraction=1.0)
    pd.testing.assert_frame_equal(df, again)


def test_kl_vs_n_real(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(datasets, "DEBIAN_FASHION_MNIST", str(tmp_path / "absent"))
    fig = figures.kl_vs_n_real([("toy", _toy(300, 5, 1)), "fashion_mnist"], seeds=2, T=T)
    (ax,) = fig.axes  # fashion_mnist skipped: one panel
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert len(_errorbars(ax)) == 1 and _errorbars(ax)[0].get_label() == "simulation, toy"
    _line(ax, "(d^2+3d)/(4N)")
    _line(ax, "Marchenko")
    notes = " ".join(t.get_text() for t in fig.texts)
    assert "skipped: fashion_mnist" in notes and "dataset-fashion-mnist" in notes
    with pytest.raises(figures.NotApplicable, match="no data set"):
        figures.kl_vs_n_real(["fashion_mnist"])


def test_kl_vs_n_real_bundled() -> None:
    pytest.importorskip("sklearn")
    fig = figures.kl_vs_n_real(["digits"], ratios=[0.5, 2.0, 8.0], seeds=2, T=T)
    (ax,) = fig.axes
    assert "digits" in ax.get_title() and "d = 61" in ax.get_title()  # 3 constant pixels dropped
    (bar,) = _errorbars(ax)
    assert len(bar.lines[0].get_xdata()) == 3


# --------------------------------------------------------------------------- batch
def test_render_all(results: pd.DataFrame, tmp_path: Path) -> None:
    real = figures.real_data_frame([("toy", _toy(200, 4, 2))], ratios=[1.0, 4.0], seeds=2, T=T)
    both = pd.concat([results, real], ignore_index=True)
    paths = figures.render_all(both, tmp_path / "out", dpi=40)
    names = sorted(Path(p).name for p in paths)
    assert names == sorted(["kl_vs_n_forward.png", "kl_vs_n_reverse.png", "losses_vs_n.png",
                            "kl_vs_ridge.png", "kl_vs_training_time.png", "kl_vs_n_real.png"])
    for p in paths:
        assert Path(p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Only what the rows support: one N at ridge 0 / τ = ∞ and nothing else gives no figure.
    few = results[(results.N == 40) & (results.ridge == 0) & np.isinf(results.train_time)]
    assert figures.render_all(few, tmp_path / "few") == []


def test_figures_read_sweep_output() -> None:
    pytest.importorskip("pyarrow")
    try:
        from lindiff import sweep
    except ImportError as exc:  # the sweep's own optional dependencies
        pytest.skip(f"lindiff.sweep is not available: {exc}")
    grid = {"d": [6], "k": [0.0, 1.0], "N_over_d": [0.5, 2.0, 10.0], "seeds": 2, "T": [30],
            "ridge": [0.0, 0.01, 1.0]}
    df = sweep(grid, progress=False)
    assert set(figures.COLUMNS) <= set(df.columns)
    fig = figures.kl_vs_n(df)
    base = df[(df.ridge == 0) & (df.k == 1.0)]
    bar = next(b for b in _errorbars(fig.axes[0]) if b.get_label() == "simulation, k = 1")
    np.testing.assert_allclose(bar.lines[0].get_ydata(), _means(base, "N", "excess_forward"))
    assert len(figures.kl_vs_ridge(df).axes) == 2


def test_paper_figures_quick(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(datasets, "DEBIAN_FASHION_MNIST", str(tmp_path / "absent"))
    small = dict(d=6, ks=(0.0,), ratios=(0.5, 4.0), seeds=2, T=20)
    orig = figures.gaussian_frame
    monkeypatch.setattr(figures, "gaussian_frame",
                        lambda *a, **kw: orig(**small, ridges=kw["ridges"][:3],
                                              train_times=kw["train_times"][:3]))
    orig_mem = figures.memorisation_frame
    monkeypatch.setattr(figures, "memorisation_frame",
                        lambda quick: orig_mem(("gaussian",), d=4, ratios=(0.5, 4.0), seeds=1, n_samples=40,
                                               T=40, quick=quick))
    said: list[str] = []
    paths = figures.paper_figures(tmp_path, quick=True, engine="direct",
                                  datasets=("fashion_mnist",), dpi=40, progress=said.append)
    names = {Path(p).name for p in paths}
    assert {"kl_vs_n_forward.png", "losses_vs_n.png", "kl_vs_ridge.png",
            "kl_vs_training_time.png", "spectra.png", "memorisation_vs_n.png",
            "training_vs_theory.png"} <= names
    assert len(said) == 5 and said[0].startswith("figures 1-4")
    assert "memorisation_vs_n.png" not in {
        Path(p).name for p in figures.paper_figures(tmp_path / "no-extras", quick=True, engine="direct",
                                                     datasets=("fashion_mnist",), dpi=40, extras=False)}
    assert "kl_vs_n_real.png" not in names  # its only data set is absent: skipped, no error
    assert all(Path(p).stat().st_size > 1000 for p in paths)
    with pytest.raises(ValueError, match="engine"):
        figures.paper_figures(tmp_path, engine="gpu")


# ---- issue 6: memorisation figure
def test_memorisation_figure_tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def absent(*args: object, **kwargs: object) -> None:
        raise FileNotFoundError("Fashion-MNIST not found (test)")

    monkeypatch.setattr(datasets, "fashion_mnist", absent)  # skipped cleanly when absent
    df = figures.memorisation_frame(("gaussian", "fashion_mnist"), d=4, ratios=(0.25, 1.0, 8.0),
                                    seeds=2, n_samples=60, T=60, rng=1, workers=2)
    assert set(df["model"]) == {"linear", "empirical_optimal"}
    assert "fashion_mnist" in df.attrs["skipped"]
    assert sorted(df["N"].unique()) == [1, 4, 32]
    eo = df[df["model"] == "empirical_optimal"]
    assert (eo["memorised_fraction"] == 1.0).all()  # the baseline memorises at every N here
    lin = df[(df["model"] == "linear") & (df["N"] == 32)]
    assert (lin["memorised_fraction"] < 0.5).all()
    assert eo["kl_closed_forward"].isna().all() and np.isfinite(lin["kl_closed_forward"]).all()
    fig = figures.memorisation_vs_n(df)
    assert isinstance(fig, Figure)
    axes = fig.axes
    assert len(axes) == 2
    bars = [c for c in axes[0].containers if isinstance(c, ErrorbarContainer)]
    assert len(bars) == 2  # linear and empirical-optimal points
    # The plotted fractions are the means over seeds of the frame's numbers.
    y = np.asarray(bars[1].lines[0].get_ydata())
    assert np.allclose(y, eo.groupby("N")["memorised_fraction"].mean().to_numpy())
    lines = [ln for ln in axes[1].get_lines() if ln.get_linestyle() in ("-", ":")]
    assert len(lines) >= 2  # closed-form KL line and the fit-bias line
    # The bias line is the exact expected KL of a Gaussian fitted to 60 target draws in d = 4.
    from lindiff.theory import expected_kl_ideal

    dotted = [ln for ln in lines if ln.get_linestyle() == ":"]
    assert len(dotted) == 1 and np.allclose(dotted[0].get_ydata(), expected_kl_ideal(4, 60))
    assert np.allclose(df["kl_fit_bias_reverse"], expected_kl_ideal(4, 60, "reverse"))
    assert axes[1].get_yscale() == "log" and axes[0].get_xscale() == "log"
    fig.savefig(tmp_path / "mem.png")
    assert (tmp_path / "mem.png").stat().st_size > 0
    with pytest.raises(figures.NotApplicable):
        figures.memorisation_vs_n(df.iloc[:0])


def test_memorisation_frame_real_data() -> None:
    pytest.importorskip("sklearn")
    df = figures.memorisation_frame(("digits",), ratios=(0.1, 0.5), seeds=1, n_samples=30, T=30)
    d = int(df["d"].iloc[0])
    assert 50 <= d <= 64  # digits without its constant pixels
    assert sorted(df["N"].unique()) == [round(0.1 * d), round(0.5 * d)]
    assert np.isfinite(df["median_d_held_out"]).all() and df["closer_to_train"].between(0, 1).all()
    assert (df["kl_fit_bias"] == (d * d + 3 * d) / (4 * 30)).all()
    # n = 30 samples in d >= 50: a Gaussian fit is singular, its expected KL infinite.
    assert np.isinf(df["kl_fit_bias_forward"]).all() and np.isinf(df["kl_fit_bias_reverse"]).all()
    figures.memorisation_vs_n(df)  # no bias line, no error
