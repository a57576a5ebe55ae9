// Tests of the sketching kernels against naive dense references: structure of the operators,
// agreement of every application kernel with the dense product, the fast Walsh-Hadamard transform
// against Sylvester's construction, and bitwise determinism across thread counts.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <set>
#include <stdexcept>
#include <vector>

#include "kernforge/common/rng.hpp"
#include "kernforge/common/threads.hpp"
#include "kernforge/common/views.hpp"
#include "kernforge/sketch/dense_ls.hpp"
#include "kernforge/sketch/gaussian.hpp"
#include "kernforge/sketch/sparse_sketch.hpp"
#include "kernforge/sketch/srht.hpp"

using kf::index_t;
namespace ks = kf::sketch;

namespace {

std::vector<double> dense_of(const ks::SparseSketch& csc) {
  std::vector<double> D(static_cast<std::size_t>(csc.m * csc.n), 0.0);
  for (index_t j = 0; j < csc.n; ++j)
    for (auto q = csc.ptr[j]; q < csc.ptr[j + 1]; ++q) D[csc.idx[q] * csc.n + j] += csc.val[q];
  return D;
}

std::vector<double> random_matrix(index_t rows, index_t cols, std::uint64_t seed, double zero_frac = 0.0) {
  kf::Rng rng(seed);
  std::vector<double> A(static_cast<std::size_t>(rows * cols));
  for (auto& a : A) a = rng.uniform() < zero_frac ? 0.0 : rng.normal();
  return A;
}

// C = L (r x k) * R (k x c), all row-major.
std::vector<double> matmul(const std::vector<double>& L, const std::vector<double>& R, index_t r, index_t k, index_t c) {
  std::vector<double> C(static_cast<std::size_t>(r * c), 0.0);
  for (index_t i = 0; i < r; ++i)
    for (index_t p = 0; p < k; ++p)
      for (index_t j = 0; j < c; ++j) C[i * c + j] += L[i * k + p] * R[p * c + j];
  return C;
}

void expect_near_all(const std::vector<double>& a, const std::vector<double>& b, double tol) {
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], tol) << "at " << i;
}

ks::Compressed64<double> view(const ks::SparseSketch& S, index_t outer) {
  return {outer, S.ptr.data(), S.idx.data(), S.val.data()};
}

struct Csr {
  std::vector<std::int32_t> indptr, indices;
  std::vector<double> data;
};

Csr to_csr(const std::vector<double>& A, index_t rows, index_t cols) {
  Csr c;
  c.indptr.push_back(0);
  for (index_t i = 0; i < rows; ++i) {
    for (index_t j = 0; j < cols; ++j)
      if (A[i * cols + j] != 0.0) {
        c.indices.push_back(static_cast<std::int32_t>(j));
        c.data.push_back(A[i * cols + j]);
      }
    c.indptr.push_back(static_cast<std::int32_t>(c.indices.size()));
  }
  return c;
}

}  // namespace

TEST(SparseSketch, CountSketchHasOneSignPerColumn) {
  const auto S = ks::build_sparse_sketch(ks::SparseKind::countsketch, 7, 100, 1, 3);
  for (index_t j = 0; j < 100; ++j) {
    ASSERT_EQ(S.ptr[j + 1] - S.ptr[j], 1);
    EXPECT_EQ(std::abs(S.val[S.ptr[j]]), 1.0);
    EXPECT_LT(S.idx[S.ptr[j]], 7);
  }
}

TEST(SparseSketch, SparseSignHasDistinctSortedRows) {
  const index_t k = 5;
  const auto S = ks::build_sparse_sketch(ks::SparseKind::sparse_sign, 9, 300, k, 1);
  for (index_t j = 0; j < 300; ++j) {
    ASSERT_EQ(S.ptr[j + 1] - S.ptr[j], k);
    for (auto q = S.ptr[j] + 1; q < S.ptr[j + 1]; ++q) EXPECT_LT(S.idx[q - 1], S.idx[q]);
    for (auto q = S.ptr[j]; q < S.ptr[j + 1]; ++q) EXPECT_DOUBLE_EQ(std::abs(S.val[q]), 1.0 / std::sqrt(5.0));
  }
  // Columns have unit norm, so E[S^T S] = I on the diagonal exactly.
  EXPECT_THROW(ks::build_sparse_sketch(ks::SparseKind::sparse_sign, 4, 10, 5, 0), std::invalid_argument);
}

TEST(SparseSketch, VerySparseDensityAndScale) {
  const index_t m = 200, n = 2000;
  const double s = 25.0;
  const auto S = ks::build_sparse_sketch(ks::SparseKind::very_sparse, m, n, s, 7);
  const double frac = static_cast<double>(S.idx.size()) / static_cast<double>(m * n);
  EXPECT_NEAR(frac, 1.0 / s, 5 * std::sqrt((1.0 / s) / (m * n)));
  for (double v : S.val) EXPECT_DOUBLE_EQ(std::abs(v), std::sqrt(s / m));
}

TEST(SparseSketch, SameForAnyThreadCount) {
  const int before = kf::get_num_threads();
  kf::set_num_threads(1);
  const auto a = ks::build_sparse_sketch(ks::SparseKind::very_sparse, 50, 200000, 10, 5);
  const auto b = ks::build_sparse_sketch(ks::SparseKind::sparse_sign, 50, 200000, 4, 5);
  kf::set_num_threads(2);
  const auto c = ks::build_sparse_sketch(ks::SparseKind::very_sparse, 50, 200000, 10, 5);
  const auto d = ks::build_sparse_sketch(ks::SparseKind::sparse_sign, 50, 200000, 4, 5);
  kf::set_num_threads(before);
  EXPECT_EQ(a.idx, c.idx);
  EXPECT_EQ(a.val, c.val);
  EXPECT_EQ(b.idx, d.idx);
  EXPECT_EQ(b.val, d.val);
}

TEST(SparseSketch, AllKernelsMatchTheDenseProduct) {
  const index_t m = 13, n = 257, d = 37;
  const auto csc = ks::build_sparse_sketch(ks::SparseKind::sparse_sign, m, n, 3, 11);
  const auto csr = ks::transpose(csc, m, n);
  const auto D = dense_of(csc);
  const auto A = random_matrix(n, d, 2, 0.6);
  const auto ref = matmul(D, A, m, n, d);

  kf::MatrixView<const double> Ac{A.data(), n, d, d, 1};
  std::vector<double> out(static_cast<std::size_t>(m * d));
  ks::apply_rows_dense(view(csr, m), Ac, out.data(), d);
  expect_near_all(out, ref, 1e-12);

  std::fill(out.begin(), out.end(), -1.0);
  ks::apply_scatter_dense(view(csc, n), m, Ac, out.data());
  expect_near_all(out, ref, 1e-12);

  // Column-major copy of A read by columns; output column-major.
  std::vector<double> AF(A.size());
  for (index_t i = 0; i < n; ++i)
    for (index_t j = 0; j < d; ++j) AF[j * n + i] = A[i * d + j];
  kf::MatrixView<const double> Af{AF.data(), n, d, 1, n};
  std::vector<double> outF(static_cast<std::size_t>(m * d));
  ks::apply_cols_dense(view(csc, n), m, Af, outF.data());
  for (index_t i = 0; i < m; ++i)
    for (index_t j = 0; j < d; ++j) EXPECT_NEAR(outF[j * m + i], ref[i * d + j], 1e-12);

  // Sparse A: CSR read by rows, and CSC (= CSR of A^T) read by columns.
  const auto Ar = to_csr(A, n, d);
  kf::CsrView<double, std::int32_t> Acsr{n, d, Ar.indptr.data(), Ar.indices.data(), Ar.data.data()};
  ks::apply_rows_csr(view(csr, m), Acsr, out.data());
  expect_near_all(out, ref, 1e-12);
  const auto At = to_csr(AF, d, n);  // AF is A^T row-major
  kf::CsrView<double, std::int32_t> Acsc{d, n, At.indptr.data(), At.indices.data(), At.data.data()};
  ks::apply_cols_csc(view(csc, n), m, Acsc, outF.data());
  for (index_t i = 0; i < m; ++i)
    for (index_t j = 0; j < d; ++j) EXPECT_NEAR(outF[j * m + i], ref[i * d + j], 1e-12);
}

TEST(SparseSketch, ScatterIsBitwiseIdenticalAcrossThreads) {
  const index_t m = 64, n = 50000, d = 48;
  const auto csc = ks::build_sparse_sketch(ks::SparseKind::sparse_sign, m, n, 4, 3);
  const auto A = random_matrix(n, d, 9);
  kf::MatrixView<const double> Ac{A.data(), n, d, d, 1};
  std::vector<double> o1(static_cast<std::size_t>(m * d)), o2(o1.size());
  const int before = kf::get_num_threads();
  kf::set_num_threads(1);
  ks::apply_scatter_dense(view(csc, n), m, Ac, o1.data());
  kf::set_num_threads(2);
  ks::apply_scatter_dense(view(csc, n), m, Ac, o2.data());
  kf::set_num_threads(before);
  EXPECT_EQ(o1, o2);
}

TEST(SparseSketch, ColumnKernelIsBitwiseIdenticalAcrossThreads) {
  const index_t m = 64, n = 30000, d = 21;
  for (auto kind : {ks::SparseKind::countsketch, ks::SparseKind::sparse_sign}) {
    const auto csc = ks::build_sparse_sketch(kind, m, n, 4, 3);
    const auto A = random_matrix(n, d, 9);  // read as F order: n x d with row stride 1
    kf::MatrixView<const double> Af{A.data(), n, d, 1, n};
    std::vector<double> o1(static_cast<std::size_t>(m * d)), o2(o1.size());
    const int before = kf::get_num_threads();
    kf::set_num_threads(1);
    ks::apply_cols_dense(view(csc, n), m, Af, o1.data());
    kf::set_num_threads(2);
    ks::apply_cols_dense(view(csc, n), m, Af, o2.data());
    kf::set_num_threads(before);
    EXPECT_EQ(o1, o2);
    // and equal to the row-streaming kernel on the same matrix in C order, up to rounding
    std::vector<double> AC(A.size());
    for (index_t i = 0; i < n; ++i)
      for (index_t j = 0; j < d; ++j) AC[i * d + j] = A[j * n + i];
    kf::MatrixView<const double> Ac{AC.data(), n, d, d, 1};
    std::vector<double> oc(o1.size());
    ks::apply_scatter_dense(view(csc, n), m, Ac, oc.data());
    for (index_t i = 0; i < m; ++i)
      for (index_t j = 0; j < d; ++j) EXPECT_NEAR(o1[j * m + i], oc[i * d + j], 1e-10);
  }
}

// (A^T (B - A X), ||B - A X||^2) by the fused pass vs the naive two-pass product, C and F order,
// with and without X, and bitwise equal for 1 and 2 threads.
TEST(DenseLs, NormalResidualPassMatchesNaiveAndThreads) {
  const index_t n = 7000, d = 23, k = 2;
  const auto A = random_matrix(n, d, 4);  // row-major
  std::vector<double> AF(A.size());
  for (index_t i = 0; i < n; ++i)
    for (index_t j = 0; j < d; ++j) AF[j * n + i] = A[i * d + j];
  const auto B = random_matrix(n, k, 5);  // used column-major: B[i + j n]
  const auto X = random_matrix(d, k, 6);  // column-major: X[q + j d]
  std::vector<double> gref(static_cast<std::size_t>(d * k), 0.0), rref(k, 0.0);
  for (index_t j = 0; j < k; ++j)
    for (index_t i = 0; i < n; ++i) {
      double r = B[i + j * n];
      for (index_t q = 0; q < d; ++q) r -= A[i * d + q] * X[q + j * d];
      rref[j] += r * r;
      for (index_t q = 0; q < d; ++q) gref[q + j * d] += A[i * d + q] * r;
    }
  kf::MatrixView<const double> Ac{A.data(), n, d, d, 1}, Af{AF.data(), n, d, 1, n};
  const int before = kf::get_num_threads();
  for (const auto& Av : {Ac, Af}) {
    std::vector<double> g1(gref.size()), g2(gref.size()), r1(k), r2(k);
    kf::set_num_threads(1);
    ks::normal_residual_pass(Av, B.data(), n, k, X.data(), g1.data(), r1.data());
    kf::set_num_threads(2);
    ks::normal_residual_pass(Av, B.data(), n, k, X.data(), g2.data(), r2.data());
    EXPECT_EQ(g1, g2);
    EXPECT_EQ(r1, r2);
    expect_near_all(g1, gref, 1e-8);
    for (index_t j = 0; j < k; ++j) EXPECT_NEAR(r1[j], rref[j], 1e-9 * rref[j]);
    ks::normal_residual_pass<double>(Av, B.data(), n, k, nullptr, g1.data(), r1.data());  // X = 0: A^T B, ||B||^2
    for (index_t j = 0; j < k; ++j) {
      double bb = 0.0;
      for (index_t i = 0; i < n; ++i) bb += B[i + j * n] * B[i + j * n];
      EXPECT_NEAR(r1[j], bb, 1e-10 * bb);
      for (index_t q = 0; q < d; ++q) {
        double s = 0.0;
        for (index_t i = 0; i < n; ++i) s += A[i * d + q] * B[i + j * n];
        EXPECT_NEAR(g1[q + j * d], s, 1e-9);
      }
    }
  }
  kf::set_num_threads(before);
  const std::vector<double> Z(4, 0.0);
  kf::MatrixView<const double> bad{Z.data(), 2, 2, 2, 2};  // neither row- nor column-contiguous
  std::vector<double> g(2), r(1);
  EXPECT_THROW(ks::normal_residual_pass<double>(bad, Z.data(), 2, 1, nullptr, g.data(), r.data()), std::invalid_argument);
}

TEST(Fwht, MatchesSylvesterHadamard) {
  const index_t N = 16, c = 3;
  // Sylvester: H_{ij} = (-1)^{popcount(i & j)}.
  auto H = [](index_t i, index_t j) { return (__builtin_popcountll(static_cast<unsigned long long>(i & j)) & 1) ? -1.0 : 1.0; };
  auto x = random_matrix(N, c, 4);
  std::vector<double> ref(x.size(), 0.0);
  for (index_t i = 0; i < N; ++i)
    for (index_t j = 0; j < N; ++j)
      for (index_t t = 0; t < c; ++t) ref[i * c + t] += H(i, j) * x[j * c + t];
  ks::fwht_panel(x.data(), N, c);
  expect_near_all(x, ref, 1e-12);
  // H H = N I.
  auto y = ref;
  ks::fwht_panel(y.data(), N, c);
  auto x0 = random_matrix(N, c, 4);
  for (std::size_t i = 0; i < y.size(); ++i) EXPECT_NEAR(y[i], N * x0[i], 1e-10);
}

TEST(Fwht, LargeTransformUsesChunksCorrectly) {
  // Long enough that the cache-chunked stages and the streaming stages both run.
  const index_t N = 1 << 14, c = 8;
  auto x = random_matrix(N, c, 5);
  const auto x0 = x;
  ks::fwht_panel(x.data(), N, c);
  ks::fwht_panel(x.data(), N, c);
  for (std::size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(x[i], N * x0[i], 1e-8 * N);
}

TEST(Srht, ApplyAndAdjointMatchExplicitMatrix) {
  const index_t n = 23, d = 11, m = 9;
  const index_t n_pad = ks::next_pow2(n);
  ASSERT_EQ(n_pad, 32);
  const auto rows = ks::srht_rows(m, n_pad, 3);
  ASSERT_EQ(static_cast<index_t>(rows.size()), m);
  std::set<std::int64_t> uniq(rows.begin(), rows.end());
  EXPECT_EQ(static_cast<index_t>(uniq.size()), m);
  auto H = [](index_t i, index_t j) { return (__builtin_popcountll(static_cast<unsigned long long>(i & j)) & 1) ? -1.0 : 1.0; };
  std::vector<double> S(static_cast<std::size_t>(m * n));
  for (index_t r = 0; r < m; ++r)
    for (index_t j = 0; j < n; ++j) S[r * n + j] = H(rows[r], j) * ks::srht_sign(3, j) / std::sqrt(double(m));
  const auto A = random_matrix(n, d, 8);
  kf::MatrixView<const double> Ac{A.data(), n, d, d, 1};
  std::vector<double> out(static_cast<std::size_t>(m * d));
  ks::srht_apply_dense(Ac, n_pad, rows, 3, out.data(), d);
  expect_near_all(out, matmul(S, A, m, n, d), 1e-12);

  const auto Y = random_matrix(m, 4, 6);
  std::vector<double> St(static_cast<std::size_t>(n * m));
  for (index_t r = 0; r < m; ++r)
    for (index_t j = 0; j < n; ++j) St[j * m + r] = S[r * n + j];
  kf::MatrixView<const double> Yv{Y.data(), m, 4, 4, 1};
  std::vector<double> adj(static_cast<std::size_t>(n * 4));
  ks::srht_adjoint(Yv, n, n_pad, rows, 3, adj.data());
  expect_near_all(adj, matmul(St, Y, n, m, 4), 1e-12);
}

TEST(Gaussian, BlocksAreConsistentAndMomentsRight) {
  const index_t m = 64;
  std::vector<double> all(static_cast<std::size_t>(100 * m)), part(static_cast<std::size_t>(60 * m));
  ks::gaussian_columns<double>(m, 0, 100, 9, all.data());
  ks::gaussian_columns<double>(m, 40, 100, 9, part.data());
  for (index_t q = 0; q < 60 * m; ++q) EXPECT_EQ(part[q], all[40 * m + q]);
  double s2 = 0;
  for (double v : all) s2 += v * v;
  // Columns of S have expected squared norm 1.
  EXPECT_NEAR(s2 / 100, 1.0, 5 * std::sqrt(2.0 / (100.0 * m)));
}
