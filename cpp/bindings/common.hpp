// Shared helpers for the pybind11 bindings (the only place pybind11 is used).
#pragma once
#include <pybind11/eigen.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <stdexcept>
#include <string>

#include "lindiff/types.hpp"

namespace lindiff::bindings {
namespace py = pybind11;

inline int check_workers(int workers) {
  if (workers < 1) throw std::invalid_argument("workers must be >= 1 (resolved in Python)");
  return workers;
}

void bind_linalg(py::module_& m);
void bind_stats(py::module_& m);
void bind_model(py::module_& m);
void bind_sampling(py::module_& m);
void bind_training(py::module_& m);
void bind_empirical_optimal(py::module_& m);
void bind_neighbours(py::module_& m);

}  // namespace lindiff::bindings
