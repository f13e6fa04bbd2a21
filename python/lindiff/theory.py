"""Closed-form and asymptotic theory curves to overlay on simulations (theory.md sections 2-6).

Everything here is plain NumPy (SciPy is used for the digamma function when it is installed, and a
pure-NumPy digamma of equal accuracy otherwise):

- :func:`expected_kl_ideal`: the exact expectation, over Gaussian training sets, of the KL between
  the target and the *ideal* sampler ``N(mu_hat, Sigma_hat)``;
- :func:`kl_large_n`: its large-N law ``(d^2 + 3d) / (4N)``;
- :func:`kl_marchenko_pastur`: its per-dimension limit at fixed ``q = d / N < 1``;
- :func:`kappa_fixed_point`: the self-consistent ``kappa(z)`` of the sample-covariance resolvent;
- :func:`deterministic_equivalent_losses`: the proportional-limit train and test losses of the
  optimal ridge linear denoiser at every diffusion step;
- :func:`bayes_floor`: the Bayes-optimal (population) denoising loss per step.

Conventions: the empirical covariance is the 1/N (maximum-likelihood) one; the losses are the
per-step losses L_t of theory.md section 5, summed over the d dimensions (divide by d for
per-dimension values).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Literal, Union

import numpy as np

from .schedule import Schedule

__all__ = [
    "bayes_floor",
    "deterministic_equivalent_losses",
    "expected_kl_ideal",
    "kappa_fixed_point",
    "kl_large_n",
    "kl_marchenko_pastur",
    "overlay_columns",
]

Direction = Literal["forward", "reverse", "both"]
ArrayOrFloat = Union[float, np.ndarray]

_DIRECTIONS = ("forward", "reverse", "both")
# Work arrays of shape (block, d) are kept below this many elements (32 MiB of float64).
_BLOCK_ELEMENTS = 1 << 22

# --------------------------------------------------------------------------------------- digamma
# psi(x) ~ ln x - 1/(2x) - sum_k B_2k / (2k x^2k): the coefficients B_2k / (2k), k = 1..10.
_ASYM_COEFFS = np.array(
    [
        1.0 / 12.0,
        -1.0 / 120.0,
        1.0 / 252.0,
        -1.0 / 240.0,
        1.0 / 132.0,
        -691.0 / 32760.0,
        1.0 / 12.0,
        -3617.0 / 8160.0,
        43867.0 / 14364.0,
        -174611.0 / 6600.0,
    ]
)
_ASYM_MIN = 10.0  # the series above is used for x >= 10 (truncation error < 1e-19 there)

# The positive root of psi as a double-double: x0 = _ROOT_HI + _ROOT_LO to about 32 digits
# (1.46163214496836234126265954232572...; computed with 60-digit decimal arithmetic).
_ROOT_HI = 1.4616321449683622
_ROOT_LO = 9.549995429965697e-17
_ROOT_RADIUS = 0.25
_ROOT_TERMS = 28
# B_2j / (2j)! for j = 1..10, for the Euler-Maclaurin sum of the Hurwitz zeta function.
_EM_COEFFS = np.array(
    [
        1.0 / 12.0,
        -1.0 / 720.0,
        1.0 / 30240.0,
        -1.0 / 1209600.0,
        1.0 / 47900160.0,
        -691.0 / 1307674368000.0,
        1.0 / 74724249600.0,
        -3617.0 / 10670622842880000.0,
        43867.0 / 5109094217170944000.0,
        -174611.0 / 802857662698291200000.0,
    ]
)


def _hurwitz_zeta(s: int, a: float, m: int = 20) -> float:
    """zeta(s, a) = sum_{n>=0} (a + n)^-s for integer s >= 2, a > 0 (Euler-Maclaurin, ~1e-16)."""
    n = np.arange(m - 1, -1, -1, dtype=np.float64)  # smallest terms first
    total = float(np.sum((a + n) ** (-s)))
    x = a + m
    total += x ** (1 - s) / (s - 1) + 0.5 * x ** (-s)
    rising = float(s)  # s (s+1) ... (s + 2j - 2)
    for j, coeff in enumerate(_EM_COEFFS, start=1):
        total += coeff * rising * x ** (-s - 2 * j + 1)
        rising *= (s + 2 * j - 1) * (s + 2 * j)
    return total


# psi(x0 + delta) = sum_{k>=1} (-1)^(k+1) zeta(k+1, x0) delta^k, since psi(x0) = 0.
_ROOT_COEFFS = np.array(
    [(-1.0) ** (k + 1) * _hurwitz_zeta(k + 1, _ROOT_HI) for k in range(1, _ROOT_TERMS + 1)]
)


def _asym_tail(x: np.ndarray) -> np.ndarray:
    """psi(x) - ln(x) for x >= 10 by the asymptotic series (no logarithm, so no cancellation)."""
    inv = 1.0 / x
    inv2 = inv * inv
    acc = np.zeros_like(x)
    for c in _ASYM_COEFFS[::-1]:
        acc = acc * inv2 + c
    return -0.5 * inv - acc * inv2


def _digamma_numpy(x: Any) -> np.ndarray:
    """The digamma function psi(x) for real x > 0 in pure NumPy (NaN for x <= 0 or NaN).

    Three regions, each accurate to a few ulp:

    - x >= 10: ln x plus the asymptotic series (10 Bernoulli terms);
    - |x - x0| < 0.25 around the positive root x0 = 1.4616...: the Taylor series
      psi(x) = sum_k (-1)^(k+1) zeta(k+1, x0) (x - x0)^k, with x0 held as a double-double, so the
      result keeps full *relative* accuracy right through the zero;
    - elsewhere: the recurrence psi(x) = psi(x + n) - sum_{j<n} 1/(x + j) up to x + n >= 10.
    """
    x = np.asarray(x, dtype=np.float64)
    out = np.full(x.shape, np.nan)
    with np.errstate(invalid="ignore"):
        pos = x > 0.0
    big = pos & (x >= _ASYM_MIN)
    if big.any():
        xb = x[big]
        out[big] = np.log(xb) + _asym_tail(xb)
    delta = np.where(pos, (x - _ROOT_HI) - _ROOT_LO, np.inf)
    near = pos & (np.abs(delta) < _ROOT_RADIUS)
    if near.any():
        dn = delta[near]
        acc = np.zeros_like(dn)
        for c in _ROOT_COEFFS[::-1]:
            acc = acc * dn + c
        out[near] = acc * dn
    small = pos & ~big & ~near
    if small.any():
        xs = x[small]
        shift = np.zeros_like(xs)
        y = xs.copy()
        for _ in range(int(_ASYM_MIN)):
            move = y < _ASYM_MIN
            if not move.any():
                break
            shift[move] += 1.0 / y[move]
            y[move] += 1.0
        out[small] = (np.log(y) + _asym_tail(y)) - shift
    return out


_digamma_impl: Callable[[np.ndarray], np.ndarray] | None = None


def _digamma(x: np.ndarray) -> np.ndarray:
    """psi(x) for x > 0: SciPy's digamma when SciPy is installed, else :func:`_digamma_numpy`.

    SciPy is imported on first use, not with this module (importing scipy.special costs ~0.5 s).
    Both agree to a few ulp (checked in tests/test_theory.py).
    """
    global _digamma_impl
    if _digamma_impl is None:
        try:
            from scipy.special import digamma as scipy_digamma
        except ImportError:  # pragma: no cover - exercised only without SciPy
            _digamma_impl = _digamma_numpy
        else:

            def _scipy_psi(v: np.ndarray) -> np.ndarray:
                return np.asarray(scipy_digamma(v), dtype=np.float64)

            _digamma_impl = _scipy_psi
    return _digamma_impl(x)


def _digamma_minus_log(x: np.ndarray) -> np.ndarray:
    """psi(x) - ln(x) for x > 0, without the cancellation of the difference at large x."""
    x = np.asarray(x, dtype=np.float64)
    out = np.empty_like(x)
    big = x >= _ASYM_MIN
    out[big] = _asym_tail(x[big])
    small = ~big
    if small.any():
        xs = x[small]
        out[small] = _digamma(xs) - np.log(xs)
    return out


# ------------------------------------------------------------------------------------ validation
def _as_direction(direction: Any) -> str:
    if not isinstance(direction, str) or direction not in _DIRECTIONS:
        raise ValueError(
            f"direction must be one of {', '.join(repr(d) for d in _DIRECTIONS)}; got {direction!r}"
        )
    return direction


def _numeric_array(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype == np.bool_ or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise TypeError(f"{name} must be real and numeric, got dtype {arr.dtype}")
    return np.asarray(arr, dtype=np.float64)


def _where(arr: np.ndarray, mask: np.ndarray, name: str) -> str:
    """'name = v' for a scalar, 'name[i, j] = v' for the first offending entry of an array."""
    if arr.ndim == 0:
        return f"{name} = {arr.item()!r}"
    idx = tuple(int(i) for i in np.argwhere(mask)[0])
    label = ", ".join(str(i) for i in idx)
    return f"{name}[{label}] = {float(arr[idx])!r}"


def _check_finite(arr: np.ndarray, name: str) -> None:
    bad = ~np.isfinite(arr)
    if bad.any():
        raise ValueError(f"{name} must be finite; got {_where(arr, bad, name)}")


def _as_dimension(d: Any) -> np.ndarray:
    """d as a float64 array of integers >= 1 (integral floats accepted)."""
    arr = _numeric_array(d, "d")
    _check_finite(arr, "d")
    bad = arr != np.round(arr)
    if bad.any():
        raise ValueError(f"d must be an integer; got {_where(arr, bad, 'd')}")
    bad = arr < 1
    if bad.any():
        raise ValueError(f"d must be >= 1; got {_where(arr, bad, 'd')}")
    return arr


def _as_sample_size(N: Any, minimum: float = 2.0) -> np.ndarray:
    """N as a float64 array, finite and >= minimum (non-integral values allowed: see docs)."""
    arr = _numeric_array(N, "N")
    _check_finite(arr, "N")
    bad = arr < minimum
    if bad.any():
        raise ValueError(f"N must be >= {minimum:g}; got {_where(arr, bad, 'N')}")
    return arr


def _as_eigvals(eigvals: Any) -> np.ndarray:
    arr = _numeric_array(eigvals, "eigvals")
    if arr.ndim != 1:
        raise ValueError(f"eigvals must be 1-D (the spectrum of Sigma), got shape {arr.shape}")
    if arr.shape[0] < 1:
        raise ValueError("eigvals is empty; need d >= 1 eigenvalues")
    _check_finite(arr, "eigvals")
    bad = arr <= 0.0
    if bad.any():
        where = _where(arr, bad, "eigvals")
        raise ValueError(f"eigvals must be > 0 (a positive-definite covariance); got {where}")
    return np.ascontiguousarray(arr)


def _as_scalar_N(N: Any, minimum: float, strict: bool) -> float:
    arr = _numeric_array(N, "N")
    if arr.ndim != 0:
        raise ValueError(f"N must be a scalar, got an array of shape {arr.shape}")
    value = float(arr)
    if not math.isfinite(value):
        raise ValueError(f"N must be finite, got {value}")
    if (value <= minimum) if strict else (value < minimum):
        raise ValueError(f"N must be {'>' if strict else '>='} {minimum:g}, got {value!r}")
    return value


def _as_schedule(schedule: Any) -> Schedule:
    if not isinstance(schedule, Schedule):
        raise TypeError(
            f"schedule must be a lindiff.schedule.Schedule, got {type(schedule).__name__}"
        )
    return schedule


def _scalar_or_array(a: np.ndarray) -> ArrayOrFloat:
    return float(a) if a.ndim == 0 else a


def _blocks(n: int, width: int) -> list[slice]:
    """Row slices covering range(n) so that a (rows, width) work array stays small."""
    step = max(1, _BLOCK_ELEMENTS // max(width, 1))
    return [slice(start, min(n, start + step)) for start in range(0, n, step)]


# --------------------------------------------------------------------------------- KL of the ideal
def _wishart_log_det_term(d: int, N: np.ndarray) -> np.ndarray:
    """S(N) = sum_{i=1..d} [psi((N - i)/2) + ln(2/N)] for N > d, accurately for large N.

    Written as sum_i [psi(x_i) - ln x_i] + sum_i log1p(-i/N) with x_i = (N - i)/2, so that the
    large, nearly cancelling ln N pieces never appear.
    """
    out = np.empty(N.shape)
    i = np.arange(1, d + 1, dtype=np.float64)
    for sl in _blocks(N.shape[0], d):
        Nb = N[sl, None]
        part = _digamma_minus_log(0.5 * (Nb - i[None, :])).sum(axis=1)
        part += np.log1p(-i[None, :] / Nb).sum(axis=1)
        out[sl] = part
    return out


def expected_kl_ideal(d: Any, N: Any, direction: Direction = "forward") -> Any:
    r"""Exact expected KL of the ideal sampler ``N(mu_hat, Sigma_hat)`` (theory.md section 6).

    For Gaussian data and ``Sigma_hat`` the 1/N (maximum-likelihood) covariance of N samples, so
    that ``N Sigma_hat ~ Wishart_d(Sigma, N - 1)`` independently of ``mu_hat ~ N(mu, Sigma / N)``:

    .. math::

        \mathbb{E}\,\mathrm{KL}(p \,\|\, p_\mathrm{gen}) = \tfrac12\Big[\frac{(N+1)d}{N-d-2} - d
            + \sum_{i=1}^{d} \psi\big(\tfrac{N-i}{2}\big) + d\ln\tfrac{2}{N}\Big],
            \qquad N > d + 2,

        \mathbb{E}\,\mathrm{KL}(p_\mathrm{gen} \,\|\, p) = \tfrac12\Big[-\sum_{i=1}^{d}
            \psi\big(\tfrac{N-i}{2}\big) - d\ln\tfrac{2}{N}\Big], \qquad N > d,

    with psi the digamma function. Both are independent of mu and Sigma.

    Parameters
    ----------
    d : int or array_like of int
        Dimension, >= 1.
    N : float or array_like
        Number of training samples, >= 2 and finite. ``d`` and ``N`` broadcast against each other.
        Non-integral N is accepted: the formulas are the Wishart expectations for real degrees of
        freedom and give smooth curves.
    direction : {"forward", "reverse", "both"}, default "forward"
        ``"forward"`` is KL(p || p_gen), ``"reverse"`` is KL(p_gen || p), ``"both"`` returns the
        tuple ``(forward, reverse)``.

    Returns
    -------
    float or ndarray (or a tuple of two for ``direction="both"``)
        The expectation, of the broadcast shape of ``d`` and ``N`` (a float when both are
        scalars). Outside the domain the expectation diverges and ``np.inf`` is returned: for the
        forward KL when ``N <= d + 2`` (E[Sigma_hat^-1] is infinite), for the reverse KL when
        ``N <= d`` (Sigma_hat is singular).

    Notes
    -----
    The digamma sum is evaluated as ``sum_i [psi(x_i) - ln x_i] + sum_i log1p(-i/N)``, which keeps
    full relative accuracy even at N = 10^6 d, where the result is ~1e-6 and the individual
    terms ~10. The cost is O(d) per value of N.
    """
    which = _as_direction(direction)
    d_arr = _as_dimension(d)
    N_arr = _as_sample_size(N)
    d_b, N_b = np.broadcast_arrays(d_arr, N_arr)
    shape = d_b.shape
    d_f = d_b.ravel()
    N_f = N_b.ravel()
    fwd = np.full(d_f.shape, np.inf)
    rev = np.full(d_f.shape, np.inf)
    for dv in np.unique(d_f):
        sel = np.flatnonzero((d_f == dv) & (N_f > dv))
        if sel.size == 0:
            continue
        Ns = N_f[sel]
        S = _wishart_log_det_term(int(dv), Ns)
        rev[sel] = -0.5 * S
        ok = Ns > dv + 2.0
        # (N+1)d/(N-d-2) - d = d(d+3)/(N-d-2), written without the cancellation.
        fwd[sel[ok]] = 0.5 * (dv * (dv + 3.0) / (Ns[ok] - dv - 2.0) + S[ok])
    fwd_r = _scalar_or_array(fwd.reshape(shape))
    rev_r = _scalar_or_array(rev.reshape(shape))
    if which == "forward":
        return fwd_r
    if which == "reverse":
        return rev_r
    return fwd_r, rev_r


def kl_large_n(d: Any, N: Any, known_mean: bool = False) -> ArrayOrFloat:
    """Large-N law of the expected KL of the ideal sampler (theory.md section 6).

    ``E KL = (d^2 + 3d) / (4N) + O(d^3 / N^2)`` in either direction; with a known mean (no mean
    estimated, so only the covariance error counts) the numerator is ``d^2 + d``. Per dimension
    this is ``KL / d ~= d / (4N)``.

    Parameters
    ----------
    d : int or array_like of int
        Dimension, >= 1.
    N : float or array_like
        Number of samples, >= 2. Broadcasts with ``d``.
    known_mean : bool, default False

    Returns
    -------
    float or ndarray

    Notes
    -----
    Valid for N >> d (the relative correction is O(d/N)); it is the q -> 0 slope of
    :func:`kl_marchenko_pastur` and the large-N expansion of :func:`expected_kl_ideal`.
    """
    d_arr = _as_dimension(d)
    N_arr = _as_sample_size(N)
    extra = 1.0 if known_mean else 3.0
    return _scalar_or_array(np.asarray(d_arr * (d_arr + extra) / (4.0 * N_arr)))


# Series coefficients for small q: with s_k = q^k / (k (k + 1)),
#   KL_rev / d = (1/2) sum_k s_k,    KL_fwd / d = (1/2) sum_k q^k (1 - 1/(k (k + 1))).
_MP_SERIES_MAX_Q = 0.1
_MP_TERMS = 32
_MP_K = np.arange(1, _MP_TERMS + 1, dtype=np.float64)
_MP_REV_COEFFS = 0.5 / (_MP_K * (_MP_K + 1.0))
_MP_FWD_COEFFS = 0.5 - _MP_REV_COEFFS


def _poly_q(q: np.ndarray, coeffs: np.ndarray) -> np.ndarray:
    """sum_{k=1..K} coeffs[k-1] q^k by Horner."""
    acc = np.zeros_like(q)
    for c in coeffs[::-1]:
        acc = (acc + c) * q
    return acc


def kl_marchenko_pastur(q: Any, direction: Direction = "forward") -> Any:
    """Per-dimension KL of the ideal sampler in the proportional limit ``d, N -> inf``, ``d/N = q``.

    From the Marchenko-Pastur law (theory.md section 6), for ``0 < q < 1``:

    - forward: ``KL(p || p_gen) / d -> (1/2) [q/(1-q) - 1 - ((1-q)/q) ln(1-q)]``,
    - reverse: ``KL(p_gen || p) / d -> (1/2) [1 + ((1-q)/q) ln(1-q)]``.

    Both behave as ``q / 4`` for small q (the large-N law) and diverge as ``q -> 1``.

    Parameters
    ----------
    q : float or array_like
        The ratio d / N, finite or ``+inf``, >= 0. ``q = 0`` gives the limit 0; ``q >= 1`` gives
        ``np.inf`` (the sample covariance is singular, or its inverse has unbounded trace).
    direction : {"forward", "reverse", "both"}, default "forward"
        ``"both"`` returns the tuple ``(forward, reverse)``.

    Returns
    -------
    float or ndarray (or a tuple of two)

    Notes
    -----
    For ``q < 0.1`` the power series ``rev = (1/2) sum_k q^k / (k (k+1))`` and
    ``fwd = (1/2) sum_k q^k (1 - 1/(k (k+1)))`` (32 terms, truncation < 1e-32) replace the closed
    forms, whose terms cancel as q -> 0; above that, ``log1p`` is used.
    """
    which = _as_direction(direction)
    qa = _numeric_array(q, "q")
    if np.isnan(qa).any():
        raise ValueError(f"q must not be NaN; got {_where(qa, np.isnan(qa), 'q')}")
    bad = qa < 0.0
    if bad.any():
        raise ValueError(f"q = d/N must be >= 0; got {_where(qa, bad, 'q')}")
    flat = qa.ravel()
    fwd = np.full(flat.shape, np.inf)
    rev = np.full(flat.shape, np.inf)
    small = flat < _MP_SERIES_MAX_Q
    if small.any():
        qs = flat[small]
        fwd[small] = _poly_q(qs, _MP_FWD_COEFFS)
        rev[small] = _poly_q(qs, _MP_REV_COEFFS)
    mid = (flat >= _MP_SERIES_MAX_Q) & (flat < 1.0)
    if mid.any():
        qm = flat[mid]
        g = (1.0 - qm) / qm * np.log1p(-qm)
        fwd[mid] = 0.5 * (qm / (1.0 - qm) - 1.0 - g)
        rev[mid] = 0.5 * (1.0 + g)
    fwd_r = _scalar_or_array(fwd.reshape(qa.shape))
    rev_r = _scalar_or_array(rev.reshape(qa.shape))
    if which == "forward":
        return fwd_r
    if which == "reverse":
        return rev_r
    return fwd_r, rev_r


# ---------------------------------------------------------------------------------- kappa(z)
_KAPPA_RTOL = 1e-14
_KAPPA_MAXIT = 300


def _solve_kappa(z: np.ndarray, lam: np.ndarray, N: float) -> np.ndarray:
    """kappa(z) for a 1-D array z >= 0 (see kappa_fixed_point), block by block."""
    out = np.empty_like(z)
    # Underflow to 0 of negligible terms (lam/(lam + kappa)^2 for kappa ~ 1e300) is harmless.
    with np.errstate(under="ignore"):
        for sl in _blocks(z.shape[0], lam.shape[0]):
            out[sl] = _solve_kappa_block(z[sl], lam, N)
    return out


def _solve_kappa_block(z: np.ndarray, lam: np.ndarray, N: float) -> np.ndarray:
    # Solve h(k) = 1 - z/k - (1/N) sum lam/(lam + k) = 0, i.e. the fixed point divided by k.
    # h is strictly increasing (h' = z/k^2 + (1/N) sum lam/(lam+k)^2 > 0) and concave on k > 0, so
    # the root is unique, and Newton started left of it climbs monotonically; bisection (geometric
    # while the bracket spans a factor > 4) guards the steps, as in Numerical Recipes' rtsafe.
    d = lam.shape[0]
    kappa = np.zeros_like(z)
    # Lower bound: k >= z; and when d > N, k >= k(0) >= (d - N) / sum(1/lam), because
    # d - N = sum k/(lam + k) <= k sum 1/lam at z = 0 and k(z) increases with z.
    lower0 = (d - N) / np.sum(1.0 / lam) if d > N else 0.0
    lo = np.maximum(z, lower0)
    solve = lo > 0.0  # z = 0 with d <= N: kappa = 0
    if not solve.any():
        return kappa
    idx_all = np.flatnonzero(solve)
    zz = z[idx_all]
    lo = lo[idx_all]
    # Upper bound: k - z = (k/N) sum lam/(lam+k) <= tr(Sigma)/N.
    hi = zz + lam.sum() / N
    k = lo.copy()
    step_old = hi - lo
    active = np.ones(k.shape, dtype=bool)
    for _ in range(_KAPPA_MAXIT):
        ia = np.flatnonzero(active)
        if ia.size == 0:
            break
        ka = k[ia]
        za = zz[ia]
        frac = lam[None, :] / (lam[None, :] + ka[:, None])
        z_over_k = za / ka
        h = 1.0 - z_over_k - frac.sum(axis=1) / N
        # (z/k)/k rather than z/k^2: k may be as small as 1e-300 or as large as 1e300.
        hp = z_over_k / ka + (frac / (lam[None, :] + ka[:, None])).sum(axis=1) / N
        neg = h < 0.0
        lo_a = np.where(neg, ka, lo[ia])
        hi_a = np.where(neg, hi[ia], ka)
        lo[ia] = lo_a
        hi[ia] = hi_a
        newton = ka - h / hp
        use_newton = (
            (newton > lo_a) & (newton < hi_a) & (np.abs(newton - ka) <= 0.5 * step_old[ia])
        )
        geometric = (lo_a > 0.0) & (hi_a > 4.0 * lo_a)
        bisect = np.where(geometric, np.sqrt(lo_a) * np.sqrt(hi_a), 0.5 * (lo_a + hi_a))
        k_new = np.where(use_newton, newton, bisect)
        k_new = np.where(h == 0.0, ka, k_new)
        step = np.abs(k_new - ka)
        k[ia] = k_new
        step_old[ia] = np.where(use_newton, step, hi_a - lo_a)
        done = (h == 0.0) | (use_newton & (step <= _KAPPA_RTOL * k_new)) | (
            hi_a - lo_a <= 4.0 * np.finfo(np.float64).eps * hi_a
        )
        active[ia[done]] = False
    kappa[idx_all] = k
    return kappa


def kappa_fixed_point(z: Any, eigvals: Any, N: float) -> ArrayOrFloat:
    r"""Self-consistent ``kappa(z)`` of the resolvent of a sample covariance.

    Solves, for each ``z >= 0``,

    .. math::

        \kappa - z = \frac{\kappa}{N} \sum_\nu \frac{\lambda_\nu}{\lambda_\nu + \kappa},
        \qquad \kappa > 0,

    the equation that makes ``(Sigma_hat + z I)^{-1} ~ (kappa/z) (Sigma + kappa I)^{-1}`` for the
    1/N sample covariance of N samples from a covariance with spectrum ``eigvals`` (in the sense of
    normalised traces against bounded matrices, as d, N -> infinity).

    Parameters
    ----------
    z : float or array_like
        Regularisation(s), >= 0 and finite.
    eigvals : array_like, shape (d,)
        The spectrum of Sigma, positive and finite.
    N : float
        Number of samples, > 0 (non-integral values are allowed).

    Returns
    -------
    float or ndarray
        kappa(z), of the shape of ``z``.

    Notes
    -----
    Dividing by kappa gives ``h(kappa) = 1 - z/kappa - (1/N) sum lam/(lam + kappa) = 0``; ``h`` is
    strictly increasing and concave on ``kappa > 0`` (``h(0+) = -inf`` for z > 0, ``h(inf) = 1``),
    so for every ``z > 0`` the root is unique and lies in ``[z, z + tr(Sigma)/N]``. (The undivided
    ``g(kappa) = kappa h(kappa)`` is *not* monotone when d > N: ``g'(0) = 1 - d/N``.) It is found
    by Newton's method from the left end, safeguarded by bisection, to a relative step of 1e-14.

    At ``z = 0``: if ``d <= N`` the limit ``z -> 0+`` is ``kappa = 0`` (the ridgeless resolvent is
    then just Sigma_hat^{-1}, and ``kappa ~ z / (1 - d/N)`` for small z when d < N); if ``d > N``
    it is the unique positive root of ``(1/N) sum lam/(lam + kappa) = 1``, i.e. of
    ``sum kappa/(lam + kappa) = d - N`` -- the ``d - N`` null directions of Sigma_hat.

    ``dkappa/dz = N / (N - df2)`` with ``df2 = sum lam^2 / (lam + kappa)^2`` (differentiate the
    fixed point); ``N - df2 = N z / kappa + kappa sum lam / (lam + kappa)^2 > 0``.
    """
    lam = _as_eigvals(eigvals)
    Nv = _as_scalar_N(N, 0.0, strict=True)
    za = _numeric_array(z, "z")
    _check_finite(za, "z")
    bad = za < 0.0
    if bad.any():
        raise ValueError(f"z must be >= 0; got {_where(za, bad, 'z')}")
    flat = np.ascontiguousarray(za.ravel())
    return _scalar_or_array(_solve_kappa(flat, lam, Nv).reshape(za.shape))


# ------------------------------------------------------------------- deterministic equivalents
def _as_ridge(ridge: Any, T: int) -> np.ndarray:
    r = _numeric_array(ridge, "ridge")
    if r.ndim == 0:
        r = np.full(T, float(r))
    elif r.ndim != 1 or r.shape[0] != T:
        raise ValueError(f"ridge must be a scalar or have shape ({T},) (one per t); got {r.shape}")
    _check_finite(r, "ridge")
    bad = r < 0.0
    if bad.any():
        raise ValueError(f"ridge must be >= 0; got {_where(r, bad, 'ridge')}")
    return np.ascontiguousarray(r)


def bayes_floor(eigvals: Any, schedule: Schedule) -> np.ndarray:
    """Bayes-optimal denoising loss per step (theory.md section 5).

    ``L*_t = sum_nu abar_t lam_nu / (abar_t lam_nu + 1 - abar_t)``: the loss of the population
    optimum ``W_t = sqrt(1 - abar_t) (abar_t Sigma + (1 - abar_t) I)^{-1}`` on the true
    distribution, the floor of every linear denoiser's test loss.

    Parameters
    ----------
    eigvals : array_like, shape (d,)
        Spectrum of the data covariance Sigma, positive and finite.
    schedule : Schedule

    Returns
    -------
    ndarray, shape (T,)
    """
    lam = _as_eigvals(eigvals)
    sched = _as_schedule(schedule)
    ab = np.asarray(sched.alphas_bar)
    om = np.asarray(sched.one_minus_alphas_bar)
    out = np.empty(sched.T)
    for sl in _blocks(sched.T, lam.shape[0]):
        signal = ab[sl, None] * lam[None, :]
        out[sl] = (signal / (signal + om[sl, None])).sum(axis=1)
    return out


def deterministic_equivalent_losses(
    eigvals: Any,
    N: float,
    schedule: Schedule,
    ridge: Any = 0.0,
    *,
    known_mean: bool = True,
) -> dict[str, np.ndarray]:
    r"""Proportional-limit train and test losses of the optimal ridge linear denoiser, per step.

    The denoiser (theory.md section 3) fitted to N samples with ridge ``gamma_t`` is

    .. math::

        W_t = \sqrt{1-\bar\alpha_t}\,(\bar\alpha_t\hat\Sigma + (1-\bar\alpha_t+\gamma_t) I)^{-1}
            = \frac{\sqrt{1-\bar\alpha_t}}{\bar\alpha_t} R(z_t),\qquad
        R(z) = (\hat\Sigma + z I)^{-1},\quad z_t = \frac{1-\bar\alpha_t+\gamma_t}{\bar\alpha_t}.

    With ``c_t = (1 - abar_t)/abar_t`` the loss ``L_t(W; S) = tr[(I - sqrt(1-abar_t) W)(...)^T] +
    abar_t tr[W S W^T]`` (mean terms dropped) is ``d - 2c tr R + c^2 tr R^2 + c tr(R S R)``. In the
    proportional limit (d, N -> inf at fixed d/N and spectrum shape) each trace has a
    deterministic equivalent in terms of ``kappa = kappa(z_t)`` (:func:`kappa_fixed_point`).
    Writing ``rho = c/z``, ``e1 = sum lam/(lam+kappa)^2``, ``m2 = sum 1/(lam+kappa)^2`` and
    ``D = N - df2 = N z/kappa + kappa e1``:

    - ``tr R ~ (kappa/z) sum 1/(lam + kappa)``;
    - ``tr R^2 = -d tr R/dz ~ (kappa/z)^2 [m2 + e1^2 / D]``;
    - ``tr(R Sigma R) ~ (kappa/z)^2 e1 N / D`` (a derivative with respect to a perturbation
      ``Sigma_hat + z I + eps Sigma``);
    - ``tr(R Sigma_hat R) = tr R - z tr R^2`` exactly.

    Substituting gives sums of positive terms (no cancellation even when abar_t -> 0):

    .. math::

        L^\mathrm{test}_t &\approx \sum_\nu\Big(\frac{\lambda_\nu + (1-\rho)\kappa}
            {\lambda_\nu+\kappa}\Big)^2 + \frac{\rho^2\kappa^2 e_1^2}{D}
            + \frac{\rho}{z}\frac{\kappa^2 e_1 N}{D},\\
        L^\mathrm{train}_t &\approx \sum_\nu \frac{\lambda_\nu^2 + (2-\rho)\lambda_\nu\kappa
            + (1-\rho)^2\kappa^2}{(\lambda_\nu+\kappa)^2} - \frac{\rho(1-\rho)\kappa^2 e_1^2}{D}.

    With ``gamma = 0`` (rho = 1) the train loss is ``sum lam/(lam + kappa)``, below the Bayes floor
    ``sum lam/(lam + c)`` since ``kappa > z = c``: the training set is fitted better than the
    population allows.

    Parameters
    ----------
    eigvals : array_like, shape (d,)
        Spectrum of the data covariance Sigma, positive and finite (the eigenbasis is irrelevant).
    N : float
        Number of training samples, >= 2 (non-integral values give the smooth curve).
    schedule : Schedule
    ridge : float or array_like, shape (T,), default 0
        ``gamma_t >= 0``: one value for every step, or one per step.
    known_mean : bool, default True
        True: the data mean is known (zero), ``Sigma_hat = X^T X / N`` and there is no bias, as in
        the derivation above. False: the denoiser centres with the sample mean ``mu_hat`` and uses
        ``b_t = -sqrt(abar_t) W_t mu_hat`` (theory.md section 3). Then the centred 1/N covariance
        is distributed as a known-mean one of ``N - 1`` samples with covariance
        ``Sigma (N - 1)/N``, and the mean error adds ``abar_t tr(W Sigma W^T) / N`` to the test
        loss; both are accounted for exactly (the train loss gets no mean term). The difference
        between the two settings is O(d/N) relative.

    Returns
    -------
    dict of str to ndarray, each of shape (T,)
        ``"train"``: expected loss on the training set; ``"test"``: expected loss on fresh data
        (the population loss); ``"bayes"``: :func:`bayes_floor`; ``"kappa"``: kappa(z_t).
        Losses are summed over the d dimensions.

    Notes
    -----
    Validity: these are the d, N -> infinity limits; at finite d they carry relative errors of
    order 1/d plus the O(1/sqrt(N)) sample-to-sample fluctuation of the top eigenvalues (which
    matters where the loss itself is O(1), i.e. at large t). Against Monte Carlo with d = 200 they
    agree to about 1-2% for N = 100 and N = 400, with or without ridge, including the huge
    ``gamma = 0``, N < d test losses at small t. The data are assumed Gaussian (the formulas hold
    more generally for data with the same resolvent law, e.g. sub-Gaussian with independent
    whitened coordinates).
    """
    lam = _as_eigvals(eigvals)
    Nv = _as_scalar_N(N, 2.0, strict=False)
    sched = _as_schedule(schedule)
    T = sched.T
    gamma = _as_ridge(ridge, T)
    ab = np.asarray(sched.alphas_bar)
    om = np.asarray(sched.one_minus_alphas_bar)

    if known_mean:
        lam_eff, n_eff, test_factor = lam, Nv, 1.0
    else:
        lam_eff = lam * ((Nv - 1.0) / Nv)
        n_eff = Nv - 1.0
        test_factor = (Nv + 1.0) / (Nv - 1.0)

    noise_plus_ridge = om + gamma
    z = noise_plus_ridge / ab
    rho = om / noise_plus_ridge  # c / z
    one_minus_rho = gamma / noise_plus_ridge
    kappa = _solve_kappa(z, lam_eff, n_eff)

    train = np.empty(T)
    test = np.empty(T)
    for sl in _blocks(T, lam.shape[0]):
        k = kappa[sl, None]
        r = rho[sl, None]
        omr = one_minus_rho[sl, None]
        L = lam_eff[None, :]
        inv = 1.0 / (L + k)
        e1 = (L * inv * inv).sum(axis=1)
        kk = kappa[sl]
        D = n_eff * z[sl] / kk + kk * e1  # N - df2 > 0
        r1 = rho[sl]
        omr1 = one_minus_rho[sl]
        fit = (((L + omr * k) * inv) ** 2).sum(axis=1)
        test[sl] = (
            fit
            + r1 * r1 * kk * kk * e1 * e1 / D
            + test_factor * (r1 / z[sl]) * kk * kk * e1 * n_eff / D
        )
        train_pos = ((L * L + (2.0 - r) * L * k + (omr * k) ** 2) * inv * inv).sum(axis=1)
        train[sl] = train_pos - r1 * omr1 * kk * kk * e1 * e1 / D
    return {"train": train, "test": test, "bayes": bayes_floor(lam, sched), "kappa": kappa}


def overlay_columns(d: int, N: int) -> dict[str, float]:
    """The theory values a sweep row carries beside its simulation (theory.md §6).

    Keys: ``theory_large_n`` ((d²+3d)/(4N)), ``theory_ideal_forward`` / ``theory_ideal_reverse``
    (the exact Wishart expectation for the ideal sampler) and ``theory_mp_forward`` /
    ``theory_mp_reverse`` (d × the Marchenko–Pastur limit at q = d/N; inf for N <= d).
    """
    fwd, rev = expected_kl_ideal(d, N, "both")
    mf, mr = kl_marchenko_pastur(d / N, "both")
    return {"theory_large_n": float(kl_large_n(d, N)),
            "theory_ideal_forward": float(fwd), "theory_ideal_reverse": float(rev),
            "theory_mp_forward": float(d * mf), "theory_mp_reverse": float(d * mr)}
