#include "lindiff/model.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

#include "lindiff/parallel.hpp"

namespace lindiff {
namespace {

using Arr = Eigen::ArrayXd;

void check(bool ok, const std::string& msg) {
  if (!ok) throw std::invalid_argument(msg);
}

// One timestep's filter over all modes, in forms that keep exact zeros exact.
// With c = ᾱλ + 1−ᾱ+γ and e the untrained fraction (0 at the optimum, exp(−2ηcτ) for gradient flow,
// (1−2ηc)ⁿ for n GD steps), the filter is w = √(1−ᾱ)·h with h = (1−e)/c + init·e/√(1−ᾱ). The chain
// needs 1 − β h and the loss 1 − (1−ᾱ) h; both are formed from (ᾱλ+γ) and (1−ᾱ−β) so that a null
// direction at t = 1 (λ = γ = 0, 1−ᾱ₁ = β₁) gives exactly 0, not 1e-16.
struct Row {
  Arr c, e, w, one_minus_bh, one_minus_omh;
};

inline void filter_row(double om, double beta, double abar, double gamma, const Arr& lam,
                       const TrainingSpec& tr, Row& r) {
  const double sq_om = std::sqrt(om);
  const Arr signal = abar * lam + gamma;  // ᾱλ + γ
  r.c = signal + om;
  switch (tr.kind) {
    case Training::Optimum:
      r.e.setZero(lam.size());
      break;
    case Training::Flow:
      if (std::isinf(tr.time)) r.e.setZero(lam.size());
      else r.e = (-2.0 * tr.learning_rate * tr.time * r.c).exp();
      break;
    case Training::GradientDescent:
      r.e = (1.0 - 2.0 * tr.learning_rate * r.c).pow(tr.time);
      break;
  }
  const Arr h = (1.0 - r.e) / r.c + (tr.init / sq_om) * r.e;
  r.w = sq_om * h;
  r.one_minus_bh = (signal + (om - beta) + beta * r.e) / r.c - (beta * tr.init / sq_om) * r.e;
  r.one_minus_omh = (signal + om * r.e) / r.c - (sq_om * tr.init) * r.e;
}

}  // namespace

void ScheduleArrays::validate() const {
  const Index T = beta.size();
  check(T >= 1, "schedule: T must be >= 1");
  check(abar.size() == T && abar_prev.size() == T && one_minus_abar.size() == T,
        "schedule: arrays must all have length T");
  check(beta.allFinite() && abar.allFinite() && abar_prev.allFinite() && one_minus_abar.allFinite(),
        "schedule: non-finite values");
  check((one_minus_abar.array() > 0).all(), "schedule: 1 - alphas_bar must be > 0");
  check((beta.array() > 0).all() && (beta.array() < 1).all(), "schedule: betas must lie in (0, 1)");
  check((abar.array() > 0).all() && (abar.array() < 1).all(), "schedule: alphas_bar must lie in (0, 1)");
}

RowMatrix filter_table(const ScheduleArrays& s, const Vector& lambda, const Vector& ridge,
                       const TrainingSpec& training) {
  s.validate();
  const Index T = s.T(), d = lambda.size();
  check(ridge.size() == T, "filter_table: ridge must have length T");
  RowMatrix out(T, d);
  const Arr lam = lambda.array();
  Row row;
  for (Index k = 0; k < T; ++k) {
    filter_row(s.one_minus_abar(k), s.beta(k), s.abar(k), ridge(k), lam, training, row);
    out.row(k) = row.w.matrix().transpose();
  }
  return out;
}

GridResult evaluate_grid(const ScheduleArrays& s, const Vector& lambda, const RowMatrix& ridges,
                         const std::vector<TrainingSpec>& trainings, const ChainSpec& chain,
                         const RowMatrix& energies, int workers) {
  s.validate();
  const Index T = s.T(), d = lambda.size(), E = energies.rows();
  check(ridges.cols() == T, "evaluate_grid: ridges must be R×T");
  check(!trainings.empty() && ridges.rows() >= 1, "evaluate_grid: empty grid");
  check(E == 0 || energies.cols() == d, "evaluate_grid: energies must be E×d");
  check(chain.sampler == Sampler::DDIM || chain.sigma2.size() == T, "evaluate_grid: sigma2 must have length T");
  check(lambda.allFinite() && (lambda.array() >= 0).all(), "evaluate_grid: eigenvalues must be finite and >= 0");
  const Index J = static_cast<Index>(trainings.size());
  const Index S = ridges.rows() * J;
  GridResult res;
  res.variance.resize(S, d);
  res.gain.resize(S, d);
  res.losses.resize(S * E, T);
  const Arr lam = lambda.array();
  // Per-t constants of the chain.
  Vector inv_sq1mb(T), sq_abar(T), ddim_a0(T), ddim_k(T);
  for (Index k = 0; k < T; ++k) {
    const double b = s.beta(k), ab = s.abar(k), abp = s.abar_prev(k), om = s.one_minus_abar(k);
    inv_sq1mb(k) = 1.0 / std::sqrt(1.0 - b);
    sq_abar(k) = std::sqrt(ab);
    ddim_a0(k) = std::sqrt(abp / ab);
    ddim_k(k) = std::sqrt(1.0 - abp) - std::sqrt(abp * om / ab);
  }
  parallel_for(S, workers, [&](Index si) {
    const Index r = si / J;
    const TrainingSpec& tr = trainings[static_cast<size_t>(si % J)];
    Row row;
    Arr a(d), var = Arr::Ones(d), gain = Arr::Zero(d);
    for (Index k = T - 1; k >= 0; --k) {
      filter_row(s.one_minus_abar(k), s.beta(k), s.abar(k), ridges(r, k), lam, tr, row);
      if (chain.sampler == Sampler::DDPM) {
        // a_t = (1 − κ_t w)/√(1−β_t) with κ_t w = β_t h.
        a = row.one_minus_bh * inv_sq1mb(k);
        // The bias b_t = −√ᾱ_t w μ̂ enters as + κ_t √ᾱ_t w μ̂ / √(1−β_t).
        gain = a * gain + (s.beta(k) / std::sqrt(s.one_minus_abar(k)) * sq_abar(k) * inv_sq1mb(k)) * row.w;
        var = a.square() * var + chain.sigma2(k);
      } else if (s.abar_prev(k) == 1.0) {
        // t = 1 of DDIM: a₁ = (1 − √(1−ᾱ₁) w)/√ᾱ₁, formed exactly.
        a = row.one_minus_omh / sq_abar(k);
        gain = a * gain - (ddim_k(k) * sq_abar(k)) * row.w;
        var = a.square() * var;
      } else {
        a = ddim_a0(k) + ddim_k(k) * row.w;
        gain = a * gain - (ddim_k(k) * sq_abar(k)) * row.w;
        var = a.square() * var;
      }
      if (E > 0) {
        const double base = row.one_minus_omh.square().sum();
        const Arr w2 = row.w.square();
        for (Index e = 0; e < E; ++e)
          res.losses(si * E + e, k) = base + s.abar(k) * (w2 * energies.row(e).transpose().array()).sum();
      }
    }
    res.variance.row(si) = var.matrix().transpose();
    res.gain.row(si) = gain.matrix().transpose();
  });
  return res;
}

}  // namespace lindiff
