// Tests of sketch-and-project (kf::sketch::sketch_and_project) against Eigen's LU solve, on SPD,
// non-symmetric and indefinite (KKT) systems, plus determinism across thread counts and bad input.
#include <gtest/gtest.h>

#include <Eigen/Dense>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernforge/common/rng.hpp"
#include "kernforge/common/threads.hpp"
#include "kernforge/sketch/iterative.hpp"

namespace {

using Mat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

Mat random_orthogonal(int n, kf::Rng& g) {
  Mat M(n, n);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) M(i, j) = g.normal();
  Eigen::HouseholderQR<Mat> qr(M);
  return qr.householderQ() * Mat::Identity(n, n);
}

// U diag(sigma) V^T with singular values spread over [1, kappa].
Mat with_singular_values(int n, double kappa, kf::Rng& g) {
  Mat U = random_orthogonal(n, g), V = random_orthogonal(n, g);
  Eigen::VectorXd s(n);
  for (int i = 0; i < n; ++i) s[i] = 1.0 + (kappa - 1.0) * i / (n - 1);
  return U * s.asDiagonal() * V.transpose();
}

Mat spd(int n, kf::Rng& g, double kappa = 10.0) {
  Mat U = random_orthogonal(n, g);
  Eigen::VectorXd s(n);
  for (int i = 0; i < n; ++i) s[i] = 1.0 + (kappa - 1.0) * i / (n - 1);
  return U * s.asDiagonal() * U.transpose();
}

// [[H, G^T], [G, 0]] with H SPD (n x n) and G (m x n) of full row rank: symmetric indefinite.
Mat kkt(int n, int m, kf::Rng& g) {
  Mat H = spd(n, g, 4.0);
  Mat G = 2.0 * random_orthogonal(n, g).topRows(m);  // scaled orthonormal rows: kappa(K) about 10
  Mat K = Mat::Zero(n + m, n + m);
  K.topLeftCorner(n, n) = H;
  K.topRightCorner(n, m) = G.transpose();
  K.bottomLeftCorner(m, n) = G;
  return K;
}

template <class T>
kf::sketch::IterativeInfo run(const Mat& A, const Eigen::VectorXd& b, std::vector<T>& x,
                              kf::sketch::IterativeOptions opt) {
  static thread_local std::vector<T> Ad, bd;
  Ad.assign(A.data(), A.data() + A.size());
  bd.assign(b.data(), b.data() + b.size());
  kf::MatrixView<const T> v{Ad.data(), A.rows(), A.cols(), A.cols(), 1};
  x.assign(A.cols(), T(0));
  return kf::sketch::sketch_and_project<T>(v, bd.data(), x.data(), opt);
}

double rel_err(const std::vector<double>& x, const Eigen::VectorXd& ref) {
  double num = 0, den = 0;
  for (int i = 0; i < ref.size(); ++i) {
    num += (x[i] - ref[i]) * (x[i] - ref[i]);
    den += ref[i] * ref[i];
  }
  return std::sqrt(num / den);
}

const char* kSketches[] = {"gaussian", "count", "block_rows", "block_coords"};

void check_converges(const Mat& A, double tol_x) {
  kf::Rng g(99);
  Eigen::VectorXd b(A.rows());
  for (int i = 0; i < b.size(); ++i) b[i] = g.normal();
  const Eigen::VectorXd ref = A.partialPivLu().solve(b);
  for (const char* s : kSketches) {
    for (kf::index_t q : {1, 6}) {
      kf::sketch::IterativeOptions opt;
      opt.sketch = kf::sketch::parse_sketch(s);
      opt.block = q;
      opt.rtol = 1e-11;
      opt.max_iter = 400000;
      opt.seed = 7;
      std::vector<double> x;
      const auto info = run(A, b, x, opt);
      EXPECT_TRUE(info.converged) << s << " q=" << q << " residual " << info.residual;
      EXPECT_LE(info.residual, 1e-11 * b.norm() * 1.0000001) << s;
      EXPECT_LT(rel_err(x, ref), tol_x) << s << " q=" << q;
      EXPECT_EQ(info.residuals.size(), info.checked_at.size());
      EXPECT_EQ(info.checked_at.back(), info.n_iter);
    }
  }
}

}  // namespace

TEST(SketchAndProject, Spd) {
  kf::Rng g(1);
  check_converges(spd(40, g), 1e-9);
}

TEST(SketchAndProject, NonSymmetric) {
  kf::Rng g(2);
  check_converges(with_singular_values(40, 10.0, g), 1e-9);
}

TEST(SketchAndProject, KktIndefinite) {
  kf::Rng g(3);
  Mat K = kkt(24, 8, g);
  Eigen::SelfAdjointEigenSolver<Mat> es(K);
  ASSERT_LT(es.eigenvalues().minCoeff(), 0.0);  // really indefinite
  check_converges(K, 1e-8);
}

TEST(SketchAndProject, Float32) {
  kf::Rng g(4);
  Mat A = with_singular_values(30, 5.0, g);
  Eigen::VectorXd b = Eigen::VectorXd::Ones(30);
  const Eigen::VectorXd ref = A.partialPivLu().solve(b);
  kf::sketch::IterativeOptions opt;
  opt.rtol = 1e-5;
  std::vector<float> x;
  const auto info = run(A, b, x, opt);
  EXPECT_TRUE(info.converged);
  double num = 0, den = 0;
  for (int i = 0; i < 30; ++i) {
    num += (x[i] - ref[i]) * (x[i] - ref[i]);
    den += ref[i] * ref[i];
  }
  EXPECT_LT(std::sqrt(num / den), 1e-4);
}

TEST(SketchAndProject, MomentumHelps) {
  kf::Rng g(5);
  Mat A = with_singular_values(50, 10.0, g);
  Eigen::VectorXd b = Eigen::VectorXd::Ones(50);
  kf::sketch::IterativeOptions opt;
  opt.rtol = 1e-8;
  opt.block = 4;
  std::vector<double> x;
  const auto plain = run(A, b, x, opt);
  opt.momentum = 0.3;
  const auto heavy = run(A, b, x, opt);
  EXPECT_TRUE(plain.converged && heavy.converged);
  EXPECT_LT(heavy.n_iter, plain.n_iter);
}

TEST(SketchAndProject, SameResultAnyThreadCount) {
  kf::Rng g(6);
  Mat A = with_singular_values(300, 4.0, g);  // big enough for threads_for to use 2 threads
  Eigen::VectorXd b = Eigen::VectorXd::Ones(300);
  for (const char* s : kSketches) {
    kf::sketch::IterativeOptions opt;
    opt.sketch = kf::sketch::parse_sketch(s);
    opt.block = 8;
    opt.max_iter = 12;
    opt.momentum = 0.2;
    std::vector<double> x1, x2;
    kf::set_num_threads(1);
    const auto i1 = run(A, b, x1, opt);
    kf::set_num_threads(2);
    const auto i2 = run(A, b, x2, opt);
    kf::set_num_threads(0);
    EXPECT_EQ(i1.n_iter, i2.n_iter);
    for (int i = 0; i < 300; ++i) ASSERT_EQ(x1[i], x2[i]) << s << " entry " << i;
    opt.seed = 1234;
    std::vector<double> x3;
    run(A, b, x3, opt);
    bool differs = false;
    for (int i = 0; i < 300; ++i) differs |= x3[i] != x1[i];
    EXPECT_TRUE(differs) << s << ": another seed should give another iterate";
  }
}

TEST(SketchAndProject, ZeroRightHandSideAndExactStart) {
  kf::Rng g(7);
  Mat A = spd(10, g);
  Eigen::VectorXd b = Eigen::VectorXd::Zero(10);
  std::vector<double> x;
  const auto info = run(A, b, x, kf::sketch::IterativeOptions{});
  EXPECT_TRUE(info.converged);
  EXPECT_EQ(info.n_iter, 0);
}

TEST(SketchAndProject, InconsistentSystemStopsAtMaxIter) {
  Mat A = Mat::Zero(3, 3);
  A(0, 0) = 1;
  A(1, 1) = 1;  // singular, row 2 zero
  Eigen::VectorXd b(3);
  b << 1, 1, 1;
  kf::sketch::IterativeOptions opt;
  opt.max_iter = 50;
  for (const char* s : kSketches) {
    opt.sketch = kf::sketch::parse_sketch(s);
    std::vector<double> x;
    const auto info = run(A, b, x, opt);
    EXPECT_FALSE(info.converged) << s;
    EXPECT_EQ(info.n_iter, 50);
    EXPECT_TRUE(std::isfinite(info.residual)) << s;
    EXPECT_GE(info.residual, 1.0 - 1e-12) << s;  // never below the least-squares residual
    // Coordinate descent minimises ||A x - b||, so it reaches the least-squares residual.
    if (std::string(s) == "block_coords") {
      EXPECT_NEAR(info.residual, 1.0, 1e-12);
    }
  }
}

TEST(SketchAndProject, BadInput) {
  Mat A = Mat::Identity(4, 4);
  Eigen::VectorXd b = Eigen::VectorXd::Ones(4);
  std::vector<double> x;
  kf::sketch::IterativeOptions opt;
  opt.block = 0;
  EXPECT_THROW(run(A, b, x, opt), std::invalid_argument);
  opt = {};
  opt.momentum = 1.0;
  EXPECT_THROW(run(A, b, x, opt), std::invalid_argument);
  opt = {};
  opt.rtol = -1;
  EXPECT_THROW(run(A, b, x, opt), std::invalid_argument);
  opt = {};
  opt.max_iter = -1;
  EXPECT_THROW(run(A, b, x, opt), std::invalid_argument);
  EXPECT_THROW(kf::sketch::parse_sketch("srht"), std::invalid_argument);
  std::vector<double> strided(32, 1.0);
  kf::MatrixView<const double> v{strided.data(), 4, 4, 8, 2};
  std::vector<double> xx(4, 0.0);
  EXPECT_THROW(kf::sketch::sketch_and_project<double>(v, b.data(), xx.data(), opt), std::invalid_argument);
}

TEST(SketchAndProject, NanStopsWithStatus) {
  Mat A = Mat::Identity(4, 4);
  A(2, 1) = std::nan("");
  Eigen::VectorXd b = Eigen::VectorXd::Ones(4);
  std::vector<double> x;
  const auto info = run(A, b, x, kf::sketch::IterativeOptions{});
  EXPECT_FALSE(info.converged);
  EXPECT_EQ(info.status, kf::sketch::IterativeStatus::non_finite);
}
