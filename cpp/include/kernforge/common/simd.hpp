// AVX2+FMA vector traits shared by the areas' hand-vectorised kernels: one template body per kernel
// for float and double (S::V, S::W and the operations), instead of a copy per dtype.
// Only defined on x86 (KF_X86_SIMD); callers compile these into functions carrying the same
// target attribute and choose them at run time (kf::active_isa), so the build stays baseline x86-64.
#pragma once

#include <type_traits>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define KF_X86_SIMD 1
#endif

#ifdef KF_X86_SIMD
#define KF_AVX2_FN __attribute__((target("avx2,fma"), always_inline)) static inline

namespace kf {
namespace simd {

struct Avx2F32 {
  using T = float;
  using V = __m256;
  static constexpr int W = 8;
  KF_AVX2_FN V zero() { return _mm256_setzero_ps(); }
  KF_AVX2_FN V load(const T* p) { return _mm256_load_ps(p); }
  KF_AVX2_FN V loadu(const T* p) { return _mm256_loadu_ps(p); }
  KF_AVX2_FN V bcast(const T* p) { return _mm256_broadcast_ss(p); }
  KF_AVX2_FN V set1(T x) { return _mm256_set1_ps(x); }
  KF_AVX2_FN V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  KF_AVX2_FN V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  KF_AVX2_FN V add(V a, V b) { return _mm256_add_ps(a, b); }
  KF_AVX2_FN void storeu(T* p, V v) { _mm256_storeu_ps(p, v); }
};
struct Avx2F64 {
  using T = double;
  using V = __m256d;
  static constexpr int W = 4;
  KF_AVX2_FN V zero() { return _mm256_setzero_pd(); }
  KF_AVX2_FN V load(const T* p) { return _mm256_load_pd(p); }
  KF_AVX2_FN V loadu(const T* p) { return _mm256_loadu_pd(p); }
  KF_AVX2_FN V bcast(const T* p) { return _mm256_broadcast_sd(p); }
  KF_AVX2_FN V set1(T x) { return _mm256_set1_pd(x); }
  KF_AVX2_FN V fmadd(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
  KF_AVX2_FN V mul(V a, V b) { return _mm256_mul_pd(a, b); }
  KF_AVX2_FN V add(V a, V b) { return _mm256_add_pd(a, b); }
  KF_AVX2_FN void storeu(T* p, V v) { _mm256_storeu_pd(p, v); }
};

// The traits of a scalar type: Avx2<float> = Avx2F32, Avx2<double> = Avx2F64.
template <class T>
using Avx2 = std::conditional_t<std::is_same<T, float>::value, Avx2F32, Avx2F64>;

}  // namespace simd
}  // namespace kf
#endif  // KF_X86_SIMD
