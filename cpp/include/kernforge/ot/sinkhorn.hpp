// Entropic optimal transport by Sinkhorn scaling, in the log domain (default) and the kernel domain.
//
// Potentials f, g are in cost units; the plan is P_ij = exp((f_i + g_j - C_ij)/eps + lra_i + lrb_j)
// (lra, lrb: log of an optional product reference measure). One generalised log-domain step serves
// balanced, unbalanced (KL-relaxed) and progressive-partial problems (papers.md section 5.1):
//   g_j <- (1 - w) g_j + w * tau_j * eps * (log b_j - lrb_j - LSE_i((f_i - C_ij)/eps + lra_i)),
// likewise f; tau = 1 is a hard marginal, tau = reg_m / (reg_m + eps) the KL relaxation of
// Chizat, Peyre, Schmitzer, Vialard (2018). An optional dummy column (and row) of
// constant cost enters each log-sum-exp analytically, never as an (n+1) x (m+1) matrix.
// w is the over-relaxation weight: fixed, or adaptive after Lehmann, von Renesse, Sambale, Uschmajew
// (2021): w = 2 / (1 + sqrt(1 - r)), r the observed per-iteration contraction of the residual.
// Epsilon scaling (optional) solves a geometric sequence eps_k = max(eps, eps0 * ratio^k) with warm
// starts (Schmitzer 2019).
//
// Entropic partial OT (exact total mass) is block coordinate ascent on the dual with sign
// constraints (equivalent to the Dykstra/Bregman projections of Benamou et al. 2015), O(nm) per
// iteration instead of POT's O(n^3).
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "kernforge/common/errors.hpp"
#include "kernforge/common/threads.hpp"
#include "kernforge/common/views.hpp"
#include "kernforge/ot/cost.hpp"
#include "kernforge/ot/lse.hpp"

namespace kf {
namespace ot {

// Over-relaxation from the observed contraction (Lehmann-style): the mean rate r over the last 10
// plain iterations estimates the spectral radius, and omega = 2 / (1 + sqrt(1 - r)) (Young's
// formula), capped at omega_max. Needs at least 11 recorded errors; returns false when the errors
// did not decrease (omega is left alone).
inline bool adaptive_omega(const std::vector<double>& errors, double omega_max, double& omega) {
  const double e1 = errors.back(), e0 = errors[errors.size() - 11];
  if (!(e1 > 0 && e0 > 0 && e1 < e0)) return false;
  const double r = std::pow(e1 / e0, 0.1);
  omega = std::min(omega_max, 2.0 / (1.0 + std::sqrt(std::max(0.0, 1.0 - r))));
  return true;
}

// The over-relaxation schedule every Sinkhorn-type loop follows: plain steps (omega = 1, unless the
// user fixed omega) until omega_warmup (and at least 11) errors of this run are recorded, then one
// adaptive_omega estimate; back to plain steps for good once an over-relaxed step meets the
// tolerance (so the returned rows are exact) or when the error climbs 10x above its best (diverging).
class OmegaSchedule {
 public:
  template <class Options>
  OmegaSchedule(const Options& opt, std::size_t start)
      : omega_(opt.adaptive ? 1.0 : opt.omega),
        omega_max_(opt.omega_max),
        warmup_(static_cast<std::size_t>(opt.omega_warmup)),
        start_(start),
        locked_(!opt.adaptive) {}
  double omega() const { return omega_; }
  // Tolerance met by an over-relaxed step: finish with plain steps.
  void finish() {
    omega_ = 1.0;
    locked_ = true;
  }
  // After recording err (errors.back()) for a step that did not meet the tolerance. Returns true when
  // this call made the estimate, which is then omega().
  bool observe(const std::vector<double>& errors, double err) {
    best_ = std::min(best_, err);
    const std::size_t k = errors.size() - start_;
    if (!locked_ && k >= warmup_ && k >= 11) {
      locked_ = true;
      return adaptive_omega(errors, omega_max_, omega_);
    }
    if (omega_ > 1.0 && err > 10.0 * best_) omega_ = 1.0;
    return false;
  }

 private:
  double omega_, omega_max_;
  std::size_t warmup_, start_;
  bool locked_;
  double best_ = std::numeric_limits<double>::infinity();
};

// One side (rows or columns) of a scaling problem.
template <class T>
struct Side {
  std::vector<T> logmass;  // log of the target marginal
  std::vector<T> tau;      // exponent per entry; empty = all 1 (hard)
  std::vector<T> logref;   // log reference per entry; empty = 0
  // Optional dummy entry on this side (an extra row for the row side): constant cost to every
  // entry of the other side, its own log target and tau.
  bool dummy = false;
  T dummy_cost = 0, dummy_logmass = 0, dummy_tau = 1;
  // KL weight reg_m of a uniformly relaxed side (0 = not uniformly relaxed): with both sides
  // relaxed, each iteration ends with the optimal translation f + t, g - t of the dual
  // (Sejourne, Vialard, Peyre 2022, "Faster unbalanced optimal transport: translation invariant
  // Sinkhorn"), which removes the slow drift along (1, -1) when tau is close to 1.
  double reg_m = 0;

  // Target masses exp(logmass), computed once.
  mutable std::vector<double> mass_cache;
  double mass(index_t k) const {
    if (mass_cache.size() != logmass.size()) {
      mass_cache.resize(logmass.size());
      for (size_t i = 0; i < logmass.size(); ++i) mass_cache[i] = std::exp(static_cast<double>(logmass[i]));
    }
    return mass_cache[k];
  }
};

struct Options {
  double eps = 1.0;
  double tol = 1e-9;
  long max_iter = 10000;
  double omega = 1.0;        // fixed relaxation (used when adaptive is false)
  bool adaptive = true;      // adaptive omega (Lehmann et al.)
  int omega_warmup = 20;     // plain iterations before the contraction rate is estimated
  double omega_max = 1.95;
  double eps_scaling = 0.0;  // ratio in (0, 1) for epsilon scaling; 0 = off
  double eps_start = 0.0;    // first eps of the schedule (the caller passes max C)
  bool balanced = true;      // error = ||P^T 1 - b||_2 (POT's rule); else max |potential change| / eps
};

struct Info {
  long n_iter = 0;
  bool converged = false;
  std::vector<double> errors;
  double omega = 1.0;
  std::string note;
};

// A kernel-domain attempt that stops (underflow, overflow) hands over to the log domain, which
// continues with the iterations left and whose run is appended to the attempt's record (omega is
// the caller's to merge: which estimate to report differs by solver).
inline long iterations_left(long max_iter, const Info& info) { return std::max<long>(1, max_iter - info.n_iter); }
inline void append_run(Info& info, const Info& more) {
  info.errors.insert(info.errors.end(), more.errors.begin(), more.errors.end());
  info.n_iter += more.n_iter;
  info.converged = more.converged;
  if (!more.note.empty()) info.note += (info.note.empty() ? "" : "; ") + more.note;
}

template <class T>
struct Potentials {
  std::vector<T> f, g;
  T fd = 0, gd = 0;  // dummy row / dummy column potentials
};

namespace detail {

template <class T>
inline T tau_of(const std::vector<T>& v, index_t i) {
  return v.empty() ? T(1) : v[i];
}
template <class T>
inline T ref_of(const std::vector<T>& v, index_t i) {
  return v.empty() ? T(0) : v[i];
}

// L[k] = LSE_t(w_t - C(k, t) / eps) over the "other" side for every k on this side. `by_rows`
// reads C row by row (the f-update), otherwise column by column (the g-update).
// With `guess` (the previous values of L, or NaN), one pass per row where it is safe.
template <class T, class Cost>
void lse_all(const Cost& cost, bool by_rows, const T* w, T inv_eps, T* L, bool avx2, const T* guess = nullptr) {
  const index_t K = by_rows ? cost.rows() : cost.cols();
  const index_t len = by_rows ? cost.cols() : cost.rows();
  const int nt = kf::threads_for(static_cast<size_t>(K) * len, 16384);
#pragma omp parallel num_threads(nt)
  {
    std::vector<T> buf(static_cast<size_t>(std::max(cost.rows(), cost.cols())));
#pragma omp for schedule(dynamic, 8)
    for (index_t k = 0; k < K; ++k) {
      const T* c = by_rows ? cost.row(k, buf.data()) : cost.col(k, buf.data());
      L[k] = guess ? lse_row_guess(c, w, inv_eps, len, guess[k], avx2) : lse_row(c, w, inv_eps, len, avx2);
    }
  }
}

}  // namespace detail

// One generalised half-step on side `s` (size K) against the other side's potentials `other`.
// Writes the Sinkhorn target into `snk`; returns (marginal L2 residual of the current state,
// max |snk - pot| / eps) via out-params. `mass_out` (optional) receives the current marginal.
template <class T, class Cost>
struct LogSolver {
  const Cost& cost;
  const Side<T>& rows;
  const Side<T>& cols;
  bool avx2;
  index_t n, m;
  std::vector<T> w, Lrow, Lcol, snk;

  LogSolver(const Cost& c, const Side<T>& r, const Side<T>& s)
      : cost(c), rows(r), cols(s), avx2(use_avx2()), n(c.rows()), m(c.cols()) {
    w.resize(std::max(n, m));
    Lrow.assign(n, std::numeric_limits<T>::quiet_NaN());
    Lcol.assign(m, std::numeric_limits<T>::quiet_NaN());
    snk.resize(std::max(n, m));
  }

  // by_rows = true: update f (rows) from g; false: update g from f.
  // Returns the L2 residual of this side's marginal (state before the update) and the sup change.
  void half_step(bool by_rows, std::vector<T>& pot, T& pot_d, const std::vector<T>& other, T other_d, T eps,
                 T omega, bool commit, double& l2res, double& supchange, bool want_res = true) {
    const Side<T>& me = by_rows ? rows : cols;
    const Side<T>& ot = by_rows ? cols : rows;
    const index_t K = by_rows ? n : m, Lo = by_rows ? m : n;
    const T inv = T(1) / eps;
    for (index_t t = 0; t < Lo; ++t) w[t] = other[t] * inv + detail::ref_of(ot.logref, t);
    std::vector<T>& L = by_rows ? Lrow : Lcol;
    // The previous half-step's values (shifted by the change of scale) are the one-pass guess.
    detail::lse_all(cost, by_rows, w.data(), inv, L.data(), avx2, L.data());
    // The other side's dummy entry has constant cost to every entry on this side.
    const T extra = ot.dummy ? other_d * inv - ot.dummy_cost * inv : detail::neg_inf<T>();
    double res2 = 0, sup = 0;
    for (index_t k = 0; k < K; ++k) {
      T Lk = ot.dummy ? logaddexp(L[k], extra) : L[k];
      const T lr = detail::ref_of(me.logref, k);
      if (want_res) {
        const T lmarg = pot[k] * inv + lr + Lk;  // log of this entry's current marginal
        const double marg = std::exp(static_cast<double>(lmarg));
        const double target = me.mass(k);
        res2 += (marg - target) * (marg - target);
      }
      const T s = detail::tau_of(me.tau, k) * eps * (me.logmass[k] - lr - Lk);
      snk[k] = s;
      sup = std::max(sup, static_cast<double>(std::fabs(s - pot[k]) * inv));
    }
    T sd = 0;
    if (me.dummy) {
      // Dummy entry on this side: LSE over the other side's entries of w_t - dummy_cost / eps.
      T Ld = lse_vec(w.data(), Lo) - me.dummy_cost * inv;
      const T lmarg = pot_d * inv + Ld;
      const double marg = std::exp(static_cast<double>(lmarg));
      const double target = std::exp(static_cast<double>(me.dummy_logmass));
      res2 += (marg - target) * (marg - target);
      sd = me.dummy_tau * eps * (me.dummy_logmass - Ld);
      sup = std::max(sup, static_cast<double>(std::fabs(sd - pot_d) * inv));
    }
    l2res = std::sqrt(res2);
    supchange = sup;
    if (!commit) return;
    for (index_t k = 0; k < K; ++k) pot[k] += omega * (snk[k] - pot[k]);
    if (me.dummy) pot_d += omega * (sd - pot_d);
  }
};

// Optimal translation t of the unbalanced dual along (1, -1): maximises
// -r1 <a, exp(-(f + t)/r1)> - r2 <b, exp(-(g - t)/r2)>, i.e. t = r1 r2 / (r1 + r2) * log(A / B),
// A = <a, exp(-f/r1)>, B = <b, exp(-g/r2)> (log-sum-exp form).
template <class T>
void translate(const Side<T>& rows, const Side<T>& cols, Potentials<T>& z) {
  const double r1 = rows.reg_m, r2 = cols.reg_m;
  std::vector<T> t(std::max(z.f.size(), z.g.size()));
  for (size_t i = 0; i < z.f.size(); ++i) t[i] = static_cast<T>(rows.logmass[i] - z.f[i] / r1);
  const double lA = lse_vec(t.data(), static_cast<index_t>(z.f.size()));
  for (size_t j = 0; j < z.g.size(); ++j) t[j] = static_cast<T>(cols.logmass[j] - z.g[j] / r2);
  const double lB = lse_vec(t.data(), static_cast<index_t>(z.g.size()));
  const T shift = static_cast<T>(r1 * r2 / (r1 + r2) * (lA - lB));
  for (auto& v : z.f) v += shift;
  for (auto& v : z.g) v -= shift;
}

// Runs the log-domain iteration from the potentials in `z` (warm start) and leaves the result there.
template <class T, class Cost>
Info solve_log(const Cost& cost, const Side<T>& rows, const Side<T>& cols, Potentials<T>& z, const Options& opt) {
  const index_t n = cost.rows(), m = cost.cols();
  KF_REQUIRE(static_cast<index_t>(rows.logmass.size()) == n && static_cast<index_t>(cols.logmass.size()) == m,
             "marginal sizes do not match the cost");
  if (static_cast<index_t>(z.f.size()) != n) z.f.assign(n, T(0));
  if (static_cast<index_t>(z.g.size()) != m) z.g.assign(m, T(0));
  LogSolver<T, Cost> S(cost, rows, cols);
  Info info;
  // Epsilon schedule.
  std::vector<double> schedule;
  if (opt.eps_scaling > 0 && opt.eps_scaling < 1 && opt.eps_start > opt.eps) {
    for (double e = opt.eps_start; e > opt.eps; e *= opt.eps_scaling) schedule.push_back(e);
  }
  schedule.push_back(opt.eps);
  long it = 0;
  for (size_t stage = 0; stage < schedule.size(); ++stage) {
    const bool last = stage + 1 == schedule.size();
    const T eps = static_cast<T>(schedule[stage]);
    const double tol = last ? opt.tol : std::max(opt.tol, 1e-5);
    const long stage_cap = last ? opt.max_iter : std::min<long>(opt.max_iter, it + 200);
    OmegaSchedule sched(opt, info.errors.size());
    bool last_f_plain = false;  // the latest f-update used omega = 1 (rows exact)
    std::vector<T> gsave;
    bool stage_done = false;
    while (it < stage_cap) {
      double colres, colsup, rowres, rowsup;
      // g-update; its residual is that of the current state (f, g).
      if (opt.balanced) gsave = z.g;
      const double omega = sched.omega();
      S.half_step(false, z.g, z.gd, z.f, z.fd, eps, static_cast<T>(omega), true, colres, colsup, opt.balanced);
      double err = opt.balanced ? colres : colsup;
      if (!std::isfinite(err)) {
        info.note = "non-finite values in the iteration";
        info.errors.push_back(err);
        break;
      }
      if (opt.balanced && err < tol && last_f_plain) {
        // (f, g) before this update has exact rows (omega = 1) and meets the tolerance.
        z.g.swap(gsave);
        info.errors.push_back(err);
        stage_done = true;
        break;
      }
      S.half_step(true, z.f, z.fd, z.g, z.gd, eps, static_cast<T>(omega), true, rowres, rowsup, false);
      last_f_plain = omega == 1.0;
      if (rows.reg_m > 0 && cols.reg_m > 0 && !rows.dummy && !cols.dummy) translate(rows, cols, z);
      ++it;
      if (!opt.balanced) err = std::max(colsup, rowsup);
      info.errors.push_back(err);
      if (!std::isfinite(err)) {
        info.note = "non-finite values in the iteration";
        break;
      }
      if (err < tol) {
        if (!opt.balanced) {
          stage_done = true;
          break;
        }
        sched.finish();  // over-relaxed: finish with plain steps so that the returned rows are exact
        continue;
      }
      if (sched.observe(info.errors, err)) info.omega = sched.omega();  // once per stage
    }
    if (!opt.adaptive) info.omega = opt.omega;
    if (!stage_done) {
      if (!last && info.note.empty()) continue;  // an unfinished intermediate stage still warms up
      break;
    }
    if (last) info.converged = true;
  }
  info.n_iter = it;
  return info;
}

// Kernel-domain balanced Sinkhorn (u = exp(f/eps), v = exp(g/eps)): two memory-bound matvecs per
// iteration, with over-relaxation u <- u^(1-w) (a / Kv)^w. Returns false (and leaves potentials in
// z for a warm start of the log solver) if K underflows or a scaling overflows.
template <class T>
bool solve_kernel(const T* C, index_t n, index_t m, const T* a, const T* b, T eps, Potentials<T>& z,
                  const Options& opt, Info& info) {
  const size_t nm = static_cast<size_t>(n) * m;
  std::vector<T> K(nm);
  const T inv = T(1) / eps;
  const T tiny = std::numeric_limits<T>::min() * T(1e6);
  const int nt = kf::threads_for(nm, 16384);
  // Denormal entries would slow every matvec: flush them to zero.
  const bool avx2 = use_avx2();
  const std::vector<T> zero(m, T(0));
#pragma omp parallel for schedule(static) num_threads(nt)
  for (index_t i = 0; i < n; ++i) {
    T* k = K.data() + i * m;
    exp_row(C + i * m, zero.data(), inv, T(0), m, k, avx2);
    // exp_row clamps its argument, so entries far below `tiny` come out tiny, not 0: flush them.
    for (index_t j = 0; j < m; ++j) k[j] = k[j] < tiny ? T(0) : k[j];
  }
  std::vector<T> u(n), v(m), kv(std::max(n, m));
  for (index_t i = 0; i < n; ++i) u[i] = z.f.empty() ? T(1) : std::exp(z.f[i] * inv);
  for (index_t j = 0; j < m; ++j) v[j] = z.g.empty() ? T(1) : std::exp(z.g[j] * inv);
  auto matvec = [&](const std::vector<T>& M, index_t rows, index_t len, const std::vector<T>& x, T* y) {
    const int t = kf::threads_for(static_cast<size_t>(rows) * len, 32768);
#pragma omp parallel for schedule(dynamic, 16) num_threads(t)
    for (index_t r = 0; r < rows; ++r) y[r] = dot(M.data() + r * len, x.data(), len, avx2);
  };
  // K^T u streamed by rows of K (no transposed copy): a fixed partition of the rows into blocks,
  // partial sums combined in order, so the result does not depend on the thread count.
  const index_t nb = std::min<index_t>(8, n);
  std::vector<T> part(static_cast<size_t>(nb) * m);
  auto matvec_t = [&](const std::vector<T>& x, T* y) {
    const int t = kf::threads_for(nm, 32768);
#pragma omp parallel for schedule(dynamic, 1) num_threads(t)
    for (index_t blk = 0; blk < nb; ++blk) {
      T* acc = part.data() + blk * m;
      std::fill(acc, acc + m, T(0));
      for (index_t i = n * blk / nb; i < n * (blk + 1) / nb; ++i) {
        if (x[i] != T(0)) axpy(x[i], K.data() + i * m, acc, m, avx2);
      }
    }
    std::copy(part.begin(), part.begin() + m, y);
    for (index_t blk = 1; blk < nb; ++blk)
      for (index_t j = 0; j < m; ++j) y[j] += part[blk * m + j];
  };
  const T big = std::sqrt(std::numeric_limits<T>::max()) * T(1e-3);
  auto to_potentials = [&]() {
    z.f.resize(n);
    z.g.resize(m);
    for (index_t i = 0; i < n; ++i) z.f[i] = eps * std::log(u[i]);
    for (index_t j = 0; j < m; ++j) z.g[j] = eps * std::log(v[j]);
  };
  OmegaSchedule sched(opt, info.errors.size());
  double omega_used = sched.omega();
  bool last_u_plain = false;
  std::vector<T> vnew(m), unew(n);
  long it = info.n_iter;
  while (it < opt.max_iter) {
    const double omega = sched.omega();
    matvec_t(u, kv.data());
    double res2 = 0;
    bool bad = false;
    for (index_t j = 0; j < m; ++j) {
      const double cs = static_cast<double>(v[j]) * kv[j];
      res2 += (cs - b[j]) * (cs - b[j]);
      if (!(kv[j] > T(0)) || !std::isfinite(kv[j])) bad = true;
      vnew[j] = b[j] / kv[j];
    }
    const double err = std::sqrt(res2);
    if (bad || !std::isfinite(err)) {
      info.note = "kernel underflow: switched to the log domain";
      info.n_iter = it;
      info.omega = omega;
      return false;
    }
    if (err < opt.tol && last_u_plain) {
      info.errors.push_back(err);
      info.converged = true;
      break;
    }
    for (index_t j = 0; j < m; ++j)
      v[j] = omega == 1.0 ? vnew[j] : vnew[j] * std::pow(v[j] / vnew[j], T(1 - omega));
    matvec(K, n, m, v, kv.data());
    for (index_t i = 0; i < n; ++i) {
      if (!(kv[i] > T(0)) || !std::isfinite(kv[i])) bad = true;
      unew[i] = a[i] / kv[i];
      u[i] = omega == 1.0 ? unew[i] : unew[i] * std::pow(u[i] / unew[i], T(1 - omega));
    }
    last_u_plain = omega == 1.0;
    ++it;
    info.errors.push_back(err);
    T mx = 0;
    for (index_t i = 0; i < n; ++i) mx = std::max(mx, std::max(u[i], T(1) / u[i]));
    for (index_t j = 0; j < m; ++j) mx = std::max(mx, std::max(v[j], T(1) / v[j]));
    if (bad || !(mx < big)) {
      info.note = "kernel scaling overflow: switched to the log domain";
      info.n_iter = it;
      // u may be unusable; restart the log solver from the last v only.
      if (bad || !std::isfinite(mx)) {
        info.omega = omega;
        z.f.assign(n, T(0));
        z.g.assign(m, T(0));
        return false;
      }
      to_potentials();
      return false;
    }
    if (err < opt.tol) {
      sched.finish();
      continue;
    }
    if (sched.observe(info.errors, err)) omega_used = sched.omega();
  }
  info.omega = omega_used;
  info.n_iter = it;
  to_potentials();
  return true;
}

// Kernel-domain generalised scaling for the unbalanced problem without dummies:
// P = diag(U) K diag(V), K = exp(-C/eps), U_i = exp(f_i/eps + lra_i), V_j = exp(g_j/eps + lrb_j),
// U_i <- exp(lra_i) (a_i exp(-lra_i) / (K V)_i)^tau_i (over-relaxed in the log), likewise V, and
// the translation step of translate() when both sides are relaxed. Same stopping rule as the log
// solver (max |potential change| / eps). Returns false, with z holding usable potentials (or
// empty), if K underflows or a scaling leaves the safe range: the caller continues in the log domain.
template <class T>
bool solve_kernel_scaling(const T* C, index_t n, index_t m, const Side<T>& rows, const Side<T>& cols, T eps,
                          Potentials<T>& z, const Options& opt, Info& info) {
  const size_t nm = static_cast<size_t>(n) * m;
  std::vector<T> K(nm);
  const T inv = T(1) / eps;
  const T tiny = std::numeric_limits<T>::min() * T(1e6);
  const bool avx2 = use_avx2();
  const int nt = kf::threads_for(nm, 16384);
  const std::vector<T> zero(m, T(0));
#pragma omp parallel for schedule(static) num_threads(nt)
  for (index_t i = 0; i < n; ++i) {
    T* k = K.data() + i * m;
    exp_row(C + i * m, zero.data(), inv, T(0), m, k, avx2);
    for (index_t j = 0; j < m; ++j) k[j] = k[j] < tiny ? T(0) : k[j];
  }
  // Work with log-scalings lu = log U, lv = log V (cheap: n + m logs per iteration).
  std::vector<double> lu(n), lv(m);
  for (index_t i = 0; i < n; ++i)
    lu[i] = (z.f.empty() ? 0.0 : static_cast<double>(z.f[i]) * inv) + detail::ref_of(rows.logref, i);
  for (index_t j = 0; j < m; ++j)
    lv[j] = (z.g.empty() ? 0.0 : static_cast<double>(z.g[j]) * inv) + detail::ref_of(cols.logref, j);
  std::vector<T> u(n), v(m), ku(m), kv(n);
  const index_t nb = std::min<index_t>(8, n);
  std::vector<T> part(static_cast<size_t>(nb) * m);
  auto to_potentials = [&]() {
    z.f.resize(n);
    z.g.resize(m);
    for (index_t i = 0; i < n; ++i) z.f[i] = static_cast<T>(eps * (lu[i] - detail::ref_of(rows.logref, i)));
    for (index_t j = 0; j < m; ++j) z.g[j] = static_cast<T>(eps * (lv[j] - detail::ref_of(cols.logref, j)));
  };
  const double lim = sizeof(T) == 8 ? 600.0 : 70.0;  // |log scaling| kept inside the safe range
  OmegaSchedule sched(opt, info.errors.size());
  long it = info.n_iter;
  while (it < opt.max_iter) {
    const double omega = sched.omega();
    double sup = 0;
    bool bad = false;
    // V update from K^T U.
    for (index_t i = 0; i < n; ++i) u[i] = static_cast<T>(std::exp(lu[i]));
    const int t = kf::threads_for(nm, 32768);
#pragma omp parallel for schedule(dynamic, 1) num_threads(t)
    for (index_t blk = 0; blk < nb; ++blk) {
      T* acc = part.data() + blk * m;
      std::fill(acc, acc + m, T(0));
      for (index_t i = n * blk / nb; i < n * (blk + 1) / nb; ++i)
        if (u[i] != T(0)) axpy(u[i], K.data() + i * m, acc, m, avx2);
    }
    std::copy(part.begin(), part.begin() + m, ku.begin());
    for (index_t blk = 1; blk < nb; ++blk)
      for (index_t j = 0; j < m; ++j) ku[j] += part[blk * m + j];
    for (index_t j = 0; j < m; ++j) {
      if (!(ku[j] > T(0)) || !std::isfinite(ku[j])) bad = true;
      const double lr = detail::ref_of(cols.logref, j);
      const double ls = lr + detail::tau_of(cols.tau, j) * (cols.logmass[j] - lr - std::log(static_cast<double>(ku[j])));
      sup = std::max(sup, std::fabs(ls - lv[j]));
      lv[j] += omega * (ls - lv[j]);
      v[j] = static_cast<T>(std::exp(lv[j]));
    }
    // U update from K V.
#pragma omp parallel for schedule(dynamic, 16) num_threads(t)
    for (index_t i = 0; i < n; ++i) kv[i] = dot(K.data() + i * m, v.data(), m, avx2);
    for (index_t i = 0; i < n; ++i) {
      if (!(kv[i] > T(0)) || !std::isfinite(kv[i])) bad = true;
      const double lr = detail::ref_of(rows.logref, i);
      const double ls = lr + detail::tau_of(rows.tau, i) * (rows.logmass[i] - lr - std::log(static_cast<double>(kv[i])));
      sup = std::max(sup, std::fabs(ls - lu[i]));
      lu[i] += omega * (ls - lu[i]);
    }
    ++it;
    if (bad || !std::isfinite(sup)) {
      info.note = "kernel underflow: switched to the log domain";
      info.n_iter = it;
      z.f.clear();
      z.g.clear();
      return false;
    }
    if (rows.reg_m > 0 && cols.reg_m > 0) {
      to_potentials();
      translate(rows, cols, z);
      for (index_t i = 0; i < n; ++i) lu[i] = z.f[i] * inv + detail::ref_of(rows.logref, i);
      for (index_t j = 0; j < m; ++j) lv[j] = z.g[j] * inv + detail::ref_of(cols.logref, j);
    }
    info.errors.push_back(sup);
    double mx = 0;
    for (double x : lu) mx = std::max(mx, std::fabs(x));
    for (double x : lv) mx = std::max(mx, std::fabs(x));
    if (!(mx < lim)) {
      info.note = "kernel scaling overflow: switched to the log domain";
      info.n_iter = it;
      to_potentials();
      return false;
    }
    if (sup < opt.tol) {
      info.converged = true;
      break;
    }
    if (sched.observe(info.errors, sup)) info.omega = sched.omega();
  }
  info.n_iter = it;
  to_potentials();
  return true;
}

// Plan, marginals and <P, C> of P_ij = exp((f_i + g_j - C_ij)/eps + lra_i + lrb_j) (real block).
// plan may be null (only the sums). Column sums use a fixed block partition of the rows so that
// the result does not depend on the thread count.
template <class T, class Cost>
void finalize(const Cost& cost, const std::vector<T>& f, const std::vector<T>& g, const std::vector<T>& lra,
              const std::vector<T>& lrb, T eps, T* plan, double* r, double* c, double& total_cost) {
  const index_t n = cost.rows(), m = cost.cols();
  const T inv = T(1) / eps;
  std::vector<T> w(m);
  for (index_t j = 0; j < m; ++j) w[j] = g[j] * inv + detail::ref_of(lrb, j);
  const index_t nb = std::min<index_t>(16, n);
  std::vector<double> csum(static_cast<size_t>(nb) * m, 0.0), bcost(nb, 0.0);
  const bool avx2 = use_avx2();
  const int nt = kf::threads_for(static_cast<size_t>(n) * m, 16384);
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
  for (index_t blk = 0; blk < nb; ++blk) {
    std::vector<T> buf(std::max(n, m)), row(m);
    double* cs = csum.data() + blk * m;
    const index_t lo = n * blk / nb, hi = n * (blk + 1) / nb;
    for (index_t i = lo; i < hi; ++i) {
      const T* ci = cost.row(i, buf.data());
      T* out = plan ? plan + i * m : row.data();
      exp_row(ci, w.data(), inv, f[i] * inv + detail::ref_of(lra, i), m, out, avx2);
      double rs = 0, cc = 0;
      for (index_t j = 0; j < m; ++j) {
        rs += out[j];
        cc += static_cast<double>(out[j]) * ci[j];
        cs[j] += out[j];
      }
      r[i] = rs;
      bcost[blk] += cc;
    }
  }
  total_cost = 0;
  for (index_t j = 0; j < m; ++j) c[j] = 0;
  for (index_t blk = 0; blk < nb; ++blk) {
    total_cost += bcost[blk];
    for (index_t j = 0; j < m; ++j) c[j] += csum[blk * m + j];
  }
}

// Entropic partial OT: min <C, P> + eps * sum P (log P - 1) s.t. P 1 <= a, P^T 1 <= b, sum P = mass.
// Dual: P_ij = exp((f_i + g_j + mu - C_ij)/eps), f <= 0, g <= 0; exact block maximisation in g, f,
// then mu (the total-mass step is O(n) given the row log-sum-exps of the f-step).
template <class T, class Cost>
Info solve_partial(const Cost& cost, const std::vector<T>& loga, const std::vector<T>& logb, T mass, T eps,
                   Potentials<T>& z, T& mu, const Options& opt) {
  const index_t n = cost.rows(), m = cost.cols();
  if (static_cast<index_t>(z.f.size()) != n) z.f.assign(n, T(0));
  if (static_cast<index_t>(z.g.size()) != m) z.g.assign(m, T(0));
  const bool avx2 = use_avx2();
  const T inv = T(1) / eps;
  std::vector<T> w(std::max(n, m)), L(std::max(n, m));
  Info info;
  const T lmass = std::log(mass);
  long it = 0;
  while (it < opt.max_iter) {
    double sup = 0;
    for (index_t i = 0; i < n; ++i) w[i] = (z.f[i] + mu) * inv;
    detail::lse_all(cost, false, w.data(), inv, L.data(), avx2);
    for (index_t j = 0; j < m; ++j) {
      const T gn = std::min(T(0), eps * (logb[j] - L[j]));
      sup = std::max(sup, static_cast<double>(std::fabs(gn - z.g[j]) * inv));
      z.g[j] = gn;
    }
    for (index_t j = 0; j < m; ++j) w[j] = z.g[j] * inv;
    detail::lse_all(cost, true, w.data(), inv, L.data(), avx2);
    for (index_t i = 0; i < n; ++i) {
      const T fn = std::min(T(0), eps * (loga[i] - L[i]) - mu);
      sup = std::max(sup, static_cast<double>(std::fabs(fn - z.f[i]) * inv));
      z.f[i] = fn;
      w[i] = (z.f[i] + mu) * inv + L[i];  // log row sums
    }
    const T ltot = lse_vec(w.data(), n);
    const T dmu = eps * (lmass - ltot);
    mu += dmu;
    sup = std::max(sup, static_cast<double>(std::fabs(dmu) * inv));
    ++it;
    info.errors.push_back(sup);
    if (!std::isfinite(sup)) {
      info.note = "non-finite values in the iteration";
      break;
    }
    if (sup < opt.tol) {
      info.converged = true;
      break;
    }
  }
  info.n_iter = it;
  return info;
}

// Kernel-domain form of solve_partial, the same block ascent and stopping rule: u = exp(f/eps),
// v = exp(g/eps), s = exp(mu/eps), so the sign constraints f, g <= 0 become u, v <= 1 and each
// half-step is one matvec (memory-bound, ~0.3 ns per entry) instead of a log-sum-exp (~2 ns).
// Needs every K_ij = exp(-C_ij/eps) to be a normal number (max C / eps below ~700 in double,
// ~85 in float); returns false without iterating otherwise, and false (z reset, mu = 0, for a
// cold log-domain restart) if a scaling leaves the safe range. `info` is appended to.
template <class T>
bool solve_partial_kernel(const T* C, index_t n, index_t m, const T* a, const T* b, T mass, T eps, Potentials<T>& z,
                          T& mu, const Options& opt, Info& info) {
  const size_t nm = static_cast<size_t>(n) * m;
  const T inv = T(1) / eps;
  T cmax = 0, cmin = 0;
  for (size_t t = 0; t < nm; ++t) {
    cmax = std::max(cmax, C[t]);
    cmin = std::min(cmin, C[t]);
  }
  // Every K_ij must be a normal number, far from underflow and overflow.
  const T lim = sizeof(T) == 8 ? T(650) : T(75);
  if (!(cmax * inv < lim) || !(-cmin * inv < lim)) return false;
  const bool avx2 = use_avx2();
  std::vector<T> K(nm);
  const int nt = kf::threads_for(nm, 16384);
  {
    const std::vector<T> zero(m, T(0));
#pragma omp parallel for schedule(static) num_threads(nt)
    for (index_t i = 0; i < n; ++i) exp_row(C + i * m, zero.data(), inv, T(0), m, K.data() + i * m, avx2);
  }
  std::vector<T> u(n, T(1)), v(m, T(1)), w(n), kv(n), ktu(m);
  double s = 1.0;
  // K^T w streamed by rows in a fixed partition of row blocks (result independent of threads).
  const index_t nb = std::min<index_t>(8, n);
  std::vector<T> part(static_cast<size_t>(nb) * m);
  const int tm = kf::threads_for(nm, 32768);
  auto matvec_t = [&]() {
#pragma omp parallel for schedule(dynamic, 1) num_threads(tm)
    for (index_t blk = 0; blk < nb; ++blk) {
      T* acc = part.data() + blk * m;
      std::fill(acc, acc + m, T(0));
      for (index_t i = n * blk / nb; i < n * (blk + 1) / nb; ++i) axpy(w[i], K.data() + i * m, acc, m, avx2);
    }
    std::copy(part.begin(), part.begin() + m, ktu.begin());
    for (index_t blk = 1; blk < nb; ++blk)
      for (index_t j = 0; j < m; ++j) ktu[j] += part[blk * m + j];
  };
  const double lo = sizeof(T) == 8 ? 1e-280 : 1e-30;
  long it = info.n_iter;
  bool failed = false;
  while (it < opt.max_iter) {
    // g-step: v_j = min(1, b_j / (s (K^T u)_j)).
    for (index_t i = 0; i < n; ++i) w[i] = static_cast<T>(s * u[i]);
    matvec_t();
    double qmax = 1, qmin = 1;
    for (index_t j = 0; j < m; ++j) {
      const T vn = std::min(T(1), b[j] / ktu[j]);
      const double q = static_cast<double>(vn) / v[j];
      qmax = std::max(qmax, q);
      qmin = std::min(qmin, q);
      v[j] = vn;
    }
    // f-step: u_i = min(1, a_i / (s (K v)_i)); then the row sums s u_i (K v)_i.
#pragma omp parallel for schedule(dynamic, 16) num_threads(tm)
    for (index_t i = 0; i < n; ++i) kv[i] = dot(K.data() + i * m, v.data(), m, avx2);
    double total = 0;
    for (index_t i = 0; i < n; ++i) {
      const double sk = s * kv[i];
      const double un = std::min(1.0, a[i] / sk);
      const double q = un / u[i];
      qmax = std::max(qmax, q);
      qmin = std::min(qmin, q);
      u[i] = static_cast<T>(un);
      total += un * sk;
    }
    // mass step: s <- s * mass / total.
    const double q = mass / total;
    s *= q;
    qmax = std::max(qmax, q);
    qmin = std::min(qmin, q);
    const double sup = std::max(std::log(qmax), -std::log(qmin));
    ++it;
    info.errors.push_back(sup);
    double umin = 1;
    for (index_t i = 0; i < n; ++i) umin = std::min(umin, static_cast<double>(u[i]));
    for (index_t j = 0; j < m; ++j) umin = std::min(umin, static_cast<double>(v[j]));
    if (!std::isfinite(sup) || !(umin > lo) || !(s > 1e-280 && s < 1e280)) {
      failed = true;
      break;
    }
    if (sup < opt.tol) {
      info.converged = true;
      break;
    }
  }
  info.n_iter = it;
  if (failed) {
    info.note = "kernel scaling out of range: switched to the log domain";
    info.converged = false;
    z.f.assign(n, T(0));
    z.g.assign(m, T(0));
    mu = 0;
    return false;
  }
  z.f.resize(n);
  z.g.resize(m);
  for (index_t i = 0; i < n; ++i) z.f[i] = eps * std::log(u[i]);
  for (index_t j = 0; j < m; ++j) z.g[j] = eps * std::log(v[j]);
  mu = static_cast<T>(eps * std::log(s));
  return true;
}

}  // namespace ot
}  // namespace kf
