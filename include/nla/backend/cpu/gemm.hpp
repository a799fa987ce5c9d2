#pragma once
// General matrix multiply on row-major operands, the one primitive every
// linear layer and attention product is built from:
//   C[m, n] = alpha * op(A) op(B) + beta * C,  op(X) = X or X^T.
// Eigen's blocked GEMM does the work (multithreaded with OpenMP unless called
// from inside a parallel region, where it stays on the calling thread), except
// for A B^T with at most kFewRows rows of A (a Linear layer in a decode step),
// which reads B in place (few_rows_gemm.hpp).

#include <type_traits>

#include "nla/backend/cpu/cpu.hpp"
#include "nla/backend/cpu/eigen.hpp"
#include "nla/backend/cpu/elementwise.hpp"
#include "nla/backend/cpu/few_rows_gemm.hpp"

namespace nla {
namespace cpu {

template <class T>
void gemm(Cpu&, bool transpose_a, bool transpose_b, index_t m, index_t n, index_t k, T alpha,
          const T* a, index_t lda, const T* b, index_t ldb, T beta, T* c, index_t ldc) {
  auto C = matrix(c, m, n, ldc);
  if (beta == T(0)) {
    C.setZero();
  } else if (beta != T(1)) {
    C *= beta;
  }
  if (k == 0) return;
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
    if (!transpose_a && transpose_b && m <= kFewRows) {
      gemm_few_rows_bt(m, n, k, alpha, a, lda, b, ldb, c, ldc);
      return;
    }
  }
  // A is stored [m, k] (or [k, m] when transposed); likewise B.
  const auto A = matrix(a, transpose_a ? k : m, transpose_a ? m : k, lda);
  const auto B = matrix(b, transpose_b ? n : k, transpose_b ? k : n, ldb);
  if (!transpose_a && !transpose_b) {
    C.noalias() += alpha * A * B;
  } else if (!transpose_a && transpose_b) {
    C.noalias() += alpha * A * B.transpose();
  } else if (transpose_a && !transpose_b) {
    C.noalias() += alpha * A.transpose() * B;
  } else {
    C.noalias() += alpha * A.transpose() * B.transpose();
  }
}

// C[m, n] = op(A) op(B) + bias, bias [n] added to every row of the
// contiguous C: a linear layer's forward. Two passes here; the Cuda backend
// fuses the bias into the GEMM's epilogue.
template <class T>
void gemm_bias(Cpu& cpu, bool transpose_a, bool transpose_b, index_t m, index_t n, index_t k,
               const T* a, index_t lda, const T* b, index_t ldb, const T* bias, T* c) {
  gemm(cpu, transpose_a, transpose_b, m, n, k, T(1), a, lda, b, ldb, T(0), c, n);
  add_bias(cpu, c, bias, m, n);
}

// h[m, n] = op(A) op(B) (+ bias, unless null), c = gelu(h), both contiguous:
// the first half of a GELU MLP, keeping the pre-activation for the backward.
// The Cuda backend fuses the GELU into the GEMM's epilogue.
template <class T>
void gemm_bias_gelu(Cpu& cpu, bool transpose_a, bool transpose_b, index_t m, index_t n, index_t k,
                    const T* a, index_t lda, const T* b, index_t ldb, const T* bias, T* h, T* c) {
  if (bias)
    gemm_bias(cpu, transpose_a, transpose_b, m, n, k, a, lda, b, ldb, bias, h);
  else
    gemm(cpu, transpose_a, transpose_b, m, n, k, T(1), a, lda, b, ldb, T(0), h, n);
  gelu_forward(cpu, c, h, m * n);
}

// c[m, n] = (op(A) op(B)) .* gelu'(h), contiguous: the gradient through a
// linear layer into the GELU that fed it, h being the GELU's input.
template <class T>
void gemm_gelu_grad(Cpu& cpu, bool transpose_a, bool transpose_b, index_t m, index_t n, index_t k,
                    const T* a, index_t lda, const T* b, index_t ldb, const T* h, T* c) {
  gemm(cpu, transpose_a, transpose_b, m, n, k, T(1), a, lda, b, ldb, T(0), c, n);
  gelu_backward(cpu, c, c, h, m * n);
}

}  // namespace cpu
}  // namespace nla
