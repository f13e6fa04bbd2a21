#include "lindiff/blas.hpp"

#include <dlfcn.h>

#include <algorithm>
#include <mutex>
#include <stdexcept>
#include <string>

#include "lindiff/parallel.hpp"

namespace lindiff::blas {
namespace {

using blasint = std::int64_t;  // ILP64: numpy's bundled OpenBLAS is scipy-openblas64
constexpr int kRowMajor = 101, kColMajor = 102, kNoTrans = 111, kTrans = 112, kLower = 122;
constexpr int kLapackColMajor = 102;

using syrk_t = void (*)(int, int, int, blasint, blasint, double, const double*, blasint, double,
                        double*, blasint);
using gemm_t = void (*)(int, int, int, blasint, blasint, blasint, double, const double*, blasint,
                        const double*, blasint, double, double*, blasint);
using syevd_t = blasint (*)(int, char, char, blasint, double*, blasint, double*);
using geqrf_t = blasint (*)(int, blasint, blasint, double*, blasint, double*);
using orgqr_t = blasint (*)(int, blasint, blasint, blasint, double*, blasint, const double*);
using get_config_t = const char* (*)();
using set_threads_t = void (*)(int);
using get_threads_t = int (*)();

struct Provider {
  void* handle = nullptr;
  syrk_t syrk = nullptr;
  gemm_t gemm = nullptr;
  syevd_t syevd = nullptr;
  geqrf_t geqrf = nullptr;
  orgqr_t orgqr = nullptr;
  set_threads_t set_threads = nullptr;  // optional: openblas_set_num_threads / _get_
  get_threads_t get_threads = nullptr;
  Info info;
};

Provider g_provider;
std::mutex g_mutex;

// Symbol naming schemes for ILP64 builds: scipy-openblas64 (numpy wheels) and plain OpenBLAS ILP64.
struct Scheme {
  const char* name;
  const char* prefix;
  const char* cblas_suffix;
  const char* lapacke_suffix;
  const char* other_suffix;
};
constexpr Scheme kSchemes[] = {
    {"scipy_openblas64", "scipy_", "64_", "64_", "64_"},
    {"openblas64_", "", "64_", "64_", "64_"},
};

void* sym(void* h, const std::string& name) { return dlsym(h, name.c_str()); }

void check_info(blasint info, const char* what) {
  if (info != 0)
    throw std::runtime_error(std::string(what) + " failed (LAPACK info = " + std::to_string(info) +
                             ")");
}

}  // namespace

bool load(const std::string& path) {
  std::lock_guard<std::mutex> lock(g_mutex);
  void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h) return false;
  for (const auto& s : kSchemes) {
    const std::string p = s.prefix;
    Provider cand;
    cand.handle = h;
    cand.syrk = reinterpret_cast<syrk_t>(sym(h, p + "cblas_dsyrk" + s.cblas_suffix));
    cand.gemm = reinterpret_cast<gemm_t>(sym(h, p + "cblas_dgemm" + s.cblas_suffix));
    cand.syevd = reinterpret_cast<syevd_t>(sym(h, p + "LAPACKE_dsyevd" + s.lapacke_suffix));
    cand.geqrf = reinterpret_cast<geqrf_t>(sym(h, p + "LAPACKE_dgeqrf" + s.lapacke_suffix));
    cand.orgqr = reinterpret_cast<orgqr_t>(sym(h, p + "LAPACKE_dorgqr" + s.lapacke_suffix));
    if (!(cand.syrk && cand.gemm && cand.syevd && cand.geqrf && cand.orgqr)) continue;
    auto cfg = reinterpret_cast<get_config_t>(sym(h, p + "openblas_get_config" + s.other_suffix));
    if (!cfg) cfg = reinterpret_cast<get_config_t>(sym(h, p + "openblas_get_config"));
    cand.set_threads =
        reinterpret_cast<set_threads_t>(sym(h, p + "openblas_set_num_threads" + s.other_suffix));
    cand.get_threads =
        reinterpret_cast<get_threads_t>(sym(h, p + "openblas_get_num_threads" + s.other_suffix));
    if (!(cand.set_threads && cand.get_threads)) cand.set_threads = nullptr, cand.get_threads = nullptr;
    cand.info.loaded = true;
    cand.info.path = path;
    cand.info.symbols = s.name;
    cand.info.config = cfg ? cfg() : "";
    if (g_provider.handle && g_provider.handle != h) dlclose(g_provider.handle);
    g_provider = cand;
    return true;
  }
  dlclose(h);
  return false;
}

void unload() {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_provider.handle) dlclose(g_provider.handle);
  g_provider = Provider{};
}

Info info() { return g_provider.info; }
bool available() { return g_provider.info.loaded; }

void symmetrize_lower(Matrix& C) {
  C.triangularView<Eigen::StrictlyUpper>() = C.transpose();
}

void syrk_ata(const double* A, Index k, Index d, Index lda, double alpha, double beta, Matrix& C,
              int threads) {
  if (k == 0) {
    if (beta != 1.0) C.triangularView<Eigen::Lower>() *= beta;
    return;
  }
  if (available()) {
    // Row-major A (k×d) is column-major Aᵀ (d×k); C = Aᵀ A is then "NoTrans" on column-major Aᵀ.
    g_provider.syrk(kColMajor, kLower, kNoTrans, d, k, alpha, A, lda, beta, C.data(), C.rows());
    return;
  }
  using Map = Eigen::Map<const RowMatrix, 0, Eigen::OuterStride<>>;
  Map a(A, k, d, Eigen::OuterStride<>(lda));
  // Column panels of the lower triangle are independent: C[j:, j:j+nb] = A[:, j:]ᵀ A[:, j:j+nb].
  // Each panel is one GEMM of a fixed shape, so the result does not depend on the thread count.
  const Index nb = 64;
  const Index panels = (d + nb - 1) / nb;
  parallel_for(panels, std::max(threads, 1), [&](Index p) {
    const Index j = p * nb, w = std::min(nb, d - j);
    auto block = C.block(j, j, d - j, w);
    if (beta == 0.0)
      block.noalias() = alpha * a.rightCols(d - j).transpose() * a.middleCols(j, w);
    else {
      block *= beta;
      block.noalias() += alpha * a.rightCols(d - j).transpose() * a.middleCols(j, w);
    }
  });
}

void syrk_aat(const double* A, Index k, Index d, Index lda, Matrix& G, int threads) {
  G.resize(k, k);
  if (available()) {
    // Row-major A (k×d) is column-major Aᵀ (d×k); G = A Aᵀ = (Aᵀ)ᵀ(Aᵀ) is "Trans".
    g_provider.syrk(kColMajor, kLower, kTrans, k, d, 1.0, A, lda, 0.0, G.data(), k);
    return;
  }
  using Map = Eigen::Map<const RowMatrix, 0, Eigen::OuterStride<>>;
  Map a(A, k, d, Eigen::OuterStride<>(lda));
  const Index nb = 64;
  const Index panels = (k + nb - 1) / nb;
  parallel_for(panels, std::max(threads, 1), [&](Index p) {
    const Index j = p * nb, w = std::min(nb, k - j);
    G.block(j, j, k - j, w).noalias() = a.bottomRows(k - j) * a.middleRows(j, w).transpose();
  });
}

namespace {
std::mutex g_scope_mutex;
int g_scope_depth = 0;
int g_scope_saved = 0;
}  // namespace

SingleThreadedScope::SingleThreadedScope() {
  std::lock_guard<std::mutex> lock(g_scope_mutex);
  if (g_scope_depth++ == 0 && g_provider.set_threads) {
    g_scope_saved = g_provider.get_threads();
    if (g_scope_saved != 1) g_provider.set_threads(1);
  }
}

SingleThreadedScope::~SingleThreadedScope() {
  std::lock_guard<std::mutex> lock(g_scope_mutex);
  if (--g_scope_depth == 0 && g_provider.set_threads && g_scope_saved > 1)
    g_provider.set_threads(g_scope_saved);
}

int threads() { return g_provider.get_threads ? g_provider.get_threads() : 1; }

void gemm(bool transA, bool transB, Index m, Index n, Index k, double alpha, const double* A,
          Index lda, const double* B, Index ldb, double beta, double* C, Index ldc) {
  if (m == 0 || n == 0) return;
  if (available() && k > 0) {
    g_provider.gemm(kColMajor, transA ? kTrans : kNoTrans, transB ? kTrans : kNoTrans, m, n, k,
                    alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  using CMap = Eigen::Map<const Matrix, 0, Eigen::OuterStride<>>;
  Eigen::Map<Matrix, 0, Eigen::OuterStride<>> c(C, m, n, Eigen::OuterStride<>(ldc));
  const CMap a(A, transA ? k : m, transA ? m : k, Eigen::OuterStride<>(lda));
  const CMap b(B, transB ? n : k, transB ? k : n, Eigen::OuterStride<>(ldb));
  if (beta == 0.0) c.setZero(); else c *= beta;
  if (k == 0) return;
  if (transA && transB) c.noalias() += alpha * a.transpose() * b.transpose();
  else if (transA) c.noalias() += alpha * a.transpose() * b;
  else if (transB) c.noalias() += alpha * a * b.transpose();
  else c.noalias() += alpha * a * b;
}

void gemm(bool transA, bool transB, double alpha, const Matrix& A, const Matrix& B, double beta,
          Matrix& C, int threads) {
  const Index m = transA ? A.cols() : A.rows();
  const Index kk = transA ? A.rows() : A.cols();
  const Index n = transB ? B.rows() : B.cols();
  if ((transB ? B.cols() : B.rows()) != kk) throw std::invalid_argument("gemm: inner dimensions differ");
  if (beta == 0.0) C.resize(m, n);
  if (C.rows() != m || C.cols() != n) throw std::invalid_argument("gemm: output has the wrong shape");
  gemm(transA, transB, m, n, kk, alpha, A.data(), std::max<Index>(A.rows(), 1), B.data(),
       std::max<Index>(B.rows(), 1), beta, C.data(), std::max<Index>(C.rows(), 1));
}

void syevd(Matrix& S, Vector& w, int threads) {
  const Index n = S.rows();
  w.resize(n);
  if (n == 0) return;
  if (available()) {
    check_info(g_provider.syevd(kLapackColMajor, 'V', 'L', n, S.data(), n, w.data()), "dsyevd");
    return;
  }
  Eigen::SelfAdjointEigenSolver<Matrix> es(S);  // reads the lower triangle
  if (es.info() != Eigen::Success) throw std::runtime_error("eigendecomposition did not converge");
  w = es.eigenvalues();
  S = es.eigenvectors();
}

Matrix orthonormal_range(const Matrix& A, int threads) {
  const Index n = A.rows(), k = A.cols();
  if (k > n) throw std::invalid_argument("orthonormal_range: more columns than rows");
  if (k == 0) return Matrix(n, 0);
  if (available()) {
    Matrix Q = A;
    Vector tau(k);
    check_info(g_provider.geqrf(kLapackColMajor, n, k, Q.data(), n, tau.data()), "dgeqrf");
    check_info(g_provider.orgqr(kLapackColMajor, n, k, k, Q.data(), n, tau.data()), "dorgqr");
    return Q;
  }
  Eigen::HouseholderQR<Matrix> qr(A);
  Matrix Q = qr.householderQ() * Matrix::Identity(n, k);
  return Q;
}

Matrix complete_basis(const Matrix& A, int threads) {
  const Index n = A.rows(), k = A.cols();
  if (k > n) throw std::invalid_argument("complete_basis: more columns than rows");
  // Measured here: LAPACK's dorgqr forming the full n×n Q runs at 6–7 GFLOP/s, Eigen's blocked
  // householderQ() 2.4× faster at n = 2048, so Eigen builds the full basis whatever the provider.
  Eigen::HouseholderQR<Matrix> qr(A);
  Matrix Q = qr.householderQ();
  return Q;
}

}  // namespace lindiff::blas
