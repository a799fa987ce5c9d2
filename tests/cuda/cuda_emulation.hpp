#pragma once
// CUDA on CPU threads: just enough of it to run the tensor-core attention
// kernels' own source (backend/cuda/tensor_core_attention_kernels.cuh) on a
// machine without a GPU. Include this before any nla header, in a
// translation unit of its own.
//   - A block runs as real threads, one per CUDA thread; __syncthreads and
//     __syncwarp are barriers. Shuffles and votes meet at a rendezvous of
//     relaxed atomics between sequentially consistent fences: enough for
//     the exchange slots by the C++ memory model, yet ThreadSanitizer (which
//     does not model fences) sees no happens-before there, so a missing
//     __syncwarp still shows as a race (a manual run; CI does not use TSan).
//   - Shared memory starts as NaN bytes at every block, so a read of
//     anything not written shows in the results.
//   - A WMMA fragment holds its whole tile in every lane (row-major, values
//     widened exactly). Loads check what the CUDA guide requires (a 32-byte
//     aligned pointer, a stride that is a multiple of 16 bytes) and that
//     TF32 operands were rounded to TF32. A store writes each element from
//     a lane other than the one that reads it back in the kernels, so a
//     missing __syncwarp is a race between threads here too.
//   - Products sum in double: more accurate than the hardware's fp32
//     accumulation, so the tolerances here are no looser than on a GPU.
// What this cannot check: the hardware's fragment layouts (the kernels never
// depend on them), timing, and the host-side launch code.

#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <thread>
#include <type_traits>
#include <vector>

#include "nla/core/bf16.hpp"

#define NLA_CUDA_EMULATION 1
#define __device__
#define __global__
#define __launch_bounds__(threads)
#define __align__(bytes)
#define __shared__

struct dim3 {
  unsigned x = 0, y = 0, z = 0;
};
inline thread_local dim3 threadIdx;
inline dim3 blockIdx;

// may_alias: the kernels copy 16-byte pieces of bf16/fp32 rows through it.
struct __attribute__((aligned(16), may_alias)) uint4 {
  unsigned x, y, z, w;
};
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) {
  return {x, y, z, w};
}

struct __nv_bfloat16 {
  std::uint16_t bits;
};
inline __nv_bfloat16 __float2bfloat16(float x) {
  return {nla::bf16(x).bits};
}
inline float __bfloat162float(__nv_bfloat16 x) {
  return float(nla::bf16::from_bits(x.bits));
}
inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short bits) {
  return {bits};
}

namespace cuda_emulation {

constexpr int kMaxWarps = 32;

// Violations of WMMA's requirements seen so far (alignment, stride, an
// unrounded TF32 operand); the tests expect none.
inline std::atomic<long> wmma_violations{0};
// false: __float_to_tf32 keeps fp32 (to check the indexing at fp32 accuracy).
inline bool round_tf32 = true;

inline pthread_barrier_t block_barrier;
inline pthread_barrier_t warp_barriers[kMaxWarps];
inline std::atomic<unsigned> arrivals[kMaxWarps];
inline std::atomic<std::uint32_t> exchange[kMaxWarps][32];
inline thread_local unsigned rendezvous_count = 0;

inline int lane() {
  return int(threadIdx.x % 32);
}
inline int warp() {
  return int(threadIdx.x / 32);
}

// Every lane of this warp arrives before any leaves. The fences make the
// exchange slots written before it visible after it (fence-fence
// synchronisation through the arrival counter).
inline void rendezvous() {
  const unsigned target = ++rendezvous_count * 32;
  std::atomic_thread_fence(std::memory_order_seq_cst);
  arrivals[warp()].fetch_add(1, std::memory_order_relaxed);
  while (arrivals[warp()].load(std::memory_order_relaxed) < target) sched_yield();
  std::atomic_thread_fence(std::memory_order_seq_cst);
}

inline std::uint32_t swap_with(int partner, std::uint32_t mine) {
  exchange[warp()][lane()].store(mine, std::memory_order_relaxed);
  rendezvous();
  const std::uint32_t theirs = exchange[warp()][partner].load(std::memory_order_relaxed);
  rendezvous();
  return theirs;
}

// Runs kernel() as grid.x * grid.y blocks of `threads` threads, one block
// after another.
template <class Kernel>
void launch(dim3 grid, unsigned threads, unsigned char* shared, std::size_t shared_bytes,
            Kernel kernel) {
  const unsigned warps = (threads + 31) / 32;
  for (unsigned y = 0; y < grid.y; ++y)
    for (unsigned x = 0; x < grid.x; ++x) {
      blockIdx.x = x;
      blockIdx.y = y;
      std::memset(shared, 0xff, shared_bytes);  // NaN in fp32 and bf16
      pthread_barrier_init(&block_barrier, nullptr, threads);
      for (unsigned w = 0; w < warps; ++w) {
        pthread_barrier_init(&warp_barriers[w], nullptr, 32);
        arrivals[w] = 0;
      }
      std::vector<std::thread> block;
      for (unsigned t = 0; t < threads; ++t)
        block.emplace_back([t, &kernel] {
          threadIdx.x = t;
          rendezvous_count = 0;
          kernel();
        });
      for (auto& thread : block) thread.join();
      pthread_barrier_destroy(&block_barrier);
      for (unsigned w = 0; w < warps; ++w) pthread_barrier_destroy(&warp_barriers[w]);
    }
}

}  // namespace cuda_emulation

inline void __syncthreads() {
  pthread_barrier_wait(&cuda_emulation::block_barrier);
}
inline void __syncwarp(unsigned = 0xffffffffu) {
  pthread_barrier_wait(&cuda_emulation::warp_barriers[cuda_emulation::warp()]);
}
inline float __shfl_xor_sync(unsigned, float x, int mask) {
  std::uint32_t bits;
  std::memcpy(&bits, &x, 4);
  bits = cuda_emulation::swap_with(cuda_emulation::lane() ^ mask, bits);
  std::memcpy(&x, &bits, 4);
  return x;
}
inline int __all_sync(unsigned, int predicate) {
  using namespace cuda_emulation;
  exchange[warp()][lane()].store(predicate != 0, std::memory_order_relaxed);
  rendezvous();
  int all = 1;
  for (int i = 0; i < 32; ++i) all &= int(exchange[warp()][i].load(std::memory_order_relaxed));
  rendezvous();
  return all;
}

namespace nvcuda {
namespace wmma {

struct row_major {};
struct col_major {};
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
namespace precision {
struct tf32 {};
}  // namespace precision
enum layout_t { mem_row_major, mem_col_major };

// Round to nearest, ties away from zero, on the 13 bits TF32 drops (as
// cvt.rna.tf32.f32 does).
inline float __float_to_tf32(float x) {
  if (!cuda_emulation::round_tf32 || !std::isfinite(x)) return x;
  std::uint32_t u;
  std::memcpy(&u, &x, 4);
  u = (u + 0x1000u) & ~0x1fffu;
  std::memcpy(&x, &u, 4);
  return x;
}

// A: [16, K] as x[m * K + k]; B: [K, 16] as x[k * 16 + n]; C: x[m * 16 + n].
template <class Use, int M, int N, int K, class T, class Layout = void>
struct fragment {
  float x[16 * 16];
};

namespace detail {
inline float widen(float x) {
  return x;
}
inline float widen(__nv_bfloat16 x) {
  return __bfloat162float(x);
}

inline void check_access(const void* p, unsigned ld, std::size_t element_bytes) {
  if (reinterpret_cast<std::uintptr_t>(p) % 32 != 0 || ld * element_bytes % 16 != 0)
    ++cuda_emulation::wmma_violations;
}

template <class E>
float operand(E value) {
  if constexpr (std::is_same<E, float>::value) {
    std::uint32_t u;
    std::memcpy(&u, &value, 4);
    if (cuda_emulation::round_tf32 && (u & 0x1fffu)) ++cuda_emulation::wmma_violations;
  }
  return widen(value);
}
}  // namespace detail

template <int K, class F, class E>
void load_matrix_sync(fragment<matrix_a, 16, 16, K, F, row_major>& f, const E* p, unsigned ld) {
  detail::check_access(p, ld, sizeof(E));
  for (int m = 0; m < 16; ++m)
    for (int k = 0; k < K; ++k) f.x[m * K + k] = detail::operand(p[m * ld + k]);
}

template <int K, class F, class E>
void load_matrix_sync(fragment<matrix_b, 16, 16, K, F, row_major>& f, const E* p, unsigned ld) {
  detail::check_access(p, ld, sizeof(E));
  for (int k = 0; k < K; ++k)
    for (int n = 0; n < 16; ++n) f.x[k * 16 + n] = detail::operand(p[k * ld + n]);
}

template <int K, class F, class E>
void load_matrix_sync(fragment<matrix_b, 16, 16, K, F, col_major>& f, const E* p, unsigned ld) {
  detail::check_access(p, ld, sizeof(E));
  for (int k = 0; k < K; ++k)
    for (int n = 0; n < 16; ++n) f.x[k * 16 + n] = detail::operand(p[n * ld + k]);
}

template <int K>
void load_matrix_sync(fragment<accumulator, 16, 16, K, float>& f, const float* p, unsigned ld,
                      layout_t layout) {
  detail::check_access(p, ld, 4);
  for (int m = 0; m < 16; ++m)
    for (int n = 0; n < 16; ++n)
      f.x[m * 16 + n] = layout == mem_row_major ? p[m * ld + n] : p[n * ld + m];
}

// Element (m, n) is read back by lane 2 m + n % 2 (the kernels' RowLanes);
// lane (that + 7) % 32 writes it.
template <int K>
void store_matrix_sync(float* p, const fragment<accumulator, 16, 16, K, float>& f, unsigned ld,
                       layout_t layout) {
  detail::check_access(p, ld, 4);
  for (int m = 0; m < 16; ++m)
    for (int n = 0; n < 16; ++n)
      if ((2 * m + n % 2 + 7) % 32 == cuda_emulation::lane())
        (layout == mem_row_major ? p[m * ld + n] : p[n * ld + m]) = f.x[m * 16 + n];
}

template <int K>
void fill_fragment(fragment<accumulator, 16, 16, K, float>& f, float value) {
  for (float& x : f.x) x = value;
}

template <int K, class F, class LA, class LB>
void mma_sync(fragment<accumulator, 16, 16, K, float>& d,
              const fragment<matrix_a, 16, 16, K, F, LA>& a,
              const fragment<matrix_b, 16, 16, K, F, LB>& b,
              const fragment<accumulator, 16, 16, K, float>& c) {
  float result[16 * 16];
  for (int m = 0; m < 16; ++m)
    for (int n = 0; n < 16; ++n) {
      double sum = c.x[m * 16 + n];
      for (int k = 0; k < K; ++k) sum += double(a.x[m * K + k]) * double(b.x[k * 16 + n]);
      result[m * 16 + n] = float(sum);
    }
  std::memcpy(d.x, result, sizeof result);
}

}  // namespace wmma
}  // namespace nvcuda
