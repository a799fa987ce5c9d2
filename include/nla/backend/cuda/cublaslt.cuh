#pragma once
// cuBLASLt state of one Cuda backend: the handle, a workspace, and one matmul
// plan (descriptors plus the heuristic's algorithm) per distinct GEMM, built
// on first use. A training step repeats the same few shapes, so after the
// first step a GEMM is one cublasLtMatmul call with nothing to query.
// CUDA device system only (empty on Thrust's host systems).

#include "nla/backend/cuda/memory.cuh"
#include "nla/backend/cuda/platform.cuh"

#if NLA_CUDA_DEVICE_SYSTEM
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <map>
#include <tuple>

#include "nla/core/error.hpp"
#include "nla/core/shape.hpp"

namespace nla {
namespace gpu {

inline void check_cublas(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS)
    NLA_FAIL("Cuda", "{} failed: {}", what, cublasLtGetStatusString(status));
}

// Everything a plan depends on: types, operations, column-major sizes,
// leading dimensions, the pointers' alignment (the heuristic may pick
// vectorised kernels only for 16-byte aligned operands) and the epilogue:
//   CUBLASLT_EPILOGUE_DEFAULT    D = first * second
//   _BIAS                        D = first * second + bias (over D's rows)
//   _GELU_AUX(_BIAS)             aux = first * second (+ bias), D = gelu(aux)
//   _DGELU                       D = (first * second) .* gelu'(aux)
// aux has D's type and layout (AUX_LD = ld_out). The bias and aux pointers
// are set on the descriptor before each call (EpiloguePointers).
struct GemmKey {
  int data_type, compute_type;
  bool transpose_first, transpose_second;
  index_t rows, cols, inner, ld_first, ld_second, ld_out;
  int alignment;
  int epilogue = CUBLASLT_EPILOGUE_DEFAULT;

  bool operator<(const GemmKey& o) const {
    return std::tie(data_type, compute_type, transpose_first, transpose_second, rows, cols, inner,
                    ld_first, ld_second, ld_out, alignment, epilogue) <
           std::tie(o.data_type, o.compute_type, o.transpose_first, o.transpose_second, o.rows,
                    o.cols, o.inner, o.ld_first, o.ld_second, o.ld_out, o.alignment, o.epilogue);
  }
};

// `found` is false when the heuristic offered no algorithm for an epilogue
// key: the caller then runs the plain GEMM and the epilogue separately.
struct GemmPlan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t first = nullptr, second = nullptr, out = nullptr;
  cublasLtMatmulAlgo_t algo{};
  bool found = false;
};

// The vectors and matrices an epilogue reads or writes; null where unused.
// Their alignment must be what the plan was made with: the heuristic picks
// kernels by the pointers it is shown.
struct EpiloguePointers {
  const void* bias = nullptr;
  const void* aux = nullptr;  // written by GELU_AUX(_BIAS), read by DGELU
};

class CublasLt {
 public:
  static constexpr std::size_t kWorkspaceBytes = std::size_t(32) << 20;

  CublasLt() {
    check_cublas(cublasLtCreate(&handle_), "cublasLtCreate");
    workspace_ = device_allocate(kWorkspaceBytes);
  }
  CublasLt(const CublasLt&) = delete;
  CublasLt& operator=(const CublasLt&) = delete;
  ~CublasLt() {
    for (auto& [key, p] : plans_) destroy(p);
    device_free(workspace_, kWorkspaceBytes);
    cublasLtDestroy(handle_);
  }

  cublasLtHandle_t handle() const { return handle_; }
  void* workspace() const { return workspace_; }

  // How many GEMMs ran with each cuBLASLt epilogue (CUBLASLT_EPILOGUE_*):
  // what shows that a fused path ran, not its unfused fallback.
  void count_call(int epilogue) { ++calls_[epilogue]; }
  std::int64_t calls(int epilogue) const {
    const auto it = calls_.find(epilogue);
    return it == calls_.end() ? 0 : it->second;
  }

  // Column-major D[rows, cols] = op(first)[rows, inner] op(second)[inner, cols]
  // (+ the key's epilogue), ready to run with `pointers`.
  const GemmPlan& plan(const GemmKey& k, const EpiloguePointers& pointers = {}) {
    const auto found = plans_.find(k);
    if (found != plans_.end()) {
      if (found->second.found) set_pointers(found->second, k, pointers);
      return found->second;
    }
    GemmPlan p;
    cublasLtMatmulPreference_t pref = nullptr;
    try {
      describe(k, pointers, p);
      check_cublas(cublasLtMatmulPreferenceCreate(&pref), "cublasLtMatmulPreferenceCreate");
    } catch (...) {
      destroy(p);
      throw;
    }
    const std::uint64_t bytes = kWorkspaceBytes;
    const std::uint32_t align = static_cast<std::uint32_t>(k.alignment);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &bytes,
                                         sizeof(bytes));
    for (auto attr :
         {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
          CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES})
      cublasLtMatmulPreferenceSetAttribute(pref, attr, &align, sizeof(align));
    cublasLtMatmulHeuristicResult_t result{};
    int found_count = 0;
    const cublasStatus_t status = cublasLtMatmulAlgoGetHeuristic(
        handle_, p.desc, p.first, p.second, p.out, p.out, pref, 1, &result, &found_count);
    cublasLtMatmulPreferenceDestroy(pref);
    p.found = status == CUBLAS_STATUS_SUCCESS && found_count > 0;
    // An epilogue without an algorithm (which cuBLASLt reports as
    // NOT_SUPPORTED, INVALID_VALUE or no result, by version and device) is
    // remembered, so the caller's unfused path runs without asking again.
    // Any other failure, and a plain GEMM without one, is an error.
    const bool none = status == CUBLAS_STATUS_NOT_SUPPORTED ||
                      status == CUBLAS_STATUS_INVALID_VALUE ||
                      (status == CUBLAS_STATUS_SUCCESS && found_count == 0);
    if (!p.found && none && k.epilogue != CUBLASLT_EPILOGUE_DEFAULT)
      return plans_.emplace(k, p).first->second;
    if (!p.found) {
      destroy(p);
      NLA_FAIL("gemm",
               "cuBLASLt has no algorithm for [{}, {}] x [{}, {}] (ld {}, {}, {}, epilogue {}): {}",
               k.rows, k.inner, k.inner, k.cols, k.ld_first, k.ld_second, k.ld_out, k.epilogue,
               status == CUBLAS_STATUS_SUCCESS ? "no result" : cublasLtGetStatusString(status));
    }
    p.algo = result.algo;
    return plans_.emplace(k, p).first->second;
  }

 private:
  static bool uses_aux(int epilogue) {
    return epilogue == CUBLASLT_EPILOGUE_GELU_AUX || epilogue == CUBLASLT_EPILOGUE_GELU_AUX_BIAS ||
           epilogue == CUBLASLT_EPILOGUE_DGELU;
  }
  static bool uses_bias(int epilogue) {
    return epilogue == CUBLASLT_EPILOGUE_BIAS || epilogue == CUBLASLT_EPILOGUE_GELU_AUX_BIAS;
  }

  static void set_pointers(const GemmPlan& p, const GemmKey& k, const EpiloguePointers& pointers) {
    if (uses_bias(k.epilogue))
      check_cublas(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                  &pointers.bias, sizeof(pointers.bias)),
                   "cublasLtMatmulDescSetAttribute(BIAS_POINTER)");
    if (uses_aux(k.epilogue))
      check_cublas(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER,
                                                  &pointers.aux, sizeof(pointers.aux)),
                   "cublasLtMatmulDescSetAttribute(EPILOGUE_AUX_POINTER)");
  }

  // The plan's descriptor (operations, epilogue, its pointers and AUX_LD)
  // and matrix layouts; what it creates is in p for destroy() on failure.
  static void describe(const GemmKey& k, const EpiloguePointers& pointers, GemmPlan& p) {
    const auto type = static_cast<cudaDataType_t>(k.data_type);
    const auto scale_type = type == CUDA_R_64F ? CUDA_R_64F : CUDA_R_32F;
    check_cublas(cublasLtMatmulDescCreate(&p.desc, static_cast<cublasComputeType_t>(k.compute_type),
                                          scale_type),
                 "cublasLtMatmulDescCreate");
    const cublasOperation_t op_first = k.transpose_first ? CUBLAS_OP_T : CUBLAS_OP_N;
    const cublasOperation_t op_second = k.transpose_second ? CUBLAS_OP_T : CUBLAS_OP_N;
    check_cublas(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_first,
                                                sizeof(op_first)),
                 "cublasLtMatmulDescSetAttribute(TRANSA)");
    check_cublas(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_second,
                                                sizeof(op_second)),
                 "cublasLtMatmulDescSetAttribute(TRANSB)");
    if (k.epilogue != CUBLASLT_EPILOGUE_DEFAULT) {
      const auto epilogue = static_cast<cublasLtEpilogue_t>(k.epilogue);
      check_cublas(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue,
                                                  sizeof(epilogue)),
                   "cublasLtMatmulDescSetAttribute(EPILOGUE)");
      if (uses_aux(k.epilogue)) {
        const std::int64_t aux_ld = k.ld_out;
        check_cublas(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD,
                                                    &aux_ld, sizeof(aux_ld)),
                     "cublasLtMatmulDescSetAttribute(EPILOGUE_AUX_LD)");
      }
      set_pointers(p, k, pointers);
    }
    // Stored shapes, before the operation is applied.
    const auto r1 = k.transpose_first ? k.inner : k.rows, c1 = k.transpose_first ? k.rows : k.inner;
    const auto r2 = k.transpose_second ? k.cols : k.inner,
               c2 = k.transpose_second ? k.inner : k.cols;
    check_cublas(cublasLtMatrixLayoutCreate(&p.first, type, r1, c1, k.ld_first), "layout");
    check_cublas(cublasLtMatrixLayoutCreate(&p.second, type, r2, c2, k.ld_second), "layout");
    check_cublas(cublasLtMatrixLayoutCreate(&p.out, type, k.rows, k.cols, k.ld_out), "layout");
  }

  static void destroy(GemmPlan& p) {
    for (cublasLtMatrixLayout_t layout : {p.first, p.second, p.out})
      if (layout) cublasLtMatrixLayoutDestroy(layout);
    if (p.desc) cublasLtMatmulDescDestroy(p.desc);
  }

  cublasLtHandle_t handle_ = nullptr;
  void* workspace_ = nullptr;
  std::map<GemmKey, GemmPlan> plans_;
  std::map<int, std::int64_t> calls_;
};

}  // namespace gpu
}  // namespace nla

#endif  // NLA_CUDA_DEVICE_SYSTEM
