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
#include <mutex>
#include <numeric>
#include <type_traits>
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

// The colour-permuted matrix P A P^T (owned), stored for memory-bound sweeps: the diagonal is
// taken out and every row is scaled by 1 / a_ii, so a row update is
//   x_i += omega * (c_i - x_i - sum_{j != i} (a_ij / a_ii) x_j),   c_i = b_i / a_ii,
// with c = b / diag formed once per call while b is permuted. A sweep then reads per row c_i, x_i
// and the off-diagonal entries: no diagonal value, diagonal position or inverse diagonal.
//
// The off-diagonal entries are kept in the narrowest layout that holds them exactly, because a
// sweep on one core is limited by the bytes and streams it reads (measured at ~60% of copy
// bandwidth with the plain CSR layout):
//  - ELL (fixed width W = longest row) when padding adds at most a quarter to the entries, as on
//    stencils and most meshes: no row pointers, and the inner loop unrolls for W = 4 and 6 (5- and
//    7-point stencils). A padding entry repeats a real column of its row (its own column in a row
//    with no off-diagonal) with value 0, so it can neither read outside the row's neighbourhood nor
//    hide a non-finite value that the row did not already see.
//  - 16-bit column offsets from a per-block base when every block of kMcBlock rows reaches fewer
//    than 65536 columns (true for colour-blocked stencils and locality-ordered meshes);
//  - float32 values for a float64 matrix when every scaled value converts to float32 and back
//    unchanged (e.g. -1/4 on the 2-D Poisson stencil): exact, the arithmetic stays in float64.
// The column and value narrowing apply to the CSR layout (irregular rows) too. Each layout computes
// the same terms in the same order (padding subtracts an exact zero), so the layout never changes a
// result beyond the sign of a zero. On 2-D Poisson a row costs 48 bytes instead of 76 (one sweep
// at 1024^2 on one core went from 8.6-9.1 ms to 4.0-5.3 ms, benchmarks/bench_sor.py).
// Within a colour rows are independent, so the update needs no particular order of its terms.
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
        perm_[k] = static_cast<I>(i);
        iperm_[i] = static_cast<I>(k);
      }
    }
    block_ptr_.assign(nc + 1, 0);
    for (int c = 0; c < nc; ++c)
      block_ptr_[c + 1] = block_ptr_[c] + (color_ptr_[c + 1] - color_ptr_[c] + kMcBlock - 1) / kMcBlock;

    // Permuted, scaled CSR without the diagonal, rows sorted by column.
    indptr_.resize(n + 1);
    indices_.resize(a.nnz() - n);
    data_.resize(a.nnz() - n);
    diag_.resize(n);
    inv_diag_.resize(n);
    indptr_[0] = 0;
    index_t width = 0;
    std::vector<std::pair<index_t, T>> row;
    for (index_t k = 0; k < n; ++k) {
      const index_t i = perm_[k];
      const T idg = m.inv_diag()[i];
      row.clear();
      for (index_t p = a.indptr[i]; p < a.indptr[i + 1]; ++p)
        if (static_cast<index_t>(a.indices[p]) != i) row.emplace_back(iperm_[a.indices[p]], a.data[p] * idg);
      std::sort(row.begin(), row.end(), [](const auto& u, const auto& v) { return u.first < v.first; });
      index_t q = indptr_[k];
      for (const auto& e : row) {
        indices_[q] = static_cast<I>(e.first);
        data_[q] = e.second;
        ++q;
      }
      indptr_[k + 1] = static_cast<I>(q);
      width = std::max(width, static_cast<index_t>(row.size()));
      diag_[k] = a.data[m.diag_pos()[i]];
      inv_diag_[i] = idg;
    }
    n_off_ = a.nnz() - n;
    if (n > 0 && width > 0 && width <= kMaxEllWidth && 4 * n * width <= 5 * n_off_) to_ell(width);
    narrow();
  }

  index_t size() const { return static_cast<index_t>(perm_.size()); }
  index_t nnz() const { return n_off_ + size(); }  // of A, diagonal included
  int n_colors() const { return static_cast<int>(color_ptr_.size()) - 1; }
  const std::vector<int>& colors() const { return color_; }
  const std::vector<index_t>& color_ptr() const { return color_ptr_; }
  const std::vector<I>& perm() const { return perm_; }  // new row k is old row perm[k]
  const std::vector<I>& iperm() const { return iperm_; }  // old row i is new row iperm[i]
  const T* inv_diag() const { return inv_diag_.data(); }  // original row order
  index_t n_blocks() const { return block_ptr_.back(); }
  // The storage chosen for the off-diagonal entries (for tests and benchmarks): ELL width (0: CSR),
  // 16-bit column offsets, float32 values.
  index_t ell_width() const { return ell_width_; }
  bool narrow_columns() const { return !col16_.empty(); }
  bool float32_values() const { return !val32_.empty(); }

  // Threads for a sweep: below the work threshold the team stays at one thread.
  int threads() const { return threads_for(static_cast<std::size_t>(nnz()) + static_cast<std::size_t>(size())); }

  // One sweep over all colours on the permuted x with c = P b / diag; must be called by every
  // thread of the current team (or outside a parallel region). Returns this thread's finiteness
  // flag (0, or NaN when a value it updated is not finite). With Residual, delta receives
  // x_new - x_old and partial[block] the block's sum of r_i^2 of the pre-sweep iterate, where
  // r_i / a_ii = (c_i - x_i - sum_j a~_ij x_j) + sum_{j in colours swept earlier} a~_ij delta_j.
  template <bool Forward, bool Residual>
  T sweep_in_region(T* __restrict x, const T* __restrict cb, T omega, T* __restrict delta, double* partial) const {
    T chk = 0;
    visit([&](const auto& rows) { chk = sweep_rows<Forward, Residual>(rows, x, cb, omega, delta, partial); });
    return chk;
  }

  // Sum of r_i^2 of b - A x per block (same blocks as the sweeps), inside a region.
  void residual_in_region(const T* x, const T* cb, double* partial) const {
    visit([&](const auto& rows) { residual_rows(rows, x, cb, partial); });
  }

  // Work buffers (permuted x and c) kept across calls: fresh multi-megabyte buffers would be
  // page-faulted and zeroed by the kernel on every call. A concurrent caller on the same matrix
  // (two Python threads) gets its own buffers instead of waiting.
  class Work {
   public:
    explicit Work(const MulticolorMatrix& m) : lock_(m.work_mutex_, std::try_to_lock) {
      const std::size_t n = static_cast<std::size_t>(m.size());
      if (lock_.owns_lock()) {
        if (!m.work_x_) {
          m.work_x_.reset(new T[n]);
          m.work_c_.reset(new T[n]);
        }
        x_ = m.work_x_.get();
        c_ = m.work_c_.get();
      } else {
        own_x_.reset(new T[n]);
        own_c_.reset(new T[n]);
        x_ = own_x_.get();
        c_ = own_c_.get();
      }
    }
    T* x() const { return x_; }
    T* c() const { return c_; }

   private:
    std::unique_lock<std::mutex> lock_;
    std::unique_ptr<T[]> own_x_, own_c_;
    T* x_ = nullptr;
    T* c_ = nullptr;
  };

 private:
  static constexpr index_t kMaxEllWidth = 32;

  // Row layouts: row(i, block, f) calls f(column, value) for each off-diagonal entry of row i in
  // increasing column order (padding last).
  template <class V, class C>
  struct CsrRows {
    const I* __restrict ap;
    const C* __restrict cols;
    const V* __restrict vals;
    const index_t* __restrict base;
    template <class F>
    void row(index_t i, index_t blk, F&& f) const {
      const index_t b = base[blk];
      for (index_t p = ap[i]; p < static_cast<index_t>(ap[i + 1]); ++p)
        f(b + static_cast<index_t>(cols[p]), static_cast<T>(vals[p]));
    }
  };
  template <int W, class V, class C>  // W = 0: width known at run time only
  struct EllRows {
    const C* __restrict cols;
    const V* __restrict vals;
    const index_t* __restrict base;
    index_t width;
    template <class F>
    void row(index_t i, index_t blk, F&& f) const {
      const index_t w = W > 0 ? W : width;
      const C* __restrict cj = cols + i * w;
      const V* __restrict cv = vals + i * w;
      const index_t b = base[blk];
      if (W > 0) {
        for (int k = 0; k < W; ++k) f(b + static_cast<index_t>(cj[k]), static_cast<T>(cv[k]));
      } else {
        for (index_t k = 0; k < w; ++k) f(b + static_cast<index_t>(cj[k]), static_cast<T>(cv[k]));
      }
    }
  };

  template <class V, class C, class F>
  void visit_width(const V* vals, const C* cols, F&& f) const {
    const index_t* base = block_base_.data();
    switch (ell_width_) {
      case 0: f(CsrRows<V, C>{indptr_.data(), cols, vals, base}); break;
      case 4: f(EllRows<4, V, C>{cols, vals, base, 4}); break;
      case 6: f(EllRows<6, V, C>{cols, vals, base, 6}); break;
      default: f(EllRows<0, V, C>{cols, vals, base, ell_width_}); break;
    }
  }
  template <class V, class F>
  void visit_cols(const V* vals, F&& f) const {
    if (!col16_.empty())
      visit_width(vals, col16_.data(), f);
    else
      visit_width(vals, indices_.data(), f);
  }
  template <class F>
  void visit(F&& f) const {
    if (!val32_.empty())
      visit_cols(val32_.data(), f);
    else
      visit_cols(data_.data(), f);
  }

  template <bool Forward, bool Residual, class Rows>
  T sweep_rows(const Rows& rows, T* __restrict x, const T* __restrict cb, T omega, T* __restrict delta,
               double* partial) const {
    const T* __restrict dg = diag_.data();
    const int nc = n_colors();
    T chk = 0;
    for (int q = 0; q < nc; ++q) {
      const int c = Forward ? q : nc - 1 - q;
      const index_t lo = color_ptr_[c], hi = color_ptr_[c + 1];
      const index_t nb = block_ptr_[c + 1] - block_ptr_[c];
#ifdef KF_HAVE_OPENMP
#pragma omp for schedule(static)
#endif
      for (index_t blk = 0; blk < nb; ++blk) {
        const index_t r0 = lo + blk * kMcBlock, r1 = std::min(hi, r0 + kMcBlock);
        const index_t gb = block_ptr_[c] + blk;
        if (Residual) {
          double acc = 0.0;
          for (index_t i = r0; i < r1; ++i) {
            T s = cb[i] - x[i], sd = 0;
            rows.row(i, gb, [&](index_t j, T v) {
              s -= v * x[j];
              // Columns of colours already swept in this sweep carry this sweep's delta.
              if (Forward ? j < lo : j >= hi) sd += v * delta[j];
            });
            const double r = static_cast<double>(dg[i]) * (static_cast<double>(s) + static_cast<double>(sd));
            acc += r * r;
            const T dx = omega * s;
            delta[i] = dx;
            x[i] += dx;
          }
          partial[gb] = acc;
        } else {
          for (index_t i = r0; i < r1; ++i) {
            T s = cb[i] - x[i];
            rows.row(i, gb, [&](index_t j, T v) { s -= v * x[j]; });
            const T xn = x[i] + omega * s;
            x[i] = xn;
            chk += xn - xn;
          }
        }
      }
    }
    return chk;
  }

  template <class Rows>
  void residual_rows(const Rows& rows, const T* x, const T* cb, double* partial) const {
    const int nc = n_colors();
    for (int c = 0; c < nc; ++c) {
      const index_t lo = color_ptr_[c], hi = color_ptr_[c + 1];
      const index_t nb = block_ptr_[c + 1] - block_ptr_[c];
#ifdef KF_HAVE_OPENMP
#pragma omp for schedule(static)
#endif
      for (index_t blk = 0; blk < nb; ++blk) {
        const index_t r0 = lo + blk * kMcBlock, r1 = std::min(hi, r0 + kMcBlock);
        const index_t gb = block_ptr_[c] + blk;
        double acc = 0.0;
        for (index_t i = r0; i < r1; ++i) {
          double s = static_cast<double>(cb[i]) - static_cast<double>(x[i]);
          rows.row(i, gb, [&](index_t j, T v) { s -= static_cast<double>(v) * static_cast<double>(x[j]); });
          s *= static_cast<double>(diag_[i]);
          acc += s * s;
        }
        partial[gb] = acc;
      }
    }
  }

  // Re-packs the CSR rows as ELL of the given width, then narrows columns and values where exact.
  // Re-packs the CSR rows as ELL of the given width (padding as described above the class).
  void to_ell(index_t width) {
    const index_t n = size();
    std::vector<I> cols(static_cast<std::size_t>(n * width));
    std::vector<T> vals(static_cast<std::size_t>(n * width), T(0));
    for (index_t i = 0; i < n; ++i) {
      const index_t p0 = indptr_[i], p1 = indptr_[i + 1];
      const I pad = p1 > p0 ? indices_[p1 - 1] : static_cast<I>(i);
      for (index_t k = 0; k < width; ++k) {
        cols[i * width + k] = p0 + k < p1 ? indices_[p0 + k] : pad;
        if (p0 + k < p1) vals[i * width + k] = data_[p0 + k];
      }
    }
    std::vector<I>().swap(indptr_);
    indices_.swap(cols);
    data_.swap(vals);
    ell_width_ = width;
  }

  // First entry of row r in indices_ / data_, in either layout.
  index_t row_start(index_t r) const { return ell_width_ ? r * ell_width_ : static_cast<index_t>(indptr_[r]); }

  // Replaces the columns by 16-bit offsets from the smallest column each block reaches, when every
  // block fits, and the values by float32 when every one converts exactly.
  void narrow() {
    block_base_.assign(n_blocks(), 0);
    bool fits = true;
    for (int c = 0; c < n_colors() && fits; ++c) {
      for (index_t blk = 0; blk < block_ptr_[c + 1] - block_ptr_[c]; ++blk) {
        const index_t r0 = color_ptr_[c] + blk * kMcBlock, r1 = std::min(color_ptr_[c + 1], r0 + kMcBlock);
        const index_t p0 = row_start(r0), p1 = row_start(r1);
        if (p0 == p1) continue;
        const auto mm = std::minmax_element(indices_.begin() + p0, indices_.begin() + p1);
        if (static_cast<index_t>(*mm.second) - static_cast<index_t>(*mm.first) > 0xFFFF) {
          fits = false;
          break;
        }
        block_base_[block_ptr_[c] + blk] = *mm.first;
      }
    }
    if (fits) {
      col16_.resize(indices_.size());
      for (int c = 0; c < n_colors(); ++c)
        for (index_t blk = 0; blk < block_ptr_[c + 1] - block_ptr_[c]; ++blk) {
          const index_t r0 = color_ptr_[c] + blk * kMcBlock, r1 = std::min(color_ptr_[c + 1], r0 + kMcBlock);
          const index_t base = block_base_[block_ptr_[c] + blk];
          for (index_t p = row_start(r0); p < row_start(r1); ++p)
            col16_[p] = static_cast<std::uint16_t>(static_cast<index_t>(indices_[p]) - base);
        }
      std::vector<I>().swap(indices_);
    } else {
      std::fill(block_base_.begin(), block_base_.end(), 0);
    }
    bool f32 = !std::is_same<T, float>::value;
    for (std::size_t p = 0; p < data_.size() && f32; ++p)
      f32 = static_cast<T>(static_cast<float>(data_[p])) == data_[p];
    if (f32) {
      val32_.resize(data_.size());
      for (std::size_t p = 0; p < data_.size(); ++p) val32_[p] = static_cast<float>(data_[p]);
      std::vector<T>().swap(data_);
    }
  }

  std::vector<int> color_;
  std::vector<index_t> color_ptr_, block_ptr_, block_base_;
  std::vector<I> perm_, iperm_, indptr_, indices_;  // indptr_: CSR layout only; indices_: unless col16_
  std::vector<T> data_, diag_, inv_diag_;  // data_: the values unless val32_ holds them
  std::vector<std::uint16_t> col16_;
  std::vector<float> val32_;
  index_t ell_width_ = 0;
  index_t n_off_ = 0;
  mutable std::mutex work_mutex_;
  mutable std::unique_ptr<T[]> work_x_, work_c_;
};

namespace detail {
// The permutations run in the original row order (sequential reads and writes of x and b, one
// monotone stream per colour on the permuted side), not in the permuted order, which would read
// every cache line of x and b once per colour: with ten sweeps per call on 2-D Poisson 1024^2 the
// copies in and out cost as much as one or two sweeps.
template <class T, class I>
void to_permuted(const std::vector<I>& iperm, const T* __restrict src, T* __restrict dst) {
  const index_t n = static_cast<index_t>(iperm.size());
#ifdef KF_HAVE_OPENMP
#pragma omp for schedule(static) nowait
#endif
  for (index_t i = 0; i < n; ++i) dst[iperm[i]] = src[i];
}
// dst = P (src / diag): the scaled right-hand side c of the row update.
template <class T, class I>
void to_permuted_scaled(const std::vector<I>& iperm, const T* __restrict src, const T* __restrict scale,
                        T* __restrict dst) {
  const index_t n = static_cast<index_t>(iperm.size());
#ifdef KF_HAVE_OPENMP
#pragma omp for schedule(static)
#endif
  for (index_t i = 0; i < n; ++i) dst[iperm[i]] = src[i] * scale[i];
}
template <class T, class I>
void from_permuted(const std::vector<I>& iperm, const T* __restrict src, T* __restrict dst) {
  const index_t n = static_cast<index_t>(iperm.size());
#ifdef KF_HAVE_OPENMP
#pragma omp for schedule(static)
#endif
  for (index_t i = 0; i < n; ++i) dst[i] = src[iperm[i]];
}
inline double ordered_sum(const std::vector<double>& v) {
  double s = 0.0;
  for (double x : v) s += x;
  return s;
}
}  // namespace detail

// `sweeps` multicolour sweeps in place on x (original ordering): x and b are permuted once, all
// sweeps run inside one parallel region, x is permuted back. Returns whether every value of the
// final x is finite (false: x, b or A held NaN or inf, or the iteration overflowed).
template <class T, class I>
bool multicolor_sweep(const MulticolorMatrix<T, I>& m, T* x, const T* b, double omega, Direction dir, int sweeps) {
  check_omega(omega);
  KF_REQUIRE(sweeps >= 0, "sweeps must be non-negative, got ", sweeps);
  if (sweeps == 0) return true;
  typename MulticolorMatrix<T, I>::Work work(m);
  T* xp = work.x();
  T* cp = work.c();
  const T w = static_cast<T>(omega);
  bool finite = true;
#ifdef KF_HAVE_OPENMP
#pragma omp parallel num_threads(m.threads())
#endif
  {
    detail::to_permuted(m.iperm(), x, xp);  // nowait: the scaled copy below ends with a barrier
    detail::to_permuted_scaled(m.iperm(), b, m.inv_diag(), cp);
    T chk = 0;
    for (int s = 0; s < sweeps; ++s) {
      if (dir != Direction::backward) chk += m.template sweep_in_region<true, false>(xp, cp, w, nullptr, nullptr);
      if (dir != Direction::forward) chk += m.template sweep_in_region<false, false>(xp, cp, w, nullptr, nullptr);
    }
    if (!(chk == T(0))) {
#ifdef KF_HAVE_OPENMP
#pragma omp atomic write
#endif
      finite = false;
    }
    detail::from_permuted(m.iperm(), xp, x);
  }
  return finite;
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
  typename MulticolorMatrix<T, I>::Work work(m);
  T* xp = work.x();
  T* cp = work.c();
  std::vector<T> delta(n, T(0));
  std::vector<double> partial(m.n_blocks(), 0.0);
  const T w = static_cast<T>(omega);
  const double target = rtol * bnorm;
  bool stop = false;
#ifdef KF_HAVE_OPENMP
#pragma omp parallel num_threads(m.threads())
#endif
  {
    detail::to_permuted(m.iperm(), x, xp);
    detail::to_permuted_scaled(m.iperm(), b, m.inv_diag(), cp);
    for (int k = 0;; ++k) {
      if (k == max_iter) {
        m.residual_in_region(xp, cp, partial.data());
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
      m.template sweep_in_region<true, true>(xp, cp, w, delta.data(), partial.data());
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
      if (symmetric) m.template sweep_in_region<false, false>(xp, cp, w, nullptr, nullptr);
    }
    if (info.converged && info.n_iter < max_iter) {
#ifdef KF_HAVE_OPENMP
#pragma omp for schedule(static)
#endif
      for (index_t i = 0; i < n; ++i) xp[i] -= delta[i];
    }
    detail::from_permuted(m.iperm(), xp, x);
  }
  return info;
}

}  // namespace sor
}  // namespace kf
