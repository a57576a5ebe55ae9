// kernforge._core.sor: SOR sweeps and solves on prepared CSR matrices.
#include <memory>

#include "common.hpp"
#include "kernforge/sor/sor.hpp"

namespace py = pybind11;

namespace {

// Owns references to the (canonical, C-contiguous) CSR arrays for as long as the prepared matrix
// lives, so the borrowed views inside SorMatrix stay valid.
template <class T, class I>
struct PySorMatrix {
  py::array indptr, indices, data;
  std::unique_ptr<kf::sor::SorMatrix<T, I>> m;

  PySorMatrix(py::array p, py::array j, py::array x, kf::index_t n_rows, kf::index_t n_cols)
      : indptr(std::move(p)), indices(std::move(j)), data(std::move(x)) {
    KF_REQUIRE(indptr.size() == n_rows + 1, "indptr must have n_rows + 1 elements");
    kf::CsrView<T, I> v;
    v.rows = n_rows;
    v.cols = n_cols;
    v.indptr = kf::contiguous_ptr<I>(indptr, "indptr", n_rows + 1);
    const py::ssize_t nnz = indices.size();
    v.indices = kf::contiguous_ptr<I>(indices, "indices", nnz);
    v.data = kf::contiguous_ptr<T>(data, "data", nnz);
    KF_REQUIRE(static_cast<py::ssize_t>(v.indptr[n_rows]) == nnz, "indptr[-1] must equal nnz");
    m = std::make_unique<kf::sor::SorMatrix<T, I>>(v);
  }

  void sweep(py::array x, py::array b, double omega, const std::string& direction, int sweeps) {
    const auto n = m->size();
    T* xp = kf::contiguous_ptr<T>(x, "x", n, true);
    const T* bp = kf::contiguous_ptr<T>(b, "b", n);
    const auto dir = kf::sor::parse_direction(direction);
    py::gil_scoped_release release;
    kf::sor::sweep(*m, xp, bp, omega, dir, sweeps);
  }

  py::tuple solve(py::array x, py::array b, double omega, double rtol, int max_iter, bool symmetric) {
    const auto n = m->size();
    T* xp = kf::contiguous_ptr<T>(x, "x", n, true);
    const T* bp = kf::contiguous_ptr<T>(b, "b", n);
    kf::sor::SolveInfo info;
    {
      py::gil_scoped_release release;
      info = kf::sor::solve(*m, xp, bp, omega, rtol, max_iter, symmetric);
    }
    return py::make_tuple(info.n_iter, info.converged, py::array(py::cast(info.residuals)));
  }

  double residual_norm(py::array x, py::array b) {
    const auto n = m->size();
    const T* xp = kf::contiguous_ptr<T>(x, "x", n);
    const T* bp = kf::contiguous_ptr<T>(b, "b", n);
    py::gil_scoped_release release;
    return kf::sor::residual_norm(m->csr(), xp, bp);
  }
};

template <class T, class I>
void bind_matrix(py::module_& s, const char* name) {
  using M = PySorMatrix<T, I>;
  py::class_<M>(s, name)
      .def(py::init<py::array, py::array, py::array, kf::index_t, kf::index_t>(), py::arg("indptr"),
           py::arg("indices"), py::arg("data"), py::arg("n_rows"), py::arg("n_cols"))
      .def("sweep", &M::sweep, py::arg("x").noconvert(), py::arg("b"), py::arg("omega"),
           py::arg("direction"), py::arg("sweeps"))
      .def("solve", &M::solve, py::arg("x").noconvert(), py::arg("b"), py::arg("omega"), py::arg("rtol"),
           py::arg("max_iter"), py::arg("symmetric"))
      .def("residual_norm", &M::residual_norm, py::arg("x"), py::arg("b"));
}

}  // namespace

void bind_sor(py::module_& m) {
  auto s = m.def_submodule("sor", "SOR kernels");
  bind_matrix<float, std::int32_t>(s, "SorMatrix_f32_i32");
  bind_matrix<float, std::int64_t>(s, "SorMatrix_f32_i64");
  bind_matrix<double, std::int32_t>(s, "SorMatrix_f64_i32");
  bind_matrix<double, std::int64_t>(s, "SorMatrix_f64_i64");
}
