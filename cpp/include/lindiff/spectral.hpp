// Eigendecompositions of covariance matrices, by the primal (d×d) or the dual (Gram) route.
//
// Convention: eigenvalues are returned in DESCENDING order (rank order, λ₁ ≥ λ₂ ≥ …, as in the
// power-law spectra λ_ν ∝ ν^{-k}), eigenvectors as the matching columns.
#pragma once
#include "lindiff/types.hpp"

namespace lindiff {

struct SpectralResult {
  Vector values;   // descending
  Matrix vectors;  // columns; d×d (primal) or d×r (dual: the range only)
};

// Primal route: eigh of the symmetric matrix S (d×d). Eigenvalues below zero (rounding) become 0, and
// so do all but the largest `rank_bound` ones when rank_bound < d (a scatter of n centred points has
// rank at most n−1: those directions are exactly null, not 1e-16).
SpectralResult eigh_descending(Matrix S, Index rank_bound, int workers);

// Dual route for a scatter held as FᵀF with F (m×d, row-major): eigendecompose the m×m Gram matrix
// F Fᵀ = V diag(μ) Vᵀ and map back, u_j = Fᵀ v_j / √μ_j. Returns the nonzero part of the spectrum of
// FᵀF (eigenvalues > tolerance, at most rank_bound of them) and its eigenvectors (d×r).
SpectralResult dual_eigh(const ConstRowRef& F, Index rank_bound, int workers);

}  // namespace lindiff
