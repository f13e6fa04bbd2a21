#include "common.hpp"
#include "lindiff/stats.hpp"

namespace lindiff::bindings {

void bind_stats(py::module_& m) {
  m.def(
      "column_mean",
      [](const StridedRef& X, const Vector& shift, int workers) {
        check_workers(workers);
        py::gil_scoped_release release;
        return column_mean(X, shift, workers);
      },
      py::arg("X"), py::arg("shift"), py::arg("workers"));
  m.def(
      "centred_scatter",
      [](const StridedRef& X, const Vector& shift, const Vector& mean, int workers, Index chunk_rows) {
        check_workers(workers);
        py::gil_scoped_release release;
        return centred_scatter(X, shift, mean, workers, chunk_rows);
      },
      py::arg("X"), py::arg("shift"), py::arg("mean"), py::arg("workers"), py::arg("chunk_rows") = 0);
  m.def(
      "centred_rows",
      [](const StridedRef& X, const Vector& shift, const Vector& mean, int workers) {
        check_workers(workers);
        py::gil_scoped_release release;
        return centred_rows(X, shift, mean, workers);
      },
      py::arg("X"), py::arg("shift"), py::arg("mean"), py::arg("workers"));
  m.def(
      "factor_scatter",
      [](const ConstRowRef& F, int workers) {
        check_workers(workers);
        py::gil_scoped_release release;
        return gram_of_factor_t(F, workers);
      },
      py::arg("F"), py::arg("workers"));
  m.def(
      "bartlett_scatter",
      [](const Eigen::Ref<const Vector>& sqrt_lambda, const Eigen::Ref<const Matrix>& V,
         const Eigen::Ref<const Vector>& c, const ConstRowRef& z, int workers) {
        check_workers(workers);
        py::gil_scoped_release release;
        return bartlett_scatter(sqrt_lambda, V, c, z, workers);
      },
      py::arg("sqrt_lambda"), py::arg("V"), py::arg("c"), py::arg("z"), py::arg("workers"));
}

}  // namespace lindiff::bindings
