// Conjugate gradients preconditioned by SSOR, the second solver of Khodak, Chow, Balcan and
// Talwalkar, "Learning to Relax" (ICLR 2024; their solvers/ssor_pcg.m).
//
// Preconditioner M = (D/omega + L) (omega / (2 - omega)) D^{-1} (D/omega + U)
//                  = (D + omega L) D^{-1} (D + omega U) / (omega (2 - omega))   (Saad 2003, eq. 10.8).
// z = M^{-1} r is exactly one forward SOR sweep on A z = r from z = 0 followed by one backward sweep
// (the forward sweep from zero skips the upper triangle). For symmetric A, U = L^T and M is SPD for
// 0 < omega < 2 whenever A has a positive diagonal. The authors' code applies the transposed order
// (backward, then forward); for symmetric A both are valid SPD preconditioners of equal quality.
#pragma once

#include <cmath>
#include <vector>

#include "kernforge/common/errors.hpp"
#include "kernforge/sor/sor.hpp"

namespace kf {
namespace sor {

// z = M_SSOR(omega)^{-1} r.
template <class T, class I>
void ssor_apply(const SorMatrix<T, I>& m, const T* __restrict r, T* __restrict z, double omega) {
  check_omega(omega);
  const CsrView<T, I>& a = m.csr();
  const I* __restrict ap = a.indptr;
  const I* __restrict aj = a.indices;
  const T* __restrict ax = a.data;
  const I* __restrict dp = m.diag_pos();
  const T* __restrict idg = m.inv_diag();
  const T w = static_cast<T>(omega);
  for (index_t i = 0; i < a.rows; ++i) {
    T s = r[i];
    for (index_t p = ap[i]; p < static_cast<index_t>(dp[i]); ++p) s -= ax[p] * z[aj[p]];
    z[i] = w * s * idg[i];
  }
  sweep_once<false, false>(m, z, r, w, static_cast<T*>(nullptr));
}

struct PcgInfo : SolveInfo {
  bool breakdown = false;   // p^T A p <= 0 or r^T z <= 0: A (or M) is not positive definite
  double breakdown_value = 0.0;
};

// Preconditioned CG from the given x (warm start) until the recurrence residual
// ||r_k|| <= rtol ||b||. residuals[k] = ||r_k|| / ||b|| (r_0 = b - A x_0 computed explicitly).
template <class T, class I>
PcgInfo ssor_cg(const SorMatrix<T, I>& m, T* x, const T* b, double omega, double rtol, int max_iter) {
  check_omega(omega);
  const CsrView<T, I>& a = m.csr();
  const index_t n = a.rows;
  PcgInfo info;
  auto dot = [n](const T* u, const T* v) {
    double s = 0.0;
    for (index_t i = 0; i < n; ++i) s += static_cast<double>(u[i]) * static_cast<double>(v[i]);
    return s;
  };
  auto spmv = [&a, n](const T* u, T* out) {
    for (index_t i = 0; i < n; ++i) {
      T s = 0;
      for (index_t p = a.indptr[i]; p < a.indptr[i + 1]; ++p) s += a.data[p] * u[a.indices[p]];
      out[i] = s;
    }
  };
  const double bnorm = start_solve(n, x, b, rtol, max_iter, info);
  if (bnorm == 0.0) return info;
  const double target = rtol * bnorm;
  std::vector<T> r(n), z(n), p(n), q(n);
  spmv(x, q.data());
  for (index_t i = 0; i < n; ++i) r[i] = b[i] - q[i];
  double rn = std::sqrt(dot(r.data(), r.data()));
  info.residuals.push_back(rn / bnorm);
  if (rn <= target) {
    info.converged = true;
    return info;
  }
  ssor_apply(m, r.data(), z.data(), omega);
  p = z;
  double rz = dot(r.data(), z.data());
  for (int k = 1; k <= max_iter; ++k) {
    if (!(rz > 0.0)) {
      info.breakdown = true;
      info.breakdown_value = rz;
      break;
    }
    spmv(p.data(), q.data());
    const double pq = dot(p.data(), q.data());
    if (!(pq > 0.0)) {
      info.breakdown = true;
      info.breakdown_value = pq;
      break;
    }
    const T alpha = static_cast<T>(rz / pq);
    for (index_t i = 0; i < n; ++i) {
      x[i] += alpha * p[i];
      r[i] -= alpha * q[i];
    }
    rn = std::sqrt(dot(r.data(), r.data()));
    info.residuals.push_back(rn / bnorm);
    info.n_iter = k;
    if (!std::isfinite(rn)) break;
    if (rn <= target) {
      info.converged = true;
      break;
    }
    ssor_apply(m, r.data(), z.data(), omega);
    const double rz_new = dot(r.data(), z.data());
    const T beta = static_cast<T>(rz_new / rz);
    rz = rz_new;
    for (index_t i = 0; i < n; ++i) p[i] = z[i] + beta * p[i];
  }
  return info;
}

}  // namespace sor
}  // namespace kf
