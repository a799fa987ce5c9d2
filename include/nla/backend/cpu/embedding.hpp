#pragma once
// Embedding lookup and its scatter-add gradient.
//   forward:  y[i, :] (=|+=) table[ids[i], :]          ids: [n], table: [rows, d]
//   backward: dtable[ids[i], :] += dy[i, :]
// The backward is split over column blocks, not over i, so two rows with the
// same id never race and the sum order is fixed.

#include <algorithm>
#include <cstdint>

#include "nla/backend/cpu/cpu.hpp"
#include "nla/backend/cpu/parallel.hpp"

namespace nla {
namespace cpu {

template <class T>
void embedding_forward(Cpu&, T* y, const std::int32_t* ids, const T* table, index_t n, index_t d,
                       bool accumulate) {
  parallel_for(n, d, [&](index_t i) {
    const T* src = table + static_cast<index_t>(ids[i]) * d;
    T* dst = y + i * d;
    if (accumulate) {
      for (index_t c = 0; c < d; ++c) dst[c] += src[c];
    } else {
      std::copy(src, src + d, dst);
    }
  });
}

template <class T>
void embedding_backward(Cpu&, T* dtable, const std::int32_t* ids, const T* dy, index_t n,
                        index_t d) {
  constexpr index_t kBlock = 32;
  parallel_for((d + kBlock - 1) / kBlock, n * kBlock, [&](index_t blk) {
    const index_t c0 = blk * kBlock, c1 = std::min(d, c0 + kBlock);
    for (index_t i = 0; i < n; ++i) {
      T* dst = dtable + static_cast<index_t>(ids[i]) * d;
      const T* src = dy + i * d;
      for (index_t c = c0; c < c1; ++c) dst[c] += src[c];
    }
  });
}

}  // namespace cpu
}  // namespace nla
