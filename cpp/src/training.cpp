// Minibatch SGD for per-t affine noise predictors (see training.hpp for the algorithm and streams).
//
// Work plan. The gradient needs only second moments of the batch, so instead of forming x_t and the
// residual (two N×d×d GEMMs, 4·N·d² flop per step) we use, with x = a x₀ + s ε (a = √ᾱ, s = √(1−ᾱ)):
//   Σ x xᵀ = r a² Σ x₀x₀ᵀ + a s (P + Pᵀ) + s² Q,   Σ ε xᵀ = a P + s Q,   Σ x = r a Σx₀ + s Σε,
//   P = Σ_p (Σ_draws ε_p) x₀_pᵀ (one GEMM, 2·B·d²),  Q = Σ εεᵀ (one SYRK, B·r·d²),
// Σx₀x₀ᵀ once per call for full batch (a SYRK per step for minibatches), and one d×d·d×d product
// W·Σxxᵀ: 3·N·d² + 2·d³ flop per full-batch step instead of 4·N·d². The same algebra in exact
// arithmetic; in floating point the difference is rounding (the tests compare with the residual form).
// Timesteps run one after the other; the normals are made in parallel over fixed blocks of 256 points
// (our threads, one xoshiro stream per block), the products go to the BLAS (NumPy's OpenBLAS pool, never
// inside our own threads: no oversubscription). Only who fills which block depends on `workers`, so
// results are bit-identical for any worker count.
// Measured alternative (d = 256, N = 4096, one thread, CPU time): Eigen's own GEMM in this portable
// (SSE4.2) build needs 55 ms per timestep against 29 ms with OpenBLAS, so running timesteps in parallel
// with single-threaded Eigen products on 2 cores would only match one OpenBLAS thread; calling OpenBLAS
// from several of our threads would oversubscribe its pool. Hence sequential timesteps + the BLAS pool.
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

// s = Σ_j A[:, j] column by column (contiguous, vectorised; Eigen's rowwise().sum() walks rows with a
// stride on column-major storage, several times slower here).
void column_sum(const Matrix& A, Vector& s) {
  s.setZero(A.rows());
  for (Index j = 0; j < A.cols(); ++j) s += A.col(j);
}

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
  const Index N = spec.N, d = spec.d, B = spec.batch, r = spec.draws;
  const Index M = B * r;  // (point, noise) pairs per step
  const bool full = (B == N);
  const Index steps_per_epoch = N / B;
  // Points per chunk of noise: ~32 MB of normals, whole blocks of kTrainBlock points; depends on (d, r) only.
  const Index chunk_points =
      std::max<Index>(kTrainBlock, ((Index{1} << 22) / (d * r)) / kTrainBlock * kTrainBlock);
  const Index n_chunks = (B + chunk_points - 1) / chunk_points;

  // X0 (column i = training point i) as an owning matrix for the BLAS wrapper.
  const Matrix X0 = Eigen::Map<const Matrix>(spec.X, d, N);
  Matrix Xb = full ? Matrix() : Matrix(d, B);  // the batch's points (minibatch only)
  const Matrix& Xuse = full ? X0 : Xb;
  // One chunk of normals, column (point, draw) point-major. With one draw the normals go straight into
  // Esum (no copy).
  Matrix Z(d, r == 1 ? 0 : std::min(B, chunk_points) * r);
  Matrix Esum(d, B);                           // Σ_draws ε per batch point
  Matrix Sxx0(d, d), P(d, d), Q(d, d), Sxx(d, d), WS(d, d), Wm(d, d);
  Vector sx0(d), se(d), sx(d), bv(d), gb(d);
  if (full) {  // Σ x₀x₀ᵀ and Σ x₀ of the whole set, once
    blas::syrk_ata(X0.data(), N, d, d, 1.0, 0.0, Sxx0, spec.workers);
    blas::symmetrize_lower(Sxx0);
    column_sum(X0, sx0);
  }
  std::vector<Index> order(N);
  std::iota(order.begin(), order.end(), Index{0});
  const double eta = spec.learning_rate;
  const double scale = 2.0 * eta / static_cast<double>(M);
  const double rd = static_cast<double>(r), Md = static_cast<double>(M);

  for (Index k = 0; k < spec.n_t; ++k) {
    const std::uint64_t* base = spec.seeds + 4 * k;
    const double a = spec.sqrt_abar[k], so = spec.sqrt_om[k];
    const double shrink = 1.0 - 2.0 * eta * spec.ridge[k];
    Wm = Eigen::Map<const RowMatrix>(W + k * d * d, d, d);
    bv = Eigen::Map<const Vector>(b + k * d, d);
    Index epoch = -1;
    for (Index s = 0; s < spec.n_steps; ++s) {
      if (spec.check) spec.check();
      const Index step = spec.step0 + s;
      if (!full) {
        const Index e = step / steps_per_epoch;
        if (e != epoch) {  // the permutation of epoch e (Fisher–Yates on its own stream)
          std::iota(order.begin(), order.end(), Index{0});
          Xoshiro256pp g = make_stream(base, static_cast<std::uint64_t>(e), kPermutationTag);
          for (Index i = N - 1; i > 0; --i)
            std::swap(order[i], order[static_cast<Index>(bounded(g, static_cast<std::uint64_t>(i + 1)))]);
          epoch = e;
        }
        const Index* batch = order.data() + (step % steps_per_epoch) * B;
        for (Index j = 0; j < B; ++j) Xb.col(j) = X0.col(batch[j]);
        blas::syrk_ata(Xb.data(), B, d, d, 1.0, 0.0, Sxx0, spec.workers);
        blas::symmetrize_lower(Sxx0);
        column_sum(Xb, sx0);
      }
      // Noise: Q = Σ εεᵀ (SYRK per chunk) and Esum[:, p] = Σ_draws ε for each batch point p.
      for (Index ch = 0; ch < n_chunks; ++ch) {
        const Index p0 = ch * chunk_points, p1 = std::min(B, p0 + chunk_points);
        const Index n_blocks = (p1 - p0 + kTrainBlock - 1) / kTrainBlock;
        parallel_for(n_blocks, spec.workers, [&](Index blk) {
          const Index q0 = p0 + blk * kTrainBlock, q1 = std::min(p1, q0 + kTrainBlock);
          double* z = (r == 1 ? Esum.data() + p0 * d : Z.data()) + (q0 - p0) * r * d;
          const Index count = (q1 - q0) * r * d;
          if (spec.noise) {
            const double* src = spec.noise + ((s * spec.n_t + k) * M + q0 * r) * d;
            std::copy(src, src + count, z);
          } else {
            Xoshiro256pp g = make_stream(base, static_cast<std::uint64_t>(step),
                                         static_cast<std::uint64_t>(q0 / kTrainBlock));
            fill_standard_normal(g, z, count);
          }
          if (r == 1) return;
          for (Index p = q0; p < q1; ++p) {
            const double* zp = z + (p - q0) * r * d;
            double* out = Esum.data() + p * d;
            std::copy(zp, zp + d, out);
            for (Index j = 1; j < r; ++j)
              for (Index i = 0; i < d; ++i) out[i] += zp[j * d + i];
          }
        });
        blas::syrk_ata(r == 1 ? Esum.data() + p0 * d : Z.data(), (p1 - p0) * r, d, d, 1.0, ch == 0 ? 0.0 : 1.0, Q,
                       spec.workers);
      }
      blas::symmetrize_lower(Q);
      blas::gemm(false, true, 1.0, Esum, Xuse, 0.0, P, spec.workers);  // P = Σ_p esum_p x₀_pᵀ
      column_sum(Esum, se);
      // x = a x₀ + s ε:  Σxxᵀ = r a² Σx₀x₀ᵀ + a s (P + Pᵀ) + s² Q,  Σεxᵀ = a P + s Q,  Σx = r a Σx₀ + s Σε.
      Sxx = (rd * a * a) * Sxx0 + (a * so) * (P + P.transpose()) + (so * so) * Q;
      sx = (rd * a) * sx0 + so * se;
      blas::gemm(false, false, 1.0, Wm, Sxx, 0.0, WS, spec.workers);
      // Σ (Wx + b − ε) xᵀ = W Σxxᵀ + b Σxᵀ − Σεxᵀ;  Σ (Wx + b − ε) = W Σx + M b − Σε.
      gb = Wm * sx + Md * bv - se;
      Wm = shrink * Wm - scale * (WS + bv * sx.transpose() - a * P - so * Q);
      bv -= scale * gb;
    }
    if (!Wm.allFinite() || !bv.allFinite())
      throw std::runtime_error("training diverged at timestep index " + std::to_string(k) +
                               " (W_t or b_t became NaN/inf): lower the learning rate");
    Eigen::Map<RowMatrix>(W + k * d * d, d, d) = Wm;
    Eigen::Map<Vector>(b + k * d, d) = bv;
  }
}

}  // namespace lindiff
