// The level structure shared by the multiresolution hash encodings: per-level scales and
// resolutions, table sizes and offsets, and the dense / spatial-hash vertex index (Müller, Evans,
// Schied, Keller 2022, "Instant neural graphics primitives", section 3).
//
// Level l has scale s_l = N_min * b^l - 1; an input is mapped to lattice position p = s_l * x + 0.5
// (the simplex encoding first skews x, see simplex.hpp). A level whose vertex lattice fits in the
// table (res^dim <= T) is indexed densely; otherwise vertex v lands in row
//   (XOR_i v_i * pi_i) mod T,   pi = (1, 2654435761, 805459861, 3674653429, 2097192037, 1434869437,
//                                     2165219737, 2971215073)
// (instant-ngp's seven primes; pi_1 = 1 keeps x-neighbours in one cache line; the eighth, a
// Fibonacci prime, is ours and extends the hash to dim = 8).
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "kernforge/common/errors.hpp"

namespace kf {
namespace encoding {

inline constexpr int kMaxDim = 8;
inline constexpr int kMaxLog2TableSize = 30;
// 2^31 parameters = 8 GiB of float32: beyond this a table is a configuration mistake, not a model.
inline constexpr std::uint64_t kMaxParams = std::uint64_t(1) << 31;

inline constexpr std::uint32_t kPrimes[kMaxDim] = {1u,          2654435761u, 805459861u,  3674653429u,
                                                   2097192037u, 1434869437u, 2165219737u, 2971215073u};

enum class Kind { grid = 0, simplex = 1 };

inline const char* kind_name(Kind k) { return k == Kind::grid ? "grid" : "simplex"; }

struct Level {
  double scale = 0;          // s_l
  std::uint32_t res = 0;     // vertices per axis of the lattice box that holds every cell
  std::uint64_t rows = 0;    // table rows of this level
  std::uint64_t offset = 0;  // first row of this level in the concatenated table
  bool dense = false;        // dense index (true) or spatial hash (false)
  std::uint32_t stride[kMaxDim] = {};  // dense strides res^i
};

// Simplex skew x' = (x + F_n * sum(x) * 1) / nu with F_n = (sqrt(n+1) - 1) / n (the simplex-noise
// skew) and nu = (n+1)^(1/(2n)), which makes det = 1: the simplicial lattice has as many vertices
// per unit volume as the hypercube grid at the same scale, so the two encodings compare at equal
// resolution and equal table budget. x' lies in [0, R]^n with R = (n+1)^((n-1)/(2n)).
struct Skew {
  double F = 0;    // F_n
  double inv_nu = 1;
  double R = 1;    // extent of the skewed unit cube along each axis
};

inline Skew simplex_skew(int dim) {
  Skew s;
  const double n = dim;
  s.F = (std::sqrt(n + 1.0) - 1.0) / n;
  s.inv_nu = std::pow(n + 1.0, -1.0 / (2.0 * n));
  s.R = (1.0 + n * s.F) * s.inv_nu;
  return s;
}

struct Layout {
  Kind kind = Kind::grid;
  int dim = 0;
  int levels = 0;
  int features = 0;
  int log2_table_size = 0;
  double base_resolution = 0;
  double per_level_scale = 0;
  Skew skew;
  std::vector<Level> lv;
  std::uint64_t total_rows = 0;

  int output_dim() const { return levels * features; }
  std::uint64_t n_params() const { return total_rows * static_cast<std::uint64_t>(features); }
  int vertices() const { return kind == Kind::grid ? (1 << dim) : dim + 1; }
};

inline Layout make_layout(Kind kind, int dim, int levels, int features, int log2_table_size,
                          double base_resolution, double per_level_scale) {
  KF_REQUIRE(dim >= 1 && dim <= kMaxDim, "dim must lie in [1, ", kMaxDim, "], got ", dim);
  KF_REQUIRE(levels >= 1 && levels <= 64, "levels must lie in [1, 64], got ", levels);
  KF_REQUIRE(features >= 1 && features <= 64, "features_per_level must lie in [1, 64], got ", features);
  KF_REQUIRE(log2_table_size >= 3 && log2_table_size <= kMaxLog2TableSize,
             "log2_table_size must lie in [3, ", kMaxLog2TableSize, "], got ", log2_table_size,
             " (larger tables overflow the 32-bit hash and the memory of any CPU)");
  KF_REQUIRE(std::isfinite(base_resolution) && base_resolution >= 1.0,
             "base_resolution must be a finite number >= 1, got ", base_resolution);
  KF_REQUIRE(std::isfinite(per_level_scale) && per_level_scale >= 1.0,
             "per_level_scale must be a finite number >= 1, got ", per_level_scale);

  Layout L;
  L.kind = kind;
  L.dim = dim;
  L.levels = levels;
  L.features = features;
  L.log2_table_size = log2_table_size;
  L.base_resolution = base_resolution;
  L.per_level_scale = per_level_scale;
  if (kind == Kind::simplex) L.skew = simplex_skew(dim);
  const double extent = kind == Kind::simplex ? L.skew.R : 1.0;
  const std::uint64_t T = std::uint64_t(1) << log2_table_size;

  std::uint64_t offset = 0;
  for (int l = 0; l < levels; ++l) {
    Level v;
    v.scale = base_resolution * std::pow(per_level_scale, l) - 1.0;
    // Lattice positions lie in [0.5, extent * s + 0.5]; a cell's far corner is floor(p) + 1, so
    // floor(extent * s + 0.5) + 2 vertices per axis hold every corner. (instant-ngp's
    // ceil(s) + 1 lets the far corner of the last cell alias the next row when frac(s) >= 0.5.)
    const double far = std::floor(extent * v.scale + 0.5) + 2.0;
    KF_REQUIRE(std::isfinite(far) && far < 2147483648.0, "the finest level's resolution (base_resolution * ",
               "per_level_scale^(levels - 1) = ", v.scale + 1.0, ") overflows 32-bit lattice coordinates");
    v.res = static_cast<std::uint32_t>(far);
    // res^dim, stopping once it exceeds T (res < 2^31 and cells <= T <= 2^30: no overflow).
    std::uint64_t cells = 1;
    bool fits = true;
    for (int i = 0; i < dim && fits; ++i) {
      v.stride[i] = static_cast<std::uint32_t>(cells);
      cells *= v.res;
      fits = cells <= T;
    }
    v.dense = fits;
    v.rows = fits ? ((cells + 7) / 8) * 8 : T;
    if (v.rows > T) v.rows = T;
    v.offset = offset;
    offset += v.rows;
    L.lv.push_back(v);
  }
  L.total_rows = offset;
  KF_REQUIRE(L.n_params() <= kMaxParams, "the tables would hold ", L.n_params(), " parameters (more than 2^31): ",
             "lower log2_table_size (", log2_table_size, "), levels or features_per_level");
  return L;
}

}  // namespace encoding
}  // namespace kf
