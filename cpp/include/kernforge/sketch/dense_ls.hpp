// Dense least-squares helpers: one fused pass over A that forms the residual and the gradient of
// the normal equations,  R = B - A X,  G = A^T R,  rr_j = ||R_j||^2,  without writing R (n x k)
// to memory. Each row (C order) or block of rows (F order) of A is read once and used twice while
// it is still in cache, so an iterative-refinement step costs one pass over A instead of two.
//
// Sums are accumulated in double (also for float A: mixed-precision refinement, Wilkinson 1963;
// Carson & Higham 2018) over fixed chunks of rows whose boundaries depend on n only, then the
// chunk partials are added in chunk order: the result is bitwise identical for any thread count.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernforge/common/config.hpp"
#include "kernforge/common/errors.hpp"
#include "kernforge/common/threads.hpp"
#include "kernforge/common/views.hpp"

namespace kf {
namespace sketch {

// A (n x d, C order: col_stride 1, or F order: row_stride 1); B (n x k, column-major, leading
// dimension ldb); X (d x k, column-major, leading dimension d) or nullptr for X = 0.
// Out: G (d x k, column-major), rr (k).
template <class T>
void normal_residual_pass(const MatrixView<const T>& A, const T* B, index_t ldb, index_t k, const T* X, T* G,
                          double* rr) {
  const index_t n = A.rows, d = A.cols;
  const bool c_order = A.col_stride == 1;
  KF_REQUIRE(c_order || A.row_stride == 1, "A must be C- or F-contiguous along one axis");
  KF_REQUIRE(k >= 1 && ldb >= n, "bad right-hand side layout");
  // Fixed chunking (a function of n only) keeps the summation order independent of the threads.
  const index_t chunk = std::max<index_t>(2048, (n + 63) / 64);
  const index_t nchunks = (n + chunk - 1) / chunk;
  const std::size_t dk = static_cast<std::size_t>(d) * static_cast<std::size_t>(k);
  std::vector<double> part(static_cast<std::size_t>(nchunks) * (dk + static_cast<std::size_t>(k)), 0.0);
  constexpr index_t BR = 64;  // rows per block in F order: BR x d of A stays in L2 between the two sweeps
  const int nt = std::max(1, std::min<int>(threads_for(static_cast<std::size_t>(n) * dk),
                                           static_cast<int>(nchunks)));
  std::vector<double> rbuf(c_order ? 0 : static_cast<std::size_t>(nt) * BR * static_cast<std::size_t>(k));
  std::vector<double> xbuf(X ? dk : 0);
  for (std::size_t e = 0; e < xbuf.size(); ++e) xbuf[e] = static_cast<double>(X[e]);
  const double* xd = X ? xbuf.data() : nullptr;

#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
  for (index_t c = 0; c < nchunks; ++c) {
    double* __restrict g = part.data() + static_cast<std::size_t>(c) * (dk + k);
    double* __restrict rs = g + dk;
    const index_t i0 = c * chunk, i1 = std::min(n, i0 + chunk);
    if (c_order) {
      for (index_t i = i0; i < i1; ++i) {
        const T* __restrict a = A.data + i * A.row_stride;
        for (index_t j = 0; j < k; ++j) {
          double s = 0.0;
          if (xd) {
            const double* __restrict x = xd + j * d;
#pragma omp simd reduction(+ : s)
            for (index_t q = 0; q < d; ++q) s += static_cast<double>(a[q]) * x[q];
          }
          const double r = static_cast<double>(B[i + j * ldb]) - s;
          rs[j] += r * r;
          double* __restrict gj = g + j * d;
#pragma omp simd
          for (index_t q = 0; q < d; ++q) gj[q] += r * static_cast<double>(a[q]);
        }
      }
    } else {
      double* __restrict r = rbuf.data() + static_cast<std::size_t>(omp_thread_id()) * BR * k;
      for (index_t b0 = i0; b0 < i1; b0 += BR) {
        const index_t bl = std::min(BR, i1 - b0);
        for (index_t j = 0; j < k; ++j)
          for (index_t t = 0; t < bl; ++t) r[j * BR + t] = static_cast<double>(B[b0 + t + j * ldb]);
        if (xd) {
          for (index_t q = 0; q < d; ++q) {
            const T* __restrict a = A.data + q * A.col_stride + b0;
            for (index_t j = 0; j < k; ++j) {
              const double xv = xd[q + j * d];
              double* __restrict rj = r + j * BR;
#pragma omp simd
              for (index_t t = 0; t < bl; ++t) rj[t] -= xv * static_cast<double>(a[t]);
            }
          }
        }
        for (index_t j = 0; j < k; ++j) {
          double s = 0.0;
          const double* __restrict rj = r + j * BR;
#pragma omp simd reduction(+ : s)
          for (index_t t = 0; t < bl; ++t) s += rj[t] * rj[t];
          rs[j] += s;
        }
        for (index_t q = 0; q < d; ++q) {
          const T* __restrict a = A.data + q * A.col_stride + b0;
          for (index_t j = 0; j < k; ++j) {
            const double* __restrict rj = r + j * BR;
            double s = 0.0;
#pragma omp simd reduction(+ : s)
            for (index_t t = 0; t < bl; ++t) s += static_cast<double>(a[t]) * rj[t];
            g[q + j * d] += s;
          }
        }
      }
    }
  }
  // Chunk partials in chunk order.
  for (std::size_t e = 0; e < dk; ++e) {
    double s = 0.0;
    for (index_t c = 0; c < nchunks; ++c) s += part[static_cast<std::size_t>(c) * (dk + k) + e];
    G[e] = static_cast<T>(s);
  }
  for (index_t j = 0; j < k; ++j) {
    double s = 0.0;
    for (index_t c = 0; c < nchunks; ++c) s += part[static_cast<std::size_t>(c) * (dk + k) + dk + j];
    rr[j] = s;
  }
}

}  // namespace sketch
}  // namespace kf
