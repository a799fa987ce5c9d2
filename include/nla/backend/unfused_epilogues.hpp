#pragma once
// The GEMM-epilogue kernels as compositions of a backend's plainer kernels:
// what the Cpu backend runs, and what the Cuda backend falls back to where
// cuBLASLt has no fused algorithm (or on Thrust's host systems). Contracts:
//   gemm_bias       c[m, n] = op(A) op(B) + bias                (bias [n])
//   gemm_bias_gelu  h[m, n] = op(A) op(B) (+ bias, unless null), c = gelu(h)
//   gemm_gelu_grad  c[m, n] = (op(A) op(B)) .* gelu'(h)
// all row-major and contiguous (ldc = n).
//
// Written once for any backend B: gemm, add_bias, gelu_forward and
// gelu_backward are found by argument-dependent lookup in B's namespace, and
// so is B's own gemm_bias, which overload resolution prefers to the generic
// one below (it is more specialised), so a backend that fuses the bias keeps
// it fused inside gemm_bias_gelu.

#include "nla/core/shape.hpp"  // index_t

namespace nla {
namespace unfused {

template <class B, class T>
void gemm_bias(B& backend, bool transpose_a, bool transpose_b, index_t m, index_t n, index_t k,
               const T* a, index_t lda, const T* b, index_t ldb, const T* bias, T* c) {
  gemm(backend, transpose_a, transpose_b, m, n, k, T(1), a, lda, b, ldb, T(0), c, n);
  add_bias(backend, c, bias, m, n);
}

template <class B, class T>
void gemm_bias_gelu(B& backend, bool transpose_a, bool transpose_b, index_t m, index_t n, index_t k,
                    const T* a, index_t lda, const T* b, index_t ldb, const T* bias, T* h, T* c) {
  if (bias)
    gemm_bias(backend, transpose_a, transpose_b, m, n, k, a, lda, b, ldb, bias, h);
  else
    gemm(backend, transpose_a, transpose_b, m, n, k, T(1), a, lda, b, ldb, T(0), h, n);
  gelu_forward(backend, c, h, m * n);
}

template <class B, class T>
void gemm_gelu_grad(B& backend, bool transpose_a, bool transpose_b, index_t m, index_t n, index_t k,
                    const T* a, index_t lda, const T* b, index_t ldb, const T* h, T* c) {
  gemm(backend, transpose_a, transpose_b, m, n, k, T(1), a, lda, b, ldb, T(0), c, n);
  gelu_backward(backend, c, c, h, m * n);
}

}  // namespace unfused
}  // namespace nla
