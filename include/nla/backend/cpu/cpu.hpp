#pragma once
// The Cpu backend: host memory in 64-byte aligned vectors, kernels on Eigen
// and OpenMP. A backend is a type that provides
//   - Buffer<T>: an owning, resizable array in its memory space;
//   - an object passed by reference to every kernel (here stateless; on CUDA it
//     holds the stream, the cuBLASLt handle and workspaces);
//   - the kernels, free functions in the backend's namespace taking that object
//     first, found by argument-dependent lookup from the op front-ends in ops/.
// Threads come from OpenMP, so OMP_NUM_THREADS is respected by our loops and
// by Eigen's GEMM alike.

#include <cstddef>
#include <cstdlib>
#include <new>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace nla {
namespace cpu {

template <class T, std::size_t kAlignment = 64>
struct AlignedAllocator {
  using value_type = T;
  template <class U>
  struct rebind {
    using other = AlignedAllocator<U, kAlignment>;
  };
  AlignedAllocator() = default;
  template <class U>
  AlignedAllocator(const AlignedAllocator<U, kAlignment>&) {}

  T* allocate(std::size_t n) {
    const std::size_t bytes = (n * sizeof(T) + kAlignment - 1) / kAlignment * kAlignment;
    void* p = std::aligned_alloc(kAlignment, bytes == 0 ? kAlignment : bytes);
    if (!p) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, std::size_t) { std::free(p); }

  template <class U>
  bool operator==(const AlignedAllocator<U, kAlignment>&) const {
    return true;
  }
  template <class U>
  bool operator!=(const AlignedAllocator<U, kAlignment>&) const {
    return false;
  }
};

struct Cpu {
  static constexpr const char* kName = "cpu";
  // Host code may dereference this backend's pointers.
  static constexpr bool kHostAccessible = true;
  template <class T>
  using Buffer = std::vector<T, AlignedAllocator<T>>;

  static int max_threads() {
#if defined(_OPENMP)
    return omp_get_max_threads();
#else
    return 1;
#endif
  }
};

// No queue: every Cpu kernel has finished when it returns.
inline void* native_queue(Cpu&) {
  return nullptr;
}

}  // namespace cpu

using Cpu = cpu::Cpu;

}  // namespace nla
