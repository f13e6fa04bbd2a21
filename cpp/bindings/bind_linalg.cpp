#include "common.hpp"
#include "lindiff/blas.hpp"
#include "lindiff/spectral.hpp"

namespace lindiff::bindings {

void bind_linalg(py::module_& m) {
  m.def("blas_load", &blas::load, py::arg("path"),
        "Use the ILP64 OpenBLAS at `path` for dense kernels; False if it lacks the symbols.");
  m.def("blas_unload", &blas::unload, "Fall back to Eigen's own dense kernels.");
  m.def("blas_info", []() {
    const auto i = blas::info();
    py::dict d;
    d["provider"] = i.loaded ? "openblas" : "eigen";
    d["path"] = i.path;
    d["symbols"] = i.symbols;
    d["config"] = i.config;
    return d;
  });
  m.def(
      "eigh_descending",
      [](const Eigen::Ref<const Matrix>& S, Index rank_bound, int workers) {
        check_workers(workers);
        Matrix copy = S;
        SpectralResult r;
        {
          py::gil_scoped_release release;
          r = eigh_descending(std::move(copy), rank_bound, workers);
        }
        return py::make_tuple(std::move(r.values), std::move(r.vectors));
      },
      py::arg("S"), py::arg("rank_bound"), py::arg("workers"));
  m.def(
      "dual_eigh",
      [](const ConstRowRef& F, Index rank_bound, int workers) {
        check_workers(workers);
        SpectralResult r;
        {
          py::gil_scoped_release release;
          r = dual_eigh(F, rank_bound, workers);
        }
        return py::make_tuple(std::move(r.values), std::move(r.vectors));
      },
      py::arg("F"), py::arg("rank_bound"), py::arg("workers"));
  m.def(
      "complete_basis",
      [](const Eigen::Ref<const Matrix>& A, int workers) {
        check_workers(workers);
        Matrix a = A;
        py::gil_scoped_release release;
        return blas::complete_basis(a, workers);
      },
      py::arg("A"), py::arg("workers"));
}

}  // namespace lindiff::bindings
