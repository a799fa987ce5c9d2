#pragma once
// Element-wise kernels (the contract of backend/cpu/elementwise.hpp) as
// Thrust loops over indices. Formulas for the activations and their
// derivatives are in the CPU header.

#include <cstdint>

#include <thrust/copy.h>
#include <thrust/fill.h>

#include "nla/backend/cuda/cuda.cuh"
#include "nla/backend/cuda/math.cuh"
#include "nla/backend/cuda/reduce.cuh"
#include "nla/core/scalar.hpp"

namespace nla {
namespace gpu {

template <class T>
void fill(Cuda& backend, T* x, index_t n, T value) {
  if (n > 0) thrust::fill_n(backend.policy(), x, n, value);
}

template <class T>
void copy(Cuda& backend, T* dst, const T* src, index_t n) {
  if (n > 0) thrust::copy_n(backend.policy(), src, n, dst);
}

template <class D, class S>
void convert(Cuda& backend, D* dst, const S* src, index_t n) {
  for_each_index(backend, n, [=] NLA_HOST_DEVICE(index_t i) { dst[i] = D(src[i]); });
}

template <class T>
void copy_rows(Cuda& backend, T* dst, index_t dst_stride, const T* src, index_t src_stride,
               index_t rows, index_t cols) {
  for_each_index(backend, rows * cols, [=] NLA_HOST_DEVICE(index_t e) {
    const index_t r = e / cols, c = e % cols;
    dst[r * dst_stride + c] = src[r * src_stride + c];
  });
}

template <class T>
void axpy(Cuda& backend, T* y, const T* x, index_t n, T alpha) {
  for_each_index(backend, n, [=] NLA_HOST_DEVICE(index_t i) { y[i] += alpha * x[i]; });
}

template <class T>
void scale(Cuda& backend, T* x, index_t n, T alpha) {
  for_each_index(backend, n, [=] NLA_HOST_DEVICE(index_t i) { x[i] *= alpha; });
}

namespace detail {
// tanh argument of the GELU approximation: sqrt(2/pi) (x + 0.044715 x^3)
template <class A>
NLA_HOST_DEVICE A gelu_inner(A x) {
  return A(0.7978845608028654) * (x + A(0.044715) * x * x * x);
}
template <class A>
NLA_HOST_DEVICE A sigmoid(A x) {
  return A(1) / (A(1) + math::exp(-x));
}
}  // namespace detail

template <class T>
void gelu_forward(Cuda& backend, T* y, const T* x, index_t n) {
  using A = accum_t<T>;
  for_each_index(backend, n, [=] NLA_HOST_DEVICE(index_t i) {
    const A v = x[i];
    y[i] = T(A(0.5) * v * (A(1) + math::tanh(detail::gelu_inner(v))));
  });
}

template <class T>
void gelu_backward(Cuda& backend, T* dx, const T* dy, const T* x, index_t n) {
  using A = accum_t<T>;
  for_each_index(backend, n, [=] NLA_HOST_DEVICE(index_t i) {
    const A v = x[i], t = math::tanh(detail::gelu_inner(v));
    const A grad = A(0.5) * (A(1) + t) + A(0.5) * v * (A(1) - t * t) * A(0.7978845608028654) *
                                             (A(1) + A(3 * 0.044715) * v * v);
    dx[i] = T(A(dy[i]) * grad);
  });
}

template <class T>
void silu_forward(Cuda& backend, T* y, const T* x, index_t n) {
  using A = accum_t<T>;
  for_each_index(backend, n, [=] NLA_HOST_DEVICE(index_t i) {
    const A v = x[i];
    y[i] = T(v * detail::sigmoid(v));
  });
}

template <class T>
void silu_backward(Cuda& backend, T* dx, const T* dy, const T* x, index_t n) {
  using A = accum_t<T>;
  for_each_index(backend, n, [=] NLA_HOST_DEVICE(index_t i) {
    const A v = x[i], s = detail::sigmoid(v);
    dx[i] = T(A(dy[i]) * s * (A(1) + v * (A(1) - s)));
  });
}

// gate_up: [rows, 2f], gate in the first f columns, up in the last f.
template <class T>
void swiglu_forward(Cuda& backend, T* y, const T* gate_up, index_t rows, index_t f) {
  using A = accum_t<T>;
  for_each_index(backend, rows * f, [=] NLA_HOST_DEVICE(index_t e) {
    const index_t r = e / f, j = e % f;
    const A g = gate_up[r * 2 * f + j], u = gate_up[r * 2 * f + f + j];
    y[e] = T(g * detail::sigmoid(g) * u);
  });
}

template <class T>
void swiglu_backward(Cuda& backend, T* dgate_up, const T* dy, const T* gate_up, index_t rows,
                     index_t f) {
  using A = accum_t<T>;
  for_each_index(backend, rows * f, [=] NLA_HOST_DEVICE(index_t e) {
    const index_t r = e / f, j = e % f;
    const A g = gate_up[r * 2 * f + j], u = gate_up[r * 2 * f + f + j], d = dy[e];
    const A s = detail::sigmoid(g);
    dgate_up[r * 2 * f + j] = T(d * u * s * (A(1) + g * (A(1) - s)));
    dgate_up[r * 2 * f + f + j] = T(d * g * s);
  });
}

// out[c] += sum_r x[r, c] (bias gradients), in reduce.cuh's fixed order.
template <class T>
void sum_rows_accumulate(Cuda& backend, T* out, const T* x, index_t rows, index_t cols) {
  using A = accum_t<T>;
  column_sums<A>(
      backend, rows, cols, [=] NLA_HOST_DEVICE(index_t r, index_t c) { return A(x[r * cols + c]); },
      [=] NLA_HOST_DEVICE(index_t c, A total) { out[c] += T(total); });
}

template <class T>
void add_bias(Cuda& backend, T* x, const T* bias, index_t rows, index_t cols) {
  for_each_index(backend, rows * cols, [=] NLA_HOST_DEVICE(index_t e) { x[e] += bias[e % cols]; });
}

template <class T>
void mask_columns(Cuda& backend, T* x, index_t rows, index_t ld, index_t cols,
                  const std::uint8_t* keep, T value) {
  for_each_index(backend, rows * cols, [=] NLA_HOST_DEVICE(index_t e) {
    const index_t r = e / cols, c = e % cols;
    if (!keep[c]) x[r * ld + c] = value;
  });
}

}  // namespace gpu
}  // namespace nla
