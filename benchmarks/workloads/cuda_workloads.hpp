#pragma once
// The GPU benchmark workloads, shared by the Google Benchmark binary
// (benchmarks/cuda_benchmark.cpp) and the example that prints JSON lines
// (examples/cuda_throughput.cpp), so both time the same work:
//   train     one training step: forward, cross-entropy, backward, global-norm
//             clipping, AdamW (LmTrainer::step, which also reads the loss
//             back, as the PyTorch reference's loss.item() does);
//   generate  batched sampling with the KV cache: prefill the prompts, then
//             draw new tokens one at a time at temperature 1 (Generator).
// Presets, as in benchmarks/pytorch_reference.py:
//   gpt2-124m  d 768, 12 layers, 12 heads, context 1024, vocab 50257
//   small      d 256,  6 layers,  8 heads, context 128,  vocab 4096
//   tiny       d 128,  4 layers,  4 heads, context 64,   vocab 512
// Precisions: fp32; tf32 (fp32 storage, TF32 tensor-core GEMMs); bf16 (bf16
// storage and GEMMs with fp32 accumulation, fp32 master weights and optimiser
// state, fp32 norms, softmax and loss).
//
// This header is plain C++ for the host compiler. The models behind it are
// instantiated once, in cuda_workloads.cu (nvcc, or g++ on Thrust's OpenMP
// system: cuda_workloads_thrust_omp.cpp), for every program that times them.

#include <cstdint>
#include <memory>
#include <string>

#include "nla/core/error.hpp"
#include "nla/core/shape.hpp"
#include "nla/nn/config.hpp"

namespace nla::gpu {
class PeakMemoryMeter;
}

namespace nla::bench {

enum class Precision { Fp32, Tf32, Bf16 };

inline Precision parse_precision(const std::string& name) {
  if (name == "fp32") return Precision::Fp32;
  if (name == "tf32") return Precision::Tf32;
  if (name == "bf16") return Precision::Bf16;
  NLA_FAIL("bench::parse_precision", "unknown precision '{}' (fp32, tf32 or bf16)", name);
}

inline TransformerConfig gpu_preset(const std::string& name) {
  if (name == "gpt2-124m") return TransformerConfig::gpt2(50257, 1024, 768, 12, 12);
  if (name == "small") return TransformerConfig::gpt2(4096, 128, 256, 6, 8);
  if (name == "tiny") return TransformerConfig::gpt2(512, 64, 128, 4, 4);
  NLA_FAIL("bench::gpu_preset", "unknown preset '{}' (gpt2-124m, small or tiny)", name);
}

// Dense tensor-core peak of an H100 SXM5, the denominator of MFU:
// fp32 66.9, TF32 494.7, bf16 989.4 TFLOPS.
inline double h100_sxm_peak_tflops(Precision p) {
  return p == Precision::Bf16 ? 989.4 : p == Precision::Tf32 ? 494.7 : 66.9;
}

// Model FLOPs per trained token: 6 N for the weights (N without GPT-2's
// position table, which is looked up, not multiplied) plus 12 L T d for the
// attention scores and their use (Kaplan et al. 2020; Chowdhery et al. 2022,
// appendix B).
inline double train_flops_per_token(const TransformerConfig& c, index_t parameters) {
  index_t weights = parameters;
  if (c.flavour == Flavour::Gpt2) weights -= c.context_length * c.d_model;
  return 6.0 * double(weights) + 12.0 * double(c.n_layers * c.context_length * c.d_model);
}

// nla::Error naming the reason when no usable GPU is present (never on
// Thrust's OpenMP system).
void require_gpu();

// The most device memory nla held since construction, beyond what it held
// then (gpu::PeakMemoryMeter; PyTorch's max_memory_reserved is the matching
// figure; neither counts the CUDA context).
class PeakDeviceMemory {
 public:
  PeakDeviceMemory();
  ~PeakDeviceMemory();
  double mib() const;

 private:
  std::unique_ptr<gpu::PeakMemoryMeter> meter_;
};

// What a training step may leave out, to time what each piece gains.
struct TrainStepOptions {
  // LmTrainer's; 1: the logits' rows are vocab_size long, which times the
  // unaligned LM-head GEMMs.
  index_t logits_padding = kAlignedLogitsPadding;
  // false: attention on the CUDA-core kernels even where the tensor-core
  // ones serve (bf16, TF32).
  bool tensor_core_attention = true;
  // false: bias and GELU as kernels of their own, not in cuBLASLt's GEMM
  // epilogues (Cuda::set_gemm_epilogues).
  bool gemm_epilogues = true;
};

// One LmTrainer step on fixed tokens.
class TrainStepWorkload {
 public:
  TrainStepWorkload(const TransformerConfig& config, index_t batch, Precision precision,
                    std::uint64_t seed, const TrainStepOptions& options = {});
  ~TrainStepWorkload();
  TrainStepWorkload(const TrainStepWorkload&) = delete;
  TrainStepWorkload& operator=(const TrainStepWorkload&) = delete;

  double step();  // the loss, read back
  void synchronize();
  index_t tokens_per_step() const;
  double flops_per_token() const;

  struct Model;  // the model, its trainer and its tokens, of one storage type

 private:
  std::unique_ptr<Model> model_;
};

// Where Generator draws the tokens: on the device, or on the host from the
// downloaded logits (top_k = vocab_size asks for the host path's truncation
// code, which keeps every token: the same law and the same tokens).
enum class Draws { Device, Host };

class GenerateWorkload {
 public:
  GenerateWorkload(const TransformerConfig& config, index_t batch, index_t prompt_length,
                   index_t new_tokens, Precision precision, std::uint64_t seed,
                   Draws draws = Draws::Device);
  ~GenerateWorkload();
  GenerateWorkload(const GenerateWorkload&) = delete;
  GenerateWorkload& operator=(const GenerateWorkload&) = delete;

  void run();  // one batched generation; each call draws with its own seed
  index_t new_tokens_per_call() const;

  struct Model;  // the model, its generator and the prompts, of one storage type

 private:
  std::unique_ptr<Model> model_;
};

}  // namespace nla::bench
