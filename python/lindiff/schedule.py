"""The noise schedule of the forward diffusion process.

A :class:`Schedule` holds the variances ``beta_t`` of the forward steps (theory.md section 2),

    x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps,
    alpha_bar_t = prod_{s<=t} (1 - beta_s),

together with every quantity derived from them. Time is 1-based in the mathematics (t = 1..T) and
0-based in the arrays: ``betas[0]`` is beta_1 and ``alphas_bar[T - 1]`` is alpha_bar_T.

A schedule is immutable: its arrays are read-only, so it can be shared between models, samplers and
sweeps without defensive copies.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["Schedule"]

_DIFFUSERS_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")


def _as_T(T: Any) -> int:
    """Number of steps: an integer >= 1 (integral floats such as ``1000.0`` are accepted)."""
    if isinstance(T, (bool, np.bool_)):
        raise TypeError(f"T must be an integer >= 1, got {T!r}")
    integral_float = (
        isinstance(T, (float, np.floating)) and math.isfinite(T) and float(T).is_integer()
    )
    if isinstance(T, (int, np.integer)) or integral_float:
        value = int(T)
    else:
        raise TypeError(f"T must be an integer >= 1, got {T!r}")
    if value < 1:
        raise ValueError(f"T must be >= 1, got {value}")
    return value


def _as_real(x: Any, name: str) -> float:
    """A finite real scalar."""
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {x!r}")
    value = float(x)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def _as_float_vector(x: Any, name: str) -> np.ndarray:
    """A 1-D, non-empty float64 copy of a real numeric array (NaN/inf are checked by the caller)."""
    arr = np.asarray(x)
    if arr.dtype == np.bool_ or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise TypeError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got an array of shape {arr.shape}")
    if arr.shape[0] < 1:
        raise ValueError(f"{name} is empty; a schedule needs T >= 1 steps")
    return np.array(arr, dtype=np.float64, copy=True)


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _entry(arr: np.ndarray, name: str, i: int) -> str:
    """'name[i] (t = i+1) is v' for error messages (time is 1-based in the maths)."""
    return f"{name}[{i}] (t = {i + 1}) is {float(arr[i])!r}"


def _check_finite(arr: np.ndarray, name: str) -> None:
    bad = ~np.isfinite(arr)
    if bad.any():
        raise ValueError(f"{_entry(arr, name, _first_bad(bad))}; all values must be finite")


def _check_open_unit(arr: np.ndarray, name: str, symbol: str) -> None:
    bad = (arr <= 0.0) | (arr >= 1.0)
    if bad.any():
        raise ValueError(
            f"{_entry(arr, name, _first_bad(bad))}; every {symbol} must lie strictly inside (0, 1)"
        )


def _check_monotone(arr: np.ndarray, name: str, increasing: bool, extra: str = "") -> None:
    if arr.shape[0] < 2:
        return
    steps = np.diff(arr)
    bad = (steps <= 0.0) if increasing else (steps >= 0.0)
    if bad.any():
        i = _first_bad(bad) + 1
        word, op = ("increasing", "<=") if increasing else ("decreasing", ">=")
        raise ValueError(
            f"{name} must be strictly {word}{extra}, but {name}[{i}] = {float(arr[i])!r} {op} "
            f"{name}[{i - 1}] = {float(arr[i - 1])!r}"
        )


def _check_betas(betas: np.ndarray, name: str = "betas") -> None:
    """Every beta_t finite and strictly inside (0, 1); the message names the first offender."""
    _check_finite(betas, name)
    _check_open_unit(betas, name, "beta_t")


def _rebuild(betas: np.ndarray, origin: str | None) -> Schedule:
    """Unpickling helper: a schedule from its betas, keeping the constructor text for repr."""
    return Schedule._make(np.asarray(betas, dtype=np.float64), origin)


def _readonly(a: np.ndarray) -> np.ndarray:
    view = a.view()
    view.flags.writeable = False
    return view


class Schedule:
    """An immutable forward-noise schedule ``beta_1, ..., beta_T``.

    Parameters
    ----------
    betas : array_like, shape (T,)
        The per-step noise variances, ``betas[0]`` being beta_1. They must be real, finite and
        strictly inside (0, 1); ``T >= 1``. The array is copied, so later changes to the input do
        not affect the schedule.

    See Also
    --------
    Schedule.paper : the schedule of Merger & Goldt (the library's reference schedule).
    Schedule.linear, Schedule.cosine : the common DDPM and improved-DDPM schedules.
    Schedule.from_alphas_bar, Schedule.from_edm_sigmas, Schedule.from_diffusers_config

    Notes
    -----
    With ``alpha_t = 1 - beta_t`` and ``alpha_bar_t = alpha_1 ... alpha_t`` (``alpha_bar_0 = 1``),
    the forward marginal is ``x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps``. All derived
    arrays have length T and are read-only. ``1 - alpha_bar_t`` is available to full relative
    precision as :attr:`one_minus_alphas_bar` (computing it as ``1 - alphas_bar`` loses about
    ``log10(1/beta_1)`` digits at small t).

    Two schedules compare equal when their betas are identical bit for bit; schedules that went
    through a floating-point round trip (e.g. ``Schedule.from_alphas_bar(s.alphas_bar)``) agree
    with the original only to rounding (about 1e-12 relative) and should be compared with
    ``np.allclose(a.betas, b.betas)``.

    Examples
    --------
    >>> s = Schedule.paper()
    >>> len(s), round(float(s.alphas_bar[-1]), 5)
    (1000, 0.00627)
    """

    __slots__ = ("_alphas_bar", "_betas", "_one_minus_alphas_bar", "_origin")

    _betas: np.ndarray
    _alphas_bar: np.ndarray
    _one_minus_alphas_bar: np.ndarray
    _origin: str | None

    def __init__(self, betas: Any) -> None:
        self._init(betas, None)

    def _init(self, betas: Any, origin: str | None) -> None:
        b = _as_float_vector(betas, "betas")
        _check_betas(b)
        log_alphas_bar = np.cumsum(np.log1p(-b))
        alphas_bar = np.cumprod(1.0 - b)
        # 1 - prod(1 - beta_s) without cancellation: -expm1(sum log1p(-beta_s)).
        omab = -np.expm1(log_alphas_bar)
        for arr in (b, alphas_bar, omab):
            arr.flags.writeable = False
        object.__setattr__(self, "_betas", b)
        object.__setattr__(self, "_alphas_bar", alphas_bar)
        object.__setattr__(self, "_one_minus_alphas_bar", omab)
        object.__setattr__(self, "_origin", origin)

    @classmethod
    def _make(cls, betas: np.ndarray, origin: str | None) -> Schedule:
        self = cls.__new__(cls)
        self._init(betas, origin)
        return self

    # ------------------------------------------------------------------ immutability
    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"Schedule is immutable; cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Schedule is immutable; cannot delete {name!r}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (np.array(self._betas), self._origin))

    # ------------------------------------------------------------------ constructors
    @classmethod
    def paper(cls, T: int = 1000, beta_min: float = 1e-4, beta_max: float = 1e-2) -> Schedule:
        """The schedule of Merger & Goldt (theory.md section 2).

        ``beta_t = beta_min + (beta_max - beta_min) * t / T`` for ``t = 1..T``.

        Parameters
        ----------
        T : int, default 1000
            Number of diffusion steps.
        beta_min, beta_max : float, default 1e-4 and 1e-2
            The end points of the linear ramp. Note ``t / T`` (not ``(t - 1) / (T - 1)``): beta_min
            itself is not attained, ``beta_T = beta_max``. Note also beta_max = 0.01, half the 0.02
            of common DDPM code.

        Returns
        -------
        Schedule
            For the defaults, ``alpha_bar_T ~= 6.27e-3`` and ``sum(beta) ~= 5.055``.
        """
        T = _as_T(T)
        lo = _as_real(beta_min, "beta_min")
        hi = _as_real(beta_max, "beta_max")
        t = np.arange(1, T + 1, dtype=np.float64)
        betas = lo + (hi - lo) * (t / T)
        return cls._make(betas, f"Schedule.paper(T={T}, beta_min={lo!r}, beta_max={hi!r})")

    @classmethod
    def linear(cls, T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> Schedule:
        """The DDPM linear schedule ``np.linspace(beta_start, beta_end, T)``.

        This is the convention of Ho et al. (2020) and of ``beta_schedule="linear"`` in diffusers:
        ``beta_1 = beta_start`` and ``beta_T = beta_end``.

        Parameters
        ----------
        T : int, default 1000
        beta_start, beta_end : float, default 1e-4 and 0.02

        Returns
        -------
        Schedule
        """
        T = _as_T(T)
        lo = _as_real(beta_start, "beta_start")
        hi = _as_real(beta_end, "beta_end")
        betas = np.linspace(lo, hi, T, dtype=np.float64)
        return cls._make(betas, f"Schedule.linear(T={T}, beta_start={lo!r}, beta_end={hi!r})")

    @classmethod
    def cosine(cls, T: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> Schedule:
        """The cosine schedule of Nichol & Dhariwal (diffusers' ``"squaredcos_cap_v2"``).

        With ``f(u) = cos^2(((u + s) / (1 + s)) * pi / 2)``, the continuous-time signal level is
        ``alpha_bar(u) = f(u) / f(0)`` for ``u = t / T``, and

            beta_t = min(1 - alpha_bar(t / T) / alpha_bar((t - 1) / T), max_beta),   t = 1..T.

        The ratio is evaluated as ``sin(a + b) sin(a - b) / cos^2(b)`` (``a``, ``b`` the two cosine
        arguments), which equals ``1 - cos^2(a) / cos^2(b)`` without cancellation at small t.

        Parameters
        ----------
        T : int, default 1000
        s : float, default 0.008
            Offset that keeps beta_1 away from 0. Must be > 0.
        max_beta : float, default 0.999
            Cap on every beta_t (the uncapped last step would be 1). Must lie in (0, 1).

        Returns
        -------
        Schedule
        """
        T = _as_T(T)
        s = _as_real(s, "s")
        max_beta = _as_real(max_beta, "max_beta")
        if s <= 0.0:
            raise ValueError(f"s must be > 0, got {s}")
        if not 0.0 < max_beta < 1.0:
            raise ValueError(f"max_beta must lie strictly inside (0, 1), got {max_beta}")
        t = np.arange(1, T + 1, dtype=np.float64)
        half_pi = 0.5 * np.pi
        a = (t / T + s) / (1.0 + s) * half_pi  # argument at t
        b = ((t - 1.0) / T + s) / (1.0 + s) * half_pi  # argument at t - 1
        betas = np.sin(a + b) * np.sin(a - b) / np.cos(b) ** 2
        betas = np.minimum(betas, max_beta)
        return cls._make(betas, f"Schedule.cosine(T={T}, s={s!r}, max_beta={max_beta!r})")

    @classmethod
    def from_alphas_bar(cls, alphas_bar: Any) -> Schedule:
        """The schedule with the given cumulative products ``alpha_bar_1..alpha_bar_T``.

        ``beta_t = 1 - alpha_bar_t / alpha_bar_{t-1} = (alpha_bar_{t-1} - alpha_bar_t) /
        alpha_bar_{t-1}``, with ``alpha_bar_0 = 1``.

        Parameters
        ----------
        alphas_bar : array_like, shape (T,)
            Strictly decreasing values strictly inside (0, 1). (``alpha_bar_1 = 1`` would mean
            ``beta_1 = 0``, and ``alpha_bar_T = 0`` would mean ``beta_T = 1``; neither is a valid
            schedule here.)

        Returns
        -------
        Schedule
        """
        ab = _as_float_vector(alphas_bar, "alphas_bar")
        _check_finite(ab, "alphas_bar")
        _check_open_unit(ab, "alphas_bar", "alpha_bar_t")
        _check_monotone(ab, "alphas_bar", increasing=False)
        prev = np.concatenate(([1.0], ab[:-1]))
        betas = (prev - ab) / prev
        return cls._make(betas, None)

    @classmethod
    def from_edm_sigmas(cls, sigmas: Any) -> Schedule:
        """The schedule whose EDM noise levels are ``sigmas`` (Karras et al. 2022).

        ``sigma_t^2 = (1 - alpha_bar_t) / alpha_bar_t``, i.e. ``alpha_bar_t = 1 / (1 + sigma_t^2)``.
        The betas are formed as ``(sigma_t^2 - sigma_{t-1}^2) / (1 + sigma_t^2)`` (``sigma_0 = 0``),
        which avoids the cancellation in ``1 - alpha_bar_t / alpha_bar_{t-1}``.

        Parameters
        ----------
        sigmas : array_like, shape (T,)
            Strictly increasing, positive, finite noise levels for t = 1..T (EDM samplers usually
            list them in the opposite, decreasing order: reverse them first).

        Returns
        -------
        Schedule
        """
        sig = _as_float_vector(sigmas, "sigmas")
        _check_finite(sig, "sigmas")
        bad = sig <= 0.0
        if bad.any():
            raise ValueError(f"{_entry(sig, 'sigmas', _first_bad(bad))}; every sigma_t must be > 0")
        _check_monotone(sig, "sigmas", increasing=True, extra=" in t")
        s2 = sig * sig
        prev = np.concatenate(([0.0], s2[:-1]))
        betas = (s2 - prev) / (1.0 + s2)
        return cls._make(betas, None)

    @classmethod
    def from_diffusers_config(cls, config: Mapping[str, Any]) -> Schedule:
        """The schedule described by a diffusers scheduler configuration.

        Parameters
        ----------
        config : Mapping
            A diffusers ``scheduler_config.json`` as a mapping (for instance ``json.load`` of the
            file, or ``scheduler.config``). The keys read are, with diffusers' defaults:

            - ``num_train_timesteps`` (1000): T;
            - ``beta_start`` (0.0001), ``beta_end`` (0.02);
            - ``beta_schedule`` ("linear"): one of ``"linear"``
              (``linspace(beta_start, beta_end, T)``), ``"scaled_linear"``
              (``linspace(sqrt(beta_start), sqrt(beta_end), T) ** 2``) or ``"squaredcos_cap_v2"``
              (:meth:`cosine` with ``s = 0.008``, ``max_beta = 0.999``);
            - ``trained_betas`` (None): an explicit beta array, which then takes precedence over
              the keys above.

            Every other key (``prediction_type``, ``variance_type``, ``clip_sample``,
            ``timestep_spacing``, ``steps_offset``, ...) concerns sampling or parameterisation, not
            the forward schedule, and is ignored. The one exception is
            ``rescale_betas_zero_snr=True``: it sets ``alpha_bar_T = 0`` (``beta_T = 1``), which no
            valid :class:`Schedule` can hold, so it raises ``ValueError`` rather than being dropped
            silently.

        Returns
        -------
        Schedule

        Notes
        -----
        diffusers builds its betas in float32; lindiff computes the same formulas in float64, so
        the values agree to float32 rounding (about 1e-7 relative), not bit for bit.
        """
        if not isinstance(config, Mapping):
            raise TypeError(f"config must be a mapping, got {type(config).__name__}")
        if config.get("rescale_betas_zero_snr", False):
            raise ValueError(
                "rescale_betas_zero_snr=True gives alpha_bar_T = 0 (beta_T = 1), which is outside "
                "the schedules lindiff supports (every beta_t strictly inside (0, 1))"
            )
        trained = config.get("trained_betas", None)
        if trained is not None:
            betas = _as_float_vector(trained, "trained_betas")
            _check_betas(betas, "trained_betas")
            return cls._make(betas, None)
        T = _as_T(config.get("num_train_timesteps", 1000))
        start = _as_real(config.get("beta_start", 0.0001), "beta_start")
        end = _as_real(config.get("beta_end", 0.02), "beta_end")
        kind = config.get("beta_schedule", "linear")
        if kind == "linear":
            return cls.linear(T, start, end)
        if kind == "scaled_linear":
            if start < 0.0 or end < 0.0:
                raise ValueError(
                    f"scaled_linear needs beta_start, beta_end >= 0, got {start} and {end}"
                )
            betas = np.linspace(math.sqrt(start), math.sqrt(end), T, dtype=np.float64) ** 2
            return cls._make(
                betas, f"Schedule.from_diffusers_config(scaled_linear, T={T}, "
                f"beta_start={start!r}, beta_end={end!r})"
            )
        if kind == "squaredcos_cap_v2":
            return cls.cosine(T)
        raise ValueError(
            f"unknown beta_schedule {kind!r}; lindiff supports "
            + ", ".join(repr(k) for k in _DIFFUSERS_SCHEDULES)
        )

    def respace(self, timesteps: Any) -> Schedule:
        """The schedule restricted to a subset of timesteps (a "respaced" schedule).

        Parameters
        ----------
        timesteps : array_like of int
            Strictly increasing timesteps t_1 < ... < t_K in 1..T (1-based, as in the maths).

        Returns
        -------
        Schedule
            K steps with alpha_bar'_k = alpha_bar_{t_k}, i.e.
            beta'_k = 1 - alpha_bar_{t_k} / alpha_bar_{t_{k-1}} (t_0 = 0, alpha_bar_0 = 1),
            computed as -expm1(sum of log1p(-beta_s) over t_{k-1} < s <= t_k) to full precision.
            A sampler run on it visits exactly the noise levels of the chosen timesteps (the usual
            timestep respacing of DDPM/DDIM samplers). ``respace(range(1, T + 1))`` returns the same
            betas.
        """
        raw = np.asarray(timesteps)
        if raw.ndim != 1 or raw.shape[0] < 1:
            raise ValueError(f"timesteps must be a non-empty 1-D sequence, got shape {raw.shape}")
        if raw.dtype == np.bool_ or not np.issubdtype(raw.dtype, np.integer):
            if raw.size and np.issubdtype(raw.dtype, np.floating) and np.all(np.isfinite(raw)) \
                    and np.all(raw == np.round(raw)):
                raw = raw.astype(np.int64)
            else:
                raise TypeError(f"timesteps must be integers in 1..T = {self.T}, got dtype {raw.dtype}")
        ts = raw.astype(np.int64)
        if ts.min() < 1 or ts.max() > self.T:
            raise ValueError(f"timesteps must lie in 1..T = {self.T}, got min {ts.min()} and max {ts.max()}")
        if ts.shape[0] > 1 and (np.diff(ts) <= 0).any():
            i = int(np.flatnonzero(np.diff(ts) <= 0)[0]) + 1
            raise ValueError(
                f"timesteps must be strictly increasing, but timesteps[{i}] = {ts[i]} <= "
                f"timesteps[{i - 1}] = {ts[i - 1]}"
            )
        log_ab = np.concatenate(([0.0], np.cumsum(np.log1p(-self._betas))))
        betas = -np.expm1(log_ab[ts] - log_ab[np.concatenate(([0], ts[:-1]))])
        if ts.shape[0] == self.T:
            betas = np.array(self._betas)  # the identity respacing keeps the betas bit for bit
        origin = None if self._origin is None else f"{self._origin}.respace(<{ts.shape[0]} timesteps>)"
        return Schedule._make(betas, origin)

    # ------------------------------------------------------------------ derived quantities
    @property
    def T(self) -> int:
        """Number of diffusion steps."""
        return int(self._betas.shape[0])

    @property
    def betas(self) -> np.ndarray:
        """beta_t for t = 1..T, shape (T,), read-only."""
        return _readonly(self._betas)

    @property
    def alphas(self) -> np.ndarray:
        """alpha_t = 1 - beta_t, shape (T,), read-only."""
        return _readonly(1.0 - self._betas)

    @property
    def alphas_bar(self) -> np.ndarray:
        """alpha_bar_t = prod_{s<=t} alpha_s for t = 1..T, shape (T,), read-only."""
        return _readonly(self._alphas_bar)

    @property
    def one_minus_alphas_bar(self) -> np.ndarray:
        """1 - alpha_bar_t for t = 1..T to full relative precision, shape (T,), read-only."""
        return _readonly(self._one_minus_alphas_bar)

    @property
    def alphas_bar_prev(self) -> np.ndarray:
        """alpha_bar_{t-1} for t = 1..T (so the first entry is alpha_bar_0 = 1), read-only."""
        return _readonly(np.concatenate(([1.0], self._alphas_bar[:-1])))

    @property
    def sigma_edm(self) -> np.ndarray:
        """EDM noise level sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t), (T,), read-only."""
        return _readonly(np.sqrt(self._one_minus_alphas_bar / self._alphas_bar))

    @property
    def beta_tilde(self) -> np.ndarray:
        """Posterior variance beta_t (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t), read-only.

        The first entry is 0 (``alpha_bar_0 = 1``).
        """
        omab_prev = np.concatenate(([0.0], self._one_minus_alphas_bar[:-1]))
        return _readonly(self._betas * omab_prev / self._one_minus_alphas_bar)

    # ------------------------------------------------------------------ protocol
    def __len__(self) -> int:
        return self.T

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Schedule):
            return NotImplemented
        return self._betas.shape == other._betas.shape and bool(
            np.array_equal(self._betas, other._betas)
        )

    def __hash__(self) -> int:
        return hash(self._betas.tobytes())

    def __repr__(self) -> str:
        if self._origin is not None:
            return self._origin
        b = self._betas
        return (
            f"Schedule(<T={b.shape[0]}: beta_1={b[0]:.6g}, beta_T={b[-1]:.6g}, "
            f"alpha_bar_T={self._alphas_bar[-1]:.6g}>)"
        )
