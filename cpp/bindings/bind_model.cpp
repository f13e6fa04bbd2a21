#include "common.hpp"
#include "lindiff/model.hpp"

namespace lindiff::bindings {
namespace {

ScheduleArrays make_schedule(const Vector& beta, const Vector& abar, const Vector& abar_prev,
                             const Vector& one_minus_abar) {
  ScheduleArrays s{beta, abar, abar_prev, one_minus_abar};
  s.validate();
  return s;
}

TrainingSpec make_training(const py::tuple& t) {
  if (t.size() != 4) throw std::invalid_argument("training spec is (kind, time, learning_rate, init)");
  TrainingSpec tr;
  const int kind = t[0].cast<int>();
  if (kind < 0 || kind > 2) throw std::invalid_argument("training kind must be 0, 1 or 2");
  tr.kind = static_cast<Training>(kind);
  tr.time = t[1].cast<double>();
  tr.learning_rate = t[2].cast<double>();
  tr.init = t[3].cast<double>();
  return tr;
}

}  // namespace

void bind_model(py::module_& m) {
  m.def(
      "filter_table",
      [](const Vector& beta, const Vector& abar, const Vector& abar_prev, const Vector& om, const Vector& lambda,
         const Vector& ridge, const py::tuple& training) {
        const auto s = make_schedule(beta, abar, abar_prev, om);
        const auto tr = make_training(training);
        py::gil_scoped_release release;
        return filter_table(s, lambda, ridge, tr);
      },
      py::arg("beta"), py::arg("abar"), py::arg("abar_prev"), py::arg("one_minus_abar"), py::arg("lam"), py::arg("ridge"),
      py::arg("training"));
  m.def(
      "evaluate_grid",
      [](const Vector& beta, const Vector& abar, const Vector& abar_prev, const Vector& om, const Vector& lambda,
         const RowMatrix& ridges, const py::list& trainings, int sampler, const Vector& sigma2,
         const RowMatrix& energies, int workers) {
        check_workers(workers);
        const auto s = make_schedule(beta, abar, abar_prev, om);
        std::vector<TrainingSpec> trs;
        for (const auto& t : trainings) trs.push_back(make_training(t.cast<py::tuple>()));
        if (sampler != 0 && sampler != 1) throw std::invalid_argument("sampler must be 0 (DDPM) or 1 (DDIM)");
        ChainSpec chain{static_cast<Sampler>(sampler), sigma2};
        GridResult r;
        {
          py::gil_scoped_release release;
          r = evaluate_grid(s, lambda, ridges, trs, chain, energies, workers);
        }
        return py::make_tuple(std::move(r.variance), std::move(r.gain), std::move(r.losses));
      },
      py::arg("beta"), py::arg("abar"), py::arg("abar_prev"), py::arg("one_minus_abar"), py::arg("lam"), py::arg("ridges"),
      py::arg("trainings"), py::arg("sampler"), py::arg("sigma2"), py::arg("energies"),
      py::arg("workers"));
}

}  // namespace lindiff::bindings
