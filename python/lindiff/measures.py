"""Distances between Gaussians: KL divergence (both directions), Wasserstein-2, and sample-based fits.

KL convention (theory.md §5)::

    KL(N(m₁,S₁) ‖ N(m₂,S₂)) = ½[tr(S₂⁻¹S₁) − d + (m₂−m₁)ᵀS₂⁻¹(m₂−m₁) + ln det S₂ − ln det S₁]

``forward`` means KL(target ‖ generated), ``reverse`` means KL(generated ‖ target); the paper does not
say which it plots, so lindiff reports both. A degenerate law (a zero variance) has no density:
every KL involving it is ``inf`` (never NaN), as is any KL between laws of different support.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from .gaussian import Gaussian

__all__ = ["gaussian_fit_kl", "kl_divergence", "kl_pair", "wasserstein2"]

Direction = Literal["forward", "reverse", "both"]


def _check_pair(p: Gaussian, q: Gaussian) -> None:
    if not isinstance(p, Gaussian) or not isinstance(q, Gaussian):
        raise TypeError("kl_divergence takes two lindiff.Gaussian objects")
    if p.d != q.d:
        raise ValueError(f"dimensions differ: {p.d} and {q.d}")


def kl_divergence(p: Gaussian, q: Gaussian) -> float:
    """KL(p ‖ q) between two Gaussians, from their eigen forms (no matrix inverse).

    Cost O(d³) for a general pair (one d×d product V_qᵀV_p), O(d²) when either is axis-aligned.
    Returns ``inf`` when either law is degenerate.
    """
    _check_pair(p, q)
    if p.is_degenerate or q.is_degenerate:
        return float("inf")
    # M[i, j] = v_q,iᵀ v_p,j: p's covariance and the mean offset seen in q's eigenbasis.
    if q.is_axis_aligned:
        m = p.eigvecs
    elif p.is_axis_aligned:
        m = q.eigvecs.T
    else:
        m = q.eigvecs.T @ p.eigvecs
    proj_cov = (m * m) @ p.eigvals  # diag(V_qᵀ S_p V_q)
    delta = q.eigvecs.T @ (q.mean - p.mean)
    sq = q.eigvals
    val = 0.5 * (
        np.sum(proj_cov / sq) - p.d + np.sum(delta * delta / sq) + np.sum(np.log(sq)) - np.sum(np.log(p.eigvals))
    )
    return float(max(val, 0.0))


def kl_pair(target: Gaussian, generated: Gaussian, direction: Direction = "both") -> Any:
    """KL between a target and a generated law in the requested direction(s).

    Returns a float, or ``{"forward": KL(target‖generated), "reverse": KL(generated‖target)}``.
    """
    if direction == "forward":
        return kl_divergence(target, generated)
    if direction == "reverse":
        return kl_divergence(generated, target)
    if direction == "both":
        return {"forward": kl_divergence(target, generated), "reverse": kl_divergence(generated, target)}
    raise ValueError(f"direction must be 'forward', 'reverse' or 'both', got {direction!r}")


def _sqrtm_psd(g: Gaussian) -> np.ndarray:
    v = g.eigvecs
    return (v * np.sqrt(g.eigvals)) @ v.T


def wasserstein2(p: Gaussian, q: Gaussian) -> float:
    """The 2-Wasserstein distance between Gaussians (defined for degenerate laws too).

    W₂² = ‖m_p − m_q‖² + tr S_p + tr S_q − 2 tr (S_p^{1/2} S_q S_p^{1/2})^{1/2}.
    """
    _check_pair(p, q)
    r = _sqrtm_psd(p)
    mid = r @ q.cov @ r
    ev = np.linalg.eigvalsh(0.5 * (mid + mid.T))
    cross = np.sum(np.sqrt(np.clip(ev, 0.0, None)))
    w2 = np.sum((p.mean - q.mean) ** 2) + p.eigvals.sum() + q.eigvals.sum() - 2.0 * cross
    return float(np.sqrt(max(w2, 0.0)))


def gaussian_fit_kl(
    samples: Any,
    target: Gaussian,
    direction: Direction = "both",
    *,
    ddof: int = 0,
    workers: int | None = None,
) -> Any:
    """KL between ``target`` and the Gaussian fitted to ``samples`` (sample mean and covariance).

    This is the sample-based estimate of theory.md §5. It is biased upwards by the fit's own
    sampling error: for n samples from the target itself its expectation is about (d²+3d)/(4n)
    (theory.md §6), so use n ≫ d², or subtract that amount when comparing with exact values.
    Returns ``inf`` when n ≤ d (the fitted covariance is singular).
    """
    fitted = Gaussian.fit(samples, ddof=ddof, workers=workers)
    return kl_pair(target, fitted, direction)
