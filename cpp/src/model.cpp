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

// One mode's filter at one timestep, in forms that keep exact zeros exact.
// With signal = ᾱλ + γ, c = signal + (1−ᾱ) and e the untrained fraction (0 at the optimum,
// exp(−2ηcτ) for gradient flow, (1−2ηc)ⁿ for n GD steps), the filter is w = √(1−ᾱ)·h with
// h = (1−e)/c + init·e/√(1−ᾱ). The chain needs 1 − β h and the loss 1 − (1−ᾱ) h; both are formed
// from signal and (1−ᾱ−β) so that a null direction at t = 1 (λ = γ = 0, 1−ᾱ₁ = β₁) gives exactly 0.
struct ModeFilter {
  double w, one_minus_bh, one_minus_omh;
};

inline ModeFilter mode_filter(double signal, double om, double beta, double sq_om, double init, double e) {
  const double inv = 1.0 / (signal + om);
  const double ie = init * e;
  ModeFilter f;
  f.w = sq_om * (1.0 - e) * inv + ie;
  f.one_minus_bh = (signal + (om - beta) + beta * e) * inv - beta * ie / sq_om;
  f.one_minus_omh = (signal + om * e) * inv - sq_om * ie;
  return f;
}

// The untrained fraction e for every mode at one timestep (all zeros at the optimum).
inline void untrained_fraction(double abar, double om, double gamma, const Arr& lam,
                               const TrainingSpec& tr, Arr& e) {
  switch (tr.kind) {
    case Training::Optimum:
      e.setZero(lam.size());
      return;
    case Training::Flow:
      if (std::isinf(tr.time)) {
        e.setZero(lam.size());
      } else {
        const double k = -2.0 * tr.learning_rate * tr.time;
        e = ((k * abar) * lam + k * (gamma + om)).exp();
      }
      return;
    case Training::GradientDescent:
      e = (1.0 - 2.0 * tr.learning_rate * (abar * lam + (gamma + om))).pow(tr.time);
      return;
  }
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
  Arr e(d);
  for (Index k = 0; k < T; ++k) {
    const double om = s.one_minus_abar(k), ab = s.abar(k), sq_om = std::sqrt(om);
    untrained_fraction(ab, om, ridge(k), lam, training, e);
    for (Index i = 0; i < d; ++i)
      out(k, i) = mode_filter(ab * lam(i) + ridge(k), om, s.beta(k), sq_om, training.init, e(i)).w;
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
    Arr e(d), w(d), omoh(d), var = Arr::Ones(d), gain = Arr::Zero(d);
    const double* lp = lam.data();
    for (Index k = T - 1; k >= 0; --k) {
      const double om = s.one_minus_abar(k), beta = s.beta(k), ab = s.abar(k), sq_om = std::sqrt(om);
      const double gamma = ridges(r, k);
      untrained_fraction(ab, om, gamma, lam, tr, e);
      // One fused pass over the modes: filter, chain coefficient, variance and mean-gain updates.
      double* vp = var.data();
      double* gp = gain.data();
      double* wp = w.data();
      double* op = omoh.data();
      const double* ep = e.data();
      if (chain.sampler == Sampler::DDPM) {
        // a_t = (1 − κ_t w)/√(1−β_t) with κ_t w = β_t h; the bias b_t = −√ᾱ_t w μ̂ enters the mean
        // as + κ_t √ᾱ_t w μ̂ / √(1−β_t).
        const double isb = inv_sq1mb(k), gcoef = beta / sq_om * sq_abar(k) * isb, s2 = chain.sigma2(k);
        for (Index i = 0; i < d; ++i) {
          const ModeFilter f = mode_filter(ab * lp[i] + gamma, om, beta, sq_om, tr.init, ep[i]);
          const double a = f.one_minus_bh * isb;
          gp[i] = a * gp[i] + gcoef * f.w;
          vp[i] = a * a * vp[i] + s2;
          wp[i] = f.w;
          op[i] = f.one_minus_omh;
        }
      } else {
        // DDIM; at t = 1 (ᾱ₀ = 1) a₁ = (1 − √(1−ᾱ₁) w)/√ᾱ₁, formed exactly.
        const bool first = s.abar_prev(k) == 1.0;
        const double a0 = ddim_a0(k), kk = ddim_k(k), gcoef = -kk * sq_abar(k), isa = 1.0 / sq_abar(k);
        for (Index i = 0; i < d; ++i) {
          const ModeFilter f = mode_filter(ab * lp[i] + gamma, om, beta, sq_om, tr.init, ep[i]);
          const double a = first ? f.one_minus_omh * isa : a0 + kk * f.w;
          gp[i] = a * gp[i] + gcoef * f.w;
          vp[i] = a * a * vp[i];
          wp[i] = f.w;
          op[i] = f.one_minus_omh;
        }
      }
      if (E > 0) {
        const double base = omoh.square().sum();
        for (Index q = 0; q < E; ++q)
          res.losses(si * E + q, k) = base + ab * (w.square() * energies.row(q).transpose().array()).sum();
      }
    }
    res.variance.row(si) = var.matrix().transpose();
    res.gain.row(si) = gain.matrix().transpose();
  });
  return res;
}

}  // namespace lindiff
