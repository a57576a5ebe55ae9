// Subsampled randomized Hadamard transform (Ailon & Chazelle, 2009; Tropp, 2011; the mixing step
// of Blendenpik, Avron, Maymounkov & Toledo, 2010):
//     S = (1 / sqrt(m)) R H D,
// with D = diag of random signs (n_pad x n, zero-padding A to n_pad = 2^ceil(log2 n) rows), H the
// unnormalised Walsh-Hadamard matrix (H^T H = n_pad I) and R the selection of m distinct rows of
// n_pad chosen uniformly. Then E[S^T S] = (1/m) D H^T E[R^T R] H D = (1/n_pad) D H^T H D = I.
//
// Application works on panels of c columns of A stored row-major in an n_pad x c buffer, so every
// butterfly of the fast transform is a contiguous, vectorisable update of c values. The stages
// with short strides run inside cache-sized chunks of rows, the rest stream the panel. Panels are
// independent, so the result does not depend on the thread count. Signs come from
// kf::hash64(seed, j), the row sample from kf::Rng(seed, stream 0x5352) (Floyd's algorithm).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <unordered_set>
#include <vector>

#include "kernforge/common/errors.hpp"
#include "kernforge/common/rng.hpp"
#include "kernforge/common/threads.hpp"
#include "kernforge/common/views.hpp"

namespace kf {
namespace sketch {

inline index_t next_pow2(index_t n) {
  index_t p = 1;
  while (p < n) p <<= 1;
  return p;
}

inline double srht_sign(std::uint64_t seed, index_t j) {
  return (hash64(seed, static_cast<std::uint64_t>(j), 0x5349474eull) >> 63) ? 1.0 : -1.0;
}

// m distinct rows of [0, n_pad), sorted.
inline std::vector<std::int64_t> srht_rows(index_t m, index_t n_pad, std::uint64_t seed) {
  KF_REQUIRE(m >= 1 && m <= n_pad, "m must lie in [1, ", n_pad, "], got ", m);
  Rng rng(seed, 0x5352);
  std::vector<std::int64_t> rows;
  rows.reserve(static_cast<std::size_t>(m));
  std::unordered_set<std::int64_t> seen;
  seen.reserve(static_cast<std::size_t>(m) * 2);
  for (index_t t = n_pad - m; t < n_pad; ++t) {
    auto r = static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(t + 1)));
    if (!seen.insert(r).second) {
      r = t;
      seen.insert(r);
    }
    rows.push_back(r);
  }
  std::sort(rows.begin(), rows.end());
  return rows;
}

// In-place unnormalised Walsh-Hadamard transform along the rows of an N x c row-major buffer
// (N a power of two): every row is a vector of c lanes transformed together.
template <class T>
void fwht_panel(T* buf, index_t N, index_t c) {
  const index_t chunk = std::min<index_t>(N, std::max<index_t>(2, (index_t(1) << 15) / (c * index_t(sizeof(T))) * 4));
  auto stage = [&](index_t lo, index_t hi, index_t h) {
    for (index_t b = lo; b < hi; b += 2 * h)
      for (index_t i = b; i < b + h; ++i) {
        T* __restrict x = buf + i * c;
        T* __restrict y = buf + (i + h) * c;
#pragma omp simd
        for (index_t t = 0; t < c; ++t) {
          const T u = x[t], v = y[t];
          x[t] = u + v;
          y[t] = u - v;
        }
      }
  };
  // chunk is a power of two no larger than N, so the chunks tile the buffer.
  index_t ch = 1;
  while (ch * 2 <= chunk) ch *= 2;
  for (index_t lo = 0; lo < N; lo += ch)
    for (index_t h = 1; h < ch; h *= 2) stage(lo, lo + ch, h);
  for (index_t h = ch; h < N; h *= 2) stage(0, N, h);
}

// Fills panel column t (0 <= t < width) of the buffer from column k0 + t of A (n rows).
template <class T, class Fill>
void srht_panels(index_t n, index_t d, index_t n_pad, const std::vector<std::int64_t>& rows, std::uint64_t seed,
                 T* out, index_t ld, Fill&& fill) {
  const index_t m = static_cast<index_t>(rows.size());
  const index_t c = sizeof(T) == 4 ? 16 : 8;
  const index_t panels = (d + c - 1) / c;
  std::vector<T> signs(static_cast<std::size_t>(n));
  for (index_t j = 0; j < n; ++j) signs[j] = static_cast<T>(srht_sign(seed, j));
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(m)));
  const std::size_t work = static_cast<std::size_t>(n_pad) * static_cast<std::size_t>(d) * 4;
  const int nt = std::min<int>(threads_for(work), static_cast<int>(std::max<index_t>(panels, 1)));
  ParallelGuard guard;
#pragma omp parallel num_threads(nt)
  {
    std::vector<T> buf;
    guard.run([&] { buf.resize(static_cast<std::size_t>(n_pad * c)); });
#pragma omp for schedule(dynamic, 1)
    for (index_t p = 0; p < panels; ++p) {
      if (guard.failed()) continue;
      const index_t k0 = p * c, w = std::min(c, d - k0);
      std::fill(buf.begin(), buf.end(), T(0));
      fill(buf.data(), c, k0, w, signs.data());
      fwht_panel(buf.data(), n_pad, c);
      for (index_t r = 0; r < m; ++r) {
        const T* src = buf.data() + rows[r] * c;
        T* dst = out + r * ld + k0;
        for (index_t t = 0; t < w; ++t) dst[t] = scale * src[t];
      }
    }
  }
  guard.rethrow();
}

// out (m x d, row-major, row stride ld) = S A for a strided dense A (n x d).
template <class T>
void srht_apply_dense(const MatrixView<const T>& A, index_t n_pad, const std::vector<std::int64_t>& rows,
                      std::uint64_t seed, T* out, index_t ld) {
  KF_REQUIRE(n_pad >= A.rows, "n_pad must be >= n");
  srht_panels<T>(A.rows, A.cols, n_pad, rows, seed, out, ld,
                 [&](T* buf, index_t c, index_t k0, index_t w, const T* sg) {
                   for (index_t j = 0; j < A.rows; ++j) {
                     const T* a = A.data + j * A.row_stride + k0 * A.col_stride;
                     T* b = buf + j * c;
                     for (index_t t = 0; t < w; ++t) b[t] = sg[j] * a[t * A.col_stride];
                   }
                 });
}

// out = S A for A in CSC form (At: d x n CSR view of A^T).
template <class T, class I>
void srht_apply_csc(const CsrView<T, I>& At, index_t n_pad, const std::vector<std::int64_t>& rows,
                    std::uint64_t seed, T* out, index_t ld) {
  KF_REQUIRE(n_pad >= At.cols, "n_pad must be >= n");
  srht_panels<T>(At.cols, At.rows, n_pad, rows, seed, out, ld,
                 [&](T* buf, index_t c, index_t k0, index_t w, const T* sg) {
                   for (index_t t = 0; t < w; ++t)
                     for (auto p = At.indptr[k0 + t]; p < At.indptr[k0 + t + 1]; ++p) {
                       const auto j = At.indices[p];
                       buf[j * c + t] = sg[j] * At.data[p];
                     }
                 });
}

// out (n x d, row-major) = S^T Y for Y (m x d, strided): scatter the sampled rows, transform
// (H is symmetric), apply the signs, keep the first n rows.
template <class T>
void srht_adjoint(const MatrixView<const T>& Y, index_t n, index_t n_pad, const std::vector<std::int64_t>& rows,
                  std::uint64_t seed, T* out) {
  const index_t m = static_cast<index_t>(rows.size()), d = Y.cols;
  KF_REQUIRE(Y.rows == m, "Y must have ", m, " rows, got ", Y.rows);
  const index_t c = sizeof(T) == 4 ? 16 : 8;
  const index_t panels = (d + c - 1) / c;
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(m)));
  const std::size_t work = static_cast<std::size_t>(n_pad) * static_cast<std::size_t>(d) * 4;
  const int nt = std::min<int>(threads_for(work), static_cast<int>(std::max<index_t>(panels, 1)));
  ParallelGuard guard;
#pragma omp parallel num_threads(nt)
  {
    std::vector<T> buf;
    guard.run([&] { buf.resize(static_cast<std::size_t>(n_pad * c)); });
#pragma omp for schedule(dynamic, 1)
    for (index_t p = 0; p < panels; ++p) {
      if (guard.failed()) continue;
      const index_t k0 = p * c, w = std::min(c, d - k0);
      std::fill(buf.begin(), buf.end(), T(0));
      for (index_t r = 0; r < m; ++r)
        for (index_t t = 0; t < w; ++t) buf[rows[r] * c + t] = Y(r, k0 + t);
      fwht_panel(buf.data(), n_pad, c);
      for (index_t j = 0; j < n; ++j) {
        const T s = scale * static_cast<T>(srht_sign(seed, j));
        for (index_t t = 0; t < w; ++t) out[j * d + k0 + t] = s * buf[j * c + t];
      }
    }
  }
  guard.rethrow();
}

}  // namespace sketch
}  // namespace kf
