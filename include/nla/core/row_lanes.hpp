#pragma once
// A row worked by cooperating lanes. A kernel that reduces along a row is
// written once as a function of (row, lanes): lane `lanes.lane` of
// `lanes.count` takes its share of the columns, and the members below combine
// one value per lane into a result every lane receives.
//   - On a GPU a warp works a row: 32 lanes, register shuffles, so the loads
//     of a row coalesce (backend/cuda/rows.cuh launches it).
//   - On the host one lane works the row alone, RowLanes{0, 1}, and every
//     member is the identity; the Cpu backend and Thrust's host systems use
//     that form.
// The butterflies and the scan run in a fixed order, so results repeat bit
// for bit run to run.

#include "nla/core/config.hpp"  // NLA_HOST_DEVICE

namespace nla {

struct RowLanes {
  static constexpr int kWarp = 32;

  int lane, count;

  template <class A>
  NLA_HOST_DEVICE A sum(A x) const {
    return butterfly(x, [](A a, A b) { return a + b; });
  }
  template <class A>
  NLA_HOST_DEVICE A max(A x) const {
    return butterfly(x, [](A a, A b) { return a < b ? b : a; });
  }
  template <class A>
  NLA_HOST_DEVICE A min(A x) const {
    return butterfly(x, [](A a, A b) { return b < a ? b : a; });
  }
  // Sum of x over the lanes before this one (0 on lane 0): lane l's offset
  // when the lanes own consecutive chunks of a row.
  template <class A>
  NLA_HOST_DEVICE A exclusive_scan(A x) const {
#if defined(__CUDA_ARCH__)
    // Hillis-Steele inclusive scan, then a shift by one lane.
#pragma unroll
    for (int offset = 1; offset < kWarp; offset *= 2) {
      const A y = __shfl_up_sync(0xffffffffu, x, offset);
      if (lane >= offset) x += y;
    }
    const A before = __shfl_up_sync(0xffffffffu, x, 1);
    return lane == 0 ? A(0) : before;
#else
    (void)x;
    return A(0);
#endif
  }

 private:
  // x combined over the warp by a butterfly: every lane ends with the same
  // value, reached in the same order.
  template <class A, class Combine>
  NLA_HOST_DEVICE A butterfly(A x, Combine combine) const {
#if defined(__CUDA_ARCH__)
#pragma unroll
    for (int offset = kWarp / 2; offset > 0; offset /= 2)
      x = combine(x, __shfl_xor_sync(0xffffffffu, x, offset));
#else
    (void)combine;
#endif
    return x;
  }
};

}  // namespace nla
