#pragma once
// The Cuda backend type. Like Cpu (backend/cpu/cpu.hpp) it provides
//   - Buffer<T>: device memory (Thrust's device system);
//   - the object every kernel takes first; here it owns the model's CUDA
//     stream, the cuBLASLt handle and its plans, and a caching allocator for
//     Thrust's temporary storage, so a warm training step allocates nothing;
//   - upload / download, the two kernels core/host.hpp needs because device
//     memory is not host-accessible.
// Each Cuda object has its own stream: one per model, so a verbalizer and a
// reconstructor can run concurrently. Copying a model gives the copy a new
// stream. Constructing a Cuda object on a machine without a usable GPU
// throws nla::Error saying so.
// The namespace is nla::gpu, not nla::cuda: with `using namespace nla` a
// nested `cuda` would make libcu++'s ::cuda ambiguous, in user code and in
// the stubs nvcc generates.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include <thrust/copy.h>
#include <thrust/execution_policy.h>
#include <thrust/fill.h>
#include <thrust/for_each.h>
#include <thrust/iterator/counting_iterator.h>

#include "nla/backend/cuda/memory.cuh"
#include "nla/backend/cuda/platform.cuh"
#include "nla/core/error.hpp"
#include "nla/core/shape.hpp"

#if NLA_CUDA_DEVICE_SYSTEM
#include <cuda_runtime.h>
#include <thrust/system/cuda/execution_policy.h>

#include "nla/backend/cuda/cublaslt.cuh"
#endif

namespace nla {
namespace gpu {

// True when kernels can run: a CUDA device is present (always true on
// Thrust's host systems). Never throws; `why` receives the runtime's reason.
inline bool device_available(std::string* why = nullptr) {
#if NLA_CUDA_DEVICE_SYSTEM
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status == cudaSuccess && count > 0) return true;
  if (why) *why = status != cudaSuccess ? cudaGetErrorString(status) : "no CUDA device found";
  cudaGetLastError();  // clear the sticky error so later checks start clean
  return false;
#else
  (void)why;
  return true;
#endif
}

inline void require_device() {
  std::string why;
  if (!device_available(&why))
    NLA_FAIL("Cuda",
             "no usable GPU: {}. Run on a machine with an NVIDIA GPU and driver, or use "
             "the Cpu backend",
             why);
}

// Owning device array of trivially copyable T; data() is a raw pointer, as
// the kernels take them. New elements are zero (resize keeps the old ones).
template <class T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::size_t n) { resize(n); }
  DeviceBuffer(const DeviceBuffer& other) : DeviceBuffer() { *this = other; }
  DeviceBuffer& operator=(const DeviceBuffer& other) {
    if (this == &other) return *this;
    if (capacity_ < other.size_) {
      reset();
      data_ = static_cast<T*>(device_allocate(other.size_ * sizeof(T)));
      capacity_ = other.size_;
    }
    size_ = other.size_;
    if (size_ > 0) thrust::copy_n(thrust::device, other.data_, size_, data_);
    return *this;
  }
  DeviceBuffer(DeviceBuffer&& other) noexcept { swap(other); }
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
    swap(other);
    return *this;
  }
  ~DeviceBuffer() { reset(); }

  T* data() { return data_; }
  const T* data() const { return data_; }
  std::size_t size() const { return size_; }

  // New elements are value-initialised: zero for numbers, the defaults of a
  // record type.
  void resize(std::size_t n) {
    if (n > capacity_) {
      T* grown = static_cast<T*>(device_allocate(n * sizeof(T)));
      if (size_ > 0) thrust::copy_n(thrust::device, data_, size_, grown);
      reset();
      data_ = grown;
      capacity_ = n;
    }
    if (n > size_) thrust::fill_n(thrust::device, data_ + size_, n - size_, T{});
    size_ = n;
  }

 private:
  void reset() {
    device_free(data_, capacity_ * sizeof(T));
    data_ = nullptr;
    size_ = capacity_ = 0;
  }
  void swap(DeviceBuffer& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
    std::swap(capacity_, o.capacity_);
  }

  T* data_ = nullptr;
  std::size_t size_ = 0, capacity_ = 0;
};

// Thrust's temporary storage (reductions) through a cache of freed blocks
// keyed by size: the same reductions every step reuse the same blocks, so
// nothing reaches cudaMalloc once a training loop is warm.
class TemporaryCache {
 public:
  using value_type = char;

  TemporaryCache() = default;
  TemporaryCache(const TemporaryCache&) = delete;
  TemporaryCache& operator=(const TemporaryCache&) = delete;
  ~TemporaryCache() {
    for (auto& [bytes, p] : free_) device_free(p, static_cast<std::size_t>(bytes));
    for (auto& [p, bytes] : used_) device_free(p, static_cast<std::size_t>(bytes));
  }

  char* allocate(std::ptrdiff_t bytes) {
    char* p = nullptr;
    const auto it = free_.lower_bound(bytes);
    if (it != free_.end() && it->first <= 2 * bytes) {
      bytes = it->first;
      p = it->second;
      free_.erase(it);
    } else {
      p = static_cast<char*>(device_allocate(static_cast<std::size_t>(bytes)));
    }
    used_.emplace(p, bytes);
    return p;
  }
  void deallocate(char* p, std::size_t) {
    const auto it = used_.find(p);
    if (it == used_.end()) return;
    free_.emplace(it->second, p);
    used_.erase(it);
  }

 private:
  std::multimap<std::ptrdiff_t, char*> free_;
  std::map<char*, std::ptrdiff_t> used_;
};

// How fp32 matrix products run: exact fp32, or TF32 tensor cores (10-bit
// mantissa inputs, fp32 accumulation). Tf32 covers cuBLASLt's GEMMs and, with
// AttentionKernels::TensorCores, the attention kernels' products. Ignored by
// the portable fallbacks.
enum class GemmPrecision { Fp32, Tf32 };

// Which kernels run causal attention where both could: TensorCores (bf16
// models, and fp32 models under GemmPrecision::Tf32, on sm_80 or newer with
// head size 16, 32 or 64: tensor_core_attention.cuh) or CudaCores (fp32
// arithmetic throughout: flash_attention.cuh). Other cases take the CUDA-core
// kernels either way.
enum class AttentionKernels { TensorCores, CudaCores };

// What the kernels ask of the device, read once per backend.
struct DeviceInfo {
  int compute_capability = 0;               // 10 * major + minor: 90 for an H100
  std::size_t shared_memory_per_block = 0;  // with the opt-in beyond 48 KiB
};

class Cuda {
 public:
  static constexpr const char* kName = "cuda";
  static constexpr bool kHostAccessible = false;
  template <class T>
  using Buffer = DeviceBuffer<T>;

  Cuda() : state_(make_state()) {}
  // A copy gets its own stream and handles, and the same settings.
  Cuda(const Cuda& other) : state_(make_state()), settings_(other.settings_) {}
  // Keeps its own stream and handles (recreated if this one was moved from).
  Cuda& operator=(const Cuda& other) {
    if (!state_) state_ = make_state();
    settings_ = other.settings_;
    return *this;
  }
  Cuda(Cuda&&) noexcept = default;
  Cuda& operator=(Cuda&&) noexcept = default;

  // The Thrust execution policy every kernel launches with.
  auto policy() {
#if NLA_CUDA_DEVICE_SYSTEM
    return thrust::cuda::par_nosync(state_->temporaries).on(state_->stream);
#else
    return thrust::device(state_->temporaries);
#endif
  }

  // Waits for every kernel queued on this backend's stream.
  void synchronize() {
#if NLA_CUDA_DEVICE_SYSTEM
    check(cudaStreamSynchronize(state_->stream), "cudaStreamSynchronize");
#endif
  }

  // The cache behind Thrust's temporaries, which DeviceScratch draws on too.
  TemporaryCache& temporaries() {
    return state_->temporaries;
  }

  GemmPrecision gemm_precision() const {
    return settings_.gemm_precision;
  }
  void set_gemm_precision(GemmPrecision p) {
    settings_.gemm_precision = p;
  }

  AttentionKernels attention_kernels() const {
    return settings_.attention_kernels;
  }
  void set_attention_kernels(AttentionKernels a) {
    settings_.attention_kernels = a;
  }

  // Whether GEMMs may fuse a bias and GELU into cuBLASLt's epilogues (gemm.cuh).
  // On by default; off runs the unfused kernels, to time what fusion buys.
  bool gemm_epilogues() const {
    return settings_.gemm_epilogues;
  }
  void set_gemm_epilogues(bool on) {
    settings_.gemm_epilogues = on;
  }

#if NLA_CUDA_DEVICE_SYSTEM
  cudaStream_t stream() const {
    return state_->stream;
  }
  CublasLt& blas() {
    return state_->blas;
  }
  const DeviceInfo& device_info() const {
    return state_->device;
  }

  static void check(cudaError_t status, const char* what) {
    if (status != cudaSuccess)
      NLA_FAIL("Cuda", "{} failed: {} ({})", what, cudaGetErrorString(status),
               cudaGetErrorName(status));
  }
#endif

 private:
  struct State {
    TemporaryCache temporaries;
#if NLA_CUDA_DEVICE_SYSTEM
    cudaStream_t stream = nullptr;
    CublasLt blas;
    DeviceInfo device;
    // A blocking stream: work on the legacy default stream (buffer resizes
    // and copies, which Thrust runs there synchronously) waits for it.
    // The stream is created last: a constructor that throws runs no
    // destructor, so nothing may need releasing after a failed check.
    State() {
      int id = 0, major = 0, minor = 0, shared = 0;
      check(cudaGetDevice(&id), "cudaGetDevice");
      check(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, id),
            "cudaDeviceGetAttribute");
      check(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, id),
            "cudaDeviceGetAttribute");
      check(cudaDeviceGetAttribute(&shared, cudaDevAttrMaxSharedMemoryPerBlockOptin, id),
            "cudaDeviceGetAttribute");
      device.compute_capability = 10 * major + minor;
      device.shared_memory_per_block = std::size_t(shared);
      check(cudaStreamCreate(&stream), "cudaStreamCreate");
    }
    ~State() {
      cudaStreamSynchronize(stream);
      cudaStreamDestroy(stream);
    }
#endif
  };
  static std::unique_ptr<State> make_state() {
    require_device();
    return std::make_unique<State>();
  }

  // What a copy of the backend carries over.
  struct Settings {
    GemmPrecision gemm_precision = GemmPrecision::Fp32;
    AttentionKernels attention_kernels = AttentionKernels::TensorCores;
    bool gemm_epilogues = true;
  };

  std::unique_ptr<State> state_;
  Settings settings_;
};

// The stream a device communicator must enqueue behind (Communicator::set_queue);
// none on Thrust's host systems, whose kernels finish before they return.
inline void* native_queue(Cuda& backend) {
#if NLA_CUDA_DEVICE_SYSTEM
  return backend.stream();
#else
  (void)backend;
  return nullptr;
#endif
}

// n elements of device scratch until the end of the scope, from the
// backend's temporary-storage cache. Handing the block back before the
// kernels using it have run is safe: every kernel of one backend runs on its
// one stream, in order, so the next user of the block queues behind them.
template <class T>
class DeviceScratch {
 public:
  DeviceScratch(Cuda& backend, index_t n)
      : cache_(&backend.temporaries()),
        bytes_(std::ptrdiff_t(sizeof(T)) * (n > 0 ? n : 1)),
        data_(reinterpret_cast<T*>(cache_->allocate(bytes_))) {}
  DeviceScratch(const DeviceScratch&) = delete;
  DeviceScratch& operator=(const DeviceScratch&) = delete;
  ~DeviceScratch() { cache_->deallocate(reinterpret_cast<char*>(data_), std::size_t(bytes_)); }
  T* data() const { return data_; }

 private:
  TemporaryCache* cache_;
  std::ptrdiff_t bytes_;
  T* data_;
};

// f(i) for i in [0, n) on the device system: the portable form of every
// kernel in this backend (one thread per index on a GPU, OpenMP on a host).
template <class F>
void for_each_index(Cuda& backend, index_t n, F f) {
  if (n <= 0) return;
  thrust::for_each_n(backend.policy(), thrust::counting_iterator<index_t>(0), n, f);
}

namespace detail {
// A copy between host and device memory that has finished when it returns.
inline void blocking_copy(Cuda& backend, void* dst, const void* src, std::size_t bytes,
                          bool to_device) {
  if (bytes == 0) return;
#if NLA_CUDA_DEVICE_SYSTEM
  Cuda::check(
      cudaMemcpyAsync(dst, src, bytes, to_device ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToHost,
                      backend.stream()),
      to_device ? "upload (cudaMemcpyAsync)" : "download (cudaMemcpyAsync)");
  backend.synchronize();
#else
  (void)backend;
  (void)to_device;
  std::memcpy(dst, src, bytes);
#endif
}
}  // namespace detail

// Host <-> device copies (core/host.hpp). Both wait for the stream: the host
// side may be read or freed as soon as they return.
template <class T>
void upload(Cuda& backend, T* device, const T* host, index_t n) {
  detail::blocking_copy(backend, device, host, std::size_t(n) * sizeof(T), true);
}

template <class T>
void download(Cuda& backend, T* host, const T* device, index_t n) {
  detail::blocking_copy(backend, host, device, std::size_t(n) * sizeof(T), false);
}

}  // namespace gpu

using Cuda = gpu::Cuda;

}  // namespace nla
