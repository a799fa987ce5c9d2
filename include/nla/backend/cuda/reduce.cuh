#pragma once
// Deterministic column reductions for the parameter gradients of biases and
// norms: out[c] = sum_r term(r, c) over a [rows, cols] matrix.
//
// A GPU hides memory latency only with many independent sums in flight; one
// thread per column walking every row gives it cols threads (768 for GPT-2),
// each a chain of `rows` loads. So the sum runs in two passes:
//   1. the rows are cut into chunks of `chunk_rows`, and one index per
//      (chunk, column) sums its chunk into partial[chunk, c]. Adjacent indices
//      read adjacent columns, so a warp's loads coalesce. The default chunk
//      (64 rows, halved down to 8 while fewer than kColumnSumIndices indices
//      would run) keeps a GPU's SMs full from a decode step to a whole batch.
//   2. a warp per column adds its chunks' partial sums: lane l those of chunks
//      l, l + 32, ..., then the warp's butterfly (rows.cuh). On Thrust's host
//      systems one lane adds them in chunk order.
// The order depends only on (rows, cols, chunk_rows) and the device system,
// so results repeat bit for bit, without atomics.

#include "nla/backend/cuda/cuda.cuh"
#include "nla/backend/cuda/math.cuh"
#include "nla/backend/cuda/rows.cuh"

namespace nla {
namespace gpu {

// Two column sums taken in one pass, for terms that share their loads (a
// LayerNorm's weight and bias gradients both read dy).
template <class A>
struct SumPair {
  A first = 0, second = 0;

  NLA_HOST_DEVICE SumPair& operator+=(const SumPair& other) {
    first += other.first;
    second += other.second;
    return *this;
  }
};

template <class A>
NLA_HOST_DEVICE A sum_over_lanes(RowLanes lanes, A x) {
  return lanes.sum(x);
}
template <class A>
NLA_HOST_DEVICE SumPair<A> sum_over_lanes(RowLanes lanes, SumPair<A> x) {
  return SumPair<A>{lanes.sum(x.first), lanes.sum(x.second)};
}

// About 4k warps of pass 1: several per SM slot of an H100 or H200.
constexpr index_t kColumnSumIndices = index_t(1) << 17;

inline index_t default_column_chunk_rows(index_t rows, index_t cols) {
  index_t chunk = 64;
  while (chunk > 8 && ((rows + chunk - 1) / chunk) * cols < kColumnSumIndices) chunk /= 2;
  return chunk;
}

// finish(c, total) receives each column's sum, accumulated in S: a scalar or
// a SumPair.
template <class S, class Term, class Finish>
void column_sums(Cuda& backend, index_t rows, index_t cols, Term term, Finish finish,
                 index_t chunk_rows) {
  NLA_CHECK(chunk_rows >= 1, "column_sums", "chunk_rows is {}, must be at least 1", chunk_rows);
  if (cols <= 0) return;
  const index_t chunks = math::max(index_t(1), (rows + chunk_rows - 1) / chunk_rows);
  DeviceScratch<S> partial_buffer(backend, chunks * cols);
  S* partial = partial_buffer.data();
  for_each_index(backend, chunks * cols, [=] NLA_HOST_DEVICE(index_t e) {
    const index_t chunk = e / cols, c = e % cols;
    const index_t end = math::min(rows, (chunk + 1) * chunk_rows);
    S acc{};
    for (index_t r = chunk * chunk_rows; r < end; ++r) acc += term(r, c);
    partial[e] = acc;
  });
  for_each_row(backend, cols, [=] NLA_HOST_DEVICE(index_t c, RowLanes lanes) {
    S acc{};
    for (index_t k = lanes.lane; k < chunks; k += lanes.count) acc += partial[k * cols + c];
    acc = sum_over_lanes(lanes, acc);
    if (lanes.lane == 0) finish(c, acc);
  });
}

template <class S, class Term, class Finish>
void column_sums(Cuda& backend, index_t rows, index_t cols, Term term, Finish finish) {
  column_sums<S>(backend, rows, cols, term, finish, default_column_chunk_rows(rows, cols));
}

}  // namespace gpu
}  // namespace nla
