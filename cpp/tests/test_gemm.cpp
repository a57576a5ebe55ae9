// GoogleTest for kf::gemm: the driver, every micro-kernel of every ISA this CPU runs, the batched
// kernels and the Monarch product, against naive long-double references.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "kernforge/gemm/batched.hpp"
#include "kernforge/gemm/gemm.hpp"
#include "kernforge/gemm/monarch.hpp"

using kf::index_t;
using kf::Isa;

namespace {

std::vector<Isa> runnable_isas() {
  std::vector<Isa> v{Isa::generic};
  if (static_cast<int>(kf::detected_isa()) >= static_cast<int>(Isa::avx2)) v.push_back(Isa::avx2);
  if (kf::detected_isa() == Isa::avx512) v.push_back(Isa::avx512);
  return v;
}

template <class T>
std::vector<T> random_vec(std::size_t n, unsigned seed) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  std::vector<T> v(n);
  for (auto& x : v) x = static_cast<T>(u(g));
  return v;
}

// C = alpha A B + beta C0 with strided views, in long double.
template <class T>
std::vector<long double> reference(index_t m, index_t n, index_t k, T alpha, const T* A, index_t rsa, index_t csa,
                                   const T* B, index_t rsb, index_t csb, T beta, const std::vector<T>& C0,
                                   index_t rsc, index_t csc) {
  std::vector<long double> R(static_cast<std::size_t>(m * n));
  for (index_t i = 0; i < m; ++i)
    for (index_t j = 0; j < n; ++j) {
      long double s = 0;
      for (index_t p = 0; p < k; ++p) s += static_cast<long double>(A[i * rsa + p * csa]) * B[p * rsb + j * csb];
      long double c = alpha * s;
      if (beta != T(0)) c += static_cast<long double>(beta) * C0[static_cast<std::size_t>(i * rsc + j * csc)];
      R[static_cast<std::size_t>(i * n + j)] = c;
    }
  return R;
}

template <class T>
double tolerance(index_t k) {
  return 4.0 * static_cast<double>(std::max<index_t>(k, 1)) * std::numeric_limits<T>::epsilon() + 1e-30;
}

template <class T>
void check_case(index_t m, index_t n, index_t k, bool ta, bool tb, bool fc, T alpha, T beta, Isa isa,
                const kf::gemm::Tiles& tiles = kf::gemm::Tiles(), int threads = 1) {
  auto A = random_vec<T>(static_cast<std::size_t>(m * k), 1);
  auto B = random_vec<T>(static_cast<std::size_t>(k * n), 2);
  auto C = random_vec<T>(static_cast<std::size_t>(m * n), 3);
  const auto C0 = C;
  // A stored (m x k) row-major, or its transpose (k x m) row-major viewed transposed, etc.
  const index_t rsa = ta ? 1 : k, csa = ta ? m : 1;
  const index_t rsb = tb ? 1 : n, csb = tb ? k : 1;
  const index_t rsc = fc ? 1 : n, csc = fc ? m : 1;
  auto R = reference<T>(m, n, k, alpha, A.data(), rsa, csa, B.data(), rsb, csb, beta, C0, rsc, csc);
  kf::gemm::gemm<T>(m, n, k, alpha, A.data(), rsa, csa, B.data(), rsb, csb, beta, C.data(), rsc, csc, tiles, threads,
                    isa);
  double worst = 0;
  for (index_t i = 0; i < m; ++i)
    for (index_t j = 0; j < n; ++j)
      worst = std::max<double>(worst, std::fabs(static_cast<double>(C[static_cast<std::size_t>(i * rsc + j * csc)] -
                                                                    R[static_cast<std::size_t>(i * n + j)])));
  const double scale = std::fabs(static_cast<double>(alpha)) * static_cast<double>(k) + std::fabs(static_cast<double>(beta));
  EXPECT_LE(worst, tolerance<T>(k) * scale + 1e-30)
      << "m=" << m << " n=" << n << " k=" << k << " ta=" << ta << " tb=" << tb << " fc=" << fc
      << " isa=" << kf::isa_name(isa);
}

template <class T>
class GemmTyped : public ::testing::Test {};
using Scalars = ::testing::Types<float, double>;
TYPED_TEST_SUITE(GemmTyped, Scalars);

TYPED_TEST(GemmTyped, OddShapesEveryIsaAndLayout) {
  using T = TypeParam;
  const index_t sizes[] = {1, 2, 7, 17, 65};
  for (Isa isa : runnable_isas())
    for (index_t m : sizes)
      for (index_t n : {index_t(1), index_t(9), index_t(33)})
        for (index_t k : {index_t(1), index_t(13), index_t(70)})
          for (int layout = 0; layout < 8; layout += 3)
            check_case<T>(m, n, k, layout & 1, layout & 2, layout & 4, T(1), T(0), isa);
}

TYPED_TEST(GemmTyped, AlphaBetaAndBlockEdges) {
  using T = TypeParam;
  for (Isa isa : runnable_isas()) {
    const auto K = kf::gemm::choose_kernel<T>(isa, 0, 0);
    kf::gemm::Tiles t;
    t.mc = 2 * K.mr;
    t.kc = 8;
    t.nc = 2 * K.nr;
    for (int pack : {-1, 0, 1}) {
      t.pack_a = pack;
      check_case<T>(3 * K.mr + 1, 3 * K.nr - 1, 17, false, false, false, T(-2.5), T(0.5), isa, t);
      check_case<T>(K.mr - 1, K.nr + 1, 9, true, false, true, T(1), T(1), isa, t);
    }
  }
}

TYPED_TEST(GemmTyped, EveryCompiledKernelOfRunnableIsas) {
  using T = TypeParam;
  for (Isa isa : runnable_isas())
    for (const auto& K : kf::gemm::kernels_for<T>(isa)) {
      kf::gemm::Tiles t;
      t.mr = K.mr;
      t.nr = K.nr;
      check_case<T>(2 * K.mr + 3, 2 * K.nr + 5, 41, false, true, false, T(1), T(0), isa, t);
    }
}

TYPED_TEST(GemmTyped, BetaZeroNeverReadsCAndNaNPropagates) {
  using T = TypeParam;
  const T nan = std::numeric_limits<T>::quiet_NaN();
  std::vector<T> A(12, T(1)), B(12, T(1)), C(9, nan);
  kf::gemm::gemm<T>(3, 3, 4, T(1), A.data(), 4, 1, B.data(), 3, 1, T(0), C.data(), 3, 1);
  for (T c : C) EXPECT_EQ(c, T(4));
  A[5] = nan;  // row 1
  std::vector<T> Z(12, T(0));
  kf::gemm::gemm<T>(3, 3, 4, T(1), A.data(), 4, 1, Z.data(), 3, 1, T(0), C.data(), 3, 1);
  for (int j = 0; j < 3; ++j) {
    EXPECT_TRUE(std::isnan(C[3 + j]));
    EXPECT_EQ(C[j], T(0));
  }
  // alpha = 0: C = beta * C, A and B not read
  std::fill(C.begin(), C.end(), T(2));
  kf::gemm::gemm<T>(3, 3, 4, T(0), A.data(), 4, 1, B.data(), 3, 1, T(3), C.data(), 3, 1);
  for (T c : C) EXPECT_EQ(c, T(6));
}

TYPED_TEST(GemmTyped, BitwiseIdenticalForAnyThreadCount) {
  using T = TypeParam;
  const index_t m = 301, n = 123, k = 333;
  auto A = random_vec<T>(m * k, 4);
  auto B = random_vec<T>(k * n, 5);
  std::vector<T> C1(m * n), C2(m * n), C3(m * n);
  kf::gemm::gemm<T>(m, n, k, T(1), A.data(), k, 1, B.data(), n, 1, T(0), C1.data(), n, 1, {}, 1);
  kf::gemm::gemm<T>(m, n, k, T(1), A.data(), k, 1, B.data(), n, 1, T(0), C2.data(), n, 1, {}, 2);
  kf::gemm::gemm<T>(m, n, k, T(1), A.data(), k, 1, B.data(), n, 1, T(0), C3.data(), n, 1, {}, 3);
  EXPECT_EQ(C1, C2);
  EXPECT_EQ(C1, C3);
}

// The threaded driver's ring of three B~ buffers wrapping many times, with a short last depth block
// (130 = 5 x 24 + 10): row split (m = 203) and column split (m = 9, too few rows per thread).
TYPED_TEST(GemmTyped, ThreadedRingWrapsWithShortDepthBlocks) {
  using T = TypeParam;
  kf::gemm::Tiles tiles;
  tiles.kc = 24;
  tiles.nc = 48;
  for (Isa isa : {Isa::generic, kf::active_isa()}) {
    check_case<T>(203, 300, 130, false, false, false, T(1), T(0), isa, tiles, 2);
    check_case<T>(9, 2000, 130, false, true, false, T(0.5), T(2), isa, tiles, 2);
  }
}

TYPED_TEST(GemmTyped, ZeroSizes) {
  using T = TypeParam;
  std::vector<T> C(6, T(2));
  kf::gemm::gemm<T>(2, 3, 0, T(1), nullptr, 0, 1, nullptr, 3, 1, T(0.5), C.data(), 3, 1);
  for (T c : C) EXPECT_EQ(c, T(1));
  kf::gemm::gemm<T>(0, 3, 4, T(1), nullptr, 4, 1, nullptr, 3, 1, T(0), nullptr, 3, 1);
  EXPECT_THROW(kf::gemm::gemm<T>(-1, 3, 4, T(1), nullptr, 4, 1, nullptr, 3, 1, T(0), nullptr, 3, 1),
               std::invalid_argument);
}

TYPED_TEST(GemmTyped, BatchedFixedDirectAndGeneral) {
  using T = TypeParam;
  for (Isa isa : runnable_isas())
    for (auto mnk : {std::array<index_t, 3>{16, 16, 16}, {8, 32, 4}, {9, 9, 9}, {5, 70, 3}, {3, 200, 5}}) {
      const index_t m = mnk[0], n = mnk[1], k = mnk[2], nb = 7;
      auto A = random_vec<T>(nb * m * k, 6);
      auto B = random_vec<T>(k * n, 7);  // one B for all: offset 0 (broadcast)
      auto C = random_vec<T>(nb * m * n, 8);
      const auto C0 = C;
      std::vector<std::int64_t> oa(nb), ob(nb, 0), oc(nb);
      for (index_t b = 0; b < nb; ++b) {
        oa[b] = b * m * k;
        oc[b] = b * m * n;
      }
      kf::gemm::batched_gemm<T>(nb, m, n, k, T(2), A.data(), oa.data(), k, 1, B.data(), ob.data(), n, 1, T(-1),
                                C.data(), oc.data(), n, 1, true, isa);
      for (index_t b = 0; b < nb; ++b) {
        std::vector<T> c0(C0.begin() + oc[b], C0.begin() + oc[b] + m * n);
        auto R = reference<T>(m, n, k, T(2), A.data() + oa[b], k, 1, B.data(), n, 1, T(-1), c0, n, 1);
        for (index_t i = 0; i < m * n; ++i)
          EXPECT_NEAR(static_cast<double>(C[oc[b] + i]), static_cast<double>(R[i]), tolerance<T>(k) * (2 * k + 1));
      }
    }
}

TYPED_TEST(GemmTyped, MonarchMatchesFormula) {
  using T = TypeParam;
  const index_t k = 4, q = 6, p = 3, l = 8, s = 5, r = 3, batch = 23;  // l*r == k*q
  auto x = random_vec<T>(batch * k * p, 9);
  auto w1 = random_vec<T>(k * q * p, 10);
  auto w2 = random_vec<T>(l * s * r, 11);
  std::vector<T> y(batch * l * s);
  kf::gemm::Blocks3<T> b1{w1.data(), k, q, p, q * p, p, 1};
  kf::gemm::Blocks3<T> b2{w2.data(), l, s, r, s * r, r, 1};
  for (Isa isa : runnable_isas()) {
    kf::gemm::monarch<T>(batch, x.data(), k * p, 1, b1, b2, y.data(), l * s, 1, isa);
    for (index_t b = 0; b < batch; ++b) {
      std::vector<long double> u(k * q);
      for (index_t kk = 0; kk < k; ++kk)
        for (index_t qq = 0; qq < q; ++qq) {
          long double acc = 0;
          for (index_t pp = 0; pp < p; ++pp) acc += (long double)w1[(kk * q + qq) * p + pp] * x[b * k * p + kk * p + pp];
          u[kk * q + qq] = acc;
        }
      for (index_t ll = 0; ll < l; ++ll)
        for (index_t ss = 0; ss < s; ++ss) {
          long double acc = 0;
          for (index_t rr = 0; rr < r; ++rr) acc += (long double)w2[(ll * s + ss) * r + rr] * u[rr * l + ll];
          EXPECT_NEAR(static_cast<double>(y[b * l * s + ss * l + ll]), static_cast<double>(acc), tolerance<T>(p * r) * 4);
        }
    }
  }
}

TEST(Gemm, KernelRegistry) {
  EXPECT_FALSE(kf::gemm::kernels_for<float>(Isa::generic).empty());
  EXPECT_FALSE(kf::gemm::kernels_for<double>(Isa::generic).empty());
  EXPECT_THROW(kf::gemm::choose_kernel<double>(Isa::generic, 5, 5), std::invalid_argument);
  const auto t = kf::gemm::resolve_tiles<double>(kf::gemm::choose_kernel<double>(Isa::generic, 0, 0), {});
  EXPECT_EQ(t.mc % t.mr, 0);
  EXPECT_EQ(t.nc % t.nr, 0);
}

// Default depth blocks are evened out over k (no short last block), never grow past KC, keep the
// block count, and leave a user's KC alone.
TEST(Gemm, DepthBlocksEvenedOverK) {
  for (Isa isa : runnable_isas()) {
    const auto K = kf::gemm::choose_kernel<double>(isa, 0, 0);
    const auto base = kf::gemm::resolve_tiles<double>(K, {});
    for (index_t k : {index_t(1), base.kc - 1, base.kc, base.kc + 1, 2 * base.kc + 7, index_t(2048), index_t(4096)}) {
      const auto t = kf::gemm::resolve_tiles<double>(K, {}, k);
      EXPECT_LE(t.kc, base.kc);
      EXPECT_EQ(kf::gemm::ceil_div(k, t.kc), kf::gemm::ceil_div(k, base.kc)) << "k=" << k;
      if (k > base.kc) {
        const index_t last = k - (kf::gemm::ceil_div(k, t.kc) - 1) * t.kc;
        EXPECT_GE(last + 8 * kf::gemm::ceil_div(k, t.kc), t.kc) << "short last block, k=" << k;
      }
    }
    kf::gemm::Tiles user;
    user.kc = 100;
    EXPECT_EQ((kf::gemm::resolve_tiles<double>(K, user, 1000).kc), 100);
  }
}

}  // namespace
