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
#include "nla/backend/unfused_epilogues.hpp"

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

// The GEMM-epilogue kernels (a linear layer's bias, a GELU MLP's activation
// forward and backward) run unfused here: a GEMM, then the element-wise pass.
// The Cuda backend fuses them into cuBLASLt's epilogues.
using unfused::gemm_bias;
using unfused::gemm_bias_gelu;
using unfused::gemm_gelu_grad;

}  // namespace cpu
}  // namespace nla
