#include "lindiff/model.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>

#include "lindiff/fast_exp.hpp"
#include "lindiff/parallel.hpp"

namespace lindiff {
namespace {

using Arr = Eigen::ArrayXd;

void check(bool ok, const std::string& msg) {
  if (!ok) throw std::invalid_argument(msg);
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
    // w = √(1−ᾱ)(1−e)/c + init·e with c = ᾱλ + γ + (1−ᾱ) (theory.md §3).
    for (Index i = 0; i < d; ++i)
      out(k, i) = sq_om * (1.0 - e(i)) / ((ab * lam(i) + ridge(k)) + om) + training.init * e(i);
  }
  return out;
}

namespace {

// ---------------------------------------------------------------------------------------------
// The grid kernel.
//
// Work layout. Modes are processed in chunks of kModeChunk (a constant: it fixes the order in which
// the per-t losses are summed over modes, so results never depend on how the grid is split). A task
// is a block of ridge settings × a block of training settings; for every chunk and timestep it
// shares, across its settings,
//   - per ridge r:     1/c with c = ᾱλ + γ_r + (1−ᾱ), and the numerators of the chain and loss
//                      coefficients (one division per mode, shared by every training time);
//   - per flow time j: exp(−2η_jτ_j (ᾱλ + 1−ᾱ)) (one exponential per mode, shared by every ridge,
//                      since exp(−2ητc) = exp(−2ητ(ᾱλ+1−ᾱ)) · exp(−2ητγ) with a scalar second factor).
// The per-setting update is then a handful of fused multiply-adds per mode, which vectorises. How
// the grid is cut into tasks (chosen from `workers` for balance) changes only which thread does
// what: each setting's arithmetic, and so its result, is the same for any cut.
//
// Runtime dispatch: the task body is compiled for x86-64-v4 (AVX-512), x86-64-v3 (AVX2 + FMA) and
// the portable baseline; the loader picks the best the CPU has. Clones with FMA round differently
// from the baseline in the last bits, so results agree across CPUs to rounding, not bit for bit;
// on one machine they are bit-identical for any number of workers.
constexpr Index kModeChunk = 64;

// Eight doubles as one value (GCC vector extension): one AVX-512 register in the x86-64-v4 clone,
// two AVX2 registers in the v3 clone, four SSE registers in the baseline. Lane-wise arithmetic
// only, so every clone computes the same formulas in the same order.
typedef double v8d __attribute__((vector_size(64)));
typedef long long v8l __attribute__((vector_size(64)));
constexpr Index kLanes = 8;
constexpr Index kVecs = kModeChunk / kLanes;  // vectors per chunk

// A 64-byte aligned array of v8d. (std::vector cannot be used: the baseline target aligns v8d to
// 16 bytes only, while the AVX-512 clone's loads and stores assume 64.)
class V8Array {
 public:
  explicit V8Array(Index n) : n_(n) {
    const std::size_t bytes = static_cast<std::size_t>(std::max<Index>(n, 1)) * sizeof(v8d);
    p_ = static_cast<v8d*>(std::aligned_alloc(64, (bytes + 63) / 64 * 64));
    if (p_ == nullptr) throw std::bad_alloc();
  }
  ~V8Array() { std::free(p_); }
  V8Array(const V8Array&) = delete;
  V8Array& operator=(const V8Array&) = delete;
  v8d* data() { return p_; }
  v8d& operator[](Index i) { return p_[i]; }
  void fill(double x) {
    for (Index i = 0; i < n_; ++i)
      for (Index l = 0; l < 8; ++l) p_[i][l] = x;
  }

 private:
  v8d* p_;
  Index n_;
};

__attribute__((always_inline)) inline v8d splat(double x) { return v8d{x, x, x, x, x, x, x, x}; }

// Sum of the 8 lanes in a fixed tree.
__attribute__((always_inline)) inline double hsum(v8d v) {
  return ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7]));
}

// exp_nonpositive (lindiff/fast_exp.hpp) is used lane-wise on v8d.

struct GridProblem {
  const ScheduleArrays* s;
  const Vector* lambda;
  const RowMatrix* ridges;
  const std::vector<TrainingSpec>* trainings;
  const ChainSpec* chain;
  const RowMatrix* energies;
  // Per-t constants.
  Vector inv_sq1mb, sq_abar, sq_om, ddim_a0, ddim_k;
  GridResult* out;
};

// Scalars of one timestep.
struct Step {
  double om, beta, ab, sq_om, isb, s2, gcoef, ddim_a0, ddim_k, isa;
  bool first;
};

// Per-ridge tables of one chunk at one timestep (vectors over the chunk's modes; all zero in padded
// lanes). With signal = ᾱλ + γ and c = signal + (1−ᾱ):
//   inv = 1/c,  A = (signal + (1−ᾱ) − β)/(c √(1−β)),  W = √(1−ᾱ)/c,  GW = gcoef·W,  NO = signal/c.
// At the optimum (untrained fraction e = 0) these are the chain coefficient a (DDPM), the filter w,
// its contribution to the mean gain, and the loss residual 1 − (1−ᾱ)h. A null direction at t = 1
// (λ = γ = 0, 1−ᾱ₁ = β₁) has A = 0 exactly.
struct RidgeTables {
  v8d *inv, *A, *W, *GW, *NO;
};

// Per-setting scalars: the untrained fraction is e = scale·X with X a per-training table
// (exp(−2ητ(ᾱλ + 1−ᾱ)) for gradient flow, so that scale = exp(−2ητγ); (1−2ηc)ⁿ for n GD steps,
// scale = 1). With P = X·inv the filter and chain terms are affine in P (and in X for init ≠ 0):
//   w = W − c_w P + i_w X,      a = A + c_a P + i_a X,      gcoef·w = GW − c_g P + i_g X,
//   1 − (1−ᾱ)h = NO + c_r P + i_r X,
// (theory.md §3–§4 per mode, with the shared division taken out).
struct SettingScalars {
  double c_w, c_a, c_g, c_r, i_w, i_a, i_g, i_r;
};

inline SettingScalars setting_scalars(const Step& st, double scale, double init) {
  SettingScalars k;
  k.c_w = st.sq_om * scale;
  k.c_a = st.isb * st.beta * scale;
  k.c_g = st.gcoef * st.sq_om * scale;
  k.c_r = st.om * scale;
  k.i_w = init * scale;
  k.i_a = -st.isb * st.beta * init / st.sq_om * scale;
  k.i_g = st.gcoef * init * scale;
  k.i_r = -st.sq_om * init * scale;
  return k;
}

// One setting's update of one chunk at one timestep: the chain's variance and mean gain, and (with
// kLosses) acc[0] = Σ residual², acc[1 + q] = Σ w² energy_q over the chunk (lane-wise; energies are
// zero in padded lanes). kE is the number of energies when it is 0, 1 or 2, else −1 (run time).
template <bool kDDIM, bool kHasE, bool kHasInit, bool kLosses, int kE>
inline __attribute__((always_inline)) void update_chunk(const Step& st, const RidgeTables& tb, const v8d* X,
                                                         const SettingScalars& k, v8d* var, v8d* gain,
                                                         const v8d* energies, Index n_energies, v8d* acc_out) {
  v8d acc0 = splat(0.0), acc1 = splat(0.0), acc2 = splat(0.0);
  for (Index v = 0; v < kVecs; ++v) {
    const v8d P = kHasE ? X[v] * tb.inv[v] : splat(0.0);
    v8d a, gw, w = splat(0.0);
    if (kDDIM || kLosses) {
      w = kHasE ? tb.W[v] - k.c_w * P : tb.W[v];
      if (kHasInit) w += k.i_w * X[v];
    }
    v8d r = splat(0.0);
    if (kLosses || kDDIM) {
      r = kHasE ? tb.NO[v] + k.c_r * P : tb.NO[v];
      if (kHasInit) r += k.i_r * X[v];
    }
    if (!kDDIM) {
      a = kHasE ? tb.A[v] + k.c_a * P : tb.A[v];
      if (kHasInit) a += k.i_a * X[v];
      gw = kHasE ? tb.GW[v] - k.c_g * P : tb.GW[v];
      if (kHasInit) gw += k.i_g * X[v];
      var[v] = a * a * var[v] + st.s2;
    } else {
      a = st.first ? r * st.isa : st.ddim_a0 + st.ddim_k * w;
      gw = st.gcoef * w;
      var[v] = a * a * var[v];
    }
    gain[v] = a * gain[v] + gw;
    if (kLosses) {
      acc0 += r * r;
      const v8d w2 = w * w;
      if (kE >= 1) acc1 += w2 * energies[v];
      if (kE >= 2) acc2 += w2 * energies[kVecs + v];
      if (kE < 0)
        for (Index q = 0; q < n_energies; ++q) acc_out[1 + q] += w2 * energies[q * kVecs + v];
    }
  }
  if (kLosses) {
    acc_out[0] = acc0;
    if (kE >= 1) acc_out[1] = acc1;
    if (kE >= 2) acc_out[2] = acc2;
  }
}

// Ridge settings [r0, r1) × training settings [j0, j1), every mode.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif
void grid_task(const GridProblem& P, Index r0, Index r1, Index j0, Index j1) {
  const ScheduleArrays& s = *P.s;
  const std::vector<TrainingSpec>& trs = *P.trainings;
  const Index T = s.T(), d = P.lambda->size(), E = P.energies->rows();
  const Index G = r1 - r0, J = j1 - j0, S = G * J;
  const Index Jtot = static_cast<Index>(trs.size());
  const bool ddim = P.chain->sampler == Sampler::DDIM;
  const bool losses = E > 0;
  constexpr Index B = kModeChunk, V = kVecs;
  // Scratch: per-ridge and per-training tables, per-setting state, padded chunk inputs, losses.
  V8Array t_inv(G * V), t_A(G * V), t_W(G * V), t_GW(G * V), t_NO(G * V), X(J * V), gd(V);
  V8Array var(S * V), gain(S * V), lamv(V), mask(V), env(E * V), acc(1 + E);
  std::vector<double> loss_buf(losses ? T * S * E : 0, 0.0);  // [k][setting][q]
  std::vector<int> kind(J);  // 0: optimum (e = 0), 1: flow, 2: gradient descent
  std::vector<double> ktau(J);
  for (Index j = 0; j < J; ++j) {
    const TrainingSpec& tr = trs[static_cast<size_t>(j0 + j)];
    kind[j] = tr.kind == Training::Flow ? (std::isinf(tr.time) ? 0 : 1) : (tr.kind == Training::GradientDescent ? 2 : 0);
    ktau[j] = -2.0 * tr.learning_rate * tr.time;
  }
  const int ecode = !losses ? 0 : (E <= 2 ? static_cast<int>(E) : 3);
  const double* lam_all = P.lambda->data();
  for (Index c0 = 0; c0 < d; c0 += B) {
    const Index m = std::min(B, d - c0);
    // Pad the chunk: λ = 0 and mask = 0 beyond d; the tables are then 0 there, so padded lanes add
    // nothing to the losses and their (finite) state is never written out.
    for (Index i = 0; i < B; ++i) {
      lamv[i / kLanes][i % kLanes] = i < m ? lam_all[c0 + i] : 0.0;
      mask[i / kLanes][i % kLanes] = i < m ? 1.0 : 0.0;
      for (Index q = 0; q < E; ++q) env[q * V + i / kLanes][i % kLanes] = i < m ? (*P.energies)(q, c0 + i) : 0.0;
    }
    var.fill(1.0);
    gain.fill(0.0);
    for (Index k = T - 1; k >= 0; --k) {
      Step st;
      st.om = s.one_minus_abar(k);
      st.beta = s.beta(k);
      st.ab = s.abar(k);
      st.sq_om = P.sq_om(k);
      st.isb = P.inv_sq1mb(k);
      st.first = s.abar_prev(k) == 1.0;
      st.ddim_a0 = P.ddim_a0(k);
      st.ddim_k = P.ddim_k(k);
      st.isa = 1.0 / P.sq_abar(k);
      if (!ddim) {
        st.s2 = P.chain->sigma2(k);
        st.gcoef = st.beta / st.sq_om * P.sq_abar(k) * st.isb;
      } else {
        st.s2 = 0.0;
        st.gcoef = -st.ddim_k * P.sq_abar(k);
      }
      const double ab = st.ab, om = st.om, omb = st.om - st.beta;
      const double a_coef = st.isb, gw_coef = st.gcoef * st.sq_om;
      for (Index r = 0; r < G; ++r) {
        const double gamma = (*P.ridges)(r0 + r, k);
        for (Index v = 0; v < V; ++v) {
          const Index o = r * V + v;
          const v8d signal = ab * lamv[v] + gamma;
          const v8d c = mask[v] / (signal + om);
          t_inv[o] = c;
          t_A[o] = (a_coef * (signal + omb)) * c;
          t_W[o] = st.sq_om * c;
          t_GW[o] = gw_coef * c;
          t_NO[o] = signal * c;
        }
      }
      for (Index j = 0; j < J; ++j)
        if (kind[j] == 1)
          for (Index v = 0; v < V; ++v) X[j * V + v] = exp_nonpositive(ktau[j] * (ab * lamv[v] + om)) * mask[v];
      for (Index r = 0; r < G; ++r) {
        const double gamma = (*P.ridges)(r0 + r, k);
        const Index o = r * V;
        const RidgeTables tb{t_inv.data() + o, t_A.data() + o, t_W.data() + o, t_GW.data() + o, t_NO.data() + o};
        for (Index j = 0; j < J; ++j) {
          const TrainingSpec& tr = trs[static_cast<size_t>(j0 + j)];
          const Index sl = r * J + j;
          v8d* vv = var.data() + sl * V;
          v8d* gg = gain.data() + sl * V;
          const v8d* Xp = nullptr;
          double scale = 1.0;
          if (kind[j] == 1) {
            Xp = X.data() + j * V;
            scale = exp_nonpositive(splat(ktau[j] * gamma))[0];
          } else if (kind[j] == 2) {
            const double two_eta = 2.0 * tr.learning_rate;
            for (Index i = 0; i < B; ++i)
              gd[i / kLanes][i % kLanes] =
                  mask[i / kLanes][i % kLanes] *
                  std::pow(1.0 - two_eta * (ab * lamv[i / kLanes][i % kLanes] + gamma + om), tr.time);
            Xp = gd.data();
          }
          const bool has_e = Xp != nullptr, has_init = has_e && tr.init != 0.0;
          const SettingScalars ks = setting_scalars(st, scale, tr.init);
          if (ecode == 3) acc.fill(0.0);
#define LINDIFF_UPD(D, HE, HI, L, KE) \
  update_chunk<D, HE, HI, L, KE>(st, tb, Xp, ks, vv, gg, env.data(), E, acc.data())
#define LINDIFF_UPD_E(D, HE, HI)                      \
  switch (ecode) {                                    \
    case 0: LINDIFF_UPD(D, HE, HI, false, 0); break;  \
    case 1: LINDIFF_UPD(D, HE, HI, true, 1); break;   \
    case 2: LINDIFF_UPD(D, HE, HI, true, 2); break;   \
    default: LINDIFF_UPD(D, HE, HI, true, -1); break; \
  }
          // The specialised loops, all inlined into this clone.
          if (!ddim) {
            if (!has_e) { LINDIFF_UPD_E(false, false, false) }
            else if (!has_init) { LINDIFF_UPD_E(false, true, false) }
            else { LINDIFF_UPD_E(false, true, true) }
          } else {
            if (!has_e) { LINDIFF_UPD_E(true, false, false) }
            else if (!has_init) { LINDIFF_UPD_E(true, true, false) }
            else { LINDIFF_UPD_E(true, true, true) }
          }
#undef LINDIFF_UPD_E
#undef LINDIFF_UPD
          if (losses) {
            const double base = hsum(acc[0]);
            double* lb = loss_buf.data() + (k * S + sl) * E;
            for (Index q = 0; q < E; ++q) lb[q] += base + ab * hsum(acc[1 + q]);
          }
        }
      }
    }
    for (Index sl = 0; sl < S; ++sl) {
      const Index sgl = (r0 + sl / J) * Jtot + (j0 + sl % J);
      double* vo = P.out->variance.data() + sgl * d + c0;
      double* go = P.out->gain.data() + sgl * d + c0;
      for (Index i = 0; i < m; ++i) {
        vo[i] = var[sl * V + i / kLanes][i % kLanes];
        go[i] = gain[sl * V + i / kLanes][i % kLanes];
      }
    }
  }
  if (losses) {
    for (Index sl = 0; sl < S; ++sl) {
      const Index sgl = (r0 + sl / J) * Jtot + (j0 + sl % J);
      for (Index q = 0; q < E; ++q) {
        double* row = P.out->losses.data() + (sgl * E + q) * T;
        for (Index k = 0; k < T; ++k) row[k] = loss_buf[(k * S + sl) * E + q];
      }
    }
  }
}

// Split R ridges × J trainings into about `want` blocks, ridges first (each ridge block recomputes
// the exponentials of its trainings, each training block the divisions of its ridges).
void split_grid(Index R, Index J, Index want, Index& nr, Index& nj) {
  nr = std::min(R, want);
  nj = std::min(J, std::max<Index>(1, (want + nr - 1) / nr));
}

}  // namespace

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
  check(ridges.allFinite() && (ridges.array() >= 0).all(), "evaluate_grid: ridges must be finite and >= 0");
  for (const TrainingSpec& tr : trainings) {
    check(tr.learning_rate > 0 && std::isfinite(tr.learning_rate), "evaluate_grid: learning rates must be > 0");
    check(std::isfinite(tr.init), "evaluate_grid: init must be finite");
    check(tr.time >= 0, "evaluate_grid: training times must be >= 0");
  }
  const Index J = static_cast<Index>(trainings.size());
  const Index R = ridges.rows();
  const Index S = R * J;
  GridResult res;
  res.variance.resize(S, d);
  res.gain.resize(S, d);
  res.losses.resize(S * E, T);
  GridProblem P;
  P.s = &s;
  P.lambda = &lambda;
  P.ridges = &ridges;
  P.trainings = &trainings;
  P.chain = &chain;
  P.energies = &energies;
  P.out = &res;
  P.inv_sq1mb.resize(T);
  P.sq_abar.resize(T);
  P.sq_om.resize(T);
  P.ddim_a0.resize(T);
  P.ddim_k.resize(T);
  for (Index k = 0; k < T; ++k) {
    const double b = s.beta(k), ab = s.abar(k), abp = s.abar_prev(k), om = s.one_minus_abar(k);
    P.inv_sq1mb(k) = 1.0 / std::sqrt(1.0 - b);
    P.sq_abar(k) = std::sqrt(ab);
    P.sq_om(k) = std::sqrt(om);
    P.ddim_a0(k) = std::sqrt(abp / ab);
    P.ddim_k(k) = std::sqrt(1.0 - abp) - std::sqrt(abp * om / ab);
  }
  // Blocks for load balance only (results do not depend on the cut): one per worker when the grid
  // divides evenly, else a few per worker.
  const Index w = std::max(1, workers);
  Index nr = 1, nj = 1;
  if (w > 1) split_grid(R, J, (S % w == 0 || S >= 8 * w) ? w : 4 * w, nr, nj);
  const Index n_tasks = nr * nj;
  parallel_for(n_tasks, workers, [&](Index t) {
    const Index br = t / nj, bj = t % nj;
    const Index r0 = br * R / nr, r1 = (br + 1) * R / nr;
    const Index j0 = bj * J / nj, j1 = (bj + 1) * J / nj;
    if (r1 > r0 && j1 > j0) grid_task(P, r0, r1, j0, j1);
  });
  return res;
}

}  // namespace lindiff
