"""lindiff.schedule.Schedule against hand-written references (theory.md section 2)."""

from __future__ import annotations

import copy
import math
import pickle

import numpy as np
import pytest

from lindiff.schedule import Schedule


def alphas_bar_loop(betas):
    """alpha_bar_t = prod_{s<=t} (1 - beta_s), one Python float at a time."""
    out, acc = [], 1.0
    for b in betas:
        acc *= 1.0 - float(b)
        out.append(acc)
    return np.array(out)


# --------------------------------------------------------------------------- the paper schedule
def test_paper_schedule_numbers_from_theory_md():
    s = Schedule.paper()
    assert s.T == len(s) == 1000
    # theory.md section 2: alpha_bar_T ~= 6.27e-3 and sum(beta) ~= 5.055 for T = 1000.
    assert s.alphas_bar[-1] == pytest.approx(6.27e-3, abs=5e-6)
    assert s.betas.sum() == pytest.approx(5.055, abs=5e-4)
    # Exactly: sum_t (b0 + (b1 - b0) t/T) = T b0 + (b1 - b0)(T + 1)/2.
    assert s.betas.sum() == pytest.approx(1000 * 1e-4 + (1e-2 - 1e-4) * 1001 / 2, rel=1e-13)


def test_paper_schedule_uses_t_over_T():
    T, lo, hi = 7, 0.01, 0.3
    s = Schedule.paper(T, lo, hi)
    expected = [lo + (hi - lo) * t / T for t in range(1, T + 1)]
    np.testing.assert_allclose(s.betas, expected, rtol=1e-15)
    assert s.betas[-1] == pytest.approx(hi, rel=1e-15)
    assert s.betas[0] > lo  # beta_min itself is not attained


def test_derived_arrays_against_loops():
    s = Schedule.paper(T=250, beta_min=1e-3, beta_max=0.05)
    b = s.betas
    ab = alphas_bar_loop(b)
    np.testing.assert_allclose(s.alphas, 1.0 - b, rtol=0, atol=0)
    np.testing.assert_allclose(s.alphas_bar, ab, rtol=1e-14)
    np.testing.assert_allclose(s.alphas_bar_prev, np.concatenate(([1.0], ab[:-1])), rtol=1e-14)
    np.testing.assert_allclose(s.one_minus_alphas_bar, 1.0 - ab, rtol=1e-12)
    np.testing.assert_allclose(s.sigma_edm, np.sqrt((1.0 - ab) / ab), rtol=1e-12)
    bt = [b[0] * 0.0 / (1.0 - ab[0])] + [
        b[t] * (1.0 - ab[t - 1]) / (1.0 - ab[t]) for t in range(1, s.T)
    ]
    np.testing.assert_allclose(s.beta_tilde, bt, rtol=1e-12)
    assert s.beta_tilde[0] == 0.0
    assert np.all(s.beta_tilde[1:] < b[1:])  # the posterior variance is below beta_t


def test_one_minus_alphas_bar_is_accurate_at_small_t():
    s = Schedule.paper()
    b = np.asarray(s.betas, dtype=np.float64)
    # 1 - alpha_bar_1 = beta_1 and 1 - alpha_bar_2 = b1 + b2 - b1 b2 exactly in real arithmetic.
    assert s.one_minus_alphas_bar[0] == pytest.approx(b[0], rel=2e-16)
    assert s.one_minus_alphas_bar[1] == pytest.approx(b[0] + b[1] - b[0] * b[1], rel=4e-16)
    assert s.sigma_edm[0] == pytest.approx(math.sqrt(b[0] / (1.0 - b[0])), rel=4e-16)


# -------------------------------------------------------------------------- other constructors
def test_linear_is_diffusers_linspace():
    s = Schedule.linear()
    np.testing.assert_array_equal(s.betas, np.linspace(1e-4, 0.02, 1000))
    assert Schedule.linear(1, 0.1, 0.5).betas.tolist() == [0.1]
    np.testing.assert_allclose(
        Schedule.linear(5, 0.1, 0.5).betas, [0.1, 0.2, 0.3, 0.4, 0.5], rtol=1e-15
    )


def test_cosine_against_naive_formula():
    T, s_off, cap = 1000, 0.008, 0.999

    def f(u):
        return math.cos((u + s_off) / (1 + s_off) * math.pi / 2) ** 2

    ref = [min(1 - f(t / T) / f((t - 1) / T), cap) for t in range(1, T + 1)]
    sched = Schedule.cosine(T)
    # The naive ratio loses ~1e-12 to cancellation at small t; lindiff's form does not.
    np.testing.assert_allclose(sched.betas, ref, rtol=1e-9)
    assert sched.betas[-1] == cap
    # alpha_bar follows the continuous curve f(t/T)/f(0) wherever no cap is active.
    ab_curve = np.array([f(t / T) / f(0.0) for t in range(1, T + 1)])
    np.testing.assert_allclose(sched.alphas_bar[:-1], ab_curve[:-1], rtol=1e-11)


def test_cosine_parameters_and_errors():
    s = Schedule.cosine(10, s=0.1, max_beta=0.5)
    assert s.betas.max() <= 0.5
    with pytest.raises(ValueError, match="s must be > 0"):
        Schedule.cosine(10, s=0.0)
    with pytest.raises(ValueError, match="max_beta"):
        Schedule.cosine(10, max_beta=1.0)


def test_from_alphas_bar_round_trip():
    for s in (Schedule.paper(), Schedule.linear(), Schedule.cosine(), Schedule([0.5])):
        r = Schedule.from_alphas_bar(s.alphas_bar)
        np.testing.assert_allclose(r.betas, s.betas, rtol=1e-10)
        np.testing.assert_allclose(r.alphas_bar, s.alphas_bar, rtol=1e-13)


def test_from_alphas_bar_exact_values():
    s = Schedule.from_alphas_bar([0.5, 0.25, 0.2])
    np.testing.assert_allclose(s.betas, [0.5, 0.5, 0.2], rtol=1e-15)


def test_from_edm_sigmas_round_trip():
    for s in (Schedule.paper(), Schedule.cosine()):
        r = Schedule.from_edm_sigmas(s.sigma_edm)
        np.testing.assert_allclose(r.betas, s.betas, rtol=1e-10)
        np.testing.assert_allclose(r.sigma_edm, s.sigma_edm, rtol=1e-12)
    # alpha_bar = 1 / (1 + sigma^2): sigma = 1 gives 1/2, sigma = sqrt(3) gives 1/4.
    r = Schedule.from_edm_sigmas([1.0, math.sqrt(3.0)])
    np.testing.assert_allclose(r.alphas_bar, [0.5, 0.25], rtol=1e-15)


# --------------------------------------------------------------------------- diffusers configs
def test_from_diffusers_config_linear_and_defaults():
    cfg = {"num_train_timesteps": 500, "beta_start": 2e-4, "beta_end": 0.03,
           "beta_schedule": "linear", "prediction_type": "epsilon", "clip_sample": True}
    assert Schedule.from_diffusers_config(cfg) == Schedule.linear(500, 2e-4, 0.03)
    assert Schedule.from_diffusers_config({}) == Schedule.linear(1000, 1e-4, 0.02)


def test_from_diffusers_config_scaled_linear():
    # Stable Diffusion's scheduler config.
    cfg = {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012,
           "beta_schedule": "scaled_linear", "steps_offset": 1}
    s = Schedule.from_diffusers_config(cfg)
    ref = np.linspace(0.00085**0.5, 0.012**0.5, 1000) ** 2
    np.testing.assert_allclose(s.betas, ref, rtol=1e-15)
    assert s.betas[0] == pytest.approx(0.00085, rel=1e-14)
    assert s.betas[-1] == pytest.approx(0.012, rel=1e-14)


def test_from_diffusers_config_cosine_and_trained_betas():
    s = Schedule.from_diffusers_config({"num_train_timesteps": 50,
                                        "beta_schedule": "squaredcos_cap_v2"})
    assert s == Schedule.cosine(50)
    tb = [0.1, 0.2, 0.3]
    s = Schedule.from_diffusers_config({"trained_betas": tb, "beta_schedule": "linear",
                                        "num_train_timesteps": 1000})
    np.testing.assert_array_equal(s.betas, tb)
    s = Schedule.from_diffusers_config({"trained_betas": None, "num_train_timesteps": 3})
    assert s.T == 3


def test_from_diffusers_config_errors():
    with pytest.raises(ValueError, match="'linear', 'scaled_linear', 'squaredcos_cap_v2'"):
        Schedule.from_diffusers_config({"beta_schedule": "sigmoid"})
    with pytest.raises(ValueError, match="rescale_betas_zero_snr"):
        Schedule.from_diffusers_config({"rescale_betas_zero_snr": True})
    with pytest.raises(TypeError, match="mapping"):
        Schedule.from_diffusers_config([("beta_schedule", "linear")])
    with pytest.raises(ValueError, match=r"trained_betas\[1\]"):
        Schedule.from_diffusers_config({"trained_betas": [0.1, 1.0]})
    with pytest.raises(ValueError, match="T must be >= 1"):
        Schedule.from_diffusers_config({"num_train_timesteps": 0})


# ------------------------------------------------------------------------ immutability, protocol
def test_arrays_are_read_only_and_input_is_copied():
    b = np.array([0.1, 0.2, 0.3])
    s = Schedule(b)
    b[0] = 0.9
    assert s.betas[0] == 0.1
    for name in ("betas", "alphas", "alphas_bar", "alphas_bar_prev", "one_minus_alphas_bar",
                 "sigma_edm", "beta_tilde"):
        arr = getattr(s, name)
        assert arr.dtype == np.float64 and arr.shape == (3,)
        with pytest.raises(ValueError, match="read-only"):
            arr[0] = 0.5
    with pytest.raises(AttributeError, match="immutable"):
        s.foo = 1
    with pytest.raises(AttributeError):
        s.T = 5
    with pytest.raises(AttributeError, match="immutable"):
        del s._betas


def test_eq_hash_len_repr_pickle():
    a = Schedule.paper(T=10)
    b = Schedule(np.asarray(a.betas).tolist())
    assert a == b and hash(a) == hash(b)
    assert (a != b) is False
    assert a != Schedule.paper(T=11)
    assert a != Schedule.linear(T=10)
    assert a != "not a schedule"
    assert len({a, b}) == 1
    assert len(a) == 10
    assert repr(a) == "Schedule.paper(T=10, beta_min=0.0001, beta_max=0.01)"
    assert "T=3" in repr(Schedule([0.1, 0.2, 0.3]))
    for c in (pickle.loads(pickle.dumps(a)), copy.deepcopy(a), copy.copy(a)):
        assert c == a and repr(c) == repr(a)


def test_integer_like_inputs_accepted():
    assert Schedule.paper(T=10.0) == Schedule.paper(T=10)
    assert Schedule.paper(T=np.int64(10)) == Schedule.paper(T=10)
    assert Schedule(np.array([0.25], dtype=np.float32)).betas[0] == 0.25


# ---------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("betas", "match"),
    [
        ([0.1, 0.0, 0.2], r"betas\[1\] \(t = 2\) is 0.0"),
        ([0.1, 1.0], r"betas\[1\] \(t = 2\) is 1.0"),
        ([-0.1], r"betas\[0\]"),
        ([0.1, 1.5], r"strictly inside \(0, 1\)"),
        ([0.1, np.nan], r"betas\[1\] \(t = 2\) is nan; all values must be finite"),
        ([np.inf], r"finite"),
        ([[0.1, 0.2]], r"1-D"),
        (0.1, r"1-D"),
        ([], r"empty"),
    ],
)
def test_bad_betas_value_error(betas, match):
    with pytest.raises(ValueError, match=match):
        Schedule(betas)


@pytest.mark.parametrize("betas", [["a", "b"], [True, False], np.array([0.1 + 0j]), [None]])
def test_bad_betas_type_error(betas):
    with pytest.raises(TypeError, match="numeric"):
        Schedule(betas)


def test_no_argument_constructor_is_an_error():
    with pytest.raises(TypeError):
        Schedule()  # type: ignore[call-arg]


@pytest.mark.parametrize("T", [0, -3])
def test_T_below_one(T):
    for ctor in (Schedule.paper, Schedule.linear, Schedule.cosine):
        with pytest.raises(ValueError, match="T must be >= 1"):
            ctor(T)


@pytest.mark.parametrize("T", [2.5, "10", True, None, float("nan")])
def test_T_not_an_integer(T):
    with pytest.raises(TypeError, match="T must be an integer"):
        Schedule.paper(T)


def test_constructor_parameters_checked():
    with pytest.raises(ValueError, match=r"strictly inside \(0, 1\)"):
        Schedule.paper(10, 1e-4, 1.0)  # beta_T = 1
    with pytest.raises(ValueError, match="beta_max must be finite"):
        Schedule.paper(10, 1e-4, float("inf"))
    with pytest.raises(TypeError, match="beta_start must be a real number"):
        Schedule.linear(10, "0.1", 0.2)
    with pytest.raises(ValueError, match=r"betas\[0\]"):
        Schedule.linear(10, 0.0, 0.02)


@pytest.mark.parametrize(
    ("alphas_bar", "match"),
    [
        ([0.9, 0.95], r"strictly decreasing, but alphas_bar\[1\] = 0.95"),
        ([0.9, 0.9], r"strictly decreasing"),
        ([1.0, 0.5], r"alphas_bar\[0\] \(t = 1\) is 1.0"),
        ([0.5, 0.0], r"strictly inside \(0, 1\)"),
        ([0.5, np.nan], r"finite"),
        ([[0.5]], r"1-D"),
    ],
)
def test_bad_alphas_bar(alphas_bar, match):
    with pytest.raises(ValueError, match=match):
        Schedule.from_alphas_bar(alphas_bar)


@pytest.mark.parametrize(
    ("sigmas", "match"),
    [
        ([1.0, 0.5], r"strictly increasing in t, but sigmas\[1\] = 0.5"),
        ([0.0, 1.0], r"sigmas\[0\] \(t = 1\) is 0.0"),
        ([1.0, np.inf], r"finite"),
    ],
)
def test_bad_sigmas(sigmas, match):
    with pytest.raises(ValueError, match=match):
        Schedule.from_edm_sigmas(sigmas)


# ---------------------------------------------------------------------- respacing (issue 6)
def test_respace_keeps_alphas_bar_at_the_chosen_timesteps():
    s = Schedule.paper(1000)
    ts = np.array([1, 2, 10, 250, 999, 1000])
    r = s.respace(ts)
    assert r.T == ts.size
    np.testing.assert_allclose(r.alphas_bar, np.asarray(s.alphas_bar)[ts - 1], rtol=1e-13)
    # β'_k = 1 − ᾱ_{t_k}/ᾱ_{t_{k−1}}, from the products of (1 − β_s) written out here.
    ab = np.concatenate([[1.0], np.cumprod(1.0 - np.asarray(s.betas))])
    want = 1.0 - ab[ts] / ab[np.concatenate([[0], ts[:-1]])]
    np.testing.assert_allclose(r.betas, want, rtol=1e-10)
    np.testing.assert_allclose(r.one_minus_alphas_bar, 1.0 - ab[ts], rtol=1e-12)
    assert r.betas[0] == s.betas[0]  # t_1 = 1: β'_1 = β_1
    assert s.respace(np.arange(1, 1001)) == s  # identity respacing: the same betas bit for bit
    assert s.respace([1000]).T == 1 and "respace" in repr(r)


@pytest.mark.parametrize("bad, err, msg", [
    ([], ValueError, "non-empty"),
    ([[1, 2]], ValueError, "non-empty 1-D"),
    ([0, 3], ValueError, "1..T"),
    ([3, 1001], ValueError, "1..T"),
    ([3, 3], ValueError, "strictly increasing"),
    ([5, 2], ValueError, "strictly increasing"),
    ([1.5, 3.0], TypeError, "integers"),
    ([True, False], TypeError, "integers"),
])
def test_respace_bad_timesteps(bad, err, msg):
    with pytest.raises(err, match=msg):
        Schedule.paper(1000).respace(bad)
