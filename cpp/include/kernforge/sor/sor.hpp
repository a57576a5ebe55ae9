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
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <type_traits>
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

namespace detail {
// Row access for the lexicographic kernels: row(i) gives the diagonal and the lower (j < i) and
// upper (j > i) off-diagonal entries, each group in increasing column order.
template <class T, class I>
struct CsrLexRows {
  const I* __restrict ap;
  const I* __restrict aj;
  const T* __restrict ax;
  const I* __restrict dp;
  struct Row {
    const I* __restrict aj;
    const T* __restrict ax;
    index_t lo, d, hi;
    index_t nlow() const { return d - lo; }
    index_t nup() const { return hi - d - 1; }
    T diag() const { return ax[d]; }
    index_t lcol(index_t k) const { return static_cast<index_t>(aj[lo + k]); }
    T lval(index_t k) const { return ax[lo + k]; }
    index_t ucol(index_t k) const { return static_cast<index_t>(aj[d + 1 + k]); }
    T uval(index_t k) const { return ax[d + 1 + k]; }
  };
  Row row(index_t i) const { return Row{aj, ax, ap[i], dp[i], ap[i + 1]}; }
};

// The compact layout (SorMatrix::build_compact): per row wl lower then wu upper entries, padded;
// columns as 16-bit offsets from the row (C = int16_t) or absolute; values and diagonal of type V.
// WL < 0: the widths are known at run time only.
template <int WL, int WU, class T, class V, class C>
struct EllLexRows {
  const C* __restrict cols;
  const V* __restrict vals;
  const V* __restrict dg;
  index_t wl, wu;
  struct Row {
    const C* __restrict c;
    const V* __restrict v;
    T d;
    index_t i, wl, wu;
    index_t nlow() const { return WL >= 0 ? WL : wl; }
    index_t nup() const { return WL >= 0 ? WU : wu; }
    T diag() const { return d; }
    index_t col(index_t k) const {
      return std::is_same<C, std::int16_t>::value ? i + static_cast<index_t>(c[k]) : static_cast<index_t>(c[k]);
    }
    index_t lcol(index_t k) const { return col(k); }
    T lval(index_t k) const { return static_cast<T>(v[k]); }
    index_t ucol(index_t k) const { return col(nlow() + k); }
    T uval(index_t k) const { return static_cast<T>(v[nlow() + k]); }
  };
  Row row(index_t i) const {
    const index_t w = WL >= 0 ? WL + WU : wl + wu;
    return Row{cols + i * w, vals + i * w, static_cast<T>(dg[i]), i, wl, wu};
  }
};
}  // namespace detail

// A square CSR matrix with sorted column indices, prepared for sweeps: the position of each
// diagonal entry and the inverse diagonal. The CSR arrays are borrowed, not copied.
//
// build_compact() adds an owned copy for repeated sweeps, in the narrowest layout that holds the
// matrix exactly: fixed-width rows (ELL: the lower entries, then the upper ones, each group padded
// to the widest row's count) when padding adds at most a quarter, 16-bit column offsets from the
// row when the bandwidth allows, and float32 values for a float64 matrix when every value converts
// exactly (2-D Poisson: 4 and -1). A lexicographic sweep is bound by its instruction count and the
// bytes it reads; on a 5-point stencil this removes the row pointer, diagonal position and loop
// control and cuts the bytes of A from 68 to 28 a row. Padding entries have value 0 and repeat a
// real column of their row (their own column in an empty group), placed so that the kernels sum
// the real terms in the same order as on the CSR: results are the same bits (up to the sign of a
// zero), and finiteness checks see what they saw before.
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

  // Builds the compact copy if the matrix suits it (idempotent). Not to be called by two threads at
  // once; a sweep running meanwhile keeps reading the CSR (the flag is published last, with release
  // order). Returns whether sweeps now use it.
  bool build_compact() {
    if (compact_.load(std::memory_order_acquire)) return true;
    const CsrView<T, I>& a = a_;
    const index_t n = a.rows;
    index_t wl = 0, wu = 0;
    for (index_t i = 0; i < n; ++i) {
      wl = std::max<index_t>(wl, dptr_[i] - a.indptr[i]);
      wu = std::max<index_t>(wu, a.indptr[i + 1] - dptr_[i] - 1);
    }
    const index_t w = wl + wu, off = a.nnz() - n;
    if (w == 0 || w > kMaxCompactWidth || 4 * n * w > 5 * off) return false;
    std::vector<I> cols(static_cast<std::size_t>(n * w));
    std::vector<T> vals(static_cast<std::size_t>(n * w), T(0));
    bool short_offsets = true;
    for (index_t i = 0; i < n; ++i) {
      const index_t lo = a.indptr[i], d = dptr_[i], hi = a.indptr[i + 1];
      const index_t nl = d - lo, nu = hi - d - 1;
      I* c = cols.data() + i * w;
      T* v = vals.data() + i * w;
      // Lower group: padding first, so the last slot is the nearest lower entry (the x_{i-1}
      // of a forward sweep); upper group: padding last, so the first slot is the nearest upper.
      const I lpad = nl > 0 ? a.indices[lo] : static_cast<I>(i);
      for (index_t k = 0; k < wl - nl; ++k) c[k] = lpad;
      for (index_t k = 0; k < nl; ++k) {
        c[wl - nl + k] = a.indices[lo + k];
        v[wl - nl + k] = a.data[lo + k];
      }
      const I upad = nu > 0 ? a.indices[hi - 1] : static_cast<I>(i);
      for (index_t k = 0; k < wu; ++k) {
        c[wl + k] = k < nu ? a.indices[d + 1 + k] : upad;
        if (k < nu) v[wl + k] = a.data[d + 1 + k];
      }
      for (index_t k = 0; k < w; ++k) short_offsets = short_offsets && std::abs(static_cast<index_t>(c[k]) - i) <= 32767;
    }
    bool f32 = !std::is_same<T, float>::value;
    for (std::size_t p = 0; p < vals.size() && f32; ++p) f32 = static_cast<T>(static_cast<float>(vals[p])) == vals[p];
    for (index_t i = 0; i < n && f32; ++i) {
      const T d = a.data[dptr_[i]];
      f32 = static_cast<T>(static_cast<float>(d)) == d;
    }
    if (short_offsets) {
      c16_.resize(cols.size());
      for (index_t i = 0; i < n; ++i)
        for (index_t k = 0; k < w; ++k)
          c16_[i * w + k] = static_cast<std::int16_t>(static_cast<index_t>(cols[i * w + k]) - i);
    } else {
      cols_.swap(cols);
    }
    if (f32) {
      v32_.assign(vals.begin(), vals.end());
      d32_.resize(n);
      for (index_t i = 0; i < n; ++i) d32_[i] = static_cast<float>(a.data[dptr_[i]]);
    } else {
      vals_.swap(vals);
      dg_.resize(n);
      for (index_t i = 0; i < n; ++i) dg_[i] = a.data[dptr_[i]];
    }
    wl_ = wl;
    wu_ = wu;
    compact_.store(true, std::memory_order_release);
    return true;
  }
  bool compact() const { return compact_.load(std::memory_order_acquire); }
  // The storage the lexicographic kernels read, for tests and benchmarks.
  std::string storage() const {
    if (!compact()) return "CSR";
    return "ELL " + std::to_string(wl_) + "+" + std::to_string(wu_) + (c16_.empty() ? ", 32/64-bit columns" : ", 16-bit columns") +
           (v32_.empty() ? "" : ", float32 values");
  }

  // Calls f with the row access of the layout in use (detail::CsrLexRows or detail::EllLexRows).
  template <class F>
  void visit_rows(F&& f) const {
    if (!compact()) {
      f(detail::CsrLexRows<T, I>{a_.indptr, a_.indices, a_.data, dptr_.data()});
    } else if (!v32_.empty()) {
      visit_cols(v32_.data(), d32_.data(), f);
    } else {
      visit_cols(vals_.data(), dg_.data(), f);
    }
  }

 private:
  static constexpr index_t kMaxCompactWidth = 16;

  template <class V, class F>
  void visit_cols(const V* vals, const V* dg, F&& f) const {
    if (!c16_.empty())
      visit_width(vals, dg, c16_.data(), f);
    else
      visit_width(vals, dg, cols_.data(), f);
  }
  template <class V, class C, class F>
  void visit_width(const V* vals, const V* dg, const C* cols, F&& f) const {
    if (wl_ == 2 && wu_ == 2)  // 5-point stencils
      f(detail::EllLexRows<2, 2, T, V, C>{cols, vals, dg, 2, 2});
    else if (wl_ == 3 && wu_ == 3)  // 7-point stencils
      f(detail::EllLexRows<3, 3, T, V, C>{cols, vals, dg, 3, 3});
    else
      f(detail::EllLexRows<-1, -1, T, V, C>{cols, vals, dg, wl_, wu_});
  }

  CsrView<T, I> a_;
  std::vector<I> dptr_;
  std::vector<T> inv_diag_;
  std::atomic<bool> compact_{false};
  index_t wl_ = 0, wu_ = 0;
  std::vector<std::int16_t> c16_;
  std::vector<I> cols_;
  std::vector<float> v32_, d32_;
  std::vector<T> vals_, dg_;
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

// One sweep in place on contiguous x over the rows of any layout (see SorMatrix::visit_rows).
// With Residual, delta (size n) receives x_new - x_old and the return value is ||b - A x_old||_2^2
// accumulated in double (the fused residual: r_i(x_old) = s_i + sum of the new terms' a_ij delta_j);
// otherwise delta is unused and the return value is the sum over rows of (x_i^new - x_i^new), 0
// when every updated value is finite and NaN otherwise. A NaN or inf in x, b or A reaches the x_i
// it touches (inf turns into NaN through x_i + (-inf)), so this flag replaces separate finiteness
// passes over the inputs; it sits on its own dependence chain, off the critical path.
// Lexicographic SOR is latency-bound: row i needs x_{i-1}, just written. The row is summed with
// every term but that one first, and x_{i-1} comes from a register instead of a store-to-load
// round trip through memory when the row's last "new" entry is column i-1 (i+1 backward), the
// common case for banded and stencil matrices (measured 15% on 2-D Poisson 1024^2). Both variants
// make the same update, term for term, so a solve's iterates are the sweeps' iterates bitwise.
template <bool Forward, bool Residual, class T, class Rows>
double lex_sweep(const Rows& rows, index_t n, const T* __restrict idg, T* __restrict x, const T* __restrict b,
                 T omega, T* __restrict delta) {
  double rr = 0.0;
  T chk = 0, xprev = 0;
  for (index_t k = 0; k < n; ++k) {
    const index_t i = Forward ? k : n - 1 - k;
    const auto r = rows.row(i);
    const T wd = omega * idg[i];
    T s = b[i] - r.diag() * x[i], sd = 0;
    const index_t nl = r.nlow(), nu = r.nup();
    if (Forward) {  // old terms: upper; new terms: lower, the neighbour i-1 last
      for (index_t q = 0; q < nu; ++q) s -= r.uval(q) * x[r.ucol(q)];
      if (nl > 0) {
        for (index_t q = 0; q < nl - 1; ++q) {
          const index_t j = r.lcol(q);
          const T v = r.lval(q);
          s -= v * x[j];
          if (Residual) sd += v * delta[j];
        }
        const index_t j = r.lcol(nl - 1);
        const T v = r.lval(nl - 1);
        s -= v * (j == i - 1 ? xprev : x[j]);
        if (Residual) sd += v * delta[j];
      }
    } else {  // mirrored: old terms lower, new terms upper from the far end, i+1 last
      for (index_t q = 0; q < nl; ++q) s -= r.lval(q) * x[r.lcol(q)];
      if (nu > 0) {
        for (index_t q = nu - 1; q > 0; --q) {
          const index_t j = r.ucol(q);
          const T v = r.uval(q);
          s -= v * x[j];
          if (Residual) sd += v * delta[j];
        }
        const index_t j = r.ucol(0);
        const T v = r.uval(0);
        s -= v * (j == i + 1 ? xprev : x[j]);
        if (Residual) sd += v * delta[j];
      }
    }
    const T xn = x[i] + s * wd;
    if (Residual) {
      const double rv = static_cast<double>(s) + static_cast<double>(sd);
      rr += rv * rv;
      delta[i] = xn - x[i];
    } else {
      chk += xn - xn;
    }
    x[i] = xn;
    xprev = xn;
  }
  return Residual ? rr : static_cast<double>(chk);
}

// One sweep of m in place on contiguous x: lex_sweep on the layout in use.
template <bool Forward, bool Residual, class T, class I>
double sweep_once(const SorMatrix<T, I>& m, T* __restrict x, const T* __restrict b, T omega,
                  T* __restrict delta) {
  double out = 0.0;
  m.visit_rows([&](const auto& rows) {
    out = lex_sweep<Forward, Residual>(rows, m.size(), m.inv_diag(), x, b, omega, delta);
  });
  return out;
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
    if (dir != Direction::backward) chk += static_cast<T>(sweep_once<true, false>(m, x, b, w, static_cast<T*>(nullptr)));
    if (dir != Direction::forward) chk += static_cast<T>(sweep_once<false, false>(m, x, b, w, static_cast<T*>(nullptr)));
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
