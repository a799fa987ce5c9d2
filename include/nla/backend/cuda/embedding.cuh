#pragma once
// Embedding lookup and its scatter-add gradient (the contract of
// backend/cpu/embedding.hpp). The backward sorts the rows by id (stably, so
// equal ids keep their order), then takes one index per (run of equal ids,
// column): each sums its run's rows in order and adds the total to its table
// row. Rows sharing an id never race, and the order is fixed, without atomics.

#include <cstdint>

#include <thrust/copy.h>
#include <thrust/sequence.h>
#include <thrust/sort.h>

#include "nla/backend/cuda/cuda.cuh"
#include "nla/core/scalar.hpp"

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
  using A = accum_t<T>;
  if (n <= 0) return;
  DeviceScratch<std::int32_t> key_buffer(backend, n), row_buffer(backend, n);
  std::int32_t *keys = key_buffer.data(), *rows = row_buffer.data();
  thrust::copy_n(backend.policy(), ids, n, keys);
  thrust::sequence(backend.policy(), rows, rows + n);
  thrust::stable_sort_by_key(backend.policy(), keys, keys + n, rows);
  for_each_index(backend, n * d, [=] NLA_HOST_DEVICE(index_t e) {
    const index_t i = e / d, c = e % d;
    if (i > 0 && keys[i - 1] == keys[i]) return;  // not the first row of its run
    A acc = 0;
    for (index_t j = i; j < n && keys[j] == keys[i]; ++j) acc += A(dy[index_t(rows[j]) * d + c]);
    T& slot = dtable[index_t(keys[i]) * d + c];
    slot = T(A(slot) + acc);
  });
}

}  // namespace gpu
}  // namespace nla
