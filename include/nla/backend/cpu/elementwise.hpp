#pragma once
// Element-wise kernels: fill, copy, axpy, activations. Activations go through
// Eigen arrays so tanh/exp are vectorised.

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "nla/backend/cpu/cpu.hpp"
#include "nla/backend/cpu/eigen.hpp"
#include "nla/backend/cpu/parallel.hpp"
#include "nla/core/scalar.hpp"

namespace nla {
namespace cpu {

template <class T>
Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>> array(T* p, index_t n) {
  return Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>(p, n);
}
template <class T>
Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>> array(const T* p, index_t n) {
  return Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>(p, n);
}

template <class T>
void fill(Cpu&, T* x, index_t n, T value) {
  parallel_chunks(n, [&](index_t b, index_t e) { std::fill(x + b, x + e, value); });
}

template <class T>
void copy(Cpu&, T* dst, const T* src, index_t n) {
  parallel_chunks(
      n, [&](index_t b, index_t e) { std::memcpy(dst + b, src + b, (e - b) * sizeof(T)); });
}

// dst[i] = D(src[i]): between storage and accumulation types (master weights).
template <class D, class S>
void convert(Cpu&, D* dst, const S* src, index_t n) {
  parallel_chunks(n, [&](index_t b, index_t e) {
    for (index_t i = b; i < e; ++i) dst[i] = D(src[i]);
  });
}

// dst[r, :cols] = src[r, :cols] for rows with their own strides (scatter of
// key/value heads into a KV cache, gathers of hooked positions).
template <class T>
void copy_rows(Cpu&, T* dst, index_t dst_stride, const T* src, index_t src_stride, index_t rows,
               index_t cols) {
  parallel_for(rows, cols, [&](index_t r) {
    std::memcpy(dst + r * dst_stride, src + r * src_stride, cols * sizeof(T));
  });
}

// y += alpha * x
template <class T>
void axpy(Cpu&, T* y, const T* x, index_t n, T alpha) {
  parallel_chunks(
      n, [&](index_t b, index_t e) { array(y + b, e - b) += alpha * array(x + b, e - b); });
}

template <class T>
void scale(Cpu&, T* x, index_t n, T alpha) {
  parallel_chunks(n, [&](index_t b, index_t e) { array(x + b, e - b) *= alpha; });
}

// GELU, tanh approximation (Hendrycks & Gimpel):
//   gelu(x) = x/2 (1 + tanh(u)),  u = s (x + c x^3),  s = sqrt(2/pi), c = 0.044715
//   gelu'(x) = (1 + tanh u)/2 + x/2 (1 - tanh^2 u) s (1 + 3 c x^2)
constexpr double kGeluScale = 0.7978845608028654;  // sqrt(2 / pi)
constexpr double kGeluCubic = 0.044715;

template <class T>
void gelu_forward(Cpu&, T* y, const T* x, index_t n) {
  parallel_chunks(n, [&](index_t b, index_t e) {
    const auto X = array(x + b, e - b);
    array(y + b, e - b) =
        T(0.5) * X * (T(1) + (T(kGeluScale) * (X + T(kGeluCubic) * X.cube())).tanh());
  });
}

// dx = dy * gelu'(x); dx may alias dy.
template <class T>
void gelu_backward(Cpu&, T* dx, const T* dy, const T* x, index_t n) {
  parallel_chunks(n, [&](index_t b, index_t e) {
    const auto X = array(x + b, e - b);
    const auto t = (T(kGeluScale) * (X + T(kGeluCubic) * X.cube())).tanh().eval();
    const auto grad = T(0.5) * (T(1) + t) + T(0.5) * X * (T(1) - t.square()) * T(kGeluScale) *
                                                (T(1) + T(3 * kGeluCubic) * X.square());
    array(dx + b, e - b) = array(dy + b, e - b) * grad;
  });
}

// silu(x) = x sigmoid(x);  silu'(x) = sigmoid(x) (1 + x (1 - sigmoid(x)))
template <class T>
void silu_forward(Cpu&, T* y, const T* x, index_t n) {
  parallel_chunks(n, [&](index_t b, index_t e) {
    const auto X = array(x + b, e - b);
    array(y + b, e - b) = X / (T(1) + (-X).exp());
  });
}

template <class T>
void silu_backward(Cpu&, T* dx, const T* dy, const T* x, index_t n) {
  parallel_chunks(n, [&](index_t b, index_t e) {
    const auto X = array(x + b, e - b);
    const auto s = (T(1) / (T(1) + (-X).exp())).eval();
    array(dx + b, e - b) = array(dy + b, e - b) * s * (T(1) + X * (T(1) - s));
  });
}

// SwiGLU over a fused [rows, 2f] input whose first f columns are the gate
// projection and the last f the up projection (one GEMM computes both):
//   y[r, j] = silu(g[r, j]) * u[r, j]
template <class T>
void swiglu_forward(Cpu&, T* y, const T* gate_up, index_t rows, index_t f) {
  parallel_for(rows, 8 * f, [&](index_t r) {
    const auto g = array(gate_up + r * 2 * f, f);
    const auto u = array(gate_up + r * 2 * f + f, f);
    array(y + r * f, f) = g / (T(1) + (-g).exp()) * u;
  });
}

//   dg = dy * u * silu'(g),  du = dy * silu(g)
template <class T>
void swiglu_backward(Cpu&, T* dgate_up, const T* dy, const T* gate_up, index_t rows, index_t f) {
  parallel_for(rows, 12 * f, [&](index_t r) {
    const auto g = array(gate_up + r * 2 * f, f);
    const auto u = array(gate_up + r * 2 * f + f, f);
    const auto d = array(dy + r * f, f);
    const auto s = (T(1) / (T(1) + (-g).exp())).eval();
    array(dgate_up + r * 2 * f, f) = d * u * s * (T(1) + g * (T(1) - s));
    array(dgate_up + r * 2 * f + f, f) = d * g * s;
  });
}

// out[c] += sum_r x[r, c]  (bias gradients); split over columns so the sum
// order is fixed.
template <class T>
void sum_rows_accumulate(Cpu&, T* out, const T* x, index_t rows, index_t cols) {
  using A = accum_t<T>;
  constexpr index_t kBlock = 64;
  const index_t blocks = (cols + kBlock - 1) / kBlock;
  parallel_for(blocks, rows * kBlock, [&](index_t blk) {
    const index_t c0 = blk * kBlock, c1 = std::min(cols, c0 + kBlock);
    A acc[kBlock] = {};
    for (index_t r = 0; r < rows; ++r)
      for (index_t c = c0; c < c1; ++c) acc[c - c0] += x[r * cols + c];
    for (index_t c = c0; c < c1; ++c) out[c] += T(acc[c - c0]);
  });
}

// Adds bias[c] to every row of x.
template <class T>
void add_bias(Cpu&, T* x, const T* bias, index_t rows, index_t cols) {
  parallel_for(rows, cols, [&](index_t r) { array(x + r * cols, cols) += array(bias, cols); });
}

// x[r, c] = value for the columns c < cols with keep[c] == 0, in rows that
// start ld apart (a restricted vocabulary's masked logits).
template <class T>
void mask_columns(Cpu&, T* x, index_t rows, index_t ld, index_t cols, const std::uint8_t* keep,
                  T value) {
  parallel_for(rows, cols, [&](index_t r) {
    T* row = x + r * ld;
    for (index_t c = 0; c < cols; ++c)
      if (!keep[c]) row[c] = value;
  });
}

}  // namespace cpu
}  // namespace nla
