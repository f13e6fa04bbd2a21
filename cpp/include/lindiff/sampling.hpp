// Samplers for linear diffusion models (theory.md §4): the reverse chain in the model's eigenbasis,
// the dense chain for arbitrary per-t affine noise predictors, and exact Gaussian draws.
//
// Reproducibility: the n samples are cut into blocks of kSampleBlock rows (a constant, independent
// of the number of workers). Block j draws all of its noise from its own NormalStream (rng.hpp:
// eight xoshiro256++ lanes + Box–Muller), seeded with seeds[4j .. 4j+3]. Each block writes only its
// own rows, so the output is bit-identical for any number of workers. Within a block the stream is
// consumed in a fixed order: u_T (m·d normals, row after row), then the m·d normals of each noisy
// step t = T..1; a step with σ_t = 0 draws nothing. Noise is generated and used in one fused pass
// (16 normals in registers, then the affine update of those 16 coordinates), never stored.
//
// The eigen chain and the exact sampler run blocks in batches of workers × kBlocksPerWorker;
// between batches the calling thread runs `tick` (the bindings poll for Ctrl-C there and advance the
// progress bar). The dense chain runs such a group of blocks through the T steps in lock step and
// ticks after every step. Memory: the output plus O(workers × kSampleBlock × d) scratch (dense: plus
// one d×d matrix). The dense and exact samplers' matrix products go through blas::gemm, one per
// block (and step), each on the worker that holds the block, with the BLAS limited to the calling
// thread meanwhile (blas::SingleThreadedScope): two workers then run two single-threaded products
// side by side instead of taking turns in OpenBLAS's pool, whose idle threads would also spin on
// the cores the noise and updates need.
//
// SIMD: the generator and the fused loops are compiled three times (AVX-512, AVX2, x86-64-v2
// baseline) and picked at run time; every path gives bit-identical numbers (set_sampling_simd
// forces one, for tests and benchmarks).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "lindiff/rng.hpp"
#include "lindiff/types.hpp"

namespace lindiff {

constexpr Index kSampleBlock = 256;
constexpr Index kBlocksPerWorker = 4;

using OutRef = Eigen::Ref<RowMatrix>;

struct SampleRun {
  const std::uint64_t* seeds = nullptr;  // 4 words per block, ceil(n / kSampleBlock) blocks
  Index n_seed_words = 0;
  int workers = 1;
  // Called on the calling thread between batches (eigen) or steps (dense) with the number of work
  // units finished since the last call (block-steps for the chains, blocks for exact). May throw.
  std::function<void(Index)> tick;
};

// The reverse chain u_{t−1} = A_t u_t + c_t + σ_t z_t, u_T ~ N(0, I), t = T..1.
struct ChainSpecSampling {
  Vector sigma;  // σ_t, index t−1 (length T)
  // Optional pre-drawn noise, C-order (T+1, n, d) in the original basis: index 0 is u_T, index
  // T−t+1 is z_t. When given, no random numbers are drawn.
  const double* noise = nullptr;
  // Optional trajectory output, C-order (S, n, d): slot[t] ∈ [0, S) records u_t (t = 0..T), −1 skips.
  double* trajectory = nullptr;
  std::vector<Index> slot;
};

// Diagonal chain in the eigenbasis U (d×d, columns = modes): y = Uᵀu, y ← a_t∘y + c_t + σ_t z.
// a, c are T×d (row t−1 = step t). out is n×d, in the original basis.
void sample_eigen_chain(const ConstRowRef& U, const ConstRowRef& a, const ConstRowRef& c,
                        const ChainSpecSampling& chain, const SampleRun& run, OutRef out);

// Dense chain for ε_θ(u, t) = W_t u + b_t: u ← p_t u + q_t (W_t u + b_t) + σ_t z.
// W points to T·d·d doubles (C-order (T, d, d), W[t−1] row-major); b is T×d; p, q have length T.
void sample_dense_chain(const double* W, Index T, Index d, const ConstRowRef& b, const Vector& p,
                        const Vector& q, const ChainSpecSampling& chain, const SampleRun& run,
                        OutRef out);

// Exact draws mean + (z ∘ scale) Vᵀ, z ~ N(0, I) (V is d×k with orthonormal columns, scale length k).
void sample_gaussian(const Vector& mean, const Vector& scale, const ConstRowRef& V,
                     const SampleRun& run, OutRef out);

// n standard normals from one stream seeded with seed[0..3] (for testing the generator).
void standard_normal(const std::uint64_t seed[4], double* out, Index n);

// The SIMD path of the generator and fused loops: "avx512", "avx2" or "baseline".
std::string sampling_simd();
// The paths this CPU can run, best first.
std::vector<std::string> sampling_simd_available();
// Force a path ("auto" = the best available). Throws std::invalid_argument for an unknown name or
// one the CPU lacks. Results do not depend on it; only speed does.
void set_sampling_simd(const std::string& name);

}  // namespace lindiff
