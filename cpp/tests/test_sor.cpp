// Tests of the SOR templates against a dense reference of the splitting
// x_{k+1} = (D/omega + L)^{-1} (b - (U - (1/omega - 1) D) x_k), the Wikipedia SOR example, the
// fused residual, and argument errors; multicolour sweeps, weighted Jacobi and SSOR-CG.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <vector>

#include "kernforge/common/config.hpp"
#include "kernforge/common/threads.hpp"
#include "kernforge/sor/jacobi.hpp"
#include "kernforge/sor/multicolor.hpp"
#include "kernforge/sor/sor.hpp"
#include "kernforge/sor/ssor_cg.hpp"

namespace {

using Dense = std::vector<std::vector<double>>;

template <class T, class I>
struct Csr {
  std::vector<I> indptr, indices;
  std::vector<T> data;
  kf::index_t n = 0;
  kf::CsrView<T, I> view() const {
    kf::CsrView<T, I> v;
    v.rows = v.cols = n;
    v.indptr = indptr.data();
    v.indices = indices.data();
    v.data = data.data();
    return v;
  }
};

template <class T, class I>
Csr<T, I> to_csr(const Dense& a) {
  Csr<T, I> c;
  c.n = static_cast<kf::index_t>(a.size());
  c.indptr.push_back(0);
  for (const auto& row : a) {
    for (std::size_t j = 0; j < row.size(); ++j)
      if (row[j] != 0.0) {
        c.indices.push_back(static_cast<I>(j));
        c.data.push_back(static_cast<T>(row[j]));
      }
    c.indptr.push_back(static_cast<I>(c.indices.size()));
  }
  return c;
}

// Random sparse strictly diagonally dominant matrix (positive diagonal), optionally symmetric.
Dense random_dd(int n, unsigned seed, bool symmetric) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> u(-1.0, 1.0), coin(0.0, 1.0);
  Dense a(n, std::vector<double>(n, 0.0));
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j)
      if (i != j && coin(gen) < 0.25) {
        a[i][j] = u(gen);
        if (symmetric) a[j][i] = a[i][j];
      }
  for (int i = 0; i < n; ++i) {
    double s = 0;
    for (int j = 0; j < n; ++j) s += std::abs(a[i][j]);
    a[i][i] = s + 0.5 + 0.5 * coin(gen);
  }
  return a;
}

// Solve a triangular system (lower if `lower`) by substitution.
std::vector<double> tri_solve(const Dense& m, std::vector<double> r, bool lower) {
  const int n = static_cast<int>(m.size());
  for (int k = 0; k < n; ++k) {
    const int i = lower ? k : n - 1 - k;
    double s = r[i];
    for (int j = 0; j < n; ++j)
      if ((lower && j < i) || (!lower && j > i)) s -= m[i][j] * r[j];
    r[i] = s / m[i][i];
  }
  return r;
}

// One sweep from the matrix splitting (not the row-by-row update), in double.
std::vector<double> dense_sweep(const Dense& a, const std::vector<double>& b, const std::vector<double>& x,
                                double w, bool forward) {
  const int n = static_cast<int>(a.size());
  Dense m(n, std::vector<double>(n, 0.0));
  std::vector<double> rhs(b);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      const bool tri = forward ? j < i : j > i;
      if (i == j) {
        m[i][j] = a[i][i] / w;
        rhs[i] -= -(1.0 / w - 1.0) * a[i][i] * x[j];
      } else if (tri) {
        m[i][j] = a[i][j];
      } else {
        rhs[i] -= a[i][j] * x[j];
      }
    }
  return tri_solve(m, rhs, forward);
}

double resid(const Dense& a, const std::vector<double>& b, const std::vector<double>& x) {
  double rr = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    double s = b[i];
    for (std::size_t j = 0; j < a.size(); ++j) s -= a[i][j] * x[j];
    rr += s * s;
  }
  return std::sqrt(rr);
}

template <class P>
class SorTyped : public ::testing::Test {};
template <class T_, class I_>
struct Pair {
  using T = T_;
  using I = I_;
};
using Types = ::testing::Types<Pair<float, std::int32_t>, Pair<float, std::int64_t>, Pair<double, std::int32_t>,
                               Pair<double, std::int64_t>>;
TYPED_TEST_SUITE(SorTyped, Types);

TYPED_TEST(SorTyped, SweepMatchesDenseSplitting) {
  using T = typename TypeParam::T;
  using I = typename TypeParam::I;
  const double tol = std::is_same<T, float>::value ? 2e-5 : 1e-12;
  for (bool symmetric_matrix : {false, true}) {
    const int n = 23;
    const Dense a = random_dd(n, symmetric_matrix ? 7u : 11u, symmetric_matrix);
    const auto c = to_csr<T, I>(a);
    const kf::sor::SorMatrix<T, I> m(c.view());
    std::mt19937 gen(3);
    std::normal_distribution<double> nd;
    std::vector<double> b(n), x0(n);
    for (int i = 0; i < n; ++i) {
      b[i] = static_cast<T>(nd(gen));
      x0[i] = static_cast<T>(nd(gen));
    }
    for (auto dir : {kf::sor::Direction::forward, kf::sor::Direction::backward, kf::sor::Direction::symmetric}) {
      for (double w : {0.5, 1.0, 1.8}) {
        std::vector<T> x(x0.begin(), x0.end()), bt(b.begin(), b.end());
        kf::sor::sweep(m, x.data(), bt.data(), w, dir, 2);
        std::vector<double> ref = x0;
        for (int s = 0; s < 2; ++s) {
          if (dir != kf::sor::Direction::backward) ref = dense_sweep(a, b, ref, w, true);
          if (dir != kf::sor::Direction::forward) ref = dense_sweep(a, b, ref, w, false);
        }
        double scale = 0;
        for (double v : ref) scale = std::max(scale, std::abs(v));
        for (int i = 0; i < n; ++i) EXPECT_NEAR(x[i], ref[i], 10 * tol * scale) << "row " << i << " omega " << w;
      }
    }
  }
}

TYPED_TEST(SorTyped, FusedResidualIsResidualOfPreSweepIterate) {
  using T = typename TypeParam::T;
  using I = typename TypeParam::I;
  const int n = 31;
  const Dense a = random_dd(n, 5u, false);
  const auto c = to_csr<T, I>(a);
  const kf::sor::SorMatrix<T, I> m(c.view());
  std::vector<T> x(n, T(0)), b(n), delta(n, T(0));
  for (int i = 0; i < n; ++i) b[i] = static_cast<T>(std::sin(1.0 + i));
  const std::vector<double> bd(b.begin(), b.end());
  for (int k = 0; k < 5; ++k) {
    const double expected = resid(a, bd, std::vector<double>(x.begin(), x.end()));
    const double got = std::sqrt(kf::sor::sweep_once<true, true>(m, x.data(), b.data(), T(1.3), delta.data()));
    const double tol = std::is_same<T, float>::value ? 1e-5 : 1e-12;
    EXPECT_NEAR(got, expected, tol * (1 + expected)) << "sweep " << k;
  }
}

TEST(Sor, WikipediaExample) {
  // en.wikipedia.org/wiki/Successive_over-relaxation, omega = 0.5. Row 1 (diagonal -4) and b_1 are
  // negated so the diagonal is positive; row scaling leaves SOR's iterates unchanged.
  const Dense a = {{4, -1, -6, 0}, {5, 4, -10, -8}, {0, 9, 4, -2}, {1, 0, -7, 5}};
  const std::vector<double> b = {2, -21, -12, -6};
  const auto c = to_csr<double, std::int32_t>(a);
  const kf::sor::SorMatrix<double, std::int32_t> m(c.view());
  std::vector<double> x(4, 0.0);
  kf::sor::sweep(m, x.data(), b.data(), 0.5, kf::sor::Direction::forward, 1);
  const double x1[] = {0.25, -2.78125, 1.6289062, 0.5152344};
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(x[i], x1[i], 1e-6);
  kf::sor::sweep(m, x.data(), b.data(), 0.5, kf::sor::Direction::forward, 2);
  const double x3[] = {2.070478, -1.6696789, 1.5904881, 0.76172125};
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(x[i], x3[i], 1e-6);
  kf::sor::sweep(m, x.data(), b.data(), 0.5, kf::sor::Direction::forward, 35);
  const double x38[] = {3, -2, 2, 1};
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(x[i], x38[i], 1e-6);
}

TEST(Sor, SolveStopsAtFirstIterateMeetingTolerance) {
  const Dense a = random_dd(40, 9u, true);
  const auto c = to_csr<double, std::int32_t>(a);
  const kf::sor::SorMatrix<double, std::int32_t> m(c.view());
  std::vector<double> b(40), x(40, 0.0);
  for (int i = 0; i < 40; ++i) b[i] = std::cos(0.3 * i);
  const auto info = kf::sor::solve(m, x.data(), b.data(), 1.2, 1e-10, 1000, false);
  ASSERT_TRUE(info.converged);
  ASSERT_EQ(info.residuals.size(), static_cast<std::size_t>(info.n_iter + 1));
  double bn = 0;
  for (double v : b) bn += v * v;
  bn = std::sqrt(bn);
  const double r = resid(a, b, x) / bn;
  EXPECT_LE(r, 1e-10);
  EXPECT_NEAR(info.residuals.back(), r, 1e-13);
  EXPECT_GT(info.residuals[info.n_iter - 1], 1e-10);
  // A reference loop: sweep, check the explicit residual.
  std::vector<double> y(40, 0.0);
  int k = 0;
  while (resid(a, b, y) > 1e-10 * bn) {
    kf::sor::sweep(m, y.data(), b.data(), 1.2, kf::sor::Direction::forward, 1);
    ++k;
  }
  EXPECT_EQ(k, info.n_iter);
  for (int i = 0; i < 40; ++i) EXPECT_NEAR(x[i], y[i], 1e-12);
}

TEST(Sor, MaxIterReportsNotConverged) {
  const Dense a = random_dd(20, 2u, true);
  const auto c = to_csr<double, std::int32_t>(a);
  const kf::sor::SorMatrix<double, std::int32_t> m(c.view());
  std::vector<double> b(20, 1.0), x(20, 0.0);
  const auto info = kf::sor::solve(m, x.data(), b.data(), 1.0, 1e-14, 2, true);
  EXPECT_FALSE(info.converged);
  EXPECT_EQ(info.n_iter, 2);
  EXPECT_EQ(info.residuals.size(), 3u);
  EXPECT_NEAR(info.residuals.back(), resid(a, b, x) / std::sqrt(20.0), 1e-14);
}

TEST(Sor, Errors) {
  const Dense good = {{2, 1}, {1, 2}};
  const auto cg = to_csr<double, std::int32_t>(good);
  const kf::sor::SorMatrix<double, std::int32_t> m(cg.view());
  std::vector<double> x(2, 0.0), b(2, 1.0);
  for (double w : {0.0, 2.0, -1.0, 3.0, std::nan("")})
    EXPECT_THROW(kf::sor::sweep(m, x.data(), b.data(), w, kf::sor::Direction::forward, 1), std::domain_error);
  EXPECT_THROW(kf::sor::sweep(m, x.data(), b.data(), 1.0, kf::sor::Direction::forward, -1), std::invalid_argument);
  EXPECT_THROW(kf::sor::solve(m, x.data(), b.data(), 1.0, -1.0, 10, false), std::invalid_argument);
  EXPECT_THROW(kf::sor::solve(m, x.data(), b.data(), 1.0, 1e-8, -1, false), std::invalid_argument);
  EXPECT_THROW(kf::sor::parse_direction("up"), std::invalid_argument);

  const auto c_zero = to_csr<double, std::int32_t>({{2, 1}, {1, 0}});  // row 1: diagonal missing
  EXPECT_THROW((kf::sor::SorMatrix<double, std::int32_t>(c_zero.view())), std::domain_error);
  auto c_neg = to_csr<double, std::int32_t>({{2, 1}, {1, -3}});
  EXPECT_THROW((kf::sor::SorMatrix<double, std::int32_t>(c_neg.view())), std::domain_error);
  c_neg.data.back() = 0.0;  // explicitly stored zero diagonal
  try {
    kf::sor::SorMatrix<double, std::int32_t> bad(c_neg.view());
    FAIL() << "expected a domain_error";
  } catch (const std::domain_error& e) {
    EXPECT_NE(std::string(e.what()).find("zero"), std::string::npos);
  }
  auto rect = cg.view();
  rect.cols = 3;
  EXPECT_THROW((kf::sor::SorMatrix<double, std::int32_t>(rect)), std::invalid_argument);
  auto empty = cg.view();
  empty.rows = empty.cols = 0;
  EXPECT_THROW((kf::sor::SorMatrix<double, std::int32_t>(empty)), std::invalid_argument);
}

}  // namespace

// ---------------------------------------------------------------- multicolour, Jacobi, SSOR-CG
namespace {

Dense poisson2d(int m) {
  const int n = m * m;
  Dense a(n, std::vector<double>(n, 0.0));
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < m; ++j) {
      const int k = i * m + j;
      a[k][k] = 4;
      if (i > 0) a[k][k - m] = -1;
      if (i < m - 1) a[k][k + m] = -1;
      if (j > 0) a[k][k - 1] = -1;
      if (j < m - 1) a[k][k + 1] = -1;
    }
  return a;
}

// 2-D Poisson, optionally with uneven off-diagonal weights (a_ij scaled by 1 + step * ((i + j) % 3)),
// which float32 cannot hold: the compact layouts must then keep float64 values.
Dense poisson2d_weighted(int m, bool uneven, double step) {
  Dense a = poisson2d(m);
  if (uneven)
    for (std::size_t i = 0; i < a.size(); ++i)
      for (std::size_t j = 0; j < a.size(); ++j)
        if (i != j && a[i][j] != 0) a[i][j] *= 1.0 + step * static_cast<double>((i + j) % 3);
  return a;
}

// The same matrix built directly in CSR (large grids would not fit densely).
Csr<double, std::int32_t> poisson2d_csr(int m) {
  Csr<double, std::int32_t> c;
  c.n = m * m;
  c.indptr.push_back(0);
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < m; ++j) {
      const int k = i * m + j;
      auto put = [&](int col, double v) {
        c.indices.push_back(col);
        c.data.push_back(v);
      };
      if (i > 0) put(k - m, -1);
      if (j > 0) put(k - 1, -1);
      put(k, 4);
      if (j < m - 1) put(k + 1, -1);
      if (i < m - 1) put(k + m, -1);
      c.indptr.push_back(static_cast<std::int32_t>(c.indices.size()));
    }
  return c;
}

TEST(Multicolor, GreedyColoringIsValidAndRedBlackOnGrids) {
  for (unsigned seed : {1u, 2u, 3u}) {
    const Dense a = random_dd(50, seed, false);
    const auto c = to_csr<double, std::int32_t>(a);
    const auto col = kf::sor::greedy_coloring(c.view());
    for (int i = 0; i < 50; ++i)
      for (int j = 0; j < 50; ++j)
        if (i != j && (a[i][j] != 0 || a[j][i] != 0)) {
          EXPECT_NE(col[i], col[j]) << i << "," << j;
        }
  }
  const auto p = to_csr<double, std::int32_t>(poisson2d(9));
  const auto col = kf::sor::greedy_coloring(p.view());
  for (int k = 0; k < 81; ++k) EXPECT_EQ(col[k], ((k / 9) + (k % 9)) % 2);
}

// Multicolour sweeps of A against the lexicographic sweep of P A P^T (P from the colouring), all
// three directions. The multicolour kernel stores the rows scaled by 1 / a_ii (c = b / a_ii,
// diagonal taken out), so it rounds differently from the lexicographic kernel: equal to a few ulps.
template <class I>
void expect_permuted_lex_sweep(const Dense& a, const kf::sor::MulticolorMatrix<double, I>& mc, double omega) {
  const int n = static_cast<int>(a.size());
  const auto& perm = mc.perm();
  Dense pa(n, std::vector<double>(n, 0.0));
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) pa[i][j] = a[perm[i]][perm[j]];
  const auto pc = to_csr<double, I>(pa);
  const kf::sor::SorMatrix<double, I> pm(pc.view());
  std::vector<double> x(n), b(n), xp(n), bp(n);
  for (int i = 0; i < n; ++i) {
    x[i] = std::sin(i + 0.5);
    b[i] = std::cos(2.0 * i);
  }
  for (int k = 0; k < n; ++k) {
    xp[k] = x[perm[k]];
    bp[k] = b[perm[k]];
  }
  for (auto dir : {kf::sor::Direction::forward, kf::sor::Direction::backward, kf::sor::Direction::symmetric}) {
    std::vector<double> y = x, yp = xp;
    EXPECT_TRUE(kf::sor::multicolor_sweep(mc, y.data(), b.data(), omega, dir, 3));
    kf::sor::sweep(pm, yp.data(), bp.data(), omega, dir, 3);
    for (int k = 0; k < n; ++k) EXPECT_NEAR(y[perm[k]], yp[k], 1e-13 * (1.0 + std::abs(yp[k])));
  }
}

TEST(Multicolor, SweepIsLexicographicSweepOfPermutedMatrix) {
  const Dense a = random_dd(40, 21u, false);
  const auto c = to_csr<double, std::int64_t>(a);
  const kf::sor::SorMatrix<double, std::int64_t> m(c.view());
  const kf::sor::MulticolorMatrix<double, std::int64_t> mc(m);
  ASSERT_GT(mc.n_colors(), 2);
  expect_permuted_lex_sweep(a, mc, 1.4);
}

TEST(Multicolor, CompressedLayoutsGiveThePermutedSweep) {
  // 2-D Poisson: ELL of width 4, 16-bit column offsets and float32 values (-1/4 is exact); the same
  // grid with uneven weights keeps float64 values. Both must equal the lexicographic sweep of P A P^T.
  for (bool uneven : {false, true}) {
    const Dense a = poisson2d_weighted(11, uneven, 0.1);
    const auto c = to_csr<double, std::int32_t>(a);
    const kf::sor::SorMatrix<double, std::int32_t> m(c.view());
    const kf::sor::MulticolorMatrix<double, std::int32_t> mc(m);
    EXPECT_EQ(mc.ell_width(), 4);
    EXPECT_TRUE(mc.narrow_columns());
    EXPECT_EQ(mc.float32_values(), !uneven);
    expect_permuted_lex_sweep(a, mc, 1.6);
  }
}

TEST(Sor, CompactCopySweepsTheSameBits) {
  // The compact copy (ELL rows, 16-bit offsets, float32 values where exact) against the CSR kernel,
  // for plain and residual-fused sweeps, on 2-D Poisson and on the same grid with uneven weights.
  for (bool uneven : {false, true}) {
    const Dense a = poisson2d_weighted(9, uneven, 0.07);
    const auto c = to_csr<double, std::int32_t>(a);
    const kf::sor::SorMatrix<double, std::int32_t> plain(c.view());
    kf::sor::SorMatrix<double, std::int32_t> compact(c.view());
    ASSERT_TRUE(compact.build_compact());
    EXPECT_EQ(compact.storage(), uneven ? "ELL 2+2, 16-bit columns" : "ELL 2+2, 16-bit columns, float32 values");
    EXPECT_EQ(plain.storage(), "CSR");
    std::vector<double> b(81), x0(81);
    for (int i = 0; i < 81; ++i) {
      b[i] = std::cos(0.3 * i);
      x0[i] = std::sin(0.9 * i);
    }
    for (auto dir : {kf::sor::Direction::forward, kf::sor::Direction::backward, kf::sor::Direction::symmetric}) {
      std::vector<double> x = x0, y = x0;
      EXPECT_TRUE(kf::sor::sweep(plain, x.data(), b.data(), 1.5, dir, 2));
      EXPECT_TRUE(kf::sor::sweep(compact, y.data(), b.data(), 1.5, dir, 2));
      for (int i = 0; i < 81; ++i) ASSERT_EQ(x[i], y[i]) << i;
    }
    std::vector<double> x = x0, y = x0, dx(81, 0.0), dy(81, 0.0);
    const double rx = kf::sor::sweep_once<true, true>(plain, x.data(), b.data(), 1.5, dx.data());
    const double ry = kf::sor::sweep_once<true, true>(compact, y.data(), b.data(), 1.5, dy.data());
    EXPECT_EQ(rx, ry);
    EXPECT_NEAR(std::sqrt(rx), resid(a, b, x0), 1e-12);
    for (int i = 0; i < 81; ++i) ASSERT_EQ(x[i], y[i]) << i;
  }
}

TEST(Sor, StencilSweepMatchesDense) {
  // Banded rows, where the sweep takes x_{i-1} (x_{i+1} backward) from a register rather than
  // from memory: a nonsymmetric, unevenly weighted 5-point matrix against the dense splitting.
  Dense a = poisson2d(7);
  for (int i = 1; i < 49; ++i) {
    if (a[i][i - 1] != 0) a[i][i - 1] *= 1.0 + 0.05 * (i % 7);
    if (i + 1 < 49 && a[i][i + 1] != 0) a[i][i + 1] *= 1.0 - 0.03 * (i % 5);
  }
  const auto c = to_csr<double, std::int32_t>(a);
  const kf::sor::SorMatrix<double, std::int32_t> m(c.view());
  std::vector<double> b(49), x0(49);
  for (int i = 0; i < 49; ++i) {
    b[i] = std::cos(0.7 * i);
    x0[i] = std::sin(1.3 * i);
  }
  for (auto dir : {kf::sor::Direction::forward, kf::sor::Direction::backward, kf::sor::Direction::symmetric}) {
    std::vector<double> x = x0;
    EXPECT_TRUE(kf::sor::sweep(m, x.data(), b.data(), 1.4, dir, 2));
    std::vector<double> ref = x0;
    for (int s = 0; s < 2; ++s) {
      if (dir != kf::sor::Direction::backward) ref = dense_sweep(a, b, ref, 1.4, true);
      if (dir != kf::sor::Direction::forward) ref = dense_sweep(a, b, ref, 1.4, false);
    }
    for (int i = 0; i < 49; ++i) EXPECT_NEAR(x[i], ref[i], 1e-12 * (1 + std::abs(ref[i]))) << i;
  }
  // The residual-fused sweep of a solve makes the same update, bitwise, and returns the residual of
  // the pre-sweep iterate.
  std::vector<double> x = x0, y = x0, delta(49, 0.0);
  for (int k = 0; k < 3; ++k) {
    const double expected = resid(a, b, y);
    const double got = std::sqrt(kf::sor::sweep_once<true, true>(m, y.data(), b.data(), 1.4, delta.data()));
    kf::sor::sweep(m, x.data(), b.data(), 1.4, kf::sor::Direction::forward, 1);
    EXPECT_NEAR(got, expected, 1e-12 * (1 + expected)) << k;
    for (int i = 0; i < 49; ++i) ASSERT_EQ(x[i], y[i]) << i;
  }
}

TEST(Sor, SweepsReportNonFiniteValues) {
  const auto c = to_csr<double, std::int32_t>(poisson2d(12));  // 144 rows
  const kf::sor::SorMatrix<double, std::int32_t> m(c.view());
  const kf::sor::MulticolorMatrix<double, std::int32_t> mc(m);
  const double bad[] = {std::nan(""), HUGE_VAL, -HUGE_VAL};
  for (auto dir : {kf::sor::Direction::forward, kf::sor::Direction::backward, kf::sor::Direction::symmetric}) {
    for (int where : {0, 77, 143}) {
      for (double v : bad) {
        std::vector<double> x(144, 0.5), b(144, 1.0);
        EXPECT_TRUE(kf::sor::sweep(m, x.data(), b.data(), 1.2, dir, 1));
        EXPECT_TRUE(kf::sor::multicolor_sweep(mc, x.data(), b.data(), 1.2, dir, 2));
        std::vector<double> xb = x, bb = b;
        xb[where] = v;
        EXPECT_FALSE(kf::sor::sweep(m, xb.data(), b.data(), 1.2, dir, 1)) << "x " << where;
        xb = x;
        xb[where] = v;
        EXPECT_FALSE(kf::sor::multicolor_sweep(mc, xb.data(), b.data(), 1.2, dir, 2)) << "x " << where;
        bb[where] = v;
        std::vector<double> y = x;
        EXPECT_FALSE(kf::sor::sweep(m, y.data(), bb.data(), 1.2, dir, 3)) << "b " << where;
        y = x;
        EXPECT_FALSE(kf::sor::multicolor_sweep(mc, y.data(), bb.data(), 1.2, dir, 1)) << "b " << where;
      }
    }
  }
}

TEST(Multicolor, SolveBitwiseIdenticalForOneAndTwoThreads) {
  const int mgrid = 120;  // 14400 rows: above the threshold, so two threads really share the work
  const auto c = poisson2d_csr(mgrid);
  const kf::sor::SorMatrix<double, std::int32_t> m(c.view());
  const kf::sor::MulticolorMatrix<double, std::int32_t> mc(m);
  const int n = mgrid * mgrid;
  std::vector<double> b(n);
  for (int i = 0; i < n; ++i) b[i] = std::sin(0.01 * i);
  const int before = kf::get_num_threads();
  std::vector<double> x1(n, 0.0), x2(n, 0.0);
  kf::set_num_threads(1);
  const auto i1 = kf::sor::multicolor_solve(mc, x1.data(), b.data(), 1.9, 1e-6, 200, true);
  kf::set_num_threads(2);
  EXPECT_EQ(mc.threads(), kf::have_openmp() ? 2 : 1);
  const auto i2 = kf::sor::multicolor_solve(mc, x2.data(), b.data(), 1.9, 1e-6, 200, true);
  kf::set_num_threads(before);
  EXPECT_EQ(i1.n_iter, i2.n_iter);
  EXPECT_EQ(i1.residuals, i2.residuals);
  for (int i = 0; i < n; ++i) ASSERT_EQ(x1[i], x2[i]) << i;
}

TEST(Multicolor, FusedResidualMatchesExplicit) {
  const Dense a = random_dd(30, 8u, true);
  const auto c = to_csr<double, std::int32_t>(a);
  const kf::sor::SorMatrix<double, std::int32_t> m(c.view());
  const kf::sor::MulticolorMatrix<double, std::int32_t> mc(m);
  std::vector<double> b(30), x(30, 0.0);
  for (int i = 0; i < 30; ++i) b[i] = 1.0 + 0.1 * i;
  const auto info = kf::sor::multicolor_solve(mc, x.data(), b.data(), 1.2, 1e-11, 1000, false);
  ASSERT_TRUE(info.converged);
  std::vector<double> y(30, 0.0);
  double bn = 0;
  for (double v : b) bn += v * v;
  bn = std::sqrt(bn);
  for (int k = 0; k <= info.n_iter; ++k) {
    EXPECT_NEAR(info.residuals[k], resid(a, b, y) / bn, 1e-12) << k;
    kf::sor::multicolor_sweep(mc, y.data(), b.data(), 1.2, kf::sor::Direction::forward, 1);
  }
}

TEST(Jacobi, MatchesDenseAndSolves) {
  const Dense a = random_dd(25, 4u, false);
  const auto c = to_csr<float, std::int32_t>(a);
  const kf::sor::SorMatrix<float, std::int32_t> m(c.view());
  std::vector<float> x(25), b(25);
  std::vector<double> ref(25), bd(25);
  for (int i = 0; i < 25; ++i) {
    x[i] = static_cast<float>(std::cos(i));
    b[i] = static_cast<float>(std::sin(3.0 * i));
    ref[i] = x[i];
    bd[i] = b[i];
  }
  kf::sor::jacobi_sweep(m, x.data(), b.data(), 0.6, 3);
  for (int s = 0; s < 3; ++s) {
    std::vector<double> nxt(25);
    for (int i = 0; i < 25; ++i) {
      double r = bd[i];
      for (int j = 0; j < 25; ++j) r -= a[i][j] * ref[j];
      nxt[i] = ref[i] + 0.6 * r / a[i][i];
    }
    ref = nxt;
  }
  for (int i = 0; i < 25; ++i) EXPECT_NEAR(x[i], ref[i], 1e-5);
  std::vector<float> y(25, 0.0f);
  const auto info = kf::sor::jacobi_solve(m, y.data(), b.data(), 1.0, 1e-5, 1000);
  ASSERT_TRUE(info.converged);
  double bn = 0;
  for (double v : bd) bn += v * v;
  EXPECT_LE(resid(a, bd, std::vector<double>(y.begin(), y.end())), 1.01e-5 * std::sqrt(bn));
  EXPECT_THROW(kf::sor::jacobi_sweep(m, x.data(), b.data(), 0.0, 1), std::domain_error);
}

TEST(SsorCg, ApplyIsTextbookPreconditionerAndCgConverges) {
  const Dense a = random_dd(20, 13u, true);
  const auto c = to_csr<double, std::int32_t>(a);
  const kf::sor::SorMatrix<double, std::int32_t> m(c.view());
  const double w = 1.3;
  std::vector<double> r(20), z(20);
  for (int i = 0; i < 20; ++i) r[i] = std::sin(1.0 + 2.0 * i);
  kf::sor::ssor_apply(m, r.data(), z.data(), w);
  // M z = (D + wL) D^{-1} (D + wU) z / (w (2 - w)) must give back r.
  std::vector<double> u(20, 0.0), v(20, 0.0);
  for (int i = 0; i < 20; ++i) {
    u[i] = a[i][i] * z[i];
    for (int j = i + 1; j < 20; ++j) u[i] += w * a[i][j] * z[j];
  }
  for (int i = 0; i < 20; ++i) {
    v[i] = u[i];  // (D + wL) D^{-1} u
    for (int j = 0; j < i; ++j) v[i] += w * a[i][j] * u[j] / a[j][j];
    EXPECT_NEAR(v[i] / (w * (2 - w)), r[i], 1e-12);
  }
  std::vector<double> b(20, 1.0), x(20, 0.0);
  const auto info = kf::sor::ssor_cg(m, x.data(), b.data(), w, 1e-12, 100);
  ASSERT_TRUE(info.converged);
  EXPECT_FALSE(info.breakdown);
  EXPECT_LE(resid(a, b, x), 1e-10);
  EXPECT_LE(info.n_iter, 20);
  // Symmetric indefinite with a positive diagonal: CG reports the breakdown, not a wrong answer.
  const auto ci = to_csr<double, std::int32_t>({{1, 2}, {2, 1}});
  const kf::sor::SorMatrix<double, std::int32_t> mi(ci.view());
  std::vector<double> bi = {1.0, -1.0}, xi(2, 0.0);
  const auto bad = kf::sor::ssor_cg(mi, xi.data(), bi.data(), 1.0, 1e-10, 10);
  EXPECT_TRUE(bad.breakdown);
  EXPECT_FALSE(bad.converged);
}

}  // namespace

namespace {

TEST(Sor, SymmetryCheck) {
  const Dense s = random_dd(20, 17u, true);
  EXPECT_TRUE(kf::sor::is_symmetric(to_csr<double, std::int32_t>(s).view(), 1e-14));
  Dense t = s;
  t[2][5] += 1e-3;
  EXPECT_FALSE(kf::sor::is_symmetric(to_csr<double, std::int32_t>(t).view(), 1e-14));
  Dense u = s;
  u[0][19] = 0.25;  // no stored transpose
  u[19][0] = 0.0;
  EXPECT_FALSE(kf::sor::is_symmetric(to_csr<double, std::int32_t>(u).view(), 1e-14));
  EXPECT_FALSE(kf::sor::is_symmetric(to_csr<double, std::int32_t>(random_dd(20, 3u, false)).view(), 1e-14));
}

}  // namespace
