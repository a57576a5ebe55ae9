// Dense Gaussian sketch S (m x n), entries N(0, 1/m), so E[S^T S] = I (Johnson & Lindenstrauss;
// the LSRN preconditioner of Meng, Saunders & Mahoney, 2014). Column j of S is drawn from
// kf::Rng(seed, j) alone, so any block of columns can be generated on its own and the matrix does
// not depend on the thread count. Application is a GEMM done by the caller (BLAS) block by block,
// so the full S never has to exist at once.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernforge/common/errors.hpp"
#include "kernforge/common/rng.hpp"
#include "kernforge/common/threads.hpp"
#include "kernforge/common/views.hpp"

namespace kf {
namespace sketch {

// out ((j1 - j0) x m, row-major): row t holds column j0 + t of S.
template <class T>
void gaussian_columns(index_t m, index_t j0, index_t j1, std::uint64_t seed, T* out) {
  KF_REQUIRE(m >= 1, "m must be >= 1, got ", m);
  KF_REQUIRE(0 <= j0 && j0 <= j1, "column range must satisfy 0 <= j0 <= j1, got [", j0, ", ", j1, ")");
  const double scale = 1.0 / std::sqrt(static_cast<double>(m));
  const std::size_t work = static_cast<std::size_t>(j1 - j0) * static_cast<std::size_t>(m) * 8;
#pragma omp parallel for schedule(static) num_threads(threads_for(work))
  for (index_t j = j0; j < j1; ++j) {
    Rng rng(seed, static_cast<std::uint64_t>(j));
    T* o = out + (j - j0) * m;
    for (index_t i = 0; i < m; ++i) o[i] = static_cast<T>(scale * rng.normal());
  }
}

}  // namespace sketch
}  // namespace kf
