#pragma once
// Device memory accounting. Every byte of device memory the Cuda backend
// takes (tensors, Thrust's temporary storage, cuBLASLt workspaces) passes
// through device_allocate and device_free, which count
//   allocations   calls that reached the device allocator: a test checks that
//                 a warm training step makes none;
//   bytes_in_use  held now, cached temporaries included (PyTorch's
//                 torch.cuda.memory_reserved is the matching figure);
//   peak_bytes    the most bytes_in_use since the process started or since
//                 reset_peak_device_memory(); PeakMemoryMeter measures a
//                 benchmark's own peak with it.
// The counters are process-wide, over every Cuda object on every thread.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <string>

#include <thrust/device_free.h>
#include <thrust/device_malloc.h>

#include "nla/backend/cuda/platform.cuh"
#include "nla/core/error.hpp"

namespace nla {
namespace gpu {

struct DeviceMemoryStats {
  std::int64_t allocations = 0;
  std::int64_t bytes_in_use = 0;
  std::int64_t peak_bytes = 0;
};

namespace memory_detail {

struct Counters {
  std::atomic<std::int64_t> allocations{0}, bytes_in_use{0}, peak_bytes{0};
};
inline Counters& counters() {
  static Counters c;
  return c;
}
// A zero-byte request still takes one byte, so every pointer is distinct.
inline std::size_t held_bytes(std::size_t bytes) {
  return bytes == 0 ? 1 : bytes;
}

}  // namespace memory_detail

inline DeviceMemoryStats device_memory_stats() {
  const auto& c = memory_detail::counters();
  return {c.allocations.load(), c.bytes_in_use.load(), c.peak_bytes.load()};
}

inline void reset_peak_device_memory() {
  auto& c = memory_detail::counters();
  c.peak_bytes.store(c.bytes_in_use.load());
}

// The peak of device memory from construction on, above what nla held then:
// the memory a benchmark or a program needed for its own work.
class PeakMemoryMeter {
 public:
  PeakMemoryMeter() : held_before_(device_memory_stats().bytes_in_use) {
    reset_peak_device_memory();
  }
  std::int64_t bytes() const { return device_memory_stats().peak_bytes - held_before_; }
  double mib() const { return double(bytes()) / double(1 << 20); }

 private:
  std::int64_t held_before_;
};

inline void* device_allocate(std::size_t bytes) {
  bytes = memory_detail::held_bytes(bytes);
  auto& c = memory_detail::counters();
  // Thrust's CUDA system throws on failure; its host systems return null.
  void* p = nullptr;
  std::string why = "the allocator returned null";
  try {
    p = thrust::raw_pointer_cast(thrust::device_malloc<char>(bytes));
  } catch (const std::exception& e) {
    why = e.what();
  }
  if (!p)
    NLA_FAIL("Cuda", "cannot allocate {} MiB of device memory ({} MiB already held by nla): {}",
             double(bytes) / (1 << 20), double(c.bytes_in_use.load()) / (1 << 20), why);
  ++c.allocations;
  const std::int64_t now = c.bytes_in_use += std::int64_t(bytes);
  std::int64_t peak = c.peak_bytes.load();
  while (now > peak && !c.peak_bytes.compare_exchange_weak(peak, now)) {
  }
  return p;
}

// `bytes` is what was asked of device_allocate for p.
inline void device_free(void* p, std::size_t bytes) {
  if (!p) return;
  thrust::device_free(thrust::device_pointer_cast(static_cast<char*>(p)));
  memory_detail::counters().bytes_in_use -= std::int64_t(memory_detail::held_bytes(bytes));
}

}  // namespace gpu
}  // namespace nla
