// General matrix product C = alpha * A * B + beta * C on strided views (any row/column strides,
// negative ones included), float and double, after the Goto/BLIS five-loop algorithm:
//
//   jc (NC columns; B~ panel shared by all threads, L3)
//     pc (KC depth; pack B~ cooperatively, alpha folded in)
//       ic (MC rows; OpenMP here, each thread packs its own A~ block for its L2)
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
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <stdexcept>

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
    void* p = std::aligned_alloc(64, need);
    if (!p) throw std::bad_alloc();
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

// Default blocking for a kernel: KC*NR*s <= L1/2, MC*KC*s <= L2/2 (Zen 2/3/4 L2 is 512 KiB-1 MiB),
// NC*KC*s within the shared L3. Figures measured with kf.gemm.tile_sweep on an AVX2 Zen machine.
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
    // A/B-timed against OpenBLAS in one process on Zen 3 (32K L1d, 512K L2), n=2048, 1 thread:
    // f32 168x384 0.93x OpenBLAS vs 120x256 0.91x; f64 72x256 0.99x vs 96x256 0.97x.
    kc = f32 ? 384 : 256;
    mc = f32 ? 168 : 72;
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
// is small and C traffic dominates; there the smaller row blocks of the previous defaults measured
// faster (2000x64 @ 64x2000: f32 6.4 ms at MC=120 vs 8.6 ms at 168; f64 12.0 vs 14.4 ms at 96 vs 72).
template <class T>
Tiles resolve_tiles(const KernelInfo<T>& k, const Tiles& user, index_t depth) {
  Tiles t = resolve_tiles(k, user);
  if (user.mc <= 0 && k.isa == Isa::avx2 && depth < t.kc) t.mc = round_up(sizeof(T) == 4 ? 120 : 96, k.mr);
  return t;
}

// ------------------------------------------------------------------ packing
// A~ sliver: rows [0, mr) of a (mr <= MR), depth kc: dst[p*MR + i] = a(i, p), zero rows beyond mr.
template <class T>
void pack_a_sliver(int MR, index_t mr, index_t kc, const T* a, index_t rsa, index_t csa, T* dst) {
  if (csa == 1 && mr == MR) {
    for (index_t i = 0; i < MR; ++i) {
      const T* src = a + i * rsa;
      for (index_t p = 0; p < kc; ++p) dst[p * MR + i] = src[p];
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
  const index_t nc_max = std::min<index_t>(t.nc, round_up(n, NR));
  // Row blocks: MC, or smaller so that every thread gets one (multiples of MR keep the
  // micro-tile grid, hence the results, independent of the thread count).
  // The number of row blocks is rounded up to a multiple of the thread count and the blocks evened
  // out, so that no thread idles through a last round (1024 rows in blocks of 120 would split 5:4).
  index_t mc = t.mc;
  if (nt > 1) {
    const index_t blocks = round_up(ceil_div(m, mc), nt);
    mc = std::max<index_t>(MR, round_up(ceil_div(m, blocks), MR));
  }
  const index_t n_ic = ceil_div(m, mc);

  T* bbuf = scratch<T, 0>(static_cast<std::size_t>(round_up(nc_max, NR) * kc_max));
  // Per-thread A~ blocks and edge slivers, carved from the calling thread's scratch so that no
  // allocation happens inside the parallel region.
  const std::size_t a_stride = static_cast<std::size_t>(round_up((pack_a ? mc : MR) * kc_max + MR * kc_max, 16));
  T* abuf = scratch<T, 1>(a_stride * nt);

#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    const int tid = omp_thread_id();
    T* my_a = abuf + a_stride * tid;
    T* my_edge = my_a + (pack_a ? mc * kc_max : 0);
    for (index_t jc = 0; jc < n; jc += t.nc) {
      const index_t nb = std::min<index_t>(t.nc, n - jc);
      const index_t n_sl = ceil_div(nb, NR);
      // Split columns too when there are fewer row blocks than threads.
      const index_t n_jch = std::min<index_t>(n_sl, std::max<index_t>(1, ceil_div(nt, n_ic)));
      for (index_t pc = 0; pc < k; pc += t.kc) {
        const index_t kc = std::min<index_t>(t.kc, k - pc);
        const T beta_pc = pc == 0 ? beta : T(1);
#pragma omp for schedule(static)
        for (index_t s = 0; s < n_sl; ++s) {
          const index_t j0 = s * NR;
          pack_b_sliver(NR, std::min<index_t>(NR, nb - j0), kc, B + pc * rsb + (jc + j0) * csb, rsb, csb, alpha,
                        bbuf + s * kc * NR);
        }
#pragma omp for schedule(static)
        for (index_t task = 0; task < n_ic * n_jch; ++task) {
          const index_t ib = task / n_jch, jch = task % n_jch;
          const index_t i0 = ib * mc;
          const index_t mb = std::min<index_t>(mc, m - i0);
          const index_t s_begin = n_sl * jch / n_jch, s_end = n_sl * (jch + 1) / n_jch;
          const T* ablk = A + i0 * rsa + pc * csa;
          const T* apack = nullptr;
          if (pack_a) {
            for (index_t i = 0; i < mb; i += MR)
              pack_a_sliver(MR, std::min<index_t>(MR, mb - i), kc, ablk + i * rsa, rsa, csa, my_a + i * kc);
            apack = my_a;
          }
          macro_kernel(K, mb, nb, kc, ablk, rsa, csa, apack, bbuf, s_begin, s_end, C + i0 * rsc + jc * csc, rsc,
                       csc, beta_pc, my_edge);
        }
      }
    }
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
