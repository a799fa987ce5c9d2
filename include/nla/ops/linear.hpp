#pragma once
// Linear layer as in PyTorch: y = x W^T + b.
//   x: [n, in] (any leading axes, read as rows), W: [out, in], b: [out] or empty
// Backward (parameter gradients accumulate, the input gradient is overwritten):
//   dx = dy W,  dW += dy^T x,  db += sum_rows dy
// Without a bias, the rows of y and dy may be padded: [n, ld] with ld >= out,
// of which the first out columns are the layer's (the vocabulary projection
// pads its logits so that every row starts at an aligned address).

#include "nla/core/tensor.hpp"

namespace nla {

namespace detail {
// Checks x [n, in], weight [out, in], bias [out] or empty and the output
// y [n, >= out] (exactly out with a bias, or when `padded` is false), named
// y_name in the error; returns n.
template <class T, class B>
index_t check_linear(const char* op, const char* y_name, ConstView<T, B> y, ConstView<T, B> x,
                     ConstView<T, B> weight, ConstView<T, B> bias, bool padded) {
  check_rank(weight, 2, op, "weight");
  const index_t n = x.rows(), in = weight.shape()[1], out = weight.shape()[0];
  NLA_CHECK(x.cols() == in, op, "x has shape {} but weight {} expects {} input features", x.shape(),
            weight.shape(), in);
  const bool may_pad = padded && bias.empty();
  NLA_CHECK(y.rows() == n && (y.cols() == out || (y.cols() > out && may_pad)), op,
            "{} has shape {}, expected {} rows of {}{}", y_name, y.shape(), n, out,
            may_pad ? " or more" : "");
  NLA_CHECK(bias.empty() || bias.shape() == Shape{out}, op, "bias has shape {}, expected [{}]",
            bias.shape(), out);
  return n;
}
}  // namespace detail

template <class T, class B>
void linear_forward(B& backend, TensorView<T, B> y, ConstView<T, B> x, ConstView<T, B> weight,
                    ConstView<T, B> bias) {
  const index_t n = detail::check_linear<T, B>("linear_forward", "y", y, x, weight, bias, true);
  const index_t in = weight.shape()[1], out = weight.shape()[0];
  if (bias.empty())
    gemm(backend, false, true, n, out, in, T(1), x.data(), in, weight.data(), in, T(0), y.data(),
         y.cols());
  else
    gemm_bias(backend, false, true, n, out, in, x.data(), in, weight.data(), in, bias.data(),
              y.data());
}

// A linear layer followed by GELU, as one kernel where the backend fuses it:
//   h = x W^T + b,  y = gelu(h);  h and y: [n, out]
// h, the GELU's input, is what the backward needs (linear_backward's
// gelu_input, on the layer after this one).
template <class T, class B>
void linear_gelu_forward(B& backend, TensorView<T, B> y, TensorView<T, B> h, ConstView<T, B> x,
                         ConstView<T, B> weight, ConstView<T, B> bias) {
  const char* op = "linear_gelu_forward";
  const index_t n = detail::check_linear<T, B>(op, "h", h, x, weight, bias, false);
  check_shape(y, h.shape(), op, "y");
  NLA_CHECK(!overlaps(y, h), op, "y and h share memory: both are written");
  const index_t in = weight.shape()[1], out = weight.shape()[0];
  gemm_bias_gelu(backend, false, true, n, out, in, x.data(), in, weight.data(), in,
                 bias.empty() ? nullptr : bias.data(), h.data(), y.data());
}

// dx may be empty (no input gradient wanted), as may dbias. With
// gelu_input (the h of linear_gelu_forward that produced x), dx is the
// gradient at h instead: dx = (dy W) .* gelu'(h), the GELU's backward fused.
template <class T, class B>
void linear_backward(B& backend, TensorView<T, B> dx, TensorView<T, B> dweight,
                     TensorView<T, B> dbias, ConstView<T, B> dy, ConstView<T, B> x,
                     ConstView<T, B> weight, ConstView<T, B> gelu_input = {}) {
  const char* op = "linear_backward";
  const index_t n = x.rows(), in = weight.shape()[1], out = weight.shape()[0], ld = dy.cols();
  NLA_CHECK(dy.rows() == n && (ld == out || (ld > out && dbias.empty())), op,
            "dy has shape {}, expected {} rows of {}{}", dy.shape(), n, out,
            dbias.empty() ? " or more" : "");
  check_shape(dweight, weight.shape(), op, "dweight");
  NLA_CHECK(dx.empty() || (dx.rows() == n && dx.cols() == in), op,
            "dx has shape {}, expected {} rows of {}", dx.shape(), n, in);
  if (!gelu_input.empty()) {
    NLA_CHECK(!dx.empty(), op, "gelu_input is given but dx is empty");
    check_shape(gelu_input, dx.shape(), op, "gelu_input");
    NLA_CHECK(!overlaps(dx, gelu_input), op,
              "dx and gelu_input share memory: dx is written while gelu_input is read");
    gemm_gelu_grad(backend, false, false, n, in, out, dy.data(), ld, weight.data(), in,
                   gelu_input.data(), dx.data());
  } else if (!dx.empty()) {
    gemm(backend, false, false, n, in, out, T(1), dy.data(), ld, weight.data(), in, T(0), dx.data(),
         in);
  }
  gemm(backend, true, false, out, in, n, T(1), dy.data(), ld, x.data(), in, T(1), dweight.data(),
       in);
  if (!dbias.empty()) {
    check_shape(dbias, Shape{out}, op, "dbias");
    sum_rows_accumulate(backend, dbias.data(), dy.data(), n, out);
  }
}

}  // namespace nla
