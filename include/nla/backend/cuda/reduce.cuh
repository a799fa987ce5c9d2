#pragma once
// Deterministic column reductions for the parameter gradients of biases and
// norms: out[c] = sum_r term(r, c) over a [rows, cols] matrix.
//
// One index per column walking every row leaves a GPU nearly idle (cols
// threads, each a long chain of dependent adds). Instead the rows are cut into
// chunks of kRowChunk: one index per (chunk, column) sums its chunk, adjacent
// indices reading adjacent columns so a warp's loads coalesce; then one index
// per column adds the chunk sums in chunk order. The order is fixed, so
// results repeat bit for bit, without atomics.

#include "nla/backend/cuda/cuda.cuh"
#include "nla/backend/cuda/math.cuh"

namespace nla {
namespace gpu {

constexpr index_t kRowChunk = 64;

// finish(c, total) receives each column's sum, accumulated in A.
template <class A, class Term, class Finish>
void column_sums(Cuda& backend, index_t rows, index_t cols, Term term, Finish finish) {
  if (cols <= 0) return;
  const index_t chunks = math::max(index_t(1), (rows + kRowChunk - 1) / kRowChunk);
  DeviceScratch<A> partial_buffer(backend, chunks * cols);
  A* partial = partial_buffer.data();
  for_each_index(backend, chunks * cols, [=] NLA_HOST_DEVICE(index_t e) {
    const index_t chunk = e / cols, c = e % cols;
    const index_t end = math::min(rows, (chunk + 1) * kRowChunk);
    A acc = 0;
    for (index_t r = chunk * kRowChunk; r < end; ++r) acc += term(r, c);
    partial[e] = acc;
  });
  for_each_index(backend, cols, [=] NLA_HOST_DEVICE(index_t c) {
    A acc = 0;
    for (index_t k = 0; k < chunks; ++k) acc += partial[k * cols + c];
    finish(c, acc);
  });
}

}  // namespace gpu
}  // namespace nla
