// Shared helpers for the pybind11 bindings (the only place pybind11 is used).
#pragma once
#include <Python.h>
#include <pybind11/eigen.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <functional>
#include <stdexcept>
#include <string>

#include "lindiff/types.hpp"

namespace lindiff::bindings {
namespace py = pybind11;

inline int check_workers(int workers) {
  if (workers < 1) throw std::invalid_argument("workers must be >= 1 (resolved in Python)");
  return workers;
}

// For long kernels, called on the calling thread between blocks or steps (with the GIL released
// around the kernel): take the GIL briefly and let Python raise KeyboardInterrupt on Ctrl-C.
inline void check_signals() {
  py::gil_scoped_acquire acquire;
  if (PyErr_CheckSignals() != 0) throw py::error_already_set();
}

// A kernel's tick callback: check for Ctrl-C, then report the work units done to `progress` (a
// Python callable taking an int, e.g. a tqdm bar's update, or None).
inline std::function<void(Index)> progress_tick(const py::object& progress) {
  const bool report = !progress.is_none();
  return [progress, report](Index units) {
    py::gil_scoped_acquire acquire;
    if (PyErr_CheckSignals() != 0) throw py::error_already_set();
    if (report && units > 0) progress(units);
  };
}

void bind_linalg(py::module_& m);
void bind_stats(py::module_& m);
void bind_model(py::module_& m);
void bind_sampling(py::module_& m);
void bind_training(py::module_& m);
void bind_empirical_optimal(py::module_& m);
void bind_neighbours(py::module_& m);

}  // namespace lindiff::bindings
