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

template <class T, class B>
void linear_forward(B& backend, TensorView<T, B> y, ConstView<T, B> x, ConstView<T, B> weight,
                    ConstView<T, B> bias) {
  const char* op = "linear_forward";
  check_rank(weight, 2, op, "weight");
  const index_t n = x.rows(), in = weight.shape()[1], out = weight.shape()[0];
  NLA_CHECK(x.cols() == in, op, "x has shape {} but weight {} expects {} input features", x.shape(),
            weight.shape(), in);
  const index_t ld = y.cols();
  NLA_CHECK(y.rows() == n && (ld == out || (ld > out && bias.empty())), op,
            "y has shape {}, expected {} rows of {}{}", y.shape(), n, out,
            bias.empty() ? " or more" : "");
  NLA_CHECK(bias.empty() || bias.shape() == Shape{out}, op, "bias has shape {}, expected [{}]",
            bias.shape(), out);
  if (bias.empty())
    gemm(backend, false, true, n, out, in, T(1), x.data(), in, weight.data(), in, T(0), y.data(),
         ld);
  else
    gemm_bias(backend, false, true, n, out, in, x.data(), in, weight.data(), in, bias.data(),
              y.data());
}

// dx may be empty (no input gradient wanted), as may dbias.
template <class T, class B>
void linear_backward(B& backend, TensorView<T, B> dx, TensorView<T, B> dweight,
                     TensorView<T, B> dbias, ConstView<T, B> dy, ConstView<T, B> x,
                     ConstView<T, B> weight) {
  const char* op = "linear_backward";
  const index_t n = x.rows(), in = weight.shape()[1], out = weight.shape()[0], ld = dy.cols();
  NLA_CHECK(dy.rows() == n && (ld == out || (ld > out && dbias.empty())), op,
            "dy has shape {}, expected {} rows of {}{}", dy.shape(), n, out,
            dbias.empty() ? " or more" : "");
  check_shape(dweight, weight.shape(), op, "dweight");
  NLA_CHECK(dx.empty() || (dx.rows() == n && dx.cols() == in), op,
            "dx has shape {}, expected {} rows of {}", dx.shape(), n, in);
  if (!dx.empty())
    gemm(backend, false, false, n, in, out, T(1), dy.data(), ld, weight.data(), in, T(0), dx.data(),
         in);
  gemm(backend, true, false, out, in, n, T(1), dy.data(), ld, x.data(), in, T(1), dweight.data(),
       in);
  if (!dbias.empty()) {
    check_shape(dbias, Shape{out}, op, "dbias");
    sum_rows_accumulate(backend, dbias.data(), dy.data(), n, out);
  }
}

}  // namespace nla
