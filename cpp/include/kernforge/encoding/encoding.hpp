// Forward and backward passes of the multiresolution hash encodings (hypercube grid: Müller et
// al. 2022; simplex: Wen & Yang 2023, arXiv:2311.15439), any dim in [1, 8] at run time, with
// compiled specialisations for dim = 2, 3, 4 and features_per_level = 2.
//
// Layouts (all C-contiguous): x (n, dim) in [0, 1]^dim; params and grad_params (total_rows,
// features); out and grad_out (n, levels * features), level l in columns [l F, (l + 1) F).
//
// Determinism: the table gradient is accumulated level by level, each level's rows by one thread
// in point order (levels are distributed over threads; their tables are disjoint), so the result is
// bitwise identical for any thread count, with no atomics and no per-thread table copies. The input
// gradient is a per-point sum over levels in a fixed order.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "kernforge/common/config.hpp"
#include "kernforge/common/errors.hpp"
#include "kernforge/common/threads.hpp"
#include "kernforge/common/views.hpp"
#include "kernforge/encoding/cells.hpp"
#include "kernforge/encoding/layout.hpp"

namespace kf {
namespace encoding {

// Inputs must lie in [0, 1] (no silent clamping: an out-of-range input is almost always a bug in
// the caller's normalisation, and clamping would hide it behind a constant feature).
template <class T>
void check_points(const T* x, index_t n, int d) {
  const index_t m = n * d;
  bool ok = true;
  for (index_t k = 0; k < m; ++k) ok &= (x[k] >= T(0)) & (x[k] <= T(1));
  if (ok) return;
  for (index_t k = 0; k < m; ++k) {
    const T v = x[k];
    if (std::isnan(v)) throw_domain("x must not contain NaN, found one at x[", k / d, ", ", k % d, "]");
    if (!(v >= T(0) && v <= T(1)))
      throw_domain("x must lie in [0, 1]^dim (inputs are not clamped), got x[", k / d, ", ", k % d, "] = ", v);
  }
}

namespace detail {

template <Kind K, class T, int DC>
using CellOf = std::conditional_t<K == Kind::grid, GridCell<T, DC>, SimplexCell<T, DC>>;

// Points per block of the level-parallel backward: x and grad_out rows of a block stay in cache
// while every level visits them.
inline constexpr index_t kBackwardBlock = 4096;
// Points whose cells are located (and their table rows prefetched) before any row is read: the
// lookups of a fine level are cache misses, and issuing a batch of them at once overlaps their
// latency instead of waiting for each in turn.
inline constexpr int kBatch = 16;

template <class T>
inline void prefetch_rows(const T* table, const std::uint32_t* rows, int nv, int F, bool write) {
  for (int k = 0; k < nv; ++k) {
    const T* p = table + static_cast<std::size_t>(rows[k]) * F;
    if (write)
      __builtin_prefetch(p, 1, 1);
    else
      __builtin_prefetch(p, 0, 1);
  }
}

template <class T, Kind K, int DC, int FC>
void forward(const Layout& L, const T* params, const T* x, index_t n, T* out) {
  using Cell = CellOf<K, T, DC>;
  const int d = DC > 0 ? DC : L.dim, F = FC > 0 ? FC : L.features, LF = L.levels * F;
  const std::size_t work = static_cast<std::size_t>(n) * L.levels * L.vertices() * F;
  const index_t nb = (n + kBatch - 1) / kBatch;
  ParallelGuard guard;
#pragma omp parallel num_threads(kf::threads_for(work, 1 << 16))
  guard.run([&] {
    std::vector<Cell> cells(kBatch, Cell(d));
    std::vector<T> xs(static_cast<std::size_t>(kBatch) * kMaxDim);
#pragma omp for schedule(static)
    for (index_t b = 0; b < nb; ++b) {
      const index_t i0 = b * kBatch;
      const int m = static_cast<int>(std::min<index_t>(kBatch, n - i0));
      for (int j = 0; j < m; ++j) Cell::prepare(L, x + (i0 + j) * d, d, &xs[j * kMaxDim]);
      for (int l = 0; l < L.levels; ++l) {
        const Level& lv = L.lv[l];
        const T* table = params + lv.offset * F;
        for (int j = 0; j < m; ++j) {
          cells[j].locate(lv, &xs[j * kMaxDim]);
          prefetch_rows(table, cells[j].row, cells[j].nv(), F, false);
        }
        for (int j = 0; j < m; ++j) {
          const Cell& cell = cells[j];
          T acc[FC > 0 ? FC : 64];
          for (int f = 0; f < F; ++f) acc[f] = T(0);
          for (int k = 0; k < cell.nv(); ++k) {
            const T* v = table + static_cast<std::size_t>(cell.row[k]) * F;
            const T w = cell.w[k];
            for (int f = 0; f < F; ++f) acc[f] += w * v[f];
          }
          T* o = out + (i0 + j) * LF + l * F;
          for (int f = 0; f < F; ++f) o[f] = acc[f];
        }
      }
    }
  });
  guard.rethrow();
}

// Adds to grad_params (zeroed by the caller, or holding a gradient to add to).
template <class T, Kind K, int DC, int FC>
void backward_params(const Layout& L, const T* x, index_t n, const T* grad_out, T* grad_params) {
  using Cell = CellOf<K, T, DC>;
  const int d = DC > 0 ? DC : L.dim, F = FC > 0 ? FC : L.features, LF = L.levels * F;
  const std::size_t work = static_cast<std::size_t>(n) * L.levels * L.vertices() * F;
  const int nt = std::min(kf::threads_for(work, 1 << 16), L.levels);
  ParallelGuard guard;
#pragma omp parallel num_threads(nt)
  guard.run([&] {
    std::vector<Cell> cells(kBatch, Cell(d));
    T xs[kMaxDim] = {};
    for (index_t b0 = 0; b0 < n; b0 += kBackwardBlock) {
      const index_t b1 = std::min(n, b0 + kBackwardBlock);
      // Each level's rows are written by one thread, in point order: deterministic for any
      // thread count.
#pragma omp for schedule(dynamic, 1)
      for (int l = 0; l < L.levels; ++l) {
        const Level& lv = L.lv[l];
        T* table = grad_params + lv.offset * F;
        for (index_t i0 = b0; i0 < b1; i0 += kBatch) {
          const int m = static_cast<int>(std::min<index_t>(kBatch, b1 - i0));
          for (int j = 0; j < m; ++j) {
            Cell::prepare(L, x + (i0 + j) * d, d, xs);
            cells[j].locate(lv, xs);
            prefetch_rows(table, cells[j].row, cells[j].nv(), F, true);
          }
          for (int j = 0; j < m; ++j) {
            const Cell& cell = cells[j];
            const T* g = grad_out + (i0 + j) * LF + l * F;
            for (int k = 0; k < cell.nv(); ++k) {
              T* v = table + static_cast<std::size_t>(cell.row[k]) * F;
              const T w = cell.w[k];
              for (int f = 0; f < F; ++f) v[f] += w * g[f];
            }
          }
        }
      }
    }
  });
  guard.rethrow();
}

template <class T, Kind K, int DC, int FC>
void backward_input(const Layout& L, const T* params, const T* x, index_t n, const T* grad_out, T* grad_x) {
  using Cell = CellOf<K, T, DC>;
  const int d = DC > 0 ? DC : L.dim, F = FC > 0 ? FC : L.features, LF = L.levels * F;
  const std::size_t work = static_cast<std::size_t>(n) * L.levels * L.vertices() * (F + d);
  const index_t nb = (n + kBatch - 1) / kBatch;
  ParallelGuard guard;
#pragma omp parallel num_threads(kf::threads_for(work, 1 << 16))
  guard.run([&] {
    std::vector<Cell> cells(kBatch, Cell(d));
    std::vector<T> xs(static_cast<std::size_t>(kBatch) * kMaxDim), gp(static_cast<std::size_t>(kBatch) * kMaxDim);
    T dp[kMaxDim] = {};
    T gv[K == Kind::grid ? (1 << Cell::kDim) : Cell::kDim + 1];
#pragma omp for schedule(static)
    for (index_t b = 0; b < nb; ++b) {
      const index_t i0 = b * kBatch;
      const int m = static_cast<int>(std::min<index_t>(kBatch, n - i0));
      for (int j = 0; j < m; ++j) Cell::prepare(L, x + (i0 + j) * d, d, &xs[j * kMaxDim]);
      std::fill(gp.begin(), gp.end(), T(0));
      for (int l = 0; l < L.levels; ++l) {
        const Level& lv = L.lv[l];
        const T* table = params + lv.offset * F;
        const T s = static_cast<T>(lv.scale);
        for (int j = 0; j < m; ++j) {
          cells[j].locate(lv, &xs[j * kMaxDim]);
          prefetch_rows(table, cells[j].row, cells[j].nv(), F, false);
        }
        for (int j = 0; j < m; ++j) {
          const Cell& cell = cells[j];
          const T* gl = grad_out + (i0 + j) * LF + l * F;
          for (int k = 0; k < cell.nv(); ++k) {
            const T* v = table + static_cast<std::size_t>(cell.row[k]) * F;
            T acc = T(0);
            for (int f = 0; f < F; ++f) acc += gl[f] * v[f];
            gv[k] = acc;
          }
          cell.position_grad(gv, dp);
          for (int a = 0; a < d; ++a) gp[j * kMaxDim + a] += s * dp[a];
        }
      }
      for (int j = 0; j < m; ++j) Cell::input_grad(L, &gp[j * kMaxDim], d, grad_x + (i0 + j) * d);
    }
  });
  guard.rethrow();
}

// Calls fn(std::integral_constant<Kind, K>, std::integral_constant<int, DC>,
// std::integral_constant<int, FC>) for the layout's kind, dim (2, 3, 4 compiled, else 0 = run
// time) and features (2 compiled, else 0).
template <class Fn>
void dispatch(const Layout& L, Fn&& fn) {
  auto with_f = [&](auto kind, auto dc) {
    if (L.features == 2)
      fn(kind, dc, std::integral_constant<int, 2>{});
    else
      fn(kind, dc, std::integral_constant<int, 0>{});
  };
  auto with_d = [&](auto kind) {
    switch (L.dim) {
      case 2: with_f(kind, std::integral_constant<int, 2>{}); break;
      case 3: with_f(kind, std::integral_constant<int, 3>{}); break;
      case 4: with_f(kind, std::integral_constant<int, 4>{}); break;
      default: with_f(kind, std::integral_constant<int, 0>{}); break;
    }
  };
  if (L.kind == Kind::grid)
    with_d(std::integral_constant<Kind, Kind::grid>{});
  else
    with_d(std::integral_constant<Kind, Kind::simplex>{});
}

}  // namespace detail

// out (n, levels * features) = encoding of x (n, dim) with tables params (total_rows, features).
template <class T>
void forward(const Layout& L, const T* params, const T* x, index_t n, T* out) {
  check_points(x, n, L.dim);
  detail::dispatch(L, [&](auto k, auto dc, auto fc) {
    detail::forward<T, decltype(k)::value, decltype(dc)::value, decltype(fc)::value>(L, params, x, n, out);
  });
}

// Adds d(loss)/d(params) to grad_params (if not null) and writes d(loss)/dx to grad_x (if not
// null), given grad_out = d(loss)/d(out).
template <class T>
void backward(const Layout& L, const T* params, const T* x, index_t n, const T* grad_out, T* grad_params,
              T* grad_x) {
  check_points(x, n, L.dim);
  detail::dispatch(L, [&](auto k, auto dc, auto fc) {
    constexpr Kind K = decltype(k)::value;
    constexpr int DC = decltype(dc)::value, FC = decltype(fc)::value;
    if (grad_params) detail::backward_params<T, K, DC, FC>(L, x, n, grad_out, grad_params);
    if (grad_x) detail::backward_input<T, K, DC, FC>(L, params, x, n, grad_out, grad_x);
  });
}

}  // namespace encoding
}  // namespace kf
