// exp(x) for x <= 0, branch-free, written once for scalars (double) and for GCC vector types of
// doubles (e.g. `double __attribute__((vector_size(64)))`), so that the grid kernel (model.cpp, on
// explicit 8-lane vectors) and the empirical-optimal sampler (empirical_optimal.cpp, on scalars in
// loops the compiler vectorises) share one implementation.
//
// Method: Cody–Waite reduction x = n·ln2 + r with |r| <= ln2/2 (ln2 split into a high part exact in
// 32 bits and a low part); exp(r) by its Taylor series to r¹³ (truncation below 4e-18 relative);
// 2ⁿ built in the exponent bits. n comes from adding 1.5·2⁵², which rounds x/ln2 to the nearest
// integer in the low mantissa bits. Within about 1 ulp of the correctly rounded value. Inputs below
// −708.39 (results below DBL_MIN) give 0, an absolute error below 2.3e-308; −inf gives 0. No FMA is
// required: the same expression rounds identically wherever the compiler does not contract it.
#pragma once
#include <cstdint>
#include <cstring>

namespace lindiff {

namespace detail {
template <class V>
struct ExpBits {  // an integer type of V's size and lane count (vector types)
  typedef long long type __attribute__((vector_size(sizeof(V))));
};
template <>
struct ExpBits<double> {
  using type = std::int64_t;
};
template <class To, class From>
__attribute__((always_inline)) inline To bit_cast(const From& from) {
  static_assert(sizeof(To) == sizeof(From), "bit_cast: sizes differ");
  To to;
  std::memcpy(&to, &from, sizeof to);
  return to;
}
}  // namespace detail

template <class V>
__attribute__((always_inline)) inline V exp_nonpositive(V x) {
  using B = typename detail::ExpBits<V>::type;
  const V zero = V{};  // 0.0, or the all-zero vector
  const V lo = zero + (-708.39);
  const V shift = zero + 6755399441055744.0;  // 1.5·2⁵²
  const V xc = x < lo ? lo : x;
  const V shifted = xc * 1.4426950408889634 + shift;
  const V n = shifted - shift;
  const V r = (xc - n * 6.93147180369123816490e-01) - n * 1.90821492927058770002e-10;  // ln2 hi, lo
  V p = zero + 1.0 / 6227020800.0;  // 1/13!
  p = p * r + 1.0 / 479001600.0;
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  const B k = detail::bit_cast<B>(shifted) - detail::bit_cast<B>(shift);  // n, exactly
  const V scale = detail::bit_cast<V>(B((k + 1023) << 52));               // 2ⁿ, n in [−1022, 0]
  return x < lo ? zero : p * scale;
}

}  // namespace lindiff
