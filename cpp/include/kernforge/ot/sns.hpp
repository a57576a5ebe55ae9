// Sinkhorn-Newton-Sparse (Tang, Shavlovsky, Rahmanian, Tardini, Thekumparampil, Xiao, Ying,
// "Accelerating Sinkhorn Algorithm with Sparse Newton Iterations", ICLR 2024).
//
// Stage 1: log-domain Sinkhorn iterations. Stage 2: Newton ascent on the concave Lyapunov potential
//   F(f, g) = <a, f> + <b, g> - eps * sum_ij P_ij,   P_ij = exp((f_i + g_j - C_ij)/eps),
//   grad F = (a - P1, b - P^T 1),  Hess F = -(1/eps) [[diag(P1), P], [P^T, diag(P^T 1)]].
// The Hessian keeps its full diagonal and a sparsified P: per row, the smallest set of largest
// entries holding 1 - delta of the row's mass (an adaptive budget; the paper's fixed ~2 entries per
// row stalls on dense 2-D clouds, papers.md section 5.2). The system is solved by Jacobi-preconditioned
// CG; (1, -1) spans the null space of the unsparsified Hessian and F is invariant along it, so the
// step is projected orthogonal to it. Armijo backtracking on F (accepting as well any step that
// lowers the marginal error, since F's decrease drowns in rounding near convergence). If Newton
// stalls, a batch of Sinkhorn iterations is run and delta shrinks (a wider budget). The result is
// finished with plain Sinkhorn iterations so that rows are exact, like the other methods.
#pragma once

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "kernforge/common/errors.hpp"
#include "kernforge/common/threads.hpp"
#include "kernforge/ot/sinkhorn.hpp"

namespace kf {
namespace ot {

struct SnsOptions {
  long sinkhorn_iter = 20;  // stage-1 iterations (the paper's N1)
  double delta = 1e-3;      // dropped mass fraction per row
  long min_per_row = 2;     // floor of kept entries per row
  long max_newton = 100;
  long cg_max_iter = 5000;
  double cg_rtol = 1e-4;
};

struct SnsInfo {
  Info info;
  long n_sinkhorn = 0;
  long n_newton = 0;
  long cg_iters = 0;
  double mean_kept = 0;  // average kept entries per row in the last Hessian
};

namespace detail {

template <class T>
struct SparseRows {
  std::vector<std::vector<int>> idx;
  std::vector<std::vector<double>> val;
  size_t nnz() const {
    size_t s = 0;
    for (auto& v : idx) s += v.size();
    return s;
  }
};

// One sweep over P at (f, g): row sums r, column sums c, sum P, and the sparsified rows.
template <class T>
void sns_sweep(const DenseCost<T>& cost, const std::vector<double>& f, const std::vector<double>& g, double eps,
               double delta, long min_per_row, std::vector<double>& r, std::vector<double>& c, double& total,
               SparseRows<T>* sp) {
  const index_t n = cost.rows(), m = cost.cols();
  const T inv = static_cast<T>(1.0 / eps);
  std::vector<T> w(m);
  for (index_t j = 0; j < m; ++j) w[j] = static_cast<T>(g[j] / eps);
  const index_t nb = std::min<index_t>(16, n);
  std::vector<double> csum(static_cast<size_t>(nb) * m, 0.0);
  const bool avx2 = use_avx2();
  const int nt = kf::threads_for(static_cast<size_t>(n) * m, 16384);
  if (sp) {
    sp->idx.resize(n);
    sp->val.resize(n);
  }
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
  for (index_t blk = 0; blk < nb; ++blk) {
    std::vector<T> row(m);
    std::vector<int> cand;
    double* cs = csum.data() + blk * m;
    const index_t lo = n * blk / nb, hi = n * (blk + 1) / nb;
    for (index_t i = lo; i < hi; ++i) {
      exp_row(cost.row(i, nullptr), w.data(), inv, static_cast<T>(f[i] / eps), m, row.data(), avx2);
      double rs = 0;
      for (index_t j = 0; j < m; ++j) {
        rs += row[j];
        cs[j] += row[j];
      }
      r[i] = rs;
      if (!sp) continue;
      // Entries below delta * r_i / m hold at most delta * r_i together: never needed.
      const double thr = delta * rs / static_cast<double>(m);
      cand.clear();
      for (index_t j = 0; j < m; ++j)
        if (row[j] >= thr) cand.push_back(static_cast<int>(j));
      std::sort(cand.begin(), cand.end(), [&](int x, int y) { return row[x] > row[y] || (row[x] == row[y] && x < y); });
      const double need = (1.0 - delta) * rs;
      double acc = 0;
      size_t k = 0;
      while (k < cand.size() && (acc < need || static_cast<long>(k) < min_per_row)) acc += row[cand[k++]];
      auto& id = sp->idx[i];
      auto& vv = sp->val[i];
      id.assign(cand.begin(), cand.begin() + k);
      vv.resize(k);
      for (size_t t = 0; t < k; ++t) vv[t] = row[id[t]];
    }
  }
  total = 0;
  for (index_t i = 0; i < n; ++i) total += r[i];
  std::fill(c.begin(), c.end(), 0.0);
  for (index_t blk = 0; blk < nb; ++blk)
    for (index_t j = 0; j < m; ++j) c[j] += csum[blk * m + j];
}

}  // namespace detail

// Balanced SNS on a dense cost. z holds warm-start potentials (or is empty) and receives the result.
template <class T>
SnsInfo solve_sns(const DenseCost<T>& cost, const std::vector<T>& a, const std::vector<T>& b, Potentials<T>& z,
                  const Options& opt, const SnsOptions& sopt) {
  const index_t n = cost.rows(), m = cost.cols();
  const double eps = opt.eps;
  SnsInfo out;
  Side<T> rows, cols;
  rows.logmass.resize(n);
  cols.logmass.resize(m);
  for (index_t i = 0; i < n; ++i) rows.logmass[i] = std::log(a[i]);
  for (index_t j = 0; j < m; ++j) cols.logmass[j] = std::log(b[j]);
  // Stage 1.
  Options o1 = opt;
  o1.adaptive = false;
  o1.omega = 1.0;
  o1.eps_scaling = 0;
  o1.max_iter = std::min(opt.max_iter, sopt.sinkhorn_iter);
  Info i1 = solve_log(cost, rows, cols, z, o1);
  out.info.errors = i1.errors;
  out.n_sinkhorn = i1.n_iter;
  if (i1.converged) {
    out.info.converged = true;
    out.info.n_iter = i1.n_iter;
    return out;
  }
  // Stage 2: Newton in double.
  std::vector<double> f(z.f.begin(), z.f.end()), g(z.g.begin(), z.g.end());
  std::vector<double> r(n), c(m), r2(n), c2(m), f2(n), g2(m);
  double total = 0, total2 = 0;
  detail::SparseRows<T> sp, sp2;
  double delta = sopt.delta;
  detail::sns_sweep(cost, f, g, eps, delta, sopt.min_per_row, r, c, total, &sp);
  auto potential = [&](const std::vector<double>& ff, const std::vector<double>& gg, double tot) {
    double s = 0;
    for (index_t i = 0; i < n; ++i) s += a[i] * ff[i];
    for (index_t j = 0; j < m; ++j) s += b[j] * gg[j];
    return s - eps * tot;
  };
  auto marg_err = [&](const std::vector<double>& rr, const std::vector<double>& cc) {
    double e1 = 0, e2 = 0;
    for (index_t i = 0; i < n; ++i) e1 += (rr[i] - a[i]) * (rr[i] - a[i]);
    for (index_t j = 0; j < m; ++j) e2 += (cc[j] - b[j]) * (cc[j] - b[j]);
    return std::max(std::sqrt(e1), std::sqrt(e2));
  };
  double F = potential(f, g, total);
  double err = marg_err(r, c);
  const index_t N = n + m;
  std::vector<double> rhs(N), x(N), res(N), zz(N), p(N), q(N), dinv(N);
  long it = i1.n_iter;
  long newton = 0, cg_total = 0, stalls = 0;
  while (it < opt.max_iter && newton < sopt.max_newton && err >= opt.tol) {
    // Newton system M d = eps * grad F, M = [[diag r, Ps], [Ps^T, diag c]].
    for (index_t i = 0; i < n; ++i) rhs[i] = eps * (a[i] - r[i]);
    for (index_t j = 0; j < m; ++j) rhs[n + j] = eps * (b[j] - c[j]);
    for (index_t i = 0; i < n; ++i) dinv[i] = r[i] > 0 ? 1.0 / r[i] : 0.0;
    for (index_t j = 0; j < m; ++j) dinv[n + j] = c[j] > 0 ? 1.0 / c[j] : 0.0;
    auto apply = [&](const std::vector<double>& v, std::vector<double>& y) {
      for (index_t i = 0; i < n; ++i) y[i] = r[i] * v[i];
      for (index_t j = 0; j < m; ++j) y[n + j] = c[j] * v[n + j];
      for (index_t i = 0; i < n; ++i) {
        const auto& id = sp.idx[i];
        const auto& vv = sp.val[i];
        double s = 0;
        const double vi = v[i];
        for (size_t t = 0; t < id.size(); ++t) {
          s += vv[t] * v[n + id[t]];
          y[n + id[t]] += vv[t] * vi;
        }
        y[i] += s;
      }
    };
    std::fill(x.begin(), x.end(), 0.0);
    res = rhs;
    double rn0 = 0;
    for (double v : rhs) rn0 += v * v;
    rn0 = std::sqrt(rn0);
    for (index_t k = 0; k < N; ++k) zz[k] = dinv[k] * res[k];
    p = zz;
    double rz = std::inner_product(res.begin(), res.end(), zz.begin(), 0.0);
    long cg = 0;
    for (; cg < sopt.cg_max_iter; ++cg) {
      apply(p, q);
      const double pq = std::inner_product(p.begin(), p.end(), q.begin(), 0.0);
      if (!(pq > 0)) break;
      const double alpha = rz / pq;
      double rn = 0;
      for (index_t k = 0; k < N; ++k) {
        x[k] += alpha * p[k];
        res[k] -= alpha * q[k];
        rn += res[k] * res[k];
      }
      if (std::sqrt(rn) <= sopt.cg_rtol * rn0) {
        ++cg;
        break;
      }
      for (index_t k = 0; k < N; ++k) zz[k] = dinv[k] * res[k];
      const double rz2 = std::inner_product(res.begin(), res.end(), zz.begin(), 0.0);
      const double beta = rz2 / rz;
      rz = rz2;
      for (index_t k = 0; k < N; ++k) p[k] = zz[k] + beta * p[k];
    }
    cg_total += cg;
    // Remove the component along (1, -1): F does not change along it.
    double proj = 0;
    for (index_t i = 0; i < n; ++i) proj += x[i];
    for (index_t j = 0; j < m; ++j) proj -= x[n + j];
    proj /= static_cast<double>(N);
    for (index_t i = 0; i < n; ++i) x[i] -= proj;
    for (index_t j = 0; j < m; ++j) x[n + j] += proj;
    double slope = 0;  // grad F . d
    for (index_t k = 0; k < N; ++k) slope += rhs[k] / eps * x[k];
    double step = 1.0;
    bool accepted = false;
    for (int ls = 0; ls < 12; ++ls) {
      for (index_t i = 0; i < n; ++i) f2[i] = f[i] + step * x[i];
      for (index_t j = 0; j < m; ++j) g2[j] = g[j] + step * x[n + j];
      detail::sns_sweep(cost, f2, g2, eps, delta, sopt.min_per_row, r2, c2, total2, &sp2);
      const double F2 = potential(f2, g2, total2);
      const double err2 = marg_err(r2, c2);
      // Far from the optimum: Armijo on F. Close to it, F's increase (about err^2) drowns in the
      // rounding of F, so a step is judged by the marginal error instead.
      const bool use_F = slope > 1e-11 * (std::fabs(F) + 1.0);
      const bool ok = use_F ? F2 >= F + 1e-4 * step * slope : err2 < err;
      if (std::isfinite(F2) && std::isfinite(err2) && ok) {
        f.swap(f2);
        g.swap(g2);
        r.swap(r2);
        c.swap(c2);
        std::swap(sp, sp2);
        total = total2;
        F = F2;
        err = err2;
        accepted = true;
        break;
      }
      step *= 0.5;
    }
    ++newton;
    ++it;
    const double prev_err = out.info.errors.empty() ? err : out.info.errors.back();
    out.info.errors.push_back(err);
    // Slow (linear) progress means the sparsified Hessian is too coarse: widen the budget.
    if (accepted && (step < 0.25 || err > 0.25 * prev_err)) delta = std::max(delta * 0.1, 1e-12);
    if (!accepted) {
      // Newton stalls: a few Sinkhorn iterations and a wider sparsity budget.
      ++stalls;
      delta = std::max(delta * 0.1, 1e-12);
      for (index_t i = 0; i < n; ++i) z.f[i] = static_cast<T>(f[i]);
      for (index_t j = 0; j < m; ++j) z.g[j] = static_cast<T>(g[j]);
      Options o2 = o1;
      o2.max_iter = std::min<long>(10, opt.max_iter - it);
      if (o2.max_iter <= 0) break;
      Info i2 = solve_log(cost, rows, cols, z, o2);
      it += i2.n_iter;
      out.n_sinkhorn += i2.n_iter;
      out.info.errors.insert(out.info.errors.end(), i2.errors.begin(), i2.errors.end());
      f.assign(z.f.begin(), z.f.end());
      g.assign(z.g.begin(), z.g.end());
      detail::sns_sweep(cost, f, g, eps, delta, sopt.min_per_row, r, c, total, &sp);
      F = potential(f, g, total);
      err = marg_err(r, c);
    }
  }
  out.n_newton = newton;
  out.cg_iters = cg_total;
  out.mean_kept = static_cast<double>(sp.nnz()) / static_cast<double>(n);
  for (index_t i = 0; i < n; ++i) z.f[i] = static_cast<T>(f[i]);
  for (index_t j = 0; j < m; ++j) z.g[j] = static_cast<T>(g[j]);
  // Finish with plain Sinkhorn so that rows are exact and the column error meets tol.
  Options o3 = o1;
  o3.max_iter = std::max<long>(1, opt.max_iter - it);
  Info i3 = solve_log(cost, rows, cols, z, o3);
  out.n_sinkhorn += i3.n_iter;
  it += i3.n_iter;
  out.info.errors.insert(out.info.errors.end(), i3.errors.begin(), i3.errors.end());
  out.info.converged = i3.converged;
  out.info.note = i3.note;
  out.info.n_iter = it;
  (void)stalls;
  return out;
}

}  // namespace ot
}  // namespace kf
