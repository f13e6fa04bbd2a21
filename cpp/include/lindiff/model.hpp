// The linear denoiser in its eigenbasis, and the exact law of its DDPM/DDIM samples, per mode.
//
// Every denoiser lindiff builds in closed form is a function of Σ̂ = U diag(λ̂) Uᵀ, so it is a
// spectral filter w_t(λ̂) (theory.md §3), and the sampling chain is diagonal in U (theory.md §4).
// This header evaluates, for a batch of (ridge, training) settings:
//   - the filter values w_t(λ̂_i) (T×d per setting),
//   - the per-mode variance s₀ and mean gain g of the generated law, where in U-coordinates
//     μ_gen,i = g_i μ̂_i and Σ_gen = U diag(s₀) Uᵀ,
//   - the per-t losses L_t = Σ_i (1 − √(1−ᾱ_t) w_i)² + ᾱ_t w_i² e_i for any number of "energy"
//     vectors e (e = λ̂ gives the train loss; e_i = u_iᵀΣu_i + (u_iᵀ(μ−μ̂))² the test loss).
#pragma once
#include <vector>

#include "lindiff/types.hpp"

namespace lindiff {

struct ScheduleArrays {
  Vector beta;       // β_t, t = 1..T (index t−1)
  Vector abar;       // ᾱ_t
  Vector abar_prev;  // ᾱ_{t−1}, with ᾱ_0 = 1
  Vector one_minus_abar;  // 1 − ᾱ_t to full relative precision; entry 0 must equal β₁
  void validate() const;
  Index T() const { return beta.size(); }
};

enum class Training { Optimum = 0, Flow = 1, GradientDescent = 2 };

struct TrainingSpec {
  Training kind = Training::Optimum;
  double time = 0.0;           // τ (flow) or number of steps n (GD)
  double learning_rate = 1.0;  // η
  double init = 0.0;           // W⁰ = init · I
};

enum class Sampler { DDPM = 0, DDIM = 1 };

struct ChainSpec {
  Sampler sampler = Sampler::DDPM;
  Vector sigma2;  // σ_t² added at step t (DDPM); length T; ignored for DDIM
};

// Filter values w_t(λ) for one setting, row-major T×d.
RowMatrix filter_table(const ScheduleArrays& s, const Vector& lambda, const Vector& ridge,
                       const TrainingSpec& training);

struct GridResult {
  RowMatrix variance;  // S×d: s₀ per setting and mode
  RowMatrix gain;      // S×d: mean gain g
  RowMatrix losses;    // (S·E)×T: row s·E + e holds L_t for energy e (empty when E = 0)
};

// Settings are the product ridges × trainings: setting index = r · trainings.size() + j.
// ridges is R×T (a ridge value per t for each ridge setting); energies is E×d.
GridResult evaluate_grid(const ScheduleArrays& s, const Vector& lambda, const RowMatrix& ridges,
                         const std::vector<TrainingSpec>& trainings, const ChainSpec& chain,
                         const RowMatrix& energies, int workers);

}  // namespace lindiff
