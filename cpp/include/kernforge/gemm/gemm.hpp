// General matrix product C = alpha * A * B + beta * C on strided views (any row/column strides,
// negative ones included), float and double, after the Goto/BLIS five-loop algorithm:
//
//   jc (NC columns; B~ panel shared by all threads, L3)
//     pc (KC depth; each thread packs its share of B~, alpha folded in, up to two blocks ahead)
//       ic (MC rows; each thread owns an even share of the rows and packs its own A~ for its L2)
//         jr (NR columns; the KC x NR sliver of B~ stays in L1)
//           ir (MR rows) -> micro-kernel (kernels.hpp)
//
// K. Goto, R. van de Geijn, "Anatomy of High-Performance Matrix Multiplication", ACM TOMS 34(3), 2008;
// F. Van Zee, R. van de Geijn, "BLIS: A Framework for Rapidly Instantiating BLAS Functionality",
// ACM TOMS 41(3), 2015.
//
// Determinism: k is never split across threads and the row blocks are multiples of MR, so every
// element of C sees the same sequence of operations for any thread count (bitwise-identical
// results at a fixed ISA and tiling). Different ISAs (FMA or not) differ in the last bits.
// BLAS semantics: beta == 0 never reads C; alpha == 0 or k == 0 gives C = beta*C without reading
// A or B (as the reference BLAS and OpenBLAS do); otherwise NaN/Inf propagate (0*NaN = NaN: zero
// blocks are never skipped).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <stdexcept>
#include <thread>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "kernforge/common/config.hpp"
#include "kernforge/common/cpu.hpp"
#include "kernforge/common/errors.hpp"
#include "kernforge/common/threads.hpp"
#include "kernforge/common/views.hpp"
#include "kernforge/gemm/kernels.hpp"

namespace kf {
namespace gemm {

// Blocking parameters. Zero means "the default for the chosen kernel". pack_a: -1 auto, 0 never
// (read A through its strides), 1 always.
struct Tiles {
  int mr = 0, nr = 0;
  index_t mc = 0, kc = 0, nc = 0;
  int pack_a = -1;
};

// A grow-only, 64-byte aligned scratch buffer per thread and slot (no malloc per call; OpenMP
// worker threads persist, so their buffers are reused too).
template <class T, int Slot>
T* scratch(std::size_t n) {
  struct Buf {
    void* p = nullptr;
    std::size_t bytes = 0;
    ~Buf() { std::free(p); }
  };
  thread_local Buf buf;
  std::size_t need = ((n * sizeof(T) + 63) / 64) * 64;
  if (need == 0) need = 64;
  if (need > buf.bytes) {
    std::free(buf.p);
    buf.p = nullptr;
    buf.bytes = 0;
    std::size_t align = 64;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    // Packed blocks (A~ for L2, B~ for L3) go on transparent huge pages: on 4 KiB pages their
    // physical placement, hence their L2 set conflicts, changes from process to process. On the
    // Zen 3 VM (THP "madvise", the common default), 1024^3 at 2 threads in 4 fresh processes
    // each: dgemm 0.90-1.00x NumPy with this vs 0.81-0.90x without (sgemm 0.86-1.02x vs 0.83-0.94x).
    if (need >= (std::size_t(1) << 17)) {
      align = std::size_t(2) << 20;
      need = (need + align - 1) / align * align;
    }
#endif
    void* p = std::aligned_alloc(align, need);
    if (!p) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (align > 64) madvise(p, need, MADV_HUGEPAGE);
#endif
    buf.p = p;
    buf.bytes = need;
  }
  return static_cast<T*>(buf.p);
}

inline index_t round_up(index_t x, index_t m) { return (x + m - 1) / m * m; }
inline index_t ceil_div(index_t x, index_t m) { return (x + m - 1) / m; }

template <class T>
KernelInfo<T> choose_kernel(Isa isa, int mr, int nr) {
  auto ks = kernels_for<T>(isa);
  if (ks.empty()) ks = kernels_for<T>(Isa::generic);
  if (mr == 0 && nr == 0) return ks.front();
  for (const auto& k : ks)
    if (k.mr == mr && k.nr == nr) return k;
  std::string avail;
  for (const auto& k : ks) avail += concat(avail.empty() ? "" : ", ", k.mr, "x", k.nr);
  throw_invalid("tiles mr x nr = ", mr, "x", nr, " has no micro-kernel for ISA ", isa_name(isa),
                " (available: ", avail, ")");
}

// Default blocking for a kernel: the KC x NR sliver of B~ within L1, NC*KC*s within the shared L3.
// Figures measured against OpenBLAS on an AVX2 Zen 3 machine (the AVX-512 ones with tile_sweep).
template <class T>
Tiles resolve_tiles(const KernelInfo<T>& k, const Tiles& user) {
  Tiles t = user;
  t.mr = k.mr;
  t.nr = k.nr;
  const bool f32 = sizeof(T) == 4;
  index_t kc = 256, mc = 144, nc = 4080;
  if (k.isa == Isa::avx512) {
    kc = 512;
    mc = f32 ? 144 : 192;
    nc = 4096;
  } else if (k.isa == Isa::avx2) {
    // A~ blocks larger than L2 (as OpenBLAS's P x Q on Haswell/Zen): fewer passes over the B~ panel
    // (L3) and, with the deeper KC, over C (memory). Timed interleaved with OpenBLAS (order rotated,
    // OPENBLAS_THREAD_TIMEOUT=4 as in the suite), medians of 7 in 3 fresh processes, NumPy/ours,
    // n=2048: f64 1 thread 0.90-0.93x at the former 72x256 vs 0.99-1.00x; f32 1 thread 0.82-0.89x
    // at 168x384 vs 0.86-0.95x; 2 threads f64 0.82-0.95x vs 0.87-0.90x, f32 0.80-0.85x vs 0.84-0.88x.
    kc = f32 ? 512 : 384;
    mc = f32 ? 240 : 288;
    nc = 4080;
  } else {
    kc = 256;
    mc = 128;
    nc = 2048;
  }
  if (t.kc <= 0) t.kc = kc;
  if (t.mc <= 0) t.mc = mc;
  if (t.nc <= 0) t.nc = nc;
  t.mc = round_up(t.mc, k.mr);
  t.nc = round_up(t.nc, k.nr);
  return t;
}

// Default blocking for a problem of depth `depth`: with one short depth block (k < KC) the A block
// is small and C traffic dominates; there smaller row blocks measured faster (2000x64 @ 64x2000:
// f32 6.4 ms at MC=120 vs 8.6 ms at 168; f64 12.0 vs 14.4 ms at 96 vs 72).
template <class T>
Tiles resolve_tiles(const KernelInfo<T>& k, const Tiles& user, index_t depth) {
  Tiles t = resolve_tiles(k, user);
  if (user.mc <= 0 && k.isa == Isa::avx2 && depth < t.kc) t.mc = round_up(sizeof(T) == 4 ? 120 : 96, k.mr);
  // Even depth blocks (2048 in f64: 6 x 344 rather than 5 x 384 + 128): same number of passes over
  // C, none of them for a short block. Depends on k only, so results stay the same for any thread count.
  if (user.kc <= 0 && depth > t.kc) t.kc = round_up(ceil_div(depth, ceil_div(depth, t.kc)), 8);
  return t;
}

// ------------------------------------------------------------------ packing
#ifdef KF_GEMM_X86
// Six rows of a row-major A (unit column stride) into an A~ sliver for MR = 6, eight (float) or four
// (double) depth steps per round: in-register transposes instead of 6 scalar stores per step.
__attribute__((target("avx2"))) inline index_t pack_a6_simd(index_t kc, const float* a, index_t rsa, float* dst) {
  index_t p = 0;
  for (; p + 8 <= kc; p += 8) {
    const __m256 r0 = _mm256_loadu_ps(a + p), r1 = _mm256_loadu_ps(a + rsa + p), r2 = _mm256_loadu_ps(a + 2 * rsa + p),
                 r3 = _mm256_loadu_ps(a + 3 * rsa + p), r4 = _mm256_loadu_ps(a + 4 * rsa + p),
                 r5 = _mm256_loadu_ps(a + 5 * rsa + p);
    const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
    const __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
    const __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
    // u[c] holds rows 0-3 of depth steps c (low lane) and c+4 (high lane); t4/t5 hold rows 4-5 in pairs.
    const __m256 u[4] = {_mm256_shuffle_ps(t0, t2, 0x44), _mm256_shuffle_ps(t0, t2, 0xEE),
                         _mm256_shuffle_ps(t1, t3, 0x44), _mm256_shuffle_ps(t1, t3, 0xEE)};
    const __m128 q[4] = {_mm256_castps256_ps128(t4), _mm256_castps256_ps128(t5), _mm256_extractf128_ps(t4, 1),
                         _mm256_extractf128_ps(t5, 1)};
    float* d = dst + p * 6;
    for (int c = 0; c < 8; ++c) {
      const __m256 uc = u[c & 3];
      _mm_storeu_ps(d + 6 * c, c < 4 ? _mm256_castps256_ps128(uc) : _mm256_extractf128_ps(uc, 1));
      // Rows 4 and 5 of step c: q[c / 2], low half for even c, high half for odd c.
      const __m128 pq = q[c >> 1];
      if (c & 1) {
        _mm_storeh_pi(reinterpret_cast<__m64*>(d + 6 * c + 4), pq);
      } else {
        _mm_storel_pi(reinterpret_cast<__m64*>(d + 6 * c + 4), pq);
      }
    }
  }
  return p;
}
__attribute__((target("avx2"))) inline index_t pack_a6_simd(index_t kc, const double* a, index_t rsa, double* dst) {
  index_t p = 0;
  for (; p + 4 <= kc; p += 4) {
    const __m256d r0 = _mm256_loadu_pd(a + p), r1 = _mm256_loadu_pd(a + rsa + p), r2 = _mm256_loadu_pd(a + 2 * rsa + p),
                  r3 = _mm256_loadu_pd(a + 3 * rsa + p), r4 = _mm256_loadu_pd(a + 4 * rsa + p),
                  r5 = _mm256_loadu_pd(a + 5 * rsa + p);
    const __m256d t0 = _mm256_unpacklo_pd(r0, r1), t1 = _mm256_unpackhi_pd(r0, r1);
    const __m256d t2 = _mm256_unpacklo_pd(r2, r3), t3 = _mm256_unpackhi_pd(r2, r3);
    const __m256d t4 = _mm256_unpacklo_pd(r4, r5), t5 = _mm256_unpackhi_pd(r4, r5);
    double* d = dst + p * 6;
    _mm256_storeu_pd(d, _mm256_permute2f128_pd(t0, t2, 0x20));
    _mm_storeu_pd(d + 4, _mm256_castpd256_pd128(t4));
    _mm256_storeu_pd(d + 6, _mm256_permute2f128_pd(t1, t3, 0x20));
    _mm_storeu_pd(d + 10, _mm256_castpd256_pd128(t5));
    _mm256_storeu_pd(d + 12, _mm256_permute2f128_pd(t0, t2, 0x31));
    _mm_storeu_pd(d + 16, _mm256_extractf128_pd(t4, 1));
    _mm256_storeu_pd(d + 18, _mm256_permute2f128_pd(t1, t3, 0x31));
    _mm_storeu_pd(d + 22, _mm256_extractf128_pd(t5, 1));
  }
  return p;
}
#endif

// A~ sliver: rows [0, mr) of a (mr <= MR), depth kc: dst[p*MR + i] = a(i, p), zero rows beyond mr.
// `simd`: the CPU has AVX2 (the chosen kernel's ISA is not generic).
template <class T>
void pack_a_sliver(int MR, index_t mr, index_t kc, const T* a, index_t rsa, index_t csa, T* dst, bool simd = false) {
  if (csa == 1 && mr == MR) {
    index_t p0 = 0;
#ifdef KF_GEMM_X86
    if (simd && MR == 6) p0 = pack_a6_simd(kc, a, rsa, dst);
#else
    (void)simd;
#endif
    for (index_t i = 0; i < MR; ++i) {
      const T* src = a + i * rsa;
      for (index_t p = p0; p < kc; ++p) dst[p * MR + i] = src[p];
    }
    return;
  }
  for (index_t p = 0; p < kc; ++p) {
    const T* src = a + p * csa;
    T* d = dst + p * MR;
    index_t i = 0;
    for (; i < mr; ++i) d[i] = src[i * rsa];
    for (; i < MR; ++i) d[i] = T(0);
  }
}

// B~ sliver: columns [0, nr) (nr <= NR), depth kc: dst[p*NR + j] = alpha * b(p, j), zero beyond nr.
template <class T>
void pack_b_sliver(int NR, index_t nr, index_t kc, const T* b, index_t rsb, index_t csb, T alpha, T* dst) {
  if (csb == 1) {
    for (index_t p = 0; p < kc; ++p) {
      const T* src = b + p * rsb;
      T* d = dst + p * NR;
      index_t j = 0;
      for (; j < nr; ++j) d[j] = alpha * src[j];
      for (; j < NR; ++j) d[j] = T(0);
    }
    return;
  }
  for (index_t j = 0; j < NR; ++j) {
    if (j < nr) {
      const T* src = b + j * csb;
      for (index_t p = 0; p < kc; ++p) dst[p * NR + j] = alpha * src[p * rsb];
    } else {
      for (index_t p = 0; p < kc; ++p) dst[p * NR + j] = T(0);
    }
  }
}

// Row-major B: depth step p of slivers [s0, s1) (all NR columns present) is one contiguous run of B's
// row p. Reading the panel row by row streams each row once, instead of touching kc rows (a page
// apart for n >= 1024 floats) per sliver, which defeats the hardware prefetcher.
template <class T, int NRc>
void pack_b_rows(index_t s0, index_t s1, index_t kc, const T* b, index_t rsb, T alpha, T* dst) {
  for (index_t p = 0; p < kc; ++p) {
    const T* src = b + p * rsb + s0 * NRc;
    T* d = dst + s0 * kc * NRc + p * NRc;
    for (index_t s = s0; s < s1; ++s, src += NRc, d += kc * NRc)
      for (int j = 0; j < NRc; ++j) d[j] = alpha * src[j];
  }
}

// B~ slivers [s0, s1) of a kc x nb panel (sliver s: columns [s*NR, min(s*NR + NR, nb)), stored at
// dst + s*kc*NR).
template <class T>
void pack_b_panel(int NR, index_t nb, index_t s0, index_t s1, index_t kc, const T* b, index_t rsb, index_t csb,
                  T alpha, T* dst) {
  index_t s = s0;
  if (csb == 1) {
    const index_t full = std::min(s1, nb / NR);
    if (full > s0) {
      switch (NR) {
        case 8: pack_b_rows<T, 8>(s0, full, kc, b, rsb, alpha, dst); s = full; break;
        case 16: pack_b_rows<T, 16>(s0, full, kc, b, rsb, alpha, dst); s = full; break;
        default: break;
      }
    }
  }
  for (; s < s1; ++s) {
    const index_t j0 = s * NR;
    pack_b_sliver(NR, std::min<index_t>(NR, nb - j0), kc, b + j0 * csb, rsb, csb, alpha, dst + s * kc * NR);
  }
}

// Store a full MR x NR tile computed with beta = 0 into C(0..mr, 0..nr) applying beta.
template <class T>
void store_tile(const T* t, int NR, index_t mr, index_t nr, T* c, index_t rsc, index_t csc, T beta) {
  if (beta == T(0)) {
    for (index_t i = 0; i < mr; ++i)
      for (index_t j = 0; j < nr; ++j) c[i * rsc + j * csc] = t[i * NR + j];
  } else {
    for (index_t i = 0; i < mr; ++i)
      for (index_t j = 0; j < nr; ++j) {
        T& cij = c[i * rsc + j * csc];
        cij = beta * cij + t[i * NR + j];
      }
  }
}

// The two inner loops (jr, ir) over one block: rows [0, mb) of A (packed as A~ if `apack`, else read
// in place), the packed B~ slivers [j_begin, j_end) (sliver s starts at bpack + s*kc*NR), C block.
template <class T>
void macro_kernel(const KernelInfo<T>& K, index_t mb, index_t nb, index_t kc, const T* a, index_t rsa,
                  index_t csa, const T* apack, const T* bpack, index_t s_begin, index_t s_end, T* c,
                  index_t rsc, index_t csc, T beta, T* edge_a) {
  const int MR = K.mr, NR = K.nr;
  alignas(64) T tile[16 * 64];
  for (index_t s = s_begin; s < s_end; ++s) {
    const index_t j0 = s * NR;
    const index_t nr = std::min<index_t>(NR, nb - j0);
    const T* bs = bpack + s * kc * NR;
    for (index_t i0 = 0; i0 < mb; i0 += MR) {
      const index_t mr = std::min<index_t>(MR, mb - i0);
      const T* as;
      index_t ra = 1, ca = MR;
      MicroKernel<T> f = K.packed;
      if (apack) {
        as = apack + i0 * kc;
      } else if (mr == MR) {
        as = a + i0 * rsa;
        ra = rsa;
        ca = csa;
        f = K.unpacked;
      } else {
        // The unpacked path must not read rows beyond m: pack the last partial sliver.
        if (s == s_begin) pack_a_sliver(MR, mr, kc, a + i0 * rsa, rsa, csa, edge_a);
        as = edge_a;
      }
      T* cp = c + i0 * rsc + j0 * csc;
      if (mr == MR && nr == NR && csc == 1) {
        f(kc, as, ra, ca, bs, cp, rsc, beta);
      } else {
        f(kc, as, ra, ca, bs, tile, NR, T(0));
        store_tile(tile, NR, mr, nr, cp, rsc, csc, beta);
      }
    }
  }
}

// Waiting inside the driver spins (with the CPU's pause hint) instead of sleeping: the library runs
// OpenMP with OMP_WAIT_POLICY=PASSIVE, where every barrier is a futex sleep and wake-up, and on a
// virtualised core a thread that idles even briefly comes back slower. Waits here last a fraction of
// one depth block; after a few thousand polls the thread yields in case the machine is oversubscribed.
inline void cpu_relax() {
#ifdef KF_GEMM_X86
  __builtin_ia32_pause();
#endif
}

struct alignas(64) PaddedCounter {
  std::atomic<index_t> v{0};
};

inline void spin_until_at_least(const std::atomic<index_t>& c, index_t target) {
  int polls = 0;
  while (c.load(std::memory_order_acquire) < target) {
    if (++polls < 4096) {
      cpu_relax();
    } else {
      std::this_thread::yield();
    }
  }
}

struct GemmPlan {
  int threads = 1;
  bool pack_a = true;
};

// Whether packing A pays: A~ is reused across the n/NR slivers of a block; when there are few
// (skinny B) or the depth is short, the copy costs more than the strided broadcasts it saves.
template <class T>
bool auto_pack_a(index_t m, index_t n, index_t k, index_t rsa, index_t csa, int NR) {
  (void)m;
  (void)k;
  const bool a_rowish = (csa == 1);
  const index_t slivers = ceil_div(n, NR);
  if (a_rowish) return slivers > 24;
  (void)rsa;
  return slivers > 4;
}

// C(m x n) = alpha * A(m x k) * B(k x n) + beta * C. Views may have any strides; C must not
// overlap A or B. nthreads <= 0: the library setting (kf::get_num_threads), scaled to the work.
template <class T>
void gemm(index_t m, index_t n, index_t k, T alpha, const T* A, index_t rsa, index_t csa, const T* B,
          index_t rsb, index_t csb, T beta, T* C, index_t rsc, index_t csc, const Tiles& user = Tiles(),
          int nthreads = 0, Isa isa = active_isa()) {
  KF_REQUIRE(m >= 0 && n >= 0 && k >= 0, "gemm dimensions must be non-negative, got m=", m, ", n=", n, ", k=", k);
  if (m == 0 || n == 0) return;
  // A column-major C is computed as C^T = B^T A^T, so that the micro-kernel stores rows.
  if (csc != 1 && (rsc == 1 || std::abs(rsc) < std::abs(csc))) {
    // new A = B^T: (j, p) -> B[p*rsb + j*csb]; new B = A^T: (p, i) -> A[i*rsa + p*csa].
    const index_t nrsa = csb, ncsa = rsb, nrsb = csa, ncsb = rsa;
    std::swap(m, n);
    std::swap(A, B);
    rsa = nrsa;
    csa = ncsa;
    rsb = nrsb;
    csb = ncsb;
    std::swap(rsc, csc);
  }
  if (alpha == T(0) || k == 0) {
    for (index_t i = 0; i < m; ++i)
      for (index_t j = 0; j < n; ++j) {
        T& cij = C[i * rsc + j * csc];
        cij = beta == T(0) ? T(0) : beta * cij;
      }
    return;
  }
  const KernelInfo<T> K = choose_kernel<T>(isa, user.mr, user.nr);
  const Tiles t = resolve_tiles(K, user, k);
  const int MR = K.mr, NR = K.nr;
  const bool pack_a = t.pack_a < 0 ? auto_pack_a<T>(m, n, k, rsa, csa, NR) : t.pack_a != 0;
  const bool simd = K.isa != Isa::generic;

  const double flops = 2.0 * double(m) * double(n) * double(k);
  int nt = nthreads > 0 ? nthreads : get_num_threads();
  {
    // At least ~2 MFLOP per thread: below that a team costs more than it saves.
    const double per = 2.0e6;
    const int useful = flops / per >= nt ? nt : std::max(1, static_cast<int>(flops / per));
    nt = std::max(1, std::min(nt, useful));
  }
  if (omp_in_parallel_region()) nt = 1;

  const index_t kc_max = std::min<index_t>(t.kc, k);
  const index_t n_pc = ceil_div(k, t.kc);

  // Work split (never over k, so results do not depend on the thread count). Rows: thread r owns
  // micro-rows [r*mt/nt, (r+1)*mt/nt) and packs its own A~ blocks for its private L2; B~ is shared
  // through L3. With fewer than two micro-rows per thread, columns are split instead: each thread
  // packs and reads only its own B~ slivers (and all of the small A).
  const index_t mt = ceil_div(m, MR);
  // B~ ring: with several threads, D = 3 buffers let a thread pack depth block b+2 as soon as every
  // thread has finished block b-1, so a thread may run up to a block ahead of the other and the
  // only waits are for data it needs (no barrier per block). NC is then evened out and capped so
  // that the ring stays within half of a 32 MiB L3.
  const int D = nt > 1 ? 3 : 1;
  index_t nc = t.nc;
  if (D > 1 && user.nc <= 0) {
    const index_t cap =
        std::max<index_t>(NR, (index_t(16) << 20) / (index_t(D) * kc_max * index_t(sizeof(T))) / NR * NR);
    const index_t n_jc = ceil_div(n, std::min(nc, cap));
    nc = round_up(ceil_div(n, n_jc), NR);
  }
  const index_t nc_max = std::min<index_t>(nc, round_up(n, NR));
  const index_t n_jc = ceil_div(n, nc);
  const index_t n_blocks = n_jc * n_pc;

  const std::size_t b_stride = static_cast<std::size_t>(round_up(nc_max * kc_max, 16));
  T* bbuf = scratch<T, 0>(b_stride * D);
  // Per-thread A~ blocks and edge slivers, carved from the calling thread's scratch so that no
  // allocation happens inside the parallel region.
  const std::size_t a_stride =
      static_cast<std::size_t>(round_up((pack_a ? t.mc : MR) * kc_max + MR * kc_max, 16));
  T* abuf = scratch<T, 1>(a_stride * nt);

  // packed[d]: thread shares of B~ packed into buffer d so far; done[d]: thread-blocks computed
  // from it. Block b lives in buffer b % D, as its (b / D)-th use.
  PaddedCounter packed[3], done[3], finished;

#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    // The team actually granted (fewer threads than asked under OMP_THREAD_LIMIT, one without OpenMP):
    // the split and every wait below count these threads only.
    const int nth = std::min(nt, omp_team_size());
    const int tid = omp_thread_id();
    const bool split_cols = nth > 1 && mt < 2 * nth;
    T* my_a = abuf + a_stride * tid;
    T* my_edge = my_a + (pack_a ? t.mc * kc_max : 0);
    // My rows (all rows when columns are split), in blocks of at most MC evened out so that no
    // short block is left at the end (1026 rows: 7 blocks of 150, not 6 of 168 and one of 18).
    const index_t r0 = split_cols ? 0 : std::min(m, mt * tid / nth * MR);
    const index_t r1 = split_cols ? m : std::min(m, mt * (tid + 1) / nth * MR);
    const index_t n_ib = std::max<index_t>(1, ceil_div(r1 - r0, t.mc));
    const index_t mcb = std::max<index_t>(MR, round_up(ceil_div(r1 - r0, n_ib), MR));

    // Slivers of a block that thread `who` packs (and computes, when columns are split).
    auto share = [&](index_t n_sl, int who, index_t& s0, index_t& s1) {
      s0 = n_sl * who / nth;
      s1 = n_sl * (who + 1) / nth;
    };
    auto pack_b = [&](index_t b) {
      const index_t jc = (b / n_pc) * nc, nb = std::min<index_t>(nc, n - jc);
      const index_t pc = (b % n_pc) * t.kc, kc = std::min<index_t>(t.kc, k - pc);
      const int d = static_cast<int>(b % D);
      // Buffer d is free once every thread has finished its previous use (block b - D). Even with
      // split columns, where each thread reads only its own slivers: a sliver's offset depends on
      // the block's depth, so a full-depth block overlaps the other thread's slivers of a short one.
      spin_until_at_least(done[d].v, (b / D) * nth);
      T* bp = bbuf + b_stride * d;
      index_t s0, s1;
      share(ceil_div(nb, NR), tid, s0, s1);
      pack_b_panel(NR, nb, s0, s1, kc, B + pc * rsb + jc * csb, rsb, csb, alpha, bp);
      packed[d].v.fetch_add(1, std::memory_order_release);
    };

    for (index_t b = 0; b < std::min<index_t>(D - 1, n_blocks); ++b) pack_b(b);
    for (index_t b = 0; b < n_blocks; ++b) {
      if (D == 1) pack_b(b);
      const index_t jc = (b / n_pc) * nc, nb = std::min<index_t>(nc, n - jc);
      const index_t pc = (b % n_pc) * t.kc, kc = std::min<index_t>(t.kc, k - pc);
      const T beta_pc = pc == 0 ? beta : T(1);
      const int d = static_cast<int>(b % D);
      const index_t n_sl = ceil_div(nb, NR);
      index_t s0 = 0, s1 = n_sl;
      if (split_cols) {
        share(n_sl, tid, s0, s1);
      } else {
        spin_until_at_least(packed[d].v, (b / D + 1) * nth);
      }
      const T* bp = bbuf + b_stride * d;
      for (index_t i0 = r0; s0 < s1 && i0 < r1; i0 += mcb) {
        const index_t mb = std::min<index_t>(mcb, r1 - i0);
        const T* ablk = A + i0 * rsa + pc * csa;
        const T* apack = nullptr;
        if (pack_a) {
          for (index_t i = 0; i < mb; i += MR)
            pack_a_sliver(MR, std::min<index_t>(MR, mb - i), kc, ablk + i * rsa, rsa, csa, my_a + i * kc, simd);
          apack = my_a;
        }
        macro_kernel(K, mb, nb, kc, ablk, rsa, csa, apack, bp, s0, s1, C + i0 * rsc + jc * csc, rsc, csc, beta_pc,
                     my_edge);
      }
      done[d].v.fetch_add(1, std::memory_order_release);
      if (D > 1 && b + D - 1 < n_blocks) pack_b(b + D - 1);
    }
    // The calling thread reaches the closing barrier last, spinning until then. Under PASSIVE, a
    // caller that sleeps there is woken by the last worker and Linux's wake-affine placement moves
    // it onto that worker's core; the next call then wakes the worker beside it and both share one
    // core. Seen on the 2-vCPU VM (n=2048 f32, 2 threads, from Python): streaks of calls at ~95
    // GFLOP/s with ps showing both threads on one CPU and the worker at 50%; with this spin every
    // call ran on both CPUs.
    finished.v.fetch_add(1, std::memory_order_release);
    if (tid == 0) spin_until_at_least(finished.v, nth);
  }
}

// View-based convenience overload.
template <class T>
void gemm(T alpha, const MatrixView<const T>& A, const MatrixView<const T>& B, T beta, const MatrixView<T>& C,
          const Tiles& tiles = Tiles(), int nthreads = 0, Isa isa = active_isa()) {
  KF_REQUIRE(A.cols == B.rows, "A and B have incompatible shapes (", A.rows, ", ", A.cols, ") and (", B.rows, ", ",
             B.cols, ")");
  KF_REQUIRE(C.rows == A.rows && C.cols == B.cols, "C must have shape (", A.rows, ", ", B.cols, "), got (", C.rows,
             ", ", C.cols, ")");
  gemm<T>(A.rows, B.cols, A.cols, alpha, A.data, A.row_stride, A.col_stride, B.data, B.row_stride, B.col_stride,
          beta, C.data, C.row_stride, C.col_stride, tiles, nthreads, isa);
}

}  // namespace gemm
}  // namespace kf
