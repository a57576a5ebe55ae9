// kernforge._core.sketch: sketching operators (sparse, Gaussian, SRHT) applied to dense or sparse
// matrices. The Python layer (kernforge.sketch) validates, caches the operator's structure and
// chooses the kernel; this file only maps buffers to views and releases the GIL.
#include <cstdint>
#include <string>
#include <vector>

#include "common.hpp"
#include "kernforge/sketch/dense_ls.hpp"
#include "kernforge/sketch/gaussian.hpp"
#include "kernforge/sketch/sparse_sketch.hpp"
#include "kernforge/sketch/srht.hpp"

namespace py = pybind11;
using kf::index_t;

namespace {

template <class T>
py::array_t<T> to_numpy(std::vector<T>&& v) {
  auto* heap = new std::vector<T>(std::move(v));
  py::capsule owner(heap, [](void* p) { delete static_cast<std::vector<T>*>(p); });
  return py::array_t<T>({static_cast<py::ssize_t>(heap->size())}, {sizeof(T)}, heap->data(), owner);
}

bool is_f32(const py::array& a) { return py::isinstance<py::array_t<float>>(a); }
bool is_f64(const py::array& a) { return py::isinstance<py::array_t<double>>(a); }
bool is_i32(const py::array& a) { return py::isinstance<py::array_t<std::int32_t>>(a); }

template <class T>
kf::MatrixView<const T> const_view(const py::array& a, const char* name) {
  auto v = kf::matrix_view<T>(a, name);
  return {v.data, v.rows, v.cols, v.row_stride, v.col_stride};
}

template <class T>
kf::sketch::Compressed64<T> compressed(const py::array& ptr, const py::array& idx, const py::array& val,
                                       index_t outer) {
  kf::sketch::Compressed64<T> c;
  c.outer = outer;
  c.ptr = kf::contiguous_ptr<std::int64_t>(ptr, "ptr", outer + 1);
  const auto nnz = static_cast<py::ssize_t>(c.ptr[outer]);
  c.idx = kf::contiguous_ptr<std::int64_t>(idx, "idx", nnz);
  c.val = kf::contiguous_ptr<T>(val, "val", nnz);
  return c;
}

template <class T, class I>
kf::CsrView<T, I> csr_view(const py::array& indptr, const py::array& indices, const py::array& data, index_t rows,
                           index_t cols) {
  kf::CsrView<T, I> v;
  v.rows = rows;
  v.cols = cols;
  v.indptr = kf::contiguous_ptr<I>(indptr, "indptr", rows + 1);
  const auto nnz = static_cast<py::ssize_t>(v.indptr[rows]);
  v.indices = kf::contiguous_ptr<I>(indices, "indices", nnz);
  v.data = kf::contiguous_ptr<T>(data, "data", nnz);
  return v;
}

py::tuple sparse_build(const std::string& kind, index_t m, index_t n, double param, std::uint64_t seed,
                       bool with_csr) {
  kf::sketch::SparseSketch csc, csr;
  {
    py::gil_scoped_release release;
    csc = kf::sketch::build_sparse_sketch(kf::sketch::parse_sparse_kind(kind), m, n, param, seed);
    if (with_csr) csr = kf::sketch::transpose(csc, m, n);
  }
  return py::make_tuple(to_numpy(std::move(csc.ptr)), to_numpy(std::move(csc.idx)), to_numpy(std::move(csc.val)),
                        to_numpy(std::move(csr.ptr)), to_numpy(std::move(csr.idx)), to_numpy(std::move(csr.val)));
}

template <class T>
py::array sparse_apply_dense_t(const py::array& ptr, const py::array& idx, const py::array& val, index_t outer,
                               index_t m, const py::array& A, bool by_rows, bool scatter) {
  const auto S = compressed<T>(ptr, idx, val, outer);
  const auto Av = const_view<T>(A, "A");
  if (by_rows) {
    py::array_t<T> out({static_cast<py::ssize_t>(m), static_cast<py::ssize_t>(Av.cols)});
    T* o = out.mutable_data();
    py::gil_scoped_release release;
    kf::sketch::apply_rows_dense(S, Av, o, Av.cols);
    return std::move(out);
  }
  if (scatter) {
    KF_REQUIRE(Av.rows == outer, "A must have ", outer, " rows, got ", Av.rows);
    KF_REQUIRE(Av.col_stride == 1 || Av.cols <= 1, "A must have contiguous rows for the scatter kernel");
    py::array_t<T> out({static_cast<py::ssize_t>(m), static_cast<py::ssize_t>(Av.cols)});
    T* o = out.mutable_data();
    py::gil_scoped_release release;
    kf::sketch::apply_scatter_dense(S, m, Av, o);
    return std::move(out);
  }
  KF_REQUIRE(Av.rows == outer, "A must have ", outer, " rows, got ", Av.rows);
  py::array_t<T, py::array::f_style> out({static_cast<py::ssize_t>(m), static_cast<py::ssize_t>(Av.cols)});
  T* o = out.mutable_data();
  py::gil_scoped_release release;
  kf::sketch::apply_cols_dense(S, m, Av, o);
  return std::move(out);
}

// S (by rows) times A (dense, strided): C-ordered m x d, gathering rows of A. Or S (by columns)
// times A: F-ordered, reading A by columns; or, with scatter, C-ordered, streaming A by rows.
py::array sparse_apply_dense(const py::array& ptr, const py::array& idx, const py::array& val, index_t outer,
                             index_t m, const py::array& A, bool by_rows, bool scatter) {
  if (is_f32(A)) return sparse_apply_dense_t<float>(ptr, idx, val, outer, m, A, by_rows, scatter);
  return sparse_apply_dense_t<double>(ptr, idx, val, outer, m, A, by_rows, scatter);
}

template <class T, class I>
py::array sparse_apply_sparse_t(const py::array& ptr, const py::array& idx, const py::array& val, index_t outer,
                                index_t m, const py::array& indptr, const py::array& indices, const py::array& data,
                                index_t n, index_t d, bool by_rows) {
  const auto S = compressed<T>(ptr, idx, val, outer);
  if (by_rows) {  // A in CSR (n x d)
    const auto Av = csr_view<T, I>(indptr, indices, data, n, d);
    py::array_t<T> out({static_cast<py::ssize_t>(m), static_cast<py::ssize_t>(d)});
    T* o = out.mutable_data();
    py::gil_scoped_release release;
    kf::sketch::apply_rows_csr(S, Av, o);
    return std::move(out);
  }
  const auto At = csr_view<T, I>(indptr, indices, data, d, n);  // A in CSC = A^T in CSR
  py::array_t<T, py::array::f_style> out({static_cast<py::ssize_t>(m), static_cast<py::ssize_t>(d)});
  T* o = out.mutable_data();
  py::gil_scoped_release release;
  kf::sketch::apply_cols_csc(S, m, At, o);
  return std::move(out);
}

py::array sparse_apply_sparse(const py::array& ptr, const py::array& idx, const py::array& val, index_t outer,
                              index_t m, const py::array& indptr, const py::array& indices, const py::array& data,
                              index_t n, index_t d, bool by_rows) {
  const bool i32 = is_i32(indices);
  if (is_f32(data))
    return i32 ? sparse_apply_sparse_t<float, std::int32_t>(ptr, idx, val, outer, m, indptr, indices, data, n, d, by_rows)
               : sparse_apply_sparse_t<float, std::int64_t>(ptr, idx, val, outer, m, indptr, indices, data, n, d, by_rows);
  return i32 ? sparse_apply_sparse_t<double, std::int32_t>(ptr, idx, val, outer, m, indptr, indices, data, n, d, by_rows)
             : sparse_apply_sparse_t<double, std::int64_t>(ptr, idx, val, outer, m, indptr, indices, data, n, d, by_rows);
}

template <class T>
py::array gaussian_columns_t(index_t m, index_t j0, index_t j1, std::uint64_t seed) {
  KF_REQUIRE(0 <= j0 && j0 <= j1, "column range must satisfy 0 <= j0 <= j1");
  py::array_t<T> out({static_cast<py::ssize_t>(j1 - j0), static_cast<py::ssize_t>(m)});
  T* o = out.mutable_data();
  py::gil_scoped_release release;
  kf::sketch::gaussian_columns<T>(m, j0, j1, seed, o);
  return std::move(out);
}

py::array gaussian_columns(index_t m, index_t j0, index_t j1, std::uint64_t seed, const std::string& dtype) {
  if (dtype == "float32") return gaussian_columns_t<float>(m, j0, j1, seed);
  KF_REQUIRE(dtype == "float64", "dtype must be 'float32' or 'float64', got '", dtype, "'");
  return gaussian_columns_t<double>(m, j0, j1, seed);
}

std::vector<std::int64_t> rows_of(const py::array& rows) {
  const auto* p = kf::contiguous_ptr<std::int64_t>(rows, "rows", rows.size());
  return std::vector<std::int64_t>(p, p + rows.size());
}

template <class T>
py::array srht_dense_t(const py::array& A, index_t n_pad, const std::vector<std::int64_t>& rows, std::uint64_t seed) {
  const auto Av = const_view<T>(A, "A");
  const auto m = static_cast<py::ssize_t>(rows.size());
  for (auto r : rows) KF_REQUIRE(r >= 0 && r < n_pad, "rows must lie in [0, n_pad)");
  py::array_t<T> out({m, static_cast<py::ssize_t>(Av.cols)});
  T* o = out.mutable_data();
  py::gil_scoped_release release;
  kf::sketch::srht_apply_dense(Av, n_pad, rows, seed, o, Av.cols);
  return std::move(out);
}

py::array srht_apply_dense(const py::array& A, index_t n_pad, const py::array& rows, std::uint64_t seed) {
  const auto r = rows_of(rows);
  if (is_f32(A)) return srht_dense_t<float>(A, n_pad, r, seed);
  return srht_dense_t<double>(A, n_pad, r, seed);
}

template <class T, class I>
py::array srht_csc_t(const py::array& indptr, const py::array& indices, const py::array& data, index_t n, index_t d,
                     index_t n_pad, const std::vector<std::int64_t>& rows, std::uint64_t seed) {
  const auto At = csr_view<T, I>(indptr, indices, data, d, n);
  for (auto r : rows) KF_REQUIRE(r >= 0 && r < n_pad, "rows must lie in [0, n_pad)");
  py::array_t<T> out({static_cast<py::ssize_t>(rows.size()), static_cast<py::ssize_t>(d)});
  T* o = out.mutable_data();
  py::gil_scoped_release release;
  kf::sketch::srht_apply_csc(At, n_pad, rows, seed, o, d);
  return std::move(out);
}

py::array srht_apply_csc(const py::array& indptr, const py::array& indices, const py::array& data, index_t n,
                         index_t d, index_t n_pad, const py::array& rows, std::uint64_t seed) {
  const auto r = rows_of(rows);
  const bool i32 = is_i32(indices);
  if (is_f32(data))
    return i32 ? srht_csc_t<float, std::int32_t>(indptr, indices, data, n, d, n_pad, r, seed)
               : srht_csc_t<float, std::int64_t>(indptr, indices, data, n, d, n_pad, r, seed);
  return i32 ? srht_csc_t<double, std::int32_t>(indptr, indices, data, n, d, n_pad, r, seed)
             : srht_csc_t<double, std::int64_t>(indptr, indices, data, n, d, n_pad, r, seed);
}

template <class T>
py::array srht_adjoint_t(const py::array& Y, index_t n, index_t n_pad, const std::vector<std::int64_t>& rows,
                         std::uint64_t seed) {
  const auto Yv = const_view<T>(Y, "Y");
  for (auto r : rows) KF_REQUIRE(r >= 0 && r < n_pad, "rows must lie in [0, n_pad)");
  KF_REQUIRE(n <= n_pad, "n must be <= n_pad");
  py::array_t<T> out({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(Yv.cols)});
  T* o = out.mutable_data();
  py::gil_scoped_release release;
  kf::sketch::srht_adjoint(Yv, n, n_pad, rows, seed, o);
  return std::move(out);
}

py::array srht_adjoint(const py::array& Y, index_t n, index_t n_pad, const py::array& rows, std::uint64_t seed) {
  const auto r = rows_of(rows);
  if (is_f32(Y)) return srht_adjoint_t<float>(Y, n, n_pad, r, seed);
  return srht_adjoint_t<double>(Y, n, n_pad, r, seed);
}

template <class T>
py::tuple normal_residual_t(const py::array& A, const py::array& B, const py::object& X) {
  const auto Av = const_view<T>(A, "A");
  const auto Bv = kf::matrix_view<T>(B, "B");
  KF_REQUIRE(Bv.rows == Av.rows, "B must have ", Av.rows, " rows, got ", Bv.rows);
  KF_REQUIRE(Bv.row_stride == 1 || Bv.rows <= 1, "B must be F-contiguous");
  const index_t k = Bv.cols, d = Av.cols;
  const T* x = nullptr;
  if (!X.is_none()) {
    const auto Xv = kf::matrix_view<T>(X.cast<py::array>(), "X");
    KF_REQUIRE(Xv.rows == d && Xv.cols == k, "X must have shape (", d, ", ", k, ")");
    KF_REQUIRE((Xv.row_stride == 1 && Xv.col_stride == d) || k == 1, "X must be F-contiguous");
    KF_REQUIRE(Xv.row_stride == 1 || d <= 1, "X must be F-contiguous");
    x = Xv.data;
  }
  py::array_t<T, py::array::f_style> G({static_cast<py::ssize_t>(d), static_cast<py::ssize_t>(k)});
  py::array_t<double> rr(static_cast<py::ssize_t>(k));
  T* g = G.mutable_data();
  double* r = rr.mutable_data();
  const index_t ldb = Bv.cols > 1 ? Bv.col_stride : Bv.rows;
  {
    py::gil_scoped_release release;
    kf::sketch::normal_residual_pass(Av, Bv.data, ldb, k, x, g, r);
  }
  return py::make_tuple(G, rr);
}

// (A^T (B - A X), ||B - A X||^2 per column) in one pass over A; X = None means X = 0.
py::tuple normal_residual(const py::array& A, const py::array& B, const py::object& X) {
  if (is_f32(A)) return normal_residual_t<float>(A, B, X);
  return normal_residual_t<double>(A, B, X);
}

}  // namespace

void bind_sketch(py::module_& m) {
  auto s = m.def_submodule("sketch", "Sketching operators");
  s.def("sparse_build", &sparse_build, py::arg("kind"), py::arg("m"), py::arg("n"), py::arg("param"), py::arg("seed"),
        py::arg("with_csr") = true,
        "Build a sparse sketch: (csc_ptr, csc_idx, csc_val, csr_ptr, csr_idx, csr_val), 64-bit indices "
        "(the CSR arrays empty unless with_csr).");
  s.def("sparse_apply_dense", &sparse_apply_dense, py::arg("ptr"), py::arg("idx"), py::arg("val"), py::arg("outer"),
        py::arg("m"), py::arg("A"), py::arg("by_rows"), py::arg("scatter") = false);
  s.def("sparse_apply_sparse", &sparse_apply_sparse, py::arg("ptr"), py::arg("idx"), py::arg("val"), py::arg("outer"),
        py::arg("m"), py::arg("indptr"), py::arg("indices"), py::arg("data"), py::arg("n"), py::arg("d"),
        py::arg("by_rows"));
  s.def("gaussian_columns", &gaussian_columns, py::arg("m"), py::arg("j0"), py::arg("j1"), py::arg("seed"),
        py::arg("dtype"));
  s.def("srht_rows", [](index_t m, index_t n_pad, std::uint64_t seed) {
    std::vector<std::int64_t> r;
    {
      py::gil_scoped_release release;
      r = kf::sketch::srht_rows(m, n_pad, seed);
    }
    return to_numpy(std::move(r));
  }, py::arg("m"), py::arg("n_pad"), py::arg("seed"));
  s.def("srht_apply_dense", &srht_apply_dense, py::arg("A"), py::arg("n_pad"), py::arg("rows"), py::arg("seed"));
  s.def("srht_apply_csc", &srht_apply_csc, py::arg("indptr"), py::arg("indices"), py::arg("data"), py::arg("n"),
        py::arg("d"), py::arg("n_pad"), py::arg("rows"), py::arg("seed"));
  s.def("normal_residual", &normal_residual, py::arg("A"), py::arg("B"), py::arg("X") = py::none(),
        "(A^T (B - A X), ||B - A X||^2 per column) in one pass over A (C or F order); X = None means 0.");
  s.def("srht_adjoint", &srht_adjoint, py::arg("Y"), py::arg("n"), py::arg("n_pad"), py::arg("rows"), py::arg("seed"));
}
