// The interpolation cell of one input at one level, for the two encodings:
//  - GridCell: the 2^n corners of the hypercube around p with multilinear weights
//    prod_i (f_i or 1 - f_i) (Müller et al. 2022, section 3);
//  - SimplexCell: Wen & Yang (2023, arXiv:2311.15439): in the skewed lattice, the Kuhn simplex
//    that holds p is found by sorting the fractions f descending (sigma); its n + 1 vertices are
//    v_0 = floor(p), v_k = v_{k-1} + e_sigma(k), with barycentric weights w_0 = 1 - f_(1), w_k = f_(k) - f_(k+1),
//    w_n = f_(n) (non-negative, summing to 1; barycentric coordinates are affine-invariant, so no
//    unskew is needed).
// Both give the table row of every vertex (dense index or spatial hash, layout.hpp); each vertex
// index is the previous one plus a stride (dense) or XOR a per-axis term (hash), so a cell costs
// O(vertices), not O(vertices * dim).
#pragma once

#include <cmath>
#include <cstdint>

#include "kernforge/encoding/layout.hpp"

namespace kf {
namespace encoding {

// Integer corner c in [0, res - 2] and fraction f in [0, 1] of lattice coordinate p. The clamps
// are a guard against rounding at x = 0 or 1 (valid inputs give p in [0.5, R s + 0.5]); they never
// change an interior point.
template <class T>
inline void split_position(T p, std::uint32_t res, std::uint32_t& c, T& f) {
  // p >= 0.5 for valid inputs, where truncation is floor (and far cheaper than std::floor on
  // baseline x86-64, which lacks SSE4.1's roundss).
  std::int64_t ci = p > T(0) ? static_cast<std::int64_t>(p) : 0;
  const std::int64_t hi = static_cast<std::int64_t>(res) - 2;
  if (ci > hi) ci = hi;
  c = static_cast<std::uint32_t>(ci);
  f = p - static_cast<T>(ci);
  if (f < T(0)) f = T(0);
  if (f > T(1)) f = T(1);
}

// The base index of corner c and, per axis, the term that steps a vertex index by +1 on that axis.
struct IndexSteps {
  std::uint32_t base = 0;
  std::uint32_t step[kMaxDim] = {};
  bool dense = true;
  std::uint32_t mask = 0;

  std::uint32_t next(std::uint32_t h, int axis) const { return dense ? h + step[axis] : h ^ step[axis]; }
  std::uint32_t row(std::uint32_t h) const { return dense ? h : (h & mask); }
};

inline void index_steps(const Level& lv, const std::uint32_t* c, int d, IndexSteps& s) {
  s.dense = lv.dense;
  s.mask = static_cast<std::uint32_t>(lv.rows - 1);  // hashed levels have rows = T = 2^k
  s.base = 0;
  if (lv.dense) {
    for (int i = 0; i < d; ++i) {
      s.base += c[i] * lv.stride[i];
      s.step[i] = lv.stride[i];
    }
  } else {
    for (int i = 0; i < d; ++i) {
      const std::uint32_t a = c[i] * kPrimes[i];  // wraps mod 2^32, as in instant-ngp
      s.base ^= a;
      s.step[i] = a ^ ((c[i] + 1u) * kPrimes[i]);
    }
  }
}

// ------------------------------------------------------------------------------- hypercube grid
template <class T, int DC>
struct GridCell {
  static constexpr int kDim = DC > 0 ? DC : kMaxDim;
  static constexpr int kVerts = 1 << kDim;

  // With a compile-time dim these are constants, so every loop below unrolls.
  int d_;
  T f[kDim] = {};
  std::uint32_t row[kVerts];
  T w[kVerts];

  explicit GridCell(int dim) : d_(DC > 0 ? DC : dim) {}
  int dim() const { return DC > 0 ? DC : d_; }
  int nv() const { return DC > 0 ? (1 << DC) : (1 << d_); }

  // The grid interpolates in the input coordinates themselves.
  static void prepare(const Layout&, const T* x, int d, T* xs) {
    for (int i = 0; i < d; ++i) xs[i] = x[i];
  }

  void locate(const Level& lv, const T* xs) {
    const int d = dim();
    std::uint32_t c[kDim];
    const T s = static_cast<T>(lv.scale);
    for (int i = 0; i < d; ++i) split_position(s * xs[i] + T(0.5), lv.res, c[i], f[i]);
    IndexSteps st;
    index_steps(lv, c, d, st);
    // Corner m has bit i set where it steps on axis i; built by doubling, one axis at a time.
    std::uint32_t h[kVerts];
    h[0] = st.base;
    w[0] = T(1);
    int n = 1;
    for (int i = 0; i < d; ++i) {
      const T fi = f[i];
      for (int j = 0; j < n; ++j) {
        h[j + n] = st.next(h[j], i);
        w[j + n] = w[j] * fi;
        w[j] = w[j] * (T(1) - fi);
      }
      n *= 2;
    }
    for (int j = 0; j < nv(); ++j) row[j] = st.row(h[j]);
  }

  // d(loss)/d(p_i) given gv[m] = grad_out . V_m for every corner m: the weights with axis i's
  // factor replaced by its derivative (-1 for the near corner, +1 for the far one).
  void position_grad(const T* gv, T* dp) const {
    const int d = dim();
    T wi[kVerts];
    for (int i = 0; i < d; ++i) {
      wi[0] = T(1);
      int n = 1;
      for (int a = 0; a < d; ++a) {
        const T lo = a == i ? T(-1) : T(1) - f[a];
        const T hi = a == i ? T(1) : f[a];
        for (int j = 0; j < n; ++j) {
          wi[j + n] = wi[j] * hi;
          wi[j] = wi[j] * lo;
        }
        n *= 2;
      }
      T acc = T(0);
      for (int j = 0; j < nv(); ++j) acc += wi[j] * gv[j];
      dp[i] = acc;
    }
  }

  // d(loss)/dx from the accumulated sum over levels of s_l * d(loss)/d(p): x' = x.
  static void input_grad(const Layout&, const T* gp, int d, T* gx) {
    for (int i = 0; i < d; ++i) gx[i] = gp[i];
  }
};

// ------------------------------------------------------------------------------- simplex
template <class T, int DC>
struct SimplexCell {
  static constexpr int kDim = DC > 0 ? DC : kMaxDim;

  int d_;
  int axis[kDim] = {};  // axis[k]: the axis stepped from vertex k to vertex k + 1 (sigma(k + 1))
  std::uint32_t row[kDim + 1];
  T w[kDim + 1];

  explicit SimplexCell(int dim) : d_(DC > 0 ? DC : dim) {}
  int dim() const { return DC > 0 ? DC : d_; }
  int nv() const { return dim() + 1; }

  // Skew x' = (x + F_n sum(x) 1) / nu (layout.hpp: Skew).
  static void prepare(const Layout& L, const T* x, int d, T* xs) {
    T sum = T(0);
    for (int i = 0; i < d; ++i) sum += x[i];
    const T F = static_cast<T>(L.skew.F), inv_nu = static_cast<T>(L.skew.inv_nu);
    for (int i = 0; i < d; ++i) xs[i] = (x[i] + F * sum) * inv_nu;
  }

  void locate(const Level& lv, const T* xs) {
    const int d = dim();
    std::uint32_t c[kDim];
    T f[kDim] = {};
    const T s = static_cast<T>(lv.scale);
    for (int i = 0; i < d; ++i) split_position(s * xs[i] + T(0.5), lv.res, c[i], f[i]);
    // Insertion sort of the axes by descending fraction (stable: ties keep axis order, and a tie
    // only creates a zero-weight vertex, so either order gives the same value).
    for (int i = 0; i < d; ++i) {
      int j = i;
      while (j > 0 && f[axis[j - 1]] < f[i]) {
        axis[j] = axis[j - 1];
        --j;
      }
      axis[j] = i;
    }
    IndexSteps st;
    index_steps(lv, c, d, st);
    std::uint32_t h = st.base;
    row[0] = st.row(h);
    w[0] = T(1) - f[axis[0]];
    for (int k = 1; k <= d; ++k) {
      h = st.next(h, axis[k - 1]);
      row[k] = st.row(h);
      w[k] = k < d ? f[axis[k - 1]] - f[axis[k]] : f[axis[d - 1]];
    }
  }

  // Inside a simplex y = V_0 + sum_k f_sigma(k) (V_k - V_{k-1}), so d(loss)/d(p_sigma(k)) is
  // gv_k - gv_{k-1}: n differences against the grid's n 2^(n-1) terms.
  void position_grad(const T* gv, T* dp) const {
    const int d = dim();
    for (int k = 1; k <= d; ++k) dp[axis[k - 1]] = gv[k] - gv[k - 1];
  }

  // x' = M x with M = (I + F_n 1 1^T) / nu symmetric, so d/dx = M d/dx'.
  static void input_grad(const Layout& L, const T* gp, int d, T* gx) {
    T sum = T(0);
    for (int i = 0; i < d; ++i) sum += gp[i];
    const T F = static_cast<T>(L.skew.F), inv_nu = static_cast<T>(L.skew.inv_nu);
    for (int i = 0; i < d; ++i) gx[i] = (gp[i] + F * sum) * inv_nu;
  }
};

}  // namespace encoding
}  // namespace kf
