// Randomized iterative sketching for linear systems A x = b: the sketch-and-project family of
// Gower & Richtarik ("Randomized iterative methods for linear systems", SIAM J. Matrix Anal. Appl.
// 36(4), 2015, eq. (1.1)-(1.2)): with a random sketch S (m x q) drawn afresh at every step,
//
//   x_{k+1} = x_k - A^T S (S^T A A^T S)^+ S^T (A x_k - b)                       (B = I, "row" sketches)
//
// i.e. x_{k+1} is the projection of x_k onto the sketched system S^T A x = S^T b. Special cases:
//   * gaussian:      S has i.i.d. N(0, 1) entries (q = 1 is the Gaussian-vector method used by
//                    Hong, Na, Mahoney & Kolar, ICML 2023, for the Newton-KKT system);
//   * count:         S is a CountSketch (each row of A is added, with a random sign, to one of q
//                    buckets), so S^T A costs one pass over A whatever q is;
//   * block_rows:    S = I_{:, tau}, tau a block of q rows of a random permutation redrawn every
//                    epoch (randomized block Kaczmarz, Needell & Tropp 2014; q = 1 is Kaczmarz);
//   * block_coords:  the B = A^T A variant with S = A I_{:, J}, J a block of q columns, i.e.
//                    randomized block coordinate descent on ||A x - b||^2 (Leventhal & Lewis 2010):
//                    x_J <- x_J - (A_J^T A_J)^+ A_J^T (A x - b).
// None needs symmetry or definiteness: non-symmetric and indefinite (KKT) systems converge, at the
// rate of the normal equations (1 - lambda_min(A^T A E[Z]) per step, Gower & Richtarik Thm 4.6).
//
// Optional heavy-ball momentum x_{k+1} += beta (x_k - x_{k-1}) (Loizou & Richtarik 2020, eq. (9)).
//
// Residual-based stopping: ||A x - b|| <= max(rtol ||b||, atol). gaussian, count and block_coords keep
// r = A x - b up to date at every step (for count/gaussian the update costs one extra product with A,
// for block_coords it is part of the step), so the test is free; block_rows recomputes the residual
// once every `check_every` steps (default: one epoch, ceil(m / q) steps, i.e. at most the cost of the
// epoch itself). A tracked residual that meets the tolerance is confirmed by a fresh product A x.
//
// Determinism: the sketch of step k comes from kf::Rng(seed, k) (block_rows/block_coords: the
// permutation of epoch e from kf::Rng(seed, e)), and every parallel loop writes independent outputs
// with sequential inner sums, so the result is bitwise identical for any thread count.
#pragma once

#include <Eigen/Dense>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "kernforge/common/errors.hpp"
#include "kernforge/common/rng.hpp"
#include "kernforge/common/threads.hpp"
#include "kernforge/common/views.hpp"

namespace kf {
namespace sketch {

enum class SketchKind { gaussian, count, block_rows, block_coords };

inline SketchKind parse_sketch(const std::string& s) {
  if (s == "gaussian") return SketchKind::gaussian;
  if (s == "count") return SketchKind::count;
  if (s == "block_rows") return SketchKind::block_rows;
  if (s == "block_coords") return SketchKind::block_coords;
  throw_invalid("sketch must be 'gaussian', 'count', 'block_rows' or 'block_coords', got '", s, "'");
}

struct IterativeOptions {
  SketchKind sketch = SketchKind::block_rows;
  index_t block = 8;           // q, the sketch size (rows of S^T A, or columns for block_coords)
  double rtol = 1e-8;          // relative to ||b||
  double atol = 0.0;           // absolute
  std::int64_t max_iter = 100000;
  std::uint64_t seed = 0;
  double momentum = 0.0;       // heavy-ball beta in [0, 1)
  std::int64_t check_every = 0;  // 0: automatic (see the header comment)
};

enum class IterativeStatus { converged = 0, max_iter = 1, non_finite = 2 };

struct IterativeInfo {
  std::int64_t n_iter = 0;
  bool converged = false;
  IterativeStatus status = IterativeStatus::max_iter;
  double residual = 0.0;              // ||A x - b|| of the returned x (freshly computed)
  double b_norm = 0.0;
  std::vector<double> residuals;      // ||A x_k - b|| / ||b|| (or absolute if b = 0) at the checks
  std::vector<std::int64_t> checked_at;  // the k of each entry of residuals
};

namespace detail {

// Eight independent partial sums in a fixed order: one accumulator makes the loop latency bound (and
// GCC kept it on the stack); measured 25% off a block_rows step on a dense 6000 x 6000 K. The fixed
// order keeps the result independent of the thread count.
template <class T>
double dot(const T* __restrict a, const T* __restrict b, index_t n) {
  double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0, s4 = 0.0, s5 = 0.0, s6 = 0.0, s7 = 0.0;
  index_t i = 0;
  for (; i + 8 <= n; i += 8) {
    s0 += static_cast<double>(a[i]) * static_cast<double>(b[i]);
    s1 += static_cast<double>(a[i + 1]) * static_cast<double>(b[i + 1]);
    s2 += static_cast<double>(a[i + 2]) * static_cast<double>(b[i + 2]);
    s3 += static_cast<double>(a[i + 3]) * static_cast<double>(b[i + 3]);
    s4 += static_cast<double>(a[i + 4]) * static_cast<double>(b[i + 4]);
    s5 += static_cast<double>(a[i + 5]) * static_cast<double>(b[i + 5]);
    s6 += static_cast<double>(a[i + 6]) * static_cast<double>(b[i + 6]);
    s7 += static_cast<double>(a[i + 7]) * static_cast<double>(b[i + 7]);
  }
  for (; i < n; ++i) s0 += static_cast<double>(a[i]) * static_cast<double>(b[i]);
  return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7));
}

inline double nrm2(const std::vector<double>& v) {
  double s = 0.0;
  for (double x : v) s += x * x;
  return std::sqrt(s);
}

// y = G^+ s for a small symmetric positive semidefinite G (q x q, row-major, double; L is workspace). Cholesky when G
// is safely positive definite; otherwise (a repeated or zero row in the sketch) the pseudo-inverse by
// an eigendecomposition, which is exactly the projection sketch-and-project asks for.
inline void gram_solve(const double* G, const double* s, index_t q, double* y, std::vector<double>& L) {
  for (index_t i = 0; i < q; ++i) y[i] = 0.0;
  if (q == 1) {
    y[0] = G[0] > 0.0 ? s[0] / G[0] : 0.0;
    return;
  }
  double dmax = 0.0;
  for (index_t i = 0; i < q; ++i) dmax = std::max(dmax, G[i * q + i]);
  if (!(dmax > 0.0)) return;
  const double tiny = 1e3 * static_cast<double>(q) * std::numeric_limits<double>::epsilon() * dmax;
  L.assign(G, G + q * q);
  bool ok = true;
  for (index_t j = 0; j < q && ok; ++j) {
    double d = L[j * q + j];
    for (index_t k = 0; k < j; ++k) d -= L[j * q + k] * L[j * q + k];
    if (!(d > tiny)) {
      ok = false;
      break;
    }
    d = std::sqrt(d);
    L[j * q + j] = d;
    for (index_t i = j + 1; i < q; ++i) {
      double v = L[i * q + j];
      for (index_t k = 0; k < j; ++k) v -= L[i * q + k] * L[j * q + k];
      L[i * q + j] = v / d;
    }
  }
  if (ok) {
    for (index_t i = 0; i < q; ++i) {  // L w = s
      double v = s[i];
      for (index_t k = 0; k < i; ++k) v -= L[i * q + k] * y[k];
      y[i] = v / L[i * q + i];
    }
    for (index_t i = q - 1; i >= 0; --i) {  // L^T y = w
      double v = y[i];
      for (index_t k = i + 1; k < q; ++k) v -= L[k * q + i] * y[k];
      y[i] = v / L[i * q + i];
    }
    return;
  }
  Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>> Gm(G, q, q);
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(Gm);
  const Eigen::VectorXd lam = es.eigenvalues();
  const double cut = 1e3 * static_cast<double>(q) * std::numeric_limits<double>::epsilon() * lam.maxCoeff();
  Eigen::Map<const Eigen::VectorXd> sv(s, q);
  Eigen::VectorXd t = es.eigenvectors().transpose() * sv;
  for (index_t i = 0; i < q; ++i) t[i] = lam[i] > cut ? t[i] / lam[i] : 0.0;
  const Eigen::VectorXd out = es.eigenvectors() * t;
  for (index_t i = 0; i < q; ++i) y[i] = out[i];
}

}  // namespace detail

// Solve A x = b in place: x holds the start on entry (x0 = 0 is the usual choice) and the iterate on
// exit. A is m x n with unit column stride (C order rows; any row stride). Throws
// std::invalid_argument for bad options or shapes.
template <class T>
IterativeInfo sketch_and_project(const MatrixView<const T>& A, const T* b, T* x, const IterativeOptions& opt) {
  const index_t m = A.rows, n = A.cols;
  KF_REQUIRE(m > 0 && n > 0, "A must not be empty, got shape (", m, ", ", n, ")");
  KF_REQUIRE(A.col_stride == 1 || n == 1, "A must have unit column stride (C-ordered rows)");
  KF_REQUIRE(opt.block >= 1, "block must be >= 1, got ", opt.block);
  KF_REQUIRE(opt.max_iter >= 0, "max_iter must be non-negative, got ", opt.max_iter);
  KF_REQUIRE(opt.rtol >= 0.0 && opt.atol >= 0.0, "rtol and atol must be non-negative, got ", opt.rtol, " and ",
             opt.atol);
  KF_REQUIRE(opt.momentum >= 0.0 && opt.momentum < 1.0, "momentum must lie in [0, 1), got ", opt.momentum);
  KF_REQUIRE(opt.check_every >= 0, "check_every must be non-negative, got ", opt.check_every);

  const SketchKind kind = opt.sketch;
  const index_t dim = (kind == SketchKind::block_coords) ? n : m;
  const index_t q = std::min(opt.block, kind == SketchKind::gaussian || kind == SketchKind::count ? m : dim);
  const double beta = opt.momentum;
  const bool track_r = kind != SketchKind::block_rows;
  const index_t per_epoch = (dim + q - 1) / q;
  const std::int64_t check_every =
      opt.check_every > 0 ? opt.check_every : (track_r ? 1 : static_cast<std::int64_t>(per_epoch));
  auto row = [&](index_t i) { return A.data + i * A.row_stride; };

  // r = A x - b, rows in parallel, each a sequential dot: deterministic.
  std::vector<double> r(m);
  auto full_residual = [&]() {
    const int nt = threads_for(static_cast<std::size_t>(m) * n);
#pragma omp parallel for schedule(static) num_threads(nt)
    for (index_t i = 0; i < m; ++i) r[i] = detail::dot(row(i), x, n) - static_cast<double>(b[i]);
    return detail::nrm2(r);
  };

  IterativeInfo info;
  double bn = 0.0;
  for (index_t i = 0; i < m; ++i) bn += static_cast<double>(b[i]) * static_cast<double>(b[i]);
  bn = std::sqrt(bn);
  info.b_norm = bn;
  const double target = std::max(opt.rtol * bn, opt.atol);
  const double scale = bn > 0.0 ? bn : 1.0;

  double rn = full_residual();
  auto record = [&](std::int64_t k, double v) {
    info.residuals.push_back(v / scale);
    info.checked_at.push_back(k);
  };
  record(0, rn);
  if (!std::isfinite(rn)) {
    info.status = IterativeStatus::non_finite;
    info.residual = rn;
    return info;
  }
  if (rn <= target) {
    info.converged = true;
    info.status = IterativeStatus::converged;
    info.residual = rn;
    return info;
  }

  std::vector<T> W;                 // q x n, rows of S^T A (gaussian / count)
  std::vector<T> C;                 // m x q, columns A_J (block_coords), row-major
  std::vector<double> sk(q), y(q), G(q * q), work;  // sketched residual, Gram, Cholesky workspace
  std::vector<index_t> perm(dim), blk(q);
  std::vector<int> bucket;
  std::vector<double> sgn, Sg;
  std::vector<T> dx(n), x_prev, dvec;
  std::vector<double> r_prev;
  if (beta > 0.0) {
    x_prev.assign(x, x + n);
    if (track_r) r_prev = r;
  }
  if (kind == SketchKind::gaussian || kind == SketchKind::count) W.resize(static_cast<std::size_t>(q) * n);
  if (kind == SketchKind::gaussian) Sg.resize(static_cast<std::size_t>(m) * q);
  if (kind == SketchKind::count) {
    bucket.resize(m);
    sgn.resize(m);
  }
  if (kind == SketchKind::block_coords) C.resize(static_cast<std::size_t>(m) * q);
  for (index_t i = 0; i < dim; ++i) perm[i] = i;

  std::int64_t k = 0;
  std::int64_t epoch = -1;
  index_t qk = q;  // size of the current block (the last block of an epoch may be smaller)
  while (k < opt.max_iter) {
    // ---- draw the sketch of step k
    if (kind == SketchKind::block_rows || kind == SketchKind::block_coords) {
      const std::int64_t e = k / per_epoch;
      if (e != epoch) {
        epoch = e;
        Rng g(opt.seed, static_cast<std::uint64_t>(e));
        for (index_t i = 0; i < dim; ++i) perm[i] = i;
        for (index_t i = dim - 1; i > 0; --i) std::swap(perm[i], perm[g.below(static_cast<std::uint64_t>(i + 1))]);
      }
      const index_t off = static_cast<index_t>(k % per_epoch) * q;
      qk = std::min(q, dim - off);
      for (index_t l = 0; l < qk; ++l) blk[l] = perm[off + l];
    } else {
      Rng g(opt.seed, static_cast<std::uint64_t>(k));
      if (kind == SketchKind::gaussian) {
        for (auto& v : Sg) v = g.normal();
      } else {
        for (index_t i = 0; i < m; ++i) {
          bucket[i] = static_cast<int>(g.below(static_cast<std::uint64_t>(q)));
          sgn[i] = g.sign();
        }
      }
    }

    const int nt_big = threads_for(static_cast<std::size_t>(m) * n);
    if (kind == SketchKind::gaussian || kind == SketchKind::count) {
      // W = S^T A by column chunks (each output column summed over i in order); s = S^T r.
      const index_t chunk = 256;
      const index_t nchunks = (n + chunk - 1) / chunk;
      const int nt = threads_for(static_cast<std::size_t>(m) * n * (kind == SketchKind::gaussian ? q : 1));
#pragma omp parallel for schedule(static) num_threads(nt)
      for (index_t c = 0; c < nchunks; ++c) {
        const index_t j0 = c * chunk, j1 = std::min(n, j0 + chunk);
        for (index_t l = 0; l < q; ++l)
          for (index_t j = j0; j < j1; ++j) W[l * n + j] = T(0);
        for (index_t i = 0; i < m; ++i) {
          const T* __restrict ai = row(i);
          if (kind == SketchKind::gaussian) {
            for (index_t l = 0; l < q; ++l) {
              const T s = static_cast<T>(Sg[static_cast<std::size_t>(i) * q + l]);
              T* __restrict w = W.data() + l * n;
#pragma omp simd
              for (index_t j = j0; j < j1; ++j) w[j] += s * ai[j];
            }
          } else {
            const T s = static_cast<T>(sgn[i]);
            T* __restrict w = W.data() + static_cast<index_t>(bucket[i]) * n;
#pragma omp simd
            for (index_t j = j0; j < j1; ++j) w[j] += s * ai[j];
          }
        }
      }
      for (index_t l = 0; l < q; ++l) sk[l] = 0.0;
      if (kind == SketchKind::gaussian) {
        for (index_t i = 0; i < m; ++i)
          for (index_t l = 0; l < q; ++l) sk[l] += Sg[static_cast<std::size_t>(i) * q + l] * r[i];
      } else {
        for (index_t i = 0; i < m; ++i) sk[bucket[i]] += sgn[i] * r[i];
      }
      const int ntg = threads_for(static_cast<std::size_t>(q) * q * n);
#pragma omp parallel for schedule(static) num_threads(ntg)
      for (index_t p = 0; p < q * q; ++p) {
        const index_t a = p / q, c = p % q;
        if (c >= a) G[p] = detail::dot(W.data() + a * n, W.data() + c * n, n);
      }
      for (index_t a = 0; a < q; ++a)
        for (index_t c = 0; c < a; ++c) G[a * q + c] = G[c * q + a];
      detail::gram_solve(G.data(), sk.data(), q, y.data(), work);
      // dx = W^T y
      const int ntx = threads_for(static_cast<std::size_t>(q) * n);
#pragma omp parallel for schedule(static) num_threads(ntx)
      for (index_t c = 0; c < nchunks; ++c) {
        const index_t j0 = c * chunk, j1 = std::min(n, j0 + chunk);
        for (index_t j = j0; j < j1; ++j) {
          double v = 0.0;
          for (index_t l = 0; l < q; ++l) v += y[l] * static_cast<double>(W[l * n + j]);
          dx[j] = static_cast<T>(v);
        }
      }
    } else if (kind == SketchKind::block_rows) {
      for (index_t l = 0; l < qk; ++l) sk[l] = detail::dot(row(blk[l]), x, n) - static_cast<double>(b[blk[l]]);
      for (index_t a = 0; a < qk; ++a)
        for (index_t c = a; c < qk; ++c) G[a * qk + c] = G[c * qk + a] = detail::dot(row(blk[a]), row(blk[c]), n);
      detail::gram_solve(G.data(), sk.data(), qk, y.data(), work);
      for (index_t j = 0; j < n; ++j) dx[j] = T(0);
      for (index_t l = 0; l < qk; ++l) {
        const T yl = static_cast<T>(y[l]);
        const T* __restrict al = row(blk[l]);
        T* __restrict d = dx.data();
#pragma omp simd
        for (index_t j = 0; j < n; ++j) d[j] += yl * al[j];
      }
    } else {  // block_coords
      for (index_t i = 0; i < m; ++i) {
        const T* ai = row(i);
        for (index_t l = 0; l < qk; ++l) C[static_cast<std::size_t>(i) * q + l] = ai[blk[l]];
      }
      for (index_t l = 0; l < qk; ++l) sk[l] = 0.0;
      for (index_t a = 0; a < qk * qk; ++a) G[a] = 0.0;
      for (index_t i = 0; i < m; ++i) {
        const T* ci = C.data() + static_cast<std::size_t>(i) * q;
        for (index_t a = 0; a < qk; ++a) {
          const double ca = static_cast<double>(ci[a]);
          sk[a] += ca * r[i];
          for (index_t c = a; c < qk; ++c) G[a * qk + c] += ca * static_cast<double>(ci[c]);
        }
      }
      for (index_t a = 0; a < qk; ++a)
        for (index_t c = 0; c < a; ++c) G[a * qk + c] = G[c * qk + a];
      detail::gram_solve(G.data(), sk.data(), qk, y.data(), work);
    }

    // ---- x <- x - step + beta (x - x_prev); keep r = A x - b where tracked
    if (kind == SketchKind::block_coords) {
      if (beta > 0.0) {
        for (index_t j = 0; j < n; ++j) {
          const T xj = x[j];
          x[j] += static_cast<T>(beta) * (xj - x_prev[j]);
          x_prev[j] = xj;
        }
        for (index_t i = 0; i < m; ++i) {
          const double ri = r[i];
          r[i] += beta * (ri - r_prev[i]);
          r_prev[i] = ri;
        }
      }
      for (index_t l = 0; l < qk; ++l) x[blk[l]] -= static_cast<T>(y[l]);
      for (index_t i = 0; i < m; ++i) {
        const T* ci = C.data() + static_cast<std::size_t>(i) * q;
        double v = 0.0;
        for (index_t l = 0; l < qk; ++l) v += static_cast<double>(ci[l]) * y[l];
        r[i] -= v;
      }
    } else {
      if (beta > 0.0) {
        for (index_t j = 0; j < n; ++j) {
          const T xj = x[j];
          x[j] = xj - dx[j] + static_cast<T>(beta) * (xj - x_prev[j]);
          x_prev[j] = xj;
        }
      } else {
        for (index_t j = 0; j < n; ++j) x[j] -= dx[j];
      }
      if (track_r) {
        // r <- r - A dx (+ beta (r - r_prev)): rows in parallel.
#pragma omp parallel for schedule(static) num_threads(nt_big)
        for (index_t i = 0; i < m; ++i) {
          const double ri = r[i];
          double v = ri - detail::dot(row(i), dx.data(), n);
          if (beta > 0.0) {
            v += beta * (ri - r_prev[i]);
            r_prev[i] = ri;
          }
          r[i] = v;
        }
      }
    }
    ++k;

    if (k % check_every == 0 || k == opt.max_iter) {
      rn = track_r ? detail::nrm2(r) : full_residual();
      if (track_r && rn <= target) rn = full_residual();  // confirm: the tracked r drifts by rounding
      record(k, rn);
      if (!std::isfinite(rn)) {
        info.status = IterativeStatus::non_finite;
        break;
      }
      if (rn <= target) {
        info.converged = true;
        info.status = IterativeStatus::converged;
        break;
      }
    }
  }
  info.n_iter = k;
  info.residual = full_residual();
  if (info.status != IterativeStatus::converged && info.status != IterativeStatus::non_finite) {
    info.status = IterativeStatus::max_iter;
    if (std::isfinite(info.residual) && info.residual <= target) {
      info.converged = true;
      info.status = IterativeStatus::converged;
    }
  }
  return info;
}

}  // namespace sketch
}  // namespace kf
