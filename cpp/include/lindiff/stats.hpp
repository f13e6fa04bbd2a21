// Empirical first and second moments of a data set, computed stably.
//
// The scatter matrix Σ (x−μ̂)(x−μ̂)ᵀ is accumulated by the two-pass method: the column means first,
// then the centred rows, chunk by chunk, through a symmetric rank-k update. Data with a large offset
// (mean 1e6, unit variance) therefore lose nothing to cancellation, unlike Σ xxᵀ − N μ̂μ̂ᵀ.
// Partial results are merged with Chan, Golub & LeVeque's pairwise update (in Python, O(d²)).
#pragma once
#include "lindiff/types.hpp"

namespace lindiff {

// All three take a `shift` s (a reference point near the data, e.g. its first row) and work with
// x − s, which is exact for data far from the origin: the mean is returned relative to s, and the
// centred rows are (x − s) − mean_rel. Statistics merged later keep their precision because the
// differences of relative means carry no ulp(|μ|) error (data with mean 1e6 keep 1e-16, not 1e-10).

// Column means of X − s. Rows are summed in fixed blocks whose partial sums are added in a fixed
// tree order, so the result is identical for any number of workers.
Vector column_mean(const StridedRef& X, const Vector& shift, int workers);

// Σ_i (x_i − s − m)(x_i − s − m)ᵀ as a full symmetric d×d matrix. Rows are centred into a buffer of
// at most `chunk_rows` rows at a time (0 chooses about 32 MB), then added by a rank-k update.
Matrix centred_scatter(const StridedRef& X, const Vector& shift, const Vector& mean, int workers,
                       Index chunk_rows = 0);

// (X − s) − m as a new row-major matrix (the factor F with FᵀF = scatter, used by the dual route).
RowMatrix centred_rows(const StridedRef& X, const Vector& shift, const Vector& mean, int workers);

// FᵀF for a row-major factor F (full symmetric).
Matrix gram_of_factor_t(const ConstRowRef& F, int workers);

// Wishart draw by the Bartlett decomposition. With Σ = V diag(λ) Vᵀ and L = V diag(√λ), the
// Bartlett factor B (lower triangular, diagonal c with c_i² ~ χ²_{ν−i}, i = 0..d−1, strictly lower
// part z: row-major d×d of which only the strict lower triangle is read) gives
// A = L B Bᵀ Lᵀ ~ W_d(Σ, ν). An empty V means the standard basis (V = I, no d³ product).
Matrix bartlett_scatter(const Eigen::Ref<const Vector>& sqrt_lambda, const Eigen::Ref<const Matrix>& V,
                        const Eigen::Ref<const Vector>& c, const ConstRowRef& z, int workers);

}  // namespace lindiff
