// Throughput of the Cuda backend on the GPU benchmark workloads
// (benchmarks/workloads/cuda_workloads.hpp): a full training step, or batched
// generation with the KV cache, in fp32, TF32 or bf16.
//
//   cuda_throughput --task train --config gpt2-124m --precision bf16 --batch 16
//   cuda_throughput --task train --config small --precision bf16 --batch 64
//   cuda_throughput --task generate --config gpt2-124m --precision bf16 --batch 64
//
// Prints one JSON line per timed window (--windows) and a final line with
// the throughput (train: tokens_per_s, step_ms and mfu, the model FLOPs
// utilisation against an H100 SXM's dense peak, --peak-tflops to override;
// generate: new_tokens_per_s and call_ms; --draws host for the former host
// sampling) and peak_memory_mib, the most
// device memory nla held (PyTorch's max_memory_reserved is the matching
// figure; neither counts the CUDA context). benchmarks/compare_pytorch_gpu.sh
// runs it beside benchmarks/pytorch_reference.py. Exits with a clear error
// (status 1) on a machine without a usable GPU.

#include <chrono>
#include <cstdint>
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cuda_workloads.hpp"

namespace {

using namespace nla;
using json = nlohmann::json;

struct Args {
  std::string task = "train", config = "gpt2-124m", precision = "bf16", draws = "device";
  std::string attention = "tensor-cores", epilogues = "fused";
  index_t batch = 16, prompt = 64, new_tokens = 64;
  index_t steps = 20, warmup = 3, windows = 1;
  index_t logits_padding = kAlignedLogitsPadding;
  std::uint64_t seed = 1;
  double peak_tflops = 0;  // 0: the H100 SXM dense peak of the precision
};

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Runs `warmup` untimed calls of `call`, then `windows` windows of `steps`
// timed calls each, printing a JSON line per window; returns the seconds
// per call over all windows.
template <class Call, class Sync>
double time_calls(const Args& a, Call call, Sync synchronize) {
  for (index_t s = 0; s < a.warmup; ++s) call();
  synchronize();
  double total = 0;
  for (index_t w = 0; w < a.windows; ++w) {
    const auto start = std::chrono::steady_clock::now();
    for (index_t s = 0; s < a.steps; ++s) call();
    synchronize();
    const double seconds = seconds_since(start);
    total += seconds;
    std::cout << json{{"window", w}, {"calls", a.steps}, {"call_ms", 1e3 * seconds / a.steps}}
              << std::endl;
  }
  return total / double(a.steps * a.windows);
}

json run(const Args& a) {
  const TransformerConfig config = bench::gpu_preset(a.config);
  const bench::Precision precision = bench::parse_precision(a.precision);
  const bench::PeakDeviceMemory memory;
  json out{{"example", "cuda_throughput"}, {"task", a.task},   {"config", a.config},
           {"precision", a.precision},     {"batch", a.batch}, {"seed", a.seed}};
  if (a.task == "train") {
    bench::TrainStepOptions options;
    options.logits_padding = a.logits_padding;
    options.tensor_core_attention = a.attention == "tensor-cores";
    options.gemm_epilogues = a.epilogues == "fused";
    bench::TrainStepWorkload work(config, a.batch, precision, a.seed, options);
    double loss = 0;
    const double s = time_calls(
        a, [&] { loss = work.step(); }, [&] { work.synchronize(); });
    const double tokens_per_s = double(work.tokens_per_step()) / s;
    const double peak =
        (a.peak_tflops > 0 ? a.peak_tflops : bench::h100_sxm_peak_tflops(precision));
    out.update({{"context", config.context_length},
                {"logits_padding", a.logits_padding},
                {"attention", a.attention},
                {"epilogues", a.epilogues},
                {"final_loss", loss},
                {"step_ms", 1e3 * s},
                {"tokens_per_s", tokens_per_s},
                {"mfu", tokens_per_s * work.flops_per_token() / (peak * 1e12)}});
  } else {
    bench::GenerateWorkload work(config, a.batch, a.prompt, a.new_tokens, precision, a.seed,
                                 a.draws == "host" ? bench::Draws::Host : bench::Draws::Device);
    const double s = time_calls(
        a, [&] { work.run(); }, [] {});
    out.update({{"draws", a.draws},
                {"prompt_tokens", a.prompt},
                {"new_tokens", a.new_tokens},
                {"call_ms", 1e3 * s},
                {"new_tokens_per_s", double(work.new_tokens_per_call()) / s}});
  }
  out["peak_memory_mib"] = memory.mib();
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  CLI::App app{"Throughput of the Cuda backend: a training step or KV-cache generation"};
  app.add_option("--task", a.task, "train or generate")
      ->check(CLI::IsMember({"train", "generate"}));
  app.add_option("--config", a.config, "gpt2-124m, small or tiny")
      ->check(CLI::IsMember({"gpt2-124m", "small", "tiny"}));
  app.add_option("--precision", a.precision, "fp32, tf32 or bf16")
      ->check(CLI::IsMember({"fp32", "tf32", "bf16"}));
  app.add_option("--batch", a.batch, "sequences per step or per generation")
      ->check(CLI::PositiveNumber);
  app.add_option("--prompt", a.prompt, "generate: prompt tokens per sequence")
      ->check(CLI::PositiveNumber);
  app.add_option("--draws", a.draws,
                 "generate: device (tokens drawn where the logits are) or host (logits "
                 "downloaded and drawn on the host)")
      ->check(CLI::IsMember({"device", "host"}));
  app.add_option("--new-tokens", a.new_tokens, "generate: tokens drawn per sequence")
      ->check(CLI::PositiveNumber);
  app.add_option("--logits-padding", a.logits_padding,
                 "train: pad the logits' rows to a multiple of this (1: no padding)")
      ->check(CLI::PositiveNumber);
  app.add_option("--attention", a.attention,
                 "train: tensor-cores (bf16 and tf32 where the GPU has them) or cuda-cores "
                 "(the fp32 flash kernels)")
      ->check(CLI::IsMember({"tensor-cores", "cuda-cores"}));
  app.add_option("--epilogues", a.epilogues,
                 "train: fused (bias and GELU in cuBLASLt's GEMM epilogues) or separate "
                 "(kernels of their own)")
      ->check(CLI::IsMember({"fused", "separate"}));
  app.add_option("--steps", a.steps, "timed steps (or generations) per window")
      ->check(CLI::PositiveNumber);
  app.add_option("--warmup", a.warmup, "untimed steps first")->check(CLI::NonNegativeNumber);
  app.add_option("--windows", a.windows, "timed windows")->check(CLI::PositiveNumber);
  app.add_option("--seed", a.seed, "seed of the weights, tokens and samples");
  app.add_option("--peak-tflops", a.peak_tflops, "peak for mfu (default: H100 SXM dense)");
  CLI11_PARSE(app, argc, argv);
  try {
    std::cout << run(a).dump() << std::endl;
  } catch (const std::exception& e) {
    std::cerr << "cuda_throughput: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
