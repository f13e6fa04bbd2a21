#include "common.hpp"

PYBIND11_MODULE(_core, m) {
  m.doc() = "lindiff's compiled core (private: use the lindiff package API).";
  m.attr("__version__") = LINDIFF_VERSION;
#if defined(__AVX512F__)
  m.attr("simd") = "avx512";
#elif defined(__AVX2__)
  m.attr("simd") = "avx2";
#elif defined(__SSE4_2__)
  m.attr("simd") = "sse4.2";
#else
  m.attr("simd") = "baseline";
#endif
  lindiff::bindings::bind_linalg(m);
  lindiff::bindings::bind_stats(m);
  lindiff::bindings::bind_model(m);
  lindiff::bindings::bind_sampling(m);
  lindiff::bindings::bind_training(m);
  lindiff::bindings::bind_empirical_optimal(m);
  lindiff::bindings::bind_neighbours(m);
}
