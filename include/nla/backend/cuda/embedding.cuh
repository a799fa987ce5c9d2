#pragma once
// Embedding lookup and its scatter-add gradient (the contract of
// backend/cpu/embedding.hpp). The backward takes one index per column and
// walks the ids in order: rows sharing an id never race, and the sum order
// is fixed, without atomics.

#include <cstdint>

#include "nla/backend/cuda/cuda.cuh"

namespace nla {
namespace gpu {

template <class T>
void embedding_forward(Cuda& backend, T* y, const std::int32_t* ids, const T* table, index_t n,
                       index_t d, bool accumulate) {
  for_each_index(backend, n * d, [=] NLA_HOST_DEVICE(index_t e) {
    const index_t i = e / d, c = e % d;
    const T value = table[static_cast<index_t>(ids[i]) * d + c];
    y[e] = accumulate ? T(y[e] + value) : value;
  });
}

template <class T>
void embedding_backward(Cuda& backend, T* dtable, const std::int32_t* ids, const T* dy, index_t n,
                        index_t d) {
  for_each_index(backend, d, [=] NLA_HOST_DEVICE(index_t c) {
    for (index_t i = 0; i < n; ++i) dtable[static_cast<index_t>(ids[i]) * d + c] += dy[i * d + c];
  });
}

}  // namespace gpu
}  // namespace nla
