// kernforge._core.sketch_iterative: sketch-and-project solvers for dense A x = b.
#include <cstdint>
#include <string>

#include "common.hpp"
#include "kernforge/sketch/iterative.hpp"

namespace py = pybind11;

namespace {

template <class T>
py::tuple solve(const py::array& A, const py::array& b, const py::array& x0, const std::string& sketch,
                kf::index_t block, double rtol, double atol, std::int64_t max_iter, std::uint64_t seed,
                double momentum, std::int64_t check_every) {
  auto Av = kf::matrix_view<T>(A, "A");
  kf::MatrixView<const T> Ac{Av.data, Av.rows, Av.cols, Av.row_stride, Av.col_stride};
  const T* bp = kf::contiguous_ptr<T>(b, "b", Av.rows);
  const T* xp0 = kf::contiguous_ptr<T>(x0, "x0", Av.cols);
  kf::sketch::IterativeOptions opt;
  opt.sketch = kf::sketch::parse_sketch(sketch);
  opt.block = block;
  opt.rtol = rtol;
  opt.atol = atol;
  opt.max_iter = max_iter;
  opt.seed = seed;
  opt.momentum = momentum;
  opt.check_every = check_every;
  py::array_t<T> x(Av.cols);
  T* xp = x.mutable_data();
  std::copy(xp0, xp0 + Av.cols, xp);
  kf::sketch::IterativeInfo info;
  {
    py::gil_scoped_release release;
    info = kf::sketch::sketch_and_project<T>(Ac, bp, xp, opt);
  }
  return py::make_tuple(x, info.n_iter, info.converged, static_cast<int>(info.status), info.residual,
                        info.b_norm, py::array(py::cast(info.residuals)), py::array(py::cast(info.checked_at)));
}

}  // namespace

void bind_sketch_iterative(py::module_& m) {
  auto s = m.def_submodule("sketch_iterative", "Sketch-and-project iterative solvers");
  s.def("solve_f32", &solve<float>, py::arg("A"), py::arg("b"), py::arg("x0"), py::arg("sketch"), py::arg("block"),
        py::arg("rtol"), py::arg("atol"), py::arg("max_iter"), py::arg("seed"), py::arg("momentum"),
        py::arg("check_every"));
  s.def("solve_f64", &solve<double>, py::arg("A"), py::arg("b"), py::arg("x0"), py::arg("sketch"), py::arg("block"),
        py::arg("rtol"), py::arg("atol"), py::arg("max_iter"), py::arg("seed"), py::arg("momentum"),
        py::arg("check_every"));
}
