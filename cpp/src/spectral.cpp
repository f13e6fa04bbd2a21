#include "lindiff/spectral.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "lindiff/blas.hpp"

namespace lindiff {

SpectralResult eigh_descending(Matrix S, Index rank_bound, int workers) {
  const Index d = S.rows();
  if (S.cols() != d) throw std::invalid_argument("eigh: matrix is not square");
  if (!S.allFinite()) throw std::invalid_argument("eigh: matrix contains NaN or inf");
  Vector w;
  blas::syevd(S, w, workers);
  SpectralResult r;
  r.values = w.reverse();
  r.vectors = S.rowwise().reverse();
  const Index keep = std::clamp<Index>(rank_bound, 0, d);
  for (Index i = 0; i < d; ++i)
    if (i >= keep || r.values(i) < 0.0) r.values(i) = 0.0;
  return r;
}

SpectralResult dual_eigh(const ConstRowRef& F, Index rank_bound, int workers) {
  const Index m = F.rows(), d = F.cols();
  SpectralResult r;
  if (m == 0) {
    r.values.resize(0);
    r.vectors.resize(d, 0);
    return r;
  }
  Matrix G;
  blas::syrk_aat(F.data(), m, d, F.outerStride(), G, workers);
  Vector mu;
  blas::syevd(G, mu, workers);  // ascending; G now holds V
  const double top = std::max(mu.maxCoeff(), 0.0);
  const double tol = top * static_cast<double>(std::max(m, d)) * std::numeric_limits<double>::epsilon();
  Index r_keep = 0;
  for (Index j = m - 1; j >= 0 && r_keep < rank_bound; --j) {
    if (mu(j) <= tol) break;
    ++r_keep;
  }
  // Columns of V for the kept eigenvalues, in descending order, scaled by 1/√μ.
  Matrix V(m, r_keep);
  r.values.resize(r_keep);
  for (Index j = 0; j < r_keep; ++j) {
    const Index src = m - 1 - j;
    r.values(j) = mu(src);
    V.col(j) = G.col(src) / std::sqrt(mu(src));
  }
  // U = Fᵀ V: F row-major (m×d) is column-major Fᵀ (d×m).
  Eigen::Map<const Matrix, 0, Eigen::OuterStride<>> Ft(F.data(), d, m, Eigen::OuterStride<>(F.outerStride()));
  Matrix FtM = Ft;  // contiguous copy for the BLAS calls (O(md), small next to the products)
  blas::gemm(false, false, 1.0, FtM, V, 0.0, r.vectors, workers);
  // Fᵀv/√μ loses orthogonality like eps·μ_max/μ_min (1e-7 seen at N ≈ d, near the Marchenko–Pastur
  // edge). Check it (one r×r product, a few % of the route's cost) and only then pay for a
  // Rayleigh–Ritz step in that range (≈ 4× the route itself): Q = orth(U), eig of (FQ)ᵀ(FQ), U = Q W.
  bool reorthogonalise = false;
  if (r_keep > 0) {
    Matrix UtU;
    blas::gemm(true, false, 1.0, r.vectors, r.vectors, 0.0, UtU, workers);
    UtU.diagonal().array() -= 1.0;
    reorthogonalise = UtU.cwiseAbs().maxCoeff() > 1e-13;
  }
  if (reorthogonalise) {
    const Matrix Q = blas::orthonormal_range(r.vectors, workers);
    Matrix FQ;
    blas::gemm(true, false, 1.0, FtM, Q, 0.0, FQ, workers);  // (m×r) = F Q
    Matrix H = Matrix::Zero(r_keep, r_keep);
    blas::gemm(true, false, 1.0, FQ, FQ, 0.0, H, workers);
    Vector h;
    blas::syevd(H, h, workers);  // ascending
    r.values = h.reverse();
    for (Index j = 0; j < r_keep; ++j) r.values(j) = std::max(r.values(j), 0.0);
    const Matrix W = H.rowwise().reverse();
    blas::gemm(false, false, 1.0, Q, W, 0.0, r.vectors, workers);
  }
  return r;
}

}  // namespace lindiff
