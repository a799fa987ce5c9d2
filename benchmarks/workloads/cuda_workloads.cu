// The models behind benchmarks/workloads/cuda_workloads.hpp, instantiated
// once for fp32/TF32 (float storage) and bf16.

#include "cuda_workloads.hpp"

#include <memory>
#include <vector>

#include "nla/backend/cuda.cuh"
#include "nla/core/host.hpp"
#include "nla/core/random.hpp"
#include "nla/nn/transformer_lm.hpp"
#include "nla/rl/generate.hpp"
#include "nla/train/lm_trainer.hpp"

namespace nla::bench {

namespace {

// Token ids in [0, vocab) from the counter RNG, on the host.
std::vector<std::int32_t> random_ids(index_t n, index_t vocab, std::uint64_t seed) {
  std::vector<std::int32_t> ids(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i)
    ids[i] = std::int32_t(random_bits(seed, 1, std::uint64_t(i)) % std::uint64_t(vocab));
  return ids;
}

void apply_precision(Cuda& gpu, Precision p) {
  gpu.set_gemm_precision(p == Precision::Tf32 ? gpu::GemmPrecision::Tf32
                                              : gpu::GemmPrecision::Fp32);
}

// Of<T> with the storage type T of a precision: bf16 for bf16, float
// otherwise (Of<T> derives from Base; args go to its constructor).
template <template <class> class Of, class Base, class... Args>
std::unique_ptr<Base> make_for_storage(Precision p, const Args&... args) {
  if (p == Precision::Bf16) return std::make_unique<Of<bf16>>(args...);
  return std::make_unique<Of<float>>(args...);
}

}  // namespace

void require_gpu() {
  gpu::require_device();
}

PeakDeviceMemory::PeakDeviceMemory() : meter_(std::make_unique<gpu::PeakMemoryMeter>()) {}
PeakDeviceMemory::~PeakDeviceMemory() = default;
double PeakDeviceMemory::mib() const {
  return meter_->mib();
}

// ---- training step ----------------------------------------------------------

struct TrainStepWorkload::Model {
  virtual ~Model() = default;
  virtual double step() = 0;
  virtual void synchronize() = 0;
  index_t tokens_per_step = 0;
  double flops_per_token = 0;
};

namespace {

template <class T>
class TrainStepOf final : public TrainStepWorkload::Model {
 public:
  TrainStepOf(const TransformerConfig& config, index_t batch, Precision precision,
              std::uint64_t seed, const TrainStepOptions& step)
      : model_(config, seed),
        trainer_(model_, options(step.logits_padding)),
        tokens_(Shape{batch, config.context_length}),
        targets_(Shape{batch * config.context_length}) {
    apply_precision(model_.backend(), precision);
    model_.backend().set_attention_kernels(step.tensor_core_attention
                                               ? gpu::AttentionKernels::TensorCores
                                               : gpu::AttentionKernels::CudaCores);
    model_.backend().set_gemm_epilogues(step.gemm_epilogues);
    // Targets are the tokens shifted by one, as in language-model training.
    const index_t n = batch * config.context_length;
    const auto ids = random_ids(n + 1, config.vocab_size, seed);
    from_host(model_.backend(), tokens_.view(), ids.data());
    from_host(model_.backend(), targets_.view(), ids.data() + 1);
    tokens_per_step = n;
    flops_per_token = train_flops_per_token(config, model_.parameters().size());
  }

  double step() override { return trainer_.step(tokens_.view(), targets_.view()).loss; }
  void synchronize() override { model_.backend().synchronize(); }

 private:
  static LmTrainerOptions options(index_t logits_padding) {
    LmTrainerOptions o;
    o.schedule.peak_lr = o.schedule.min_lr = 1e-4;
    o.logits_padding = logits_padding;
    return o;
  }

  TransformerLM<Cuda, T> model_;
  LmTrainer<Cuda, T> trainer_;
  Tensor<std::int32_t, Cuda> tokens_, targets_;
};

}  // namespace

TrainStepWorkload::TrainStepWorkload(const TransformerConfig& config, index_t batch,
                                     Precision precision, std::uint64_t seed,
                                     const TrainStepOptions& options)
    : model_(make_for_storage<TrainStepOf, Model>(precision, config, batch, precision, seed,
                                                  options)) {}
TrainStepWorkload::~TrainStepWorkload() = default;

double TrainStepWorkload::step() {
  return model_->step();
}
void TrainStepWorkload::synchronize() {
  model_->synchronize();
}
index_t TrainStepWorkload::tokens_per_step() const {
  return model_->tokens_per_step;
}
double TrainStepWorkload::flops_per_token() const {
  return model_->flops_per_token;
}

// ---- generation -------------------------------------------------------------

struct GenerateWorkload::Model {
  virtual ~Model() = default;
  virtual void run() = 0;
  index_t new_tokens_per_call = 0;
};

namespace {

template <class T>
class GenerateOf final : public GenerateWorkload::Model {
 public:
  GenerateOf(const TransformerConfig& config, index_t batch, index_t prompt_length,
             index_t new_tokens, Precision precision, std::uint64_t seed, Draws draws)
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
    new_tokens_per_call = batch * new_tokens;
  }

  void run() override {
    options_.seed += 1;
    const auto out = generator_.generate(prompts_, sampling_, options_);
    NLA_CHECK(out.size() == prompts_.size(), "bench::GenerateWorkload",
              "{} generations for {} prompts", out.size(), prompts_.size());
  }

 private:
  TransformerLM<Cuda, T> model_;
  Generator<Cuda, T> generator_;
  std::vector<std::vector<std::int32_t>> prompts_;
  SamplingOptions sampling_;
  GenerateOptions options_;
};

}  // namespace

GenerateWorkload::GenerateWorkload(const TransformerConfig& config, index_t batch,
                                   index_t prompt_length, index_t new_tokens, Precision precision,
                                   std::uint64_t seed, Draws draws)
    : model_(make_for_storage<GenerateOf, Model>(precision, config, batch, prompt_length,
                                                 new_tokens, precision, seed, draws)) {}
GenerateWorkload::~GenerateWorkload() = default;

void GenerateWorkload::run() {
  model_->run();
}
index_t GenerateWorkload::new_tokens_per_call() const {
  return model_->new_tokens_per_call;
}

}  // namespace nla::bench
