// Empirical training of per-t affine noise predictors ε_θ(x, t) = W_t x + b_t by (minibatch) SGD on the
// sampled denoising loss (issue 6; the conventions are documented in python/lindiff/training.py).
//
// For each trained timestep k (with √ᾱ_k, √(1−ᾱ_k) and ridge γ_k) and each step:
//   - a batch of B training points x₀ (all N in order for full batch, otherwise the next B of a per-epoch
//     random permutation; N mod B points are left out of each epoch), each with `draws` fresh noises ε;
//   - x = √ᾱ x₀ + √(1−ᾱ) ε, residual r = W x + b − ε, over the M = B·draws columns;
//   - loss (1/M) Σ ‖ε − W x − b‖² + γ‖W‖_F², gradient G_W = (2/M) Σ r xᵀ + 2γW, G_b = (2/M) Σ r;
//   - W ← W − η G_W, b ← b − η G_b.
// Random numbers: xoshiro256++ with Box–Muller (rng.hpp). Every (timestep, step, block of 256 batch points) has its
// own stream, seeded from the timestep's 4 seed words, the step index and the block index by splitmix64
// mixing; the permutation of epoch e has its own stream too. So the result does not depend on the number
// of workers, nor on how the steps are cut into calls (checkpoints).
#pragma once
#include <cstdint>
#include <functional>

#include "lindiff/types.hpp"

namespace lindiff {

constexpr Index kTrainBlock = 256;  // columns (noisy samples) per random-number stream

struct TrainSpec {
  const double* X = nullptr;  // N×d row-major training points (already centred by the caller if wanted)
  Index N = 0, d = 0;
  Index n_t = 0;                     // number of trained timesteps
  const double* sqrt_abar = nullptr;  // n_t
  const double* sqrt_om = nullptr;    // n_t, √(1−ᾱ)
  const double* ridge = nullptr;      // n_t
  const std::uint64_t* seeds = nullptr;  // n_t × 4
  double learning_rate = 0;
  Index step0 = 0;    // global index of the first step of this call (streams are keyed by it)
  Index n_steps = 0;  // steps in this call
  Index batch = 0;    // B (== N: full batch, points in order)
  Index draws = 1;    // noise draws per point and step
  const double* noise = nullptr;  // optional (n_steps, n_t, B·draws, d) noise, point-major (row p·draws + j), full batch only (tests)
  int workers = 1;
  std::function<void()> check;  // called between (timestep, step) units, e.g. to poll Ctrl-C
};

// Train in place: W is n_t×d×d row-major (W[k] is W_t), b is n_t×d.
void train_affine_sgd(const TrainSpec& spec, double* W, double* b);

}  // namespace lindiff
