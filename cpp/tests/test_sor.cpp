// Tests of the SOR templates against a dense reference of the splitting
// x_{k+1} = (D/omega + L)^{-1} (b - (U - (1/omega - 1) D) x_k), the Wikipedia SOR example, the
// fused residual, and argument errors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <vector>

#include "kernforge/sor/sor.hpp"

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
