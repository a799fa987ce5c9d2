#pragma once
// Causal attention on tensor cores: the flash algorithm of
// flash_attention.cuh (same contract, same lse and delta, same formulas) with
// each tile's products as warp-level matrix multiplies (WMMA: 16 x 16 tiles,
// fp32 accumulation):
//   forward   S = Q K^T,   O = O * correction + P V          (a query block)
//   dQ        S = Q K^T,   dP = dO V^T,   dQ += dS K         (a query block)
//   dK, dV    S^T = K Q^T, dP^T = V dO^T,
//             dV += P^T dO,  dK += dS^T Q                    (a key block)
// with P = exp(scale S - lse) and dS = P * (dP - delta). Operands are bf16
// for bf16 models and TF32 for fp32 models under GemmPrecision::Tf32; P and
// dS are rounded to that type before their product, as FlashAttention-2
// does, while the scale, the softmax statistics and every sum stay fp32.
//
// A block is kWarps warps; each owns kRows consecutive rows (queries, or keys
// for dK and dV) and sweeps kTile-wide tiles of the other side, which the
// whole block stages in shared memory. WMMA's fragment layout is opaque, so
// the row-wise work (masking, softmax, the forward's rescaling of O) runs on
// a warp-private fp32 copy of the scores in shared memory, two lanes per row;
// P and dS then overwrite that copy as operands. The order of every sum is
// fixed and there are no atomics, so results are deterministic.
//
// This header holds the device code alone; tensor_core_attention.cuh decides
// where it serves and launches it. Built with NLA_CUDA_EMULATION (and the
// CUDA names that tests/cuda/cuda_emulation.hpp provides) the same source
// runs on CPU threads, which is how it is tested without a GPU.

#include <string.h>

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "nla/backend/cuda/platform.cuh"

#if NLA_CUDA_DEVICE_SYSTEM || defined(NLA_CUDA_EMULATION)

#if !defined(NLA_CUDA_EMULATION)
#include <cuda_bf16.h>
#include <mma.h>
#endif

#include "nla/backend/cuda/math.cuh"
#include "nla/core/bf16.hpp"
#include "nla/core/head_layout.hpp"

// bf16 and TF32 WMMA need sm_80. A build for older devices compiles the
// kernels empty, and serves() never launches them there.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
#define NLA_TENSOR_CORE_KERNELS 0
#else
#define NLA_TENSOR_CORE_KERNELS 1
#endif

namespace nla {
namespace gpu {
namespace tensor_core_attention {

constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;
constexpr int kRows = 16;                   // rows per warp: one WMMA tile high
constexpr int kBlockRows = kRows * kWarps;  // rows per block
constexpr int kTile = 64;                   // columns of the other side per tile
constexpr int kHalf = kTile / 2;            // a lane's share of a row

// The operand type of T's products: what shared memory holds, the WMMA
// element type and the depth of one WMMA step.
template <class T>
struct Operand;

template <>
struct Operand<bf16> {
  using Stored = __nv_bfloat16;
  using Fragment = __nv_bfloat16;
  static constexpr int kDepth = 16;
  __device__ static Stored from_float(float x) { return __float2bfloat16(x); }
  __device__ static Stored from_model(bf16 x) { return __ushort_as_bfloat16(x.bits); }
  __device__ static float to_float(Stored x) { return __bfloat162float(x); }
};

template <>
struct Operand<float> {
  using Stored = float;  // rounded to TF32 on the way in
  static constexpr int kDepth = 8;
#if NLA_TENSOR_CORE_KERNELS
  using Fragment = nvcuda::wmma::precision::tf32;
  __device__ static Stored from_float(float x) {
    return nvcuda::wmma::__float_to_tf32(x);
  }
#else
  using Fragment = float;
  __device__ static Stored from_float(float x) {
    return x;
  }
#endif
  __device__ static Stored from_model(float x) {
    return from_float(x);
  }
  __device__ static float to_float(Stored x) {
    return x;
  }
};

// Shared-memory row strides, padded by 16 bytes: WMMA wants strides that are
// multiples of 16 bytes and fragment pointers aligned to 32 bytes (which
// 16-row steps of such strides keep), and the padding spreads a column's
// rows over the banks.
template <class S>
constexpr int padded(int n) {
  return n + int(16 / sizeof(S));
}

constexpr std::size_t round_up(std::size_t bytes) {
  return (bytes + 127) / 128 * 128;
}

// Where each region of a kernel's dynamic shared memory starts:
//   rows_a, rows_b   [kBlockRows, D] operands this block keeps (Q and dO, or
//                    K and V of its keys; the forward keeps Q only)
//   tile_a, tile_b   [kTile, D] operands of the current tile
//   stats            [2, kTile] fp32 (dK/dV: the tile's lse and delta)
//   per warp         two [kRows, kTile] fp32 score regions (S, and dP or the
//                    forward's O), and two operand regions (P, dS) of the
//                    same shape. Where the operand type is fp32 (TF32) the
//                    operands overwrite the scores in place: each lane
//                    writes exactly the entries it read.
template <class S, int D>
struct SharedLayout {
  static constexpr bool kOperandsInPlace = sizeof(S) == sizeof(float);
  static constexpr int ld = padded<S>(D);
  static constexpr int ld_scores = padded<float>(kTile);
  static constexpr int ld_operand = kOperandsInPlace ? ld_scores : padded<S>(kTile);
  static constexpr std::size_t rows_bytes = round_up(sizeof(S) * kBlockRows * ld);
  static constexpr std::size_t tile_bytes = round_up(sizeof(S) * kTile * ld);
  static constexpr std::size_t score_bytes = round_up(sizeof(float) * kRows * ld_scores);
  static constexpr std::size_t operand_bytes =
      kOperandsInPlace ? 0 : round_up(sizeof(S) * kRows * ld_operand);
  static constexpr std::size_t warp_bytes = 2 * (score_bytes + operand_bytes);
  static constexpr std::size_t rows_a = 0;
  static constexpr std::size_t rows_b = rows_a + rows_bytes;
  static constexpr std::size_t tile_a = rows_b + rows_bytes;
  static constexpr std::size_t tile_b = tile_a + tile_bytes;
  static constexpr std::size_t stats = tile_b + tile_bytes;
  static constexpr std::size_t warps = stats + round_up(sizeof(float) * 2 * kTile);
  static constexpr std::size_t bytes = warps + kWarps * warp_bytes;

  static_assert(D <= kTile, "the final accumulators are stored over a score region");

  // Score region i (0 or 1) and operand region i of `warp`.
  __device__ static float* scores(unsigned char* shared, int warp, int i) {
    return reinterpret_cast<float*>(shared + warps + warp * warp_bytes + i * score_bytes);
  }
  __device__ static S* operand(unsigned char* shared, int warp, int i) {
    return kOperandsInPlace ? reinterpret_cast<S*>(scores(shared, warp, i))
                            : reinterpret_cast<S*>(shared + warps + warp * warp_bytes +
                                                   2 * score_bytes + i * operand_bytes);
  }
};

template <class T>
using Accumulator =
    nvcuda::wmma::fragment<nvcuda::wmma::accumulator, 16, 16, Operand<T>::kDepth, float>;

template <class T, int N>
__device__ void zero(Accumulator<T> (&acc)[N / 16]) {
#pragma unroll
  for (int j = 0; j < N / 16; ++j) nvcuda::wmma::fill_fragment(acc[j], 0.0f);
}

template <class T, int N>
__device__ void store(float* c, int ldc, const Accumulator<T> (&acc)[N / 16]) {
#pragma unroll
  for (int j = 0; j < N / 16; ++j)
    nvcuda::wmma::store_matrix_sync(c + 16 * j, acc[j], unsigned(ldc), nvcuda::wmma::mem_row_major);
}

template <class T, int N>
__device__ void load(Accumulator<T> (&acc)[N / 16], const float* c, int ldc) {
#pragma unroll
  for (int j = 0; j < N / 16; ++j)
    nvcuda::wmma::load_matrix_sync(acc[j], c + 16 * j, unsigned(ldc), nvcuda::wmma::mem_row_major);
}

// acc[kRows, N] += a[kRows, K] op(b), acc held as N / 16 fragments:
//   BLayout row_major: op(b) = b, b stored [K, N];
//   BLayout col_major: op(b) = b^T, b stored [N, K] (its rows are the
//                      product's columns: a column-major [K, N] operand).
template <class T, int K, int N, class BLayout, class S>
__device__ void multiply_accumulate(Accumulator<T> (&acc)[N / 16], const S* a, int lda, const S* b,
                                    int ldb) {
  namespace wmma = nvcuda::wmma;
  using F = typename Operand<T>::Fragment;
  constexpr int depth = Operand<T>::kDepth;
  constexpr bool transposed = std::is_same<BLayout, wmma::col_major>::value;
#pragma unroll
  for (int k = 0; k < K; k += depth) {
    wmma::fragment<wmma::matrix_a, 16, 16, depth, F, wmma::row_major> fa;
    wmma::load_matrix_sync(fa, a + k, unsigned(lda));
#pragma unroll
    for (int j = 0; j < N / 16; ++j) {
      wmma::fragment<wmma::matrix_b, 16, 16, depth, F, BLayout> fb;
      wmma::load_matrix_sync(fb, transposed ? b + 16 * j * ldb + k : b + k * ldb + 16 * j,
                             unsigned(ldb));
      wmma::mma_sync(acc[j], fa, fb, acc[j]);
    }
  }
}

// acc[kRows, N] += a[kRows, K] b[K, N].
template <class T, int K, int N, class S>
__device__ void product_ab(Accumulator<T> (&acc)[N / 16], const S* a, int lda, const S* b,
                           int ldb) {
  multiply_accumulate<T, K, N, nvcuda::wmma::row_major>(acc, a, lda, b, ldb);
}

// c[kRows, N] = a[kRows, K] b[N, K]^T into shared memory.
template <class T, int K, int N, class S>
__device__ void product_abt(float* c, int ldc, const S* a, int lda, const S* b, int ldb) {
  Accumulator<T> acc[N / 16];
  zero<T, N>(acc);
  multiply_accumulate<T, K, N, nvcuda::wmma::col_major>(acc, a, lda, b, ldb);
  store<T, N>(c, ldc, acc);
}

// Rows row0 .. row0 + n - 1 of head `head` of batch entry b into shared
// memory [n, ld] as operands; rows at or past `rows` are zero. The whole
// block shares the copy, consecutive threads on consecutive channels, 16
// bytes a load where the rows start 16-byte aligned (fused QKV rows and
// dense heads of GPT-2 shapes do), one element otherwise. The test is the
// same for every thread of the block.
template <class T, int D>
__device__ void stage_rows(typename Operand<T>::Stored* dst, int ld, HeadLayout<const T> src,
                           index_t b, index_t head, index_t row0, index_t rows, int n) {
  constexpr int kVector = int(16 / sizeof(T));  // elements per 16-byte load
  static_assert(D % kVector == 0, "rows must split into 16-byte pieces");
  const T* base = src.data + b * src.batch_stride + head * D;
  if (reinterpret_cast<std::uintptr_t>(base) % 16 == 0 && src.row_stride % kVector == 0) {
    for (int e = threadIdx.x; e < n * (D / kVector); e += kThreads) {
      const int j = e / (D / kVector), i = e % (D / kVector) * kVector;
      const index_t row = row0 + j;
      uint4 raw = make_uint4(0, 0, 0, 0);  // all-zero bits: +0 in bf16 and fp32
      if (row < rows) raw = *reinterpret_cast<const uint4*>(base + row * src.row_stride + i);
      T values[kVector];
      memcpy(values, &raw, sizeof raw);  // not a cast: T and uint4 may not alias
#pragma unroll
      for (int c = 0; c < kVector; ++c) dst[j * ld + i + c] = Operand<T>::from_model(values[c]);
    }
    return;
  }
  for (int e = threadIdx.x; e < n * D; e += kThreads) {
    const int j = e / D, i = e % D;
    const index_t row = row0 + j;
    dst[j * ld + i] = row < rows ? Operand<T>::from_model(base[row * src.row_stride + i])
                                 : Operand<T>::from_float(0.0f);
  }
}

// A dense [batch, t, heads * D] tensor (out, dout) as a HeadLayout.
template <class T>
__device__ HeadLayout<const T> dense_heads(const T* data, index_t t, index_t heads, int d) {
  return {data, t * heads * d, heads * d};
}

// The lanes of a warp over its kRows rows: lane 2r + half takes row r and
// the columns half, half + 2, ... (interleaved, so the two lanes of a row
// read neighbouring banks). Row sums are the lane's part plus its partner's.
struct RowLanes {
  int row, half;
  __device__ RowLanes() : row(int(threadIdx.x % 32) / 2), half(int(threadIdx.x % 2)) {}
  __device__ int column(int c) const { return half + 2 * c; }
  __device__ static float pair_sum(float x) { return x + __shfl_xor_sync(0xffffffffu, x, 1); }
  __device__ static float pair_max(float x) {
    return math::max(x, __shfl_xor_sync(0xffffffffu, x, 1));
  }
};

template <class T, int D>
__global__ void __launch_bounds__(kThreads)
    forward_kernel(T* out, float* lse, HeadLayout<const T> q, HeadLayout<const T> k,
                   HeadLayout<const T> v, index_t tq, index_t tk, index_t heads, index_t group,
                   float scale) {
#if NLA_TENSOR_CORE_KERNELS
  using Op = Operand<T>;
  using S = typename Op::Stored;
  using L = SharedLayout<S, D>;
  extern __shared__ __align__(128) unsigned char shared[];
  S* qs = reinterpret_cast<S*>(shared + L::rows_a);
  S* ks = reinterpret_cast<S*>(shared + L::tile_a);
  S* vs = reinterpret_cast<S*>(shared + L::tile_b);
  const int warp = int(threadIdx.x / 32);
  float* scores = L::scores(shared, warp, 0);
  float* o_rows = L::scores(shared, warp, 1);
  S* p = L::operand(shared, warp, 0);

  const index_t bh = blockIdx.x, b = bh / heads, h = bh % heads, g = h / group;
  const index_t past = tk - tq, t0 = index_t(blockIdx.y) * kBlockRows;
  const index_t w0 = t0 + warp * kRows;  // this warp's first query
  const RowLanes lane;
  const index_t t = w0 + lane.row;
  const bool active = t < tq;
  const index_t visible = active ? math::min(tk, t + past + 1) : 0;
  const index_t warp_visible = w0 < tq ? math::min(tk, math::min(tq, w0 + kRows) + past) : 0;
  const index_t block_visible = math::min(tk, math::min(tq, t0 + kBlockRows) + past);

  stage_rows<T, D>(qs, L::ld, q, b, h, t0, tq, kBlockRows);
  Accumulator<T> o[D / 16];
  zero<T, D>(o);
  float m = math::minus_infinity<float>(), l = 0;
  for (index_t s0 = 0; s0 < block_visible; s0 += kTile) {
    __syncthreads();  // every warp is done with the previous tile
    stage_rows<T, D>(ks, L::ld, k, b, g, s0, tk, kTile);
    stage_rows<T, D>(vs, L::ld, v, b, g, s0, tk, kTile);
    __syncthreads();
    if (s0 >= warp_visible) continue;
    product_abt<T, D, kTile>(scores, L::ld_scores, qs + warp * kRows * L::ld, L::ld, ks, L::ld);
    __syncwarp();
    // Online softmax over this row's visible keys of the tile. A row that
    // sees nothing yet (m_new = -inf) takes exp against 0, so it gets
    // p = 0 instead of NaN. l sums the rounded P that multiplies V.
    const float* row_scores = scores + lane.row * L::ld_scores;
    float tile_max = math::minus_infinity<float>();
#pragma unroll 8
    for (int c = 0; c < kHalf; ++c) {
      const int j = lane.column(c);
      if (s0 + j < visible) tile_max = math::max(tile_max, scale * row_scores[j]);
    }
    const float m_new = math::max(m, RowLanes::pair_max(tile_max));
    const float base = m_new == math::minus_infinity<float>() ? 0.0f : m_new;
    // While m = -inf, O and l are still zero: any factor does, and 1 lets
    // the shortcut below skip the round trip.
    const float correction = m == math::minus_infinity<float>() ? 1.0f : math::exp(m - base);
    float sum = 0;
#pragma unroll 8
    for (int c = 0; c < kHalf; ++c) {
      const int j = lane.column(c);
      const S pj =
          Op::from_float(s0 + j < visible ? math::exp(scale * row_scores[j] - base) : 0.0f);
      p[lane.row * L::ld_operand + j] = pj;
      sum += Op::to_float(pj);
    }
    l = l * correction + RowLanes::pair_sum(sum);
    m = m_new;
    // Rescale O through shared memory, unless no row's maximum moved.
    if (!__all_sync(0xffffffffu, correction == 1.0f)) {
      store<T, D>(o_rows, L::ld_scores, o);
      __syncwarp();
      for (int c = 0; c < D / 2; ++c)
        o_rows[lane.row * L::ld_scores + lane.column(c)] *= correction;
      __syncwarp();
      load<T, D>(o, o_rows, L::ld_scores);
    }
    __syncwarp();
    product_ab<T, kTile, D>(o, p, L::ld_operand, vs, L::ld);
  }
  store<T, D>(o_rows, L::ld_scores, o);
  __syncwarp();
  if (!active) return;
  T* row = out + (b * tq + t) * heads * D + h * D;
  const float inv = 1.0f / l;
  for (int c = 0; c < D / 2; ++c) {
    const int i = lane.column(c);
    row[i] = T(o_rows[lane.row * L::ld_scores + i] * inv);
  }
  if (lane.half == 0) lse[bh * tq + t] = m + math::log(l);
#endif  // NLA_TENSOR_CORE_KERNELS
}

// Also writes delta_t = dO_t . O_t for the dK/dV kernel.
template <class T, int D>
__global__ void __launch_bounds__(kThreads)
    backward_dq_kernel(HeadLayout<T> dq, float* delta, const T* dout, const T* out,
                       const float* lse, HeadLayout<const T> q, HeadLayout<const T> k,
                       HeadLayout<const T> v, index_t tq, index_t tk, index_t heads, index_t group,
                       float scale) {
#if NLA_TENSOR_CORE_KERNELS
  using Op = Operand<T>;
  using S = typename Op::Stored;
  using L = SharedLayout<S, D>;
  extern __shared__ __align__(128) unsigned char shared[];
  S* qs = reinterpret_cast<S*>(shared + L::rows_a);
  S* dos = reinterpret_cast<S*>(shared + L::rows_b);
  S* ks = reinterpret_cast<S*>(shared + L::tile_a);
  S* vs = reinterpret_cast<S*>(shared + L::tile_b);
  const int warp = int(threadIdx.x / 32);
  float* scores = L::scores(shared, warp, 0);
  float* dp_scores = L::scores(shared, warp, 1);
  S* ds = L::operand(shared, warp, 0);

  const index_t bh = blockIdx.x, b = bh / heads, h = bh % heads, g = h / group;
  const index_t past = tk - tq, t0 = index_t(blockIdx.y) * kBlockRows;
  const index_t w0 = t0 + warp * kRows;
  const RowLanes lane;
  const index_t t = w0 + lane.row;
  const bool active = t < tq;
  const index_t visible = active ? math::min(tk, t + past + 1) : 0;
  const index_t warp_visible = w0 < tq ? math::min(tk, math::min(tq, w0 + kRows) + past) : 0;
  const index_t block_visible = math::min(tk, math::min(tq, t0 + kBlockRows) + past);

  stage_rows<T, D>(qs, L::ld, q, b, h, t0, tq, kBlockRows);
  stage_rows<T, D>(dos, L::ld, dense_heads(dout, tq, heads, D), b, h, t0, tq, kBlockRows);
  float row_delta = 0;
  if (active) {
    const T* dor = dout + (b * tq + t) * heads * D + h * D;
    const T* orow = out + (b * tq + t) * heads * D + h * D;
    for (int c = 0; c < D / 2; ++c)
      row_delta += float(dor[lane.column(c)]) * float(orow[lane.column(c)]);
  }
  row_delta = RowLanes::pair_sum(row_delta);
  if (active && lane.half == 0) delta[bh * tq + t] = row_delta;
  const float row_lse = active ? lse[bh * tq + t] : 0.0f;

  Accumulator<T> acc[D / 16];
  zero<T, D>(acc);
  for (index_t s0 = 0; s0 < block_visible; s0 += kTile) {
    __syncthreads();
    stage_rows<T, D>(ks, L::ld, k, b, g, s0, tk, kTile);
    stage_rows<T, D>(vs, L::ld, v, b, g, s0, tk, kTile);
    __syncthreads();
    if (s0 >= warp_visible) continue;
    product_abt<T, D, kTile>(scores, L::ld_scores, qs + warp * kRows * L::ld, L::ld, ks, L::ld);
    product_abt<T, D, kTile>(dp_scores, L::ld_scores, dos + warp * kRows * L::ld, L::ld, vs, L::ld);
    __syncwarp();
#pragma unroll 8
    for (int c = 0; c < kHalf; ++c) {
      const int j = lane.column(c), e = lane.row * L::ld_scores + j;
      const float pj = s0 + j < visible ? math::exp(scale * scores[e] - row_lse) : 0.0f;
      ds[lane.row * L::ld_operand + j] = Op::from_float(pj * (dp_scores[e] - row_delta));
    }
    __syncwarp();
    product_ab<T, kTile, D>(acc, ds, L::ld_operand, ks, L::ld);
  }
  __syncwarp();
  store<T, D>(dp_scores, L::ld_scores, acc);
  __syncwarp();
  if (!active) return;
  T* row = dq.data + b * dq.batch_stride + t * dq.row_stride + h * D;
  for (int c = 0; c < D / 2; ++c) {
    const int i = lane.column(c);
    row[i] = T(scale * dp_scores[lane.row * L::ld_scores + i]);
  }
#endif  // NLA_TENSOR_CORE_KERNELS
}

// One block per kBlockRows keys of one kv head, over every query head of
// its group: dK and dV sum the group's heads, in order.
template <class T, int D>
__global__ void __launch_bounds__(kThreads)
    backward_dkv_kernel(HeadLayout<T> dk, HeadLayout<T> dv, const T* dout, const float* lse,
                        const float* delta, HeadLayout<const T> q, HeadLayout<const T> k,
                        HeadLayout<const T> v, index_t tq, index_t tk, index_t heads,
                        index_t kv_heads, float scale) {
#if NLA_TENSOR_CORE_KERNELS
  using Op = Operand<T>;
  using S = typename Op::Stored;
  using L = SharedLayout<S, D>;
  extern __shared__ __align__(128) unsigned char shared[];
  S* ks = reinterpret_cast<S*>(shared + L::rows_a);
  S* vs = reinterpret_cast<S*>(shared + L::rows_b);
  S* qs = reinterpret_cast<S*>(shared + L::tile_a);
  S* dos = reinterpret_cast<S*>(shared + L::tile_b);
  float* tile_lse = reinterpret_cast<float*>(shared + L::stats);
  float* tile_delta = tile_lse + kTile;
  const int warp = int(threadIdx.x / 32);
  float* scores = L::scores(shared, warp, 0);
  float* dp_scores = L::scores(shared, warp, 1);
  S* p = L::operand(shared, warp, 0);
  S* ds = L::operand(shared, warp, 1);

  const index_t group = heads / kv_heads;
  const index_t bg = blockIdx.x, b = bg / kv_heads, g = bg % kv_heads;
  const index_t past = tk - tq, s0 = index_t(blockIdx.y) * kBlockRows;
  const index_t w0 = s0 + warp * kRows;  // this warp's first key
  const RowLanes lane;
  const index_t s = w0 + lane.row;
  const HeadLayout<const T> dense_dout = dense_heads(dout, tq, heads, D);

  stage_rows<T, D>(ks, L::ld, k, b, g, s0, tk, kBlockRows);
  stage_rows<T, D>(vs, L::ld, v, b, g, s0, tk, kBlockRows);
  Accumulator<T> dk_acc[D / 16], dv_acc[D / 16];
  zero<T, D>(dk_acc);
  zero<T, D>(dv_acc);
  // Query t sees key s when s <= t + past: the first query for this block.
  const index_t t_first = math::max(index_t(0), s0 - past);
  for (index_t h = g * group; h < (g + 1) * group; ++h) {
    const index_t bh = b * heads + h;
    for (index_t t0 = t_first; t0 < tq; t0 += kTile) {
      __syncthreads();
      stage_rows<T, D>(qs, L::ld, q, b, h, t0, tq, kTile);
      stage_rows<T, D>(dos, L::ld, dense_dout, b, h, t0, tq, kTile);
      for (int j = int(threadIdx.x); j < kTile; j += kThreads) {
        const bool in = t0 + j < tq;
        tile_lse[j] = in ? lse[bh * tq + t0 + j] : 0.0f;
        tile_delta[j] = in ? delta[bh * tq + t0 + j] : 0.0f;
      }
      __syncthreads();
      // No query of the tile sees any key of this warp's.
      if (w0 >= tk || t0 + kTile - 1 + past < w0) continue;
      product_abt<T, D, kTile>(scores, L::ld_scores, ks + warp * kRows * L::ld, L::ld, qs, L::ld);
      product_abt<T, D, kTile>(dp_scores, L::ld_scores, vs + warp * kRows * L::ld, L::ld, dos,
                               L::ld);
      __syncwarp();
#pragma unroll 8
      for (int c = 0; c < kHalf; ++c) {
        const int j = lane.column(c), e = lane.row * L::ld_scores + j,
                  o = lane.row * L::ld_operand + j;
        const index_t t = t0 + j;
        const bool seen = s < tk && t < tq && s <= t + past;
        const float pj = seen ? math::exp(scale * scores[e] - tile_lse[j]) : 0.0f;
        const float dsj = pj * (dp_scores[e] - tile_delta[j]);
        p[o] = Op::from_float(pj);
        ds[o] = Op::from_float(dsj);
      }
      __syncwarp();
      product_ab<T, kTile, D>(dv_acc, p, L::ld_operand, dos, L::ld);
      product_ab<T, kTile, D>(dk_acc, ds, L::ld_operand, qs, L::ld);
    }
  }
  __syncwarp();
  store<T, D>(scores, L::ld_scores, dk_acc);
  store<T, D>(dp_scores, L::ld_scores, dv_acc);
  __syncwarp();
  if (s >= tk) return;
  T* dkr = dk.data + b * dk.batch_stride + s * dk.row_stride + g * D;
  T* dvr = dv.data + b * dv.batch_stride + s * dv.row_stride + g * D;
  for (int c = 0; c < D / 2; ++c) {
    const int i = lane.column(c), e = lane.row * L::ld_scores + i;
    dkr[i] = T(scale * scores[e]);
    dvr[i] = T(dp_scores[e]);
  }
#endif  // NLA_TENSOR_CORE_KERNELS
}

}  // namespace tensor_core_attention
}  // namespace gpu
}  // namespace nla

#undef NLA_TENSOR_CORE_KERNELS

#endif  // NLA_CUDA_DEVICE_SYSTEM || defined(NLA_CUDA_EMULATION)
