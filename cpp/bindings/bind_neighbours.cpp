#include "common.hpp"

namespace lindiff::bindings {
// Registered ahead of the implementation (issue 6).
void bind_neighbours(py::module_& m) {}
}  // namespace lindiff::bindings
