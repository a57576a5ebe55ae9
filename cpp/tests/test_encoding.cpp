// Tests of the hash encodings on the C++ templates: layout, affine reproduction and partition of
// unity, exact table gradients, finite-difference input gradients, determinism across thread
// counts, and the argument checks.
#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>
#include <vector>

#include "kernforge/common/rng.hpp"
#include "kernforge/common/threads.hpp"
#include "kernforge/encoding/encoding.hpp"

namespace enc = kf::encoding;

namespace {

std::vector<double> random_points(int n, int d, std::uint64_t seed, double lo = 0.0, double hi = 1.0) {
  kf::Rng r(seed);
  std::vector<double> x(static_cast<std::size_t>(n) * d);
  for (auto& v : x) v = lo + (hi - lo) * r.uniform();
  return x;
}

std::vector<double> random_table(const enc::Layout& L, std::uint64_t seed) {
  kf::Rng r(seed);
  std::vector<double> p(L.n_params());
  for (auto& v : p) v = 2.0 * r.uniform() - 1.0;
  return p;
}

std::vector<double> encode(const enc::Layout& L, const std::vector<double>& p, const std::vector<double>& x) {
  const auto n = static_cast<kf::index_t>(x.size() / L.dim);
  std::vector<double> y(static_cast<std::size_t>(n) * L.output_dim());
  enc::forward<double>(L, p.data(), x.data(), n, y.data());
  return y;
}

// The lattice vertex of dense row r at level 0, mapped back to x-space.
std::vector<double> vertex_position(const enc::Layout& L, std::uint64_t r) {
  const auto& lv = L.lv[0];
  const int d = L.dim;
  std::vector<double> u(d);
  for (int i = 0; i < d; ++i) {
    u[i] = (static_cast<double>(r % lv.res) - 0.5) / lv.scale;
    r /= lv.res;
  }
  if (L.kind == enc::Kind::grid) return u;
  // invert x' = (x + F sum(x) 1) / nu
  double su = 0;
  for (int i = 0; i < d; ++i) {
    u[i] /= L.skew.inv_nu;
    su += u[i];
  }
  const double G = L.skew.F / (1.0 + d * L.skew.F);
  for (int i = 0; i < d; ++i) u[i] -= G * su;
  return u;
}

class EncodingTest : public ::testing::TestWithParam<std::tuple<enc::Kind, int>> {};

}  // namespace

TEST_P(EncodingTest, SingleDenseLevelReproducesAffineFunctions) {
  const auto [kind, d] = GetParam();
  const auto L = enc::make_layout(kind, d, 1, 1, 20, d <= 3 ? 6.0 : 3.0, 1.5);
  ASSERT_TRUE(L.lv[0].dense);
  std::vector<double> a(d);
  kf::Rng r(5);
  for (auto& v : a) v = r.normal();
  std::vector<double> p(L.n_params(), 0.0);
  std::uint64_t nv = 1;
  for (int i = 0; i < d; ++i) nv *= L.lv[0].res;
  for (std::uint64_t row = 0; row < nv; ++row) {
    const auto pos = vertex_position(L, row);
    double v = 0.25;
    for (int i = 0; i < d; ++i) v += a[i] * pos[i];
    p[row] = v;
  }
  const auto x = random_points(300, d, 11);
  const auto y = encode(L, p, x);
  for (int i = 0; i < 300; ++i) {
    double want = 0.25;
    for (int k = 0; k < d; ++k) want += a[k] * x[i * d + k];
    ASSERT_NEAR(y[i], want, 1e-12) << "point " << i;
  }
}

TEST_P(EncodingTest, WeightsArePartitionOfUnity) {
  const auto [kind, d] = GetParam();
  const auto L = enc::make_layout(kind, d, 3, 2, 10, 5.0, 2.0);
  std::vector<double> p(L.n_params(), 1.0);
  const auto x = random_points(200, d, 3);
  for (double v : encode(L, p, x)) ASSERT_NEAR(v, 1.0, 1e-13);
}

TEST_P(EncodingTest, TableGradientIsExact) {
  const auto [kind, d] = GetParam();
  const auto L = enc::make_layout(kind, d, 3, 2, 9, 4.0, 2.0);
  const auto p = random_table(L, 1);
  const auto x = random_points(50, d, 2);
  const auto G = random_points(50, L.output_dim(), 3, -1.0, 1.0);
  std::vector<double> gp(L.n_params(), 0.0);
  enc::backward<double>(L, p.data(), x.data(), 50, G.data(), gp.data(), nullptr);
  // <G, forward(p + delta)> - <G, forward(p)> = <gp, delta> exactly (linear in the tables)
  const auto delta = random_table(L, 4);
  std::vector<double> pd(p);
  for (std::size_t k = 0; k < p.size(); ++k) pd[k] += delta[k];
  const auto y0 = encode(L, p, x), y1 = encode(L, pd, x);
  double lhs = 0, rhs = 0;
  for (std::size_t k = 0; k < y0.size(); ++k) lhs += G[k] * (y1[k] - y0[k]);
  for (std::size_t k = 0; k < gp.size(); ++k) rhs += gp[k] * delta[k];
  EXPECT_NEAR(lhs, rhs, 1e-9 * std::abs(rhs) + 1e-12);
}

TEST_P(EncodingTest, InputGradientMatchesFiniteDifferences) {
  const auto [kind, d] = GetParam();
  const auto L = enc::make_layout(kind, d, 3, 2, 10, 3.0, 2.0);
  const auto p = random_table(L, 7);
  const int n = 40;
  const auto x = random_points(n, d, 8, 0.05, 0.95);
  const auto G = random_points(n, L.output_dim(), 9, -1.0, 1.0);
  std::vector<double> gx(x.size());
  enc::backward<double>(L, p.data(), x.data(), n, G.data(), nullptr, gx.data());
  const double h = 1e-7;
  int bad = 0;
  for (int a = 0; a < d; ++a) {
    auto xp = x, xm = x;
    for (int i = 0; i < n; ++i) {
      xp[i * d + a] += h;
      xm[i * d + a] -= h;
    }
    const auto yp = encode(L, p, xp), ym = encode(L, p, xm);
    for (int i = 0; i < n; ++i) {
      double fd = 0;
      for (int k = 0; k < L.output_dim(); ++k)
        fd += G[i * L.output_dim() + k] * (yp[i * L.output_dim() + k] - ym[i * L.output_dim() + k]);
      fd /= 2 * h;
      if (std::abs(fd - gx[i * d + a]) > 1e-5 * (1 + std::abs(fd))) ++bad;
    }
  }
  EXPECT_LE(bad, n * d / 30);  // a kink within h of a point is rare
}

INSTANTIATE_TEST_SUITE_P(KindsAndDims, EncodingTest,
                         ::testing::Combine(::testing::Values(enc::Kind::grid, enc::Kind::simplex),
                                            ::testing::Values(1, 2, 3, 4, 5, 7)));

TEST(Encoding, GradientsIndependentOfThreadCount) {
  for (auto kind : {enc::Kind::grid, enc::Kind::simplex}) {
    const auto L = enc::make_layout(kind, 3, 8, 2, 12, 16.0, 1.5);
    const int n = 30000;
    std::vector<float> x(static_cast<std::size_t>(n) * 3), G(static_cast<std::size_t>(n) * L.output_dim()),
        p(L.n_params());
    kf::Rng r(1);
    for (auto& v : x) v = static_cast<float>(r.uniform());
    for (auto& v : G) v = static_cast<float>(r.normal());
    for (auto& v : p) v = static_cast<float>(r.normal());
    std::vector<float> g1(p.size(), 0.f), g2(p.size(), 0.f), gx1(x.size()), gx2(x.size());
    const int before = kf::get_num_threads();
    kf::set_num_threads(1);
    enc::backward<float>(L, p.data(), x.data(), n, G.data(), g1.data(), gx1.data());
    kf::set_num_threads(2);
    enc::backward<float>(L, p.data(), x.data(), n, G.data(), g2.data(), gx2.data());
    kf::set_num_threads(before);
    EXPECT_EQ(g1, g2);
    EXPECT_EQ(gx1, gx2);
  }
}

TEST(Encoding, SimplexHasFewerLookups) {
  for (int d = 1; d <= 8; ++d) {
    EXPECT_EQ(enc::make_layout(enc::Kind::simplex, d, 2, 2, 10, 4, 2).vertices(), d + 1);
    EXPECT_EQ(enc::make_layout(enc::Kind::grid, d, 2, 2, 10, 4, 2).vertices(), 1 << d);
  }
}

TEST(Encoding, LayoutDenseThenHashed) {
  const auto L = enc::make_layout(enc::Kind::grid, 2, 6, 2, 10, 4.0, 2.0);
  // scales 3, 7, 15, 31: res = floor(s + 0.5) + 2 = 5, 9, 17, 33; res^2 = 25, 81, 289 <= 1024 < 1089
  EXPECT_EQ(L.lv[0].res, 5u);
  EXPECT_TRUE(L.lv[2].dense);
  EXPECT_EQ(L.lv[2].rows, 296u);  // 289 rounded up to a multiple of 8
  EXPECT_FALSE(L.lv[3].dense);
  EXPECT_EQ(L.lv[3].rows, 1024u);
  EXPECT_EQ(L.lv[1].offset, L.lv[0].rows);
}

TEST(Encoding, RejectsBadArguments) {
  EXPECT_THROW(enc::make_layout(enc::Kind::simplex, 0, 4, 2, 10, 16, 1.5), std::invalid_argument);
  EXPECT_THROW(enc::make_layout(enc::Kind::simplex, 9, 4, 2, 10, 16, 1.5), std::invalid_argument);
  EXPECT_THROW(enc::make_layout(enc::Kind::grid, 2, 4, 2, 31, 16, 1.5), std::invalid_argument);
  EXPECT_THROW(enc::make_layout(enc::Kind::grid, 3, 32, 8, 30, 16, 1.5), std::invalid_argument);
  EXPECT_THROW(enc::make_layout(enc::Kind::grid, 2, 64, 2, 19, 16, 2.0), std::invalid_argument);
  EXPECT_THROW(enc::make_layout(enc::Kind::grid, 2, 4, 2, 19, 0.5, 2.0), std::invalid_argument);
  const auto L = enc::make_layout(enc::Kind::simplex, 2, 2, 2, 8, 4, 2);
  std::vector<double> p(L.n_params()), y(L.output_dim());
  const double bad[][2] = {{0.5, 1.5}, {-0.1, 0.5}, {NAN, 0.5}, {0.5, INFINITY}};
  for (const auto& x : bad) EXPECT_THROW(enc::forward<double>(L, p.data(), x, 1, y.data()), std::domain_error);
}
