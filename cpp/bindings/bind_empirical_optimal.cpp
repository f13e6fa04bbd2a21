#include <Python.h>

#include "common.hpp"
#include "lindiff/empirical_optimal.hpp"

namespace lindiff::bindings {
namespace {

using SeedArray = py::array_t<std::uint64_t, py::array::c_style | py::array::forcecast>;
using DoubleArray = py::array_t<double, py::array::c_style | py::array::forcecast>;

}  // namespace

void bind_empirical_optimal(py::module_& m) {
  m.def(
      "empirical_optimal_predict",
      [](const ConstRowRef& X, const ConstRowRef& x, double s, double v, int workers, Eigen::Ref<RowMatrix> eps,
         Eigen::Ref<RowMatrix> mean) {
        check_workers(workers);
        py::gil_scoped_release release;
        empirical_optimal_predict(X, x, s, v, workers, eps, mean);
      },
      py::arg("X"), py::arg("x"), py::arg("s"), py::arg("v"), py::arg("workers"), py::arg("eps").noconvert(),
      py::arg("mean").noconvert());
  m.def(
      "sample_empirical_optimal",
      [](const ConstRowRef& X, const Vector& sqrt_abar, const Vector& one_minus_abar, const Vector& p,
         const Vector& q, const Vector& sigma, const SeedArray& seeds, int workers, Eigen::Ref<RowMatrix> out,
         const py::object& noise, const py::object& progress) {
        ChainSpecSampling chain;
        chain.sigma = sigma;
        const Index T = sigma.size(), n = out.rows(), d = out.cols();
        DoubleArray keep;
        if (!noise.is_none()) {
          keep = DoubleArray::ensure(noise);
          if (!keep || keep.ndim() != 3 || keep.shape(0) != T + 1 || keep.shape(1) != n || keep.shape(2) != d)
            throw std::invalid_argument("noise must have shape (T+1, n, d)");
          chain.noise = keep.data();
        }
        SampleRun run;
        run.seeds = seeds.data();
        run.n_seed_words = static_cast<Index>(seeds.size());
        run.workers = check_workers(workers);
        run.tick = progress_tick(progress);
        py::gil_scoped_release release;
        sample_empirical_optimal(X, sqrt_abar, one_minus_abar, p, q, chain, run, out);
      },
      py::arg("X"), py::arg("sqrt_abar"), py::arg("one_minus_abar"), py::arg("p"), py::arg("q"), py::arg("sigma"),
      py::arg("seeds"), py::arg("workers"), py::arg("out").noconvert(), py::arg("noise") = py::none(), py::arg("progress") = py::none());
  m.def(
      "exp_nonpositive",
      [](const DoubleArray& x) {
        py::array_t<double> out(x.size());
        double s;
        {
          py::gil_scoped_release release;
          s = exp_nonpositive(x.data(), out.mutable_data(), x.size());
        }
        return py::make_tuple(out, s);
      },
      py::arg("x"), "exp(x) for x <= 0 with the sampler's vectorised exp, and the sum (testing only).");
}

}  // namespace lindiff::bindings
