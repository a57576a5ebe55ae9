// kernforge._core.sor: SOR sweeps and solves on prepared CSR matrices.
#include <memory>

#include "common.hpp"
#include "kernforge/sor/jacobi.hpp"
#include "kernforge/sor/multicolor.hpp"
#include "kernforge/sor/sor.hpp"
#include "kernforge/sor/ssor_cg.hpp"

namespace py = pybind11;

namespace {

// Owns references to the (canonical, C-contiguous) CSR arrays for as long as the prepared matrix
// lives, so the borrowed views inside SorMatrix stay valid.
template <class T, class I>
struct PySorMatrix {
  py::array indptr, indices, data;
  std::unique_ptr<kf::sor::SorMatrix<T, I>> m;
  std::unique_ptr<kf::sor::MulticolorMatrix<T, I>> mc;  // built on first multicolour use
  long lex_sweeps = 0;  // sweeps asked of this matrix so far (the compact copy pays off from the second)
  bool compact_tried = false;

  // Builds the compact copy of A once a second lexicographic sweep is asked for: a one-sweep call on
  // a fresh matrix would pay about a sweep's time to build it and never use it again. With the GIL
  // held: two Python threads must not race to build it.
  void use_sweeps(long k) {
    lex_sweeps += k;
    if (!compact_tried && lex_sweeps >= 2) {
      compact_tried = true;
      m->build_compact();
    }
  }

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

  // Returns whether the updated x is finite (the fused check that replaces input scans).
  bool sweep(py::array x, py::array b, double omega, const std::string& direction, int sweeps) {
    const auto n = m->size();
    T* xp = kf::contiguous_ptr<T>(x, "x", n, true);
    const T* bp = kf::contiguous_ptr<T>(b, "b", n);
    const auto dir = kf::sor::parse_direction(direction);
    use_sweeps(static_cast<long>(sweeps) * (dir == kf::sor::Direction::symmetric ? 2 : 1));
    py::gil_scoped_release release;
    return kf::sor::sweep(*m, xp, bp, omega, dir, sweeps);
  }

  py::tuple solve(py::array x, py::array b, double omega, double rtol, int max_iter, bool symmetric) {
    const auto n = m->size();
    T* xp = kf::contiguous_ptr<T>(x, "x", n, true);
    const T* bp = kf::contiguous_ptr<T>(b, "b", n);
    kf::sor::SolveInfo info;
    use_sweeps(max_iter);
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

  bool is_symmetric(double tol) {
    py::gil_scoped_release release;
    return kf::sor::is_symmetric(m->csr(), tol);
  }

  const kf::sor::MulticolorMatrix<T, I>& multicolor() {
    // Built with the GIL held: two Python threads must not race to build it.
    if (!mc) mc = std::make_unique<kf::sor::MulticolorMatrix<T, I>>(*m);
    return *mc;
  }

  py::tuple coloring() {
    const auto& c = multicolor();
    py::array_t<std::int64_t> colors(c.size());
    auto* cp = colors.mutable_data();
    for (kf::index_t i = 0; i < c.size(); ++i) cp[i] = c.colors()[i];
    return py::make_tuple(c.n_colors(), colors);
  }

  std::string lex_storage() const { return m->storage(); }

  py::tuple mc_storage() {
    const auto& c = multicolor();
    return py::make_tuple(c.ell_width(), c.narrow_columns(), c.float32_values());
  }

  bool mc_sweep(py::array x, py::array b, double omega, const std::string& direction, int sweeps) {
    const auto n = m->size();
    T* xp = kf::contiguous_ptr<T>(x, "x", n, true);
    const T* bp = kf::contiguous_ptr<T>(b, "b", n);
    const auto dir = kf::sor::parse_direction(direction);
    const auto& c = multicolor();
    py::gil_scoped_release release;
    return kf::sor::multicolor_sweep(c, xp, bp, omega, dir, sweeps);
  }

  static py::tuple info_tuple(const kf::sor::SolveInfo& info) {
    return py::make_tuple(info.n_iter, info.converged, py::array(py::cast(info.residuals)));
  }

  py::tuple mc_solve(py::array x, py::array b, double omega, double rtol, int max_iter, bool symmetric) {
    const auto n = m->size();
    T* xp = kf::contiguous_ptr<T>(x, "x", n, true);
    const T* bp = kf::contiguous_ptr<T>(b, "b", n);
    const auto& c = multicolor();
    kf::sor::SolveInfo info;
    {
      py::gil_scoped_release release;
      info = kf::sor::multicolor_solve(c, xp, bp, omega, rtol, max_iter, symmetric);
    }
    return info_tuple(info);
  }

  void jacobi_sweep(py::array x, py::array b, double omega, int sweeps) {
    const auto n = m->size();
    T* xp = kf::contiguous_ptr<T>(x, "x", n, true);
    const T* bp = kf::contiguous_ptr<T>(b, "b", n);
    py::gil_scoped_release release;
    kf::sor::jacobi_sweep(*m, xp, bp, omega, sweeps);
  }

  py::tuple jacobi_solve(py::array x, py::array b, double omega, double rtol, int max_iter) {
    const auto n = m->size();
    T* xp = kf::contiguous_ptr<T>(x, "x", n, true);
    const T* bp = kf::contiguous_ptr<T>(b, "b", n);
    kf::sor::SolveInfo info;
    {
      py::gil_scoped_release release;
      info = kf::sor::jacobi_solve(*m, xp, bp, omega, rtol, max_iter);
    }
    return info_tuple(info);
  }

  void ssor_apply(py::array r, py::array z, double omega) {
    const auto n = m->size();
    const T* rp = kf::contiguous_ptr<T>(r, "r", n);
    T* zp = kf::contiguous_ptr<T>(z, "z", n, true);
    use_sweeps(1);
    py::gil_scoped_release release;
    kf::sor::ssor_apply(*m, rp, zp, omega);
  }

  py::tuple ssor_cg(py::array x, py::array b, double omega, double rtol, int max_iter) {
    const auto n = m->size();
    T* xp = kf::contiguous_ptr<T>(x, "x", n, true);
    const T* bp = kf::contiguous_ptr<T>(b, "b", n);
    kf::sor::PcgInfo info;
    use_sweeps(max_iter);
    {
      py::gil_scoped_release release;
      info = kf::sor::ssor_cg(*m, xp, bp, omega, rtol, max_iter);
    }
    return py::make_tuple(info.n_iter, info.converged, py::array(py::cast(info.residuals)), info.breakdown,
                          info.breakdown_value);
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
      .def("residual_norm", &M::residual_norm, py::arg("x"), py::arg("b"))
      .def("coloring", &M::coloring)
      .def("mc_storage", &M::mc_storage)
      .def("lex_storage", &M::lex_storage)
      .def("is_symmetric", &M::is_symmetric, py::arg("tol"))
      .def("mc_sweep", &M::mc_sweep, py::arg("x").noconvert(), py::arg("b"), py::arg("omega"),
           py::arg("direction"), py::arg("sweeps"))
      .def("mc_solve", &M::mc_solve, py::arg("x").noconvert(), py::arg("b"), py::arg("omega"), py::arg("rtol"),
           py::arg("max_iter"), py::arg("symmetric"))
      .def("jacobi_sweep", &M::jacobi_sweep, py::arg("x").noconvert(), py::arg("b"), py::arg("omega"),
           py::arg("sweeps"))
      .def("jacobi_solve", &M::jacobi_solve, py::arg("x").noconvert(), py::arg("b"), py::arg("omega"),
           py::arg("rtol"), py::arg("max_iter"))
      .def("ssor_apply", &M::ssor_apply, py::arg("r"), py::arg("z").noconvert(), py::arg("omega"))
      .def("ssor_cg", &M::ssor_cg, py::arg("x").noconvert(), py::arg("b"), py::arg("omega"), py::arg("rtol"),
           py::arg("max_iter"));
}

}  // namespace

void bind_sor(py::module_& m) {
  auto s = m.def_submodule("sor", "SOR kernels");
  bind_matrix<float, std::int32_t>(s, "SorMatrix_f32_i32");
  bind_matrix<float, std::int64_t>(s, "SorMatrix_f32_i64");
  bind_matrix<double, std::int32_t>(s, "SorMatrix_f64_i32");
  bind_matrix<double, std::int64_t>(s, "SorMatrix_f64_i64");
}
