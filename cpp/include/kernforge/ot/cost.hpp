// Cost providers for the Sinkhorn kernels: a dense n x m cost (kept with its transpose so both
// half-steps read contiguous memory) and a squared-Euclidean cost between point clouds that is
// recomputed row by row and never stored (O((n + m) d) memory, papers.md section 5.1 "on-the-fly").
//
// Interface used by the solvers: rows(), cols(), row(i, buf) -> const T* (m entries of C[i, :]),
// col(j, buf) -> const T* (n entries of C[:, j]); buf is a per-thread scratch of max(n, m) entries
// that dense costs ignore.
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernforge/common/errors.hpp"
#include "kernforge/common/threads.hpp"
#include "kernforge/common/views.hpp"

namespace kf {
namespace ot {

template <class T>
class DenseCost {
 public:
  // c: row-major contiguous n x m (borrowed). The transpose is built here, once, unless the caller
  // only needs rows (with_transpose = false; then col() must not be called).
  DenseCost(const T* c, index_t n, index_t m, bool with_transpose = true) : c_(c), n_(n), m_(m) {
    if (!with_transpose) return;
    ct_.resize(static_cast<size_t>(n) * m);
    const index_t B = 64;
    const int nt = kf::threads_for(static_cast<size_t>(n) * m, 1 << 18);
#pragma omp parallel for schedule(static) num_threads(nt)
    for (index_t jb = 0; jb < m; jb += B)
      for (index_t ib = 0; ib < n; ib += B)
        for (index_t j = jb; j < std::min(m, jb + B); ++j)
          for (index_t i = ib; i < std::min(n, ib + B); ++i) ct_[j * n + i] = c_[i * m + j];
  }
  DenseCost(const DenseCost&) = delete;
  DenseCost& operator=(const DenseCost&) = delete;

  index_t rows() const { return n_; }
  index_t cols() const { return m_; }
  const T* row(index_t i, T*) const { return c_ + i * m_; }
  const T* col(index_t j, T*) const { return ct_.data() + j * n_; }
  const T* data() const { return c_; }
  const T* tdata() const { return ct_.data(); }

 private:
  const T* c_;
  index_t n_, m_;
  std::vector<T> ct_;
};

// C[i, j] = scale * ||x_i - y_j||^2, computed coordinate by coordinate on a structure-of-arrays
// copy (d x n and d x m) so the inner loop over j vectorises.
template <class T>
class SqEuclideanCost {
 public:
  SqEuclideanCost(const T* x, const T* y, index_t n, index_t m, index_t d, T scale)
      : n_(n), m_(m), d_(d), scale_(scale), xt_(static_cast<size_t>(n) * d), yt_(static_cast<size_t>(m) * d) {
    for (index_t i = 0; i < n; ++i)
      for (index_t k = 0; k < d; ++k) xt_[k * n + i] = x[i * d + k];
    for (index_t j = 0; j < m; ++j)
      for (index_t k = 0; k < d; ++k) yt_[k * m + j] = y[j * d + k];
  }

  index_t rows() const { return n_; }
  index_t cols() const { return m_; }

  const T* row(index_t i, T* buf) const {
    fill(buf, yt_.data(), m_, xt_.data(), n_, i);
    return buf;
  }
  const T* col(index_t j, T* buf) const {
    fill(buf, xt_.data(), n_, yt_.data(), m_, j);
    return buf;
  }

 private:
  void fill(T* __restrict out, const T* __restrict other, index_t len, const T* self, index_t self_len,
            index_t k0) const {
    for (index_t t = 0; t < len; ++t) out[t] = T(0);
    for (index_t k = 0; k < d_; ++k) {
      const T p = self[k * self_len + k0];
      const T* __restrict q = other + k * len;
#pragma omp simd
      for (index_t t = 0; t < len; ++t) {
        const T diff = p - q[t];
        out[t] += diff * diff;
      }
    }
    const T s = scale_;
#pragma omp simd
    for (index_t t = 0; t < len; ++t) out[t] *= s;
  }

  index_t n_, m_, d_;
  T scale_;
  std::vector<T> xt_, yt_;
};

}  // namespace ot
}  // namespace kf
