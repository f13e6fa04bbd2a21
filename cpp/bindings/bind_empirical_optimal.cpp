#include "common.hpp"

namespace lindiff::bindings {
// Registered ahead of the implementation (issue 6).
void bind_empirical_optimal(py::module_& m) {}
}  // namespace lindiff::bindings
