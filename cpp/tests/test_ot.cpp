// GoogleTest for the kf::ot templates: the vector exp / log-sum-exp against std::exp, the log solver
// on a small problem (marginals, agreement with the kernel domain), the small-problem kernels, partial
// mass in both domains, SNS.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernforge/common/cpu.hpp"
#include "kernforge/common/rng.hpp"
#include "kernforge/ot/sinkhorn.hpp"
#include "kernforge/ot/small.hpp"
#include "kernforge/ot/sns.hpp"

namespace {

template <class T>
std::vector<T> random_cost(int n, int m, std::uint64_t seed) {
  kf::Rng rng(seed);
  std::vector<double> x(2 * n), y(2 * m);
  for (auto& v : x) v = rng.uniform();
  for (auto& v : y) v = rng.uniform();
  std::vector<T> C(static_cast<size_t>(n) * m);
  double mx = 0;
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < m; ++j) {
      const double d0 = x[2 * i] - y[2 * j], d1 = x[2 * i + 1] - y[2 * j + 1];
      C[i * m + j] = static_cast<T>(d0 * d0 + d1 * d1);
      mx = std::max(mx, d0 * d0 + d1 * d1);
    }
  for (auto& v : C) v = static_cast<T>(v / mx);
  return C;
}

template <class T>
double naive_lse(const std::vector<T>& c, const std::vector<T>& w, double s) {
  double mx = -INFINITY;
  for (size_t j = 0; j < c.size(); ++j) mx = std::max(mx, double(w[j]) - s * c[j]);
  double acc = 0;
  for (size_t j = 0; j < c.size(); ++j) acc += std::exp(double(w[j]) - s * c[j] - mx);
  return mx + std::log(acc);
}

template <class T>
void check_lse(double rtol) {
  kf::Rng rng(7);
  for (int m : {1, 3, 8, 13, 64, 1001}) {
    std::vector<T> c(m), w(m), out(m);
    for (int j = 0; j < m; ++j) {
      c[j] = static_cast<T>(rng.uniform());
      w[j] = static_cast<T>(50 * rng.normal());
    }
    const double ref = naive_lse(c, w, 300.0);
    for (bool avx2 : {false, kf::ot::use_avx2()}) {
      const T got = kf::ot::lse_row(c.data(), w.data(), T(300), m, avx2);
      EXPECT_NEAR(got, ref, rtol * (1 + std::fabs(ref))) << "m=" << m << " avx2=" << avx2;
      const T g2 = kf::ot::lse_row_guess(c.data(), w.data(), T(300), m, static_cast<T>(ref + 3), avx2);
      EXPECT_NEAR(g2, ref, rtol * (1 + std::fabs(ref)));
      kf::ot::exp_row(c.data(), w.data(), T(300), static_cast<T>(-ref), m, out.data(), avx2);
      double s = 0;
      for (int j = 0; j < m; ++j) {
        const double arg = double(w[j]) - 300.0 * double(c[j]) - ref;
        const double e = std::exp(arg);
        // The rounding of the argument (|arg| ulps) dominates for large |arg|.
        EXPECT_NEAR(out[j], e, 8 * rtol * (1 + std::fabs(arg)) * e + (sizeof(T) == 4 ? 1e-37 : 1e-300));
        s += out[j];
      }
      EXPECT_NEAR(s, 1.0, 10 * rtol);
    }
  }
}

TEST(OtLse, DoubleMatchesNaive) { check_lse<double>(1e-14); }
TEST(OtLse, FloatMatchesNaive) { check_lse<float>(3e-6); }

TEST(OtLse, HugeNegativeInputsDoNotUnderflowToNaN) {
  std::vector<double> c(37, 1.0), w(37, -1e6);
  w[5] = 0.0;
  const double got = kf::ot::lse_row(c.data(), w.data(), 1e4, 37, kf::ot::use_avx2());
  EXPECT_NEAR(got, -1e4, 1e-9);
}

TEST(OtSinkhorn, LogAndKernelAgreeAndMarginalsHold) {
  const int n = 40, m = 30;
  auto C = random_cost<double>(n, m, 1);
  std::vector<double> a(n, 1.0 / n), b(m, 1.0 / m);
  kf::ot::Side<double> rows, cols;
  for (int i = 0; i < n; ++i) rows.logmass.push_back(std::log(a[i]));
  for (int j = 0; j < m; ++j) cols.logmass.push_back(std::log(b[j]));
  kf::ot::DenseCost<double> cost(C.data(), n, m);
  kf::ot::Options opt;
  opt.eps = 0.02;
  opt.tol = 1e-11;
  kf::ot::Potentials<double> z;
  auto info = kf::ot::solve_log(cost, rows, cols, z, opt);
  ASSERT_TRUE(info.converged);
  std::vector<double> P(n * m), r(n), c(m);
  double total = 0;
  kf::ot::finalize<double>(cost, z.f, z.g, {}, {}, 0.02, P.data(), r.data(), c.data(), total);
  for (int i = 0; i < n; ++i) EXPECT_NEAR(r[i], a[i], 1e-14);
  double e = 0;
  for (int j = 0; j < m; ++j) e += (c[j] - b[j]) * (c[j] - b[j]);
  EXPECT_LT(std::sqrt(e), 1e-11);
  kf::ot::Potentials<double> zk;
  kf::ot::Info ik;
  ASSERT_TRUE(kf::ot::solve_kernel(C.data(), n, m, a.data(), b.data(), 0.02, zk, opt, ik));
  ASSERT_TRUE(ik.converged);
  std::vector<double> Pk(n * m), rk(n), ck(m);
  double tk = 0;
  kf::ot::finalize<double>(cost, zk.f, zk.g, {}, {}, 0.02, Pk.data(), rk.data(), ck.data(), tk);
  for (int k = 0; k < n * m; ++k) EXPECT_NEAR(Pk[k], P[k], 1e-12);
  EXPECT_NEAR(tk, total, 1e-12);
}

TEST(OtSinkhorn, KernelReportsUnderflow) {
  const int n = 20;
  auto C = random_cost<double>(n, n, 2);
  std::vector<double> a(n, 1.0 / n);
  kf::ot::Options opt;
  opt.eps = 1e-4;
  kf::ot::Potentials<double> z;
  kf::ot::Info info;
  EXPECT_FALSE(kf::ot::solve_kernel(C.data(), n, n, a.data(), a.data(), 1e-4, z, opt, info));
  EXPECT_FALSE(info.note.empty());
}

TEST(OtPartial, TransportsExactMass) {
  const int n = 25, m = 35;
  auto C = random_cost<double>(n, m, 3);
  std::vector<double> la(n, std::log(1.0 / n)), lb(m, std::log(1.0 / m));
  kf::ot::DenseCost<double> cost(C.data(), n, m);
  kf::ot::Options opt;
  opt.tol = 1e-12;
  kf::ot::Potentials<double> z;
  double mu = 0;
  auto info = kf::ot::solve_partial(cost, la, lb, 0.4, 0.05, z, mu, opt);
  ASSERT_TRUE(info.converged);
  for (auto& v : z.f) v += mu;
  std::vector<double> r(n), c(m);
  double total = 0;
  kf::ot::finalize<double>(cost, z.f, z.g, {}, {}, 0.05, nullptr, r.data(), c.data(), total);
  double mass = 0;
  for (int i = 0; i < n; ++i) {
    mass += r[i];
    EXPECT_LE(r[i], 1.0 / n + 1e-12);
  }
  for (int j = 0; j < m; ++j) EXPECT_LE(c[j], 1.0 / m + 1e-12);
  EXPECT_NEAR(mass, 0.4, 1e-11);
}

// The register-blocked matvecs of the small path against a naive loop, on sizes with every tail.
template <class T>
void check_small_matvecs(double tol) {
  for (int n : {1, 5, 37, 64}) {
    for (int m : {1, 3, 36, 70}) {
      auto K = random_cost<T>(n, m, 7);
      std::vector<T> x(std::max(n, m)), y(std::max(n, m));
      for (int t = 0; t < std::max(n, m); ++t) x[t] = static_cast<T>(0.5 + 0.01 * t);
      for (bool avx2 : {false, kf::ot::use_avx2()}) {
        kf::ot::detail::kt_x(K.data(), n, m, x.data(), y.data(), avx2);
        for (int j = 0; j < m; ++j) {
          double s = 0;
          for (int i = 0; i < n; ++i) s += static_cast<double>(x[i]) * K[i * m + j];
          EXPECT_NEAR(y[j], s, tol * (1 + std::fabs(s))) << n << "x" << m;
        }
        kf::ot::detail::k_x(K.data(), n, m, x.data(), y.data(), avx2);
        for (int i = 0; i < n; ++i) {
          double s = 0;
          for (int j = 0; j < m; ++j) s += static_cast<double>(K[i * m + j]) * x[j];
          EXPECT_NEAR(y[i], s, tol * (1 + std::fabs(s))) << n << "x" << m;
        }
      }
    }
  }
}
TEST(OtSmall, MatvecsMatchNaiveDouble) { check_small_matvecs<double>(1e-13); }
TEST(OtSmall, MatvecsMatchNaiveFloat) { check_small_matvecs<float>(1e-5); }

TEST(OtSmall, AgreesWithLargePathAndReportsUnderflow) {
  const int n = 40, m = 30;
  auto C = random_cost<double>(n, m, 1);
  std::vector<double> a(n, 1.0 / n), b(m, 1.0 / m);
  kf::ot::Options opt;
  opt.eps = 0.02;
  opt.tol = 1e-11;
  kf::ot::Potentials<double> z1, z2;
  kf::ot::Info i1, i2;
  kf::ot::SmallWork<double> work;
  ASSERT_TRUE(kf::ot::solve_kernel_small(C.data(), n, m, a.data(), b.data(), 0.02, z1, opt, i1, work));
  ASSERT_TRUE(kf::ot::solve_kernel(C.data(), n, m, a.data(), b.data(), 0.02, z2, opt, i2));
  ASSERT_TRUE(i1.converged && i2.converged);
  // Potentials are defined up to (f + t, g - t): compare f_i + g_j.
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < m; ++j) EXPECT_NEAR(z1.f[i] + z1.g[j], z2.f[i] + z2.g[j], 1e-10);
  kf::ot::Potentials<double> z3;
  kf::ot::Info i3;
  EXPECT_FALSE(kf::ot::solve_kernel_small(C.data(), n, m, a.data(), b.data(), 1e-4, z3, opt, i3, work));
  EXPECT_FALSE(i3.note.empty());
  EXPECT_TRUE(z3.f.empty());
}

TEST(OtPartial, KernelDomainMatchesLogDomain) {
  const int n = 25, m = 35;
  auto C = random_cost<double>(n, m, 3);
  std::vector<double> a(n, 1.0 / n), b(m, 1.0 / m), la(n, std::log(1.0 / n)), lb(m, std::log(1.0 / m));
  kf::ot::DenseCost<double> cost(C.data(), n, m);
  kf::ot::Options opt;
  opt.tol = 1e-12;
  kf::ot::Potentials<double> zl, zk;
  double mul = 0, muk = 0;
  auto il = kf::ot::solve_partial(cost, la, lb, 0.4, 0.05, zl, mul, opt);
  kf::ot::Info ik;
  ASSERT_TRUE(kf::ot::solve_partial_kernel(C.data(), n, m, a.data(), b.data(), 0.4, 0.05, zk, muk, opt, ik));
  ASSERT_TRUE(il.converged && ik.converged);
  EXPECT_EQ(il.n_iter, ik.n_iter);  // the same block ascent, in another domain
  EXPECT_NEAR(mul, muk, 1e-10);
  for (int i = 0; i < n; ++i) EXPECT_NEAR(zl.f[i], zk.f[i], 1e-10);
  for (int j = 0; j < m; ++j) EXPECT_NEAR(zl.g[j], zk.g[j], 1e-10);
  // exp(-C/eps) unsafe: refused before iterating.
  kf::ot::Potentials<double> z2;
  double mu2 = 0;
  kf::ot::Info i2;
  EXPECT_FALSE(kf::ot::solve_partial_kernel(C.data(), n, m, a.data(), b.data(), 0.4, 1e-3, z2, mu2, opt, i2));
  EXPECT_EQ(i2.n_iter, 0);
}

TEST(OtSns, ConvergesInFewIterationsAtSmallEps) {
  const int n = 300;
  auto C = random_cost<double>(n, n, 4);
  std::vector<double> a(n, 1.0 / n);
  kf::ot::DenseCost<double> cost(C.data(), n, n);
  kf::ot::Options opt;
  opt.eps = 1e-3;
  opt.tol = 1e-9;
  kf::ot::SnsOptions so;
  kf::ot::Potentials<double> z;
  auto out = kf::ot::solve_sns(cost, a, a, z, opt, so);
  EXPECT_TRUE(out.info.converged);
  EXPECT_GT(out.n_newton, 0);
  EXPECT_LT(out.info.n_iter, 200);  // plain Sinkhorn needs over a thousand here
}

}  // namespace
