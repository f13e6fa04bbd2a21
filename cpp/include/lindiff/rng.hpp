// Counter-free, splittable-by-seeding random numbers for the samplers.
//
// Generator: xoshiro256++ (Blackman & Vigna 2019), 256 bits of state, period 2^256 − 1. Each block of
// samples gets its own stream, seeded with four 64-bit words drawn on the Python side from
// numpy.random.SeedSequence; there is no jump/split inside C++. An all-zero seed (the one state
// xoshiro cannot leave) is replaced by a fixed nonzero constant.
//
// Normal transform: Box–Muller. For each pair of 64-bit outputs (x₁, x₂):
//     u₁ = 1 − (x₁ >> 12)·2⁻⁵² ∈ (0, 1],   u₂ = (x₂ >> 12)·2⁻⁵² ∈ [0, 1)   (52-bit uniforms),
//     r = √(−2 ln u₁),  z = r cos(2π u₂),  z' = r sin(2π u₂).
// Pairs are made in chunks of up to kNormalChunk; within a chunk of p pairs the p cosines come first
// and then the p sines (this order keeps the arithmetic loop vectorisable). ln, sin and cos are
// branch-free polynomial evaluations (accurate to a few ulp) so that the compiler can vectorise them;
// a fill of n numbers consumes 2·⌈n/2⌉ outputs of the generator, and an odd n drops its last sine.
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

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::uint64_t s_[4];
};

namespace detail {

inline double bits_to_double(std::uint64_t b) {
  double x;
  std::memcpy(&x, &b, sizeof x);
  return x;
}
inline std::uint64_t double_to_bits(double x) {
  std::uint64_t b;
  std::memcpy(&b, &x, sizeof b);
  return b;
}

// ln u for normal, positive, finite u (here u ∈ [2⁻⁵², 1]): u = 2^e·m with m ∈ [√½, √2),
// ln m = 2 atanh(s), s = (m−1)/(m+1), |s| ≤ 0.1716, series to s²³ (truncation < 1e-17 relative).
inline double log_positive(double u) {
  // Branch-free (integer masks instead of selects) so that the loop calling it vectorises.
  const std::uint64_t b = double_to_bits(u);
  const std::uint64_t mant = b & 0x000FFFFFFFFFFFFFULL;
  const std::uint64_t big = static_cast<std::uint64_t>(mant > 0x6A09E667F3BCCULL);  // m > √2
  const double m = bits_to_double(mant | ((1023ULL - big) << 52));                  // [√½, √2)
  // Exponent as a double without an int64→double conversion (not vectorisable before AVX-512).
  const double e = bits_to_double(0x4330000000000000ULL | ((b >> 52) + big)) - 4503599627370496.0 - 1023.0;
  const double s = (m - 1.0) / (m + 1.0);
  const double s2 = s * s;
  double p = 1.0 / 23;
  p = p * s2 + 1.0 / 21;
  p = p * s2 + 1.0 / 19;
  p = p * s2 + 1.0 / 17;
  p = p * s2 + 1.0 / 15;
  p = p * s2 + 1.0 / 13;
  p = p * s2 + 1.0 / 11;
  p = p * s2 + 1.0 / 9;
  p = p * s2 + 1.0 / 7;
  p = p * s2 + 1.0 / 5;
  p = p * s2 + 1.0 / 3;
  const double lnm = 2.0 * s + 2.0 * s * s2 * p;
  constexpr double ln2_hi = 6.93147180369123816490e-01;  // high bits of ln 2, exact times e
  constexpr double ln2_lo = 1.90821492927058770002e-10;
  return e * ln2_hi + (lnm + e * ln2_lo);
}

// cos(2πu) and sin(2πu) for u ∈ [0, 1): quadrant k = rint(4u), φ = (4u − k)·π/2 ∈ [−π/4, π/4].
inline void sincos_2pi(double u, double& c_out, double& s_out) {
  const double q = 4.0 * u;
  const double shifted = q + 6755399441055744.0;  // 1.5·2⁵²: rint(q) lands in the low mantissa bits
  const double k = shifted - 6755399441055744.0;
  const std::uint64_t kk = double_to_bits(shifted) & 3ULL;  // k mod 4
  const double f = q - k;
  const double x = f * 1.5707963267948966;
  const double x2 = x * x;
  double sp = -1.0 / 1307674368000.0;  // −1/15!
  sp = sp * x2 + 1.0 / 6227020800.0;
  sp = sp * x2 - 1.0 / 39916800.0;
  sp = sp * x2 + 1.0 / 362880.0;
  sp = sp * x2 - 1.0 / 5040.0;
  sp = sp * x2 + 1.0 / 120.0;
  sp = sp * x2 - 1.0 / 6.0;
  const double sn = x + x * x2 * sp;
  double cp = 1.0 / 20922789888000.0;  // 1/16!
  cp = cp * x2 - 1.0 / 87178291200.0;
  cp = cp * x2 + 1.0 / 479001600.0;
  cp = cp * x2 - 1.0 / 3628800.0;
  cp = cp * x2 + 1.0 / 40320.0;
  cp = cp * x2 - 1.0 / 720.0;
  cp = cp * x2 + 1.0 / 24.0;
  cp = cp * x2 - 0.5;
  const double cs = 1.0 + x2 * cp;
  // Rotate by k quarter turns: odd k swaps sin and cos; sin < 0 for k ∈ {2, 3}, cos < 0 for {1, 2}.
  const std::uint64_t swap = 0ULL - (kk & 1ULL);
  const std::uint64_t bs = double_to_bits(sn), bc = double_to_bits(cs);
  const std::uint64_t s0 = (bs & ~swap) | (bc & swap);
  const std::uint64_t c0 = (bc & ~swap) | (bs & swap);
  s_out = bits_to_double(s0 ^ ((kk >> 1) << 63));
  c_out = bits_to_double(c0 ^ (((kk ^ (kk >> 1)) & 1ULL) << 63));
}

}  // namespace detail

constexpr Index kNormalChunk = 128;  // pairs per Box–Muller chunk

// Fill out[0..n) with standard normals from `g` (see the header comment for the exact order).
// Defined in sampling.cpp, which is compiled so that the chunk loop vectorises, with a runtime-
// dispatched AVX2 clone; all clones give bit-identical numbers (no FMA contraction).
void fill_standard_normal(Xoshiro256pp& g, double* out, Index n);

}  // namespace lindiff
