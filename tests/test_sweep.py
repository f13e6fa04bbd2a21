"""Sweeps: rows against direct model calls, the results store (resume, SIGKILL, grid changes),
Dask against local (and a worker killed mid-sweep), grid validation and the CLI."""

from __future__ import annotations

import importlib
import math
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

pd = pytest.importorskip("pandas")
pytest.importorskip("pyarrow")

import lindiff  # noqa: E402
from lindiff import cli  # noqa: E402
from lindiff.store import PARAM_COLUMNS  # noqa: E402

sweep_mod = importlib.import_module("lindiff.sweeps")

SMALL = {"d": [6], "N": [4, 12, 300], "k": [0.0, 1.5], "ridge": [0.0, 0.05], "train_time": [None, 20.0],
         "T": [40], "seeds": 2}


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(list(PARAM_COLUMNS)).reset_index(drop=True)


def _schedule(T: int, name: str) -> lindiff.Schedule:
    return {"paper": lindiff.Schedule.paper, "linear": lindiff.Schedule.linear,
            "cosine": lindiff.Schedule.cosine}[name](T)


# ---------------------------------------------------------------------- rows equal direct calls
def test_rows_equal_direct_model_calls():
    grid = dict(SMALL, sampler=["ddpm", "ddim"], sigma=["beta", "beta_tilde"], final_noise=[True, False],
                schedule=["paper", "cosine"])
    df = lindiff.sweep(grid, workers=2, progress=False)
    # N k ridge time seeds schedule × (DDPM: sigma × final_noise; DDIM adds no noise: one row)
    n_cfg = 3 * 2 * 2 * 2 * 2 * 2 * (2 * 2 + 1)
    assert len(df) == n_cfg and not df.duplicated(list(PARAM_COLUMNS)).any()
    ddim = df[df.sampler == "ddim"]
    assert len(ddim) == n_cfg // 5 and (ddim.sigma == "none").all() and not ddim.final_noise.any()
    assert list(df.columns) == [
        "dataset", "k", "d", "N", "seed", "ridge", "train_time", "T", "schedule", "sampler", "sigma",
        "final_noise", "kl_forward", "kl_reverse", "kl_opt_forward", "kl_opt_reverse", "excess_forward",
        "excess_reverse", "train_loss", "test_loss", "bayes_loss", "theory_large_n", "theory_ideal_forward",
        "theory_ideal_reverse", "theory_mp_forward", "theory_mp_reverse"]
    assert (df["dataset"] == "gaussian").all()
    stats_cache: dict = {}
    rows = df.sample(60, random_state=1) if len(df) > 60 else df
    for row in rows.itertuples(index=False):
        target = lindiff.GaussianTarget.power_law(row.d, row.k)
        key = (row.k, row.N, row.seed)
        if key not in stats_cache:
            src = {"kind": "gaussian", "dataset": "gaussian", "k": row.k, "d": row.d, "rotation": None}
            stats_cache[key] = target.empirical_stats(row.N, rng=sweep_mod.stats_seed(src, row.N, row.seed))
        stats = stats_cache[key]
        sch = _schedule(row.T, row.schedule)
        tau = None if math.isinf(row.train_time) else row.train_time
        opts = dict(sigma="beta" if row.sigma == "none" else row.sigma, final_noise=row.final_noise,
                    sampler=row.sampler)
        model = lindiff.LinearDiffusion(stats, sch, ridge=row.ridge, train_time=tau)
        kl = model.kl(target, **opts)
        exact = lindiff.EmpiricalStats.from_moments(2**62, target.mean, target.cov)
        kl_opt = lindiff.LinearDiffusion(exact, sch, ridge=row.ridge, train_time=tau).kl(target, **opts)
        np.testing.assert_allclose([row.kl_forward, row.kl_reverse], [kl["forward"], kl["reverse"]], rtol=1e-8)
        np.testing.assert_allclose([row.kl_opt_forward, row.kl_opt_reverse],
                                   [kl_opt["forward"], kl_opt["reverse"]], rtol=1e-8, atol=1e-12)
        np.testing.assert_allclose(row.excess_forward, kl["forward"] - kl_opt["forward"], rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(row.train_loss, model.train_loss().mean(), rtol=1e-9)
        np.testing.assert_allclose(row.test_loss, model.test_loss(target).mean(), rtol=1e-9)
        np.testing.assert_allclose(row.bayes_loss, model.bayes_floor(target).mean(), rtol=1e-12)
        d, N = row.d, row.N
        assert row.theory_large_n == pytest.approx((d * d + 3 * d) / (4 * N), rel=1e-15)
        fwd, rev = lindiff.theory.expected_kl_ideal(d, N, "both")
        assert (row.theory_ideal_forward, row.theory_ideal_reverse) == (pytest.approx(fwd), pytest.approx(rev))
        mf, mr = lindiff.theory.kl_marchenko_pastur(d / N, "both")
        assert row.theory_mp_forward == pytest.approx(d * mf) and row.theory_mp_reverse == pytest.approx(d * mr)
        if N <= d:
            assert math.isinf(row.theory_mp_forward)


def test_one_evaluate_grid_call_per_setting(monkeypatch):
    calls = []
    real = lindiff.model.evaluate_grid

    def spy(stats, target, schedule=None, **kw):
        calls.append((stats.n, len(np.atleast_1d(kw["ridge"])), len(np.atleast_1d(kw["train_time"]))))
        return real(stats, target, schedule, **kw)

    monkeypatch.setattr(lindiff.model, "evaluate_grid", spy)
    sweep_mod._OPT.clear()
    lindiff.sweep({"d": 5, "N": [7, 9], "k": 0.5, "ridge": [0, 0.1, 1], "train_time": [None, 5, 50],
                   "T": 30, "seeds": 1, "sampler": ["ddpm", "ddim"]}, workers=1, progress=False)
    sample_calls = [c for c in calls if c[0] != 2**62]
    assert len(sample_calls) == 2 * 2  # (N) × (sampler), each over all 3 ridges × 3 times
    assert all(c[1:] == (3, 3) for c in sample_calls)


def test_deterministic_and_independent_of_workers():
    a = lindiff.sweep(SMALL, workers=1, progress=False)
    b = lindiff.sweep(SMALL, workers=3, progress=False)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    # seeds give different training sets; the rotation axis is recorded in the dataset column
    k0 = a[(a.k == 0) & (a.N == 12) & (a.ridge == 0) & np.isinf(a.train_time)]
    assert k0.kl_forward.nunique() == 2
    r = lindiff.sweep(dict(SMALL, rotation="random"), workers=2, progress=False)
    assert (r["dataset"] == "gaussian:rotated").all()
    assert np.isfinite(r.kl_reverse).all() and len(r) == len(a)


# ---------------------------------------------------------------------- data sets
def test_user_array_and_npy_path(tmp_path):
    X = np.random.default_rng(3).standard_normal((400, 5)) @ np.diag([3.0, 2.0, 1.0, 0.5, 0.2]) + 1.0
    grid = {"dataset": X, "N": [4, 20, 400], "ridge": [0, 0.1], "T": 40, "seeds": 2}
    df = lindiff.sweep(grid, progress=False)
    assert len(df) == 3 * 2 * 2 and df.k.isna().all() and (df.d == 5).all()
    assert df.dataset.iloc[0].startswith("array:")
    np.save(tmp_path / "data.npy", X)
    g2 = {k: v for k, v in grid.items() if k != "dataset"}
    df2 = lindiff.sweep(dict(g2, data_path=str(tmp_path / "data.npy")), progress=False)
    assert df2.dataset.iloc[0].startswith("data:")
    cols = [c for c in df.columns if c != "dataset"]
    pd.testing.assert_frame_equal(df[cols], df2[cols], check_exact=True)
    # a row against direct calls: the first N rows of the seed's shuffle, target = full-data fit
    target = lindiff.Gaussian.fit(X)
    src = {"kind": "data", "dataset": df.dataset.iloc[0]}
    for row in df[(df.ridge == 0.1)].itertuples(index=False):
        perm = np.random.default_rng(sweep_mod.stats_seed(src, None, row.seed)).permutation(len(X))
        stats = lindiff.EmpiricalStats(X[perm[: row.N]])
        model = lindiff.LinearDiffusion(stats, lindiff.Schedule.paper(40), ridge=row.ridge)
        kl = model.kl(target)
        np.testing.assert_allclose([row.kl_forward, row.kl_reverse], [kl["forward"], kl["reverse"]], rtol=1e-7)
        np.testing.assert_allclose(row.test_loss, model.test_loss(target).mean(), rtol=1e-9)


def test_data_errors_and_constant_features(tmp_path):
    X = np.random.default_rng(1).standard_normal((50, 4))
    X[:, 2] = 0.5  # a blank pixel
    with pytest.raises(ValueError, match="singular covariance.*drop_constant"):
        lindiff.sweep({"dataset": X, "N": [10]}, progress=False)
    df = lindiff.sweep({"dataset": X, "N": [10, 50], "drop_constant": True, "T": 30}, progress=False)
    assert (df.d == 3).all() and df.dataset.iloc[0].endswith("-drop1") and np.isfinite(df.kl_forward).all()
    with pytest.raises(ValueError, match="drop_constant applies to dataset"):
        lindiff.sweep({"d": 3, "k": 0, "N": [10], "drop_constant": True}, progress=False)
    X = np.random.default_rng(0).standard_normal((50, 3))
    with pytest.raises(ValueError, match="exceeds the 50 rows"):
        lindiff.sweep({"dataset": X, "N": [10, 60]}, progress=False)
    with pytest.raises(ValueError, match="conflicts with dataset"):
        lindiff.sweep({"dataset": X, "N": [10], "k": [1]}, progress=False)
    with pytest.raises(ValueError, match="does not exist"):
        lindiff.sweep({"data_path": str(tmp_path / "nope.npy"), "N": [10]}, progress=False)


# ---------------------------------------------------------------------- grid validation
@pytest.mark.parametrize("grid, match", [
    ({"d": [5], "N": [10], "k": [0], "ridges": [0]}, "unknown grid key.*'ridges'"),
    ({"d": [], "N": [10], "k": [0]}, "'d' is an empty list"),
    ({"d": [5], "N": [10], "k": []}, "'k' is an empty list"),
    ({"d": [5], "N": [1], "k": [0]}, "N must be >= 2"),
    ({"d": [0], "N": [10], "k": [0]}, "d must be >= 1"),
    ({"d": [5], "N": [10], "N_over_d": [1.0], "k": [0]}, "N or N_over_d, not both"),
    ({"d": [5], "N_over_d": [0.1], "k": [0]}, "N = 0 < 2"),
    ({"d": [5], "k": [0]}, "needs N"),
    ({"d": [5], "N": [10]}, "needs k"),
    ({"d": [5], "N": [10], "k": [0], "ridge": [-1]}, "ridge values must be >= 0"),
    ({"d": [5], "N": [10], "k": [0], "sampler": ["euler"]}, "sampler must be one of"),
    ({"d": [5], "N": [10], "k": [0], "seeds": 0}, "seeds must be >= 1"),
    ({"d": [5], "N": [10], "k": [0], "T": [0]}, "T must be >= 1"),
    ({"d": [5], "N": [10], "k": [0], "train_time": [-1.0]}, "train_time values must be >= 0"),
])
def test_bad_grid_raises_valueerror(grid, match):
    with pytest.raises(ValueError, match=match):
        lindiff.sweep(grid, progress=False)


def _cli(args: list[str]) -> int:
    """cli.main's exit code, whether it returns it (user errors) or argparse exits with it."""
    try:
        return cli.main(args)
    except SystemExit as exc:
        return int(exc.code or 0)


@pytest.mark.parametrize("args", [
    ["--d", "5", "--N", "10", "--k", "0", "--nope", "1"],
    ["--d", "5", "--N", "1", "--k", "0"],
    ["--d", "5", "--k", "0"],
    ["--d", "", "--N", "4", "--k", "0"],
    ["--d", "5", "--N", "10", "--N-over-d", "2", "--k", "0"],
    ["--d", "5", "--N", "4", "--k", "0", "--sampler", "euler"],
    ["--d", "5", "--N", "4", "--k", "0", "--seeds", "x"],
])
def test_cli_sweep_user_errors_one_line_exit_2(args, tmp_path, capsys):
    assert _cli(["sweep", *args, "--results", str(tmp_path / "r"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "error:" in err[0]


def test_cli_sweep_config_file_and_flags(tmp_path, capsys):
    cfg = tmp_path / "grid.toml"
    cfg.write_text(textwrap.dedent("""
        d = [6]
        N_over_d = [0.5, 4]
        k = [0, 1]
        ridge = [0.0, 0.1]
        train_time = ["inf", 10.0]
        T = 30
        seeds = 2
    """))
    out = tmp_path / "res"
    assert cli.main(["sweep", "--config", str(cfg), "--results", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "excess KL" in text and "32 configurations" in text
    df = pd.read_parquet(out)
    assert len(df) == 32 and set(df.N) == {3, 24}
    # flags override the file; the overlapping rows are reused, so only the new k is computed
    assert cli.main(["sweep", "--config", str(cfg), "--k", "0,1,2", "--results", str(out), "--quiet"]) == 0
    assert len(pd.read_parquet(out)) == 48
    direct = lindiff.sweep({"d": [6], "N_over_d": [0.5, 4], "k": [0, 1, 2], "ridge": [0, 0.1],
                            "train_time": [None, 10.0], "T": 30, "seeds": 2}, progress=False)
    stored = pd.read_parquet(out)[list(direct.columns)]
    pd.testing.assert_frame_equal(_sorted(stored), _sorted(direct), check_exact=True)
    bad = tmp_path / "bad.toml"
    bad.write_text("d = [6]\nN = [4]\nk = [0]\nbogus = 1\n")
    assert cli.main(["sweep", "--config", str(bad), "--results", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown grid key" in err[0]


def test_cli_help_lists_every_grid_key(capsys):
    with pytest.raises(SystemExit):
        cli.main(["sweep", "--help"])
    text = capsys.readouterr().out
    for flag in ["--d", "--N", "--N-over-d", "--k", "--ridge", "--train-time", "--T", "--schedule", "--sampler",
                 "--sigma", "--final-noise", "--seeds", "--rotation", "--dataset", "--data-path", "--config",
                 "--results", "--scheduler", "--quiet", "--workers"]:
        assert flag in text


# ---------------------------------------------------------------------- the store: resume
def test_resume_after_a_task_raises(tmp_path, monkeypatch):
    res = tmp_path / "res"
    real = sweep_mod._run_task
    calls = []
    fail = [True]

    def flaky(spec, ctx, workers=1):
        calls.append(spec["key"])
        if fail[0] and len(calls) == 3:
            raise RuntimeError("injected failure")
        return real(spec, ctx, workers)

    monkeypatch.setattr(sweep_mod, "_run_task", flaky)
    with pytest.raises(RuntimeError, match="injected"):
        lindiff.sweep(SMALL, results=res, workers=1, progress=False)
    files = [p for p in os.listdir(res) if p.endswith(".parquet")]
    assert len(files) == 2 and not any(p.startswith(".tmp") for p in os.listdir(res))
    calls.clear()
    fail[0] = False
    df = lindiff.sweep(SMALL, results=res, workers=1, progress=False)
    assert len(calls) == 12 - 2  # 3 N × 2 k × 2 seeds tasks, 2 already done
    clean = lindiff.sweep(SMALL, progress=False)
    pd.testing.assert_frame_equal(df, clean, check_exact=True)
    # a complete store: nothing runs
    calls.clear()
    again = lindiff.sweep(SMALL, results=res, progress=False)
    assert calls == []
    pd.testing.assert_frame_equal(again, clean, check_exact=True)
    # a changed grid reuses the overlap: a new seed and a new ridge
    calls.clear()
    grid2 = dict(SMALL, seeds=3, ridge=[0.0, 0.05, 0.5])
    df2 = lindiff.sweep(grid2, results=res, workers=2, progress=False)
    assert len(df2) == 3 * 2 * 3 * 2 * 3
    assert len(calls) == 12 + 6  # every (N, k, seed) needs ridge 0.5; seed 2 is new throughout
    old = df2.merge(clean, on=list(PARAM_COLUMNS), suffixes=("", "_old"))
    assert len(old) == len(clean)
    assert (old.kl_forward == old.kl_forward_old).all()
    assert not pd.read_parquet(res).duplicated(list(PARAM_COLUMNS)).any()


def test_store_readable_without_lindiff(tmp_path):
    res = tmp_path / "res"
    lindiff.sweep(dict(SMALL, seeds=1), results=res, progress=False)
    (res / ".tmp-deadbeef-partial.parquet").write_bytes(b"PAR1 truncated garbage")  # a crashed write
    code = textwrap.dedent(f"""
        import sys, pandas
        df = pandas.read_parquet({str(res)!r})
        assert not any(m.startswith("lindiff") for m in sys.modules), "lindiff was imported"
        print(len(df), len(df.columns))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(3 * 2 * 2 * 2), "29"]  # params, measures, emp_* and n_samples


_KILL_SCRIPT = """
import importlib, sys, time, lindiff
sweep_mod = importlib.import_module("lindiff.sweeps")
real = sweep_mod._run_task
def slow(spec, ctx, workers=1):  # a window of a few seconds in which to kill, on any machine
    time.sleep(0.1)
    return real(spec, ctx, workers)
sweep_mod._run_task = slow
grid = {"d": [60], "N_over_d": [0.5, 1.5, 4, 16, 64, 256, 1024], "k": [0, 1], "ridge": [0, 0.01, 0.1],
        "train_time": [None, 100.0], "T": [1000], "seeds": 3}
lindiff.sweep(grid, results=sys.argv[1], workers=1, progress=False)
"""


def test_resume_after_sigkill(tmp_path):
    res = tmp_path / "res"
    log = open(tmp_path / "stderr.txt", "wb")
    proc = subprocess.Popen([sys.executable, "-c", _KILL_SCRIPT, str(res)], stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            if res.is_dir() and len([p for p in os.listdir(res) if p.endswith(".parquet")]) >= 4:
                break
            if proc.poll() is not None:
                break
            time.sleep(0.02)
        assert proc.poll() is None, f"the sweep ended before it was killed: {(tmp_path / 'stderr.txt').read_text()}"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
        log.close()
    assert proc.returncode == -signal.SIGKILL
    n_before = len(pd.read_parquet(res))
    assert 0 < n_before < 7 * 2 * 3 * 3 * 2
    grid = {"d": [60], "N_over_d": [0.5, 1.5, 4, 16, 64, 256, 1024], "k": [0, 1], "ridge": [0, 0.01, 0.1],
            "train_time": [None, 100.0], "T": [1000], "seeds": 3}
    df = lindiff.sweep(grid, results=res, progress=False)
    stored = pd.read_parquet(res)
    assert len(stored) == len(df) == 7 * 2 * 3 * 3 * 2
    assert not stored.duplicated(list(PARAM_COLUMNS)).any()
    clean = lindiff.sweep(grid, progress=False)
    pd.testing.assert_frame_equal(df, clean, check_exact=True)


def test_progress_bar_when_asked(capsys):
    pytest.importorskip("tqdm")
    lindiff.sweep(dict(SMALL, seeds=1), progress=True, workers=1)
    assert "lindiff sweep" in capsys.readouterr().err
    lindiff.sweep(dict(SMALL, seeds=1), progress=None, workers=1)  # stderr is not a terminal here
    assert capsys.readouterr().err == ""


def test_empirical_columns(tmp_path):
    grid = {"d": [4], "N": [200], "k": [1.0], "ridge": [0.0, 0.1], "T": [50], "seeds": 1, "n_samples": 4000}
    if not hasattr(lindiff.LinearDiffusion, "sample"):
        with pytest.raises(NotImplementedError, match="LinearDiffusion.sample"):
            lindiff.sweep(grid, empirical=True, progress=False)
        return
    res = tmp_path / "res"
    plain = lindiff.sweep(grid, results=res, progress=False)
    assert "emp_kl_forward" not in plain.columns
    df = lindiff.sweep(grid, results=res, empirical=True, progress=False)  # the store lacks emp_*: recompute
    assert np.isfinite(df.emp_kl_forward).all() and np.isfinite(df.emp_kl_reverse).all()
    pd.testing.assert_frame_equal(df[plain.columns], plain, check_exact=True)
    # the Gaussian fit of n samples overshoots the exact KL by about (d²+3d)/(4n) on average
    bias = (16 + 12) / (4 * 4000)
    assert np.all(np.abs(df.emp_kl_forward - df.kl_forward - bias) < 10 * bias + 0.05 * df.kl_forward)
    # the same rows against a direct call with the documented stream
    row = df.iloc[1]
    target = lindiff.GaussianTarget.power_law(4, 1.0)
    src = {"kind": "gaussian", "dataset": "gaussian", "k": 1.0, "d": 4, "rotation": None}
    stats = target.empirical_stats(200, rng=sweep_mod.stats_seed(src, 200, 0))
    model = lindiff.LinearDiffusion(stats, lindiff.Schedule.paper(50), ridge=row.ridge)
    rng = np.random.SeedSequence(sweep_mod._entropy({"purpose": "samples", **{c: row[c] for c in PARAM_COLUMNS}}))
    emp = lindiff.gaussian_fit_kl(model.sample(4000, rng=rng), target)
    assert row.emp_kl_forward == pytest.approx(emp["forward"], rel=1e-6)
    assert len(pd.read_parquet(res).drop_duplicates(list(PARAM_COLUMNS))) == len(df)
    assert (df.n_samples == 4000).all()


def test_store_reuses_samples_only_at_the_same_n_samples(tmp_path, monkeypatch):
    grid = {"d": [3], "N": [50], "k": [0.0], "ridge": [0.0, 0.1], "T": [30], "seeds": 1, "n_samples": 300}
    res = tmp_path / "res"
    first = lindiff.sweep(grid, results=res, empirical=True, progress=False)
    assert (first.n_samples == 300).all()
    calls = []
    real = sweep_mod._run_task
    monkeypatch.setattr(sweep_mod, "_run_task", lambda spec, ctx, workers=1: calls.append(spec) or real(spec, ctx, workers))
    again = lindiff.sweep(grid, results=res, empirical=True, progress=False)
    assert calls == []  # everything was there, at this n_samples
    pd.testing.assert_frame_equal(again, first, check_exact=True)
    more = lindiff.sweep({**grid, "n_samples": 900}, results=res, empirical=True, progress=False)
    assert len(calls) == 1 and (more.n_samples == 900).all()
    assert not np.array_equal(more.emp_kl_forward, first.emp_kl_forward)
    pd.testing.assert_frame_equal(more.drop(columns=["emp_kl_forward", "emp_kl_reverse", "n_samples"]),
                                  first.drop(columns=["emp_kl_forward", "emp_kl_reverse", "n_samples"]))


def test_format_1_files_are_read_and_their_samples_not_trusted(tmp_path):
    import pyarrow.parquet as pq

    grid = {"d": [3], "N": [50], "k": [0.0], "T": [30], "seeds": 1, "n_samples": 300}
    res = tmp_path / "res"
    df = lindiff.sweep(grid, results=res, empirical=True, progress=False)
    for f in res.glob("*.parquet"):  # rewrite as format 1 did: no n_samples column
        pq.write_table(pq.read_table(f).drop(["n_samples"]), f)
    store = lindiff.store.ResultStore(res)
    old = store.read()
    assert (old.n_samples == 0).all() and np.array_equal(old.emp_kl_forward, df.emp_kl_forward)
    assert store.keys(n_samples=300) == set() and len(store.keys()) == len(df)
    redo = lindiff.sweep(grid, results=res, empirical=True, progress=False)
    assert (redo.n_samples == 300).all()


# ---------------------------------------------------------------------- Dask
DASK_GRID = {"d": [40], "N_over_d": [0.5, 2, 8, 100], "k": [0, 1], "ridge": [0, 0.01, 0.1],
             "train_time": [None, 50.0], "T": [300], "seeds": 3}


@pytest.fixture(scope="module")
def dask_client():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                       dashboard_address=":0", silence_logs=50)
    client = distributed.Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_dask_equals_local(dask_client, tmp_path):
    local = lindiff.sweep(DASK_GRID, progress=False)
    remote = lindiff.sweep(DASK_GRID, client=dask_client, progress=False)
    pd.testing.assert_frame_equal(remote, local, check_exact=True)
    # with a store, and a data set shipped to the workers
    X = np.random.default_rng(5).standard_normal((300, 6)) * np.linspace(2, 0.5, 6)
    grid = {"dataset": X, "N": [5, 30, 300], "ridge": [0, 0.1], "T": 50, "seeds": 2}
    a = lindiff.sweep(grid, client=dask_client, results=tmp_path / "r", progress=False)
    b = lindiff.sweep(grid, progress=False)
    pd.testing.assert_frame_equal(a, b, check_exact=True)


def _gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_dask_worker_killed_mid_sweep(dask_client, tmp_path):
    grid = dict(DASK_GRID, seeds=4)
    res = tmp_path / "res"
    n_workers = len(dask_client.scheduler_info()["workers"])
    assert n_workers >= 2
    victim = sorted(dask_client.scheduler_info()["workers"])[0]
    victim_pid = dask_client.run(os.getpid, workers=[victim])[victim]
    killed = threading.Event()

    def kill_when_running():
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if res.is_dir() and len([p for p in os.listdir(res) if p.endswith(".parquet")]) >= 3:
                os.kill(victim_pid, signal.SIGKILL)  # a LocalCluster worker is a local process
                killed.set()
                return
            time.sleep(0.02)

    def slow_down(delay):  # nested, so that cloudpickle ships it by value to the workers
        import importlib
        import time

        m = importlib.import_module("lindiff.sweeps")
        orig = getattr(m._run_task, "_orig", m._run_task)
        if delay == 0:
            m._run_task = orig
            return

        def slow(spec, ctx, workers=1):
            time.sleep(delay)
            return orig(spec, ctx, workers)

        slow._orig = orig
        m._run_task = slow

    dask_client.run(slow_down, 0.1)  # every task lasts >= 0.1 s: the kill lands mid-sweep
    killer = threading.Thread(target=kill_when_running, daemon=True)
    killer.start()
    df = lindiff.sweep(grid, client=dask_client, results=res, progress=False)
    killer.join(timeout=5)
    assert killed.is_set(), "the sweep ended before a worker could be killed"
    assert _gone(victim_pid, timeout=10), "the victim worker process is still alive"
    dask_client.run(slow_down, 0)
    stored = pd.read_parquet(res)
    n = 4 * 2 * 4 * 3 * 2
    assert len(df) == len(stored) == n
    assert not stored.duplicated(list(PARAM_COLUMNS)).any()
    local = lindiff.sweep(grid, progress=False)
    pd.testing.assert_frame_equal(df, local, check_exact=True)
    # the nanny restarts the worker; wait (bounded) so that later tests see two workers
    deadline = time.monotonic() + 30
    while len(dask_client.scheduler_info()["workers"]) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)


# ---------------------------------------------------------------------- Dask batching and memory
@pytest.mark.parametrize("n_tasks,threads", [(0, 2), (1, 2), (5, 2), (450, 2), (450, 7), (1000, 1)])
def test_dask_batches_cover_every_task_once_in_order(n_tasks, threads):
    tasks = [{"key": str(i)} for i in range(n_tasks)]
    batches = sweep_mod._batches(tasks, threads)
    assert [t for b in batches for t in b] == tasks
    assert all(1 <= len(b) <= 8 for b in batches)
    if n_tasks >= 64 * threads:  # batched: the last 2 per thread run alone, so workers end together
        assert [len(b) for b in batches[-2 * threads:]] == [1] * (2 * threads)
        assert max(len(b) for b in batches) > 1


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_keep_freed_memory_avoids_page_faults_under_dasks_malloc_setting():
    # Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536: then each 4 MB temporary is
    # a fresh mmap, page-faulted again (~1000 faults) on every allocation. Inside a batch lindiff
    # keeps the memory; after it, the setting is back (faults again).
    code = textwrap.dedent("""
        import platform, resource, numpy as np
        from lindiff import sweeps
        if platform.libc_ver()[0] != "glibc":
            print("skip"); raise SystemExit
        def faults():
            r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            for _ in range(40):
                a = np.ones(512 * 1024)  # 4 MB, written
                del a
            return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0
        before = faults()
        with sweeps._keep_freed_memory():
            with sweeps._keep_freed_memory():  # nested (two batches on two threads)
                inside = faults()
            inner_exit = faults()
        after = faults()
        print(before, inside, inner_exit, after)
    """)
    env = dict(os.environ, MALLOC_TRIM_THRESHOLD_="65536")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    if out.stdout.strip() == "skip":
        pytest.skip("not glibc")
    before, inside, inner_exit, after = map(int, out.stdout.split())
    # 40 allocations of 1024 pages (fewer faults with transparent huge pages): at least 40·256
    assert before > 40 * 256 and after > before / 2, (before, after)  # Dask's setting, in force outside
    assert inside < before / 10 and inner_exit < before / 10, (before, inside, inner_exit)  # memory kept
