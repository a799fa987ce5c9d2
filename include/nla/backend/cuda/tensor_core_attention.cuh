#pragma once
// Where the tensor-core attention kernels (tensor_core_attention_kernels.cuh:
// the algorithm, shapes and rounding) serve, and their launches. Both entry
// points return false, launching nothing, where the kernels do not serve;
// attention.cuh then takes the CUDA-core kernels.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "nla/backend/cuda/cuda.cuh"

#if NLA_CUDA_DEVICE_SYSTEM

#include "nla/backend/cuda/tensor_core_attention_kernels.cuh"
#include "nla/core/bf16.hpp"
#include "nla/core/head_layout.hpp"
#include "nla/core/scalar.hpp"

namespace nla {
namespace gpu {
namespace tensor_core_attention {

// Whether the running binary holds these kernels: a build for architectures
// before sm_80 compiles them empty (no bf16 or TF32 WMMA there), and the PTX
// version of the kernel the device would run tells which build this is.
inline bool built_for_sm80() {
  static const bool built = [] {
    cudaFuncAttributes attributes{};
    if (cudaFuncGetAttributes(&attributes, forward_kernel<bf16, 64>) != cudaSuccess) {
      cudaGetLastError();  // clear it, so that the next check does not report it
      return false;
    }
    return attributes.ptxVersion >= 80;
  }();
  return built;
}

// Whether these kernels serve T at head size D on this backend: bf16 always,
// fp32 under TF32 GEMMs; an sm_80 or newer device and build; and the
// kernels' shared memory within what the device grants a block.
template <class T, int D>
bool serves(Cuda& backend) {
  if (backend.attention_kernels() != AttentionKernels::TensorCores) return false;
  if (std::is_same<T, float>::value && backend.gemm_precision() != GemmPrecision::Tf32)
    return false;
  const DeviceInfo& device = backend.device_info();
  return device.compute_capability >= 80 && built_for_sm80() &&
         SharedLayout<typename Operand<T>::Stored, D>::bytes <= device.shared_memory_per_block;
}

// f(std::integral_constant<int, D>) for the head sizes with kernels, which
// returns whether it launched them; false for other head sizes.
template <class F>
bool with_head_dim(index_t head_dim, F&& f) {
  switch (head_dim) {
    case 16:
      return f(std::integral_constant<int, 16>{});
    case 32:
      return f(std::integral_constant<int, 32>{});
    case 64:
      return f(std::integral_constant<int, 64>{});
    default:
      return false;
  }
}

// Launches kernel with L::bytes of dynamic shared memory, beyond the 48 KiB a
// launch gets without asking: the attribute that allows it is set once per
// kernel and device (devices 0-63; others set it at every launch).
template <class T, int D, class Kernel, class... Args>
void launch(Cuda& backend, Kernel kernel, dim3 grid, const char* what, Args... args) {
  constexpr std::size_t bytes = SharedLayout<typename Operand<T>::Stored, D>::bytes;
  static std::atomic<std::uint64_t> configured{0};  // one bit per device, for this kernel
  int device = 0;
  Cuda::check(cudaGetDevice(&device), what);
  const std::uint64_t bit = device < 64 ? std::uint64_t(1) << device : 0;
  if (bit == 0 || !(configured.load(std::memory_order_relaxed) & bit)) {
    Cuda::check(
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)),
        what);
    configured.fetch_or(bit, std::memory_order_relaxed);
  }
  kernel<<<grid, kThreads, bytes, backend.stream()>>>(args...);
  Cuda::check(cudaGetLastError(), what);
}

inline unsigned blocks(index_t n) {
  return unsigned((n + kBlockRows - 1) / kBlockRows);
}

// Launches the kernels and returns true where they serve (above); false,
// launching nothing, otherwise. Arguments as attention_forward's.
template <class T>
bool forward(Cuda& backend, T* out, accum_t<T>* lse, HeadLayout<const T> q, HeadLayout<const T> k,
             HeadLayout<const T> v, index_t batch, index_t tq, index_t tk, index_t heads,
             index_t kv_heads, index_t head_dim, accum_t<T> scale) {
  if constexpr (!std::is_same<T, bf16>::value && !std::is_same<T, float>::value) {
    return false;
  } else {
    return with_head_dim(head_dim, [&](auto d) {
      constexpr int D = decltype(d)::value;
      if (!serves<T, D>(backend)) return false;
      launch<T, D>(backend, forward_kernel<T, D>, dim3(unsigned(batch * heads), blocks(tq)),
                   "tensor-core attention forward", out, lse, q, k, v, tq, tk, heads,
                   heads / kv_heads, scale);
      return true;
    });
  }
}

template <class T>
bool backward(Cuda& backend, HeadLayout<T> dq, HeadLayout<T> dk, HeadLayout<T> dv,
              accum_t<T>* delta, const T* dout, const T* out, const accum_t<T>* lse,
              HeadLayout<const T> q, HeadLayout<const T> k, HeadLayout<const T> v, index_t batch,
              index_t tq, index_t tk, index_t heads, index_t kv_heads, index_t head_dim,
              accum_t<T> scale) {
  if constexpr (!std::is_same<T, bf16>::value && !std::is_same<T, float>::value) {
    return false;
  } else {
    return with_head_dim(head_dim, [&](auto d) {
      constexpr int D = decltype(d)::value;
      if (!serves<T, D>(backend)) return false;
      launch<T, D>(backend, backward_dq_kernel<T, D>, dim3(unsigned(batch * heads), blocks(tq)),
                   "tensor-core attention dQ", dq, delta, dout, out, lse, q, k, v, tq, tk, heads,
                   heads / kv_heads, scale);
      launch<T, D>(backend, backward_dkv_kernel<T, D>, dim3(unsigned(batch * kv_heads), blocks(tk)),
                   "tensor-core attention dK, dV", dk, dv, dout, lse,
                   static_cast<const float*>(delta), q, k, v, tq, tk, heads, kv_heads, scale);
      return true;
    });
  }
}

}  // namespace tensor_core_attention
}  // namespace gpu
}  // namespace nla

#endif  // NLA_CUDA_DEVICE_SYSTEM
