// kernforge._core.encoding: the hash-encoding layouts and their forward / backward kernels.
#include "common.hpp"
#include "kernforge/encoding/encoding.hpp"

namespace py = pybind11;
namespace enc = kf::encoding;

namespace {

enc::Kind parse_kind(const std::string& k) {
  if (k == "grid") return enc::Kind::grid;
  if (k == "simplex") return enc::Kind::simplex;
  kf::throw_invalid("kind must be 'grid' or 'simplex', got '", k, "'");
}

struct PyLayout {
  enc::Layout L;

  PyLayout(const std::string& kind, int dim, int levels, int features, int log2_table_size, double base_resolution,
           double per_level_scale)
      : L(enc::make_layout(parse_kind(kind), dim, levels, features, log2_table_size, base_resolution,
                           per_level_scale)) {}

  template <class T>
  void forward_t(const py::array& params, const py::array& x, py::array& out) {
    const auto n = static_cast<kf::index_t>(x.shape(0));
    const T* pp = kf::contiguous_ptr<T>(params, "params", static_cast<py::ssize_t>(L.n_params()));
    const T* xp = kf::contiguous_ptr<T>(x, "x", n * L.dim);
    T* op = kf::contiguous_ptr<T>(out, "out", n * L.output_dim(), true);
    py::gil_scoped_release release;
    enc::forward<T>(L, pp, xp, n, op);
  }

  template <class T>
  void backward_t(const py::array& params, const py::array& x, const py::array& grad_out, const py::object& gp,
                  const py::object& gx) {
    const auto n = static_cast<kf::index_t>(x.shape(0));
    const T* pp = kf::contiguous_ptr<T>(params, "params", static_cast<py::ssize_t>(L.n_params()));
    const T* xp = kf::contiguous_ptr<T>(x, "x", n * L.dim);
    const T* go = kf::contiguous_ptr<T>(grad_out, "grad_out", n * L.output_dim());
    T* gpp = gp.is_none() ? nullptr
                          : kf::contiguous_ptr<T>(gp.cast<py::array>(), "grad_params",
                                                  static_cast<py::ssize_t>(L.n_params()), true);
    T* gxp = gx.is_none() ? nullptr : kf::contiguous_ptr<T>(gx.cast<py::array>(), "grad_x", n * L.dim, true);
    py::gil_scoped_release release;
    enc::backward<T>(L, pp, xp, n, go, gpp, gxp);
  }

  void forward(const py::array& params, const py::array& x, py::array out) {
    KF_REQUIRE(x.ndim() == 2 && x.shape(1) == L.dim, "x must have shape (n, ", L.dim, ")");
    if (py::isinstance<py::array_t<float>>(params))
      forward_t<float>(params, x, out);
    else
      forward_t<double>(params, x, out);
  }

  void backward(const py::array& params, const py::array& x, const py::array& grad_out, py::object gp,
                py::object gx) {
    KF_REQUIRE(x.ndim() == 2 && x.shape(1) == L.dim, "x must have shape (n, ", L.dim, ")");
    if (py::isinstance<py::array_t<float>>(params))
      backward_t<float>(params, x, grad_out, gp, gx);
    else
      backward_t<double>(params, x, grad_out, gp, gx);
  }

  py::dict levels() const {
    const auto nl = static_cast<py::ssize_t>(L.levels);
    py::array_t<double> scale(nl);
    py::array_t<std::int64_t> res(nl), rows(nl), offset(nl);
    py::array_t<bool> dense(nl);
    for (py::ssize_t l = 0; l < nl; ++l) {
      const auto& v = L.lv[static_cast<std::size_t>(l)];
      scale.mutable_at(l) = v.scale;
      res.mutable_at(l) = v.res;
      rows.mutable_at(l) = static_cast<std::int64_t>(v.rows);
      offset.mutable_at(l) = static_cast<std::int64_t>(v.offset);
      dense.mutable_at(l) = v.dense;
    }
    py::dict d;
    d["scale"] = scale;
    d["resolution"] = res;
    d["rows"] = rows;
    d["offset"] = offset;
    d["dense"] = dense;
    return d;
  }
};

}  // namespace

void bind_encoding(py::module_& m) {
  auto s = m.def_submodule("encoding", "Multiresolution hash encodings (hypercube grid and simplex)");
  py::class_<PyLayout>(s, "Layout")
      .def(py::init<const std::string&, int, int, int, int, double, double>(), py::arg("kind"), py::arg("dim"),
           py::arg("levels"), py::arg("features"), py::arg("log2_table_size"), py::arg("base_resolution"),
           py::arg("per_level_scale"))
      .def_property_readonly("total_rows", [](const PyLayout& p) { return p.L.total_rows; })
      .def_property_readonly("n_params", [](const PyLayout& p) { return p.L.n_params(); })
      .def_property_readonly("output_dim", [](const PyLayout& p) { return p.L.output_dim(); })
      .def_property_readonly("vertices", [](const PyLayout& p) { return p.L.vertices(); })
      .def_property_readonly("skew_F", [](const PyLayout& p) { return p.L.skew.F; })
      .def_property_readonly("skew_inv_nu", [](const PyLayout& p) { return p.L.skew.inv_nu; })
      .def_property_readonly("skew_R", [](const PyLayout& p) { return p.L.skew.R; })
      .def("levels", &PyLayout::levels)
      .def("forward", &PyLayout::forward, py::arg("params"), py::arg("x"), py::arg("out").noconvert())
      .def("backward", &PyLayout::backward, py::arg("params"), py::arg("x"), py::arg("grad_out"),
           py::arg("grad_params").none(true), py::arg("grad_x").none(true));
  s.attr("MAX_DIM") = enc::kMaxDim;
  s.attr("MAX_LOG2_TABLE_SIZE") = enc::kMaxLog2TableSize;
  s.attr("PRIMES") = py::cast(std::vector<std::uint32_t>(enc::kPrimes, enc::kPrimes + enc::kMaxDim));
}
