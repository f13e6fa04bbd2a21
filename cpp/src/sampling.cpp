#include "lindiff/sampling.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "lindiff/blas.hpp"
#include "lindiff/parallel.hpp"

namespace lindiff {
namespace {

void check(bool ok, const std::string& msg) {
  if (!ok) throw std::invalid_argument(msg);
}

using RowMap = Eigen::Map<RowMatrix>;
using ConstRowMap = Eigen::Map<const RowMatrix>;

Index n_blocks_for(Index n) { return (n + kSampleBlock - 1) / kSampleBlock; }

void check_run(const SampleRun& run, Index n) {
  check(run.workers >= 1, "sampling: workers must be >= 1");
  check(n >= 1, "sampling: n must be >= 1");
  check(run.seeds != nullptr && run.n_seed_words == 4 * n_blocks_for(n),
        "sampling: need 4 seed words per block of " + std::to_string(kSampleBlock) + " samples (" +
            std::to_string(4 * n_blocks_for(n)) + " words)");
}

// Blocks in batches of workers × kBlocksPerWorker; `run.check` between batches, on this thread.
template <class F>
void run_blocks(Index n, const SampleRun& run, F&& task) {
  const Index n_blocks = n_blocks_for(n);
  const Index batch = static_cast<Index>(run.workers) * kBlocksPerWorker;
  for (Index start = 0; start < n_blocks; start += batch) {
    if (run.check) run.check();
    const Index count = std::min(batch, n_blocks - start);
    parallel_for(count, run.workers, [&](Index i) {
      const Index blk = start + i;
      const Index row0 = blk * kSampleBlock;
      const Index m = std::min(kSampleBlock, n - row0);
      Xoshiro256pp g(run.seeds + 4 * blk);
      task(row0, m, g);
    });
  }
}

void check_chain(const ChainSpecSampling& chain, Index T) {
  check(chain.sigma.size() == T, "sampling: sigma must have length T");
  check(chain.sigma.allFinite() && (chain.sigma.array() >= 0).all(), "sampling: sigma must be finite and >= 0");
  check(chain.trajectory == nullptr || static_cast<Index>(chain.slot.size()) == T + 1,
        "sampling: trajectory slots must have length T + 1");
}

// The noise (or initial state) of step index `idx` (0: u_T; T−t+1: z_t) for rows row0..row0+m.
inline ConstRowMap noise_block(const ChainSpecSampling& chain, Index idx, Index n, Index d, Index row0, Index m) {
  return ConstRowMap(chain.noise + (idx * n + row0) * d, m, d);
}

inline RowMap traj_block(const ChainSpecSampling& chain, Index t, Index n, Index d, Index row0, Index m) {
  return RowMap(chain.trajectory + (chain.slot[static_cast<size_t>(t)] * n + row0) * d, m, d);
}

inline bool records(const ChainSpecSampling& chain, Index t) {
  return chain.trajectory != nullptr && chain.slot[static_cast<size_t>(t)] >= 0;
}

}  // namespace

// Runtime dispatch: an AVX2 clone (4 doubles per vector, about 2× the SSE4.2 baseline on the
// Box–Muller loop) and the portable default. sampling.cpp is compiled with -ffp-contract=off, so both
// clones round identically: the same seed gives the same normals on every x86-64 machine.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
__attribute__((target_clones("avx2", "default")))
#endif
void fill_standard_normal(Xoshiro256pp& g, double* out, Index n) {
  double u1[kNormalChunk], u2[kNormalChunk];
  Index done = 0;
  while (done < n) {
    const Index pairs = std::min<Index>(kNormalChunk, (n - done + 1) / 2);
    for (Index i = 0; i < pairs; ++i) {
      // 52-bit uniforms by exponent stuffing: [1, 2) − 1 ∈ [0, 1), and 2 − [1, 2) ∈ (0, 1].
      u1[i] = 2.0 - detail::bits_to_double(0x3FF0000000000000ULL | (g.next() >> 12));
      u2[i] = detail::bits_to_double(0x3FF0000000000000ULL | (g.next() >> 12)) - 1.0;
    }
    const Index rest = n - done;
    if (rest >= 2 * pairs) {
      double* oc = out + done;
      double* os = oc + pairs;
#pragma GCC ivdep
      for (Index i = 0; i < pairs; ++i) {
        const double r = std::sqrt(-2.0 * detail::log_positive(u1[i]));
        double c, s;
        detail::sincos_2pi(u2[i], c, s);
        oc[i] = r * c;
        os[i] = r * s;
      }
      done += 2 * pairs;
    } else {  // the last, short chunk: rest = 2·pairs − 1 (odd n); the final sine is dropped
      double tmp[2 * kNormalChunk];
      for (Index i = 0; i < pairs; ++i) {
        const double r = std::sqrt(-2.0 * detail::log_positive(u1[i]));
        double c, s;
        detail::sincos_2pi(u2[i], c, s);
        tmp[i] = r * c;
        tmp[pairs + i] = r * s;
      }
      std::copy(tmp, tmp + rest, out + done);
      done = n;
    }
  }
}

void standard_normal(const std::uint64_t seed[4], double* out, Index n) {
  check(n >= 0, "standard_normal: n must be >= 0");
  Xoshiro256pp g(seed);
  fill_standard_normal(g, out, n);
}

void sample_eigen_chain(const ConstRowRef& U, const ConstRowRef& a, const ConstRowRef& c,
                        const ChainSpecSampling& chain, const SampleRun& run, OutRef out) {
  const Index d = U.rows(), T = a.rows(), n = out.rows();
  check(U.cols() == d && d >= 1, "sample_eigen_chain: U must be d×d");
  check(T >= 1 && a.cols() == d && c.rows() == T && c.cols() == d, "sample_eigen_chain: a and c must be T×d");
  check(out.cols() == d, "sample_eigen_chain: out must be n×d");
  check(U.allFinite() && a.allFinite() && c.allFinite(), "sample_eigen_chain: non-finite coefficients");
  check_chain(chain, T);
  check_run(run, n);
  run_blocks(n, run, [&](Index row0, Index m, Xoshiro256pp& g) {
    RowMatrix Y(m, d);
    RowMatrix Z(chain.noise ? m : std::min(m, kRowChunk), d);
    if (chain.noise) Y.noalias() = noise_block(chain, 0, n, d, row0, m) * U;  // rows: (Uᵀu)ᵀ
    else fill_standard_normal(g, Y.data(), m * d);  // Uᵀu_T ~ N(0, I) as well
    if (records(chain, T)) traj_block(chain, T, n, d, row0, m).noalias() = Y * U.transpose();
    for (Index t = T; t >= 1; --t) {
      const Index k = t - 1;
      const double sig = chain.sigma(k);
      const double* ak = a.data() + k * a.outerStride();
      const double* ck = c.data() + k * c.outerStride();
      const bool noisy = sig != 0.0;
      if (noisy && chain.noise) Z.noalias() = noise_block(chain, T - t + 1, n, d, row0, m) * U;
      for (Index r0 = 0; r0 < m; r0 += kRowChunk) {
        const Index rows = std::min(kRowChunk, m - r0);
        const double* zc = nullptr;
        if (noisy) {
          if (chain.noise) {
            zc = Z.data() + r0 * d;
          } else {
            fill_standard_normal(g, Z.data(), rows * d);
            zc = Z.data();
          }
        }
        for (Index i = 0; i < rows; ++i) {
          double* y = Y.data() + (r0 + i) * d;
          if (noisy) {
            const double* z = zc + i * d;
            for (Index j = 0; j < d; ++j) y[j] = ak[j] * y[j] + ck[j] + sig * z[j];
          } else {
            for (Index j = 0; j < d; ++j) y[j] = ak[j] * y[j] + ck[j];
          }
        }
      }
      if (records(chain, k)) traj_block(chain, k, n, d, row0, m).noalias() = Y * U.transpose();
    }
    out.middleRows(row0, m).noalias() = Y * U.transpose();
  });
}

void sample_dense_chain(const double* W, Index T, Index d, const ConstRowRef& b, const Vector& p,
                        const Vector& q, const ChainSpecSampling& chain, const SampleRun& run,
                        OutRef out) {
  const Index n = out.rows();
  check(W != nullptr && T >= 1 && d >= 1, "sample_dense_chain: W must be (T, d, d) with T, d >= 1");
  check(b.rows() == T && b.cols() == d, "sample_dense_chain: b must be T×d");
  check(p.size() == T && q.size() == T && p.allFinite() && q.allFinite(),
        "sample_dense_chain: step coefficients must be finite, length T");
  check(out.cols() == d, "sample_dense_chain: out must be n×d");
  check(ConstRowMap(W, T * d, d).allFinite() && b.allFinite(), "sample_dense_chain: W and b must be finite");
  check_chain(chain, T);
  check_run(run, n);
  // Step-synchronous over a batch of kGemmBatch blocks (a constant, independent of `workers`). Per
  // step: one GEMM E = X W_tᵀ over the whole batch, issued from the calling thread through
  // blas::gemm (NumPy's OpenBLAS and its thread pool when loaded, Eigen otherwise); then the noise
  // and the update of every block in parallel. The GEMM has the same shape and inputs whatever
  // `workers` is, so results do not depend on it.
  // Column-major d×rows buffers hold the rows contiguously (the memory of a row-major rows×d), so
  // the per-row loops and the RNG order are those of row-major storage.
  const Index n_blocks = n_blocks_for(n);
  const Index rows_max = std::min(n, kGemmBatch * kSampleBlock);
  Matrix X(d, rows_max), E(d, rows_max), Wt(d, d);
  for (Index start = 0; start < n_blocks; start += kGemmBatch) {
    if (run.check) run.check();
    const Index count = std::min(kGemmBatch, n_blocks - start);
    const Index row_base = start * kSampleBlock;
    const Index rows_here = std::min(n, (start + count) * kSampleBlock) - row_base;
    X.resize(d, rows_here);
    E.resize(d, rows_here);
    std::vector<Xoshiro256pp> gens;
    gens.reserve(static_cast<size_t>(count));
    for (Index i = 0; i < count; ++i) gens.emplace_back(run.seeds + 4 * (start + i));
    auto block_rows = [&](Index i, Index& row0, Index& m) {
      row0 = (start + i) * kSampleBlock;
      m = std::min(kSampleBlock, n - row0);
    };
    parallel_for(count, run.workers, [&](Index i) {
      Index row0, m;
      block_rows(i, row0, m);
      double* x = X.data() + (row0 - row_base) * d;
      if (chain.noise) std::copy_n(chain.noise + row0 * d, m * d, x);
      else fill_standard_normal(gens[static_cast<size_t>(i)], x, m * d);
      if (records(chain, T)) std::copy_n(x, m * d, traj_block(chain, T, n, d, row0, m).data());
    });
    for (Index t = T; t >= 1; --t) {
      const Index k = t - 1;
      const double sig = chain.sigma(k), pk = p(k), qk = q(k);
      const bool noisy = sig != 0.0;
      Wt = Eigen::Map<const Matrix>(W + k * d * d, d, d);  // column-major view of row-major W_t: W_tᵀ
      blas::gemm(true, false, 1.0, Wt, X, 0.0, E, 1);
      const double* bk = b.data() + k * b.outerStride();
      parallel_for(count, run.workers, [&](Index i) {
        Index row0, m;
        block_rows(i, row0, m);
        RowMatrix Z(noisy && !chain.noise ? std::min(m, kRowChunk) : 0, d);
        for (Index r0 = 0; r0 < m; r0 += kRowChunk) {
          const Index rows = std::min(kRowChunk, m - r0);
          const double* zc = nullptr;
          if (noisy) {
            if (chain.noise) {
              zc = chain.noise + ((T - t + 1) * n + row0 + r0) * d;
            } else {
              fill_standard_normal(gens[static_cast<size_t>(i)], Z.data(), rows * d);
              zc = Z.data();
            }
          }
          for (Index r = 0; r < rows; ++r) {
            double* x = X.data() + (row0 - row_base + r0 + r) * d;
            const double* e = E.data() + (row0 - row_base + r0 + r) * d;
            if (noisy) {
              const double* z = zc + r * d;
              for (Index j = 0; j < d; ++j) x[j] = pk * x[j] + qk * (e[j] + bk[j]) + sig * z[j];
            } else {
              for (Index j = 0; j < d; ++j) x[j] = pk * x[j] + qk * (e[j] + bk[j]);
            }
          }
        }
        if (records(chain, k))
          std::copy_n(X.data() + (row0 - row_base) * d, m * d, traj_block(chain, k, n, d, row0, m).data());
      });
    }
    out.middleRows(row_base, rows_here) = X.transpose();
  }
}

void sample_gaussian(const Vector& mean, const Vector& scale, const ConstRowRef& V,
                     const SampleRun& run, OutRef out) {
  const Index d = mean.size(), k = scale.size(), n = out.rows();
  check(d >= 1 && V.rows() == d && V.cols() == k && k >= 1, "sample_gaussian: V must be d×k");
  check(out.cols() == d, "sample_gaussian: out must be n×d");
  check(mean.allFinite() && scale.allFinite() && V.allFinite() && (scale.array() >= 0).all(),
        "sample_gaussian: mean, scale and V must be finite, scale >= 0");
  check_run(run, n);
  // Per batch of kGemmBatch blocks (independent of `workers`): the draws of every block in parallel,
  // then one GEMM from the calling thread (blas::gemm: NumPy's OpenBLAS pool when loaded).
  // Zt (k×rows, column-major) has the memory layout of the row-major rows×k draws; out = (V Zt)ᵀ.
  const Matrix Vc = V;
  const Index n_blocks = n_blocks_for(n);
  Matrix Zt, C;
  for (Index start = 0; start < n_blocks; start += kGemmBatch) {
    if (run.check) run.check();
    const Index count = std::min(kGemmBatch, n_blocks - start);
    const Index row_base = start * kSampleBlock;
    const Index rows_here = std::min(n, (start + count) * kSampleBlock) - row_base;
    Zt.resize(k, rows_here);
    parallel_for(count, run.workers, [&](Index i) {
      const Index row0 = (start + i) * kSampleBlock, m = std::min(kSampleBlock, n - row0);
      Xoshiro256pp g(run.seeds + 4 * (start + i));
      auto z = Zt.middleCols(row0 - row_base, m);
      fill_standard_normal(g, z.data(), m * k);
      z.array().colwise() *= scale.array();
    });
    blas::gemm(false, false, 1.0, Vc, Zt, 0.0, C, 1);
    auto o = out.middleRows(row_base, rows_here);
    o = C.transpose();
    o.rowwise() += mean.transpose();
  }
}

}  // namespace lindiff
