// Successive over-relaxation sweeps on a CSR matrix, lexicographic order.
//
// With A = D + L + U, one forward sweep computes, for i = 0..n-1,
//   s_i = b_i - sum_j a_ij x_j   (new x_j for j < i, old x_j for j >= i),   x_i += omega * s_i / a_ii,
// i.e. x_{k+1} = (D/omega + L)^{-1} (b - (U - (1/omega - 1) D) x_k)  (Young 1950; Saad, Iterative
// Methods for Sparse Linear Systems, 2003, eq. 4.9). A backward sweep runs i = n-1..0 with the roles
// of L and U exchanged; a symmetric (SSOR) sweep is a forward then a backward sweep.
//
// Two measured choices (see papers.md section 1.2):
//  * the diagonal position of every row is found once (SorMatrix), and each row is summed in two
//    pieces split at the diagonal, old (upper) terms first, so the dependence on x_{i-1} comes last;
//  * the residual of the pre-sweep iterate is fused into the sweep: with delta_j = x_j^new - x_j^old,
//    r_i(x_old) = s_i + sum_{j<i} a_ij delta_j, which costs no second pass over A.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "kernforge/common/errors.hpp"
#include "kernforge/common/views.hpp"

namespace kf {
namespace sor {

enum class Direction { forward, backward, symmetric };

inline Direction parse_direction(const std::string& s) {
  if (s == "forward") return Direction::forward;
  if (s == "backward") return Direction::backward;
  if (s == "symmetric") return Direction::symmetric;
  throw_invalid("direction must be 'forward', 'backward' or 'symmetric', got '", s, "'");
}

inline void check_omega(double omega) {
  if (!(omega > 0.0 && omega < 2.0)) throw_domain("omega must lie in (0, 2), got ", omega);
}

// A square CSR matrix with sorted column indices, prepared for sweeps: the position of each
// diagonal entry and the inverse diagonal. The CSR arrays are borrowed, not copied.
template <class T, class I>
class SorMatrix {
 public:
  explicit SorMatrix(CsrView<T, I> a) : a_(a) {
    KF_REQUIRE(a.rows == a.cols, "A must be square, got shape (", a.rows, ", ", a.cols, ")");
    KF_REQUIRE(a.rows > 0, "A must not be empty");
    const index_t n = a.rows;
    dptr_.resize(n);
    inv_diag_.resize(n);
    for (index_t i = 0; i < n; ++i) {
      const index_t lo = a.indptr[i], hi = a.indptr[i + 1];
      index_t p = lo;
      while (p < hi && static_cast<index_t>(a.indices[p]) < i) ++p;
      if (p == hi || static_cast<index_t>(a.indices[p]) != i)
        throw_domain("A has no diagonal entry in row ", i, " (SOR needs a positive diagonal)");
      const T d = a.data[p];
      if (!(d > T(0))) {
        throw_domain("A has a ", (d == T(0) ? "zero" : (d < T(0) ? "negative" : "non-finite")),
                     " diagonal entry in row ", i, " (value ", d, "); SOR needs a positive diagonal");
      }
      dptr_[i] = static_cast<I>(p);
      inv_diag_[i] = T(1) / d;
    }
  }

  const CsrView<T, I>& csr() const { return a_; }
  index_t size() const { return a_.rows; }
  const I* diag_pos() const { return dptr_.data(); }
  const T* inv_diag() const { return inv_diag_.data(); }

 private:
  CsrView<T, I> a_;
  std::vector<I> dptr_;
  std::vector<T> inv_diag_;
};

// Whether A equals its transpose up to tol * max|a_ij| (rows must have sorted column indices):
// each off-diagonal entry is looked up in the row of its column by binary search, O(nnz log(row
// length)); an entry without a stored transpose must be (near) zero.
template <class T, class I>
bool is_symmetric(const CsrView<T, I>& a, double tol) {
  double scale = 0.0;
  for (index_t p = 0; p < a.nnz(); ++p) scale = std::max(scale, std::abs(static_cast<double>(a.data[p])));
  const double lim = tol * scale;
  for (index_t i = 0; i < a.rows; ++i) {
    for (index_t p = a.indptr[i]; p < a.indptr[i + 1]; ++p) {
      const index_t j = a.indices[p];
      if (j == i) continue;
      const I* lo = a.indices + a.indptr[j];
      const I* hi = a.indices + a.indptr[j + 1];
      const I* q = std::lower_bound(lo, hi, static_cast<I>(i));
      const double v = static_cast<double>(a.data[p]);
      if (q == hi || static_cast<index_t>(*q) != i) {
        if (std::abs(v) > lim) return false;  // a_ij != 0 with no stored a_ji
        continue;
      }
      if (std::abs(v - static_cast<double>(a.data[q - a.indices])) > lim) return false;
    }
  }
  return true;
}

// One plain sweep (no residual) in place on contiguous x; returns the sum over rows of
// (x_i^new - x_i^new), which is 0 when every updated value is finite and NaN otherwise. A NaN or inf
// in x, b or A reaches the x_i it touches (inf turns into NaN through x_i + (-inf)), so this flag
// replaces separate finiteness passes over the inputs; it sits on its own dependence chain, off the
// critical path.
// Lexicographic SOR is latency-bound: row i needs x_{i-1}, just written. The row is summed with
// every term but that one first, and x_{i-1} comes from a register instead of a store-to-load
// round trip through memory when the row's last "new" entry is column i-1 (i+1 backward), the
// common case for banded and stencil matrices (measured 15% on 2-D Poisson 1024^2).
template <bool Forward, class T, class I>
T sweep_plain(const SorMatrix<T, I>& m, T* __restrict x, const T* __restrict b, T omega) {
  const CsrView<T, I>& a = m.csr();
  const I* __restrict ap = a.indptr;
  const I* __restrict aj = a.indices;
  const T* __restrict ax = a.data;
  const I* __restrict dp = m.diag_pos();
  const T* __restrict idg = m.inv_diag();
  const index_t n = a.rows;
  T chk = 0, xprev = 0;
  for (index_t k = 0; k < n; ++k) {
    const index_t i = Forward ? k : n - 1 - k;
    const index_t lo = ap[i], d = dp[i], hi = ap[i + 1];
    const T wd = omega * idg[i];
    T s = b[i] - ax[d] * x[i];
    if (Forward) {
      for (index_t p = d + 1; p < hi; ++p) s -= ax[p] * x[aj[p]];
      if (lo < d) {
        for (index_t p = lo; p < d - 1; ++p) s -= ax[p] * x[aj[p]];
        const index_t j = aj[d - 1];
        s -= ax[d - 1] * (j == i - 1 ? xprev : x[j]);
      }
    } else {
      for (index_t p = lo; p < d; ++p) s -= ax[p] * x[aj[p]];
      if (d + 1 < hi) {
        for (index_t p = hi - 1; p > d + 1; --p) s -= ax[p] * x[aj[p]];
        const index_t j = aj[d + 1];
        s -= ax[d + 1] * (j == i + 1 ? xprev : x[j]);
      }
    }
    const T xn = x[i] + s * wd;
    x[i] = xn;
    xprev = xn;
    chk += xn - xn;
  }
  return chk;
}

// One sweep in place on contiguous x. With Residual, delta (size n) receives x_new - x_old and the
// return value is ||b - A x_old||_2^2 accumulated in double; otherwise delta is unused and the
// return value is the finiteness flag of sweep_plain (0, or NaN when x became non-finite).
template <bool Forward, bool Residual, class T, class I>
double sweep_once(const SorMatrix<T, I>& m, T* __restrict x, const T* __restrict b, T omega,
                  T* __restrict delta) {
  if (!Residual) return static_cast<double>(sweep_plain<Forward>(m, x, b, omega));
  // The same update as sweep_plain, term for term (so a solve's iterates are the sweeps'
  // iterates bitwise), plus the fused residual sum over the terms already updated in this sweep.
  const CsrView<T, I>& a = m.csr();
  const I* __restrict ap = a.indptr;
  const I* __restrict aj = a.indices;
  const T* __restrict ax = a.data;
  const I* __restrict dp = m.diag_pos();
  const T* __restrict idg = m.inv_diag();
  const index_t n = a.rows;
  double rr = 0.0;
  T xprev = 0;
  for (index_t k = 0; k < n; ++k) {
    const index_t i = Forward ? k : n - 1 - k;
    const index_t lo = ap[i], d = dp[i], hi = ap[i + 1];
    const T wd = omega * idg[i];
    T s = b[i] - ax[d] * x[i], sd = 0;
    // Forward: old terms (d, hi), new terms [lo, d) with the neighbour i-1 last; backward mirrored.
    const index_t olo = Forward ? d + 1 : lo, ohi = Forward ? hi : d;
    for (index_t p = olo; p < ohi; ++p) s -= ax[p] * x[aj[p]];
    const index_t nlo = Forward ? lo : d + 1, nhi = Forward ? d : hi;
    if (nlo < nhi) {
      const index_t last = Forward ? nhi - 1 : nlo;
      for (index_t q = 0; q < nhi - nlo - 1; ++q) {
        const index_t p = Forward ? nlo + q : nhi - 1 - q;
        s -= ax[p] * x[aj[p]];
        sd += ax[p] * delta[aj[p]];
      }
      const index_t j = aj[last];
      s -= ax[last] * (j == (Forward ? i - 1 : i + 1) ? xprev : x[j]);
      sd += ax[last] * delta[j];
    }
    const double r = static_cast<double>(s) + static_cast<double>(sd);
    rr += r * r;
    const T xn = x[i] + s * wd;
    delta[i] = xn - x[i];
    x[i] = xn;
    xprev = xn;
  }
  return rr;
}

// `sweeps` sweeps in the given direction, in place on contiguous x. Returns whether every value of
// the final x is finite (false: x, b or A held NaN or inf, or the iteration overflowed); NaN
// stays NaN in later sweeps, so the flag of every sweep is folded in at no cost.
template <class T, class I>
bool sweep(const SorMatrix<T, I>& m, T* x, const T* b, double omega, Direction dir, int sweeps) {
  check_omega(omega);
  KF_REQUIRE(sweeps >= 0, "sweeps must be non-negative, got ", sweeps);
  const T w = static_cast<T>(omega);
  T chk = 0;
  for (int s = 0; s < sweeps; ++s) {
    if (dir != Direction::backward) chk += sweep_plain<true>(m, x, b, w);
    if (dir != Direction::forward) chk += sweep_plain<false>(m, x, b, w);
  }
  return chk == T(0);
}

// ||b - A x||_2 (double accumulation).
template <class T, class I>
double residual_norm(const CsrView<T, I>& a, const T* x, const T* b) {
  double rr = 0.0;
  for (index_t i = 0; i < a.rows; ++i) {
    double s = b[i];
    for (index_t p = a.indptr[i]; p < a.indptr[i + 1]; ++p)
      s -= static_cast<double>(a.data[p]) * static_cast<double>(x[a.indices[p]]);
    rr += s * s;
  }
  return std::sqrt(rr);
}

struct SolveInfo {
  int n_iter = 0;
  bool converged = false;
  std::vector<double> residuals;  // ||b - A x_k|| / ||b||, k = 0..n_iter
};

// The start every solver shares: checks the limits and returns ||b||_2 (double accumulation). When
// b = 0 the solution of the nonsingular system is x = 0: it is written to x and recorded in info, and
// 0 is returned so the caller can return info at once.
template <class T, class Info>
double start_solve(index_t n, T* x, const T* b, double rtol, int max_iter, Info& info) {
  KF_REQUIRE(max_iter >= 0, "max_iter must be non-negative, got ", max_iter);
  KF_REQUIRE(rtol >= 0.0, "rtol must be non-negative, got ", rtol);
  double bnorm = 0.0;
  for (index_t i = 0; i < n; ++i) bnorm += static_cast<double>(b[i]) * static_cast<double>(b[i]);
  bnorm = std::sqrt(bnorm);
  if (bnorm == 0.0) {
    for (index_t i = 0; i < n; ++i) x[i] = T(0);
    info.converged = true;
    info.residuals.push_back(0.0);
  }
  return bnorm;
}

// Iterate SOR (or SSOR when symmetric) from the given x until ||b - A x_k|| <= rtol ||b||.
// The residual of x_k is known during sweep k+1 (fused); when it meets the tolerance, that sweep is
// undone with delta, so the returned x is exactly x_k, the first iterate that meets it.
template <class T, class I>
SolveInfo solve(const SorMatrix<T, I>& m, T* x, const T* b, double omega, double rtol, int max_iter,
                bool symmetric) {
  check_omega(omega);
  const index_t n = m.size();
  SolveInfo info;
  const double bnorm = start_solve(n, x, b, rtol, max_iter, info);
  if (bnorm == 0.0) return info;
  std::vector<T> delta(n, T(0));
  const T w = static_cast<T>(omega);
  const double target = rtol * bnorm;
  for (int k = 0; k <= max_iter; ++k) {
    if (k == max_iter) {
      // No further sweep will report x_k's residual: compute it directly, once.
      const double r = residual_norm(m.csr(), x, b);
      info.residuals.push_back(r / bnorm);
      info.converged = r <= target;
      info.n_iter = k;
      break;
    }
    const double r = std::sqrt(sweep_once<true, true>(m, x, b, w, delta.data()));
    info.residuals.push_back(r / bnorm);
    if (!std::isfinite(r)) {
      info.n_iter = k;
      info.converged = false;
      break;
    }
    if (r <= target) {
      for (index_t i = 0; i < n; ++i) x[i] -= delta[i];
      info.n_iter = k;
      info.converged = true;
      break;
    }
    if (symmetric) sweep_once<false, false>(m, x, b, w, static_cast<T*>(nullptr));
  }
  return info;
}

}  // namespace sor
}  // namespace kf
