// Host entry points of the optional CUDA GEMM (cpp/src/cuda/gemm_tiled.cu, built with KF_CUDA=ON):
// the shared-memory tiled kernel that "Understanding GEMM Performance and Energy on NVIDIA Ada
// Lovelace" sweeps (TILE x TILE thread blocks, TILE in 8, 16, 32), with MICRO x MICRO outputs per
// thread (MICRO in 1, 2, 4, 8; 1 is the paper's kernel). Row-major, contiguous host arrays; the
// wrapper copies to and from the device. Declared here without CUDA headers so that C++ callers
// need no nvcc.
#pragma once

#include <string>
#include <vector>

namespace kf {
namespace cuda {

// C = alpha * A(m x k) * B(k x n) + beta * C (beta == 0 never reads C; alpha == 0 or k == 0 reads
// neither A nor B). Throws std::runtime_error on a CUDA error (no device, out of memory) and
// std::invalid_argument on a bad tile/micro or a pair that does not fit (gemm_tiled_fits).
void gemm_tiled_f32(int m, int n, int k, float alpha, const float* A, const float* B, float beta, float* C, int tile,
                    int micro);
void gemm_tiled_f64(int m, int n, int k, double alpha, const double* A, const double* B, double beta, double* C,
                    int tile, int micro);

// Whether (tile, micro) fits a block's 48 KiB of static shared memory and a block tile of <= 128.
bool gemm_tiled_fits(bool f32, int tile, int micro);

// The kernel alone on device-resident random operands (uniform in [-1, 1) from `seed`): `warmup`
// untimed launches, then `reps` launches each timed with CUDA events. Milliseconds per launch.
// This is the paper's measurement (no host transfers), the one to set beside cuBLAS.
std::vector<double> gemm_tiled_time_f32(int m, int n, int k, int tile, int micro, int warmup, int reps,
                                        unsigned seed);
std::vector<double> gemm_tiled_time_f64(int m, int n, int k, int tile, int micro, int warmup, int reps,
                                        unsigned seed);

// Name of the current CUDA device ("" if none).
std::string device_name();

}  // namespace cuda
}  // namespace kf
