"""The command line: the README's main job end to end on a tiny grid, and user errors."""

from pathlib import Path

import numpy as np
import pytest

from lindiff import cli


def test_demo_runs_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo.png"
    assert cli.main(["demo", "--d", "8", "--seeds", "2", "--T", "50", "--out", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "Transition (k=0)" in text and "(d²+3d)/(4N)" in text
    assert out.exists() and out.stat().st_size > 10_000
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_sweep_reproduces_the_large_n_law():
    # Independent of the table formatting: excess KL × 4N/(d²+3d) → 1 at the largest N.
    # T = 1000: with the paper schedule a short chain is not yet the ideal sampler N(μ̂, Σ̂).
    res = cli.demo_sweep(d=10, ks=(0.0,), ratios=(0.5, 2000.0), seeds=16, T=1000)
    d, N = 10, res["N"][-1]
    excess = res["kl"][0, -1].mean() - res["kl_opt"][0]
    assert excess * 4 * N / (d * d + 3 * d) == pytest.approx(1.0, abs=0.15)
    # and memorisation below N = d: the γ = 0 KL dwarfs the optimal-ridge KL
    assert np.all(res["kl"][0, 0] > 10 * res["kl_ridge"][0, 0])


@pytest.mark.parametrize("args", [["--d", "1"], ["--seeds", "0"], ["--T", "0"]])
def test_demo_user_errors_are_one_line_exit_2(args, capsys):
    assert cli.main(["demo", *args, "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lindiff: error:")


def test_unknown_subcommand_exits_2():
    with pytest.raises(SystemExit) as exc:
        cli.main(["nope"])
    assert exc.value.code == 2


def test_figures_command_renders_a_results_directory(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    pytest.importorskip("pyarrow")
    res, out = tmp_path / "res", tmp_path / "figs"
    assert cli.main(["sweep", "--d", "8", "--N-over-d", "0.5,2,8", "--k", "0,1", "--ridge", "0,0.01,0.1",
                     "--train-time", "inf,5,50", "--T", "100", "--results", str(res), "--quiet"]) == 0
    capsys.readouterr()
    assert cli.main(["figures", "--results", str(res), "--out", str(out)]) == 0
    printed = capsys.readouterr().out.split()
    names = sorted(p.name for p in out.glob("*.png"))
    assert names == sorted(["kl_vs_n_forward.png", "kl_vs_n_reverse.png", "losses_vs_n.png", "kl_vs_ridge.png",
                            "kl_vs_training_time.png"])
    assert sorted(Path(p).name for p in printed) == names
    for p in out.glob("*.png"):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000


def test_figures_command_user_errors(tmp_path, capsys):
    assert cli.main(["figures", "--results", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert cli.main(["figures", "--results", str(tmp_path / "empty"), "--out", str(tmp_path / "f")]) == 2
    assert "holds no rows" in capsys.readouterr().err


def test_paper_figures_command_wires_its_options(tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    from lindiff import figures

    calls = []

    def fake(outdir, quick=False, *, dpi=110, extras=True, progress=None):
        calls.append((str(outdir), quick, dpi, extras))
        progress("stage one")
        return [str(Path(outdir) / "a.png")]

    monkeypatch.setattr(figures, "paper_figures", fake)
    out = tmp_path / "pf"
    assert cli.main(["paper-figures", "--out", str(out), "--quick", "--dpi", "50", "--no-extras"]) == 0
    captured = capsys.readouterr()
    assert calls == [(str(out), True, 50, False)]
    assert captured.out.split() == [str(out / "a.png")] and "stage one" in captured.err
    assert cli.main(["paper-figures", "--out", str(out), "--quiet"]) == 0
    assert calls[-1] == (str(out), False, 110, True) and capsys.readouterr().err == ""
    assert cli.main(["paper-figures", "--dpi", "0"]) == 2
    assert "--dpi" in capsys.readouterr().err
