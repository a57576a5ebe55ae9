// Tests of the shared runtime: RNG determinism and statistics, thread setting, error guard, views.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <stdexcept>
#include <vector>

#include "kernforge/common/config.hpp"
#include "kernforge/common/cpu.hpp"
#include "kernforge/common/errors.hpp"
#include "kernforge/common/rng.hpp"
#include "kernforge/common/threads.hpp"
#include "kernforge/common/views.hpp"

TEST(Rng, SameSeedSameStream) {
  kf::Rng a(42, 7), b(42, 7), c(42, 8), d(43, 7);
  bool differs_c = false, differs_d = false;
  for (int i = 0; i < 100; ++i) {
    const auto x = a.next_u64();
    EXPECT_EQ(x, b.next_u64());
    differs_c |= (x != c.next_u64());
    differs_d |= (x != d.next_u64());
  }
  EXPECT_TRUE(differs_c);
  EXPECT_TRUE(differs_d);
}

TEST(Rng, UniformAndNormalMoments) {
  kf::Rng r(1);
  const int n = 200000;
  double su = 0, sn = 0, sn2 = 0;
  for (int i = 0; i < n; ++i) {
    const double u = r.uniform();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    su += u;
    const double z = r.normal();
    sn += z;
    sn2 += z * z;
  }
  EXPECT_NEAR(su / n, 0.5, 5 * std::sqrt(1.0 / 12 / n));
  EXPECT_NEAR(sn / n, 0.0, 5 / std::sqrt(double(n)));
  EXPECT_NEAR(sn2 / n, 1.0, 5 * std::sqrt(2.0 / n));
}

TEST(Rng, BelowIsInRangeAndRoughlyUniform) {
  kf::Rng r(3);
  std::vector<int> counts(7, 0);
  for (int i = 0; i < 70000; ++i) {
    const auto k = r.below(7);
    ASSERT_LT(k, 7u);
    ++counts[k];
  }
  for (int c : counts) EXPECT_NEAR(c, 10000, 500);
}

TEST(Rng, HashIsStateless) {
  EXPECT_EQ(kf::hash64(5, 1, 2), kf::hash64(5, 1, 2));
  EXPECT_NE(kf::hash64(5, 1, 2), kf::hash64(5, 2, 1));
  EXPECT_NE(kf::hash64(5, 1, 2), kf::hash64(6, 1, 2));
}

TEST(Threads, SetAndReset) {
  const int def = kf::default_num_threads();
  EXPECT_GE(def, 1);
  kf::set_num_threads(1);
  EXPECT_EQ(kf::get_num_threads(), 1);
  EXPECT_EQ(kf::threads_for(1u << 30), 1);
  kf::set_num_threads(3);
  EXPECT_EQ(kf::get_num_threads(), 3);
  EXPECT_EQ(kf::threads_for(10), 1);             // too little work to wake a team
  EXPECT_EQ(kf::threads_for(2 * 32768), 2);      // enough for two
  EXPECT_EQ(kf::threads_for(1u << 30), 3);
  kf::set_num_threads(0);
  EXPECT_EQ(kf::get_num_threads(), def);
}

TEST(Errors, MessagesNameTheArgument) {
  try {
    KF_REQUIRE(1 == 2, "A must be square, got shape (", 3, ", ", 4, ")");
    FAIL() << "no throw";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "A must be square, got shape (3, 4)");
  }
  EXPECT_THROW(kf::throw_domain("omega"), std::domain_error);
}

TEST(Errors, ConcatFormatsLikeADefaultOstream) {
  // concat avoids iostreams (see errors.hpp); its output must match what `ostream <<` printed before.
  const std::string name = "omega";
  const std::int64_t big = -(std::int64_t(1) << 40);
  EXPECT_EQ(kf::concat(name, " must be in (0, 2), got ", 2.5), "omega must be in (0, 2), got 2.5");
  EXPECT_EQ(kf::concat(big, ' ', std::size_t(7), ' ', 1e-7, ' ', 1.0f / 3.0f, ' ', true, ' ', 123456789.0),
            "-1099511627776 7 1e-07 0.333333 1 1.23457e+08");
  EXPECT_EQ(kf::concat(std::nan(""), " ", -INFINITY, " ", 0.0), "nan -inf 0");
  EXPECT_EQ(kf::concat(), "");
}

TEST(Errors, ParallelGuardCarriesTheFirstException) {
  kf::ParallelGuard guard;
  int done = 0;
#pragma omp parallel for num_threads(2) reduction(+ : done)
  for (int i = 0; i < 100; ++i) {
    guard.run([&] {
      if (i == 37) throw std::invalid_argument("row 37 is bad");
      ++done;
    });
  }
  EXPECT_TRUE(guard.failed());
  EXPECT_EQ(done, 99);
  EXPECT_THROW(guard.rethrow(), std::invalid_argument);
}

TEST(Views, StridesInElements) {
  std::vector<double> buf(12);
  for (int i = 0; i < 12; ++i) buf[i] = i;
  kf::MatrixView<double> c{buf.data(), 3, 4, 4, 1};  // C order 3 x 4
  EXPECT_TRUE(c.row_major());
  EXPECT_EQ(c(2, 1), 9.0);
  auto t = c.transposed();
  EXPECT_EQ(t.rows, 4);
  EXPECT_EQ(t(1, 2), 9.0);
  EXPECT_TRUE(t.col_major());
  EXPECT_EQ(c.col(3)[2], 11.0);
}

TEST(Cpu, IsaNamesRoundTrip) {
  for (auto isa : {kf::Isa::generic, kf::Isa::avx2, kf::Isa::avx512})
    EXPECT_EQ(kf::parse_isa(kf::isa_name(isa)), isa);
  EXPECT_THROW(kf::parse_isa("sse9"), std::invalid_argument);
  kf::set_isa(kf::Isa::generic);
  EXPECT_EQ(kf::active_isa(), kf::Isa::generic);
  kf::reset_isa();
  EXPECT_LE(static_cast<int>(kf::active_isa()), static_cast<int>(kf::detected_isa()));
}
