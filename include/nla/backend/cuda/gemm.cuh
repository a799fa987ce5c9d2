#pragma once
// C[m, n] = alpha * op(A) op(B) + beta * C on row-major operands (the
// contract of backend/cpu/gemm.hpp).
//
// On the GPU, cuBLASLt. cuBLAS is column-major, and a row-major matrix is its
// column-major transpose, so the product is computed transposed:
//   C^T [n, m] = op(B)^T [n, k] * op(A)^T [k, m]
// with B as cuBLAS's first operand and A as its second; a stored row-major
// [r, c] operand is a column-major [c, r] one with the same leading dimension.
// On Thrust's host systems, a portable loop: one dot product per element of C.

#include <cstdint>
#include <type_traits>

#include "nla/backend/cuda/cuda.cuh"
#include "nla/backend/cuda/elementwise.cuh"
#include "nla/backend/unfused_epilogues.hpp"
#include "nla/core/scalar.hpp"

namespace nla {
namespace gpu {

namespace detail {

template <class T>
void gemm_portable(Cuda& backend, bool transpose_a, bool transpose_b, index_t m, index_t n,
                   index_t k, T alpha, const T* a, index_t lda, const T* b, index_t ldb, T beta,
                   T* c, index_t ldc) {
  using A = accum_t<T>;
  for_each_index(backend, m * n, [=] NLA_HOST_DEVICE(index_t e) {
    const index_t i = e / n, j = e % n;
    A sum = 0;
    for (index_t p = 0; p < k; ++p) {
      const T x = transpose_a ? a[p * lda + i] : a[i * lda + p];
      const T y = transpose_b ? b[j * ldb + p] : b[p * ldb + j];
      sum += A(x) * A(y);
    }
    T& out = c[i * ldc + j];
    // beta == 0 must not read C: it may hold NaN from an earlier use.
    out = beta == T(0) ? T(alpha * T(sum)) : T(alpha * T(sum) + beta * out);
  });
}

// What the GEMM's epilogue does to P = alpha op(A) op(B) + beta C:
//   None      C = P
//   Bias      C = P + bias
//   Gelu      gelu_input = P (+ bias, if any), C = gelu(gelu_input)
//   GeluGrad  C = P .* gelu'(gelu_input)
// bias is [n] over C's rows; gelu_input is [m, n] in C's layout (cuBLASLt's
// aux matrix).
enum class EpilogueKind { None, Bias, Gelu, GeluGrad };

template <class T>
struct Epilogue {
  EpilogueKind kind = EpilogueKind::None;
  const T* bias = nullptr;
  T* gelu_input_out = nullptr;       // Gelu writes it
  const T* gelu_input_in = nullptr;  // GeluGrad reads it

  const T* aux() const { return gelu_input_out ? gelu_input_out : gelu_input_in; }
};

#if NLA_CUDA_DEVICE_SYSTEM
inline int pointer_alignment(const void* p) {
  const auto address = reinterpret_cast<std::uintptr_t>(p);
  int align = 16;
  while (align > 1 && address % align != 0) align /= 2;
  return align;
}

// The cuBLASLt epilogue of `e`, or CUBLASLT_EPILOGUE_DEFAULT.
template <class T>
int cublaslt_epilogue(const Epilogue<T>& e) {
  switch (e.kind) {
    case EpilogueKind::Bias:
      return CUBLASLT_EPILOGUE_BIAS;
    case EpilogueKind::Gelu:
      return e.bias ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS : CUBLASLT_EPILOGUE_GELU_AUX;
    case EpilogueKind::GeluGrad:
      return CUBLASLT_EPILOGUE_DGELU;
    default:
      return CUBLASLT_EPILOGUE_DEFAULT;
  }
}

// Runs the GEMM on cuBLASLt with `epilogue` fused (one pass over C instead
// of two or three). Returns false, having done nothing, where the fused form
// is not on offer and the caller must run the unfused kernels:
//   - epilogues are switched off (Cuda::set_gemm_epilogues);
//   - a bias or aux matrix is not 16-byte aligned: cuBLASLt takes no
//     alignment preference for them, and parameters are packed, so a bias
//     after an odd-sized one can be misaligned;
//   - GELU in fp64, or with ldc % 8 != 0 (the aux matrix's leading
//     dimension, which is C's, must be a multiple of 8);
//   - cuBLASLt has no algorithm for that epilogue.
// GeluGrad uses DGELU, not DGELU_BGRAD: the latter writes the bias gradient,
// where a linear layer's gradients accumulate.
template <class T>
bool gemm_cublaslt(Cuda& backend, bool transpose_a, bool transpose_b, index_t m, index_t n,
                   index_t k, T alpha, const T* a, index_t lda, const T* b, index_t ldb, T beta,
                   T* c, index_t ldc, const Epilogue<T>& epilogue = {}) {
  constexpr bool f64 = std::is_same<T, double>::value, b16 = std::is_same<T, bf16>::value;
  static_assert(f64 || b16 || std::is_same<T, float>::value,
                "gemm: the cuBLASLt path takes float, double or bf16");
  if (epilogue.kind != EpilogueKind::None) {
    const bool gelu =
        epilogue.kind == EpilogueKind::Gelu || epilogue.kind == EpilogueKind::GeluGrad;
    if (!backend.gemm_epilogues()) return false;
    if (epilogue.bias && pointer_alignment(epilogue.bias) < 16) return false;
    if (epilogue.aux() && pointer_alignment(epilogue.aux()) < 16) return false;
    if (gelu && (f64 || ldc % 8 != 0)) return false;
  }
  // bf16 operands multiply on tensor cores with fp32 accumulation and fp32
  // alpha/beta; fp32 operands use TF32 tensor cores only when asked to.
  using Scale = std::conditional_t<f64, double, float>;
  const Scale alpha_s = Scale(alpha), beta_s = Scale(beta);
  const int data_type = f64 ? CUDA_R_64F : b16 ? CUDA_R_16BF : CUDA_R_32F;
  const int compute = f64 ? CUBLAS_COMPUTE_64F
                      : (!b16 && backend.gemm_precision() == GemmPrecision::Tf32)
                          ? CUBLAS_COMPUTE_32F_FAST_TF32
                          : CUBLAS_COMPUTE_32F;
  int align = pointer_alignment(a);
  align = std::min(align, pointer_alignment(b));
  align = std::min(align, pointer_alignment(c));
  // The leading dimensions shift every column by ld elements: alignment holds
  // for all columns only if ld * sizeof(T) keeps it.
  for (index_t ld : {lda, ldb, ldc})
    while (align > 1 && (ld * index_t(sizeof(T))) % align != 0) align /= 2;
  // Row-major C [m, n] is column-major D [n, m]: the bias over C's columns
  // is a vector over D's rows, which is what the epilogues broadcast, and
  // aux [m, n] row-major is D's layout with AUX_LD = ldc.
  const GemmKey key{data_type, compute, transpose_b, transpose_a,
                    n,         m,       k,           ldb,
                    lda,       ldc,     align,       cublaslt_epilogue(epilogue)};
  CublasLt& blas = backend.blas();
  const GemmPlan& plan = blas.plan(key, EpiloguePointers{epilogue.bias, epilogue.aux()});
  if (!plan.found) return false;
  check_cublas(cublasLtMatmul(blas.handle(), plan.desc, &alpha_s, b, plan.first, a, plan.second,
                              &beta_s, c, plan.out, c, plan.out, &plan.algo, blas.workspace(),
                              CublasLt::kWorkspaceBytes, backend.stream()),
               "cublasLtMatmul");
  blas.count_call(key.epilogue);
  return true;
}
#endif

}  // namespace detail

template <class T>
void gemm(Cuda& backend, bool transpose_a, bool transpose_b, index_t m, index_t n, index_t k,
          T alpha, const T* a, index_t lda, const T* b, index_t ldb, T beta, T* c, index_t ldc) {
  if (m == 0 || n == 0) return;
#if NLA_CUDA_DEVICE_SYSTEM
  if (k > 0 && detail::gemm_cublaslt(backend, transpose_a, transpose_b, m, n, k, alpha, a, lda, b,
                                     ldb, beta, c, ldc))
    return;
#endif
  detail::gemm_portable(backend, transpose_a, transpose_b, m, n, k, alpha, a, lda, b, ldb, beta, c,
                        ldc);
}

// C[m, n] = op(A) op(B) + bias, bias [n] added to every row of the
// contiguous C (the contract of backend/unfused_epilogues.hpp). On the GPU the bias
// rides in cuBLASLt's epilogue; otherwise (no such algorithm, or Thrust's
// host systems) the unfused GEMM and add_bias.
template <class T>
void gemm_bias(Cuda& backend, bool transpose_a, bool transpose_b, index_t m, index_t n, index_t k,
               const T* a, index_t lda, const T* b, index_t ldb, const T* bias, T* c) {
  if (m == 0 || n == 0) return;
#if NLA_CUDA_DEVICE_SYSTEM
  if (k > 0 && detail::gemm_cublaslt(backend, transpose_a, transpose_b, m, n, k, T(1), a, lda, b,
                                     ldb, T(0), c, n, {detail::EpilogueKind::Bias, bias}))
    return;
#endif
  unfused::gemm_bias(backend, transpose_a, transpose_b, m, n, k, a, lda, b, ldb, bias, c);
}

// h[m, n] = op(A) op(B) (+ bias), c = gelu(h); bias may be null (the
// contract of backend/unfused_epilogues.hpp). On the GPU one GEMM with cuBLASLt's
// GELU_AUX(_BIAS) epilogue, which writes both; otherwise the GEMM, then
// gelu_forward.
template <class T>
void gemm_bias_gelu(Cuda& backend, bool transpose_a, bool transpose_b, index_t m, index_t n,
                    index_t k, const T* a, index_t lda, const T* b, index_t ldb, const T* bias,
                    T* h, T* c) {
  if (m == 0 || n == 0) return;
#if NLA_CUDA_DEVICE_SYSTEM
  if (k > 0 &&
      detail::gemm_cublaslt(backend, transpose_a, transpose_b, m, n, k, T(1), a, lda, b, ldb, T(0),
                            c, n, {detail::EpilogueKind::Gelu, bias, h, nullptr}))
    return;
#endif
  unfused::gemm_bias_gelu(backend, transpose_a, transpose_b, m, n, k, a, lda, b, ldb, bias, h, c);
}

// c[m, n] = (op(A) op(B)) .* gelu'(h), h [m, n] the GELU's input (the
// contract of backend/unfused_epilogues.hpp): the gradient through a linear layer
// and the GELU before it. On the GPU one GEMM with cuBLASLt's DGELU
// epilogue; otherwise the GEMM, then gelu_backward in place.
template <class T>
void gemm_gelu_grad(Cuda& backend, bool transpose_a, bool transpose_b, index_t m, index_t n,
                    index_t k, const T* a, index_t lda, const T* b, index_t ldb, const T* h, T* c) {
  if (m == 0 || n == 0) return;
#if NLA_CUDA_DEVICE_SYSTEM
  if (k > 0 &&
      detail::gemm_cublaslt(backend, transpose_a, transpose_b, m, n, k, T(1), a, lda, b, ldb, T(0),
                            c, n, {detail::EpilogueKind::GeluGrad, nullptr, nullptr, h}))
    return;
#endif
  unfused::gemm_gelu_grad(backend, transpose_a, transpose_b, m, n, k, a, lda, b, ldb, h, c);
}

}  // namespace gpu
}  // namespace nla
