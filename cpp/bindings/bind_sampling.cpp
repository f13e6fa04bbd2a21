#include <Python.h>

#include "common.hpp"
#include "lindiff/sampling.hpp"

namespace lindiff::bindings {
namespace {

using SeedArray = py::array_t<std::uint64_t, py::array::c_style | py::array::forcecast>;
using DoubleArray = py::array_t<double, py::array::c_style | py::array::forcecast>;

// Between batches/steps: Ctrl-C and progress (common.hpp, progress_tick).
SampleRun make_run(const SeedArray& seeds, int workers, const py::object& progress) {
  SampleRun run;
  run.seeds = seeds.data();
  run.n_seed_words = static_cast<Index>(seeds.size());
  run.workers = check_workers(workers);
  run.tick = progress_tick(progress);
  return run;
}

// noise: None or a C-contiguous float64 (T+1, n, d); trajectory: None or a writable C-contiguous
// float64 (S, n, d) that C++ fills in place.
ChainSpecSampling make_chain(const Vector& sigma, const py::object& noise, DoubleArray& noise_keep,
                             const py::object& trajectory, const std::vector<Index>& slot, Index n,
                             Index d) {
  ChainSpecSampling chain;
  chain.sigma = sigma;
  const Index T = sigma.size();
  if (!noise.is_none()) {
    noise_keep = DoubleArray::ensure(noise);
    if (!noise_keep || noise_keep.ndim() != 3 || noise_keep.shape(0) != T + 1 || noise_keep.shape(1) != n ||
        noise_keep.shape(2) != d)
      throw std::invalid_argument("noise must have shape (T+1, n, d)");
    chain.noise = noise_keep.data();
  }
  if (!trajectory.is_none()) {
    auto arr = py::cast<py::array>(trajectory);
    if (!arr.dtype().is(py::dtype::of<double>()) || !(arr.flags() & py::array::c_style) || !arr.writeable() ||
        arr.ndim() != 3 || arr.shape(1) != n || arr.shape(2) != d)
      throw std::invalid_argument("trajectory must be a writable C-contiguous float64 (S, n, d) array");
    if (static_cast<Index>(slot.size()) != T + 1) throw std::invalid_argument("slot must have length T + 1");
    for (Index s : slot)
      if (s < -1 || s >= arr.shape(0)) throw std::invalid_argument("slot entries must be -1 or in [0, S)");
    chain.trajectory = static_cast<double*>(arr.mutable_data());
    chain.slot = slot;
  }
  return chain;
}

}  // namespace

void bind_sampling(py::module_& m) {
  m.attr("SAMPLE_BLOCK") = py::int_(kSampleBlock);
  m.def(
      "sample_eigen_chain",
      [](const ConstRowRef& U, const ConstRowRef& a, const ConstRowRef& c, const Vector& sigma, const SeedArray& seeds,
         int workers, Eigen::Ref<RowMatrix> out, const py::object& noise, const py::object& trajectory,
         const std::vector<Index>& slot, const py::object& progress) {
        DoubleArray noise_keep;
        const auto chain = make_chain(sigma, noise, noise_keep, trajectory, slot, out.rows(), out.cols());
        const auto run = make_run(seeds, workers, progress);
        py::gil_scoped_release release;
        sample_eigen_chain(U, a, c, chain, run, out);
      },
      py::arg("U"), py::arg("a"), py::arg("c"), py::arg("sigma"), py::arg("seeds"), py::arg("workers"),
      py::arg("out").noconvert(), py::arg("noise") = py::none(), py::arg("trajectory") = py::none(),
      py::arg("slot") = std::vector<Index>{}, py::arg("progress") = py::none());
  m.def(
      "sample_dense_chain",
      [](const DoubleArray& W, const ConstRowRef& b, const Vector& p, const Vector& q, const Vector& sigma,
         const SeedArray& seeds, int workers, Eigen::Ref<RowMatrix> out, const py::object& noise,
         const py::object& trajectory, const std::vector<Index>& slot, const py::object& progress) {
        if (W.ndim() != 3 || W.shape(1) != W.shape(2)) throw std::invalid_argument("W must have shape (T, d, d)");
        const Index T = W.shape(0), d = W.shape(1);
        if (sigma.size() != T) throw std::invalid_argument("sigma must have length T");
        DoubleArray noise_keep;
        const auto chain = make_chain(sigma, noise, noise_keep, trajectory, slot, out.rows(), out.cols());
        const auto run = make_run(seeds, workers, progress);
        py::gil_scoped_release release;
        sample_dense_chain(W.data(), T, d, b, p, q, chain, run, out);
      },
      py::arg("W"), py::arg("b"), py::arg("p"), py::arg("q"), py::arg("sigma"), py::arg("seeds"), py::arg("workers"),
      py::arg("out").noconvert(), py::arg("noise") = py::none(), py::arg("trajectory") = py::none(),
      py::arg("slot") = std::vector<Index>{}, py::arg("progress") = py::none());
  m.def(
      "sample_gaussian",
      [](const Vector& mean, const Vector& scale, const ConstRowRef& V, const SeedArray& seeds, int workers,
         Eigen::Ref<RowMatrix> out, const py::object& progress) {
        const auto run = make_run(seeds, workers, progress);
        py::gil_scoped_release release;
        sample_gaussian(mean, scale, V, run, out);
      },
      py::arg("mean"), py::arg("scale"), py::arg("V"), py::arg("seeds"), py::arg("workers"), py::arg("out").noconvert(),
      py::arg("progress") = py::none());
  m.def(
      "standard_normal",
      [](Index n, const SeedArray& seed, const py::object& out) {
        if (n < 0) throw std::invalid_argument("n must be >= 0");
        if (seed.size() != 4) throw std::invalid_argument("seed must hold 4 uint64 words");
        py::array_t<double> res;
        if (out.is_none()) {
          res = py::array_t<double>(n);
        } else {
          if (!py::isinstance<py::array_t<double>>(out))
            throw std::invalid_argument("out must be a writable C-contiguous float64 array of n elements");
          res = py::reinterpret_borrow<py::array_t<double>>(out);
          if (!(res.flags() & py::array::c_style) || !res.writeable() || res.size() != n)
            throw std::invalid_argument("out must be a writable C-contiguous float64 array of n elements");
        }
        const std::uint64_t* s = seed.data();
        double* o = res.mutable_data();
        {
          py::gil_scoped_release release;
          standard_normal(s, o, n);
        }
        return res;
      },
      py::arg("n"), py::arg("seed"), py::arg("out") = py::none(),
      "n standard normals from one NormalStream (8 xoshiro256++ lanes, Box–Muller; testing and benchmarks only).");
  m.def(
      "xoshiro_jump",
      [](const SeedArray& seed) {
        if (seed.size() != 4) throw std::invalid_argument("seed must hold 4 uint64 words");
        Xoshiro256pp g(seed.data());
        g.jump();
        py::array_t<std::uint64_t> out(4);
        g.state(out.mutable_data());
        return out;
      },
      py::arg("seed"), "The xoshiro256++ state after the 2^128-step jump (testing only).");
  m.def("sampling_simd", &sampling_simd, "The SIMD path of the samplers' generator: avx512, avx2 or baseline.");
  m.def("sampling_simd_available", &sampling_simd_available, "SIMD paths this CPU can run, best first.");
  m.def("set_sampling_simd", &set_sampling_simd, py::arg("name"),
        "Force a SIMD path ('auto' = best); results are bit-identical on every path (tests, benchmarks).");
}

}  // namespace lindiff::bindings
