#pragma once
// Element-wise ops: fill, copy, residual add (y += x; its backward passes the
// gradient through unchanged to both sides), scale.

#include "nla/core/tensor.hpp"

namespace nla {

template <class T, class B>
void fill(B& backend, TensorView<T, B> x, T value) {
  fill(backend, x.data(), x.size(), value);
}

template <class T, class B>
void zero(B& backend, TensorView<T, B> x) {
  fill(backend, x.data(), x.size(), T(0));
}

template <class T, class B>
void copy(B& backend, TensorView<T, B> dst, ConstView<T, B> src) {
  NLA_CHECK(dst.size() == src.size(), "copy", "dst has shape {} but src has shape {}", dst.shape(),
            src.shape());
  copy(backend, dst.data(), src.data(), src.size());
}

// y += alpha * x (the residual connection with alpha = 1).
template <class T, class B>
void add(B& backend, TensorView<T, B> y, ConstView<T, B> x, T alpha = T(1)) {
  NLA_CHECK(y.size() == x.size(), "add", "y has shape {} but x has shape {}", y.shape(), x.shape());
  axpy(backend, y.data(), x.data(), x.size(), alpha);
}

}  // namespace nla
