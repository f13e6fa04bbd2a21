// Dense kernels with two providers: an optimised BLAS/LAPACK resolved at run time, or Eigen.
//
// lindiff does not link a BLAS. At import, the Python layer hands the core the path of the OpenBLAS
// that NumPy itself loaded (numpy wheels bundle scipy-openblas64); the core dlopen()s it and looks up
// the few ILP64 CBLAS/LAPACKE entry points it needs. That gives NumPy's speed with NumPy's thread pool
// (no second OpenBLAS pool in the process, see shared/perf-notes.md) and no dependency beyond numpy.
// Where no such library is found, or LINDIFF_BLAS=eigen is set, Eigen's own kernels are used: the
// results are the same to rounding, only slower.
#pragma once
#include <string>

#include "lindiff/types.hpp"

namespace lindiff::blas {

struct Info {
  bool loaded = false;     // true when the external BLAS/LAPACK is in use
  std::string path;        // the library that was loaded
  std::string symbols;     // the symbol naming scheme that matched
  std::string config;      // openblas_get_config(), when available
};

// Try to use the library at `path`. Returns true on success; on failure the Eigen provider stays.
bool load(const std::string& path);
// Go back to the Eigen provider.
void unload();
Info info();
bool available();

// C (d×d, lower triangle) = alpha * Aᵀ A + beta * C, A (k×d) row-major with row stride lda.
// Only the lower triangle of C is referenced and written.
//
// Threads: with the OpenBLAS provider, `threads` is ignored and OpenBLAS uses NumPy's pool as NumPy
// configured it (OPENBLAS_NUM_THREADS, threadpoolctl): our own `workers` then never changes BLAS
// rounding, so results do not depend on it. The Eigen provider splits work into fixed panels over
// `threads` threads, again without changing results.
void syrk_ata(const double* A, Index k, Index d, Index lda, double alpha, double beta, Matrix& C,
              int threads);
// G (k×k, lower triangle) = A Aᵀ for row-major A (k×d).
void syrk_aat(const double* A, Index k, Index d, Index lda, Matrix& G, int threads);
// C = alpha * op(A) op(B) + beta * C for column-major Eigen matrices.
void gemm(bool transA, bool transB, double alpha, const Matrix& A, const Matrix& B, double beta,
          Matrix& C, int threads);
// The same on raw column-major arrays: C is m×n with leading dimension ldc, op(A) m×k, op(B) k×n.
void gemm(bool transA, bool transB, Index m, Index n, Index k, double alpha, const double* A,
          Index lda, const double* B, Index ldb, double beta, double* C, Index ldc);

// While an instance lives, the external BLAS runs its calls on the calling thread alone, so that
// several of our workers can each issue their own products at once. (OpenBLAS's pthreads pool takes
// one multithreaded call at a time, and after each call its idle threads spin for a while on the
// cores our workers need; it has no per-thread setting, openblas_set_num_threads_local being
// process-wide in pthreads builds.) The limit is process-wide, as with threadpoolctl's
// threadpool_limits: NumPy calls made from other Python threads meanwhile also run on one thread.
// Instances nest and may live on several threads at once: the first sets the limit, the last
// restores the setting found by the first. Changes speed only: a single-threaded OpenBLAS product
// of a given shape is deterministic. No effect with the Eigen provider (single-threaded here).
class SingleThreadedScope {
 public:
  SingleThreadedScope();
  ~SingleThreadedScope();
  SingleThreadedScope(const SingleThreadedScope&) = delete;
  SingleThreadedScope& operator=(const SingleThreadedScope&) = delete;
};
// The external BLAS's current thread count (1 with the Eigen provider).
int threads();
// Symmetric eigendecomposition of the lower triangle of S (overwritten by eigenvectors, in columns),
// eigenvalues ascending in w.
void syevd(Matrix& S, Vector& w, int threads);
// Full orthogonal Q (n×n) from a QR factorisation of the n×k matrix A (k <= n): the first k columns
// span range(A), the others its orthogonal complement.
Matrix complete_basis(const Matrix& A, int threads);
// Thin orthonormal Q (n×k) with range(Q) = range(A), by Householder QR.
Matrix orthonormal_range(const Matrix& A, int threads);

// Copy the lower triangle of C to the upper one.
void symmetrize_lower(Matrix& C);

}  // namespace lindiff::blas
