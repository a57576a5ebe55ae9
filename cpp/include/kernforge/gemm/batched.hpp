// Batched small GEMM: C_b = alpha * A_b * B_b + beta * C_b for a stack of small matrices (the
// strided-batch form of MKL's cblas_?gemm_batch_strided). Operands are L1-resident, so nothing is
// packed: compile-time M x N x K kernels (libxsmm's idea without the JIT: rows blocked so that at
// most 12 accumulators live in registers, k unrolled) for common sizes, and the general GEMM driver
// (single-threaded per matrix) for everything else. Parallel over the batch; each matrix is
// computed by one thread, so results do not depend on the thread count.
//
// Per-matrix element offsets (not a single batch stride) let the Python layer express any
// broadcast of the batch dimensions (offset repeated = stride 0) without copying.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <map>
#include <tuple>

#include "kernforge/common/errors.hpp"
#include "kernforge/common/threads.hpp"
#include "kernforge/gemm/gemm.hpp"

namespace kf {
namespace gemm {

template <class T>
using SmallKernel = void (*)(const T* a, index_t rsa, index_t csa, const T* b, index_t rsb, T* c, index_t rsc,
                             T alpha, T beta);

#ifdef KF_GEMM_X86
// RB rows x CV vectors of C, depth K; B and C rows are contiguous (column stride 1).
#define KF_SMALL_ROWS_BODY                                                      \
  using V = typename S::V;                                                      \
  V acc[RB][CV];                                                                \
  _Pragma("GCC unroll 16") for (int i = 0; i < RB; ++i)                         \
      _Pragma("GCC unroll 8") for (int v = 0; v < CV; ++v) acc[i][v] = S::zero(); \
  _Pragma("GCC unroll 4") for (int p = 0; p < K; ++p) {                         \
    V bv[CV];                                                                   \
    _Pragma("GCC unroll 8") for (int v = 0; v < CV; ++v) bv[v] = S::loadu(b + p * rsb + v * S::W); \
    _Pragma("GCC unroll 16") for (int i = 0; i < RB; ++i) {                     \
      const V ai = S::bcast(a + i * rsa + p * csa);                             \
      _Pragma("GCC unroll 8") for (int v = 0; v < CV; ++v) acc[i][v] = S::fmadd(ai, bv[v], acc[i][v]); \
    }                                                                           \
  }                                                                             \
  const V va = S::set1(alpha);                                                  \
  if (beta == typename S::T(0)) {                                               \
    _Pragma("GCC unroll 16") for (int i = 0; i < RB; ++i)                       \
        _Pragma("GCC unroll 8") for (int v = 0; v < CV; ++v)                    \
            S::storeu(c + i * rsc + v * S::W, S::mul(va, acc[i][v]));           \
  } else {                                                                      \
    const V vb = S::set1(beta);                                                 \
    _Pragma("GCC unroll 16") for (int i = 0; i < RB; ++i)                       \
        _Pragma("GCC unroll 8") for (int v = 0; v < CV; ++v) {                  \
      typename S::T* cp = c + i * rsc + v * S::W;                               \
      S::storeu(cp, S::add(S::mul(vb, S::loadu(cp)), S::mul(va, acc[i][v])));   \
    }                                                                           \
  }

template <class S, int RB, int CV, int K>
__attribute__((target("avx2,fma"))) inline void small_rows(const typename S::T* a, index_t rsa, index_t csa,
                                                           const typename S::T* b, index_t rsb, typename S::T* c,
                                                           index_t rsc, typename S::T alpha, typename S::T beta) {
  KF_SMALL_ROWS_BODY
}
#undef KF_SMALL_ROWS_BODY

template <class S, int M, int N, int K>
__attribute__((target("avx2,fma"))) void small_fixed(const typename S::T* a, index_t rsa, index_t csa,
                                                     const typename S::T* b, index_t rsb, typename S::T* c,
                                                     index_t rsc, typename S::T alpha, typename S::T beta) {
  constexpr int NV = N / S::W;
  constexpr int CV = NV < 4 ? NV : 4;
  constexpr int RB0 = 12 / CV;
  constexpr int RB = RB0 < M ? RB0 : M;
  constexpr int FULL = M / RB * RB;
  constexpr int REM = M - FULL;
  static_assert(N % S::W == 0 && NV % CV == 0, "N must be a multiple of the vector width");
  for (int v0 = 0; v0 < NV; v0 += CV) {
    const int j0 = v0 * S::W;
    for (int i0 = 0; i0 < FULL; i0 += RB)
      small_rows<S, RB, CV, K>(a + i0 * rsa, rsa, csa, b + j0, rsb, c + i0 * rsc + j0, rsc, alpha, beta);
    if constexpr (REM > 0)
      small_rows<S, REM, CV, K>(a + FULL * rsa, rsa, csa, b + j0, rsb, c + FULL * rsc + j0, rsc, alpha, beta);
  }
}

template <class S, int M, int N, int K>
void add_small(std::map<std::array<int, 3>, SmallKernel<typename S::T>>& t) {
  if constexpr (N % S::W == 0) t[{M, N, K}] = &small_fixed<S, M, N, K>;
}
template <class S, int M, int N, int... Ks>
void add_small_k(std::map<std::array<int, 3>, SmallKernel<typename S::T>>& t) {
  (add_small<S, M, N, Ks>(t), ...);
}
template <class S, int M, int... Ns>
void add_small_nk(std::map<std::array<int, 3>, SmallKernel<typename S::T>>& t) {
  (add_small_k<S, M, Ns, 4, 8, 16, 32>(t), ...);
}
template <class S, int... Ms>
void add_small_mnk(std::map<std::array<int, 3>, SmallKernel<typename S::T>>& t) {
  (add_small_nk<S, Ms, 4, 8, 16, 32>(t), ...);
}
#endif

// Direct product for small matrices of any size and strides (n <= kSmallN): one row of C at a
// time in a stack accumulator, the j loop vectorised by the compiler (AVX2+FMA in the dispatched
// copy). No packing and no blocking: everything is L1-resident.
constexpr index_t kSmallN = 128;

#define KF_SMALL_DIRECT_BODY                                                        \
  T acc[kSmallN];                                                                   \
  for (index_t i = 0; i < m; ++i) {                                                 \
    for (index_t j = 0; j < n; ++j) acc[j] = T(0);                                  \
    for (index_t p = 0; p < k; ++p) {                                               \
      const T a = A[i * rsa + p * csa];                                             \
      const T* b = B + p * rsb;                                                     \
      if (csb == 1) {                                                               \
        for (index_t j = 0; j < n; ++j) acc[j] += a * b[j];                         \
      } else {                                                                      \
        for (index_t j = 0; j < n; ++j) acc[j] += a * b[j * csb];                   \
      }                                                                             \
    }                                                                               \
    T* c = C + i * rsc;                                                             \
    if (beta == T(0)) {                                                             \
      for (index_t j = 0; j < n; ++j) c[j * csc] = alpha * acc[j];                  \
    } else {                                                                        \
      for (index_t j = 0; j < n; ++j) c[j * csc] = beta * c[j * csc] + alpha * acc[j]; \
    }                                                                               \
  }

template <class T>
void small_direct_generic(index_t m, index_t n, index_t k, T alpha, const T* A, index_t rsa, index_t csa, const T* B,
                          index_t rsb, index_t csb, T beta, T* C, index_t rsc, index_t csc) {
  KF_SMALL_DIRECT_BODY
}
#ifdef KF_GEMM_X86
// RB rows x CV vectors with a run-time depth, B~ rows padded to whole vectors (ldb), C tile out.
template <class S, int RB, int CV>
__attribute__((target("avx2,fma"))) inline void rows_rt(index_t k, const typename S::T* a, index_t rsa, index_t csa,
                                                        const typename S::T* b, index_t ldb, typename S::T* c,
                                                        index_t ldc) {
  using V = typename S::V;
  V acc[RB][CV];
#pragma GCC unroll 16
  for (int i = 0; i < RB; ++i)
#pragma GCC unroll 8
    for (int v = 0; v < CV; ++v) acc[i][v] = S::zero();
  for (index_t p = 0; p < k; ++p) {
    V bv[CV];
#pragma GCC unroll 8
    for (int v = 0; v < CV; ++v) bv[v] = S::loadu(b + p * ldb + v * S::W);
#pragma GCC unroll 16
    for (int i = 0; i < RB; ++i) {
      const V ai = S::bcast(a + i * rsa + p * csa);
#pragma GCC unroll 8
      for (int v = 0; v < CV; ++v) acc[i][v] = S::fmadd(ai, bv[v], acc[i][v]);
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < RB; ++i)
#pragma GCC unroll 8
    for (int v = 0; v < CV; ++v) S::storeu(c + i * ldc + v * S::W, acc[i][v]);
}

template <class S, int CV>
__attribute__((target("avx2,fma"))) inline void rows_block(index_t m, index_t k, const typename S::T* a, index_t rsa,
                                                           index_t csa, const typename S::T* b, index_t ldb,
                                                           typename S::T* c, index_t ldc) {
  constexpr int RB = 12 / CV;
  index_t i = 0;
  for (; i + RB <= m; i += RB) rows_rt<S, RB, CV>(k, a + i * rsa, rsa, csa, b, ldb, c + i * ldc, ldc);
  switch (m - i) {  // remainder rows: 0 .. RB-1 (RB <= 12)
    case 11: rows_rt<S, 11, CV>(k, a + i * rsa, rsa, csa, b, ldb, c + i * ldc, ldc); break;
    case 10: rows_rt<S, 10, CV>(k, a + i * rsa, rsa, csa, b, ldb, c + i * ldc, ldc); break;
    case 9: rows_rt<S, 9, CV>(k, a + i * rsa, rsa, csa, b, ldb, c + i * ldc, ldc); break;
    case 8: rows_rt<S, 8, CV>(k, a + i * rsa, rsa, csa, b, ldb, c + i * ldc, ldc); break;
    case 7: rows_rt<S, 7, CV>(k, a + i * rsa, rsa, csa, b, ldb, c + i * ldc, ldc); break;
    case 6: rows_rt<S, 6, CV>(k, a + i * rsa, rsa, csa, b, ldb, c + i * ldc, ldc); break;
    case 5: rows_rt<S, 5, CV>(k, a + i * rsa, rsa, csa, b, ldb, c + i * ldc, ldc); break;
    case 4: rows_rt<S, 4, CV>(k, a + i * rsa, rsa, csa, b, ldb, c + i * ldc, ldc); break;
    case 3: rows_rt<S, 3, CV>(k, a + i * rsa, rsa, csa, b, ldb, c + i * ldc, ldc); break;
    case 2: rows_rt<S, 2, CV>(k, a + i * rsa, rsa, csa, b, ldb, c + i * ldc, ldc); break;
    case 1: rows_rt<S, 1, CV>(k, a + i * rsa, rsa, csa, b, ldb, c + i * ldc, ldc); break;
    default: break;
  }
}

// Small product of any size (m, k <= 64, n <= kSmallN) and strides: B copied into a zero-padded
// L1 buffer with whole-vector rows, register-blocked rows of A read in place, a C tile written
// back with alpha and beta.
template <class T>
__attribute__((target("avx2,fma"))) void small_direct_avx2(index_t m, index_t n, index_t k, T alpha, const T* A,
                                                           index_t rsa, index_t csa, const T* B, index_t rsb,
                                                           index_t csb, T beta, T* C, index_t rsc, index_t csc) {
  using S = typename Simd<T>::Avx2;
  constexpr int W = S::W;
  const index_t npad = (n + W - 1) / W * W;
  T* bb = scratch<T, 4>(static_cast<std::size_t>(k * npad + m * npad));
  T* ct = bb + k * npad;
  for (index_t p = 0; p < k; ++p) {
    const T* src = B + p * rsb;
    T* d = bb + p * npad;
    index_t j = 0;
    if (csb == 1)
      for (; j < n; ++j) d[j] = src[j];
    else
      for (; j < n; ++j) d[j] = src[j * csb];
    for (; j < npad; ++j) d[j] = T(0);
  }
  for (index_t j0 = 0; j0 < npad; j0 += 4 * W) {
    const index_t cv = std::min<index_t>(4, (npad - j0) / W);
    switch (cv) {
      case 4: rows_block<S, 4>(m, k, A, rsa, csa, bb + j0, npad, ct + j0, npad); break;
      case 3: rows_block<S, 3>(m, k, A, rsa, csa, bb + j0, npad, ct + j0, npad); break;
      case 2: rows_block<S, 2>(m, k, A, rsa, csa, bb + j0, npad, ct + j0, npad); break;
      default: rows_block<S, 1>(m, k, A, rsa, csa, bb + j0, npad, ct + j0, npad); break;
    }
  }
  for (index_t i = 0; i < m; ++i) {
    T* c = C + i * rsc;
    const T* t = ct + i * npad;
    if (beta == T(0)) {
      for (index_t j = 0; j < n; ++j) c[j * csc] = alpha * t[j];
    } else {
      for (index_t j = 0; j < n; ++j) c[j * csc] = beta * c[j * csc] + alpha * t[j];
    }
  }
}

#endif
#undef KF_SMALL_DIRECT_BODY

template <class T>
void small_direct(index_t m, index_t n, index_t k, T alpha, const T* A, index_t rsa, index_t csa, const T* B,
                  index_t rsb, index_t csb, T beta, T* C, index_t rsc, index_t csc, Isa isa) {
#ifdef KF_GEMM_X86
  if (isa != Isa::generic) return small_direct_avx2<T>(m, n, k, alpha, A, rsa, csa, B, rsb, csb, beta, C, rsc, csc);
#endif
  (void)isa;
  small_direct_generic<T>(m, n, k, alpha, A, rsa, csa, B, rsb, csb, beta, C, rsc, csc);
}

// The fixed-size kernel for (m, n, k) at this ISA, or nullptr (then the general driver runs).
template <class T>
SmallKernel<T> small_kernel(index_t m, index_t n, index_t k, Isa isa) {
#ifdef KF_GEMM_X86
  static const std::map<std::array<int, 3>, SmallKernel<T>> table = [] {
    std::map<std::array<int, 3>, SmallKernel<T>> t;
    add_small_mnk<typename Simd<T>::Avx2, 4, 8, 16, 32>(t);
    return t;
  }();
  if (isa == Isa::generic || m > 64 || n > 64 || k > 64) return nullptr;
  auto it = table.find({static_cast<int>(m), static_cast<int>(n), static_cast<int>(k)});
  return it == table.end() ? nullptr : it->second;
#else
  (void)m, (void)n, (void)k, (void)isa;
  return nullptr;
#endif
}

// One product, choosing the path: tiny problems (everything in L1, m, k <= 64, n <= kSmallN and at
// most 32^3 multiply-adds) skip packing and threading altogether; the rest go to the blocked driver.
// Explicit tiles always take the blocked driver (tile_sweep measures it).
template <class T>
void matmul(index_t m, index_t n, index_t k, T alpha, const T* A, index_t rsa, index_t csa, const T* B, index_t rsb,
            index_t csb, T beta, T* C, index_t rsc, index_t csc, const Tiles& tiles = Tiles(), bool tiles_given = false,
            int nthreads = 0, Isa isa = active_isa()) {
  if (!tiles_given && alpha != T(0) && m > 0 && n > 0 && k > 0 && m <= 64 && k <= 64 && n <= kSmallN &&
      m * n * k <= 32768) {
    small_direct<T>(m, n, k, alpha, A, rsa, csa, B, rsb, csb, beta, C, rsc, csc, isa);
    return;
  }
  gemm<T>(m, n, k, alpha, A, rsa, csa, B, rsb, csb, beta, C, rsc, csc, tiles, nthreads, isa);
}

// The operands of matrix b are A + offa[b] etc. (offsets in elements; repeated offsets broadcast).
// C's matrices must not overlap each other or A/B (checked by the caller).
template <class T>
void batched_gemm(index_t batch, index_t m, index_t n, index_t k, T alpha, const T* A, const std::int64_t* offa,
                  index_t rsa, index_t csa, const T* B, const std::int64_t* offb, index_t rsb, index_t csb, T beta,
                  T* C, const std::int64_t* offc, index_t rsc, index_t csc, bool use_fixed = true,
                  Isa isa = active_isa()) {
  if (batch == 0 || m == 0 || n == 0) return;
  SmallKernel<T> fk = nullptr;
  if (use_fixed && alpha != T(0) && k > 0) {
    if (csb == 1 && csc == 1) fk = small_kernel<T>(m, n, k, isa);
  }
  // alpha == 0 or k == 0 must not read A or B (BLAS): the general driver handles that case.
  const bool direct = !fk && alpha != T(0) && k > 0 && n <= kSmallN && m <= 64 && k <= 64;
  const double flops = 2.0 * double(batch) * double(m) * double(n) * double(std::max<index_t>(k, 1));
  const std::size_t work = flops > 1e18 ? std::size_t(1e18) : static_cast<std::size_t>(flops);
  const int nt = omp_in_parallel_region() ? 1 : threads_for(work, std::size_t(1) << 20);
  if (!fk && !direct && nt > 1 && batch < 2 * nt) {
    // A few large matrices: parallel inside each product instead (the result is the same).
    for (index_t b = 0; b < batch; ++b)
      gemm<T>(m, n, k, alpha, A + offa[b], rsa, csa, B + offb[b], rsb, csb, beta, C + offc[b], rsc, csc, Tiles(), 0,
              isa);
    return;
  }
  ParallelGuard guard;
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
  for (index_t b = 0; b < batch; ++b) {
    guard.run([&] {
      if (fk) {
        fk(A + offa[b], rsa, csa, B + offb[b], rsb, C + offc[b], rsc, alpha, beta);
      } else if (direct) {
        small_direct<T>(m, n, k, alpha, A + offa[b], rsa, csa, B + offb[b], rsb, csb, beta, C + offc[b], rsc, csc,
                        isa);
      } else {
        gemm<T>(m, n, k, alpha, A + offa[b], rsa, csa, B + offb[b], rsb, csb, beta, C + offc[b], rsc, csc, Tiles(),
                1, isa);
      }
    });
  }
  guard.rethrow();
}

}  // namespace gemm
}  // namespace kf
