#pragma once
// Rotary position embedding applied in place to the query and key heads at
// the start of each row of a fused QKV tensor (formula beside the CPU kernel
// in backend/cpu/rope.hpp). The backward pass is the inverse rotation applied
// to the gradient, also in place.

#include <cmath>
#include <cstdint>

#include "nla/core/host.hpp"
#include "nla/core/scalar.hpp"

namespace nla {

// cos/sin of pos * theta^(-2i/h) for every position below max_positions:
// [max_positions, h/2, 2], computed in double, stored in the accumulation type.
template <class T, class B>
class RopeTable {
 public:
  RopeTable() = default;
  RopeTable(B& backend, index_t max_positions, index_t head_dim, double theta)
      : table_(Shape{max_positions, head_dim / 2, 2}), head_dim_(head_dim) {
    NLA_CHECK(head_dim % 2 == 0, "RopeTable", "head_dim must be even, got {}", head_dim);
    std::vector<accum_t<T>> host(static_cast<std::size_t>(table_.size()));
    const index_t half = head_dim / 2;
    for (index_t p = 0; p < max_positions; ++p)
      for (index_t i = 0; i < half; ++i) {
        const double angle = p * std::pow(theta, -2.0 * i / head_dim);
        host[(p * half + i) * 2] = accum_t<T>(std::cos(angle));
        host[(p * half + i) * 2 + 1] = accum_t<T>(std::sin(angle));
      }
    from_host(backend, table_.view(), host.data());
  }
  index_t max_positions() const { return table_.shape()[0]; }
  index_t head_dim() const { return head_dim_; }
  const accum_t<T>* data() const { return table_.data(); }

 private:
  Tensor<accum_t<T>, B> table_;
  index_t head_dim_ = 0;
};

// x: [n, row_stride]; rotates `heads` heads of head_dim at the start of each
// row; positions: [n]
template <class T, class B>
void rope_forward(B& backend, TensorView<T, B> x, index_t heads,
                  ConstView<std::int32_t, B> positions, const RopeTable<T, B>& table,
                  bool inverse = false) {
  const char* op = inverse ? "rope_backward" : "rope_forward";
  const index_t n = x.rows(), hd = table.head_dim();
  NLA_CHECK(heads * hd <= x.cols(), op, "{} heads of {} do not fit rows of {}", heads, hd,
            x.cols());
  NLA_CHECK(positions.size() == n, op, "positions has {} entries for {} rows", positions.size(), n);
  const auto pos = to_host(backend, positions);
  for (index_t i = 0; i < n; ++i)
    NLA_CHECK(pos[i] >= 0 && pos[i] < table.max_positions(), op,
              "position {} at row {} is outside [0, {})", pos[i], i, table.max_positions());
  rope_rotate(backend, x.data(), n, x.cols(), heads, hd, positions.data(), table.data(), inverse);
}

// dx: gradient w.r.t. the rotated heads, rotated back in place.
template <class T, class B>
void rope_backward(B& backend, TensorView<T, B> dx, index_t heads,
                   ConstView<std::int32_t, B> positions, const RopeTable<T, B>& table) {
  rope_forward(backend, dx, heads, positions, table, true);
}

}  // namespace nla
