// Shared-memory tiled GEMM, one output element per thread, TILE x TILE thread blocks: the naive
// tiled kernel of the Ada Lovelace GEMM study (tiles 8, 16, 32; 16 was its best). Not a cuBLAS
// competitor: the optional device path and the object of the tile-size study on GPUs.
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "kernforge/gemm/cuda.hpp"

namespace kf {
namespace cuda {

namespace {

template <class T, int TILE>
__global__ void gemm_tiled_kernel(int m, int n, int k, T alpha, const T* __restrict__ A, const T* __restrict__ B,
                                  T beta, T* __restrict__ C) {
  __shared__ T as[TILE][TILE];
  __shared__ T bs[TILE][TILE + 1];
  const int row = blockIdx.y * TILE + threadIdx.y;
  const int col = blockIdx.x * TILE + threadIdx.x;
  T acc = T(0);
  for (int p0 = 0; p0 < k; p0 += TILE) {
    const int pa = p0 + threadIdx.x, pb = p0 + threadIdx.y;
    as[threadIdx.y][threadIdx.x] = (row < m && pa < k) ? A[static_cast<long long>(row) * k + pa] : T(0);
    bs[threadIdx.y][threadIdx.x] = (pb < k && col < n) ? B[static_cast<long long>(pb) * n + col] : T(0);
    __syncthreads();
#pragma unroll
    for (int p = 0; p < TILE; ++p) acc += as[threadIdx.y][p] * bs[p][threadIdx.x];
    __syncthreads();
  }
  if (row < m && col < n) {
    T* c = C + static_cast<long long>(row) * n + col;
    *c = beta == T(0) ? alpha * acc : beta * *c + alpha * acc;
  }
}

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string("CUDA error in ") + what + ": " + cudaGetErrorString(e));
}

template <class T>
struct DeviceBuffer {
  T* p = nullptr;
  explicit DeviceBuffer(size_t n) { check(cudaMalloc(&p, n * sizeof(T) + 1), "cudaMalloc"); }
  ~DeviceBuffer() { cudaFree(p); }
};

template <class T>
void run(int m, int n, int k, T alpha, const T* A, const T* B, T beta, T* C, int tile) {
  if (tile != 8 && tile != 16 && tile != 32)
    throw std::invalid_argument("tile must be 8, 16 or 32, got " + std::to_string(tile));
  if (m == 0 || n == 0) return;
  const size_t sa = size_t(m) * k, sb = size_t(k) * n, sc = size_t(m) * n;
  DeviceBuffer<T> da(sa), db(sb), dc(sc);
  check(cudaMemcpy(da.p, A, sa * sizeof(T), cudaMemcpyHostToDevice), "cudaMemcpy A");
  check(cudaMemcpy(db.p, B, sb * sizeof(T), cudaMemcpyHostToDevice), "cudaMemcpy B");
  if (beta != T(0)) check(cudaMemcpy(dc.p, C, sc * sizeof(T), cudaMemcpyHostToDevice), "cudaMemcpy C");
  const dim3 block(tile, tile), grid((n + tile - 1) / tile, (m + tile - 1) / tile);
  if (tile == 8) gemm_tiled_kernel<T, 8><<<grid, block>>>(m, n, k, alpha, da.p, db.p, beta, dc.p);
  else if (tile == 16) gemm_tiled_kernel<T, 16><<<grid, block>>>(m, n, k, alpha, da.p, db.p, beta, dc.p);
  else gemm_tiled_kernel<T, 32><<<grid, block>>>(m, n, k, alpha, da.p, db.p, beta, dc.p);
  check(cudaGetLastError(), "kernel launch");
  check(cudaMemcpy(C, dc.p, sc * sizeof(T), cudaMemcpyDeviceToHost), "cudaMemcpy C back");
}

}  // namespace

void gemm_tiled_f32(int m, int n, int k, float alpha, const float* A, const float* B, float beta, float* C, int tile) {
  run<float>(m, n, k, alpha, A, B, beta, C, tile);
}
void gemm_tiled_f64(int m, int n, int k, double alpha, const double* A, const double* B, double beta, double* C,
                    int tile) {
  run<double>(m, n, k, alpha, A, B, beta, C, tile);
}

}  // namespace cuda
}  // namespace kf
