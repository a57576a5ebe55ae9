// Multicolour SOR: greedy colouring of the CSR graph, a colour-permuted copy of the matrix, and
// OpenMP sweeps and solves that keep one parallel region across all sweeps.
//
// Rows of one colour do not couple, so within a colour all rows update in parallel; colours run in
// sequence (forward: 0..C-1, backward: C-1..0). After the symmetric permutation P A P^T that makes
// each colour a contiguous row range, a multicolour sweep is exactly the lexicographic sweep of the
// permuted matrix (Saad, Iterative Methods for Sparse Linear Systems, 2003, section 12.4), which is
// a different iteration from the lexicographic sweep of A, with similar convergence (papers.md 1.2).
// Greedy first-fit colouring in natural order gives red-black (2 colours) on 5- and 7-point
// stencils and at most (max degree + 1) colours in general.
//
// Determinism: each row's update does not depend on the thread count, and residual sums are
// accumulated per fixed block of rows (independent of the team size) and combined in order, so
// results are bitwise identical for any number of threads.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <numeric>
#include <utility>
#include <vector>

#include "kernforge/common/config.hpp"
#include "kernforge/common/errors.hpp"
#include "kernforge/common/threads.hpp"
#include "kernforge/common/views.hpp"
#include "kernforge/sor/sor.hpp"

namespace kf {
namespace sor {

// Rows per residual block: the unit of work sharing and of the ordered residual sum.
inline constexpr index_t kMcBlock = 2048;

// Greedy first-fit colouring of the graph of A + A^T (self loops ignored), rows visited in natural
// order. Returns one colour per row, colours numbered from 0.
template <class T, class I>
std::vector<int> greedy_coloring(const CsrView<T, I>& a) {
  const index_t n = a.rows;
  // Transpose pattern (in-neighbours) by counting sort, so a nonsymmetric pattern is coloured
  // correctly too: row i must not share a colour with any j where a_ij != 0 or a_ji != 0.
  std::vector<index_t> tp(n + 1, 0);
  for (index_t p = 0; p < a.nnz(); ++p) ++tp[static_cast<index_t>(a.indices[p]) + 1];
  for (index_t i = 0; i < n; ++i) tp[i + 1] += tp[i];
  std::vector<index_t> tj(a.nnz());
  {
    std::vector<index_t> fill(tp.begin(), tp.end() - 1);
    for (index_t i = 0; i < n; ++i)
      for (index_t p = a.indptr[i]; p < a.indptr[i + 1]; ++p) tj[fill[a.indices[p]]++] = i;
  }
  std::vector<int> color(n, -1);
  std::vector<index_t> mark;  // mark[c] == i: colour c is taken by a neighbour of row i
  for (index_t i = 0; i < n; ++i) {
    auto take = [&](index_t j) {
      if (j != i && color[j] >= 0) {
        if (static_cast<std::size_t>(color[j]) >= mark.size()) mark.resize(color[j] + 1, -1);
        mark[color[j]] = i;
      }
    };
    for (index_t p = a.indptr[i]; p < a.indptr[i + 1]; ++p) take(a.indices[p]);
    for (index_t p = tp[i]; p < tp[i + 1]; ++p) take(tj[p]);
    int c = 0;
    while (static_cast<std::size_t>(c) < mark.size() && mark[c] == i) ++c;
    color[i] = c;
  }
  return color;
}

// The colour-permuted matrix P A P^T (owned), with its diagonal positions and inverse diagonal.
template <class T, class I>
class MulticolorMatrix {
 public:
  // `m` has validated the diagonal already; its CSR is borrowed only during construction.
  explicit MulticolorMatrix(const SorMatrix<T, I>& m) {
    const CsrView<T, I>& a = m.csr();
    const index_t n = a.rows;
    color_ = greedy_coloring(a);
    const int nc = n ? *std::max_element(color_.begin(), color_.end()) + 1 : 0;
    color_ptr_.assign(nc + 1, 0);
    for (index_t i = 0; i < n; ++i) ++color_ptr_[color_[i] + 1];
    for (int c = 0; c < nc; ++c) color_ptr_[c + 1] += color_ptr_[c];
    perm_.resize(n);
    iperm_.resize(n);
    {
      std::vector<index_t> fill(color_ptr_.begin(), color_ptr_.end() - 1);
      for (index_t i = 0; i < n; ++i) {
        const index_t k = fill[color_[i]]++;
        perm_[k] = i;
        iperm_[i] = k;
      }
    }
    indptr_.resize(n + 1);
    indices_.resize(a.nnz());
    data_.resize(a.nnz());
    dptr_.resize(n);
    inv_diag_.resize(n);
    indptr_[0] = 0;
    std::vector<std::pair<index_t, T>> row;
    for (index_t k = 0; k < n; ++k) {
      const index_t i = perm_[k];
      row.clear();
      for (index_t p = a.indptr[i]; p < a.indptr[i + 1]; ++p) row.emplace_back(iperm_[a.indices[p]], a.data[p]);
      std::sort(row.begin(), row.end(), [](const auto& u, const auto& v) { return u.first < v.first; });
      index_t q = indptr_[k];
      for (const auto& e : row) {
        if (e.first == k) dptr_[k] = static_cast<I>(q);
        indices_[q] = static_cast<I>(e.first);
        data_[q] = e.second;
        ++q;
      }
      indptr_[k + 1] = static_cast<I>(q);
      inv_diag_[k] = m.inv_diag()[i];
    }
    block_ptr_.assign(nc + 1, 0);
    for (int c = 0; c < nc; ++c)
      block_ptr_[c + 1] = block_ptr_[c] + (color_ptr_[c + 1] - color_ptr_[c] + kMcBlock - 1) / kMcBlock;
  }

  index_t size() const { return static_cast<index_t>(perm_.size()); }
  index_t nnz() const { return static_cast<index_t>(data_.size()); }
  int n_colors() const { return static_cast<int>(color_ptr_.size()) - 1; }
  const std::vector<int>& colors() const { return color_; }
  const std::vector<index_t>& color_ptr() const { return color_ptr_; }
  const std::vector<index_t>& perm() const { return perm_; }  // new row k is old row perm[k]
  index_t n_blocks() const { return block_ptr_.back(); }
  CsrView<T, I> csr() const {
    CsrView<T, I> v;
    v.rows = v.cols = size();
    v.indptr = indptr_.data();
    v.indices = indices_.data();
    v.data = data_.data();
    return v;
  }

  // Threads for a sweep: below the work threshold the team stays at one thread.
  int threads() const { return threads_for(static_cast<std::size_t>(nnz()) + static_cast<std::size_t>(size())); }

  // One sweep over all colours; must be called by every thread of the current team (or outside a
  // parallel region). With Residual, partial[block] receives the block's sum of r_i^2.
  template <bool Forward, bool Residual>
  void sweep_in_region(T* x, const T* b, T omega, T* delta, double* partial) const {
    const I* ap = indptr_.data();
    const I* aj = indices_.data();
    const T* ax = data_.data();
    const I* dp = dptr_.data();
    const T* idg = inv_diag_.data();
    const int nc = n_colors();
    for (int q = 0; q < nc; ++q) {
      const int c = Forward ? q : nc - 1 - q;
      const index_t lo = color_ptr_[c], hi = color_ptr_[c + 1];
      const index_t nb = block_ptr_[c + 1] - block_ptr_[c];
#ifdef KF_HAVE_OPENMP
#pragma omp for schedule(static)
#endif
      for (index_t blk = 0; blk < nb; ++blk) {
        const index_t r0 = lo + blk * kMcBlock, r1 = std::min(hi, r0 + kMcBlock);
        double acc = 0.0;
        for (index_t i = r0; i < r1; ++i) acc += sor_row<Forward, Residual>(i, ap, aj, ax, dp, idg, x, b, omega, delta);
        if (Residual) partial[block_ptr_[c] + blk] = acc;
      }
    }
  }

  // Sum of r_i^2 of b - A x per block (same blocks as the sweeps), inside a region.
  void residual_in_region(const T* x, const T* b, double* partial) const {
    const int nc = n_colors();
    for (int c = 0; c < nc; ++c) {
      const index_t lo = color_ptr_[c], hi = color_ptr_[c + 1];
      const index_t nb = block_ptr_[c + 1] - block_ptr_[c];
#ifdef KF_HAVE_OPENMP
#pragma omp for schedule(static)
#endif
      for (index_t blk = 0; blk < nb; ++blk) {
        const index_t r0 = lo + blk * kMcBlock, r1 = std::min(hi, r0 + kMcBlock);
        double acc = 0.0;
        for (index_t i = r0; i < r1; ++i) {
          double s = b[i];
          for (index_t p = indptr_[i]; p < indptr_[i + 1]; ++p)
            s -= static_cast<double>(data_[p]) * static_cast<double>(x[indices_[p]]);
          acc += s * s;
        }
        partial[block_ptr_[c] + blk] = acc;
      }
    }
  }

 private:
  std::vector<int> color_;
  std::vector<index_t> color_ptr_, perm_, iperm_, block_ptr_;
  std::vector<I> indptr_, indices_, dptr_;
  std::vector<T> data_, inv_diag_;
};

namespace detail {
template <class T>
void gather(const std::vector<index_t>& perm, const T* src, T* dst) {
  const index_t n = static_cast<index_t>(perm.size());
#ifdef KF_HAVE_OPENMP
#pragma omp for schedule(static)
#endif
  for (index_t k = 0; k < n; ++k) dst[k] = src[perm[k]];
}
template <class T>
void scatter(const std::vector<index_t>& perm, const T* src, T* dst) {
  const index_t n = static_cast<index_t>(perm.size());
#ifdef KF_HAVE_OPENMP
#pragma omp for schedule(static)
#endif
  for (index_t k = 0; k < n; ++k) dst[perm[k]] = src[k];
}
// An uninitialised buffer: std::vector<T>(n) would write every element once more before the
// gather overwrites it, an extra pass over memory in a memory-bound kernel.
template <class T>
std::unique_ptr<T[]> buffer(index_t n) {
  return std::unique_ptr<T[]>(new T[static_cast<std::size_t>(n)]);
}
inline double ordered_sum(const std::vector<double>& v) {
  double s = 0.0;
  for (double x : v) s += x;
  return s;
}
}  // namespace detail

// `sweeps` multicolour sweeps in place on x (original ordering): x and b are permuted once, all
// sweeps run inside one parallel region, x is permuted back.
template <class T, class I>
void multicolor_sweep(const MulticolorMatrix<T, I>& m, T* x, const T* b, double omega, Direction dir, int sweeps) {
  check_omega(omega);
  KF_REQUIRE(sweeps >= 0, "sweeps must be non-negative, got ", sweeps);
  if (sweeps == 0) return;
  const index_t n = m.size();
  auto xbuf = detail::buffer<T>(n), bbuf = detail::buffer<T>(n);
  T* xp = xbuf.get();
  T* bp = bbuf.get();
  const T w = static_cast<T>(omega);
#ifdef KF_HAVE_OPENMP
#pragma omp parallel num_threads(m.threads())
#endif
  {
    detail::gather(m.perm(), x, xp);
    detail::gather(m.perm(), b, bp);
    for (int s = 0; s < sweeps; ++s) {
      if (dir != Direction::backward) m.template sweep_in_region<true, false>(xp, bp, w, nullptr, nullptr);
      if (dir != Direction::forward) m.template sweep_in_region<false, false>(xp, bp, w, nullptr, nullptr);
    }
    detail::scatter(m.perm(), xp, x);
  }
}

// Multicolour SOR (or SSOR) iteration from x until ||b - A x_k|| <= rtol ||b||, with the residual
// fused into the sweeps exactly as in solve() (the returned x is the first iterate meeting it).
template <class T, class I>
SolveInfo multicolor_solve(const MulticolorMatrix<T, I>& m, T* x, const T* b, double omega, double rtol,
                           int max_iter, bool symmetric) {
  check_omega(omega);
  const index_t n = m.size();
  SolveInfo info;
  const double bnorm = start_solve(n, x, b, rtol, max_iter, info);
  if (bnorm == 0.0) return info;
  std::vector<T> xp(n), bp(n), delta(n, T(0));
  std::vector<double> partial(m.n_blocks(), 0.0);
  const T w = static_cast<T>(omega);
  const double target = rtol * bnorm;
  bool stop = false;
#ifdef KF_HAVE_OPENMP
#pragma omp parallel num_threads(m.threads())
#endif
  {
    detail::gather(m.perm(), x, xp.data());
    detail::gather(m.perm(), b, bp.data());
    for (int k = 0;; ++k) {
      if (k == max_iter) {
        m.residual_in_region(xp.data(), bp.data(), partial.data());
#ifdef KF_HAVE_OPENMP
#pragma omp single
#endif
        {
          const double r = std::sqrt(detail::ordered_sum(partial));
          info.residuals.push_back(r / bnorm);
          info.converged = r <= target;
          info.n_iter = k;
        }
        break;
      }
      m.template sweep_in_region<true, true>(xp.data(), bp.data(), w, delta.data(), partial.data());
#ifdef KF_HAVE_OPENMP
#pragma omp single
#endif
      {
        const double r = std::sqrt(detail::ordered_sum(partial));
        info.residuals.push_back(r / bnorm);
        info.n_iter = k;
        if (!std::isfinite(r)) {
          stop = true;
        } else if (r <= target) {
          info.converged = true;
          stop = true;
        }
      }  // implicit barrier: every thread sees the same `stop`
      if (stop) break;
      if (symmetric) m.template sweep_in_region<false, false>(xp.data(), bp.data(), w, nullptr, nullptr);
    }
    if (info.converged && info.n_iter < max_iter) {
#ifdef KF_HAVE_OPENMP
#pragma omp for schedule(static)
#endif
      for (index_t i = 0; i < n; ++i) xp[i] -= delta[i];
    }
    detail::scatter(m.perm(), xp.data(), x);
  }
  return info;
}

}  // namespace sor
}  // namespace kf
