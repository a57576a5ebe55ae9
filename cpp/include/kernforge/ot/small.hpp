// Kernel-domain Sinkhorn for small dense problems (n m < kSmallEntries), one thread per problem:
// the batched solver runs one per thread, and single solves of the same size take the same path,
// so a batch equals the loop of single solves bit for bit.
//
// Why a separate path: at n = m = 64 the two matvecs of an iteration cost ~1 us, so everything
// else that the large-problem loop does per iteration (allocation, parallel-region entry, a pow()
// per entry for over-relaxation, blocked partial sums) costs more than the arithmetic. Here K
// (exp once) stays in L1/L2, both matvecs are register-blocked AVX2 kernels, and over-relaxation
// u <- u^(1-w) (a / Kv)^w is replaced by its first-order form u <- u_new + (1 - w)(u - u_new)
// (the same fixed point and, to first order, the same contraction; Lehmann et al. 2021), which
// needs no transcendental. The linear form is used only while u / u_new < 2, where it keeps u
// positive for w < 2; otherwise that entry takes the plain step.
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernforge/common/simd.hpp"
#include "kernforge/ot/lse.hpp"
#include "kernforge/ot/sinkhorn.hpp"

namespace kf {
namespace ot {

// Dense problems below this many entries take the small path (chosen by size only, so the result
// does not depend on the thread count). 2^16 entries: K stays in a 512 KiB L2.
constexpr size_t kSmallEntries = size_t(1) << 16;

inline bool is_small(index_t n, index_t m) { return static_cast<size_t>(n) * static_cast<size_t>(m) < kSmallEntries; }

namespace detail {

template <class T>
void kt_x_generic(const T* K, index_t n, index_t m, const T* x, T* y) {
  for (index_t j = 0; j < m; ++j) y[j] = 0;
  for (index_t i = 0; i < n; ++i) {
    const T xi = x[i];
    const T* k = K + i * m;
    for (index_t j = 0; j < m; ++j) y[j] += xi * k[j];
  }
}

template <class T>
void k_x_generic(const T* K, index_t n, index_t m, const T* x, T* y) {
  for (index_t i = 0; i < n; ++i) y[i] = dot_generic(K + i * m, x, m);
}

#ifdef KF_OT_X86
// y = K^T x, K row-major n x m: columns in register blocks of 8 vectors, streaming the rows.
template <class T>
__attribute__((target("avx2,fma"))) inline void kt_x_avx2(const T* K, index_t n, index_t m, const T* x, T* y) {
  using S = simd::Avx2<T>;
  using V = typename S::V;
  constexpr index_t W = S::W;
  index_t j = 0;
  for (; j + 8 * W <= m; j += 8 * W) {
    V y0 = S::zero(), y1 = y0, y2 = y0, y3 = y0, y4 = y0, y5 = y0, y6 = y0, y7 = y0;
    const T* k = K + j;
    for (index_t i = 0; i < n; ++i, k += m) {
      const V xi = S::bcast(x + i);
      y0 = S::fmadd(xi, S::loadu(k), y0);
      y1 = S::fmadd(xi, S::loadu(k + W), y1);
      y2 = S::fmadd(xi, S::loadu(k + 2 * W), y2);
      y3 = S::fmadd(xi, S::loadu(k + 3 * W), y3);
      y4 = S::fmadd(xi, S::loadu(k + 4 * W), y4);
      y5 = S::fmadd(xi, S::loadu(k + 5 * W), y5);
      y6 = S::fmadd(xi, S::loadu(k + 6 * W), y6);
      y7 = S::fmadd(xi, S::loadu(k + 7 * W), y7);
    }
    S::storeu(y + j, y0);
    S::storeu(y + j + W, y1);
    S::storeu(y + j + 2 * W, y2);
    S::storeu(y + j + 3 * W, y3);
    S::storeu(y + j + 4 * W, y4);
    S::storeu(y + j + 5 * W, y5);
    S::storeu(y + j + 6 * W, y6);
    S::storeu(y + j + 7 * W, y7);
  }
  for (; j + W <= m; j += W) {
    V y0 = S::zero();
    const T* k = K + j;
    for (index_t i = 0; i < n; ++i, k += m) y0 = S::fmadd(S::bcast(x + i), S::loadu(k), y0);
    S::storeu(y + j, y0);
  }
  for (; j < m; ++j) {
    T s = 0;
    for (index_t i = 0; i < n; ++i) s += x[i] * K[i * m + j];
    y[j] = s;
  }
}

// Four horizontal sums at once: lane r of the result is the sum of the lanes of a_r.
__attribute__((target("avx2,fma"))) inline __m256d hsum4_pd(__m256d a0, __m256d a1, __m256d a2, __m256d a3) {
  const __m256d s01 = _mm256_hadd_pd(a0, a1);  // a0[0]+a0[1], a1[0]+a1[1], a0[2]+a0[3], a1[2]+a1[3]
  const __m256d s23 = _mm256_hadd_pd(a2, a3);
  const __m256d lo = _mm256_permute2f128_pd(s01, s23, 0x20), hi = _mm256_permute2f128_pd(s01, s23, 0x31);
  return _mm256_add_pd(lo, hi);
}

// y = K x: four rows at a time, two accumulators per row.
// GCC's constant propagation into these (from callers with fixed sizes) makes it warn, wrongly, that
// the row-tail loop overflows i * m (-Waggressive-loop-optimizations, fatal under -Werror).
#if defined(__GNUC__) && !defined(__clang__)
#define KF_OT_NOIPA __attribute__((noipa))
#else
#define KF_OT_NOIPA
#endif

KF_OT_NOIPA __attribute__((target("avx2,fma"))) inline void k_x_avx2(const double* K, index_t n, index_t m, const double* x,
                                                         double* y) {
  index_t i = 0;
  const index_t m8 = m - m % 8, m4 = m - m % 4;
  for (; i + 4 <= n; i += 4) {
    const double* k0 = K + i * m;
    const double* k1 = k0 + m;
    const double* k2 = k1 + m;
    const double* k3 = k2 + m;
    __m256d a0 = _mm256_setzero_pd(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
    index_t j = 0;
    for (; j < m8; j += 8) {
      const __m256d x0 = _mm256_loadu_pd(x + j), x1 = _mm256_loadu_pd(x + j + 4);
      a0 = _mm256_fmadd_pd(_mm256_loadu_pd(k0 + j), x0, a0);
      a1 = _mm256_fmadd_pd(_mm256_loadu_pd(k1 + j), x0, a1);
      a2 = _mm256_fmadd_pd(_mm256_loadu_pd(k2 + j), x0, a2);
      a3 = _mm256_fmadd_pd(_mm256_loadu_pd(k3 + j), x0, a3);
      b0 = _mm256_fmadd_pd(_mm256_loadu_pd(k0 + j + 4), x1, b0);
      b1 = _mm256_fmadd_pd(_mm256_loadu_pd(k1 + j + 4), x1, b1);
      b2 = _mm256_fmadd_pd(_mm256_loadu_pd(k2 + j + 4), x1, b2);
      b3 = _mm256_fmadd_pd(_mm256_loadu_pd(k3 + j + 4), x1, b3);
    }
    for (; j < m4; j += 4) {
      const __m256d x0 = _mm256_loadu_pd(x + j);
      a0 = _mm256_fmadd_pd(_mm256_loadu_pd(k0 + j), x0, a0);
      a1 = _mm256_fmadd_pd(_mm256_loadu_pd(k1 + j), x0, a1);
      a2 = _mm256_fmadd_pd(_mm256_loadu_pd(k2 + j), x0, a2);
      a3 = _mm256_fmadd_pd(_mm256_loadu_pd(k3 + j), x0, a3);
    }
    __m256d s = hsum4_pd(_mm256_add_pd(a0, b0), _mm256_add_pd(a1, b1), _mm256_add_pd(a2, b2),
                         _mm256_add_pd(a3, b3));
    alignas(32) double t[4];
    _mm256_store_pd(t, s);
    for (; j < m; ++j) {
      t[0] += k0[j] * x[j];
      t[1] += k1[j] * x[j];
      t[2] += k2[j] * x[j];
      t[3] += k3[j] * x[j];
    }
    y[i] = t[0];
    y[i + 1] = t[1];
    y[i + 2] = t[2];
    y[i + 3] = t[3];
  }
  for (; i < n; ++i) y[i] = dot_avx2(K + i * m, x, m);
}

__attribute__((target("avx2,fma"))) inline float hsum_ps(__m256 v) {
  __m128 a = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  a = _mm_add_ps(a, _mm_movehl_ps(a, a));
  a = _mm_add_ss(a, _mm_shuffle_ps(a, a, 1));
  return _mm_cvtss_f32(a);
}

KF_OT_NOIPA __attribute__((target("avx2,fma"))) inline void k_x_avx2(const float* K, index_t n, index_t m, const float* x,
                                                         float* y) {
  index_t i = 0;
  const index_t m8 = m - m % 8;
  for (; i + 4 <= n; i += 4) {
    const float* k0 = K + i * m;
    const float* k1 = k0 + m;
    const float* k2 = k1 + m;
    const float* k3 = k2 + m;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    index_t j = 0;
    for (; j < m8; j += 8) {
      const __m256 x0 = _mm256_loadu_ps(x + j);
      a0 = _mm256_fmadd_ps(_mm256_loadu_ps(k0 + j), x0, a0);
      a1 = _mm256_fmadd_ps(_mm256_loadu_ps(k1 + j), x0, a1);
      a2 = _mm256_fmadd_ps(_mm256_loadu_ps(k2 + j), x0, a2);
      a3 = _mm256_fmadd_ps(_mm256_loadu_ps(k3 + j), x0, a3);
    }
    float t0 = hsum_ps(a0), t1 = hsum_ps(a1), t2 = hsum_ps(a2), t3 = hsum_ps(a3);
    for (; j < m; ++j) {
      t0 += k0[j] * x[j];
      t1 += k1[j] * x[j];
      t2 += k2[j] * x[j];
      t3 += k3[j] * x[j];
    }
    y[i] = t0;
    y[i + 1] = t1;
    y[i + 2] = t2;
    y[i + 3] = t3;
  }
  for (; i < n; ++i) y[i] = dot_avx2(K + i * m, x, m);
}
#endif  // KF_OT_X86

template <class T>
inline void kt_x(const T* K, index_t n, index_t m, const T* x, T* y, bool avx2) {
#ifdef KF_OT_X86
  if (avx2) return kt_x_avx2(K, n, m, x, y);
#endif
  (void)avx2;
  kt_x_generic(K, n, m, x, y);
}

template <class T>
inline void k_x(const T* K, index_t n, index_t m, const T* x, T* y, bool avx2) {
#ifdef KF_OT_X86
  if (avx2) return k_x_avx2(K, n, m, x, y);
#endif
  (void)avx2;
  k_x_generic(K, n, m, x, y);
}

// s <- target / k, over-relaxed (first-order form, see the header note); returns false when an
// entry leaves [lo, hi] (overflow, underflow, NaN).
template <class T>
inline bool scale_update(T* s, const T* target, const T* k, index_t len, T omega, T lo, T hi) {
  bool ok = true;
  if (omega == T(1)) {
    for (index_t t = 0; t < len; ++t) {
      const T x = target[t] / k[t];
      s[t] = x;
      ok &= (x < hi) & (x > lo);
    }
  } else {
    const T c = T(1) - omega;
    for (index_t t = 0; t < len; ++t) {
      const T x = target[t] / k[t];
      const T old = s[t];
      const T r = old < T(2) * x ? x + c * (old - x) : x;
      s[t] = r;
      ok &= (r < hi) & (r > lo);
    }
  }
  return ok;
}

}  // namespace detail

// Per-thread buffers of the small path, sized on first use and reused across problems.
template <class T>
struct SmallWork {
  std::vector<T> K, u, v, ktu, kv, zero;
  void fit(index_t n, index_t m) {
    const size_t nm = static_cast<size_t>(n) * m;
    if (K.size() < nm) K.resize(nm);
    if (u.size() < static_cast<size_t>(n)) u.resize(n), kv.resize(n);
    if (v.size() < static_cast<size_t>(m)) v.resize(m), ktu.resize(m), zero.assign(m, T(0));
  }
};

// Balanced kernel-domain Sinkhorn on one small dense problem, serial. Same contract as
// solve_kernel: potentials (eps log u, eps log v) in z; false (z emptied, for a cold log-domain
// restart) when K underflows or a scaling leaves the safe range. `info` is appended to.
template <class T>
bool solve_kernel_small(const T* C, index_t n, index_t m, const T* a, const T* b, T eps, Potentials<T>& z,
                        const Options& opt, Info& info, SmallWork<T>& w) {
  w.fit(n, m);
  const bool avx2 = use_avx2();
  const T inv = T(1) / eps;
  const T tiny = std::numeric_limits<T>::min() * T(1e6);
  T* K = w.K.data();
  T *u = w.u.data(), *v = w.v.data(), *ktu = w.ktu.data(), *kv = w.kv.data();
  for (index_t i = 0; i < n; ++i) {
    T* k = K + i * m;
    exp_row(C + i * m, w.zero.data(), inv, T(0), m, k, avx2);
    // exp_row clamps its argument, so entries far below `tiny` come out tiny, not 0: flush them.
    for (index_t j = 0; j < m; ++j) k[j] = k[j] < tiny ? T(0) : k[j];
  }
  const bool warm = static_cast<index_t>(z.f.size()) == n && static_cast<index_t>(z.g.size()) == m;
  for (index_t i = 0; i < n; ++i) u[i] = warm ? std::exp(z.f[i] * inv) : T(1);
  for (index_t j = 0; j < m; ++j) v[j] = warm ? std::exp(z.g[j] * inv) : T(1);
  const T hi = std::sqrt(std::numeric_limits<T>::max()) * T(1e-3), lo = T(1) / hi;
  OmegaSchedule sched(opt, info.errors.size());
  double omega_used = sched.omega();
  bool last_u_plain = false, failed = false;
  long it = info.n_iter;
  while (it < opt.max_iter) {
    const double omega = sched.omega();
    detail::kt_x(K, n, m, u, ktu, avx2);
    double res2 = 0;
    for (index_t j = 0; j < m; ++j) {
      const double d = static_cast<double>(v[j]) * ktu[j] - b[j];
      res2 += d * d;
    }
    const double err = std::sqrt(res2);
    if (!std::isfinite(err)) {
      failed = true;
      break;
    }
    if (err < opt.tol && last_u_plain) {
      info.errors.push_back(err);
      info.converged = true;
      break;
    }
    const T om = static_cast<T>(omega);
    bool ok = detail::scale_update(v, b, ktu, m, om, lo, hi);
    detail::k_x(K, n, m, v, kv, avx2);
    ok &= detail::scale_update(u, a, kv, n, om, lo, hi);
    last_u_plain = omega == 1.0;
    ++it;
    info.errors.push_back(err);
    if (!ok) {
      failed = true;
      break;
    }
    if (err < opt.tol) {
      sched.finish();  // over-relaxed step met the tolerance: finish with plain steps (exact rows)
      continue;
    }
    if (sched.observe(info.errors, err)) omega_used = sched.omega();
  }
  info.n_iter = it;
  info.omega = opt.adaptive ? omega_used : opt.omega;
  if (failed) {
    info.note = "kernel underflow or scaling overflow: switched to the log domain";
    z.f.clear();
    z.g.clear();
    return false;
  }
  z.f.resize(n);
  z.g.resize(m);
  for (index_t i = 0; i < n; ++i) z.f[i] = eps * std::log(u[i]);
  for (index_t j = 0; j < m; ++j) z.g[j] = eps * std::log(v[j]);
  return true;
}

}  // namespace ot
}  // namespace kf
