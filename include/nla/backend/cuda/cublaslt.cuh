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
// vectorised kernels only for 16-byte aligned operands) and the epilogue
// (CUBLASLT_EPILOGUE_DEFAULT, or _BIAS: a bias vector over D's rows added in
// the GEMM's epilogue; its pointer is set on the descriptor before each call).
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

  // Column-major D[rows, cols] = op(first)[rows, inner] op(second)[inner, cols]
  // (+ the key's epilogue).
  const GemmPlan& plan(const GemmKey& k) {
    const auto found = plans_.find(k);
    if (found != plans_.end()) return found->second;
    GemmPlan p;
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
    }
    // Stored shapes, before the operation is applied.
    const auto r1 = k.transpose_first ? k.inner : k.rows, c1 = k.transpose_first ? k.rows : k.inner;
    const auto r2 = k.transpose_second ? k.cols : k.inner,
               c2 = k.transpose_second ? k.inner : k.cols;
    check_cublas(cublasLtMatrixLayoutCreate(&p.first, type, r1, c1, k.ld_first), "layout");
    check_cublas(cublasLtMatrixLayoutCreate(&p.second, type, r2, c2, k.ld_second), "layout");
    check_cublas(cublasLtMatrixLayoutCreate(&p.out, type, k.rows, k.cols, k.ld_out), "layout");

    cublasLtMatmulPreference_t pref = nullptr;
    check_cublas(cublasLtMatmulPreferenceCreate(&pref), "cublasLtMatmulPreferenceCreate");
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
    // "No algorithm for this epilogue" is remembered, so the caller's
    // unfused path runs without asking again; anything else is an error.
    const bool none = status == CUBLAS_STATUS_NOT_SUPPORTED ||
                      (status == CUBLAS_STATUS_SUCCESS && found_count == 0);
    if (!p.found && none && k.epilogue != CUBLASLT_EPILOGUE_DEFAULT)
      return plans_.emplace(k, p).first->second;
    if (!p.found) {
      destroy(p);
      NLA_FAIL("gemm", "cuBLASLt has no algorithm for [{}, {}] x [{}, {}] (ld {}, {}, {}): {}",
               k.rows, k.inner, k.inner, k.cols, k.ld_first, k.ld_second, k.ld_out,
               cublasLtGetStatusString(status));
    }
    p.algo = result.algo;
    return plans_.emplace(k, p).first->second;
  }

 private:
  static void destroy(GemmPlan& p) {
    cublasLtMatrixLayoutDestroy(p.first);
    cublasLtMatrixLayoutDestroy(p.second);
    cublasLtMatrixLayoutDestroy(p.out);
    cublasLtMatmulDescDestroy(p.desc);
  }

  cublasLtHandle_t handle_ = nullptr;
  void* workspace_ = nullptr;
  std::map<GemmKey, GemmPlan> plans_;
};

}  // namespace gpu
}  // namespace nla

#endif  // NLA_CUDA_DEVICE_SYSTEM
