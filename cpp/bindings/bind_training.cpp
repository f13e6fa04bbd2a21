// Bindings for the SGD trainer of per-t affine denoisers (issue 6).
#include <Python.h>

#include "common.hpp"
#include "lindiff/training.hpp"

namespace lindiff::bindings {
namespace {
using SeedArray = py::array_t<std::uint64_t, py::array::c_style | py::array::forcecast>;
using DoubleArray = py::array_t<double, py::array::c_style | py::array::forcecast>;

double* writable(const py::array& a, const char* name) {
  if (!a.dtype().is(py::dtype::of<double>()) || !(a.flags() & py::array::c_style) || !a.writeable())
    throw std::invalid_argument(std::string(name) + " must be a writable C-contiguous float64 array");
  return static_cast<double*>(const_cast<void*>(a.data()));
}
}  // namespace

void bind_training(py::module_& m) {
  m.attr("TRAIN_BLOCK") = py::int_(kTrainBlock);
  m.def(
      "train_affine_sgd",
      [](const DoubleArray& X, const Vector& sqrt_abar, const Vector& sqrt_om, const Vector& ridge,
         const SeedArray& seeds, double learning_rate, Index step0, Index n_steps, Index batch, Index draws,
         int workers, py::array W, py::array b, const py::object& noise) {
        if (X.ndim() != 2) throw std::invalid_argument("X must be 2-D (N, d)");
        const Index N = X.shape(0), d = X.shape(1), n_t = sqrt_abar.size();
        if (sqrt_om.size() != n_t || ridge.size() != n_t)
          throw std::invalid_argument("sqrt_abar, sqrt_om and ridge must have the same length");
        if (seeds.size() != 4 * n_t) throw std::invalid_argument("seeds must hold 4 words per timestep");
        if (W.ndim() != 3 || W.shape(0) != n_t || W.shape(1) != d || W.shape(2) != d)
          throw std::invalid_argument("W must have shape (n_t, d, d) matching X");
        if (b.ndim() != 2 || b.shape(0) != n_t || b.shape(1) != d)
          throw std::invalid_argument("b must have shape (n_t, d) matching X");
        TrainSpec spec;
        spec.X = X.data();
        spec.N = N;
        spec.d = d;
        spec.n_t = n_t;
        spec.sqrt_abar = sqrt_abar.data();
        spec.sqrt_om = sqrt_om.data();
        spec.ridge = ridge.data();
        spec.seeds = seeds.data();
        spec.learning_rate = learning_rate;
        spec.step0 = step0;
        spec.n_steps = n_steps;
        spec.batch = batch;
        spec.draws = draws;
        spec.workers = check_workers(workers);
        spec.check = check_signals;
        DoubleArray noise_keep;
        if (!noise.is_none()) {
          noise_keep = DoubleArray::ensure(noise);
          if (!noise_keep || noise_keep.ndim() != 4 || noise_keep.shape(0) != n_steps || noise_keep.shape(1) != n_t ||
              noise_keep.shape(2) != batch * draws || noise_keep.shape(3) != d)
            throw std::invalid_argument("noise must have shape (n_steps, n_t, batch*draws, d)");
          spec.noise = noise_keep.data();
        }
        double* Wp = writable(W, "W");
        double* bp = writable(b, "b");
        py::gil_scoped_release release;
        train_affine_sgd(spec, Wp, bp);
      },
      py::arg("X"), py::arg("sqrt_abar"), py::arg("sqrt_om"), py::arg("ridge"), py::arg("seeds"),
      py::arg("learning_rate"), py::arg("step0"), py::arg("n_steps"), py::arg("batch"), py::arg("draws"),
      py::arg("workers"), py::arg("W"), py::arg("b"), py::arg("noise") = py::none(),
      "SGD on the sampled denoising loss, in place on W (n_t, d, d) and b (n_t, d).");
}

}  // namespace lindiff::bindings
