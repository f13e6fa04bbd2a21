#include "lindiff/stats.hpp"

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "lindiff/blas.hpp"
#include "lindiff/parallel.hpp"

namespace lindiff {
namespace {

constexpr Index kMeanBlock = 2048;  // rows per partial sum; fixed, so results never depend on workers

void require_finite_rows(const StridedRef& X, Index r0, Index r1) {
  for (Index i = r0; i < r1; ++i)
    if (!X.row(i).allFinite())
      throw std::invalid_argument("data contain NaN or inf (row " + std::to_string(i) + ")");
}

}  // namespace

Vector column_mean(const StridedRef& X, const Vector& shift, int workers) {
  const Index n = X.rows(), d = X.cols();
  if (n < 1) throw std::invalid_argument("column_mean: no rows");
  if (shift.size() != d) throw std::invalid_argument("column_mean: shift has the wrong length");
  const Index blocks = (n + kMeanBlock - 1) / kMeanBlock;
  Matrix partial(d, blocks);
  parallel_for(blocks, workers, [&](Index b) {
    const Index r0 = b * kMeanBlock, r1 = std::min(n, r0 + kMeanBlock);
    require_finite_rows(X, r0, r1);
    Vector s = Vector::Zero(d);
    for (Index i = r0; i < r1; ++i) s += X.row(i).transpose() - shift;
    partial.col(b) = s;
  });
  // Pairwise (tree) sum over blocks in a fixed order.
  for (Index width = 1; width < blocks; width *= 2)
    for (Index b = 0; b + width < blocks; b += 2 * width) partial.col(b) += partial.col(b + width);
  Vector mean = partial.col(0) / static_cast<double>(n);
  return mean;
}

RowMatrix centred_rows(const StridedRef& X, const Vector& shift, const Vector& mean, int workers) {
  const Index n = X.rows(), d = X.cols();
  if (mean.size() != d || shift.size() != d)
    throw std::invalid_argument("centred_rows: mean or shift has the wrong length");
  RowMatrix out(n, d);
  const Index blocks = (n + kMeanBlock - 1) / kMeanBlock;
  parallel_for(blocks, workers, [&](Index b) {
    const Index r0 = b * kMeanBlock, r1 = std::min(n, r0 + kMeanBlock);
    for (Index i = r0; i < r1; ++i) out.row(i) = (X.row(i) - shift.transpose()) - mean.transpose();
  });
  return out;
}

Matrix centred_scatter(const StridedRef& X, const Vector& shift, const Vector& mean, int workers,
                       Index chunk_rows) {
  const Index n = X.rows(), d = X.cols();
  if (mean.size() != d || shift.size() != d)
    throw std::invalid_argument("centred_scatter: mean or shift has the wrong length");
  if (chunk_rows <= 0) chunk_rows = std::clamp<Index>((Index{1} << 22) / std::max<Index>(d, 1), 256, 8192);
  chunk_rows = std::min(chunk_rows, n);
  Matrix C = Matrix::Zero(d, d);
  RowMatrix buf(chunk_rows, d);
  for (Index r0 = 0; r0 < n; r0 += chunk_rows) {
    const Index k = std::min(chunk_rows, n - r0);
    const Index sub = 256;
    parallel_for((k + sub - 1) / sub, workers, [&](Index b) {
      const Index a0 = b * sub, a1 = std::min(k, a0 + sub);
      for (Index i = a0; i < a1; ++i) buf.row(i) = (X.row(r0 + i) - shift.transpose()) - mean.transpose();
    });
    blas::syrk_ata(buf.data(), k, d, d, 1.0, 1.0, C, workers);
  }
  blas::symmetrize_lower(C);
  return C;
}

Matrix gram_of_factor_t(const ConstRowRef& F, int workers) {
  const Index d = F.cols();
  Matrix C = Matrix::Zero(d, d);
  blas::syrk_ata(F.data(), F.rows(), d, F.outerStride(), 1.0, 0.0, C, workers);
  blas::symmetrize_lower(C);
  return C;
}

Matrix bartlett_scatter(const Eigen::Ref<const Vector>& sqrt_lambda, const Eigen::Ref<const Matrix>& V,
                        const Eigen::Ref<const Vector>& c, const ConstRowRef& z, int workers) {
  const Index d = sqrt_lambda.size();
  const bool identity = V.size() == 0;
  if ((!identity && (V.rows() != d || V.cols() != d)) || c.size() != d || z.rows() != d || z.cols() != d)
    throw std::invalid_argument("bartlett_scatter: shapes of sqrt_lambda, V, c and z do not agree");
  // M = diag(√λ) B, then (if V is given) M ← V M.
  Matrix M = Matrix::Zero(d, d);
  for (Index j = 0; j < d; ++j) {
    M(j, j) = sqrt_lambda(j) * c(j);
    for (Index i = j + 1; i < d; ++i) M(i, j) = sqrt_lambda(i) * z(i, j);
  }
  if (!identity) {
    Matrix VM;
    blas::gemm(false, false, 1.0, Matrix(V), M, 0.0, VM, workers);
    M.swap(VM);
  }
  // A = M Mᵀ: M is column-major d×d, i.e. row-major Mᵀ; syrk_ata on row-major Mᵀ gives M Mᵀ.
  Matrix A = Matrix::Zero(d, d);
  blas::syrk_ata(M.data(), d, d, d, 1.0, 0.0, A, workers);
  blas::symmetrize_lower(A);
  return A;
}

}  // namespace lindiff
