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

// Whether a loop of `work` flops should wake a team. Never from inside a
// parallel region (nested teams are serialised anyway, and even a team of one
// costs a microsecond to enter, which the thousands of per-head products of a
// decode step would pay), nor with one thread.
inline bool worth_a_team(index_t work) {
#if defined(_OPENMP)
  return work >= 32768 && omp_get_level() == 0 && omp_get_max_threads() > 1;
#else
  (void)work;
  return false;
#endif
}

// f(i) for i in [0, n); `work` is a rough cost of one i in flops.
template <class F>
void parallel_for(index_t n, index_t work, F&& f) {
  if (n < 2 || !worth_a_team(n * work)) {
    for (index_t i = 0; i < n; ++i) f(i);
    return;
  }
#pragma omp parallel for schedule(static)
  for (index_t i = 0; i < n; ++i) f(i);
}

// f(begin, end) over contiguous chunks of [0, n), one per thread.
template <class F>
void parallel_chunks(index_t n, F&& f) {
  if (!worth_a_team(n)) {
    if (n > 0) f(0, n);
    return;
  }
#pragma omp parallel
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
