#pragma once
// Kernels that reduce along rows (norms, cross-entropy, token draws) are
// written once, as a function row(r, lanes) of one row worked by cooperating
// lanes (core/row_lanes.hpp). for_each_row runs it: a warp per row on a GPU,
// one index per row alone on Thrust's host systems.

#include "nla/backend/cuda/cuda.cuh"
#include "nla/backend/cuda/math.cuh"
#include "nla/core/row_lanes.hpp"

namespace nla {
namespace gpu {

constexpr int kWarp = RowLanes::kWarp;

#if NLA_CUDA_DEVICE_SYSTEM
constexpr int kRowsPerBlock = 8;
// Below this many rows a block holds a single warp, so that few rows (a
// decode step's batch, one token draw per sequence) spread over up to eight
// times as many SMs as eight-warp blocks would give them.
constexpr index_t kRowsForFullBlocks = 1024;

template <class Row>
__global__ void __launch_bounds__(kRowsPerBlock* kWarp) row_kernel(index_t rows, Row row) {
  const index_t r = index_t(blockIdx.x) * (blockDim.x / kWarp) + threadIdx.x / kWarp;
  if (r < rows) row(r, RowLanes{int(threadIdx.x % kWarp), kWarp});
}
#endif

// row(r, lanes) for r in [0, rows).
template <class Row>
void for_each_row(Cuda& backend, index_t rows, Row row) {
  if (rows <= 0) return;
#if NLA_CUDA_DEVICE_SYSTEM
  const index_t per_block = rows >= kRowsForFullBlocks ? kRowsPerBlock : 1;
  const unsigned blocks = unsigned((rows + per_block - 1) / per_block);
  row_kernel<<<blocks, unsigned(per_block * kWarp), 0, backend.stream()>>>(rows, row);
  Cuda::check(cudaGetLastError(), "row kernel launch");
#else
  for_each_index(backend, rows, [=](index_t r) { row(r, RowLanes{0, 1}); });
#endif
}

}  // namespace gpu
}  // namespace nla
