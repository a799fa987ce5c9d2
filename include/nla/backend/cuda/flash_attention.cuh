#pragma once
// Tiled causal attention kernels for a GPU, in the flash-attention style:
// keys and values pass through shared memory a tile at a time, the softmax is
// computed online, and no [Tq, Tk] matrix ever reaches device memory. The
// forward keeps one number per query row, the log-sum-exp
//   lse_t = log sum_{s visible} exp(scale q_t . k_s),
// from which the backward recomputes P_ts = exp(scale q_t . k_s - lse_t):
//   delta_t = dO_t . O_t                  (= rowsum(P * dP), one dot per row)
//   dS_ts   = P_ts (dO_t . v_s - delta_t)
//   dQ_t    = scale sum_s dS_ts k_s       (kernel 1: a query row per lane group)
//   dK_s    = scale sum_t dS_ts q_t,  dV_s = sum_t P_ts dO_t
//                                         (kernel 2: a key row per lane group,
//                                          summing the group's query heads)
// The forward runs one thread per query row; the backward kernels split each
// row over lanes<D>() threads (below). Every sum runs in a fixed order in
// accum_t<T>, so results are deterministic (no atomics). The head size is a
// template parameter so each thread's rows (q, dO, the accumulators) live in
// registers. Kernels exist for fp32 accumulation (float and bf16 models) and
// head sizes 16, 32 and 64 (GPT-2's is 64): larger heads would spill those
// rows to local memory. Other cases, and Thrust's host systems, take the
// portable loops of attention.cuh.
//
// Shapes (the contract of backend/cpu/attention.hpp): q [B, Tq, H, D],
// k, v [B, Tk, Hkv, D] through HeadLayout strides, out and dout
// [B, Tq, H * D] dense, lse and delta [B, H, Tq]; query t sees keys
// s <= t + Tk - Tq.

#include <type_traits>

#include "nla/backend/cuda/cuda.cuh"

#if NLA_CUDA_DEVICE_SYSTEM

#include "nla/backend/cuda/math.cuh"
#include "nla/core/head_layout.hpp"
#include "nla/core/scalar.hpp"

namespace nla {
namespace gpu {
namespace flash {

// Block shapes. Forward and dQ: kQueryRows query rows per block, kKeyTile
// keys per shared-memory tile. dK/dV: kKeyRows key rows per block, kQueryTile
// queries per tile.
constexpr int kQueryRows = 64;
constexpr int kKeyTile = 32;
constexpr int kKeyRows = 32;
constexpr int kQueryTile = 32;
constexpr int kMaxHeadDim = 64;
static_assert(2 * (kKeyTile + kQueryTile + 1) * kMaxHeadDim * sizeof(float) <= 48 * 1024,
              "the tiles must fit in static shared memory");

// Keys and values s0 .. s0 + kKeyTile - 1 (zero past tk) into shared
// memory, converted to the accumulation type; `threads` share the copy, and
// consecutive threads read consecutive channels, so the loads coalesce.
template <class T, class A, int D>
__device__ void load_key_tile(A (&ks)[kKeyTile][D], A (&vs)[kKeyTile][D], const T* kb, const T* vb,
                              index_t k_stride, index_t v_stride, index_t s0, index_t tk,
                              int threads) {
  for (int e = threadIdx.x; e < kKeyTile * D; e += threads) {
    const int j = e / D, i = e % D;
    const bool in = s0 + j < tk;
    ks[j][i] = in ? A(kb[(s0 + j) * k_stride + i]) : A(0);
    vs[j][i] = in ? A(vb[(s0 + j) * v_stride + i]) : A(0);
  }
}

template <class T, int D>
__global__ void __launch_bounds__(kQueryRows)
    forward_kernel(T* out, accum_t<T>* lse, HeadLayout<const T> q, HeadLayout<const T> k,
                   HeadLayout<const T> v, index_t tq, index_t tk, index_t heads, index_t group,
                   accum_t<T> scale) {
  using A = accum_t<T>;
  __shared__ A ks[kKeyTile][D], vs[kKeyTile][D];
  const index_t bh = blockIdx.x, b = bh / heads, h = bh % heads, g = h / group;
  const index_t past = tk - tq, t0 = index_t(blockIdx.y) * kQueryRows, t = t0 + threadIdx.x;
  const bool active = t < tq;
  const index_t visible = active ? math::min(tk, t + past + 1) : 0;
  const index_t block_visible = math::min(tk, math::min(tq, t0 + kQueryRows) + past);
  const T* kb = k.data + b * k.batch_stride + g * D;
  const T* vb = v.data + b * v.batch_stride + g * D;

  A qr[D], o[D];
  const T* qp = q.data + b * q.batch_stride + (active ? t : 0) * q.row_stride + h * D;
#pragma unroll
  for (int i = 0; i < D; ++i) {
    qr[i] = active ? A(qp[i]) * scale : A(0);
    o[i] = 0;
  }
  A m = math::minus_infinity<A>(), l = 0;
  for (index_t s0 = 0; s0 < block_visible; s0 += kKeyTile) {
    __syncthreads();  // the previous tile has been read by every thread
    load_key_tile(ks, vs, kb, vb, k.row_stride, v.row_stride, s0, tk, kQueryRows);
    __syncthreads();
    if (s0 >= visible) continue;
    // Online softmax: rescale what was summed so far to the new running max.
    A score[kKeyTile], tile_max = math::minus_infinity<A>();
#pragma unroll
    for (int j = 0; j < kKeyTile; ++j) {
      A dot = 0;
#pragma unroll
      for (int i = 0; i < D; ++i) dot += qr[i] * ks[j][i];
      score[j] = s0 + j < visible ? dot : math::minus_infinity<A>();
      tile_max = math::max(tile_max, score[j]);
    }
    const A m_new = math::max(m, tile_max), correction = math::exp(m - m_new);
    l *= correction;
#pragma unroll
    for (int i = 0; i < D; ++i) o[i] *= correction;
#pragma unroll
    for (int j = 0; j < kKeyTile; ++j) {
      const A p = math::exp(score[j] - m_new);
      l += p;
#pragma unroll
      for (int i = 0; i < D; ++i) o[i] += p * vs[j][i];
    }
    m = m_new;
  }
  if (!active) return;
  T* orow = out + (b * tq + t) * heads * D + h * D;
  const A inv = A(1) / l;
#pragma unroll
  for (int i = 0; i < D; ++i) orow[i] = T(o[i] * inv);
  lse[bh * tq + t] = m + math::log(l);
}

// The backward kernels split each row over Lanes<D> adjacent threads, each
// holding every Lanes-th channel (interleaved, so the lanes of a pair read
// neighbouring shared-memory banks): two rows of D/2 registers per thread at
// D = 64 instead of three or four rows of 64, which would spill. A dot
// product over the row is each lane's partial sum plus a shuffle.
template <int D>
constexpr int lanes() {
  return D >= 64 ? D / 32 : 1;
}

template <int Lanes, class A>
__device__ A lanes_sum(A x) {
#pragma unroll
  for (int offset = Lanes / 2; offset > 0; offset /= 2)
    x += __shfl_xor_sync(0xffffffffu, x, offset);
  return x;
}

// The two dot products both backward kernels take per (query, key) pair,
// q . k and dO . v: x . x_row and y . y_row, where this lane holds channels
// part, part + L, ... of x and y in registers and x_row, y_row are whole rows
// in shared memory. Every lane of the row's group gets the totals.
template <int L, int C, class A>
__device__ void lane_dots(const A (&x)[C], const A* x_row, const A (&y)[C], const A* y_row,
                          int part, A& x_dot, A& y_dot) {
  x_dot = 0;
  y_dot = 0;
#pragma unroll
  for (int c = 0; c < C; ++c) {
    x_dot += x[c] * x_row[c * L + part];
    y_dot += y[c] * y_row[c * L + part];
  }
  x_dot = lanes_sum<L>(x_dot);
  y_dot = lanes_sum<L>(y_dot);
}

// One query row per Lanes threads. Every thread runs every key of every tile
// its block reaches (keys a row cannot see get p = 0) so that the shuffles
// always find their partners.
template <class T, int D>
__global__ void __launch_bounds__(kQueryRows* lanes<D>())
    backward_dq_kernel(HeadLayout<T> dq, accum_t<T>* delta, const T* dout, const T* out,
                       const accum_t<T>* lse, HeadLayout<const T> q, HeadLayout<const T> k,
                       HeadLayout<const T> v, index_t tq, index_t tk, index_t heads, index_t group,
                       accum_t<T> scale) {
  using A = accum_t<T>;
  constexpr int L = lanes<D>(), C = D / L;
  __shared__ A ks[kKeyTile][D], vs[kKeyTile][D];
  const index_t bh = blockIdx.x, b = bh / heads, h = bh % heads, g = h / group;
  const int part = threadIdx.x % L;
  const index_t past = tk - tq, t0 = index_t(blockIdx.y) * kQueryRows, t = t0 + threadIdx.x / L;
  const bool active = t < tq;
  const index_t visible = active ? math::min(tk, t + past + 1) : 0;
  const index_t block_visible = math::min(tk, math::min(tq, t0 + kQueryRows) + past);
  const T* kb = k.data + b * k.batch_stride + g * D;
  const T* vb = v.data + b * v.batch_stride + g * D;

  A qr[C], dor[C], acc[C];
  const index_t row = active ? t : 0;
  const T* qp = q.data + b * q.batch_stride + row * q.row_stride + h * D;
  const T* dop = dout + (b * tq + row) * heads * D + h * D;
  const T* op = out + (b * tq + row) * heads * D + h * D;
  A row_delta = 0;
#pragma unroll
  for (int c = 0; c < C; ++c) {
    const int i = c * L + part;
    qr[c] = A(qp[i]) * scale;
    dor[c] = A(dop[i]);
    row_delta += dor[c] * A(op[i]);
    acc[c] = 0;
  }
  row_delta = lanes_sum<L>(row_delta);
  const A row_lse = active ? lse[bh * tq + t] : A(0);
  if (active && part == 0) delta[bh * tq + t] = row_delta;
  for (index_t s0 = 0; s0 < block_visible; s0 += kKeyTile) {
    __syncthreads();
    load_key_tile(ks, vs, kb, vb, k.row_stride, v.row_stride, s0, tk, kQueryRows * L);
    __syncthreads();
#pragma unroll 2
    for (int j = 0; j < kKeyTile; ++j) {
      A qk, dp;
      lane_dots<L>(qr, ks[j], dor, vs[j], part, qk, dp);
      const A p = s0 + j < visible ? math::exp(qk - row_lse) : A(0);
      const A ds = p * (dp - row_delta);
#pragma unroll
      for (int c = 0; c < C; ++c) acc[c] += ds * ks[j][c * L + part];
    }
  }
  if (!active) return;
  T* dqp = dq.data + b * dq.batch_stride + t * dq.row_stride + h * D;
#pragma unroll
  for (int c = 0; c < C; ++c) dqp[c * L + part] = T(scale * acc[c]);
}

// One key row per Lanes threads, its K and V slices in registers; queries
// pass through shared memory kQueryTile at a time, over every query head of
// the key's group.
template <class T, int D>
__global__ void __launch_bounds__(kKeyRows* lanes<D>())
    backward_dkv_kernel(HeadLayout<T> dk, HeadLayout<T> dv, const T* dout, const accum_t<T>* lse,
                        const accum_t<T>* delta, HeadLayout<const T> q, HeadLayout<const T> k,
                        HeadLayout<const T> v, index_t tq, index_t tk, index_t heads,
                        index_t kv_heads, accum_t<T> scale) {
  using A = accum_t<T>;
  constexpr int L = lanes<D>(), C = D / L;
  __shared__ A qs[kQueryTile][D], dos[kQueryTile][D], ls[kQueryTile], dl[kQueryTile];
  const index_t group = heads / kv_heads;
  const index_t bg = blockIdx.x, b = bg / kv_heads, g = bg % kv_heads;
  const int part = threadIdx.x % L;
  const index_t past = tk - tq, s0 = index_t(blockIdx.y) * kKeyRows, s = s0 + threadIdx.x / L;
  const bool active = s < tk;
  A kr[C], vr[C], dka[C], dva[C];
  const T* kp = k.data + b * k.batch_stride + (active ? s : 0) * k.row_stride + g * D;
  const T* vp = v.data + b * v.batch_stride + (active ? s : 0) * v.row_stride + g * D;
#pragma unroll
  for (int c = 0; c < C; ++c) {
    kr[c] = A(kp[c * L + part]);
    vr[c] = A(vp[c * L + part]);
    dka[c] = dva[c] = 0;
  }
  // Query t sees key s when s <= t + past: the first query for this block.
  const index_t t_first = math::max(index_t(0), s0 - past);
  for (index_t h = g * group; h < (g + 1) * group; ++h) {
    const index_t bh = b * heads + h;
    for (index_t t0 = t_first; t0 < tq; t0 += kQueryTile) {
      __syncthreads();
      for (int e = threadIdx.x; e < kQueryTile * D; e += kKeyRows * L) {
        const int j = e / D, i = e % D;
        const bool in = t0 + j < tq;
        qs[j][i] =
            in ? A(q.data[b * q.batch_stride + (t0 + j) * q.row_stride + h * D + i]) * scale : A(0);
        dos[j][i] = in ? A(dout[(b * tq + t0 + j) * heads * D + h * D + i]) : A(0);
      }
      for (int j = threadIdx.x; j < kQueryTile; j += kKeyRows * L) {
        const bool in = t0 + j < tq;
        ls[j] = in ? lse[bh * tq + t0 + j] : A(0);
        dl[j] = in ? delta[bh * tq + t0 + j] : A(0);
      }
      __syncthreads();
#pragma unroll 2
      for (int j = 0; j < kQueryTile; ++j) {
        A qk, dp;
        lane_dots<L>(kr, qs[j], vr, dos[j], part, qk, dp);
        const bool seen = active && t0 + j < tq && s <= t0 + j + past;
        const A p = seen ? math::exp(qk - ls[j]) : A(0);
        const A ds = p * (dp - dl[j]);
#pragma unroll
        for (int c = 0; c < C; ++c) {
          dva[c] += p * dos[j][c * L + part];
          dka[c] += ds * qs[j][c * L + part];  // qs holds scale q: this is scale dS^T Q
        }
      }
    }
  }
  if (!active) return;
  T* dkp = dk.data + b * dk.batch_stride + s * dk.row_stride + g * D;
  T* dvp = dv.data + b * dv.batch_stride + s * dv.row_stride + g * D;
#pragma unroll
  for (int c = 0; c < C; ++c) {
    dkp[c * L + part] = T(dka[c]);
    dvp[c * L + part] = T(dva[c]);
  }
}

inline unsigned blocks(index_t n, int per_block) {
  return unsigned((n + per_block - 1) / per_block);
}

// Calls f(std::integral_constant<int, D>) where a kernel exists for T and
// head_dim; false otherwise (the caller then takes the portable loops).
template <class T, class F>
bool with_head_dim(index_t head_dim, F&& f) {
  if constexpr (!std::is_same<accum_t<T>, float>::value) {
    return false;
  } else {
    switch (head_dim) {
      case 16:
        f(std::integral_constant<int, 16>{});
        return true;
      case 32:
        f(std::integral_constant<int, 32>{});
        return true;
      case 64:
        f(std::integral_constant<int, 64>{});
        return true;
      default:
        return false;
    }
  }
}

template <class T>
bool forward(Cuda& backend, T* out, accum_t<T>* lse, HeadLayout<const T> q, HeadLayout<const T> k,
             HeadLayout<const T> v, index_t batch, index_t tq, index_t tk, index_t heads,
             index_t kv_heads, index_t head_dim, accum_t<T> scale) {
  return with_head_dim<T>(head_dim, [&](auto d) {
    const dim3 grid(unsigned(batch * heads), blocks(tq, kQueryRows));
    forward_kernel<T, decltype(d)::value><<<grid, kQueryRows, 0, backend.stream()>>>(
        out, lse, q, k, v, tq, tk, heads, heads / kv_heads, scale);
    Cuda::check(cudaGetLastError(), "flash attention forward launch");
  });
}

template <class T>
bool backward(Cuda& backend, HeadLayout<T> dq, HeadLayout<T> dk, HeadLayout<T> dv,
              accum_t<T>* delta, const T* dout, const T* out, const accum_t<T>* lse,
              HeadLayout<const T> q, HeadLayout<const T> k, HeadLayout<const T> v, index_t batch,
              index_t tq, index_t tk, index_t heads, index_t kv_heads, index_t head_dim,
              accum_t<T> scale) {
  return with_head_dim<T>(head_dim, [&](auto d) {
    constexpr int D = decltype(d)::value;
    const dim3 rows(unsigned(batch * heads), blocks(tq, kQueryRows));
    backward_dq_kernel<T, D><<<rows, kQueryRows * lanes<D>(), 0, backend.stream()>>>(
        dq, delta, dout, out, lse, q, k, v, tq, tk, heads, heads / kv_heads, scale);
    Cuda::check(cudaGetLastError(), "flash attention dQ launch");
    const dim3 keys(unsigned(batch * kv_heads), blocks(tk, kKeyRows));
    backward_dkv_kernel<T, D><<<keys, kKeyRows * lanes<D>(), 0, backend.stream()>>>(
        dk, dv, dout, lse, delta, q, k, v, tq, tk, heads, kv_heads, scale);
    Cuda::check(cudaGetLastError(), "flash attention dK, dV launch");
  });
}

}  // namespace flash
}  // namespace gpu
}  // namespace nla

#endif  // NLA_CUDA_DEVICE_SYSTEM
