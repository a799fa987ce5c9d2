#pragma once
// Embedding lookup (token and learned positional embeddings are the same op on
// different id arrays):
//   forward:  y[i] (=|+=) table[ids[i]]     ids: [n] int32, table: [rows, d], y: [n, d]
//   backward: dtable[ids[i]] += dy[i]       (scatter-add)
// Ids are checked against the table before any memory is touched.

#include <cstdint>

#include "nla/core/host.hpp"

namespace nla {

// An out-of-range id would read or write outside the table, so every id is
// checked on the host (a copy of n ints on a device backend).
template <class B>
void check_ids(B& backend, ConstView<std::int32_t, B> ids, index_t rows, const char* op,
               const char* arg) {
  const auto h = to_host(backend, ids);
  for (index_t i = 0; i < h.size(); ++i)
    NLA_CHECK(h[i] >= 0 && h[i] < rows, op, "{}[{}] = {} is outside [0, {})", arg, i, h[i], rows);
}

template <class T, class B>
void embedding_forward(B& backend, TensorView<T, B> y, ConstView<std::int32_t, B> ids,
                       ConstView<T, B> table, bool accumulate = false) {
  const char* op = "embedding_forward";
  check_rank(table, 2, op, "table");
  NLA_CHECK(y.rows() == ids.size() && y.cols() == table.cols(), op,
            "y has shape {}, expected {} rows of {}", y.shape(), ids.size(), table.cols());
  check_ids(backend, ids, table.rows(), op, "ids");
  embedding_forward(backend, y.data(), ids.data(), table.data(), ids.size(), table.cols(),
                    accumulate);
}

template <class T, class B>
void embedding_backward(B& backend, TensorView<T, B> dtable, ConstView<std::int32_t, B> ids,
                        ConstView<T, B> dy) {
  const char* op = "embedding_backward";
  NLA_CHECK(dy.rows() == ids.size() && dy.cols() == dtable.cols(), op,
            "dy has shape {}, expected {} rows of {}", dy.shape(), ids.size(), dtable.cols());
  check_ids(backend, ids, dtable.rows(), op, "ids");
  embedding_backward(backend, dtable.data(), ids.data(), dy.data(), ids.size(), dtable.cols());
}

}  // namespace nla
