#include "lindiff/empirical_optimal.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "lindiff/blas.hpp"
#include "lindiff/parallel.hpp"
#include "lindiff/rng.hpp"

namespace lindiff {
namespace {

void check(bool ok, const std::string& msg) {
  if (!ok) throw std::invalid_argument(msg);
}

constexpr Index kColTask = 16;       // rows (columns of the logit matrix) per softmax task
constexpr double kSignificant = -40.0;  // weights above e^-40 of the largest are "significant"

inline double bits_to_double(std::uint64_t b) {
  double x;
  std::memcpy(&x, &b, sizeof x);
  return x;
}
inline std::uint64_t double_to_bits(double x) {
  std::uint64_t b;
  std::memcpy(&b, &x, sizeof b);
  return b;
}

// exp(x), x <= 0: x = k ln2 + r, |r| <= ln2/2, exp(r) by its Taylor series to r^13 (truncation
// < 5e-18 relative), times 2^k built in the exponent bits. Branch-free so that loops vectorise.
inline double exp_np(double x) {
  const double xc = x < -708.0 ? -708.0 : x;
  constexpr double shifter = 6755399441055744.0;  // 1.5·2^52
  const double t = xc * 1.4426950408889634 + shifter;
  const double k = t - shifter;
  constexpr double ln2_hi = 6.93147180369123816490e-01;
  constexpr double ln2_lo = 1.90821492927058770002e-10;
  const double r = (xc - k * ln2_hi) - k * ln2_lo;
  double p = 1.0 / 6227020800.0;  // 1/13!
  p = p * r + 1.0 / 479001600.0;
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  // low mantissa bits of t hold k + 2^51; (k + 1023) << 52 is 2^k (k >= -1022 here).
  const std::uint64_t e = (double_to_bits(t) + (1023ULL - (1ULL << 51))) << 52;
  const double y = p * bits_to_double(e);
  return x < -708.0 ? 0.0 : y;
}

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define LINDIFF_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define LINDIFF_CLONES
#endif

// Row maximum of l_i = g_i − c·h_i (written to g in place), 8 lanes combined in a fixed order.
LINDIFF_CLONES double logits_max(double* g, const double* h, double c, Index n) {
  double acc[8];
  for (int l = 0; l < 8; ++l) acc[l] = -std::numeric_limits<double>::infinity();
  Index i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) {
      const double v = g[i + l] - c * h[i + l];
      g[i + l] = v;
      acc[l] = v > acc[l] ? v : acc[l];
    }
  double mx = -std::numeric_limits<double>::infinity();
  for (; i < n; ++i) {
    g[i] = g[i] - c * h[i];
    mx = g[i] > mx ? g[i] : mx;
  }
  for (int l = 0; l < 8; ++l) mx = acc[l] > mx ? acc[l] : mx;
  return mx;
}

// out_i = exp(x_i − shift) (x_i − shift <= 0), returns Σ out_i.
LINDIFF_CLONES double exp_shift_sum(const double* x, double shift, double* out, Index n) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  Index i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) {
      const double w = exp_np(x[i + l] - shift);
      out[i + l] = w;
      acc[l] += w;
    }
  double tail = 0.0;
  for (; i < n; ++i) {
    const double w = exp_np(x[i] - shift);
    out[i] = w;
    tail += w;
  }
  return (((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))) + tail;
}

Index n_blocks_for(Index n) { return (n + kSampleBlock - 1) / kSampleBlock; }

// Blocks per batch: from N only (bounded N×rows scratch), 1..kGemmBatch.
Index blocks_per_batch(Index N) {
  return std::max<Index>(1, std::min<Index>(kGemmBatch, kEmpiricalScratch / (N * kSampleBlock)));
}

// The posterior-mean kernel for one training set.
class Posterior {
 public:
  Posterior(const ConstRowRef& X, int workers) : workers_(workers) {
    N_ = X.rows();
    d_ = X.cols();
    Xm_.resize(d_, N_);  // column-major d×N: column i is x_i
    for (Index i = 0; i < N_; ++i) std::copy_n(X.data() + i * X.outerStride(), d_, Xm_.data() + i * d_);
    h_.resize(N_);
    for (Index i = 0; i < N_; ++i) h_(i) = 0.5 * Xm_.col(i).squaredNorm();
  }

  // U: d×rows (column = one state u). Fills Mout (d×rows) with m(u) = Σ w_i x_i.
  void mean(const Matrix& U, double s, double v, Matrix& Mout) {
    const Index rows = U.cols();
    const double a = s / v, c = s * s / v;
    if (blas::available()) {
      blas::gemm(true, false, a, Xm_, U, 0.0, G_, 1);
    } else {
      G_.resize(N_, rows);
      parallel_for(col_tasks(rows), workers_, [&](Index t) {
        const Index c0 = t * kSampleBlock, w = std::min(kSampleBlock, rows - c0);
        G_.middleCols(c0, w).noalias() = a * (Xm_.transpose() * U.middleCols(c0, w));
      });
    }
    invZ_.resize(rows);
    const Index tasks = (rows + kColTask - 1) / kColTask;
    parallel_for(tasks, workers_, [&](Index t) {
      std::vector<Index> sig;
      sig.reserve(kRefine + 1);
      std::vector<double> refined;
      refined.reserve(kRefine);
      const Index c0 = t * kColTask, c1 = std::min(rows, c0 + kColTask);
      for (Index col = c0; col < c1; ++col) {
        double* g = G_.data() + col * N_;
        const double mx = logits_max(g, h_.data(), c, N_);
        // Significant entries (within e^-40 of the maximum), if few: refine from the differences.
        sig.clear();
        const double cut = mx + kSignificant;
        for (Index i = 0; i < N_ && static_cast<Index>(sig.size()) <= kRefine; ++i)
          if (g[i] > cut) sig.push_back(i);
        double Z = exp_shift_sum(g, mx, g, N_);
        if (static_cast<Index>(sig.size()) <= kRefine) {
          const double* u = U.data() + col * d_;
          refined.clear();
          double rmax = -std::numeric_limits<double>::infinity();
          for (Index i : sig) {
            const double* x = Xm_.data() + i * d_;
            double acc = 0.0;
            for (Index j = 0; j < d_; ++j) {
              const double diff = u[j] - s * x[j];
              acc += diff * diff;
            }
            const double l = -acc / (2.0 * v);
            refined.push_back(l);
            rmax = std::max(rmax, l);
          }
          for (size_t r = 0; r < sig.size(); ++r) {
            const double w = std::exp(refined[r] - rmax);
            Z += w - g[sig[r]];
            g[sig[r]] = w;
          }
        }
        invZ_(col) = 1.0 / Z;
      }
    });
    if (blas::available()) {
      blas::gemm(false, false, 1.0, Xm_, G_, 0.0, Mout, 1);
    } else {
      Mout.resize(d_, rows);
      parallel_for(col_tasks(rows), workers_, [&](Index t) {
        const Index c0 = t * kSampleBlock, w = std::min(kSampleBlock, rows - c0);
        Mout.middleCols(c0, w).noalias() = Xm_ * G_.middleCols(c0, w);
      });
    }
    Mout.array().rowwise() *= invZ_.transpose().array();
  }

  Index N() const { return N_; }
  Index d() const { return d_; }

 private:
  static Index col_tasks(Index rows) { return (rows + kSampleBlock - 1) / kSampleBlock; }
  int workers_;
  Index N_ = 0, d_ = 0;
  Matrix Xm_, G_;
  Vector h_, invZ_;
};

void check_training(const ConstRowRef& X) {
  check(X.rows() >= 1, "empirical optimal: the training set is empty");
  check(X.cols() >= 1, "empirical optimal: d must be >= 1");
  check(X.allFinite(), "empirical optimal: the training set contains NaN or inf");
}

}  // namespace

double exp_nonpositive(const double* x, double* out, Index n) { return exp_shift_sum(x, 0.0, out, n); }

void empirical_optimal_predict(const ConstRowRef& X, const ConstRowRef& x, double s, double v,
                               int workers, OutRef eps, OutRef mean) {
  check_training(X);
  const Index n = x.rows(), d = X.cols();
  check(workers >= 1, "empirical optimal: workers must be >= 1");
  check(x.cols() == d, "empirical optimal: x must have the training set's d");
  check(eps.rows() == n && eps.cols() == d && mean.rows() == n && mean.cols() == d,
        "empirical optimal: outputs must be n×d");
  check(std::isfinite(s) && s >= 0 && std::isfinite(v) && v > 0, "empirical optimal: need sqrt(abar) >= 0 and 1 - abar > 0");
  check(x.allFinite(), "empirical optimal: x contains NaN or inf");
  if (n == 0) return;
  Posterior post(X, workers);
  const Index batch = blocks_per_batch(X.rows()) * kSampleBlock;
  Matrix U, Mm;
  const double isv = 1.0 / std::sqrt(v);
  for (Index r0 = 0; r0 < n; r0 += batch) {
    const Index rows = std::min(batch, n - r0);
    U.resize(d, rows);
    for (Index i = 0; i < rows; ++i) std::copy_n(x.data() + (r0 + i) * x.outerStride(), d, U.data() + i * d);
    post.mean(U, s, v, Mm);
    for (Index i = 0; i < rows; ++i)
      for (Index j = 0; j < d; ++j) {
        mean(r0 + i, j) = Mm(j, i);
        eps(r0 + i, j) = (U(j, i) - s * Mm(j, i)) * isv;
      }
  }
}

void sample_empirical_optimal(const ConstRowRef& X, const Vector& sqrt_abar, const Vector& one_minus_abar,
                              const Vector& p, const Vector& q, const ChainSpecSampling& chain,
                              const SampleRun& run, OutRef out) {
  check_training(X);
  const Index T = p.size(), d = X.cols(), n = out.rows();
  check(T >= 1 && q.size() == T && sqrt_abar.size() == T && one_minus_abar.size() == T,
        "sample_empirical_optimal: schedule arrays must have length T >= 1");
  check(p.allFinite() && q.allFinite() && sqrt_abar.allFinite() && one_minus_abar.allFinite() &&
            (one_minus_abar.array() > 0).all() && (sqrt_abar.array() >= 0).all(),
        "sample_empirical_optimal: schedule arrays must be finite, 1 - abar > 0");
  check(chain.sigma.size() == T && chain.sigma.allFinite() && (chain.sigma.array() >= 0).all(),
        "sample_empirical_optimal: sigma must be finite, >= 0, length T");
  check(chain.trajectory == nullptr, "sample_empirical_optimal: trajectories are not supported");
  check(out.cols() == d, "sample_empirical_optimal: out must be n×d");
  check(run.workers >= 1, "sample_empirical_optimal: workers must be >= 1");
  check(n >= 1, "sample_empirical_optimal: n must be >= 1");
  const Index n_blocks = n_blocks_for(n);
  check(run.seeds != nullptr && run.n_seed_words == 4 * n_blocks,
        "sample_empirical_optimal: need 4 seed words per block of " + std::to_string(kSampleBlock) + " samples");
  Posterior post(X, run.workers);
  const Index nb = blocks_per_batch(X.rows());
  Matrix U, Mm;
  for (Index start = 0; start < n_blocks; start += nb) {
    if (run.check) run.check();
    const Index count = std::min(nb, n_blocks - start);
    const Index row_base = start * kSampleBlock;
    const Index rows_here = std::min(n, (start + count) * kSampleBlock) - row_base;
    U.resize(d, rows_here);
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
      double* x = U.data() + (row0 - row_base) * d;
      if (chain.noise) std::copy_n(chain.noise + row0 * d, m * d, x);
      else fill_standard_normal(gens[static_cast<size_t>(i)], x, m * d);
    });
    for (Index t = T; t >= 1; --t) {
      if (run.check && t != T) run.check();
      const Index k = t - 1;
      const double s = sqrt_abar(k), v = one_minus_abar(k);
      const double sig = chain.sigma(k), pk = p(k), qk = q(k), isv = 1.0 / std::sqrt(v);
      const bool noisy = sig != 0.0;
      post.mean(U, s, v, Mm);
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
            double* x = U.data() + (row0 - row_base + r0 + r) * d;
            const double* mm = Mm.data() + (row0 - row_base + r0 + r) * d;
            if (noisy) {
              const double* z = zc + r * d;
              for (Index j = 0; j < d; ++j) x[j] = pk * x[j] + qk * ((x[j] - s * mm[j]) * isv) + sig * z[j];
            } else {
              for (Index j = 0; j < d; ++j) x[j] = pk * x[j] + qk * ((x[j] - s * mm[j]) * isv);
            }
          }
        }
      });
    }
    out.middleRows(row_base, rows_here) = U.transpose();
  }
}

}  // namespace lindiff
