// Monarch matrix product y = P2 R2 P1 R1 x for a batch of row vectors x (Dao et al., "Monarch:
// Expressive Structured Matrices for Efficient and Accurate Training", ICML 2022, eq. (1):
// M = P L P^T R, with block-diagonal L, R), in the two-factor form of fly/m2
// `blockdiag_butterfly_multiply`:
//   w1: (k, q, p), n = k*p;   w2: (l, s, r), l*r = k*q;   y has l*s columns.
//   u[b, kk*q + qq] = sum_pp w1[kk, qq, pp] x[b, kk*p + pp]          (k GEMMs, B x p by p x q)
//   y[b, ss*l + ll] = sum_rr w2[ll, ss, rr] u[b, rr*l + ll]          (l GEMMs, B x r by r x s)
// The permutations are fused: the second GEMM reads u[:, ll::l] through its strides (no copy), and
// its store writes columns ss*l + ll directly. Rows of x are processed in chunks sized so that the
// chunk of u stays in L2 between the two GEMMs. Parallel over row chunks (deterministic).
#pragma once

#include <algorithm>
#include <vector>

#include "kernforge/common/errors.hpp"
#include "kernforge/common/threads.hpp"
#include "kernforge/gemm/gemm.hpp"

namespace kf {
namespace gemm {

template <class T>
struct Blocks3 {  // a (nblocks, rows, cols) strided stack
  const T* data;
  index_t nb, rows, cols;
  index_t s0, s1, s2;
};

template <class T>
void monarch(index_t batch, const T* x, index_t rsx, index_t csx, const Blocks3<T>& w1, const Blocks3<T>& w2, T* y,
             index_t rsy, index_t csy, Isa isa = active_isa()) {
  const index_t k = w1.nb, q = w1.rows, p = w1.cols;
  const index_t l = w2.nb, s = w2.rows, r = w2.cols;
  KF_REQUIRE(l * r == k * q, "blocks2 shape (l, s, r) must satisfy l*r == k*q, got l*r = ", l * r, ", k*q = ", k * q);
  if (batch == 0 || l * s == 0) return;
  const KernelInfo<T> K = choose_kernel<T>(isa, 0, 0);
  const int MR = K.mr, NR = K.nr;
  const index_t kq = k * q;
  // Pack every block once: B~ for GEMM 1 is w1[kk]^T (p x q), for GEMM 2 w2[ll]^T (r x s).
  const index_t q_pad = round_up(q, NR), s_pad = round_up(s, NR);
  const index_t w1_sz = q_pad * p, w2_sz = s_pad * r;
  T* w1p = scratch<T, 2>(static_cast<std::size_t>(w1_sz * k + w2_sz * l + 32));
  T* w2p = w1p + round_up(w1_sz * k, 16);
  const int nt0 = omp_in_parallel_region() ? 1 : get_num_threads();
#pragma omp parallel for schedule(static) num_threads(nt0) if (nt0 > 1)
  for (index_t blk = 0; blk < k + l; ++blk) {
    if (blk < k) {
      const T* w = w1.data + blk * w1.s0;
      for (index_t j = 0; j < q; j += NR)
        pack_b_sliver(NR, std::min<index_t>(NR, q - j), p, w + j * w1.s1, w1.s2, w1.s1, T(1),
                      w1p + blk * w1_sz + j * p);
    } else {
      const index_t ll = blk - k;
      const T* w = w2.data + ll * w2.s0;
      for (index_t j = 0; j < s; j += NR)
        pack_b_sliver(NR, std::min<index_t>(NR, s - j), r, w + j * w2.s1, w2.s2, w2.s1, T(1),
                      w2p + ll * w2_sz + j * r);
    }
  }
  // Row chunk: u chunk (bc x kq) within about half the L2.
  index_t bc = std::max<index_t>(1, (256 * 1024) / static_cast<index_t>(sizeof(T) * kq) / MR) * MR;
  bc = std::min<index_t>(bc, round_up(batch, MR));
  const index_t n_chunks = ceil_div(batch, bc);
  const double flops = 2.0 * double(batch) * double(k * q * p + l * s * r);
  const int nt = std::max(1, std::min<int>(nt0, static_cast<int>(std::min<double>(n_chunks, flops / 2e6))));
  const std::size_t per_thread = static_cast<std::size_t>(round_up(bc * kq + MR * std::max(p, r), 16));
  T* work = scratch<T, 3>(per_thread * nt);
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    T* u = work + per_thread * omp_thread_id();
    T* edge = u + bc * kq;
#pragma omp for schedule(static)
    for (index_t ch = 0; ch < n_chunks; ++ch) {
      const index_t b0 = ch * bc, mb = std::min<index_t>(bc, batch - b0);
      const T* xb = x + b0 * rsx;
      for (index_t kk = 0; kk < k; ++kk)
        macro_kernel(K, mb, q, p, xb + kk * p * csx, rsx, csx, static_cast<const T*>(nullptr), w1p + kk * w1_sz,
                     index_t(0), ceil_div(q, NR), u + kk * q, kq, index_t(1), T(0), edge);
      T* yb = y + b0 * rsy;
      for (index_t ll = 0; ll < l; ++ll)
        macro_kernel(K, mb, s, r, u + ll, kq, l, static_cast<const T*>(nullptr), w2p + ll * w2_sz, index_t(0),
                     ceil_div(s, NR), yb + ll * csy, rsy, l * csy, T(0), edge);
    }
  }
}

}  // namespace gemm
}  // namespace kf
