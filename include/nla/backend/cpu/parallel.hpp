#pragma once
// OpenMP loops with a grain size: below it the loop stays on the calling
// thread, because waking a team costs microseconds and most of our loops at
// the tiny configuration are shorter than that. Static schedules keep every
// reduction in a fixed order, so results are bit-identical run to run for a
// given thread count.

#include <algorithm>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "nla/core/shape.hpp"

namespace nla {
namespace cpu {

// f(i) for i in [0, n); `work` is a rough cost of one i in flops.
template <class F>
void parallel_for(index_t n, index_t work, F&& f) {
  const bool parallel = n > 1 && n * work >= 32768;
  (void)parallel;
#pragma omp parallel for schedule(static) if (parallel)
  for (index_t i = 0; i < n; ++i) f(i);
}

// f(begin, end) over contiguous chunks of [0, n), one per thread.
template <class F>
void parallel_chunks(index_t n, F&& f) {
  const bool parallel = n >= 32768;
  (void)parallel;
#pragma omp parallel if (parallel)
  {
#if defined(_OPENMP)
    const index_t threads = omp_get_num_threads(), id = omp_get_thread_num();
#else
    const index_t threads = 1, id = 0;
#endif
    // Chunks are multiples of 16 elements so vector loops stay aligned.
    const index_t chunk = ((n + threads - 1) / threads + 15) / 16 * 16;
    const index_t begin = std::min(n, id * chunk), end = std::min(n, begin + chunk);
    if (begin < end) f(begin, end);
  }
}

}  // namespace cpu
}  // namespace nla
