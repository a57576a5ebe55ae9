// Register-blocked GEMM micro-kernels: C[MR x NR] (beta) += A_sliver[MR x kc] * B~[kc x NR].
//
// B~ is always packed (per p, NR consecutive values, 64-byte aligned, zero-padded, alpha folded in).
// A is either packed (per p, MR consecutive values) or read in place through its strides (the
// "unpacked" path of BLIS's sup kernels for skinny and small shapes, where packing A dominates).
// Structure after Goto & van de Geijn, "Anatomy of High-Performance Matrix Multiplication" (2008),
// and Van Zee & van de Geijn, "BLIS" (2015): per p, load NR/W vectors of B~, broadcast each of the
// MR values of A and FMA into MR*NR/W accumulators that live in registers.
//
// Three families behind run-time dispatch (kf::active_isa()): portable C++ (the compiler vectorises
// for baseline x86-64), AVX2+FMA and AVX-512 via __attribute__((target)), so the default build needs
// no -march flag. The store applies beta: beta == 0 never reads C (BLAS semantics; NaN in C is
// overwritten), otherwise C = beta*C + acc.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <chrono>
#include <vector>

#include "kernforge/common/cpu.hpp"
#include "kernforge/common/simd.hpp"
#include "kernforge/common/views.hpp"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define KF_GEMM_X86 1
#endif

namespace kf {
namespace gemm {

// kc, A (pointer, row stride, col stride; ignored when packed), packed B~, C tile (row stride;
// col stride 1), beta.
template <class T>
using MicroKernel = void (*)(index_t kc, const T* a, index_t rsa, index_t csa, const T* b, T* c,
                             index_t rsc, T beta);

template <class T>
struct KernelInfo {
  Isa isa;
  int mr, nr;
  MicroKernel<T> packed;    // A packed as MR-slivers
  MicroKernel<T> unpacked;  // A read through its strides
  const char* name;
};

// ------------------------------------------------------------------ portable kernel
template <class T, int MR, int NR, bool PackedA>
void ukr_generic(index_t kc, const T* a, index_t rsa, index_t csa, const T* b, T* c, index_t rsc, T beta) {
  T acc[MR][NR] = {};
  for (index_t p = 0; p < kc; ++p) {
    for (int i = 0; i < MR; ++i) {
      const T ai = PackedA ? a[i] : a[i * rsa];
      for (int j = 0; j < NR; ++j) acc[i][j] += ai * b[j];
    }
    a += PackedA ? MR : csa;
    b += NR;
  }
  if (beta == T(0)) {
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) c[i * rsc + j] = acc[i][j];
  } else {
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) c[i * rsc + j] = beta * c[i * rsc + j] + acc[i][j];
  }
}

#ifdef KF_GEMM_X86
// ------------------------------------------------------------------ SIMD traits
#define KF_AVX512_FN __attribute__((target("avx512f,avx512dq,avx512vl,avx2,fma"), always_inline)) static inline

using simd::Avx2F32;
using simd::Avx2F64;

struct Avx512F32 {
  using T = float;
  using V = __m512;
  static constexpr int W = 16;
  KF_AVX512_FN V zero() { return _mm512_setzero_ps(); }
  KF_AVX512_FN V load(const T* p) { return _mm512_load_ps(p); }
  KF_AVX512_FN V loadu(const T* p) { return _mm512_loadu_ps(p); }
  KF_AVX512_FN V bcast(const T* p) { return _mm512_set1_ps(*p); }
  KF_AVX512_FN V set1(T x) { return _mm512_set1_ps(x); }
  KF_AVX512_FN V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  KF_AVX512_FN V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  KF_AVX512_FN V add(V a, V b) { return _mm512_add_ps(a, b); }
  KF_AVX512_FN void storeu(T* p, V v) { _mm512_storeu_ps(p, v); }
};
struct Avx512F64 {
  using T = double;
  using V = __m512d;
  static constexpr int W = 8;
  KF_AVX512_FN V zero() { return _mm512_setzero_pd(); }
  KF_AVX512_FN V load(const T* p) { return _mm512_load_pd(p); }
  KF_AVX512_FN V loadu(const T* p) { return _mm512_loadu_pd(p); }
  KF_AVX512_FN V bcast(const T* p) { return _mm512_set1_pd(*p); }
  KF_AVX512_FN V set1(T x) { return _mm512_set1_pd(x); }
  KF_AVX512_FN V fmadd(V a, V b, V c) { return _mm512_fmadd_pd(a, b, c); }
  KF_AVX512_FN V mul(V a, V b) { return _mm512_mul_pd(a, b); }
  KF_AVX512_FN V add(V a, V b) { return _mm512_add_pd(a, b); }
  KF_AVX512_FN void storeu(T* p, V v) { _mm512_storeu_pd(p, v); }
};

// C-tile prefetch policy of the micro-kernel (an experiment knob, fixed at compile time). Measured
// in one process against OpenBLAS at n=2048, 1 thread, on the Zen 3 box: no prefetch loses ~15%;
// prefetching both cache lines of each C row at entry (1) beats the first line only (0) by ~5-8%
// on NumPy's 16-byte-aligned arrays, where a 64-byte row of the tile straddles two lines.
#ifndef KF_GEMM_PFC
#define KF_GEMM_PFC 1
#endif
#ifndef KF_GEMM_PFC_LEAD
#define KF_GEMM_PFC_LEAD 32
#endif
constexpr int kPfc = KF_GEMM_PFC;
constexpr index_t kPfcLead = KF_GEMM_PFC_LEAD;

// One body, two target attributes: GCC only inlines the SIMD helpers into a function compiled for
// the same (or a wider) target, so the kernel itself carries the attribute.
#define KF_UKR_BODY                                                              \
  using V = typename S::V;                                                       \
  using T = typename S::T;                                                       \
  constexpr int NV = NR / S::W;                                                  \
  V acc[MR][NV];                                                                 \
  _Pragma("GCC unroll 16") for (int i = 0; i < MR; ++i)                          \
      _Pragma("GCC unroll 8") for (int v = 0; v < NV; ++v) acc[i][v] = S::zero(); \
  /* PFC 0: prefetch C's first line per row at entry; 1: both lines at entry; 2: both lines  */ \
  /* kPfcLead iterations before the end (late enough not to evict B~ from L1); 3: none.      */ \
  if (PFC == 0 || PFC == 1) {                                                    \
    _Pragma("GCC unroll 16") for (int i = 0; i < MR; ++i) {                      \
      __builtin_prefetch(c + i * rsc, 1, 3);                                     \
      if (PFC == 1) __builtin_prefetch(c + i * rsc + NR - 1, 1, 3);              \
    }                                                                            \
  }                                                                              \
  const index_t kpf = PFC == 2 ? std::max<index_t>(0, kc - kPfcLead) : kc;       \
  index_t p = 0;                                                                 \
  for (int phase = 0; phase < 2; ++phase) {                                      \
  const index_t pend = phase == 0 ? kpf : kc;                                    \
  if (phase == 1 && PFC == 2) {                                                  \
    _Pragma("GCC unroll 16") for (int i = 0; i < MR; ++i) {                      \
      __builtin_prefetch(c + i * rsc, 1, 3);                                     \
      __builtin_prefetch(c + i * rsc + NR - 1, 1, 3);                            \
    }                                                                            \
  }                                                                              \
  _Pragma("GCC unroll 4") for (; p < pend; ++p) {                                \
    V bv[NV];                                                                    \
    /* A few iterations ahead in both packed streams (as OpenBLAS's kernels do). */ \
    __builtin_prefetch(b + 8 * NR, 0, 3);                                        \
    if (PackedA) __builtin_prefetch(a + 8 * MR, 0, 3);                           \
    _Pragma("GCC unroll 8") for (int v = 0; v < NV; ++v) bv[v] = S::load(b + v * S::W); \
    _Pragma("GCC unroll 16") for (int i = 0; i < MR; ++i) {                      \
      const V ai = S::bcast(PackedA ? a + i : a + i * rsa);                      \
      _Pragma("GCC unroll 8") for (int v = 0; v < NV; ++v) acc[i][v] = S::fmadd(ai, bv[v], acc[i][v]); \
    }                                                                            \
    a += PackedA ? MR : csa;                                                     \
    b += NR;                                                                     \
  }                                                                              \
  }                                                                              \
  if (beta == T(0)) {                                                            \
    _Pragma("GCC unroll 16") for (int i = 0; i < MR; ++i)                        \
        _Pragma("GCC unroll 8") for (int v = 0; v < NV; ++v) S::storeu(c + i * rsc + v * S::W, acc[i][v]); \
  } else {                                                                       \
    const V bb = S::set1(beta);                                                  \
    _Pragma("GCC unroll 16") for (int i = 0; i < MR; ++i)                        \
        _Pragma("GCC unroll 8") for (int v = 0; v < NV; ++v) {                   \
      T* cp = c + i * rsc + v * S::W;                                            \
      S::storeu(cp, S::add(S::mul(bb, S::loadu(cp)), acc[i][v]));                \
    }                                                                            \
  }

template <class S, int MR, int NR, bool PackedA, int PFC = kPfc>
__attribute__((target("avx2,fma"))) void ukr_avx2(index_t kc, const typename S::T* a, index_t rsa, index_t csa,
                                                  const typename S::T* b, typename S::T* c, index_t rsc,
                                                  typename S::T beta) {
  KF_UKR_BODY
}

template <class S, int MR, int NR, bool PackedA, int PFC = kPfc>
__attribute__((target("avx512f,avx512dq,avx512vl,avx2,fma"))) void ukr_avx512(
    index_t kc, const typename S::T* a, index_t rsa, index_t csa, const typename S::T* b, typename S::T* c,
    index_t rsc, typename S::T beta) {
  KF_UKR_BODY
}
#undef KF_UKR_BODY

#endif  // KF_GEMM_X86

template <class T>
struct Simd;
#ifdef KF_GEMM_X86
template <>
struct Simd<float> {
  using Avx2 = Avx2F32;
  using Avx512 = Avx512F32;
};
template <>
struct Simd<double> {
  using Avx2 = Avx2F64;
  using Avx512 = Avx512F64;
};
#endif

#ifdef KF_GEMM_X86
// One body for both widths (the SIMD helpers inline only into a function of the same target).
#define KF_FMA_PEAK_BODY                                                         \
  using V = typename S::V;                                                       \
  V acc[12];                                                                     \
  for (int i = 0; i < 12; ++i) acc[i] = S::set1(T(0.5) + T(i) * T(1e-3));        \
  const V x = S::set1(T(0.999999)), y = S::set1(T(1e-7));                        \
  const auto t0 = std::chrono::steady_clock::now();                              \
  for (long it = 0; it < iters; ++it) {                                          \
    _Pragma("GCC unroll 12") for (int i = 0; i < 12; ++i) acc[i] = S::fmadd(acc[i], x, y); \
  }                                                                              \
  const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); \
  alignas(64) T sink[64];                                                        \
  V s = acc[0];                                                                  \
  for (int i = 1; i < 12; ++i) s = S::add(s, acc[i]);                            \
  S::storeu(sink, s);                                                            \
  volatile T keep = sink[0];                                                     \
  (void)keep;                                                                    \
  return 2.0 * 12 * S::W * double(iters) / sec / 1e9;

template <class T>
__attribute__((target("avx2,fma"), noinline)) double fma_peak_avx2(long iters) {
  using S = typename Simd<T>::Avx2;
  KF_FMA_PEAK_BODY
}

template <class T>
__attribute__((target("avx512f,avx512dq,avx512vl,avx2,fma"), noinline)) double fma_peak_avx512(long iters) {
  using S = typename Simd<T>::Avx512;
  KF_FMA_PEAK_BODY
}
#undef KF_FMA_PEAK_BODY

#endif  // KF_GEMM_X86

// Every compiled kernel, best first within each ISA. The first one of the active ISA is the default.
template <class T>
const std::vector<KernelInfo<T>>& all_kernels() {
  static const std::vector<KernelInfo<T>> list = [] {
    std::vector<KernelInfo<T>> v;
    constexpr bool f32 = sizeof(T) == 4;
#ifdef KF_GEMM_X86
    using A2 = typename Simd<T>::Avx2;
    using A5 = typename Simd<T>::Avx512;
    if constexpr (f32) {
      v.push_back({Isa::avx512, 6, 64, &ukr_avx512<A5, 6, 64, true>, &ukr_avx512<A5, 6, 64, false>, "avx512 6x64"});
      v.push_back({Isa::avx512, 14, 32, &ukr_avx512<A5, 14, 32, true>, &ukr_avx512<A5, 14, 32, false>, "avx512 14x32"});
      v.push_back({Isa::avx2, 6, 16, &ukr_avx2<A2, 6, 16, true>, &ukr_avx2<A2, 6, 16, false>, "avx2 6x16"});
      v.push_back({Isa::avx2, 4, 24, &ukr_avx2<A2, 4, 24, true>, &ukr_avx2<A2, 4, 24, false>, "avx2 4x24"});
      v.push_back({Isa::avx2, 8, 8, &ukr_avx2<A2, 8, 8, true>, &ukr_avx2<A2, 8, 8, false>, "avx2 8x8"});
    } else {
      v.push_back({Isa::avx512, 8, 24, &ukr_avx512<A5, 8, 24, true>, &ukr_avx512<A5, 8, 24, false>, "avx512 8x24"});
      v.push_back({Isa::avx512, 12, 16, &ukr_avx512<A5, 12, 16, true>, &ukr_avx512<A5, 12, 16, false>, "avx512 12x16"});
      v.push_back({Isa::avx2, 6, 8, &ukr_avx2<A2, 6, 8, true>, &ukr_avx2<A2, 6, 8, false>, "avx2 6x8"});
      v.push_back({Isa::avx2, 4, 12, &ukr_avx2<A2, 4, 12, true>, &ukr_avx2<A2, 4, 12, false>, "avx2 4x12"});
      v.push_back({Isa::avx2, 8, 4, &ukr_avx2<A2, 8, 4, true>, &ukr_avx2<A2, 8, 4, false>, "avx2 8x4"});
    }
#endif
    if constexpr (f32) {
      v.push_back({Isa::generic, 4, 8, &ukr_generic<T, 4, 8, true>, &ukr_generic<T, 4, 8, false>, "generic 4x8"});
      v.push_back({Isa::generic, 4, 4, &ukr_generic<T, 4, 4, true>, &ukr_generic<T, 4, 4, false>, "generic 4x4"});
    } else {
      v.push_back({Isa::generic, 4, 4, &ukr_generic<T, 4, 4, true>, &ukr_generic<T, 4, 4, false>, "generic 4x4"});
      v.push_back({Isa::generic, 2, 4, &ukr_generic<T, 2, 4, true>, &ukr_generic<T, 2, 4, false>, "generic 2x4"});
    }
    return v;
  }();
  return list;
}

// The kernels usable at ISA level `isa` (exactly that level's family).
template <class T>
std::vector<KernelInfo<T>> kernels_for(Isa isa) {
  std::vector<KernelInfo<T>> out;
  for (const auto& k : all_kernels<T>())
    if (k.isa == isa) out.push_back(k);
  return out;
}

}  // namespace gemm
}  // namespace kf

namespace kf {
namespace gemm {

// Measured FMA throughput of one core (GFLOP/s) for the "fraction of peak" figures: the clock of a
// turbo-boosting or virtualised CPU is not what /proc/cpuinfo says. 12 independent accumulators
// cover the FMA latency x pipes of current x86 cores.
template <class T>
double fma_peak_gflops(long iters) {
#ifdef KF_GEMM_X86
  if (active_isa() == Isa::avx512) return fma_peak_avx512<T>(iters);
  if (active_isa() != Isa::generic) return fma_peak_avx2<T>(iters);
#endif
  (void)iters;
  return 0.0;
}

}  // namespace gemm
}  // namespace kf
