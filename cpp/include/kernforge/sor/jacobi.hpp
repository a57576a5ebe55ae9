// Weighted (damped) Jacobi: x_{k+1} = x_k + omega D^{-1} (b - A x_k) (Saad 2003, section 4.1).
// Every row updates from the old iterate, so rows run in parallel (OpenMP, one region across
// sweeps). The row sums s_i = b_i - (A x_k)_i are exactly the residual of x_k, so a solve gets its
// residual for free; it is summed per fixed block of rows and combined in order, which keeps the
// result bitwise identical for any thread count.
#pragma once

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "kernforge/common/config.hpp"
#include "kernforge/common/errors.hpp"
#include "kernforge/common/threads.hpp"
#include "kernforge/sor/sor.hpp"

namespace kf {
namespace sor {

inline constexpr index_t kJacobiBlock = 2048;

inline void check_jacobi_omega(double omega) {
  // Damped Jacobi is used with omega in (0, 1] as a smoother, and converges for SPD A only when
  // omega < 2 / rho(D^{-1} A); accept (0, 2) as for SOR.
  if (!(omega > 0.0 && omega < 2.0)) throw_domain("omega must lie in (0, 2), got ", omega);
}

namespace detail {
// One Jacobi step from xin into xout; partial[block] = sum of r_i^2 of xin. Called by every thread.
template <class T, class I>
void jacobi_step_in_region(const SorMatrix<T, I>& m, const T* __restrict xin, T* __restrict xout,
                           const T* __restrict b, T omega, double* partial) {
  const CsrView<T, I>& a = m.csr();
  const I* __restrict ap = a.indptr;
  const I* __restrict aj = a.indices;
  const T* __restrict ax = a.data;
  const T* __restrict idg = m.inv_diag();
  const index_t n = a.rows;
  const index_t nb = (n + kJacobiBlock - 1) / kJacobiBlock;
#ifdef KF_HAVE_OPENMP
#pragma omp for schedule(static)
#endif
  for (index_t blk = 0; blk < nb; ++blk) {
    const index_t r0 = blk * kJacobiBlock, r1 = std::min(n, r0 + kJacobiBlock);
    double acc = 0.0;
    for (index_t i = r0; i < r1; ++i) {
      T s = b[i];
      for (index_t p = ap[i]; p < ap[i + 1]; ++p) s -= ax[p] * xin[aj[p]];
      acc += static_cast<double>(s) * static_cast<double>(s);
      xout[i] = xin[i] + omega * s * idg[i];
    }
    if (partial) partial[blk] = acc;
  }
}
}  // namespace detail

// `sweeps` weighted Jacobi steps in place on contiguous x.
template <class T, class I>
void jacobi_sweep(const SorMatrix<T, I>& m, T* x, const T* b, double omega, int sweeps) {
  check_jacobi_omega(omega);
  KF_REQUIRE(sweeps >= 0, "sweeps must be non-negative, got ", sweeps);
  if (sweeps == 0) return;
  const index_t n = m.size();
  std::unique_ptr<T[]> y(new T[static_cast<std::size_t>(n)]);  // fully written by the first step
  const T w = static_cast<T>(omega);
  T* bufs[2] = {x, y.get()};
#ifdef KF_HAVE_OPENMP
#pragma omp parallel num_threads(threads_for(static_cast<std::size_t>(m.csr().nnz() + n)))
#endif
  {
    for (int s = 0; s < sweeps; ++s) detail::jacobi_step_in_region(m, bufs[s & 1], bufs[(s + 1) & 1], b, w, nullptr);
    if (sweeps & 1) {
#ifdef KF_HAVE_OPENMP
#pragma omp for schedule(static)
#endif
      for (index_t i = 0; i < n; ++i) x[i] = y[i];
    }
  }
}

// Weighted Jacobi iteration from x until ||b - A x_k|| <= rtol ||b||; x receives the first iterate
// that meets it (or x_{max_iter}).
template <class T, class I>
SolveInfo jacobi_solve(const SorMatrix<T, I>& m, T* x, const T* b, double omega, double rtol, int max_iter) {
  check_jacobi_omega(omega);
  const index_t n = m.size();
  SolveInfo info;
  const double bnorm = start_solve(n, x, b, rtol, max_iter, info);
  if (bnorm == 0.0) return info;
  std::vector<T> y(n);
  std::vector<double> partial((n + kJacobiBlock - 1) / kJacobiBlock, 0.0);
  const T w = static_cast<T>(omega);
  const double target = rtol * bnorm;
  T* bufs[2] = {x, y.data()};
  bool stop = false;
  int last = 0;  // buffer holding the returned iterate
#ifdef KF_HAVE_OPENMP
#pragma omp parallel num_threads(threads_for(static_cast<std::size_t>(m.csr().nnz() + n)))
#endif
  {
    for (int k = 0;; ++k) {
      // Step k computes x_{k+1} and the residual of x_k; at k == max_iter its update is discarded.
      detail::jacobi_step_in_region(m, bufs[k & 1], bufs[(k + 1) & 1], b, w, partial.data());
#ifdef KF_HAVE_OPENMP
#pragma omp single
#endif
      {
        double rr = 0.0;
        for (double v : partial) rr += v;
        const double r = std::sqrt(rr);
        info.residuals.push_back(r / bnorm);
        info.n_iter = k;
        last = k & 1;
        if (!std::isfinite(r) || k == max_iter) {
          stop = true;
          info.converged = r <= target;
        } else if (r <= target) {
          info.converged = true;
          stop = true;
        }
      }
      if (stop) break;
    }
    if (last == 1) {
#ifdef KF_HAVE_OPENMP
#pragma omp for schedule(static)
#endif
      for (index_t i = 0; i < n; ++i) x[i] = y[i];
    }
  }
  return info;
}

}  // namespace sor
}  // namespace kf
