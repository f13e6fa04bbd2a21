#include "lindiff/empirical_optimal.hpp"
#include "lindiff/fast_exp.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "lindiff/parallel.hpp"
#include "lindiff/rng.hpp"

namespace lindiff {
namespace {

void check(bool ok, const std::string& msg) {
  if (!ok) throw std::invalid_argument(msg);
}

constexpr double kSignificant = -40.0;  // weights above e^-40 of the largest are "significant"

#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12 && defined(__x86_64__) && defined(__linux__)
#define LINDIFF_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define LINDIFF_CLONES
#endif

// GCC vector extensions: 8 doubles per value (one AVX-512 register, two AVX2 or four SSE ones in
// the other clones). Written this way the accumulators stay in registers in every clone.
typedef double v8d __attribute__((vector_size(64), aligned(8)));

inline v8d load8(const double* p) {
  v8d v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store8(double* p, const v8d& v) { std::memcpy(p, &v, sizeof v); }

// Lanes combined in a fixed order.
inline double lane_max(const v8d& v) {
  const double m01 = v[0] > v[1] ? v[0] : v[1], m23 = v[2] > v[3] ? v[2] : v[3];
  const double m45 = v[4] > v[5] ? v[4] : v[5], m67 = v[6] > v[7] ? v[6] : v[7];
  const double a = m01 > m23 ? m01 : m23, b = m45 > m67 ? m45 : m67;
  return a > b ? a : b;
}

// Logits in place, g_i ← a·g_i − c·h_i (i < n); returns their maximum.
LINDIFF_CLONES double logits_max(double* g, const double* h, double a, double c, Index n) {
  v8d acc = v8d{} - std::numeric_limits<double>::infinity();
  Index i = 0;
#pragma GCC unroll 2
  for (; i + 8 <= n; i += 8) {
    const v8d v = a * load8(g + i) - c * load8(h + i);
    store8(g + i, v);
    acc = v > acc ? v : acc;
  }
  double mx = lane_max(acc);
  for (; i < n; ++i) {
    g[i] = a * g[i] - c * h[i];
    mx = g[i] > mx ? g[i] : mx;
  }
  return mx;
}

// Number of g_i > cut (i < n).
LINDIFF_CLONES Index count_above(const double* g, double cut, Index n) {
  typedef long long v8l __attribute__((vector_size(64)));
  v8l acc = v8l{};
  Index i = 0;
  for (; i + 8 <= n; i += 8) acc -= (load8(g + i) > cut);  // true lanes are −1
  Index k = 0;
  for (int l = 0; l < 8; ++l) k += acc[l];
  for (; i < n; ++i) k += g[i] > cut;
  return k;
}

// Σ_j (u_j − s·x_j)² over j < d, 8 partial sums combined in a fixed order.
LINDIFF_CLONES double dist2(const double* u, const double* x, double s, Index d) {
  v8d acc = v8d{};
  Index j = 0;
  for (; j + 8 <= d; j += 8) {
    const v8d diff = load8(u + j) - s * load8(x + j);
    acc += diff * diff;
  }
  double tail = 0.0;
  for (; j < d; ++j) tail += (u[j] - s * x[j]) * (u[j] - s * x[j]);
  return (((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))) + tail;
}

// out = scale · Σ_q w_q x_{idx_q}, the rows x_i at X + i·ldx (d coordinates each).
LINDIFF_CLONES void weighted_rows(const double* X, Index ldx, const Index* idx, const double* w, Index k,
                                  double scale, Index d, double* out) {
  std::fill_n(out, d, 0.0);
  for (Index q = 0; q < k; ++q) {
    const double* x = X + idx[q] * ldx;
    const double wq = w[q];
    for (Index j = 0; j < d; ++j) out[j] += wq * x[j];
  }
  for (Index j = 0; j < d; ++j) out[j] *= scale;
}

// max over the g_i <= thr (i < n); −inf when there are none.
LINDIFF_CLONES double max_at_most(const double* g, double thr, Index n) {
  const double ninf = -std::numeric_limits<double>::infinity();
  v8d acc = v8d{} + ninf;
  Index i = 0;
  for (; i + 8 <= n; i += 8) {
    const v8d v = load8(g + i);
    const v8d w = v <= thr ? v : acc;
    acc = w > acc ? w : acc;
  }
  double mx = lane_max(acc);
  for (; i < n; ++i)
    if (g[i] <= thr && g[i] > mx) mx = g[i];
  return mx;
}

// out_i = exp(x_i − shift) (x_i − shift <= 0), returns Σ out_i.
LINDIFF_CLONES double exp_shift_sum(const double* x, double shift, double* out, Index n) {
  v8d acc = v8d{};
  Index i = 0;
  for (; i + 8 <= n; i += 8) {
    const v8d w = exp_nonpositive(load8(x + i) - shift);
    store8(out + i, w);
    acc += w;
  }
  double tail = 0.0;
  for (; i < n; ++i) {
    const double w = exp_nonpositive(x[i] - shift);
    out[i] = w;
    tail += w;
  }
  return (((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))) + tail;
}

Index n_blocks_for(Index n) { return (n + kSampleBlock - 1) / kSampleBlock; }

// Fused posterior-mean kernel for one training set, run per block of kRows states inside a worker
// thread: logits by a register-tiled product (kRows states × 16 training points per tile, the
// training set stored transposed and zero-padded to a multiple of 16), the softmax of each row
// in cache, and the weighted mean by a second tiled product (kRows × 16 coordinates per tile, the
// training set row-major, zero-padded to a multiple of 16 columns). Each output element is a
// sequential sum in a fixed order, so results do not depend on how blocks are shared out.
constexpr Index kRows = 8;
constexpr Index kTile = 16;
constexpr Index kGroupRows = 32;  // rows per posterior task in the sampler
constexpr Index kNoiseRows = 32;  // rows of noise drawn per call in the sampler update

// One register tile of a product: out[r, c0 .. c0+16) = Σ_k A[r, k] B[k, c0 .. c0+16) for the kRows
// rows of A (row stride lda) against B (K rows, row stride ldb). Used for both products of a step:
// the logits (A = samples, B = the transposed training set, K = d) and the weighted means
// (A = weights, B = the training set, K = N).
LINDIFF_CLONES void tile_product(const double* A, Index lda, const double* B, Index ldb, Index K, Index c0,
                                 double* out, Index ldo) {
  v8d a0[kRows], a1[kRows];
#pragma GCC unroll 8
  for (Index r = 0; r < kRows; ++r) {
    a0[r] = v8d{};
    a1[r] = v8d{};
  }
  for (Index k = 0; k < K; ++k) {
    const v8d x0 = load8(B + k * ldb + c0), x1 = load8(B + k * ldb + c0 + 8);
#pragma GCC unroll 8
    for (Index r = 0; r < kRows; ++r) {
      const double a = A[r * lda + k];
      a0[r] += a * x0;
      a1[r] += a * x1;
    }
  }
#pragma GCC unroll 8
  for (Index r = 0; r < kRows; ++r) {
    store8(out + r * ldo + c0, a0[r]);
    store8(out + r * ldo + c0 + 8, a1[r]);
  }
}

// The sampler's memory of each row between steps, for skipping the logits product where the
// softmax is peaked. When a full evaluation of row u_a (at s_a = √ᾱ) finds at most kRefine
// significant weights, the row keeps u_a, s_a, its kRefine nearest training points (the
// candidates) and R, the distance ‖u_a − s_a x_i‖ of the nearest other point. At a later step
// (u, s), the triangle inequality bounds every other point's distance from below:
//     ‖u − s x_i‖ >= R − ‖u − u_a‖ − |s − s_a|·max_i ‖x_i‖ =: B.
// With d₁ the nearest candidate's distance, if B² − d₁² >= 2v·40 every non-candidate's weight is
// below e⁻⁴⁰ of the largest (the same cut as the refinement below), so the row's posterior mean
// comes from its candidates alone, from exact differences: kRefine·d work instead of N·d twice.
// Otherwise the row is evaluated in full again (and re-anchored if still peaked). Each row's path
// depends only on its own history, so results do not depend on `workers`.
struct Anchors {
  std::vector<double> u, s, R;  // rows × d; per row: s_a and R (+inf when N <= kRefine)
  std::vector<Index> cand;      // rows × kRefine
  std::vector<int> n_cand;      // 0: no anchor
  void reset(Index rows, Index dim) {
    u.assign(static_cast<size_t>(rows * dim), 0.0);
    s.assign(static_cast<size_t>(rows), 0.0);
    R.assign(static_cast<size_t>(rows), 0.0);
    cand.assign(static_cast<size_t>(rows * kRefine), 0);
    n_cand.assign(static_cast<size_t>(rows), 0);
  }
};

class Posterior {
 public:
  explicit Posterior(const ConstRowRef& X) {
    N_ = X.rows();
    d_ = X.cols();
    Np_ = (N_ + kTile - 1) / kTile * kTile;
    dp_ = (d_ + kTile - 1) / kTile * kTile;
    Xt_.assign(static_cast<size_t>(d_ * Np_), 0.0);
    Xp_.assign(static_cast<size_t>(N_ * dp_), 0.0);
    h_.assign(static_cast<size_t>(N_), 0.0);
    for (Index i = 0; i < N_; ++i) {
      const double* x = X.data() + i * X.outerStride();
      double s = 0.0;
      for (Index j = 0; j < d_; ++j) {
        Xt_[static_cast<size_t>(j * Np_ + i)] = x[j];
        Xp_[static_cast<size_t>(i * dp_ + j)] = x[j];
        s += x[j] * x[j];
      }
      h_[static_cast<size_t>(i)] = 0.5 * s;
      xmax_ = std::max(xmax_, std::sqrt(s));
    }
  }

  // Scratch for one thread.
  struct Scratch {
    std::vector<double> u, L, m, dist;
    std::vector<Index> full;
    std::vector<std::vector<Index>> sig;      // per row: significant training points
    std::vector<std::vector<double>> refined;  // per row: their weights
  };
  Scratch scratch() const {
    Scratch s;
    s.u.assign(static_cast<size_t>(kRows * d_), 0.0);
    s.L.assign(static_cast<size_t>(kRows * Np_), 0.0);
    s.m.assign(static_cast<size_t>(kRows * dp_), 0.0);
    s.dist.assign(static_cast<size_t>(kRefine), 0.0);
    s.full.reserve(static_cast<size_t>(kGroupRows));
    s.sig.assign(kRows, {});
    s.refined.assign(kRows, {});
    for (auto& v : s.sig) v.reserve(kRefine + 1);
    for (auto& v : s.refined) v.reserve(kRefine + 1);
    return s;
  }

  // Posterior means of `rows` rows of U (row stride ldu) into mean (stride ldo). With anchors (the
  // sampler), row r of U is anchor row a0 + r.
  void means(const double* U, Index ldu, Index rows, double s, double v, Scratch& sc, double* mean, Index ldo,
             Anchors* an, Index a0) const {
    sc.full.clear();
    for (Index r = 0; r < rows; ++r)
      if (!(an && from_anchor(U + r * ldu, s, v, *an, a0 + r, sc, mean + r * ldo))) sc.full.push_back(r);
    for (size_t f = 0; f < sc.full.size(); f += kRows)
      full_rows(U, ldu, sc.full.data() + f, std::min<Index>(kRows, static_cast<Index>(sc.full.size() - f)), s, v,
                sc, mean, ldo, an, a0);
  }

  Index N() const { return N_; }
  Index d() const { return d_; }

 private:
  // The anchored shortcut (see Anchors); false when the bound does not settle the row.
  bool from_anchor(const double* u, double s, double v, Anchors& an, Index row, Scratch& sc, double* out) const {
    const int k = an.n_cand[static_cast<size_t>(row)];
    if (k == 0) return false;
    const double B = an.R[static_cast<size_t>(row)] - std::sqrt(dist2(u, an.u.data() + row * d_, 1.0, d_)) -
                     std::abs(s - an.s[static_cast<size_t>(row)]) * xmax_;
    if (!(B > 0.0)) return false;
    const Index* cand = an.cand.data() + row * kRefine;
    double* D = sc.dist.data();
    double dmin = std::numeric_limits<double>::infinity();
    for (int q = 0; q < k; ++q) {
      D[q] = dist2(u, Xp_.data() + cand[q] * dp_, s, d_);
      dmin = std::min(dmin, D[q]);
    }
    if (!(B * B - dmin >= 2.0 * v * -kSignificant)) return false;
    double Z = 0.0;
    for (int q = 0; q < k; ++q) {
      D[q] = std::exp(-(D[q] - dmin) / (2.0 * v));
      Z += D[q];
    }
    weighted_rows(Xp_.data(), dp_, cand, D, k, 1.0 / Z, d_, out);
    return true;
  }

  // Anchor a peaked row at u. The candidates are the points whose logit g_i is above a threshold τ
  // (at most kRefine of them: τ is the lowest of max − 40 − {40, 20, 10, 0} that allows it, a margin
  // that keeps the anchor valid for more steps); R comes from the largest logit at or below τ,
  // R² = ‖u‖² − 2v·g.
  void set_anchor(const double* u, const double* g, double cut, double s, double v, Anchors& an, Index row) const {
    const size_t r = static_cast<size_t>(row);
    Index* cand = an.cand.data() + row * kRefine;
    std::copy_n(u, d_, an.u.data() + row * d_);
    an.s[r] = s;
    double tau = cut;
    for (double extra : {40.0, 20.0, 10.0}) {
      if (count_above(g, cut - extra, N_) <= kRefine) {
        tau = cut - extra;
        break;
      }
    }
    int k = 0;
    for (Index i = 0; i < N_; ++i)
      if (g[i] > tau) cand[k++] = i;
    an.n_cand[r] = k;
    const double gx = max_at_most(g, tau, N_);
    if (gx == -std::numeric_limits<double>::infinity()) {  // every point is a candidate
      an.R[r] = std::numeric_limits<double>::infinity();
      return;
    }
    const double uu = dist2(u, u, 0.0, d_);
    const double R2 = uu - 2.0 * v * gx;
    // Slack far above the rounding of the expanded logits, so that R stays a lower bound.
    const double R = std::sqrt(std::max(R2, 0.0)) - 1e-9 * (1.0 + std::sqrt(uu));
    an.R[r] = R;
    if (!(R > 0.0)) an.n_cand[r] = 0;
  }

  // Full evaluation of m <= kRows rows idx[0..m) of U.
  void full_rows(const double* U, Index ldu, const Index* idx, Index m, double s, double v, Scratch& sc, double* mean,
                 Index ldo, Anchors* an, Index a0) const {
    double* u = sc.u.data();
    for (Index r = 0; r < kRows; ++r)
      for (Index j = 0; j < d_; ++j) u[r * d_ + j] = r < m ? U[idx[r] * ldu + j] : 0.0;
    double* L = sc.L.data();
    for (Index i0 = 0; i0 < Np_; i0 += kTile) tile_product(u, d_, Xt_.data(), Np_, d_, i0, L, Np_);
    const double a = s / v, c = s * s / v;
    double invZ[kRows];
    bool peaked[kRows];
    bool all_peaked = true;
    for (Index r = 0; r < m; ++r) {
      double* g = L + r * Np_;
      const double mx = logits_max(g, h_.data(), a, c, N_);
      const double cut = mx + kSignificant;
      peaked[r] = count_above(g, cut, N_) <= kRefine;
      if (!peaked[r]) {
        all_peaked = false;
        invZ[r] = 1.0 / exp_shift_sum(g, mx, g, N_);
        if (an) an->n_cand[static_cast<size_t>(a0 + idx[r])] = 0;
        continue;
      }
      // Peaked: refine the significant logits from the differences; the weights of all other
      // points (below e^-40 of the largest, N·e^-40 ≈ 4e-18·N of the total) are dropped.
      const double* ur = u + r * d_;
      auto& sig = sc.sig[static_cast<size_t>(r)];
      sig.clear();
      for (Index i = 0; i < N_; ++i)
        if (g[i] > cut) sig.push_back(i);
      auto& w = sc.refined[static_cast<size_t>(r)];
      w.clear();
      double rmax = -std::numeric_limits<double>::infinity();
      for (Index i : sig) {
        const double l = -dist2(ur, Xp_.data() + i * dp_, s, d_) / (2.0 * v);
        w.push_back(l);
        rmax = std::max(rmax, l);
      }
      double Z = 0.0;
      for (double& l : w) {
        l = std::exp(l - rmax);
        Z += l;
      }
      invZ[r] = 1.0 / Z;
      if (an) set_anchor(ur, g, cut, s, v, *an, a0 + idx[r]);
    }
    double* mo = sc.m.data();
    if (!all_peaked) {
      for (Index r = 0; r < kRows; ++r)
        if (r >= m || peaked[r]) std::fill_n(L + r * Np_, N_, 0.0);
      for (Index j0 = 0; j0 < dp_; j0 += kTile) tile_product(L, Np_, Xp_.data(), dp_, N_, j0, mo, dp_);
    }
    for (Index r = 0; r < m; ++r) {
      double* out_r = mean + idx[r] * ldo;
      if (!peaked[r]) {
        for (Index j = 0; j < d_; ++j) out_r[j] = mo[r * dp_ + j] * invZ[r];
        continue;
      }
      const auto& sig = sc.sig[static_cast<size_t>(r)];
      weighted_rows(Xp_.data(), dp_, sig.data(), sc.refined[static_cast<size_t>(r)].data(),
                    static_cast<Index>(sig.size()), invZ[r], d_, out_r);
    }
  }

  Index N_ = 0, d_ = 0, Np_ = 0, dp_ = 0;
  double xmax_ = 0.0;
  std::vector<double> Xt_, Xp_, h_;
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
  const Posterior post(X);
  const double isv = 1.0 / std::sqrt(v);
  const Index tasks = (n + kSampleBlock - 1) / kSampleBlock;
  parallel_for(tasks, workers, [&](Index t) {
    auto sc = post.scratch();
    const Index r0 = t * kSampleBlock, r1 = std::min(n, r0 + kSampleBlock);
    for (Index r = r0; r < r1; r += kGroupRows) {
      const Index m = std::min(kGroupRows, r1 - r);
      post.means(x.data() + r * x.outerStride(), x.outerStride(), m, s, v, sc, mean.data() + r * mean.outerStride(),
                 mean.outerStride(), nullptr, 0);
      for (Index i = r; i < r + m; ++i)
        for (Index j = 0; j < d; ++j) eps(i, j) = (x(i, j) - s * mean(i, j)) * isv;
    }
  });
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
  check(out.cols() == d && out.outerStride() == d, "sample_empirical_optimal: out must be a contiguous n×d array");
  check(run.workers >= 1, "sample_empirical_optimal: workers must be >= 1");
  check(n >= 1, "sample_empirical_optimal: n must be >= 1");
  const Index n_blocks = n_blocks_for(n);
  check(run.seeds != nullptr && run.n_seed_words == 4 * n_blocks,
        "sample_empirical_optimal: need 4 seed words per block of " + std::to_string(kSampleBlock) + " samples");
  const Posterior post(X);
  // Step-synchronous over all blocks (a batch of workers × kBlocksPerWorker blocks at a time), so
  // that Ctrl-C is seen between steps; each block draws from its own stream.
  const Index batch = static_cast<Index>(run.workers) * kBlocksPerWorker;
  for (Index start = 0; start < n_blocks; start += batch) {
    const Index count = std::min(batch, n_blocks - start);
    std::vector<NormalStream> gens;  // one stream per block (rng.hpp)
    gens.reserve(static_cast<size_t>(count));
    for (Index i = 0; i < count; ++i) gens.emplace_back(run.seeds + 4 * (start + i));
    auto block_rows = [&](Index i, Index& row0, Index& m) {
      row0 = (start + i) * kSampleBlock;
      m = std::min(kSampleBlock, n - row0);
    };
    const Index row_base = start * kSampleBlock;
    const Index rows_here = std::min(n, (start + count) * kSampleBlock) - row_base;
    RowMatrix means(rows_here, d);
    // Posterior means in parallel over groups of kGroupRows rows of the whole batch (balanced
    // whatever the block sizes); noise and updates in parallel over blocks (one stream each).
    const Index groups = (rows_here + kGroupRows - 1) / kGroupRows;
    std::vector<Posterior::Scratch> scratch(static_cast<size_t>(groups));  // reused by every step
    Anchors anchors;
    anchors.reset(rows_here, d);
    // Small steps run on this thread (workers_for; flops per step: two products of 2·d per row and
    // training point, and the softmax). Measured before: N = 10, d = 4, n = 512 ran 1.9x slower on
    // 2 workers than on 1; N = 50, d = 8, n = 1000 broke even.
    const int workers = workers_for(static_cast<double>(rows_here) * post.N() * (4.0 * d + 16.0), run.workers);
    if (run.tick) run.tick(0);
    parallel_for(count, workers, [&](Index i) {
      Index row0, m;
      block_rows(i, row0, m);
      double* x = out.data() + row0 * d;
      if (chain.noise) std::copy_n(chain.noise + row0 * d, m * d, x);
      else gens[static_cast<size_t>(i)].fill(x, m * d);
    });
    for (Index t = T; t >= 1; --t) {
      const Index k = t - 1;
      const double s = sqrt_abar(k), v = one_minus_abar(k);
      const double sig = chain.sigma(k), pk = p(k), qk = q(k), isv = 1.0 / std::sqrt(v);
      const bool noisy = sig != 0.0;
      parallel_for(groups, workers, [&](Index gi) {
        auto& sc = scratch[static_cast<size_t>(gi)];
        if (sc.L.empty()) sc = post.scratch();
        const Index g0 = gi * kGroupRows, g1 = std::min(rows_here, g0 + kGroupRows);
        post.means(out.data() + (row_base + g0) * d, d, g1 - g0, s, v, sc, means.data() + g0 * d, d, &anchors, g0);
      });
      parallel_for(count, workers, [&](Index i) {
        Index row0, m;
        block_rows(i, row0, m);
        double* xb = out.data() + row0 * d;
        const double* Mb = means.data() + (row0 - row_base) * d;
        RowMatrix Z(noisy && !chain.noise ? std::min(m, kNoiseRows) : 0, d);
        for (Index r0 = 0; r0 < m; r0 += kNoiseRows) {
          const Index rows = std::min(kNoiseRows, m - r0);
          const double* zc = nullptr;
          if (noisy) {
            if (chain.noise) {
              zc = chain.noise + ((T - t + 1) * n + row0 + r0) * d;
            } else {
              gens[static_cast<size_t>(i)].fill(Z.data(), rows * d);
              zc = Z.data();
            }
          }
          for (Index r = 0; r < rows; ++r) {
            double* x = xb + (r0 + r) * d;
            const double* mm = Mb + (r0 + r) * d;
            if (noisy) {
              const double* z = zc + r * d;
              for (Index j = 0; j < d; ++j) x[j] = pk * x[j] + qk * ((x[j] - s * mm[j]) * isv) + sig * z[j];
            } else {
              for (Index j = 0; j < d; ++j) x[j] = pk * x[j] + qk * ((x[j] - s * mm[j]) * isv);
            }
          }
        }
      });
      if (run.tick) run.tick(count);  // Ctrl-C and progress: count block-steps done
    }
  }
}

}  // namespace lindiff
