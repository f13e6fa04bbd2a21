#include "lindiff/sampling.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "lindiff/blas.hpp"
#include "lindiff/parallel.hpp"

// The SIMD helpers pass GCC vector types between always_inline functions only; the ABI note about
// passing wide vectors without AVX enabled does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

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

// Blocks in batches of workers × kBlocksPerWorker; `run.tick` between batches, on this thread, with
// the block-steps done (units_per_block per block).
template <class F>
void run_blocks(Index n, const SampleRun& run, Index units_per_block, F&& task) {
  const Index n_blocks = n_blocks_for(n);
  const Index batch = static_cast<Index>(run.workers) * kBlocksPerWorker;
  for (Index start = 0; start < n_blocks; start += batch) {
    if (run.tick) run.tick(0);
    const Index count = std::min(batch, n_blocks - start);
    parallel_for(count, run.workers, [&](Index i) {
      const Index blk = start + i;
      const Index row0 = blk * kSampleBlock;
      const Index m = std::min(kSampleBlock, n - row0);
      NormalStream g(run.seeds + 4 * blk);
      task(row0, m, g);
    });
    if (run.tick) run.tick(count * units_per_block);
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

// ============================================================================ SIMD kernels
// The generator (rng.hpp) and the fused noise + update loops, written once on GCC vector types of
// W doubles and instantiated for W = 8 (AVX-512), 4 (AVX2) and 2 (SSE, the x86-64-v2 baseline).
// The eight xoshiro lanes are K = 8/W native vectors. Only lane-wise +, −, ×, ÷, √ and bit
// operations are used, without FMA contraction (sampling.cpp is compiled with -ffp-contract=off),
// so every instantiation rounds identically.
#define LINDIFF_AI __attribute__((always_inline)) inline

template <int W>
struct Simd {
  typedef double D __attribute__((vector_size(8 * W)));
  typedef std::uint64_t U __attribute__((vector_size(8 * W)));
  static constexpr int K = NormalStream::kLanes / W;
};

template <class D>
LINDIFF_AI D splat(double x) {
  D r = {};
  for (unsigned i = 0; i < sizeof(D) / 8; ++i) r[i] = x;
  return r;
}
template <class U>
LINDIFF_AI U splatu(std::uint64_t x) {
  U r = {};
  for (unsigned i = 0; i < sizeof(U) / 8; ++i) r[i] = x;
  return r;
}
template <class U>
LINDIFF_AI U rotl(U x, int k) {
  return (x << k) | (x >> (64 - k));
}
template <class D>
LINDIFF_AI D vsqrt(D x) {
  D r = x;
  for (unsigned i = 0; i < sizeof(D) / 8; ++i) r[i] = __builtin_sqrt(x[i]);
  return r;
}

// ln u for normal, positive, finite u (here u ∈ [2⁻⁵², 1]): u = 2^e·m with m ∈ [√½, √2),
// ln m = 2 atanh(s) = 2(s + s³/3 + … + s¹⁹/19 + …), s = (m−1)/(m+1), |s| ≤ 0.1716; the series is cut
// after s¹⁹, a relative truncation error below s²⁰/21 < 2.3e-17 (0.1 ulp); e·ln 2 in two parts
// (ln2_hi·e is exact).
template <class D, class U>
LINDIFF_AI D vlog(D u) {
  const U b = (U)u;
  const U mant = b & splatu<U>(0x000FFFFFFFFFFFFFULL);
  const U big = (U)(mant > splatu<U>(0x6A09E667F3BCCULL)) & splatu<U>(1);  // m > √2: use m/2
  const D m = (D)(mant | ((splatu<U>(1023) - big) << 52));
  // The exponent as a double without an int64 → double conversion (none before AVX-512).
  const D e = (D)(splatu<U>(0x4330000000000000ULL) | ((b >> 52) + big)) - splat<D>(4503599627370496.0 + 1023.0);
  const D s = (m - 1.0) / (m + 1.0);
  const D s2 = s * s;
  D p = splat<D>(1.0 / 19);
  p = p * s2 + 1.0 / 17;
  p = p * s2 + 1.0 / 15;
  p = p * s2 + 1.0 / 13;
  p = p * s2 + 1.0 / 11;
  p = p * s2 + 1.0 / 9;
  p = p * s2 + 1.0 / 7;
  p = p * s2 + 1.0 / 5;
  p = p * s2 + 1.0 / 3;
  const D lnm = 2.0 * s + 2.0 * s * s2 * p;
  constexpr double ln2_hi = 6.93147180369123816490e-01;
  constexpr double ln2_lo = 1.90821492927058770002e-10;
  return e * ln2_hi + (lnm + e * ln2_lo);
}

// cos(2πu) and sin(2πu) for u ∈ [0, 1): quadrant k = rint(4u), φ = (4u − k)·π/2 ∈ [−π/4, π/4],
// Taylor polynomials to φ¹⁵ / φ¹⁶, then a rotation by k quarter turns through sign and swap masks.
template <class D, class U>
LINDIFF_AI void vsincos_2pi(D u, D& c_out, D& s_out) {
  const D q = 4.0 * u;
  const D shifted = q + 6755399441055744.0;  // 1.5·2⁵²: rint(q) lands in the low mantissa bits
  const D k = shifted - 6755399441055744.0;
  const U kk = (U)shifted & splatu<U>(3);  // k mod 4
  const D x = (q - k) * 1.5707963267948966;
  const D x2 = x * x;
  D sp = splat<D>(-1.0 / 1307674368000.0);  // −1/15!
  sp = sp * x2 + 1.0 / 6227020800.0;
  sp = sp * x2 - 1.0 / 39916800.0;
  sp = sp * x2 + 1.0 / 362880.0;
  sp = sp * x2 - 1.0 / 5040.0;
  sp = sp * x2 + 1.0 / 120.0;
  sp = sp * x2 - 1.0 / 6.0;
  const D sn = x + x * x2 * sp;
  D cp = splat<D>(1.0 / 20922789888000.0);  // 1/16!
  cp = cp * x2 - 1.0 / 87178291200.0;
  cp = cp * x2 + 1.0 / 479001600.0;
  cp = cp * x2 - 1.0 / 3628800.0;
  cp = cp * x2 + 1.0 / 40320.0;
  cp = cp * x2 - 1.0 / 720.0;
  cp = cp * x2 + 1.0 / 24.0;
  cp = cp * x2 - 0.5;
  const D cs = 1.0 + x2 * cp;
  // Odd k swaps sin and cos; sin < 0 for k ∈ {2, 3}, cos < 0 for k ∈ {1, 2}.
  const U swap = splatu<U>(0) - (kk & 1);
  const U bs = (U)sn, bc = (U)cs;
  const U s0 = (bs & ~swap) | (bc & swap);
  const U c0 = (bc & ~swap) | (bs & swap);
  s_out = (D)(s0 ^ ((kk >> 1) << 63));
  c_out = (D)(c0 ^ (((kk ^ (kk >> 1)) & 1) << 63));
}

// The eight lanes of a NormalStream held in registers for the duration of one kernel call.
template <int W>
struct Lanes {
  using D = typename Simd<W>::D;
  using U = typename Simd<W>::U;
  static constexpr int K = Simd<W>::K;
  U s0[K], s1[K], s2[K], s3[K];

  LINDIFF_AI explicit Lanes(const NormalStream& st) {
    for (int j = 0; j < K; ++j) {
      std::memcpy(&s0[j], st.s[0] + j * W, sizeof(U));
      std::memcpy(&s1[j], st.s[1] + j * W, sizeof(U));
      std::memcpy(&s2[j], st.s[2] + j * W, sizeof(U));
      std::memcpy(&s3[j], st.s[3] + j * W, sizeof(U));
    }
  }
  LINDIFF_AI void save(NormalStream& st) const {
    for (int j = 0; j < K; ++j) {
      std::memcpy(st.s[0] + j * W, &s0[j], sizeof(U));
      std::memcpy(st.s[1] + j * W, &s1[j], sizeof(U));
      std::memcpy(st.s[2] + j * W, &s2[j], sizeof(U));
      std::memcpy(st.s[3] + j * W, &s3[j], sizeof(U));
    }
  }
  LINDIFF_AI U next(int j) {  // xoshiro256++ on W lanes
    const U r = rotl(s0[j] + s3[j], 23) + s0[j];
    const U t = s1[j] << 17;
    s2[j] ^= s0[j];
    s3[j] ^= s1[j];
    s1[j] ^= s2[j];
    s0[j] ^= s3[j];
    s2[j] ^= t;
    s3[j] = rotl(s3[j], 45);
    return r;
  }
  // One round: out[l] = r_l cos θ_l, out[8 + l] = r_l sin θ_l for the eight lanes l, as 2K vectors
  // (vector j: lanes jW..jW+W−1 of the cosines; vector K + j: of the sines).
  LINDIFF_AI void round(D (&out)[2 * K]) {
    const U one = splatu<U>(0x3FF0000000000000ULL);
    for (int j = 0; j < K; ++j) {
      const U x1 = next(j), x2 = next(j);
      // 52-bit uniforms by exponent stuffing: 2 − [1, 2) ∈ (0, 1] and [1, 2) − 1 ∈ [0, 1).
      const D u1 = splat<D>(2.0) - (D)(one | (x1 >> 12));
      const D u2 = (D)(one | (x2 >> 12)) - 1.0;
      const D r = vsqrt(-2.0 * vlog<D, U>(u1));
      D c, s;
      vsincos_2pi<D, U>(u2, c, s);
      out[j] = r * c;
      out[K + j] = r * s;
    }
  }
  LINDIFF_AI void round(double* out) {
    D v[2 * K];
    round(v);
    std::memcpy(out, v, sizeof v);
  }
};

template <class D>
LINDIFF_AI D loadv(const double* p) {
  D v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <class D>
LINDIFF_AI void storev(double* p, D v) {
  std::memcpy(p, &v, sizeof v);
}

// Hand the next n normals of the stream out in order, j = 0..n−1: leftovers of the current round
// and the head of a last, partial round go to f(j, z, count) (scalar loop); whole rounds go to
// fv(j, zv) as 2K vectors in registers (explicit vector loads/stores: no aliasing questions for the
// compiler). The rest of a partial round stays in st.buf for the next call.
template <int W, class F, class FV>
LINDIFF_AI void consume(Lanes<W>& L, NormalStream& st, Index n, F&& f, FV&& fv) {
  constexpr int R = NormalStream::kRound;
  Index j = 0;
  if (st.pos < R && n > 0) {
    const int cnt = static_cast<int>(std::min<Index>(R - st.pos, n));
    f(j, st.buf + st.pos, cnt);
    st.pos += cnt;
    j += cnt;
  }
  for (; j + R <= n; j += R) {
    typename Lanes<W>::D zv[2 * Lanes<W>::K];
    L.round(zv);
    fv(j, zv);
  }
  if (j < n) {
    L.round(st.buf);
    const int cnt = static_cast<int>(n - j);
    f(j, static_cast<const double*>(st.buf), cnt);
    st.pos = cnt;
  }
}

#define LINDIFF_LAMBDA __attribute__((always_inline))

template <int W>
LINDIFF_AI void fill_k(NormalStream& st, double* out, Index n) {
  using D = typename Simd<W>::D;
  Lanes<W> L(st);
  consume<W>(
      L, st, n,
      [&](Index j, const double* z, int cnt) LINDIFF_LAMBDA {
        for (int i = 0; i < cnt; ++i) out[j + i] = z[i];
      },
      [&](Index j, const D* zv) LINDIFF_LAMBDA {
        for (int v = 0; v < 2 * Lanes<W>::K; ++v) storev(out + j + v * W, zv[v]);
      });
  L.save(st);
}

// Eigen chain step on `rows` rows of Y (row-major, d columns): y ← a∘y + c + σ z.
template <int W>
LINDIFF_AI void diag_step_k(NormalStream& st, double* Y, Index rows, Index d, const double* a, const double* c,
                            double sig) {
  using D = typename Simd<W>::D;
  Lanes<W> L(st);
  const D sv = splat<D>(sig);
  for (Index r = 0; r < rows; ++r) {
    double* y = Y + r * d;
    consume<W>(
        L, st, d,
        [&](Index j, const double* z, int cnt) LINDIFF_LAMBDA {
          for (int i = 0; i < cnt; ++i) y[j + i] = a[j + i] * y[j + i] + c[j + i] + sig * z[i];
        },
        [&](Index j, const D* zv) LINDIFF_LAMBDA {
          for (int v = 0; v < 2 * Lanes<W>::K; ++v) {
            const Index o = j + v * W;
            storev(y + o, loadv<D>(a + o) * loadv<D>(y + o) + loadv<D>(c + o) + sv * zv[v]);
          }
        });
  }
  L.save(st);
}

// `rows` rows of k scaled normals: out[r, j] = scale[j]·z.
template <int W>
LINDIFF_AI void scaled_fill_k(NormalStream& st, double* out, Index rows, Index k, const double* scale) {
  using D = typename Simd<W>::D;
  Lanes<W> L(st);
  for (Index r = 0; r < rows; ++r) {
    double* o = out + r * k;
    consume<W>(
        L, st, k,
        [&](Index j, const double* z, int cnt) LINDIFF_LAMBDA {
          for (int i = 0; i < cnt; ++i) o[j + i] = scale[j + i] * z[i];
        },
        [&](Index j, const D* zv) LINDIFF_LAMBDA {
          for (int v = 0; v < 2 * Lanes<W>::K; ++v) storev(o + j + v * W, loadv<D>(scale + j + v * W) * zv[v]);
        });
  }
  L.save(st);
}

struct Kernels {
  void (*fill)(NormalStream&, double*, Index);
  void (*diag_step)(NormalStream&, double*, Index, Index, const double*, const double*, double);
  void (*scaled_fill)(NormalStream&, double*, Index, Index, const double*);
};

#define LINDIFF_KERNELS(NAME, TARGET, W)                                                                     \
  TARGET void fill_##NAME(NormalStream& st, double* out, Index n) { fill_k<W>(st, out, n); }                 \
  TARGET void diag_##NAME(NormalStream& st, double* Y, Index rows, Index d, const double* a, const double* c, \
                          double sig) {                                                                      \
    diag_step_k<W>(st, Y, rows, d, a, c, sig);                                                               \
  }                                                                                                          \
  TARGET void scaled_##NAME(NormalStream& st, double* out, Index rows, Index k, const double* scale) {       \
    scaled_fill_k<W>(st, out, rows, k, scale);                                                               \
  }                                                                                                          \
  constexpr Kernels kKernels_##NAME = {fill_##NAME, diag_##NAME, scaled_##NAME};

enum class Path { baseline = 0, avx2 = 1, avx512 = 2 };

// Portable builds (x86-64-v2, the default) carry three kernel sets and pick one at run time. A build
// for a newer ISA (LINDIFF_NATIVE=ON) has one set at that ISA's width: the always_inline templates,
// compiled for the build's ISA, could not be inlined into narrower target() functions anyway.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(__AVX2__)
#define LINDIFF_X86_DISPATCH 1
LINDIFF_KERNELS(avx512, __attribute__((target("arch=x86-64-v4"))), 8)
LINDIFF_KERNELS(avx2, __attribute__((target("arch=x86-64-v3"))), 4)
LINDIFF_KERNELS(baseline, , 2)
#elif defined(__AVX512F__)
LINDIFF_KERNELS(build, , 8)
constexpr Path kBuildPath = Path::avx512;
#elif defined(__AVX2__)
LINDIFF_KERNELS(build, , 4)
constexpr Path kBuildPath = Path::avx2;
#else
LINDIFF_KERNELS(build, , 2)
constexpr Path kBuildPath = Path::baseline;
#endif

bool cpu_has(Path p) {
#ifdef LINDIFF_X86_DISPATCH
  __builtin_cpu_init();
  if (p == Path::avx512) return __builtin_cpu_supports("x86-64-v4");
  if (p == Path::avx2) return __builtin_cpu_supports("x86-64-v3");
  return true;
#else
  return p == kBuildPath;
#endif
}

Path best_path() {
  if (cpu_has(Path::avx512)) return Path::avx512;
  if (cpu_has(Path::avx2)) return Path::avx2;
  return Path::baseline;
}

std::atomic<int> g_path{-1};

const Kernels& kernels() {
  int p = g_path.load(std::memory_order_relaxed);
  if (p < 0) {
    p = static_cast<int>(best_path());
    g_path.store(p, std::memory_order_relaxed);
  }
#ifdef LINDIFF_X86_DISPATCH
  if (p == static_cast<int>(Path::avx512)) return kKernels_avx512;
  if (p == static_cast<int>(Path::avx2)) return kKernels_avx2;
  return kKernels_baseline;
#else
  return kKernels_build;
#endif
}

const char* path_name(Path p) {
  return p == Path::avx512 ? "avx512" : p == Path::avx2 ? "avx2" : "baseline";
}

}  // namespace

std::string sampling_simd() {
  kernels();
  return path_name(static_cast<Path>(g_path.load()));
}

std::vector<std::string> sampling_simd_available() {
  std::vector<std::string> out;
  for (Path p : {Path::avx512, Path::avx2, Path::baseline})
    if (cpu_has(p)) out.emplace_back(path_name(p));
  return out;
}

void set_sampling_simd(const std::string& name) {
  if (name == "auto") {
    g_path.store(static_cast<int>(best_path()));
    return;
  }
  for (Path p : {Path::avx512, Path::avx2, Path::baseline}) {
    if (name == path_name(p)) {
      check(cpu_has(p), "set_sampling_simd: this CPU cannot run the '" + name + "' path");
      g_path.store(static_cast<int>(p));
      return;
    }
  }
  throw std::invalid_argument("set_sampling_simd: unknown path '" + name + "' (auto, avx512, avx2, baseline)");
}

void NormalStream::fill(double* out, Index n) {
  if (n > 0) kernels().fill(*this, out, n);
}

void fill_standard_normal(Xoshiro256pp& g, double* out, Index n) {
  NormalStream st(g);
  st.fill(out, n);
}

void standard_normal(const std::uint64_t seed[4], double* out, Index n) {
  check(n >= 0, "standard_normal: n must be >= 0");
  NormalStream st(seed);
  st.fill(out, n);
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
  const Kernels& K = kernels();
  run_blocks(n, run, T, [&](Index row0, Index m, NormalStream& g) {
    // Y holds the block in U-coordinates, y = Uᵀu (rows: yᵀ = uᵀU); 256×d, it stays in L2.
    RowMatrix Y(m, d);
    RowMatrix Z(chain.noise ? m : 0, d);
    if (chain.noise) Y.noalias() = noise_block(chain, 0, n, d, row0, m) * U;
    else g.fill(Y.data(), m * d);  // Uᵀu_T ~ N(0, I) as well
    if (records(chain, T)) traj_block(chain, T, n, d, row0, m).noalias() = Y * U.transpose();
    for (Index t = T; t >= 1; --t) {
      const Index k = t - 1;
      const double sig = chain.sigma(k);
      const double* ak = a.data() + k * a.outerStride();
      const double* ck = c.data() + k * c.outerStride();
      if (sig != 0.0 && !chain.noise) {
        K.diag_step(g, Y.data(), m, d, ak, ck, sig);  // fused: draw 16 normals, update 16 coordinates
      } else {
        if (sig != 0.0) Z.noalias() = noise_block(chain, T - t + 1, n, d, row0, m) * U;
        for (Index i = 0; i < m; ++i) {
          double* y = Y.data() + i * d;
          if (sig != 0.0) {
            const double* z = Z.data() + i * d;
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
  const Kernels& K = kernels();
  // Blocks of kSampleBlock rows, as in the eigen chain; each block's state is a column-major d×m
  // buffer (the memory of its row-major m×d rows, so the per-row loops and the RNG order are those
  // of row-major storage). Groups of workers × kBlocksPerWorker blocks run the T steps in lock
  // step. Per step and block, on whichever worker holds the block: one product E = (p I + q W_t) X
  // through blas::gemm on the calling thread alone (blas::SingleThreadedScope), then the fused noise
  // + update in place on E with the eigen chain's step (a = 1, which multiplies exactly), and E
  // becomes the state. Every block's product has its own fixed shape and every block its own
  // stream, so the output does not depend on `workers`. `tick` runs after every step.
  const Index n_blocks = n_blocks_for(n);
  const Index group = static_cast<Index>(run.workers) * kBlocksPerWorker;
  const Vector ones = Vector::Ones(d);
  Matrix At(d, d);
  Vector cb(d);
  std::vector<Matrix> X, E;
  blas::SingleThreadedScope one_thread_blas;
  for (Index start = 0; start < n_blocks; start += group) {
    if (run.tick) run.tick(0);
    const Index count = std::min(group, n_blocks - start);
    // Small steps run on this thread (workers_for; flops per step: the product, 2·d² per sample,
    // and the update).
    const int lanes = static_cast<int>(std::min<Index>(
        workers_for(2.0 * static_cast<double>(count * kSampleBlock) * d * (d + 8.0), run.workers), count));
    auto rows_of = [&](Index i, Index& row0, Index& m) {
      row0 = (start + i) * kSampleBlock;
      m = std::min(kSampleBlock, n - row0);
    };
    // Lane l always holds blocks l, l + lanes, ...: a block's buffers stay in one core's caches.
    auto for_lanes = [&](auto&& body) {
      parallel_for(lanes, lanes, [&](Index lane) {
        for (Index i = lane; i < count; i += lanes) body(i);
      });
    };
    X.resize(static_cast<size_t>(count));
    E.resize(static_cast<size_t>(count));
    std::vector<NormalStream> gens;
    gens.reserve(static_cast<size_t>(count));
    for (Index i = 0; i < count; ++i) gens.emplace_back(run.seeds + 4 * (start + i));
    for_lanes([&](Index i) {
      Index row0, m;
      rows_of(i, row0, m);
      Matrix& x = X[static_cast<size_t>(i)];
      x.resize(d, m);
      E[static_cast<size_t>(i)].resize(d, m);
      if (chain.noise) std::copy_n(chain.noise + row0 * d, m * d, x.data());
      else gens[static_cast<size_t>(i)].fill(x.data(), m * d);
      if (records(chain, T)) std::copy_n(x.data(), m * d, traj_block(chain, T, n, d, row0, m).data());
    });
    for (Index t = T; t >= 1; --t) {
      const Index k = t - 1;
      const double sig = chain.sigma(k), pk = p(k), qk = q(k);
      // The column-major view of row-major W_t is W_tᵀ, so At holds (p I + q W_t)ᵀ and
      // E = Atᵀ X = (p I + q W_t) X: the whole affine map but the bias in one product.
      At = qk * Eigen::Map<const Matrix>(W + k * d * d, d, d);
      At.diagonal().array() += pk;
      cb = qk * b.row(k).transpose();
      const double* bk = cb.data();
      for_lanes([&](Index i) {
        Index row0, m;
        rows_of(i, row0, m);
        Matrix& x = X[static_cast<size_t>(i)];
        Matrix& e = E[static_cast<size_t>(i)];
        blas::gemm(true, false, d, m, d, 1.0, At.data(), d, x.data(), d, 0.0, e.data(), d);
        if (sig != 0.0 && !chain.noise) {
          K.diag_step(gens[static_cast<size_t>(i)], e.data(), m, d, ones.data(), bk, sig);
        } else {
          for (Index r = 0; r < m; ++r) {
            double* er = e.data() + r * d;
            if (sig != 0.0) {
              const double* z = chain.noise + ((T - t + 1) * n + row0 + r) * d;
              for (Index j = 0; j < d; ++j) er[j] = (er[j] + bk[j]) + sig * z[j];
            } else {
              for (Index j = 0; j < d; ++j) er[j] = er[j] + bk[j];
            }
          }
        }
        if (records(chain, k)) std::copy_n(e.data(), m * d, traj_block(chain, k, n, d, row0, m).data());
        x.swap(e);
      });
      if (run.tick) run.tick(count);
    }
    for_lanes([&](Index i) {
      Index row0, m;
      rows_of(i, row0, m);
      out.middleRows(row0, m) = X[static_cast<size_t>(i)].transpose();
    });
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
  const Kernels& K = kernels();
  // Per block (run_blocks, as the eigen chain): the scaled draws z∘scale written once into Zt
  // (k×m column-major, the memory of the row-major m×k draws), then one product C = V Zt through
  // blas::gemm on the worker's own thread (blas::SingleThreadedScope), and out = Cᵀ + mean. The
  // product has the block's own fixed shape, so the output does not depend on `workers`.
  const Matrix Vc = V;
  blas::SingleThreadedScope one_thread_blas;
  run_blocks(n, run, 1, [&](Index row0, Index m, NormalStream& g) {
    Matrix Zt(k, m), C(d, m);
    K.scaled_fill(g, Zt.data(), m, k, scale.data());
    blas::gemm(false, false, d, m, k, 1.0, Vc.data(), d, Zt.data(), k, 0.0, C.data(), d);
    auto o = out.middleRows(row0, m);
    o = C.transpose();
    o.rowwise() += mean.transpose();
  });
}

}  // namespace lindiff
