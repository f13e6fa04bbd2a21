// The optimal denoiser of the empirical training distribution: the model that memorises perfectly.
//
// For training points x_1..x_N, the noised empirical law is p_t = (1/N) Σ_i N(s x_i, v I) with
// s = √ᾱ_t, v = 1 − ᾱ_t. Its exact noise predictor (the score times −√v) is
//     ε*(u, t) = (u − s m(u)) / √v,   m(u) = Σ_i w_i(u) x_i,   w = softmax_i(−‖u − s x_i‖² / (2v)).
//
// Computation, fused per block of 8 rows u inside a worker thread (everything stays in cache):
//   1. logits up to a per-row constant, ℓ_i = (s/v) u·x_i − (s²/v) ‖x_i‖²/2, by a register-tiled
//      product (8 rows × 16 training points per tile);
//   2. per row: the maximum, w_i = exp(ℓ_i − max) by a vectorised exp (runtime-dispatched
//      x86-64-v4 / v3 / baseline clones, ~1 ulp; arguments below −708 give 0), and Z = Σ w_i. The
//      expansion in step 1 loses about ‖u‖‖x‖·2⁻⁵²/v in each logit at small v; so when at most
//      kRefine weights exceed e⁻⁴⁰ of the largest (a peaked softmax, the small-t regime where this
//      matters), their logits are recomputed from the differences −‖u − s x_i‖²/(2v) and their
//      weights redone with the refined maximum;
//   3. m = Σ w_i x_i / Z by a second tiled product (8 rows × 16 coordinates per tile).
// The sampler skips steps 1–3 for rows whose softmax was peaked at an earlier step and provably
// still is, from a triangle-inequality bound on the other points' distances (see Anchors in
// empirical_optimal.cpp): the mean then comes from the row's ≤ kRefine candidates alone.
// No BLAS is called: OpenBLAS's own threads inside our worker threads would oversubscribe the
// cores, and on a shared 2-core machine its pool made these small per-step products 10–30× slower
// than in-thread kernels (measured). Every output element is a sum in a fixed order: results do not
// depend on `workers`.
//
// The sampler runs the DDPM/DDIM chain u_{t−1} = p_t u_t + q_t ε*(u_t, t) + σ_t z_t with the same
// block streams and noise order as sample_dense_chain (sampling.hpp): blocks of kSampleBlock rows,
// block j seeded with seeds[4j..4j+3], normals drawn row chunk by row chunk. Steps are synchronous
// over a batch of workers × kBlocksPerWorker blocks (Ctrl-C checked between steps); each block
// writes only its rows, so the output is bit-identical for any number of workers.
#pragma once
#include "lindiff/sampling.hpp"
#include "lindiff/types.hpp"

namespace lindiff {

constexpr Index kRefine = 32;                       // max significant weights refined per row

// Noise prediction ε*(x, t) and posterior mean m(x) = E[x₀ | x_t = x] for rows x (n×d), with
// s = √ᾱ_t and v = 1 − ᾱ_t > 0. eps and mean are n×d.
void empirical_optimal_predict(const ConstRowRef& X, const ConstRowRef& x, double s, double v,
                               int workers, OutRef eps, OutRef mean);

// The reverse chain with ε*. sqrt_abar, one_minus_abar, p, q have length T (index t−1), as has
// chain.sigma; chain.noise as in sampling.hpp; trajectories are not supported.
void sample_empirical_optimal(const ConstRowRef& X, const Vector& sqrt_abar, const Vector& one_minus_abar,
                              const Vector& p, const Vector& q, const ChainSpecSampling& chain,
                              const SampleRun& run, OutRef out);

// exp(x) for x <= 0 over an array (x < −708 gives 0), returning the sum of the results
// (8 partial sums combined in a fixed order). Exposed for tests.
double exp_nonpositive(const double* x, double* out, Index n);

}  // namespace lindiff
