#include "lindiff/neighbours.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "lindiff/blas.hpp"
#include "lindiff/parallel.hpp"

namespace lindiff {
namespace {

void check(bool ok, const std::string& msg) {
  if (!ok) throw std::invalid_argument(msg);
}

inline double sq_diff(const double* a, const double* b, Index d) {
  double s = 0.0;
  for (Index j = 0; j < d; ++j) {
    const double t = a[j] - b[j];
    s += t * t;
  }
  return s;
}

// Insert (v, i) into the ascending list vals/idx of length K whose last entry it beats (v < vals[K-1]).
// Entries with equal values keep their order, so ties stay ordered by arrival (= ascending index).
inline void insert_sorted(double* vals, std::int64_t* idx, Index K, double v, std::int64_t i) {
  Index pos = K - 1;
  while (pos > 0 && vals[pos - 1] > v) {
    vals[pos] = vals[pos - 1];
    idx[pos] = idx[pos - 1];
    --pos;
  }
  vals[pos] = v;
  idx[pos] = i;
}

// Copy rows [r0, r0+m) of a row-major matrix into a column-major d×m matrix (column = row).
void rows_to_columns(const ConstRowRef& A, Index r0, Index m, Matrix& out) {
  const Index d = A.cols();
  out.resize(d, m);
  for (Index i = 0; i < m; ++i) std::copy_n(A.data() + (r0 + i) * A.outerStride(), d, out.data() + i * d);
}

}  // namespace

NeighbourStats nearest_neighbours(const ConstRowRef& Q, const ConstRowRef& R, Index k, int workers,
                                  const std::function<void()>& check_fn, Eigen::Ref<RowMatrix> dist,
                                  Eigen::Ref<IndexRowMatrix> index) {
  const Index n = Q.rows(), M = R.rows(), d = Q.cols();
  check(workers >= 1, "nearest_neighbours: workers must be >= 1");
  check(d >= 1 && R.cols() == d, "nearest_neighbours: queries and reference must have the same d >= 1");
  check(M >= 1, "nearest_neighbours: the reference set is empty");
  check(k >= 1 && k <= M, "nearest_neighbours: need 1 <= k <= number of reference points");
  check(dist.rows() == n && dist.cols() == k && index.rows() == n && index.cols() == k,
        "nearest_neighbours: outputs must be n×k");
  check(Q.allFinite() && R.allFinite(), "nearest_neighbours: inputs contain NaN or inf");
  NeighbourStats stats;
  if (n == 0) return stats;

  std::vector<double> qn(static_cast<size_t>(n)), rn(static_cast<size_t>(M));
  for (Index i = 0; i < n; ++i) qn[static_cast<size_t>(i)] = Q.row(i).squaredNorm();
  for (Index j = 0; j < M; ++j) rn[static_cast<size_t>(j)] = R.row(j).squaredNorm();
  const double rn_max = *std::max_element(rn.begin(), rn.end());
  const Index K = std::min(k + kExtraCandidates, M);
  // Candidate values are ‖r‖² − 2 q·r (the query's own ‖q‖² is common to all of them).
  std::vector<double> cv(static_cast<size_t>(n * K), std::numeric_limits<double>::infinity());
  std::vector<std::int64_t> ci(static_cast<size_t>(n * K), -1);

  // Every query chunk is copied once (column-major d×qm, the memory of its rows) and every reference
  // chunk once: the outer loop runs over reference chunks, the inner one over query chunks.
  const Index n_qchunks = (n + kNeighbourQueryChunk - 1) / kNeighbourQueryChunk;
  std::vector<Matrix> Qchunks(static_cast<size_t>(n_qchunks));
  for (Index c = 0; c < n_qchunks; ++c)
    rows_to_columns(Q, c * kNeighbourQueryChunk, std::min(kNeighbourQueryChunk, n - c * kNeighbourQueryChunk),
                    Qchunks[static_cast<size_t>(c)]);
  // One product buffer per block shape (full or ragged in each direction), so that Eigen never
  // reallocates (and the kernel never page-faults on fresh memory) from one block to the next.
  Matrix Rm, Gs[4];
  for (Index r0 = 0; r0 < M; r0 += kNeighbourRefChunk) {
    const Index rm = std::min(kNeighbourRefChunk, M - r0);
    rows_to_columns(R, r0, rm, Rm);
    for (Index q0 = 0; q0 < n; q0 += kNeighbourQueryChunk) {
      if (check_fn) check_fn();
      const Index qm = std::min(kNeighbourQueryChunk, n - q0);
      const Matrix& Qm = Qchunks[static_cast<size_t>(q0 / kNeighbourQueryChunk)];
      const Index tasks = (qm + kNeighbourTask - 1) / kNeighbourTask;
      Matrix& G = Gs[(rm == kNeighbourRefChunk ? 0 : 2) + (qm == kNeighbourQueryChunk ? 0 : 1)];
      // G (rm×qm, column-major): column i holds query q0+i against every reference row of the chunk.
      if (blas::available()) {
        blas::gemm(true, false, 1.0, Rm, Qm, 0.0, G, 1);
      } else {
        G.resize(rm, qm);
        parallel_for(tasks, workers, [&](Index t) {
          const Index c0 = t * kNeighbourTask, w = std::min(kNeighbourTask, qm - c0);
          G.middleCols(c0, w).noalias() = Rm.transpose() * Qm.middleCols(c0, w);
        });
      }
      parallel_for(tasks, workers, [&](Index t) {
        double a[kNeighbourRefChunk];
        const Index c0 = t * kNeighbourTask, w = std::min(kNeighbourTask, qm - c0);
        const double* rnc = rn.data() + r0;
        for (Index c = c0; c < c0 + w; ++c) {
          const double* g = G.data() + c * rm;
          for (Index j = 0; j < rm; ++j) a[j] = rnc[j] - 2.0 * g[j];
          double* vals = cv.data() + (q0 + c) * K;
          std::int64_t* idx = ci.data() + (q0 + c) * K;
          double thr = vals[K - 1];
          constexpr Index kLane = 16;
          Index j = 0;
          for (; j + kLane <= rm; j += kLane) {
            double mn = a[j];
            for (Index l = 1; l < kLane; ++l) mn = std::min(mn, a[j + l]);
            if (!(mn < thr)) continue;
            for (Index l = 0; l < kLane; ++l)
              if (a[j + l] < thr) {
                insert_sorted(vals, idx, K, a[j + l], r0 + j + l);
                thr = vals[K - 1];
              }
          }
          for (; j < rm; ++j)
            if (a[j] < thr) {
              insert_sorted(vals, idx, K, a[j], r0 + j);
              thr = vals[K - 1];
            }
        }
      });
    }
  }

  // Exact recomputation, certification, and the exact fallback scan where the bound is not met.
  const double eps = (4.0 * static_cast<double>(d) + 16.0) * std::ldexp(1.0, -53);
  const Index tasks = (n + kNeighbourTask - 1) / kNeighbourTask;
  std::vector<Index> fallbacks(static_cast<size_t>(tasks), 0);
  if (check_fn) check_fn();
  parallel_for(tasks, workers, [&](Index t) {
    std::vector<std::pair<double, std::int64_t>> cand(static_cast<size_t>(K));
    std::vector<double> bv(static_cast<size_t>(k));
    std::vector<std::int64_t> bi(static_cast<size_t>(k));
    const Index i0 = t * kNeighbourTask, i1 = std::min(n, i0 + kNeighbourTask);
    for (Index i = i0; i < i1; ++i) {
      const double* q = Q.data() + i * Q.outerStride();
      for (Index c = 0; c < K; ++c) {
        const std::int64_t j = ci[static_cast<size_t>(i * K + c)];
        cand[static_cast<size_t>(c)] = {sq_diff(q, R.data() + j * R.outerStride(), d), j};
      }
      std::sort(cand.begin(), cand.end());
      bool certified = true;
      if (K < M) {
        const double a_last = cv[static_cast<size_t>(i * K + K - 1)];
        const double qq = qn[static_cast<size_t>(i)];
        const double lower = (qq + a_last) - eps * (qq + rn_max) * 1.0000001;
        certified = lower > cand[static_cast<size_t>(k - 1)].first;
      }
      if (certified) {
        for (Index c = 0; c < k; ++c) {
          dist(i, c) = std::sqrt(cand[static_cast<size_t>(c)].first);
          index(i, c) = cand[static_cast<size_t>(c)].second;
        }
        continue;
      }
      ++fallbacks[static_cast<size_t>(t)];
      std::fill(bv.begin(), bv.end(), std::numeric_limits<double>::infinity());
      std::fill(bi.begin(), bi.end(), -1);
      for (Index j = 0; j < M; ++j) {
        const double e = sq_diff(q, R.data() + j * R.outerStride(), d);
        if (e < bv[static_cast<size_t>(k - 1)]) insert_sorted(bv.data(), bi.data(), k, e, j);
      }
      for (Index c = 0; c < k; ++c) {
        dist(i, c) = std::sqrt(bv[static_cast<size_t>(c)]);
        index(i, c) = bi[static_cast<size_t>(c)];
      }
    }
  });
  for (Index f : fallbacks) stats.fallbacks += f;
  return stats;
}

}  // namespace lindiff
