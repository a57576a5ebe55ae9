// Shared-memory tiled GEMM, one output element per thread, TILE x TILE thread blocks: the naive
// tiled kernel of the Ada Lovelace GEMM study (tiles 8, 16, 32; 16 was its best). Not a cuBLAS
// competitor: the optional device path and the object of the tile-size study on GPUs.
#include <cuda_runtime.h>

#include <algorithm>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

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
  // +1 element: cudaMalloc(0) may hand back null, which the kernels must never see.
  explicit DeviceBuffer(size_t n) { check(cudaMalloc(&p, (n + 1) * sizeof(T)), "cudaMalloc"); }
  ~DeviceBuffer() { cudaFree(p); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
};

struct Event {
  cudaEvent_t e = nullptr;
  Event() { check(cudaEventCreate(&e), "cudaEventCreate"); }
  ~Event() { cudaEventDestroy(e); }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
};

void check_tile(int tile) {
  if (tile != 8 && tile != 16 && tile != 32)
    throw std::invalid_argument("tile must be 8, 16 or 32, got " + std::to_string(tile));
}

// gridDim.y is capped at 65535 blocks: taller products run as several launches over row bands.
template <class T>
void launch(int m, int n, int k, T alpha, const T* A, const T* B, T beta, T* C, int tile) {
  const int band = 65535 * tile;
  for (int r0 = 0; r0 < m; r0 += band) {
    const int mb = std::min(band, m - r0);
    const T* a = A + static_cast<long long>(r0) * k;
    T* c = C + static_cast<long long>(r0) * n;
    const dim3 block(tile, tile), grid((n + tile - 1) / tile, (mb + tile - 1) / tile);
    if (tile == 8) gemm_tiled_kernel<T, 8><<<grid, block>>>(mb, n, k, alpha, a, B, beta, c);
    else if (tile == 16) gemm_tiled_kernel<T, 16><<<grid, block>>>(mb, n, k, alpha, a, B, beta, c);
    else gemm_tiled_kernel<T, 32><<<grid, block>>>(mb, n, k, alpha, a, B, beta, c);
    check(cudaGetLastError(), "kernel launch");
  }
}

template <class T>
void run(int m, int n, int k, T alpha, const T* A, const T* B, T beta, T* C, int tile) {
  check_tile(tile);
  if (m == 0 || n == 0) return;
  const size_t sa = size_t(m) * k, sb = size_t(k) * n, sc = size_t(m) * n;
  if (alpha == T(0) || k == 0) {
    // BLAS semantics, as on the CPU: A and B are not read, beta == 0 gives zeros even over NaN.
    for (size_t i = 0; i < sc; ++i) C[i] = beta == T(0) ? T(0) : beta * C[i];
    return;
  }
  DeviceBuffer<T> da(sa), db(sb), dc(sc);
  check(cudaMemcpy(da.p, A, sa * sizeof(T), cudaMemcpyHostToDevice), "cudaMemcpy A");
  check(cudaMemcpy(db.p, B, sb * sizeof(T), cudaMemcpyHostToDevice), "cudaMemcpy B");
  if (beta != T(0)) check(cudaMemcpy(dc.p, C, sc * sizeof(T), cudaMemcpyHostToDevice), "cudaMemcpy C");
  launch<T>(m, n, k, alpha, da.p, db.p, beta, dc.p, tile);
  // The copy back synchronises, so it also reports a fault inside the kernel.
  check(cudaMemcpy(C, dc.p, sc * sizeof(T), cudaMemcpyDeviceToHost), "cudaMemcpy C back");
}

template <class T>
std::vector<double> time_kernel(int m, int n, int k, int tile, int warmup, int reps, unsigned seed) {
  check_tile(tile);
  if (m <= 0 || n <= 0 || k <= 0) throw std::invalid_argument("m, n, k must be positive");
  if (reps < 1 || warmup < 0) throw std::invalid_argument("reps must be >= 1 and warmup >= 0");
  const size_t sa = size_t(m) * k, sb = size_t(k) * n, sc = size_t(m) * n;
  // Random operands, not zeros: a product of zeros can run faster than real data.
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  std::vector<T> ha(sa), hb(sb);
  for (auto& x : ha) x = T(u(gen));
  for (auto& x : hb) x = T(u(gen));
  DeviceBuffer<T> da(sa), db(sb), dc(sc);
  check(cudaMemcpy(da.p, ha.data(), sa * sizeof(T), cudaMemcpyHostToDevice), "cudaMemcpy A");
  check(cudaMemcpy(db.p, hb.data(), sb * sizeof(T), cudaMemcpyHostToDevice), "cudaMemcpy B");
  for (int r = 0; r < warmup; ++r) launch<T>(m, n, k, T(1), da.p, db.p, T(0), dc.p, tile);
  check(cudaDeviceSynchronize(), "warm-up");
  std::vector<double> ms(reps);
  Event t0, t1;
  for (int r = 0; r < reps; ++r) {
    check(cudaEventRecord(t0.e), "cudaEventRecord");
    launch<T>(m, n, k, T(1), da.p, db.p, T(0), dc.p, tile);
    check(cudaEventRecord(t1.e), "cudaEventRecord");
    check(cudaEventSynchronize(t1.e), "kernel");
    float t = 0.f;
    check(cudaEventElapsedTime(&t, t0.e, t1.e), "cudaEventElapsedTime");
    ms[r] = t;
  }
  return ms;
}

}  // namespace

void gemm_tiled_f32(int m, int n, int k, float alpha, const float* A, const float* B, float beta, float* C, int tile) {
  run<float>(m, n, k, alpha, A, B, beta, C, tile);
}
void gemm_tiled_f64(int m, int n, int k, double alpha, const double* A, const double* B, double beta, double* C,
                    int tile) {
  run<double>(m, n, k, alpha, A, B, beta, C, tile);
}
std::vector<double> gemm_tiled_time_f32(int m, int n, int k, int tile, int warmup, int reps, unsigned seed) {
  return time_kernel<float>(m, n, k, tile, warmup, reps, seed);
}
std::vector<double> gemm_tiled_time_f64(int m, int n, int k, int tile, int warmup, int reps, unsigned seed) {
  return time_kernel<double>(m, n, k, tile, warmup, reps, seed);
}

std::string device_name() {
  int dev = 0;
  cudaDeviceProp p{};
  if (cudaGetDevice(&dev) != cudaSuccess || cudaGetDeviceProperties(&p, dev) != cudaSuccess) return "";
  return p.name;
}

}  // namespace cuda
}  // namespace kf
