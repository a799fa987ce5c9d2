#pragma once
// The GPU benchmark workloads, shared by the Google Benchmark binary
// (benchmarks/cuda_benchmark.cu) and the example that prints JSON lines
// (examples/cuda_throughput.cu), so both time the same work:
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

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "nla/backend/cuda.cuh"
#include "nla/core/error.hpp"
#include "nla/core/host.hpp"
#include "nla/core/random.hpp"
#include "nla/nn/transformer_lm.hpp"
#include "nla/rl/generate.hpp"
#include "nla/train/lm_trainer.hpp"

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

// Token ids in [0, vocab) from the counter RNG, on the host.
inline std::vector<std::int32_t> random_ids(index_t n, index_t vocab, std::uint64_t seed) {
  std::vector<std::int32_t> ids(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i)
    ids[i] = std::int32_t(random_bits(seed, 1, std::uint64_t(i)) % std::uint64_t(vocab));
  return ids;
}

inline void apply_precision(Cuda& gpu, Precision p) {
  gpu.set_gemm_precision(p == Precision::Tf32 ? gpu::GemmPrecision::Tf32
                                              : gpu::GemmPrecision::Fp32);
}

// T: float for fp32 and tf32, bf16 for bf16 (see with_storage_type).
template <class T>
class TrainStepWorkload {
 public:
  TrainStepWorkload(const TransformerConfig& config, index_t batch, Precision precision,
                    std::uint64_t seed)
      : model_(config, seed),
        trainer_(model_, options()),
        tokens_(Shape{batch, config.context_length}),
        targets_(Shape{batch * config.context_length}) {
    apply_precision(model_.backend(), precision);
    // Targets are the tokens shifted by one, as in language-model training.
    const index_t n = batch * config.context_length;
    const auto ids = random_ids(n + 1, config.vocab_size, seed);
    from_host(model_.backend(), tokens_.view(), ids.data());
    from_host(model_.backend(), targets_.view(), ids.data() + 1);
  }

  double step() { return trainer_.step(tokens_.view(), targets_.view()).loss; }
  void synchronize() { model_.backend().synchronize(); }
  index_t tokens_per_step() const { return tokens_.size(); }
  double flops_per_token() const {
    return train_flops_per_token(model_.config(), model_.parameters().size());
  }

 private:
  static LmTrainerOptions options() {
    LmTrainerOptions o;
    o.schedule.peak_lr = o.schedule.min_lr = 1e-4;
    return o;
  }

  TransformerLM<Cuda, T> model_;
  LmTrainer<Cuda, T> trainer_;
  Tensor<std::int32_t, Cuda> tokens_, targets_;
};

// Where Generator draws the tokens: on the device, or on the host from the
// downloaded logits (top_k = vocab_size asks for the host path's truncation
// code, which keeps every token: the same law and the same tokens).
enum class Draws { Device, Host };

template <class T>
class GenerateWorkload {
 public:
  GenerateWorkload(const TransformerConfig& config, index_t batch, index_t prompt_length,
                   index_t new_tokens, Precision precision, std::uint64_t seed,
                   Draws draws = Draws::Device)
      : model_(config, seed), generator_(model_), prompts_(static_cast<std::size_t>(batch)) {
    NLA_CHECK(prompt_length + new_tokens - 1 <= config.context_length, "bench::GenerateWorkload",
              "prompt {} + new tokens {} - 1 exceeds the context length {}", prompt_length,
              new_tokens, config.context_length);
    apply_precision(model_.backend(), precision);
    const auto ids = random_ids(batch * prompt_length, config.vocab_size, seed);
    for (index_t b = 0; b < batch; ++b)
      prompts_[b].assign(ids.begin() + b * prompt_length, ids.begin() + (b + 1) * prompt_length);
    sampling_.max_new_tokens = new_tokens;
    if (draws == Draws::Host) sampling_.top_k = config.vocab_size;
  }

  // One batched generation; each call draws with its own seed.
  void run() {
    options_.seed += 1;
    const auto out = generator_.generate(prompts_, sampling_, options_);
    NLA_CHECK(index_t(out.size()) == index_t(prompts_.size()), "bench::GenerateWorkload",
              "{} generations for {} prompts", out.size(), prompts_.size());
  }
  index_t new_tokens_per_call() const {
    return index_t(prompts_.size()) * sampling_.max_new_tokens;
  }

 private:
  TransformerLM<Cuda, T> model_;
  Generator<Cuda, T> generator_;
  std::vector<std::vector<std::int32_t>> prompts_;
  SamplingOptions sampling_;
  GenerateOptions options_;
};

// Calls f(T{}) with the storage type of a precision: bf16 for bf16, float
// otherwise; returns what f returns.
template <class F>
decltype(auto) with_storage_type(Precision p, F&& f) {
  if (p == Precision::Bf16) return std::forward<F>(f)(bf16{});
  return std::forward<F>(f)(float{});
}

}  // namespace nla::bench
