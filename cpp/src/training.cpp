// Minibatch SGD for per-t affine noise predictors (see training.hpp for the algorithm and streams).
//
// Work plan (measured on 2 cores, d = 256, N = 4096, see benchmarks/bench_training.py): timesteps run one
// after the other; within a step, the noise and the noisy inputs are made in parallel over fixed blocks of
// 256 columns (our threads, one xoshiro stream per block), then the two products R += W·X_t and
// G = R·X_tᵀ go to the BLAS (NumPy's OpenBLAS pool, never inside our own threads: no oversubscription).
// Nothing here depends on `workers` except who fills which block, so results are bit-identical for any
// worker count.
#include "lindiff/training.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "lindiff/blas.hpp"
#include "lindiff/parallel.hpp"
#include "lindiff/rng.hpp"

namespace lindiff {
namespace {

inline std::uint64_t mix64(std::uint64_t z) {  // splitmix64 finaliser (a bijection of 64-bit words)
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// The stream of (base seed, a, b): each of the 4 words mixed with a key derived from (a, b).
Xoshiro256pp make_stream(const std::uint64_t* base, std::uint64_t a, std::uint64_t b) {
  const std::uint64_t key = mix64(a * 0x9E3779B97F4A7C15ULL ^ mix64(b + 0xD1B54A32D192ED03ULL));
  std::uint64_t s[4];
  for (int i = 0; i < 4; ++i) s[i] = mix64(base[i] + key + 0x9E3779B97F4A7C15ULL * static_cast<std::uint64_t>(i + 1));
  return Xoshiro256pp(s);
}

// Uniform integer in [0, n), n >= 1 (Lemire's multiply-shift with rejection: exact, no modulo bias).
std::uint64_t bounded(Xoshiro256pp& g, std::uint64_t n) {
  unsigned __int128 m = static_cast<unsigned __int128>(g.next()) * n;
  std::uint64_t low = static_cast<std::uint64_t>(m);
  if (low < n) {
    const std::uint64_t threshold = (0ULL - n) % n;
    while (low < threshold) {
      m = static_cast<unsigned __int128>(g.next()) * n;
      low = static_cast<std::uint64_t>(m);
    }
  }
  return static_cast<std::uint64_t>(m >> 64);
}

constexpr std::uint64_t kPermutationTag = ~0ULL;

void check_spec(const TrainSpec& s, const double* W, const double* b) {
  if (!s.X || !W || !b) throw std::invalid_argument("train_affine_sgd: null data");
  if (s.N < 1) throw std::invalid_argument("the training set is empty (N = 0)");
  if (s.d < 1) throw std::invalid_argument("d must be >= 1");
  if (s.n_t < 1) throw std::invalid_argument("no timesteps to train");
  if (!(s.learning_rate > 0) || !std::isfinite(s.learning_rate))
    throw std::invalid_argument("learning_rate must be a positive finite number");
  if (s.batch < 1 || s.batch > s.N)
    throw std::invalid_argument("batch size must be in 1..N = " + std::to_string(s.N) + ", got " +
                                std::to_string(s.batch));
  if (s.draws < 1) throw std::invalid_argument("noise draws must be >= 1");
  if (s.n_steps < 0 || s.step0 < 0) throw std::invalid_argument("steps must be >= 0");
  if (s.noise && s.batch != s.N) throw std::invalid_argument("explicit noise needs full-batch training");
  if (s.workers < 1) throw std::invalid_argument("workers must be >= 1");
  for (Index k = 0; k < s.n_t; ++k) {
    if (!(s.sqrt_abar[k] > 0 && s.sqrt_abar[k] <= 1 && s.sqrt_om[k] >= 0 && s.sqrt_om[k] < 1 + 1e-12))
      throw std::invalid_argument("schedule values out of range");
    if (!(s.ridge[k] >= 0) || !std::isfinite(s.ridge[k])) throw std::invalid_argument("ridge must be >= 0");
  }
}

}  // namespace

void train_affine_sgd(const TrainSpec& spec, double* W, double* b) {
  check_spec(spec, W, b);
  const Index N = spec.N, d = spec.d, B = spec.batch, R_draws = spec.draws;
  const Index M = B * R_draws;  // columns (noisy samples) per step
  const bool full = (B == N);
  const Index steps_per_epoch = N / B;
  // Columns per GEMM chunk: about 32 MB per buffer, a multiple of the block size; depends on d only.
  const Index chunk_cols = std::max<Index>(kTrainBlock, ((Index{1} << 22) / d) / kTrainBlock * kTrainBlock);
  const Index n_chunks = (M + chunk_cols - 1) / chunk_cols;
  const Index first_w = std::min(M, chunk_cols);
  const Index tail_w = M - (n_chunks - 1) * chunk_cols;

  Eigen::Map<const Matrix> X0(spec.X, d, N);  // column i = training point i
  Matrix Xt(d, first_w), Rs(d, first_w), Xt_tail, Rs_tail;
  if (tail_w != first_w) {
    Xt_tail.resize(d, tail_w);
    Rs_tail.resize(d, tail_w);
  }
  Matrix Wm(d, d), G(d, d);
  Vector bv(d), bsum(d);
  std::vector<Index> order(N);
  std::iota(order.begin(), order.end(), Index{0});
  const double eta = spec.learning_rate;
  const double scale = 2.0 * eta / static_cast<double>(M);

  for (Index k = 0; k < spec.n_t; ++k) {
    const std::uint64_t* base = spec.seeds + 4 * k;
    const double sa = spec.sqrt_abar[k], so = spec.sqrt_om[k];
    const double shrink = 1.0 - 2.0 * eta * spec.ridge[k];
    Wm = Eigen::Map<const RowMatrix>(W + k * d * d, d, d);
    bv = Eigen::Map<const Vector>(b + k * d, d);
    Index epoch = -1;
    for (Index s = 0; s < spec.n_steps; ++s) {
      if (spec.check) spec.check();
      const Index step = spec.step0 + s;
      const Index* batch = order.data();
      if (!full) {
        const Index e = step / steps_per_epoch;
        if (e != epoch) {  // the permutation of epoch e (Fisher–Yates on its own stream)
          std::iota(order.begin(), order.end(), Index{0});
          Xoshiro256pp g = make_stream(base, static_cast<std::uint64_t>(e), kPermutationTag);
          for (Index i = N - 1; i > 0; --i)
            std::swap(order[i], order[static_cast<Index>(bounded(g, static_cast<std::uint64_t>(i + 1)))]);
          epoch = e;
        }
        batch = order.data() + (step % steps_per_epoch) * B;
      }
      bsum.setZero();
      for (Index ch = 0; ch < n_chunks; ++ch) {
        const Index c0 = ch * chunk_cols;
        const bool tail = (ch == n_chunks - 1) && tail_w != first_w;
        Matrix& xt = tail ? Xt_tail : Xt;
        Matrix& rs = tail ? Rs_tail : Rs;
        const Index w = xt.cols();
        const Index n_blocks = (w + kTrainBlock - 1) / kTrainBlock;
        // Noise z into rs, then x_t = √ᾱ x₀ + √(1−ᾱ) z into xt and rs = b − z (W x_t is added by the GEMM).
        parallel_for(n_blocks, spec.workers, [&](Index blk) {
          const Index j0 = blk * kTrainBlock, j1 = std::min(w, j0 + kTrainBlock);
          double* z = rs.data() + j0 * d;
          if (spec.noise) {
            const double* src = spec.noise + ((s * spec.n_t + k) * M + c0 + j0) * d;
            std::copy(src, src + (j1 - j0) * d, z);
          } else {
            const std::uint64_t global_block = static_cast<std::uint64_t>((c0 + j0) / kTrainBlock);
            Xoshiro256pp g = make_stream(base, static_cast<std::uint64_t>(step), global_block);
            fill_standard_normal(g, z, (j1 - j0) * d);
          }
          for (Index j = j0; j < j1; ++j) {
            const Index i = batch[(c0 + j) % B];
            const double* x0 = X0.data() + i * d;
            double* xcol = xt.data() + j * d;
            double* rcol = rs.data() + j * d;
            for (Index q = 0; q < d; ++q) {
              const double zq = rcol[q];
              xcol[q] = sa * x0[q] + so * zq;
              rcol[q] = bv[q] - zq;
            }
          }
        });
        blas::gemm(false, false, 1.0, Wm, xt, 1.0, rs, spec.workers);  // r = W x_t + b − z
        blas::gemm(false, true, 1.0, rs, xt, ch == 0 ? 0.0 : 1.0, G, spec.workers);  // Σ r x_tᵀ
        for (Index j = 0; j < w; ++j) bsum += rs.col(j);
      }
      Wm = shrink * Wm - scale * G;
      bv -= scale * bsum;
    }
    if (!Wm.allFinite() || !bv.allFinite())
      throw std::runtime_error("training diverged at timestep index " + std::to_string(k) +
                               " (W_t or b_t became NaN/inf): lower the learning rate");
    Eigen::Map<RowMatrix>(W + k * d * d, d, d) = Wm;
    Eigen::Map<Vector>(b + k * d, d) = bv;
  }
}

}  // namespace lindiff
