// Fused, vectorised log-sum-exp kernels for log-domain Sinkhorn:
//   lse_row(c, w, s, m) = log sum_j exp(w_j - s * c_j)
// computed in two passes over one row (max, then sum of exp(x - max)), which stays in L1/L2 for
// the row lengths of interest. papers.md section 5.2: NumPy/SciPy's logsumexp costs 25-35 ns per
// entry, a fused AVX2 loop 2-3 ns.
//
// The vector exp (Cody-Waite range reduction, a degree-12 (double) / degree-7 (float) Taylor
// polynomial, 2^n through the exponent bits) is compiled with __attribute__((target("avx2,fma")))
// and chosen at run time (kf::active_isa()); a portable loop is the fallback. Inputs are clamped
// below at -700 (double) / -87 (float): their exp is far below the rounding of a sum that
// contains exp(0) = 1, so the clamp never changes a result.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>

#include "kernforge/common/cpu.hpp"
#include "kernforge/common/views.hpp"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define KF_OT_X86 1
#endif

namespace kf {
namespace ot {

// Chosen once per solve, passed down (a virtual or atomic check per row would cost more than it
// saves on short rows).
inline bool use_avx2() {
#ifdef KF_OT_X86
  return kf::active_isa() >= kf::Isa::avx2;
#else
  return false;
#endif
}

namespace detail {

template <class T>
inline T neg_inf() {
  return -std::numeric_limits<T>::infinity();
}

// ---------------------------------------------------------------- portable paths
template <class T>
T max_row_generic(const T* c, const T* w, T s, index_t m) {
  T mx = neg_inf<T>();
  for (index_t j = 0; j < m; ++j) {
    const T x = w[j] - s * c[j];
    mx = x > mx ? x : mx;
  }
  return mx;
}

template <class T>
T sumexp_row_generic(const T* c, const T* w, T s, T shift, index_t m) {
  T acc = 0;
  for (index_t j = 0; j < m; ++j) acc += std::exp(w[j] - s * c[j] - shift);
  return acc;
}

template <class T>
void exp_row_generic(const T* c, const T* w, T s, T shift, index_t m, T* out) {
  for (index_t j = 0; j < m; ++j) out[j] = std::exp(w[j] - s * c[j] + shift);
}

#ifdef KF_OT_X86
// ---------------------------------------------------------------- AVX2 double
__attribute__((target("avx2,fma"))) inline __m256d exp_pd(__m256d x) {
  const __m256d lo = _mm256_set1_pd(-700.0), hi = _mm256_set1_pd(700.0);
  x = _mm256_min_pd(_mm256_max_pd(x, lo), hi);
  const __m256d log2e = _mm256_set1_pd(1.4426950408889634074);
  const __m256d ln2hi = _mm256_set1_pd(6.93145751953125e-1);
  const __m256d ln2lo = _mm256_set1_pd(1.42860682030941723212e-6);
  __m256d n = _mm256_round_pd(_mm256_mul_pd(x, log2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256d r = _mm256_fnmadd_pd(n, ln2hi, x);
  r = _mm256_fnmadd_pd(n, ln2lo, r);
  // |r| <= ln2/2: Taylor to degree 12, truncation below 2e-16 relative.
  __m256d p = _mm256_set1_pd(1.0 / 479001600.0);
  p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 39916800.0));
  p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 3628800.0));
  p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 362880.0));
  p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 40320.0));
  p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 5040.0));
  p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 720.0));
  p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 120.0));
  p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 24.0));
  p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 6.0));
  p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(0.5));
  p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0));
  p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0));
  // 2^n: n + 1023 lands in the low mantissa bits after adding 2^52; shift it into the exponent.
  const __m256d magic = _mm256_set1_pd(4503599627370496.0 + 1023.0);
  __m256i e = _mm256_slli_epi64(_mm256_castpd_si256(_mm256_add_pd(n, magic)), 52);
  return _mm256_mul_pd(p, _mm256_castsi256_pd(e));
}

__attribute__((target("avx2,fma"))) inline double hmax_pd(__m256d v) {
  __m128d a = _mm_max_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
  a = _mm_max_pd(a, _mm_unpackhi_pd(a, a));
  return _mm_cvtsd_f64(a);
}

__attribute__((target("avx2,fma"))) inline double hsum_pd(__m256d v) {
  __m128d a = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
  a = _mm_add_pd(a, _mm_unpackhi_pd(a, a));
  return _mm_cvtsd_f64(a);
}

__attribute__((target("avx2,fma"))) inline double max_row_avx2(const double* c, const double* w, double s,
                                                               index_t m) {
  const __m256d vs = _mm256_set1_pd(s);
  __m256d m0 = _mm256_set1_pd(neg_inf<double>()), m1 = m0;
  index_t j = 0;
  for (; j + 8 <= m; j += 8) {
    m0 = _mm256_max_pd(m0, _mm256_fnmadd_pd(vs, _mm256_loadu_pd(c + j), _mm256_loadu_pd(w + j)));
    m1 = _mm256_max_pd(m1, _mm256_fnmadd_pd(vs, _mm256_loadu_pd(c + j + 4), _mm256_loadu_pd(w + j + 4)));
  }
  double mx = hmax_pd(_mm256_max_pd(m0, m1));
  for (; j < m; ++j) mx = std::max(mx, w[j] - s * c[j]);
  return mx;
}

__attribute__((target("avx2,fma"))) inline double sumexp_row_avx2(const double* c, const double* w, double s,
                                                                  double shift, index_t m) {
  const __m256d vs = _mm256_set1_pd(s), vsh = _mm256_set1_pd(shift);
  __m256d a0 = _mm256_setzero_pd(), a1 = a0;
  index_t j = 0;
  for (; j + 8 <= m; j += 8) {
    __m256d x0 = _mm256_sub_pd(_mm256_fnmadd_pd(vs, _mm256_loadu_pd(c + j), _mm256_loadu_pd(w + j)), vsh);
    __m256d x1 = _mm256_sub_pd(_mm256_fnmadd_pd(vs, _mm256_loadu_pd(c + j + 4), _mm256_loadu_pd(w + j + 4)), vsh);
    a0 = _mm256_add_pd(a0, exp_pd(x0));
    a1 = _mm256_add_pd(a1, exp_pd(x1));
  }
  if (j + 4 <= m) {
    __m256d x0 = _mm256_sub_pd(_mm256_fnmadd_pd(vs, _mm256_loadu_pd(c + j), _mm256_loadu_pd(w + j)), vsh);
    a0 = _mm256_add_pd(a0, exp_pd(x0));
    j += 4;
  }
  double acc = hsum_pd(_mm256_add_pd(a0, a1));
  for (; j < m; ++j) acc += std::exp(w[j] - s * c[j] - shift);
  return acc;
}

__attribute__((target("avx2,fma"))) inline void exp_row_avx2(const double* c, const double* w, double s,
                                                             double shift, index_t m, double* out) {
  const __m256d vs = _mm256_set1_pd(s), vsh = _mm256_set1_pd(shift);
  index_t j = 0;
  for (; j + 4 <= m; j += 4) {
    __m256d x = _mm256_add_pd(_mm256_fnmadd_pd(vs, _mm256_loadu_pd(c + j), _mm256_loadu_pd(w + j)), vsh);
    _mm256_storeu_pd(out + j, exp_pd(x));
  }
  for (; j < m; ++j) out[j] = std::exp(w[j] - s * c[j] + shift);
}

// ---------------------------------------------------------------- AVX2 float
__attribute__((target("avx2,fma"))) inline __m256 exp_ps(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(88.0f));
  __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                             _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.0f / 5040.0f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

__attribute__((target("avx2,fma"))) inline float hmax_ps(__m256 v) {
  __m128 a = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  a = _mm_max_ps(a, _mm_movehl_ps(a, a));
  a = _mm_max_ss(a, _mm_shuffle_ps(a, a, 1));
  return _mm_cvtss_f32(a);
}

__attribute__((target("avx2,fma"))) inline double hsum_ps_d(__m256 v) {
  // Accumulate lanes in double for the final reduction.
  __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(v)), hi = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
  return hsum_pd(_mm256_add_pd(lo, hi));
}

__attribute__((target("avx2,fma"))) inline float max_row_avx2(const float* c, const float* w, float s, index_t m) {
  const __m256 vs = _mm256_set1_ps(s);
  __m256 m0 = _mm256_set1_ps(neg_inf<float>());
  index_t j = 0;
  for (; j + 8 <= m; j += 8)
    m0 = _mm256_max_ps(m0, _mm256_fnmadd_ps(vs, _mm256_loadu_ps(c + j), _mm256_loadu_ps(w + j)));
  float mx = hmax_ps(m0);
  for (; j < m; ++j) mx = std::max(mx, w[j] - s * c[j]);
  return mx;
}

__attribute__((target("avx2,fma"))) inline float sumexp_row_avx2(const float* c, const float* w, float s,
                                                                 float shift, index_t m) {
  const __m256 vs = _mm256_set1_ps(s), vsh = _mm256_set1_ps(shift);
  __m256 a0 = _mm256_setzero_ps();
  index_t j = 0;
  double acc = 0.0;
  // Flush the float lane sums into double every 1024 entries so long rows keep float accuracy.
  while (j + 8 <= m) {
    const index_t stop = std::min<index_t>(m - (m - j) % 8, j + 1024);
    for (; j < stop; j += 8) {
      __m256 x = _mm256_sub_ps(_mm256_fnmadd_ps(vs, _mm256_loadu_ps(c + j), _mm256_loadu_ps(w + j)), vsh);
      a0 = _mm256_add_ps(a0, exp_ps(x));
    }
    acc += hsum_ps_d(a0);
    a0 = _mm256_setzero_ps();
  }
  for (; j < m; ++j) acc += std::exp(w[j] - s * c[j] - shift);
  return static_cast<float>(acc);
}

__attribute__((target("avx2,fma"))) inline void exp_row_avx2(const float* c, const float* w, float s, float shift,
                                                             index_t m, float* out) {
  const __m256 vs = _mm256_set1_ps(s), vsh = _mm256_set1_ps(shift);
  index_t j = 0;
  for (; j + 8 <= m; j += 8) {
    __m256 x = _mm256_add_ps(_mm256_fnmadd_ps(vs, _mm256_loadu_ps(c + j), _mm256_loadu_ps(w + j)), vsh);
    _mm256_storeu_ps(out + j, exp_ps(x));
  }
  for (; j < m; ++j) out[j] = std::exp(w[j] - s * c[j] + shift);
}
__attribute__((target("avx2,fma"))) inline double dot_avx2(const double* x, const double* y, index_t m) {
  __m256d a0 = _mm256_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
  index_t j = 0;
  for (; j + 16 <= m; j += 16) {
    a0 = _mm256_fmadd_pd(_mm256_loadu_pd(x + j), _mm256_loadu_pd(y + j), a0);
    a1 = _mm256_fmadd_pd(_mm256_loadu_pd(x + j + 4), _mm256_loadu_pd(y + j + 4), a1);
    a2 = _mm256_fmadd_pd(_mm256_loadu_pd(x + j + 8), _mm256_loadu_pd(y + j + 8), a2);
    a3 = _mm256_fmadd_pd(_mm256_loadu_pd(x + j + 12), _mm256_loadu_pd(y + j + 12), a3);
  }
  for (; j + 4 <= m; j += 4) a0 = _mm256_fmadd_pd(_mm256_loadu_pd(x + j), _mm256_loadu_pd(y + j), a0);
  double acc = hsum_pd(_mm256_add_pd(_mm256_add_pd(a0, a1), _mm256_add_pd(a2, a3)));
  for (; j < m; ++j) acc += x[j] * y[j];
  return acc;
}

__attribute__((target("avx2,fma"))) inline float dot_avx2(const float* x, const float* y, index_t m) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  index_t j = 0;
  for (; j + 32 <= m; j += 32) {
    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + j), _mm256_loadu_ps(y + j), a0);
    a1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + j + 8), _mm256_loadu_ps(y + j + 8), a1);
    a2 = _mm256_fmadd_ps(_mm256_loadu_ps(x + j + 16), _mm256_loadu_ps(y + j + 16), a2);
    a3 = _mm256_fmadd_ps(_mm256_loadu_ps(x + j + 24), _mm256_loadu_ps(y + j + 24), a3);
  }
  for (; j + 8 <= m; j += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + j), _mm256_loadu_ps(y + j), a0);
  double acc = hsum_ps_d(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
  for (; j < m; ++j) acc += static_cast<double>(x[j]) * y[j];
  return static_cast<float>(acc);
}
__attribute__((target("avx2,fma"))) inline void axpy_avx2(double alpha, const double* x, double* y, index_t m) {
  const __m256d va = _mm256_set1_pd(alpha);
  index_t j = 0;
  for (; j + 4 <= m; j += 4) _mm256_storeu_pd(y + j, _mm256_fmadd_pd(va, _mm256_loadu_pd(x + j), _mm256_loadu_pd(y + j)));
  for (; j < m; ++j) y[j] += alpha * x[j];
}

__attribute__((target("avx2,fma"))) inline void axpy_avx2(float alpha, const float* x, float* y, index_t m) {
  const __m256 va = _mm256_set1_ps(alpha);
  index_t j = 0;
  for (; j + 8 <= m; j += 8) _mm256_storeu_ps(y + j, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + j), _mm256_loadu_ps(y + j)));
  for (; j < m; ++j) y[j] += alpha * x[j];
}
#endif  // KF_OT_X86

template <class T>
void axpy_generic(T alpha, const T* __restrict x, T* __restrict y, index_t m) {
#pragma omp simd
  for (index_t j = 0; j < m; ++j) y[j] += alpha * x[j];
}

template <class T>
T dot_generic(const T* x, const T* y, index_t m) {
  T a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  index_t j = 0;
  for (; j + 4 <= m; j += 4) {
    a0 += x[j] * y[j];
    a1 += x[j + 1] * y[j + 1];
    a2 += x[j + 2] * y[j + 2];
    a3 += x[j + 3] * y[j + 3];
  }
  for (; j < m; ++j) a0 += x[j] * y[j];
  return (a0 + a1) + (a2 + a3);
}

}  // namespace detail

// y += alpha * x.
template <class T>
void axpy(T alpha, const T* x, T* y, index_t m, bool avx2) {
#ifdef KF_OT_X86
  if (avx2) {
    detail::axpy_avx2(alpha, x, y, m);
    return;
  }
#endif
  (void)avx2;
  detail::axpy_generic(alpha, x, y, m);
}

template <class T>
T dot(const T* x, const T* y, index_t m, bool avx2) {
#ifdef KF_OT_X86
  if (avx2) return detail::dot_avx2(x, y, m);
#endif
  (void)avx2;
  return detail::dot_generic(x, y, m);
}

// log sum_j exp(w_j - s c_j); -inf for an empty row or one whose terms are all -inf.
template <class T>
T lse_row(const T* c, const T* w, T s, index_t m, bool avx2) {
  T mx;
#ifdef KF_OT_X86
  if (avx2) mx = detail::max_row_avx2(c, w, s, m);
  else
#endif
    mx = detail::max_row_generic(c, w, s, m);
  if (!(mx > detail::neg_inf<T>())) return mx;  // empty, all -inf, or NaN: propagate
  T sum;
#ifdef KF_OT_X86
  if (avx2) sum = detail::sumexp_row_avx2(c, w, s, mx, m);
  else
#endif
    sum = detail::sumexp_row_generic(c, w, s, mx, m);
  return mx + std::log(sum);
}

// The same with a guess of the result (e.g. the previous iteration's value): one pass instead of
// two when sum_j exp(w_j - s c_j - guess) stays well inside the floating-point range, which it
// does once the potentials settle; otherwise the two-pass form.
template <class T>
T lse_row_guess(const T* c, const T* w, T s, index_t m, T guess, bool avx2) {
  if (std::isfinite(guess)) {
    T sum;
#ifdef KF_OT_X86
    if (avx2) sum = detail::sumexp_row_avx2(c, w, s, guess, m);
    else
#endif
      sum = detail::sumexp_row_generic(c, w, s, guess, m);
    const T lo = sizeof(T) == 8 ? T(1e-250) : T(1e-25), hi = sizeof(T) == 8 ? T(1e250) : T(1e25);
    if (sum > lo && sum < hi) return guess + std::log(sum);
  }
  return lse_row(c, w, s, m, avx2);
}

// out_j = exp(w_j - s c_j + shift).
template <class T>
void exp_row(const T* c, const T* w, T s, T shift, index_t m, T* out, bool avx2) {
#ifdef KF_OT_X86
  if (avx2) {
    detail::exp_row_avx2(c, w, s, shift, m, out);
    return;
  }
#endif
  (void)avx2;
  detail::exp_row_generic(c, w, s, shift, m, out);
}

// log(exp(x) + exp(y)) without overflow; -inf if both are -inf.
template <class T>
T logaddexp(T x, T y) {
  if (x < y) std::swap(x, y);
  if (!(y > detail::neg_inf<T>())) return x;
  return x + std::log1p(std::exp(y - x));
}

// Log-sum-exp of a plain vector (O(n) bookkeeping, not a hot path).
template <class T>
T lse_vec(const T* x, index_t n) {
  T mx = detail::neg_inf<T>();
  for (index_t i = 0; i < n; ++i) mx = std::max(mx, x[i]);
  if (!(mx > detail::neg_inf<T>())) return mx;
  double s = 0;
  for (index_t i = 0; i < n; ++i) s += std::exp(static_cast<double>(x[i] - mx));
  return mx + static_cast<T>(std::log(s));
}

}  // namespace ot
}  // namespace kf
