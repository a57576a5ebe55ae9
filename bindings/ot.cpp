// kernforge._core.ot: Sinkhorn solvers (log, kernel, SNS, generalised scaling, partial, batched,
// point clouds). Thin: arrays in, dicts of arrays out; the Python layer validates and builds results.
#include <memory>
#include <string>
#include <vector>

#include "common.hpp"
#include "kernforge/ot/cost.hpp"
#include "kernforge/ot/sinkhorn.hpp"
#include "kernforge/ot/small.hpp"
#include "kernforge/ot/sns.hpp"

namespace py = pybind11;
using kf::index_t;

namespace {

template <class T>
std::vector<T> to_vec(const py::object& o, const char* name, index_t n) {
  if (o.is_none()) return {};
  py::array arr = py::array::ensure(o);
  const T* p = kf::contiguous_ptr<T>(arr, name, n);
  return std::vector<T>(p, p + n);
}

template <class T>
py::array_t<T> from_vec(const std::vector<T>& v) {
  py::array_t<T> out(static_cast<py::ssize_t>(v.size()));
  std::copy(v.begin(), v.end(), out.mutable_data());
  return out;
}

py::array_t<double> from_dvec(const std::vector<double>& v) { return from_vec<double>(v); }

kf::ot::Options make_options(double eps, double tol, long max_iter, double omega, double eps_scaling,
                             double eps_start, bool balanced) {
  kf::ot::Options o;
  o.eps = eps;
  o.tol = tol;
  o.max_iter = max_iter;
  o.adaptive = omega <= 0;
  o.omega = omega > 0 ? omega : 1.0;
  o.eps_scaling = eps_scaling;
  o.eps_start = eps_start;
  o.balanced = balanced;
  return o;
}

template <class T, class Cost>
void put_finalize(py::dict& d, const Cost& cost, const kf::ot::Potentials<T>& z, const std::vector<T>& lra,
                  const std::vector<T>& lrb, T eps, bool want_plan) {
  const index_t n = cost.rows(), m = cost.cols();
  py::array_t<double> r(n), c(m);
  py::object plan = py::none();
  double total = 0;
  if (want_plan) {
    py::array_t<T> P({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(m)});
    T* pp = P.mutable_data();
    double* rp = r.mutable_data();
    double* cp = c.mutable_data();
    {
      py::gil_scoped_release rel;
      kf::ot::finalize(cost, z.f, z.g, lra, lrb, eps, pp, rp, cp, total);
    }
    plan = P;
  } else {
    double* rp = r.mutable_data();
    double* cp = c.mutable_data();
    py::gil_scoped_release rel;
    kf::ot::finalize<T>(cost, z.f, z.g, lra, lrb, eps, nullptr, rp, cp, total);
  }
  d["plan"] = plan;
  d["r"] = r;
  d["c"] = c;
  d["cost"] = total;
}

void put_info(py::dict& d, const kf::ot::Info& info) {
  d["n_iter"] = info.n_iter;
  d["converged"] = info.converged;
  d["errors"] = from_dvec(info.errors);
  d["omega"] = info.omega;
  d["note"] = info.note;
}

// Balanced solve on a dense cost: method "log", "sinkhorn" (kernel, falling back to log) or "sns".
template <class T>
py::dict sinkhorn_dense(py::array C, py::array a, py::array b, double eps, const std::string& method, double tol,
                        long max_iter, double omega, double eps_scaling, double eps_start, py::object f0,
                        py::object g0, bool want_plan, long sns_iter, double sns_delta, long sns_max_newton) {
  KF_REQUIRE(C.ndim() == 2, "M must be 2-D");
  const index_t n = C.shape(0), m = C.shape(1);
  const T* cp = kf::contiguous_ptr<T>(C, "M", n * m);
  std::vector<T> av = to_vec<T>(a, "a", n), bv = to_vec<T>(b, "b", m);
  kf::ot::Potentials<T> z;
  z.f = to_vec<T>(f0, "f0", n);
  z.g = to_vec<T>(g0, "g0", m);
  auto opt = make_options(eps, tol, max_iter, omega, eps_scaling, eps_start, true);
  py::dict d;
  std::string used = method;
  std::unique_ptr<kf::ot::DenseCost<T>> cost;
  kf::ot::Info info;
  {
    py::gil_scoped_release rel;
    kf::ot::Side<T> rows, cols;
    rows.logmass.resize(n);
    cols.logmass.resize(m);
    for (index_t i = 0; i < n; ++i) rows.logmass[i] = std::log(av[i]);
    for (index_t j = 0; j < m; ++j) cols.logmass[j] = std::log(bv[j]);
    if (method == "sinkhorn") {
      bool ok;
      if (kf::ot::is_small(n, m)) {
        kf::ot::SmallWork<T> work;
        ok = kf::ot::solve_kernel_small(cp, n, m, av.data(), bv.data(), static_cast<T>(eps), z, opt, info, work);
      } else {
        ok = kf::ot::solve_kernel(cp, n, m, av.data(), bv.data(), static_cast<T>(eps), z, opt, info);
      }
      cost = std::make_unique<kf::ot::DenseCost<T>>(cp, n, m, !ok);
      if (!ok) {
        used = "log";
        auto o2 = opt;
        o2.max_iter = kf::ot::iterations_left(max_iter, info);
        kf::ot::Info i2 = kf::ot::solve_log(*cost, rows, cols, z, o2);
        kf::ot::append_run(info, i2);
        info.omega = i2.omega;
      }
    } else if (method == "log") {
      cost = std::make_unique<kf::ot::DenseCost<T>>(cp, n, m);
      info = kf::ot::solve_log(*cost, rows, cols, z, opt);
    } else if (method == "sns") {
      cost = std::make_unique<kf::ot::DenseCost<T>>(cp, n, m);
      kf::ot::SnsOptions so;
      so.sinkhorn_iter = sns_iter;
      so.delta = sns_delta;
      so.max_newton = sns_max_newton;
      auto sinfo = kf::ot::solve_sns(*cost, av, bv, z, opt, so);
      info = sinfo.info;
      py::gil_scoped_acquire acq;
      d["n_newton"] = sinfo.n_newton;
      d["n_sinkhorn"] = sinfo.n_sinkhorn;
      d["cg_iters"] = sinfo.cg_iters;
      d["mean_kept"] = sinfo.mean_kept;
    } else {
      kf::throw_invalid("method must be 'sinkhorn', 'log' or 'sns', got '", method, "'");
    }
  }
  put_info(d, info);
  d["method"] = used;
  d["f"] = from_vec(z.f);
  d["g"] = from_vec(z.g);
  put_finalize<T>(d, *cost, z, {}, {}, static_cast<T>(eps), want_plan);
  return d;
}

// Balanced log-domain solve between point clouds, squared-Euclidean cost scale * |x - y|^2 computed
// on the fly. No plan is formed.
template <class T>
py::dict sinkhorn_points(py::array X, py::array Y, double scale, py::array a, py::array b, double eps, double tol,
                         long max_iter, double omega, double eps_scaling, double eps_start, py::object f0,
                         py::object g0) {
  const index_t n = X.shape(0), m = Y.shape(0), dim = X.shape(1);
  const T* xp = kf::contiguous_ptr<T>(X, "x", n * dim);
  const T* yp = kf::contiguous_ptr<T>(Y, "y", m * dim);
  kf::ot::SqEuclideanCost<T> cost(xp, yp, n, m, dim, static_cast<T>(scale));
  kf::ot::Side<T> rows, cols;
  std::vector<T> av = to_vec<T>(a, "a", n), bv = to_vec<T>(b, "b", m);
  rows.logmass.resize(n);
  cols.logmass.resize(m);
  for (index_t i = 0; i < n; ++i) rows.logmass[i] = std::log(av[i]);
  for (index_t j = 0; j < m; ++j) cols.logmass[j] = std::log(bv[j]);
  kf::ot::Potentials<T> z;
  z.f = to_vec<T>(f0, "f0", n);
  z.g = to_vec<T>(g0, "g0", m);
  auto opt = make_options(eps, tol, max_iter, omega, eps_scaling, eps_start, true);
  kf::ot::Info info;
  {
    py::gil_scoped_release rel;
    info = kf::ot::solve_log(cost, rows, cols, z, opt);
  }
  py::dict d;
  put_info(d, info);
  d["method"] = "log";
  d["f"] = from_vec(z.f);
  d["g"] = from_vec(z.g);
  put_finalize<T>(d, cost, z, {}, {}, static_cast<T>(eps), false);
  return d;
}

// y = P v (transpose: P^T v) for the point-cloud plan P_ij = exp((f_i + g_j - C_ij)/eps).
template <class T>
py::array_t<double> plan_matvec_points(py::array X, py::array Y, double scale, py::array f, py::array g, double eps,
                                       py::array v, bool transpose) {
  const index_t n = X.shape(0), m = Y.shape(0), dim = X.shape(1);
  const T* xp = kf::contiguous_ptr<T>(X, "x", n * dim);
  const T* yp = kf::contiguous_ptr<T>(Y, "y", m * dim);
  kf::ot::SqEuclideanCost<T> cost(xp, yp, n, m, dim, static_cast<T>(scale));
  const T* fp = kf::contiguous_ptr<T>(f, "f", n);
  const T* gp = kf::contiguous_ptr<T>(g, "g", m);
  const index_t K = transpose ? m : n, L = transpose ? n : m;
  const double* vp = kf::contiguous_ptr<double>(v, "v", L);
  py::array_t<double> out(K);
  double* op = out.mutable_data();
  {
    py::gil_scoped_release rel;
    const T inv = static_cast<T>(1.0 / eps);
    std::vector<T> w(L);
    const T* other = transpose ? fp : gp;
    const T* self = transpose ? gp : fp;
    for (index_t t = 0; t < L; ++t) w[t] = other[t] * inv;
    const bool avx2 = kf::ot::use_avx2();
    const int nt = kf::threads_for(static_cast<size_t>(K) * L, 16384);
#pragma omp parallel num_threads(nt)
    {
      std::vector<T> buf(std::max(n, m)), row(L);
#pragma omp for schedule(dynamic, 8)
      for (index_t k = 0; k < K; ++k) {
        const T* c = transpose ? cost.col(k, buf.data()) : cost.row(k, buf.data());
        kf::ot::exp_row(c, w.data(), inv, self[k] * inv, L, row.data(), avx2);
        double s = 0;
        for (index_t t = 0; t < L; ++t) s += static_cast<double>(row[t]) * vp[t];
        op[k] = s;
      }
    }
  }
  return out;
}


// Generalised scaling (unbalanced / progressive partial) on a dense cost.
template <class T>
py::dict scaling_dense(py::array C, py::array la, py::array lb, py::object tau_a, py::object tau_b, py::object lra,
                       py::object lrb, py::object dummy_row, py::object dummy_col, double eps, double tol,
                       long max_iter, double omega, py::object f0, py::object g0, double fd0, double gd0,
                       bool want_plan, double reg_m_a, double reg_m_b, bool kernel) {
  const index_t n = C.shape(0), m = C.shape(1);
  const T* cp = kf::contiguous_ptr<T>(C, "M", n * m);
  kf::ot::Side<T> rows, cols;
  rows.logmass = to_vec<T>(la, "a", n);
  cols.logmass = to_vec<T>(lb, "b", m);
  rows.tau = to_vec<T>(tau_a, "tau_a", n);
  cols.tau = to_vec<T>(tau_b, "tau_b", m);
  rows.logref = to_vec<T>(lra, "lra", n);
  cols.logref = to_vec<T>(lrb, "lrb", m);
  // Dummy specs: (cost, logmass, tau) tuples or None.
  auto set_dummy = [](kf::ot::Side<T>& s, const py::object& o) {
    if (o.is_none()) return;
    auto t = o.cast<py::tuple>();
    s.dummy = true;
    s.dummy_cost = t[0].cast<T>();
    s.dummy_logmass = t[1].cast<T>();
    s.dummy_tau = t[2].cast<T>();
  };
  set_dummy(rows, dummy_row);
  set_dummy(cols, dummy_col);
  rows.reg_m = reg_m_a;
  cols.reg_m = reg_m_b;
  kf::ot::Potentials<T> z;
  z.f = to_vec<T>(f0, "f0", n);
  z.g = to_vec<T>(g0, "g0", m);
  z.fd = static_cast<T>(fd0);
  z.gd = static_cast<T>(gd0);
  auto opt = make_options(eps, tol, max_iter, omega, 0.0, 0.0, false);
  std::unique_ptr<kf::ot::DenseCost<T>> cost;
  kf::ot::Info info;
  std::string used = "log";
  {
    py::gil_scoped_release rel;
    bool done = false;
    if (kernel && !rows.dummy && !cols.dummy) {
      done = kf::ot::solve_kernel_scaling(cp, n, m, rows, cols, static_cast<T>(eps), z, opt, info);
      used = done ? "sinkhorn" : "log";
    }
    cost = std::make_unique<kf::ot::DenseCost<T>>(cp, n, m, !done);
    if (!done) {
      auto o2 = opt;
      o2.max_iter = kf::ot::iterations_left(max_iter, info);
      kf::ot::Info i2 = kf::ot::solve_log(*cost, rows, cols, z, o2);
      kf::ot::append_run(info, i2);
      if (i2.omega != 1.0) info.omega = i2.omega;
    }
  }
  py::dict d;
  put_info(d, info);
  d["method"] = used;
  d["f"] = from_vec(z.f);
  d["g"] = from_vec(z.g);
  d["fd"] = static_cast<double>(z.fd);
  d["gd"] = static_cast<double>(z.gd);
  put_finalize<T>(d, *cost, z, rows.logref, cols.logref, static_cast<T>(eps), want_plan);
  return d;
}

template <class T>
py::dict partial_dense(py::array C, py::array la, py::array lb, double mass, double eps, double tol, long max_iter,
                       bool want_plan) {
  const index_t n = C.shape(0), m = C.shape(1);
  const T* cp = kf::contiguous_ptr<T>(C, "M", n * m);
  std::vector<T> loga = to_vec<T>(la, "a", n), logb = to_vec<T>(lb, "b", m);
  kf::ot::Potentials<T> z;
  T mu = 0;
  auto opt = make_options(eps, tol, max_iter, 1.0, 0.0, 0.0, false);
  std::unique_ptr<kf::ot::DenseCost<T>> cost;
  kf::ot::Info info;
  {
    py::gil_scoped_release rel;
    // Kernel domain when exp(-M/eps) is safe (no transpose needed), else the log domain.
    std::vector<T> av(n), bv(m);
    for (index_t i = 0; i < n; ++i) av[i] = std::exp(loga[i]);
    for (index_t j = 0; j < m; ++j) bv[j] = std::exp(logb[j]);
    const bool ok = kf::ot::solve_partial_kernel(cp, n, m, av.data(), bv.data(), static_cast<T>(mass),
                                                 static_cast<T>(eps), z, mu, opt, info);
    cost = std::make_unique<kf::ot::DenseCost<T>>(cp, n, m, !ok);
    if (!ok) {
      auto o2 = opt;
      o2.max_iter = kf::ot::iterations_left(max_iter, info);
      kf::ot::Info i2 = kf::ot::solve_partial(*cost, loga, logb, static_cast<T>(mass), static_cast<T>(eps), z, mu, o2);
      kf::ot::append_run(info, i2);
    }
  }
  py::dict d;
  put_info(d, info);
  // Fold mu into f for the plan: P_ij = exp((f_i + mu + g_j - C_ij)/eps).
  kf::ot::Potentials<T> zp = z;
  for (auto& v : zp.f) v += mu;
  d["f"] = from_vec(z.f);
  d["g"] = from_vec(z.g);
  d["mu"] = static_cast<double>(mu);
  put_finalize<T>(d, *cost, zp, {}, {}, static_cast<T>(eps), want_plan);
  return d;
}

// B balanced problems; C is (B, n, m) or one shared (n, m). Parallel over the problems.
template <class T>
py::dict sinkhorn_batch(py::array C, py::array a, py::array b, double eps, double tol, long max_iter, double omega,
                        bool want_plan, bool kernel) {
  const index_t Bn = a.shape(0), n = a.shape(1), m = b.shape(1);
  const bool shared = C.ndim() == 2;
  const T* cp = kf::contiguous_ptr<T>(C, "M", (shared ? 1 : Bn) * n * m);
  const T* ap = kf::contiguous_ptr<T>(a, "a", Bn * n);
  const T* bp = kf::contiguous_ptr<T>(b, "b", Bn * m);
  py::array_t<T> F({static_cast<py::ssize_t>(Bn), static_cast<py::ssize_t>(n)});
  py::array_t<T> G({static_cast<py::ssize_t>(Bn), static_cast<py::ssize_t>(m)});
  py::array_t<double> costs(Bn);
  py::array_t<long> iters(Bn);
  py::array_t<bool> conv(Bn);
  py::array_t<double> errs(Bn);
  py::object plan = py::none();
  T* pp = nullptr;
  if (want_plan) {
    py::array_t<T> P({static_cast<py::ssize_t>(Bn), static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(m)});
    pp = P.mutable_data();
    plan = P;
  }
  T* fp = F.mutable_data();
  T* gp = G.mutable_data();
  double* costp = costs.mutable_data();
  long* itp = iters.mutable_data();
  bool* cvp = conv.mutable_data();
  double* ep = errs.mutable_data();
  auto opt = make_options(eps, tol, max_iter, omega, 0.0, 0.0, true);
  {
    py::gil_scoped_release rel;
    std::unique_ptr<kf::ot::DenseCost<T>> shared_cost;
    if (shared) shared_cost = std::make_unique<kf::ot::DenseCost<T>>(cp, n, m);
    kf::ParallelGuard guard;
    const int nt = std::min<int>(kf::get_num_threads(), static_cast<int>(Bn));
    const bool small = kernel && kf::ot::is_small(n, m);
    // One parallel region; every buffer is per thread and reused across its problems.
#pragma omp parallel num_threads(nt)
    {
      kf::ot::SmallWork<T> work;
      kf::ot::Potentials<T> z;
      kf::ot::Info info;
      kf::ot::Side<T> rows, cols;
      std::vector<double> r(n), c(m);
#pragma omp for schedule(dynamic, 4)
      for (index_t p = 0; p < Bn; ++p) {
        guard.run([&] {
          const T* Cp = shared ? cp : cp + p * n * m;
          const T* ak = ap + p * n;
          const T* bk = bp + p * m;
          z.f.clear();
          z.g.clear();
          info.n_iter = 0;
          info.converged = false;
          info.errors.clear();
          info.note.clear();
          bool ok = false;
          // Small problems: the kernel domain (exp once, two short matvecs per iteration) when K
          // is safe, falling back to the log domain; large ones: the single-solve kernel loop.
          if (kernel) {
            ok = small ? kf::ot::solve_kernel_small(Cp, n, m, ak, bk, static_cast<T>(eps), z, opt, info, work)
                       : kf::ot::solve_kernel(Cp, n, m, ak, bk, static_cast<T>(eps), z, opt, info);
          }
          std::unique_ptr<kf::ot::DenseCost<T>> own;
          const kf::ot::DenseCost<T>* cost = shared_cost.get();
          if (!ok) {
            if (!shared) {
              own = std::make_unique<kf::ot::DenseCost<T>>(Cp, n, m, true);
              cost = own.get();
            }
            rows.logmass.resize(n);
            cols.logmass.resize(m);
            for (index_t i = 0; i < n; ++i) rows.logmass[i] = std::log(ak[i]);
            for (index_t j = 0; j < m; ++j) cols.logmass[j] = std::log(bk[j]);
            rows.mass_cache.clear();  // reused across problems: drop the previous targets
            cols.mass_cache.clear();
            auto o2 = opt;
            o2.max_iter = kf::ot::iterations_left(opt.max_iter, info);  // all of it without a kernel attempt
            kf::ot::Info i2 = kf::ot::solve_log(*cost, rows, cols, z, o2);
            kf::ot::append_run(info, i2);
          } else if (!shared) {
            // The plan reads rows only: no transpose.
            own = std::make_unique<kf::ot::DenseCost<T>>(Cp, n, m, false);
            cost = own.get();
          }
          double total = 0;
          kf::ot::finalize<T>(*cost, z.f, z.g, {}, {}, static_cast<T>(eps), pp ? pp + p * n * m : nullptr, r.data(),
                              c.data(), total);
          std::copy(z.f.begin(), z.f.end(), fp + p * n);
          std::copy(z.g.begin(), z.g.end(), gp + p * m);
          costp[p] = total;
          itp[p] = info.n_iter;
          cvp[p] = info.converged;
          ep[p] = info.errors.empty() ? 0.0 : info.errors.back();
        });
      }
    }
    guard.rethrow();
  }
  py::dict d;
  d["f"] = F;
  d["g"] = G;
  d["plan"] = plan;
  d["cost"] = costs;
  d["n_iter"] = iters;
  d["converged"] = conv;
  d["err"] = errs;
  return d;
}

bool is_f32(const py::array& a) { return py::isinstance<py::array_t<float>>(a); }

}  // namespace

void bind_ot(py::module_& m) {
  auto s = m.def_submodule("ot", "Sinkhorn optimal transport kernels");
  s.def(
      "sinkhorn_dense",
      [](py::array C, py::array a, py::array b, double eps, const std::string& method, double tol, long max_iter,
         double omega, double eps_scaling, double eps_start, py::object f0, py::object g0, bool want_plan,
         long sns_iter, double sns_delta, long sns_max_newton) {
        if (is_f32(C))
          return sinkhorn_dense<float>(C, a, b, eps, method, tol, max_iter, omega, eps_scaling, eps_start, f0, g0,
                                       want_plan, sns_iter, sns_delta, sns_max_newton);
        return sinkhorn_dense<double>(C, a, b, eps, method, tol, max_iter, omega, eps_scaling, eps_start, f0, g0,
                                      want_plan, sns_iter, sns_delta, sns_max_newton);
      });
  s.def("sinkhorn_points", [](py::array X, py::array Y, double scale, py::array a, py::array b, double eps,
                              double tol, long max_iter, double omega, double eps_scaling, double eps_start,
                              py::object f0, py::object g0) {
    if (is_f32(X))
      return sinkhorn_points<float>(X, Y, scale, a, b, eps, tol, max_iter, omega, eps_scaling, eps_start, f0, g0);
    return sinkhorn_points<double>(X, Y, scale, a, b, eps, tol, max_iter, omega, eps_scaling, eps_start, f0, g0);
  });
  s.def("plan_matvec_points", [](py::array X, py::array Y, double scale, py::array f, py::array g, double eps,
                                 py::array v, bool transpose) {
    if (is_f32(X)) return plan_matvec_points<float>(X, Y, scale, f, g, eps, v, transpose);
    return plan_matvec_points<double>(X, Y, scale, f, g, eps, v, transpose);
  });
  s.def("scaling_dense", [](py::array C, py::array la, py::array lb, py::object tau_a, py::object tau_b,
                            py::object lra, py::object lrb, py::object dummy_row, py::object dummy_col, double eps,
                            double tol, long max_iter, double omega, py::object f0, py::object g0, double fd0,
                            double gd0, bool want_plan, double reg_m_a, double reg_m_b, bool kernel) {
    if (is_f32(C))
      return scaling_dense<float>(C, la, lb, tau_a, tau_b, lra, lrb, dummy_row, dummy_col, eps, tol, max_iter,
                                  omega, f0, g0, fd0, gd0, want_plan, reg_m_a, reg_m_b, kernel);
    return scaling_dense<double>(C, la, lb, tau_a, tau_b, lra, lrb, dummy_row, dummy_col, eps, tol, max_iter, omega,
                                 f0, g0, fd0, gd0, want_plan, reg_m_a, reg_m_b, kernel);
  });
  s.def("partial_dense", [](py::array C, py::array la, py::array lb, double mass, double eps, double tol,
                            long max_iter, bool want_plan) {
    if (is_f32(C)) return partial_dense<float>(C, la, lb, mass, eps, tol, max_iter, want_plan);
    return partial_dense<double>(C, la, lb, mass, eps, tol, max_iter, want_plan);
  });
  s.def("sinkhorn_batch", [](py::array C, py::array a, py::array b, double eps, double tol, long max_iter,
                             double omega, bool want_plan, bool kernel) {
    if (is_f32(C)) return sinkhorn_batch<float>(C, a, b, eps, tol, max_iter, omega, want_plan, kernel);
    return sinkhorn_batch<double>(C, a, b, eps, tol, max_iter, omega, want_plan, kernel);
  });
}
