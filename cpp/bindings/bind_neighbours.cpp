#include <Python.h>

#include "common.hpp"
#include "lindiff/neighbours.hpp"

namespace lindiff::bindings {
namespace {

}  // namespace

void bind_neighbours(py::module_& m) {
  m.attr("NEIGHBOUR_EXTRA_CANDIDATES") = py::int_(kExtraCandidates);
  m.def(
      "nearest_neighbours",
      [](const ConstRowRef& Q, const ConstRowRef& R, Index k, int workers, Eigen::Ref<RowMatrix> dist,
         Eigen::Ref<IndexRowMatrix> index) {
        check_workers(workers);
        NeighbourStats st;
        {
          py::gil_scoped_release release;
          st = nearest_neighbours(Q, R, k, workers, check_signals, dist, index);
        }
        return st.fallbacks;
      },
      py::arg("Q"), py::arg("R"), py::arg("k"), py::arg("workers"), py::arg("dist").noconvert(),
      py::arg("index").noconvert(),
      "Exact k nearest neighbours of the rows of Q among the rows of R (fills dist and index, n×k); "
      "returns the number of queries that needed the exact full scan.");
}

}  // namespace lindiff::bindings
