// Sparse sketching operators S (m x n) and their application S A to dense or sparse A.
//
// Three families, all stored column by column (column j of S says where row j of A goes):
//   * CountSketch (Clarkson & Woodruff, 2013): one +-1 per column, at a uniformly random row.
//   * Sparse sign embedding (SASO / OSNAP, Nelson & Nguyen 2013; RandBLAS' SparseSkOp): k distinct
//     rows per column, values +-1/sqrt(k).
//   * Very sparse random projection (Li, Hastie & Church, 2006): every entry independently
//     +-sqrt(s/m) with probability 1/(2s) each, 0 otherwise (s = sqrt(n) by default); the
//     projection FastRP and scikit-learn's SparseRandomProjection use.
// Column j is generated from kf::Rng(seed, j) alone, so S does not depend on the thread count or
// on which columns were asked for first. All have E[S^T S] = I.
//
// Application never forms a dense S: S A is a sparse-times-dense (or sparse-times-sparse) product
// parallel over output rows (S in CSR, A read by rows) or over output columns (S in CSC, A read
// by columns); each output entry is summed by one thread in a fixed order, so the result is
// bitwise identical for any thread count.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernforge/common/config.hpp"
#include "kernforge/common/errors.hpp"
#include "kernforge/common/rng.hpp"
#include "kernforge/common/threads.hpp"
#include "kernforge/common/views.hpp"

namespace kf {
namespace sketch {

enum class SparseKind { countsketch, sparse_sign, very_sparse };

inline SparseKind parse_sparse_kind(const std::string& s) {
  if (s == "countsketch") return SparseKind::countsketch;
  if (s == "sparse_sign") return SparseKind::sparse_sign;
  if (s == "very_sparse") return SparseKind::very_sparse;
  throw_invalid("kind must be 'countsketch', 'sparse_sign' or 'very_sparse', got '", s, "'");
}

// A compressed sparse matrix with 64-bit indices: CSC of S (ptr over n columns, idx = rows) or
// CSR of S (ptr over m rows, idx = columns).
struct SparseSketch {
  index_t m = 0, n = 0;
  std::vector<std::int64_t> ptr;
  std::vector<std::int64_t> idx;
  std::vector<double> val;
};

namespace detail {

// k distinct rows out of m for column j (Floyd's algorithm), sorted.
inline void distinct_rows(Rng& rng, index_t m, index_t k, std::int64_t* out) {
  index_t filled = 0;
  for (index_t t = m - k; t < m; ++t) {
    const auto r = static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(t + 1)));
    bool seen = false;
    for (index_t q = 0; q < filled; ++q) seen |= (out[q] == r);
    out[filled++] = seen ? static_cast<std::int64_t>(t) : r;
  }
  std::sort(out, out + k);
}

// Rows of column j of a very sparse projection: geometric gaps with success probability p.
template <class F>
void very_sparse_column(Rng& rng, index_t m, double p, F&& emit) {
  if (p >= 1.0) {
    for (index_t i = 0; i < m; ++i) emit(i, rng.sign());
    return;
  }
  const double log_q = std::log1p(-p);
  index_t i = -1;
  for (;;) {
    double u = rng.uniform();
    if (u <= 0.0) u = 0x1.0p-53;
    const double gap = std::floor(std::log(u) / log_q);
    if (gap >= static_cast<double>(m)) return;
    i += 1 + static_cast<index_t>(gap);
    if (i >= m) return;
    emit(i, rng.sign());
  }
}

}  // namespace detail

// Build S (m x n) in CSC form. `param`: unused for CountSketch, nnz per column for the sparse
// sign embedding, the sparsity s (density 1/s) for the very sparse projection.
inline SparseSketch build_sparse_sketch(SparseKind kind, index_t m, index_t n, double param, std::uint64_t seed) {
  KF_REQUIRE(m >= 1, "m must be >= 1, got ", m);
  KF_REQUIRE(n >= 1, "n must be >= 1, got ", n);
  SparseSketch S;
  S.m = m;
  S.n = n;
  S.ptr.assign(static_cast<std::size_t>(n) + 1, 0);
  const int nt = threads_for(static_cast<std::size_t>(n) * 8);
  if (kind == SparseKind::countsketch || kind == SparseKind::sparse_sign) {
    const index_t k = kind == SparseKind::countsketch ? 1 : static_cast<index_t>(param);
    KF_REQUIRE(k >= 1 && k <= m, "nnz_per_col must lie in [1, m] = [1, ", m, "], got ", param);
    const double scale = 1.0 / std::sqrt(static_cast<double>(k));
    S.idx.resize(static_cast<std::size_t>(n * k));
    S.val.resize(static_cast<std::size_t>(n * k));
    for (index_t j = 0; j <= n; ++j) S.ptr[j] = j * k;
#pragma omp parallel for schedule(static) num_threads(nt)
    for (index_t j = 0; j < n; ++j) {
      Rng rng(seed, static_cast<std::uint64_t>(j));
      std::int64_t* rows = S.idx.data() + j * k;
      if (k == 1) {
        rows[0] = static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(m)));
      } else {
        detail::distinct_rows(rng, m, k, rows);
      }
      for (index_t q = 0; q < k; ++q) S.val[j * k + q] = scale * rng.sign();
    }
    return S;
  }
  // Very sparse projection: two passes (count, then fill) regenerate each column from its stream.
  const double s = param;
  KF_REQUIRE(s >= 1.0, "density must lie in (0, 1], got 1/", s);
  const double p = 1.0 / s;
  const double scale = std::sqrt(s / static_cast<double>(m));
  std::vector<std::int64_t> counts(static_cast<std::size_t>(n));
#pragma omp parallel for schedule(static) num_threads(nt)
  for (index_t j = 0; j < n; ++j) {
    Rng rng(seed, static_cast<std::uint64_t>(j));
    std::int64_t c = 0;
    detail::very_sparse_column(rng, m, p, [&](index_t, double) { ++c; });
    counts[j] = c;
  }
  for (index_t j = 0; j < n; ++j) S.ptr[j + 1] = S.ptr[j] + counts[j];
  S.idx.resize(static_cast<std::size_t>(S.ptr[n]));
  S.val.resize(static_cast<std::size_t>(S.ptr[n]));
#pragma omp parallel for schedule(static) num_threads(nt)
  for (index_t j = 0; j < n; ++j) {
    Rng rng(seed, static_cast<std::uint64_t>(j));
    std::int64_t q = S.ptr[j];
    detail::very_sparse_column(rng, m, p, [&](index_t i, double sg) {
      S.idx[q] = i;
      S.val[q] = scale * sg;
      ++q;
    });
  }
  return S;
}

// CSC (ptr over n columns) -> CSR (ptr over m rows), or back: a stable counting sort, so the
// indices within every row come out sorted.
inline SparseSketch transpose(const SparseSketch& C, index_t n_out_rows, index_t n_in_rows) {
  SparseSketch R;
  R.m = C.m;
  R.n = C.n;
  const std::size_t nnz = C.idx.size();
  R.ptr.assign(static_cast<std::size_t>(n_out_rows) + 1, 0);
  R.idx.resize(nnz);
  R.val.resize(nnz);
  for (std::size_t q = 0; q < nnz; ++q) ++R.ptr[static_cast<std::size_t>(C.idx[q]) + 1];
  for (index_t i = 0; i < n_out_rows; ++i) R.ptr[i + 1] += R.ptr[i];
  std::vector<std::int64_t> next(R.ptr.begin(), R.ptr.end() - 1);
  for (index_t j = 0; j < n_in_rows; ++j)
    for (std::int64_t q = C.ptr[j]; q < C.ptr[j + 1]; ++q) {
      const auto pos = next[static_cast<std::size_t>(C.idx[q])]++;
      R.idx[pos] = j;
      R.val[pos] = C.val[q];
    }
  return R;
}

// A compressed matrix with 64-bit indices and values of type T, borrowed.
template <class T>
struct Compressed64 {
  index_t outer = 0;  // number of compressed rows (CSR) or columns (CSC)
  const std::int64_t* ptr = nullptr;
  const std::int64_t* idx = nullptr;
  const T* val = nullptr;
};

// out (rows x d, row-major, row stride ld) = S A with S given by rows (CSR over its m rows) and A
// a strided dense matrix. Each output row is owned by one thread.
template <class T>
void apply_rows_dense(const Compressed64<T>& S, const MatrixView<const T>& A, T* out, index_t ld) {
  const index_t m = S.outer, d = A.cols;
  const std::size_t work = static_cast<std::size_t>(S.ptr[m]) * static_cast<std::size_t>(d);
  const index_t cs = A.col_stride;
#pragma omp parallel for schedule(dynamic, 16) num_threads(threads_for(work))
  for (index_t i = 0; i < m; ++i) {
    T* __restrict o = out + i * ld;
    for (index_t k = 0; k < d; ++k) o[k] = T(0);
    for (std::int64_t q = S.ptr[i]; q < S.ptr[i + 1]; ++q) {
      const T v = S.val[q];
      const T* __restrict a = A.data + S.idx[q] * A.row_stride;
      if (cs == 1) {
#pragma omp simd
        for (index_t k = 0; k < d; ++k) o[k] += v * a[k];
      } else {
        for (index_t k = 0; k < d; ++k) o[k] += v * a[k * cs];
      }
    }
  }
}

// out (m x d, row-major) = S A with S given by columns (CSC) and A a dense matrix with contiguous
// rows, streamed once in order: row j of A is scattered into the output rows of column j of S.
// This beats apply_rows_dense (a gather of random rows of A) when A does not fit in cache.
//
// Parallel split: A is cut into a fixed number of chunks of consecutive rows (a power of two
// that depends on n and m only, never on the thread count); each chunk scatters into its own
// partial product (chunk 0 straight into out), and the partials are then added in chunk order.
// So every output entry has the same summation order for any thread count (bitwise
// reproducible), and each thread streams long contiguous pieces of A. (Splitting the columns
// instead makes every thread walk all rows of A, touching half of each row: on two cores that ran
// slower than one thread.) The chunk count keeps the partials (nchunks m d) small next to A (n d).
// CountSketch (one nonzero per column of S) needs no partials: thread t owns a range of output
// rows (buckets) and adds, in increasing j, exactly the rows of A that land there, so each row of
// A is read by one thread, each output entry has the 1-thread summation order, and the owned
// output block is a fraction of m d (cache-resident). The next rows are prefetched because the
// owned rows of A are a random subset.
template <class T>
bool countsketch_scatter_dense(const Compressed64<T>& S, index_t m, const MatrixView<const T>& A, T* out) {
  const index_t n = S.outer, d = A.cols;
  for (index_t j = 0; j <= n; ++j)
    if (S.ptr[j] != j) return false;
  const std::size_t work = static_cast<std::size_t>(n) * static_cast<std::size_t>(d);
  const int nt = std::max(1, std::min<int>(threads_for(work), static_cast<int>(m)));
  const index_t rs = A.row_stride;
  const std::int64_t* __restrict idx = S.idx;
  const T* __restrict val = S.val;
  constexpr index_t ahead = 4;
  ParallelGuard guard;  // the per-thread row list allocates
#pragma omp parallel num_threads(nt)
  guard.run([&] {
    const int t = omp_thread_id(), T_ = omp_team_size();
    const std::int64_t i0 = m * t / T_, i1 = m * (t + 1) / T_;
    std::fill(out + i0 * d, out + i1 * d, T(0));
    std::vector<index_t> mine;
    mine.reserve(static_cast<std::size_t>(n / T_ + 16));
    for (index_t j = 0; j < n; ++j)
      if (idx[j] >= i0 && idx[j] < i1) mine.push_back(j);
    const index_t cnt = static_cast<index_t>(mine.size());
    const index_t line = static_cast<index_t>(64 / sizeof(T));
    for (index_t p = 0; p < cnt; ++p) {
      if (p + ahead < cnt) {
        const T* nxt = A.data + mine[p + ahead] * rs;
        for (index_t q = 0; q < d; q += line) __builtin_prefetch(nxt + q, 0, 0);
      }
      const index_t j = mine[p];
      const T v = val[j];
      const T* __restrict a = A.data + j * rs;
      T* __restrict orow = out + idx[j] * d;
#pragma omp simd
      for (index_t k = 0; k < d; ++k) orow[k] += v * a[k];
    }
  });
  guard.rethrow();
  return true;
}

template <class T>
void apply_scatter_dense(const Compressed64<T>& S, index_t m, const MatrixView<const T>& A, T* out) {
  if (countsketch_scatter_dense(S, m, A, out)) return;
  const index_t n = S.outer, d = A.cols;
  const std::size_t md = static_cast<std::size_t>(m) * static_cast<std::size_t>(d);
  index_t nchunks = 1;
  while (nchunks < 16 && n / (2 * nchunks) >= 16 * m) nchunks *= 2;
  const index_t chunk = (n + nchunks - 1) / nchunks;
  // Not value-initialised: each chunk clears its own partial inside the parallel loop (one pass,
  // first touched by the thread that uses it).
  std::unique_ptr<T[]> part(new T[static_cast<std::size_t>(nchunks - 1) * md]);
  const std::size_t work = static_cast<std::size_t>(S.ptr[n]) * static_cast<std::size_t>(d);
  const int nt = std::max(1, std::min<int>(threads_for(work), static_cast<int>(nchunks)));
  const index_t rs = A.row_stride;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
  for (index_t c = 0; c < nchunks; ++c) {
    T* __restrict o = c == 0 ? out : part.get() + static_cast<std::size_t>(c - 1) * md;
    std::fill(o, o + md, T(0));
    const index_t j1 = std::min(n, (c + 1) * chunk);
    for (index_t j = c * chunk; j < j1; ++j) {
      const T* __restrict a = A.data + j * rs;
      for (std::int64_t q = S.ptr[j]; q < S.ptr[j + 1]; ++q) {
        const T v = S.val[q];
        T* __restrict orow = o + S.idx[q] * d;
#pragma omp simd
        for (index_t k = 0; k < d; ++k) orow[k] += v * a[k];
      }
    }
  }
  if (nchunks > 1) {
    const index_t blk = 4096;
    const index_t nblk = static_cast<index_t>((md + blk - 1) / blk);
#pragma omp parallel for schedule(static) num_threads(threads_for(md * static_cast<std::size_t>(nchunks)))
    for (index_t b = 0; b < nblk; ++b) {
      const std::size_t e0 = static_cast<std::size_t>(b) * blk, e1 = std::min(md, e0 + blk);
      for (index_t c = 1; c < nchunks; ++c) {
        const T* __restrict p = part.get() + static_cast<std::size_t>(c - 1) * md;
#pragma omp simd
        for (std::size_t e = e0; e < e1; ++e) out[e] += p[e];
      }
    }
  }
}

// out (rows x d, row-major) = S A, S by rows, A in CSR (indices of type I).
template <class T, class I>
void apply_rows_csr(const Compressed64<T>& S, const CsrView<T, I>& A, T* out) {
  const index_t m = S.outer, d = A.cols;
  const std::size_t work = static_cast<std::size_t>(S.ptr[m]) * 4 + static_cast<std::size_t>(m) * d;
#pragma omp parallel for schedule(dynamic, 16) num_threads(threads_for(work))
  for (index_t i = 0; i < m; ++i) {
    T* __restrict o = out + i * d;
    for (index_t k = 0; k < d; ++k) o[k] = T(0);
    for (std::int64_t q = S.ptr[i]; q < S.ptr[i + 1]; ++q) {
      const T v = S.val[q];
      const auto j = S.idx[q];
      for (auto p = A.indptr[j]; p < A.indptr[j + 1]; ++p) o[A.indices[p]] += v * A.data[p];
    }
  }
}

// out (m x d, column-major: out[i + k * m]) = S A with S given by columns (CSC over its n
// columns) and A a strided dense matrix read column by column. Threads own contiguous groups of
// output columns (each entry summed by one thread in row order: any thread count gives the same
// bits). Rows are taken in blocks whose slice of S (ptr, idx, val) stays in L1 while it is reused
// for every column of the group; one nonzero per column of S (CountSketch) skips the ptr lookups.
template <class T>
void apply_cols_dense(const Compressed64<T>& S, index_t m, const MatrixView<const T>& A, T* out) {
  const index_t n = S.outer, d = A.cols;
  const std::size_t work = static_cast<std::size_t>(S.ptr[n]) * static_cast<std::size_t>(d);
  bool one_per_col = S.ptr[n] == n;
  for (index_t j = 0; one_per_col && j < n; ++j) one_per_col = S.ptr[j] == j;
  const int nt = std::max(1, std::min<int>(threads_for(work), static_cast<int>(d)));
  const index_t rs = A.row_stride, cs = A.col_stride;
  constexpr index_t RB = 1024;
#pragma omp parallel num_threads(nt)
  {
    const int t = omp_thread_id(), T_ = omp_team_size();
    const index_t k0 = d * t / T_, k1 = d * (t + 1) / T_;
    for (index_t k = k0; k < k1; ++k) std::fill(out + k * m, out + (k + 1) * m, T(0));
    for (index_t j0 = 0; j0 < n; j0 += RB) {
      const index_t j1 = std::min(n, j0 + RB);
      for (index_t k = k0; k < k1; ++k) {
        T* __restrict o = out + k * m;
        const T* __restrict a = A.data + k * cs;
        if (one_per_col) {
          const std::int64_t* __restrict idx = S.idx;
          const T* __restrict val = S.val;
          for (index_t j = j0; j < j1; ++j) o[idx[j]] += val[j] * a[j * rs];
        } else {
          for (index_t j = j0; j < j1; ++j) {
            const T x = a[j * rs];
            if (x == T(0)) continue;
            for (std::int64_t q = S.ptr[j]; q < S.ptr[j + 1]; ++q) o[S.idx[q]] += S.val[q] * x;
          }
        }
      }
    }
  }
}

// out (m x d, column-major) = S A, S by columns, A in CSC (A^T given as a CSR view: d rows).
template <class T, class I>
void apply_cols_csc(const Compressed64<T>& S, index_t m, const CsrView<T, I>& At, T* out) {
  const index_t d = At.rows;
  const std::size_t work = static_cast<std::size_t>(At.nnz()) * 4 + static_cast<std::size_t>(m) * d;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads_for(work))
  for (index_t k = 0; k < d; ++k) {
    T* __restrict o = out + k * m;
    for (index_t i = 0; i < m; ++i) o[i] = T(0);
    for (auto p = At.indptr[k]; p < At.indptr[k + 1]; ++p) {
      const auto j = At.indices[p];
      const T x = At.data[p];
      for (std::int64_t q = S.ptr[j]; q < S.ptr[j + 1]; ++q) o[S.idx[q]] += S.val[q] * x;
    }
  }
}

}  // namespace sketch
}  // namespace kf
