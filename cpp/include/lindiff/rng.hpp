// Counter-free, splittable-by-seeding random numbers for the samplers.
//
// Engine: xoshiro256++ (Blackman & Vigna 2019), 256 bits of state, period 2^256 − 1.
//
// Normal stream (NormalStream, what the samplers use): EIGHT xoshiro256++ lanes advanced in lock
// step, so that one SIMD register (AVX-512), two (AVX2) or four (SSE) hold the eight states and the
// Box–Muller transform runs on eight pairs at once. A stream is seeded with four 64-bit words (one
// block of samples gets one stream; the words come from numpy.random.SeedSequence on the Python
// side): lane 0 starts from those words, lane l from lane l−1 advanced by the xoshiro jump
// (2^128 steps), so the eight lanes are non-overlapping pieces of one xoshiro256++ sequence. An
// all-zero seed (the one state xoshiro cannot leave) is replaced by a fixed nonzero constant.
//
// Transform: Box–Muller, one "round" = one output x₁ and one x₂ of every lane (16 words) → 16
// normals. For lane l:
//     u₁ = 1 − (x₁ >> 12)·2⁻⁵² ∈ (0, 1],   u₂ = (x₂ >> 12)·2⁻⁵² ∈ [0, 1)   (52-bit uniforms),
//     r = √(−2 ln u₁),  out[l] = r cos(2π u₂),  out[8 + l] = r sin(2π u₂).
// ln, sin and cos are branch-free polynomial evaluations (accurate to a few ulp) written once on
// SIMD vectors of any width, without FMA contraction; sqrt and division are correctly rounded. The
// AVX-512, AVX2 and baseline (x86-64-v2) builds therefore give bit-identical numbers (tested).
// The stream is continuous: it hands out round after round, and a call that stops inside a round
// keeps the rest for the next call, so n normals drawn in pieces equal n drawn at once.
//
// Throughput (one core of the 2-vCPU AMD EPYC this was developed on, x86-64-v2 build, runtime
// dispatch): about 500–560 M normals/s on the AVX-512 path, 260–290 M/s AVX2, 130–200 M/s
// baseline SSE; NumPy's PCG64 ziggurat gives 70–110 M/s. See benchmarks/bench_sampling.py --only rng.
#pragma once
#include <cstdint>
#include <cstring>

#include "lindiff/types.hpp"

namespace lindiff {

class Xoshiro256pp {
 public:
  explicit Xoshiro256pp(const std::uint64_t seed[4]) {
    for (int i = 0; i < 4; ++i) s_[i] = seed[i];
    if ((s_[0] | s_[1] | s_[2] | s_[3]) == 0) s_[0] = 0x9E3779B97F4A7C15ULL;
  }
  std::uint64_t next() {
    const std::uint64_t result = rotl(s_[0] + s_[3], 23) + s_[0];
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  // Advance by 2^128 steps (the reference implementation's jump polynomial).
  void jump() {
    static constexpr std::uint64_t kJump[4] = {0x180ec6d33cfd0abaULL, 0xd5a61266f0c9392cULL,
                                               0xa9582618e03fc9aaULL, 0x39abdc4529b1661cULL};
    std::uint64_t t[4] = {0, 0, 0, 0};
    for (std::uint64_t word : kJump)
      for (int b = 0; b < 64; ++b) {
        if (word & (std::uint64_t{1} << b))
          for (int i = 0; i < 4; ++i) t[i] ^= s_[i];
        next();
      }
    for (int i = 0; i < 4; ++i) s_[i] = t[i];
  }
  void state(std::uint64_t out[4]) const {
    for (int i = 0; i < 4; ++i) out[i] = s_[i];
  }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::uint64_t s_[4];
};

// The samplers' generator: 8 xoshiro256++ lanes + Box–Muller (see the header comment).
class NormalStream {
 public:
  static constexpr int kLanes = 8;
  static constexpr int kRound = 2 * kLanes;  // normals per round

  explicit NormalStream(const std::uint64_t seed[4]) {
    Xoshiro256pp g(seed);
    for (int l = 0; l < kLanes; ++l) {
      if (l > 0) g.jump();
      std::uint64_t w[4];
      g.state(w);
      for (int i = 0; i < 4; ++i) s[i][l] = w[i];
    }
  }
  // Seeded from four outputs of g (g is advanced).
  explicit NormalStream(Xoshiro256pp& g) : NormalStream(Seed(g).w) {}

  // out[0..n) = the next n normals of the stream. Runtime-dispatched (sampling.cpp).
  void fill(double* out, Index n);

  // State, public for the SIMD kernels in sampling.cpp: s[i][l] is word i of lane l; buf[pos..16)
  // are normals of the current round not yet handed out.
  alignas(64) std::uint64_t s[4][kLanes];
  alignas(64) double buf[kRound] = {};
  int pos = kRound;

 private:
  struct Seed {
    explicit Seed(Xoshiro256pp& g) {
      for (auto& x : w) x = g.next();
    }
    std::uint64_t w[4];
  };
};

// Fill out[0..n) with standard normals: a NormalStream seeded from four outputs of `g` (so `g`
// advances by 4 per call and successive calls give fresh numbers). Kept for callers holding a
// scalar engine; the samplers keep one NormalStream per block instead.
void fill_standard_normal(Xoshiro256pp& g, double* out, Index n);

}  // namespace lindiff
