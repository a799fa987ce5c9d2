#pragma once
// Activations: GELU (tanh approximation), SiLU, and SwiGLU over a fused
// [rows, 2f] gate|up input. Formulas are beside the kernels in
// backend/cpu/elementwise.hpp. Input gradients are overwritten; dx may alias dy.

#include "nla/core/tensor.hpp"

namespace nla {

template <class T, class B>
void gelu_forward(B& backend, TensorView<T, B> y, ConstView<T, B> x) {
  check_shape(y, x.shape(), "gelu_forward", "y");
  gelu_forward(backend, y.data(), x.data(), x.size());
}

template <class T, class B>
void gelu_backward(B& backend, TensorView<T, B> dx, ConstView<T, B> dy, ConstView<T, B> x) {
  check_shape(dx, x.shape(), "gelu_backward", "dx");
  check_shape(dy, x.shape(), "gelu_backward", "dy");
  gelu_backward(backend, dx.data(), dy.data(), x.data(), x.size());
}

template <class T, class B>
void silu_forward(B& backend, TensorView<T, B> y, ConstView<T, B> x) {
  check_shape(y, x.shape(), "silu_forward", "y");
  silu_forward(backend, y.data(), x.data(), x.size());
}

template <class T, class B>
void silu_backward(B& backend, TensorView<T, B> dx, ConstView<T, B> dy, ConstView<T, B> x) {
  check_shape(dx, x.shape(), "silu_backward", "dx");
  check_shape(dy, x.shape(), "silu_backward", "dy");
  silu_backward(backend, dx.data(), dy.data(), x.data(), x.size());
}

// y: [rows, f], gate_up: [rows, 2f]
template <class T, class B>
void swiglu_forward(B& backend, TensorView<T, B> y, ConstView<T, B> gate_up) {
  const index_t rows = gate_up.rows(), f = gate_up.cols() / 2;
  NLA_CHECK(gate_up.cols() % 2 == 0, "swiglu_forward", "gate_up has an odd last axis: {}",
            gate_up.shape());
  NLA_CHECK(y.rows() == rows && y.cols() == f, "swiglu_forward",
            "y has shape {}, expected {} rows of {}", y.shape(), rows, f);
  swiglu_forward(backend, y.data(), gate_up.data(), rows, f);
}

template <class T, class B>
void swiglu_backward(B& backend, TensorView<T, B> dgate_up, ConstView<T, B> dy,
                     ConstView<T, B> gate_up) {
  const index_t rows = gate_up.rows(), f = gate_up.cols() / 2;
  check_shape(dgate_up, gate_up.shape(), "swiglu_backward", "dgate_up");
  NLA_CHECK(dy.rows() == rows && dy.cols() == f, "swiglu_backward",
            "dy has shape {}, expected {} rows of {}", dy.shape(), rows, f);
  swiglu_backward(backend, dgate_up.data(), dy.data(), gate_up.data(), rows, f);
}

}  // namespace nla
