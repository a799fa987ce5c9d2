#pragma once
// LayerNorm and RMSNorm over the last axis (formulas beside the CPU kernels in
// backend/cpu/norm.hpp). Statistics are kept in the accumulation type for the
// backward pass. The input gradient accumulates into dx (the residual stream's
// gradient); parameter gradients accumulate.

#include "nla/core/scalar.hpp"
#include "nla/core/tensor.hpp"

namespace nla {

// y, x: [rows, d]; weight, bias: [d]; mean, rstd: [rows]
template <class T, class B>
void layernorm_forward(B& backend, TensorView<T, B> y, TensorView<accum_t<T>, B> mean,
                       TensorView<accum_t<T>, B> rstd, ConstView<T, B> x, ConstView<T, B> weight,
                       ConstView<T, B> bias, double eps) {
  const char* op = "layernorm_forward";
  const index_t rows = x.rows(), d = x.cols();
  check_matrix(y, rows, d, op, "y");
  check_shape(weight, Shape{d}, op, "weight");
  check_shape(bias, Shape{d}, op, "bias");
  NLA_CHECK(mean.size() >= rows && rstd.size() >= rows, op, "mean/rstd hold {}/{} rows, need {}",
            mean.size(), rstd.size(), rows);
  layernorm_forward(backend, y.data(), mean.data(), rstd.data(), x.data(), weight.data(),
                    bias.data(), rows, d, eps);
}

template <class T, class B>
void layernorm_backward(B& backend, TensorView<T, B> dx, TensorView<T, B> dweight,
                        TensorView<T, B> dbias, ConstView<T, B> dy, ConstView<T, B> x,
                        ConstView<T, B> weight, ConstView<accum_t<T>, B> mean,
                        ConstView<accum_t<T>, B> rstd) {
  const char* op = "layernorm_backward";
  const index_t rows = x.rows(), d = x.cols();
  check_matrix(dx, rows, d, op, "dx");
  check_matrix(dy, rows, d, op, "dy");
  check_shape(dweight, Shape{d}, op, "dweight");
  check_shape(dbias, Shape{d}, op, "dbias");
  layernorm_backward(backend, dx.data(), dweight.data(), dbias.data(), dy.data(), x.data(),
                     weight.data(), mean.data(), rstd.data(), rows, d);
}

template <class T, class B>
void rmsnorm_forward(B& backend, TensorView<T, B> y, TensorView<accum_t<T>, B> rstd,
                     ConstView<T, B> x, ConstView<T, B> weight, double eps) {
  const char* op = "rmsnorm_forward";
  const index_t rows = x.rows(), d = x.cols();
  check_matrix(y, rows, d, op, "y");
  check_shape(weight, Shape{d}, op, "weight");
  NLA_CHECK(rstd.size() >= rows, op, "rstd holds {} rows, need {}", rstd.size(), rows);
  rmsnorm_forward(backend, y.data(), rstd.data(), x.data(), weight.data(), rows, d, eps);
}

template <class T, class B>
void rmsnorm_backward(B& backend, TensorView<T, B> dx, TensorView<T, B> dweight, ConstView<T, B> dy,
                      ConstView<T, B> x, ConstView<T, B> weight, ConstView<accum_t<T>, B> rstd) {
  const char* op = "rmsnorm_backward";
  const index_t rows = x.rows(), d = x.cols();
  check_matrix(dx, rows, d, op, "dx");
  check_matrix(dy, rows, d, op, "dy");
  check_shape(dweight, Shape{d}, op, "dweight");
  rmsnorm_backward(backend, dx.data(), dweight.data(), dy.data(), x.data(), weight.data(),
                   rstd.data(), rows, d);
}

}  // namespace nla
