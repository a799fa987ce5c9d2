#pragma once
// Kernels that reduce along rows (norms, cross-entropy) are written once, as
// a function of one row worked by cooperating lanes:
//   row(r, lanes): lane lanes.lane of lanes.count takes columns lane,
//   lane + count, ...; lanes.sum(x) and lanes.max(x) combine a value over them.
// On a GPU a warp works each row (32 lanes, register-shuffle butterflies, so
// a warp's loads of a row coalesce and every lane gets the total); on
// Thrust's host systems one index works each row alone. The butterfly's order
// is fixed, so results repeat bit for bit run to run.

#include "nla/backend/cuda/cuda.cuh"
#include "nla/backend/cuda/math.cuh"

namespace nla {
namespace gpu {

constexpr int kWarp = 32;

struct RowLanes {
  int lane, count;

  template <class A>
  NLA_HOST_DEVICE A sum(A x) const {
#if NLA_CUDA_DEVICE_SYSTEM && defined(__CUDA_ARCH__)
#pragma unroll
    for (int offset = kWarp / 2; offset > 0; offset /= 2)
      x += __shfl_xor_sync(0xffffffffu, x, offset);
#endif
    return x;
  }
  template <class A>
  NLA_HOST_DEVICE A max(A x) const {
#if NLA_CUDA_DEVICE_SYSTEM && defined(__CUDA_ARCH__)
#pragma unroll
    for (int offset = kWarp / 2; offset > 0; offset /= 2)
      x = math::max(x, __shfl_xor_sync(0xffffffffu, x, offset));
#endif
    return x;
  }
};

#if NLA_CUDA_DEVICE_SYSTEM
constexpr int kRowsPerBlock = 8;

template <class Row>
__global__ void __launch_bounds__(kRowsPerBlock* kWarp) row_kernel(index_t rows, Row row) {
  const index_t r = index_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarp;
  if (r < rows) row(r, RowLanes{int(threadIdx.x % kWarp), kWarp});
}
#endif

// row(r, lanes) for r in [0, rows).
template <class Row>
void for_each_row(Cuda& backend, index_t rows, Row row) {
  if (rows <= 0) return;
#if NLA_CUDA_DEVICE_SYSTEM
  const unsigned blocks = unsigned((rows + kRowsPerBlock - 1) / kRowsPerBlock);
  row_kernel<<<blocks, kRowsPerBlock * kWarp, 0, backend.stream()>>>(rows, row);
  Cuda::check(cudaGetLastError(), "row kernel launch");
#else
  for_each_index(backend, rows, [=](index_t r) { row(r, RowLanes{0, 1}); });
#endif
}

}  // namespace gpu
}  // namespace nla
