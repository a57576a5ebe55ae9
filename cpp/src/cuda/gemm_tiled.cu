// Shared-memory tiled GEMM with TILE x TILE thread blocks: the tiled kernel of the Ada Lovelace GEMM
// study (tiles 8, 16, 32; 16 was its best there), generalised by register blocking. Each thread
// computes MICRO x MICRO outputs, so a block covers a (TILE*MICRO)^2 tile of C and steps through k
// TILE at a time; MICRO = 1 is the paper's kernel, one output per thread. Every output sums k in
// order 0, 1, ..., k-1 with one fused multiply-add per term whatever TILE and MICRO are, so all
// configurations give the same bits. Not a cuBLAS competitor: the optional device path and the
// object of the tile study on GPUs.
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

template <class T, int TILE, int MICRO>
__global__ void gemm_tiled_kernel(int m, int n, int k, T alpha, const T* __restrict__ A, const T* __restrict__ B,
                                  T beta, T* __restrict__ C) {
  constexpr int BM = TILE * MICRO;
  // as[p][r]: A's tile transposed, so that a thread's MICRO rows are read across the warp without
  // bank conflicts; the +1 keeps the transposing stores conflict-free too.
  __shared__ T as[TILE][BM + 1];
  __shared__ T bs[TILE][BM + 1];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int row0 = blockIdx.y * BM, col0 = blockIdx.x * BM;
  T acc[MICRO][MICRO];
#pragma unroll
  for (int i = 0; i < MICRO; ++i)
#pragma unroll
    for (int j = 0; j < MICRO; ++j) acc[i][j] = T(0);
  for (int p0 = 0; p0 < k; p0 += TILE) {
    // Thread (ty, tx) loads rows ty + i*TILE of A at depth p0 + tx, and depth p0 + ty of B at columns
    // tx + j*TILE: consecutive threads read consecutive addresses (coalesced).
#pragma unroll
    for (int i = 0; i < MICRO; ++i) {
      const int r = row0 + ty + i * TILE, pa = p0 + tx;
      as[tx][ty + i * TILE] = (r < m && pa < k) ? A[static_cast<long long>(r) * k + pa] : T(0);
      const int c = col0 + tx + i * TILE, pb = p0 + ty;
      bs[ty][tx + i * TILE] = (pb < k && c < n) ? B[static_cast<long long>(pb) * n + c] : T(0);
    }
    __syncthreads();
#pragma unroll
    for (int p = 0; p < TILE; ++p) {
      T a[MICRO], b[MICRO];
#pragma unroll
      for (int i = 0; i < MICRO; ++i) a[i] = as[p][ty + i * TILE];
#pragma unroll
      for (int j = 0; j < MICRO; ++j) b[j] = bs[p][tx + j * TILE];
#pragma unroll
      for (int i = 0; i < MICRO; ++i)
#pragma unroll
        for (int j = 0; j < MICRO; ++j) acc[i][j] = fma(a[i], b[j], acc[i][j]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < MICRO; ++i) {
    const int r = row0 + ty + i * TILE;
#pragma unroll
    for (int j = 0; j < MICRO; ++j) {
      const int c = col0 + tx + j * TILE;
      if (r < m && c < n) {
        T* cp = C + static_cast<long long>(r) * n + c;
        *cp = beta == T(0) ? alpha * acc[i][j] : beta * *cp + alpha * acc[i][j];
      }
    }
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

// Static shared memory is capped at 48 KiB per block: 2 * TILE * (TILE*MICRO + 1) elements.
template <class T>
constexpr bool config_fits(int tile, int micro) {
  return tile * micro <= 128 && 2 * tile * (tile * micro + 1) * static_cast<int>(sizeof(T)) <= 48 * 1024;
}

template <class T>
void check_config(int tile, int micro) {
  if (tile != 8 && tile != 16 && tile != 32)
    throw std::invalid_argument("tile must be 8, 16 or 32, got " + std::to_string(tile));
  if (micro != 1 && micro != 2 && micro != 4 && micro != 8)
    throw std::invalid_argument("micro must be 1, 2, 4 or 8, got " + std::to_string(micro));
  if (!config_fits<T>(tile, micro)) {
    std::string ok;
    for (int t : {8, 16, 32})
      for (int u : {1, 2, 4, 8})
        if (config_fits<T>(t, u)) ok += (ok.empty() ? "" : ", ") + std::to_string(t) + "x" + std::to_string(u);
    throw std::invalid_argument("tile " + std::to_string(tile) + " with micro " + std::to_string(micro) +
                                " needs more than 48 KiB of shared memory (or a block tile above 128) for " +
                                (sizeof(T) == 4 ? "float32" : "float64") + "; tile x micro that fit: " + ok);
  }
}

template <class T, int TILE, int MICRO>
void launch_one(int m, int n, int k, T alpha, const T* A, const T* B, T beta, T* C) {
  // gridDim.y is capped at 65535 blocks: taller products run as several launches over row bands.
  constexpr int BM = TILE * MICRO;
  const int band = 65535 * BM;
  for (int r0 = 0; r0 < m; r0 += band) {
    const int mb = std::min(band, m - r0);
    const dim3 block(TILE, TILE), grid((n + BM - 1) / BM, (mb + BM - 1) / BM);
    // Pairs that do not fit are never instantiated (check_config refuses them before a launch).
    if constexpr (config_fits<T>(TILE, MICRO))
      gemm_tiled_kernel<T, TILE, MICRO><<<grid, block>>>(mb, n, k, alpha, A + static_cast<long long>(r0) * k, B,
                                                          beta, C + static_cast<long long>(r0) * n);
    check(cudaGetLastError(), "kernel launch");
  }
}

template <class T, int TILE>
void launch_tile(int micro, int m, int n, int k, T alpha, const T* A, const T* B, T beta, T* C) {
  switch (micro) {
    case 1: launch_one<T, TILE, 1>(m, n, k, alpha, A, B, beta, C); break;
    case 2: launch_one<T, TILE, 2>(m, n, k, alpha, A, B, beta, C); break;
    case 4: launch_one<T, TILE, 4>(m, n, k, alpha, A, B, beta, C); break;
    default: launch_one<T, TILE, 8>(m, n, k, alpha, A, B, beta, C); break;
  }
}

template <class T>
void launch(int m, int n, int k, T alpha, const T* A, const T* B, T beta, T* C, int tile, int micro) {
  if (tile == 8) launch_tile<T, 8>(micro, m, n, k, alpha, A, B, beta, C);
  else if (tile == 16) launch_tile<T, 16>(micro, m, n, k, alpha, A, B, beta, C);
  else launch_tile<T, 32>(micro, m, n, k, alpha, A, B, beta, C);
}

template <class T>
void run(int m, int n, int k, T alpha, const T* A, const T* B, T beta, T* C, int tile, int micro) {
  check_config<T>(tile, micro);
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
  launch<T>(m, n, k, alpha, da.p, db.p, beta, dc.p, tile, micro);
  // The copy back synchronises, so it also reports a fault inside the kernel.
  check(cudaMemcpy(C, dc.p, sc * sizeof(T), cudaMemcpyDeviceToHost), "cudaMemcpy C back");
}

template <class T>
std::vector<double> time_kernel(int m, int n, int k, int tile, int micro, int warmup, int reps, unsigned seed) {
  check_config<T>(tile, micro);
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
  for (int r = 0; r < warmup; ++r) launch<T>(m, n, k, T(1), da.p, db.p, T(0), dc.p, tile, micro);
  check(cudaDeviceSynchronize(), "warm-up");
  std::vector<double> ms(reps);
  Event t0, t1;
  for (int r = 0; r < reps; ++r) {
    check(cudaEventRecord(t0.e), "cudaEventRecord");
    launch<T>(m, n, k, T(1), da.p, db.p, T(0), dc.p, tile, micro);
    check(cudaEventRecord(t1.e), "cudaEventRecord");
    check(cudaEventSynchronize(t1.e), "kernel");
    float t = 0.f;
    check(cudaEventElapsedTime(&t, t0.e, t1.e), "cudaEventElapsedTime");
    ms[r] = t;
  }
  return ms;
}

}  // namespace

void gemm_tiled_f32(int m, int n, int k, float alpha, const float* A, const float* B, float beta, float* C, int tile,
                    int micro) {
  run<float>(m, n, k, alpha, A, B, beta, C, tile, micro);
}
void gemm_tiled_f64(int m, int n, int k, double alpha, const double* A, const double* B, double beta, double* C,
                    int tile, int micro) {
  run<double>(m, n, k, alpha, A, B, beta, C, tile, micro);
}
std::vector<double> gemm_tiled_time_f32(int m, int n, int k, int tile, int micro, int warmup, int reps,
                                        unsigned seed) {
  return time_kernel<float>(m, n, k, tile, micro, warmup, reps, seed);
}
std::vector<double> gemm_tiled_time_f64(int m, int n, int k, int tile, int micro, int warmup, int reps,
                                        unsigned seed) {
  return time_kernel<double>(m, n, k, tile, micro, warmup, reps, seed);
}
bool gemm_tiled_fits(bool f32, int tile, int micro) {
  return f32 ? config_fits<float>(tile, micro) : config_fits<double>(tile, micro);
}

std::string device_name() {
  int dev = 0;
  cudaDeviceProp p{};
  if (cudaGetDevice(&dev) != cudaSuccess || cudaGetDeviceProperties(&p, dev) != cudaSuccess) return "";
  return p.name;
}

}  // namespace cuda
}  // namespace kf
