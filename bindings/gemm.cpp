// kernforge._core.gemm: tiled GEMM, batched small GEMM and the Monarch product on strided NumPy
// arrays (no copies: strides go straight into the packing). The Python layer validates shapes,
// dtypes and aliasing; this file maps buffers to pointers and strides and releases the GIL.
#include <cstdint>
#include <string>

#include <Eigen/Core>

#include "common.hpp"
#include "kernforge/gemm/batched.hpp"
#include "kernforge/gemm/cuda.hpp"
#include "kernforge/gemm/gemm.hpp"
#include "kernforge/gemm/monarch.hpp"

namespace py = pybind11;

namespace {

using kf::index_t;

kf::gemm::Tiles tiles_from(const py::dict& d) {
  kf::gemm::Tiles t;
  for (auto item : d) {
    const std::string key = py::str(item.first);
    const long v = item.second.cast<long>();
    if (key == "mr") t.mr = static_cast<int>(v);
    else if (key == "nr") t.nr = static_cast<int>(v);
    else if (key == "mc") t.mc = v;
    else if (key == "kc") t.kc = v;
    else if (key == "nc") t.nc = v;
    else if (key == "pack_a") t.pack_a = static_cast<int>(v);
    else kf::throw_invalid("tiles has an unknown key '", key, "' (expected mr, nr, mc, kc, nc, pack_a)");
  }
  return t;
}

kf::Isa isa_from(const std::string& s) { return s.empty() ? kf::active_isa() : kf::parse_isa(s); }

template <class T>
void matmul_t(py::array A, py::array B, py::array C, double alpha, double beta, const py::dict& tiles,
              int nthreads, const std::string& isa) {
  auto a = kf::matrix_view<T>(A, "A");
  auto b = kf::matrix_view<T>(B, "B");
  auto c = kf::matrix_view<T>(C, "out", true);
  KF_REQUIRE(a.cols == b.rows, "A and B have incompatible shapes");
  KF_REQUIRE(c.rows == a.rows && c.cols == b.cols, "out has the wrong shape");
  const auto t = tiles_from(tiles);
  const auto level = isa_from(isa);
  py::gil_scoped_release release;
  kf::gemm::matmul<T>(a.rows, b.cols, a.cols, static_cast<T>(alpha), a.data, a.row_stride, a.col_stride, b.data,
                      b.row_stride, b.col_stride, static_cast<T>(beta), c.data, c.row_stride, c.col_stride, t,
                      tiles.size() > 0, nthreads, level);
}

void matmul(py::array A, py::array B, py::array C, double alpha, double beta, const py::dict& tiles, int nthreads,
            const std::string& isa) {
  if (py::isinstance<py::array_t<float>>(C)) matmul_t<float>(A, B, C, alpha, beta, tiles, nthreads, isa);
  else matmul_t<double>(A, B, C, alpha, beta, tiles, nthreads, isa);
}

// A, B, C: the base arrays (any ndim); offsets: int64 element offsets per matrix; strides in elements.
template <class T>
void batched_t(py::array A, py::array offa, index_t rsa, index_t csa, py::array B, py::array offb, index_t rsb,
               index_t csb, py::array C, py::array offc, index_t rsc, index_t csc, index_t m, index_t n, index_t k,
               double alpha, double beta, bool use_fixed) {
  kf::check_dtype<T>(A, "A");
  kf::check_dtype<T>(B, "B");
  kf::check_dtype<T>(C, "out");
  if (!C.writeable()) kf::throw_invalid("out must be writable");
  const index_t batch = offc.size();
  const auto* oa = kf::contiguous_ptr<std::int64_t>(offa, "offa", batch);
  const auto* ob = kf::contiguous_ptr<std::int64_t>(offb, "offb", batch);
  const auto* oc = kf::contiguous_ptr<std::int64_t>(offc, "offc", batch);
  const T* pa = static_cast<const T*>(A.data());
  const T* pb = static_cast<const T*>(B.data());
  T* pc = static_cast<T*>(C.mutable_data());
  py::gil_scoped_release release;
  kf::gemm::batched_gemm<T>(batch, m, n, k, static_cast<T>(alpha), pa, oa, rsa, csa, pb, ob, rsb, csb,
                            static_cast<T>(beta), pc, oc, rsc, csc, use_fixed);
}

template <class T>
kf::gemm::Blocks3<T> blocks_view(const py::array& w, const char* name) {
  kf::check_dtype<T>(w, name);
  KF_REQUIRE(w.ndim() == 3, name, " must be 3-D");
  const auto s = static_cast<py::ssize_t>(sizeof(T));
  return {static_cast<const T*>(w.data()), w.shape(0), w.shape(1), w.shape(2), w.strides(0) / s, w.strides(1) / s,
          w.strides(2) / s};
}

template <class T>
void monarch_t(py::array x, py::array w1, py::array w2, py::array y) {
  auto xv = kf::matrix_view<T>(x, "x");
  auto yv = kf::matrix_view<T>(y, "out", true);
  auto b1 = blocks_view<T>(w1, "blocks1");
  auto b2 = blocks_view<T>(w2, "blocks2");
  KF_REQUIRE(xv.cols == b1.nb * b1.cols, "x must have k*p columns");
  KF_REQUIRE(yv.rows == xv.rows && yv.cols == b2.nb * b2.rows, "out has the wrong shape");
  py::gil_scoped_release release;
  kf::gemm::monarch<T>(xv.rows, xv.data, xv.row_stride, xv.col_stride, b1, b2, yv.data, yv.row_stride,
                       yv.col_stride);
}

template <class T>
py::list kernels_t(const std::string& isa) {
  py::list out;
  for (const auto& k : kf::gemm::kernels_for<T>(isa_from(isa))) {
    auto t = kf::gemm::resolve_tiles<T>(k, kf::gemm::Tiles());
    py::dict d;
    d["name"] = k.name;
    d["isa"] = kf::isa_name(k.isa);
    d["mr"] = k.mr;
    d["nr"] = k.nr;
    d["mc"] = t.mc;
    d["kc"] = t.kc;
    d["nc"] = t.nc;
    out.append(d);
  }
  return out;
}

// Eigen's GEMM on C-contiguous arrays: a second peer for the benchmarks, compiled in the same build
// (so with the same baseline flags: Eigen vectorises for the compile-time ISA only).
template <class T>
void eigen_matmul_t(py::array A, py::array B, py::array C, int nthreads) {
  using M = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  KF_REQUIRE(A.ndim() == 2 && B.ndim() == 2 && C.ndim() == 2, "A, B, out must be 2-D");
  const auto m = A.shape(0), k = A.shape(1), n = B.shape(1);
  KF_REQUIRE(B.shape(0) == k && C.shape(0) == m && C.shape(1) == n, "incompatible shapes");
  Eigen::Map<const M> a(kf::contiguous_ptr<T>(A, "A", m * k), m, k);
  Eigen::Map<const M> b(kf::contiguous_ptr<T>(B, "B", k * n), k, n);
  Eigen::Map<M> c(kf::contiguous_ptr<T>(C, "out", m * n, true), m, n);
  py::gil_scoped_release release;
  Eigen::setNbThreads(nthreads > 0 ? nthreads : kf::get_num_threads());
  c.noalias() = a * b;
}

#ifdef KF_HAVE_CUDA
template <class T>
void cuda_matmul_t(py::array A, py::array B, py::array C, double alpha, double beta, int tile, int micro) {
  KF_REQUIRE(A.ndim() == 2 && B.ndim() == 2 && C.ndim() == 2, "A, B, out must be 2-D");
  const auto m = A.shape(0), k = A.shape(1), n = B.shape(1);
  KF_REQUIRE(B.shape(0) == k && C.shape(0) == m && C.shape(1) == n, "incompatible shapes");
  KF_REQUIRE(m < (1LL << 31) && n < (1LL << 31) && k < (1LL << 31), "dimensions must be below 2^31 on the GPU");
  const T* a = kf::contiguous_ptr<T>(A, "A", m * k);
  const T* b = kf::contiguous_ptr<T>(B, "B", k * n);
  T* c = kf::contiguous_ptr<T>(C, "out", m * n, true);
  py::gil_scoped_release release;
  if constexpr (sizeof(T) == 4)
    kf::cuda::gemm_tiled_f32(int(m), int(n), int(k), float(alpha), a, b, float(beta), c, tile, micro);
  else
    kf::cuda::gemm_tiled_f64(int(m), int(n), int(k), alpha, a, b, beta, c, tile, micro);
}
#endif

}  // namespace

void bind_gemm(py::module_& m) {
  auto g = m.def_submodule("gemm", "GEMM kernels");
  g.def("matmul", &matmul, py::arg("A"), py::arg("B"), py::arg("out").noconvert(), py::arg("alpha"),
        py::arg("beta"), py::arg("tiles"), py::arg("nthreads") = 0, py::arg("isa") = "");
  g.def("batched_f32", &batched_t<float>);
  g.def("batched_f64", &batched_t<double>);
  g.def("monarch_f32", &monarch_t<float>, py::arg("x"), py::arg("w1"), py::arg("w2"), py::arg("out").noconvert());
  g.def("monarch_f64", &monarch_t<double>, py::arg("x"), py::arg("w1"), py::arg("w2"), py::arg("out").noconvert());
  g.def("eigen_matmul_f32", &eigen_matmul_t<float>, py::arg("A"), py::arg("B"), py::arg("out").noconvert(),
        py::arg("nthreads") = 0);
  g.def("eigen_matmul_f64", &eigen_matmul_t<double>, py::arg("A"), py::arg("B"), py::arg("out").noconvert(),
        py::arg("nthreads") = 0);
  g.def("fma_peak_gflops", [](const std::string& dtype, long iters) {
    py::gil_scoped_release release;
    return dtype == "float32" ? kf::gemm::fma_peak_gflops<float>(iters) : kf::gemm::fma_peak_gflops<double>(iters);
  }, py::arg("dtype"), py::arg("iters") = 20000000L);
#ifdef KF_HAVE_CUDA
  g.def("cuda_matmul_f32", &cuda_matmul_t<float>, py::arg("A"), py::arg("B"), py::arg("out").noconvert(),
        py::arg("alpha"), py::arg("beta"), py::arg("tile"), py::arg("micro"));
  g.def("cuda_matmul_f64", &cuda_matmul_t<double>, py::arg("A"), py::arg("B"), py::arg("out").noconvert(),
        py::arg("alpha"), py::arg("beta"), py::arg("tile"), py::arg("micro"));
  g.def("cuda_time", [](int m, int n, int k, const std::string& dtype, int tile, int micro, int warmup, int reps,
                        unsigned seed) {
    py::gil_scoped_release release;
    return dtype == "float32" ? kf::cuda::gemm_tiled_time_f32(m, n, k, tile, micro, warmup, reps, seed)
                              : kf::cuda::gemm_tiled_time_f64(m, n, k, tile, micro, warmup, reps, seed);
  }, py::arg("m"), py::arg("n"), py::arg("k"), py::arg("dtype"), py::arg("tile"), py::arg("micro"), py::arg("warmup"),
        py::arg("reps"), py::arg("seed"));
  g.def("cuda_fits", &kf::cuda::gemm_tiled_fits, py::arg("f32"), py::arg("tile"), py::arg("micro"));
  g.def("cuda_device_name", &kf::cuda::device_name);
#endif
  g.def("kernels_f32", &kernels_t<float>, py::arg("isa") = "");
  g.def("kernels_f64", &kernels_t<double>, py::arg("isa") = "");
}
