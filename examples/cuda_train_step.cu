// Training-step throughput of TransformerLM on the Cuda backend: forward,
// cross-entropy, backward, global-norm clipping and AdamW, timed over
// --steps steps after --warmup, for fp32, TF32 (fp32 storage, TF32 tensor-core
// GEMMs) or bf16 (bf16 storage and GEMMs, fp32 accumulation, fp32 master
// weights and optimiser state).
//
//   cuda_train_step --config gpt2-124m --precision bf16 --batch 16
//
// Prints one JSON line per timed window and a final line with tokens_per_s,
// step_ms and mfu: model FLOPs utilisation, counting 6 N flops per token for
// the weights (N = parameters without the position table) plus 12 L T d for
// attention (Kaplan et al.; Chowdhery et al., appendix B), against the dense
// peak of an H100 SXM (--peak-tflops to override). Exits with a clear error
// (status 1) on a machine without a usable GPU.

#include <chrono>
#include <cstdint>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "nla/backend/cuda.cuh"
#include "nla/nla.hpp"

namespace {

using namespace nla;
using json = nlohmann::json;

struct Args {
  std::string config = "gpt2-124m", precision = "bf16";
  index_t batch = 16, steps = 20, warmup = 3;
  std::uint64_t seed = 1;
  double peak_tflops = 0;  // 0: H100 SXM dense peak for the precision
};

TransformerConfig named_config(const std::string& name) {
  if (name == "gpt2-124m") return TransformerConfig::gpt2(50257, 1024, 768, 12, 12);
  if (name == "small") return TransformerConfig::gpt2(4096, 128, 256, 6, 8);
  return TransformerConfig::gpt2(512, 64, 128, 4, 4);  // tiny
}

double default_peak_tflops(const std::string& precision) {
  // H100 SXM5, dense: fp32 67, TF32 494.7, bf16 989.4 TFLOPS.
  return precision == "bf16" ? 989.4 : precision == "tf32" ? 494.7 : 66.9;
}

template <class T>
json run(const Args& a) {
  const TransformerConfig config = named_config(a.config);
  TransformerLM<Cuda, T> model(config, a.seed);
  Cuda& gpu = model.backend();
  if (a.precision == "tf32") gpu.set_gemm_precision(gpu::GemmPrecision::Tf32);
  AdamW<Cuda, T> optimizer(model.parameters(), AdamWOptions{});
  const index_t t = config.context_length, n = a.batch * t;
  std::vector<std::int32_t> ids(static_cast<std::size_t>(n + 1));
  for (index_t i = 0; i <= n; ++i)
    ids[i] =
        std::int32_t(random_bits(a.seed, 1, std::uint64_t(i)) % std::uint64_t(config.vocab_size));
  Tensor<std::int32_t, Cuda> tokens(Shape{a.batch, t}), targets(Shape{n});
  from_host(gpu, tokens.view(), ids.data());
  from_host(gpu, targets.view(), ids.data() + 1);
  LmActivations<T, Cuda> acts;

  double loss = 0;
  auto step = [&] {
    model.forward(tokens.view(), acts);
    loss = model.loss(acts, targets.view());
    model.zero_grad();
    model.backward(acts);
    clip_grad_norm(gpu, model.parameters(), 1.0);
    optimizer.step(gpu, model.parameters(), 1e-4);
  };
  for (index_t s = 0; s < a.warmup; ++s) step();
  gpu.synchronize();
  const auto start = std::chrono::steady_clock::now();
  for (index_t s = 0; s < a.steps; ++s) step();
  gpu.synchronize();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  const double tokens_per_s = double(n) * double(a.steps) / seconds;
  index_t weights = model.parameters().size();
  if (config.flavour == Flavour::Gpt2) weights -= config.context_length * config.d_model;
  const double flops_per_token =
      6.0 * double(weights) + 12.0 * double(config.n_layers * t * config.d_model);
  const double peak = (a.peak_tflops > 0 ? a.peak_tflops : default_peak_tflops(a.precision)) * 1e12;
  return json{{"example", "cuda_train_step"},
              {"config", a.config},
              {"precision", a.precision},
              {"batch", a.batch},
              {"context", t},
              {"steps", a.steps},
              {"seed", a.seed},
              {"final_loss", loss},
              {"step_ms", 1e3 * seconds / double(a.steps)},
              {"tokens_per_s", tokens_per_s},
              {"mfu", tokens_per_s * flops_per_token / peak}};
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  CLI::App app{"Training-step throughput of TransformerLM on the Cuda backend"};
  app.add_option("--config", a.config, "gpt2-124m, small or tiny")
      ->check(CLI::IsMember({"gpt2-124m", "small", "tiny"}));
  app.add_option("--precision", a.precision, "fp32, tf32 or bf16")
      ->check(CLI::IsMember({"fp32", "tf32", "bf16"}));
  app.add_option("--batch", a.batch, "sequences per step")->check(CLI::PositiveNumber);
  app.add_option("--steps", a.steps, "timed steps")->check(CLI::PositiveNumber);
  app.add_option("--warmup", a.warmup, "untimed steps first")->check(CLI::NonNegativeNumber);
  app.add_option("--seed", a.seed, "seed of the weights and tokens");
  app.add_option("--peak-tflops", a.peak_tflops, "peak for mfu (default: H100 SXM dense)");
  CLI11_PARSE(app, argc, argv);
  try {
    const json result = a.precision == "bf16" ? run<bf16>(a) : run<float>(a);
    std::cout << result.dump() << std::endl;
  } catch (const std::exception& e) {
    std::cerr << "cuda_train_step: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
