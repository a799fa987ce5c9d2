// Google Benchmark of the Cuda backend on the GPU workloads of
// benchmarks/workloads/cuda_workloads.hpp, with the shapes the PyTorch
// references were measured at (docs/performance.md):
//   TrainStep/gpt2-124m/{fp32,tf32,bf16}  batch 16, context 1024
//   TrainStep/gpt2-124m/bf16/unpadded-logits  the same, logits rows of 50257
//                                         (LM-head GEMMs on unaligned rows)
//   TrainStep/gpt2-124m/{tf32,bf16}/cuda-core-attention  the same, attention
//                                         on the CUDA-core flash kernels
//   TrainStep/gpt2-124m/bf16/separate-epilogues  the same, bias and GELU as
//                                         kernels of their own
//   TrainStep/small/{fp32,bf16}           batch 64, context 128
//   Generate/gpt2-124m/bf16               batch 64, prompt 64, 64 new tokens,
//                                         tokens drawn on the device
//   Generate/gpt2-124m/bf16/host-draws    the same, the logits drawn on the host
// Counters: tokens_per_s (or new_tokens_per_s), mfu for training, and
// peak_memory_mib, the most device memory nla held while the benchmark ran.
// Without a usable GPU it stops with the clear error and status 1.

#include <benchmark/benchmark.h>

#include <iostream>
#include <string>

#include "cuda_workloads.hpp"

namespace {

using namespace nla;
using bench::Precision;

struct Case {
  const char* preset;
  const char* precision;
  index_t batch;
  bench::TrainStepOptions options = {};
};

void train_step(benchmark::State& state, Case c) {
  const bench::PeakDeviceMemory memory;
  const Precision precision = bench::parse_precision(c.precision);
  bench::TrainStepWorkload work(bench::gpu_preset(c.preset), c.batch, precision, 1, c.options);
  work.step();  // warm-up: buffers, plans and the temporary cache reach their size
  for (auto _ : state) benchmark::DoNotOptimize(work.step());
  work.synchronize();
  const double tokens = double(work.tokens_per_step());
  state.counters["tokens_per_s"] =
      benchmark::Counter(tokens, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["mfu"] = benchmark::Counter(
      tokens * work.flops_per_token() / (bench::h100_sxm_peak_tflops(precision) * 1e12),
      benchmark::Counter::kIsIterationInvariantRate);
  state.counters["peak_memory_mib"] = memory.mib();
}

void generate(benchmark::State& state, Case c, index_t prompt, index_t new_tokens,
              bench::Draws draws) {
  const bench::PeakDeviceMemory memory;
  bench::GenerateWorkload work(bench::gpu_preset(c.preset), c.batch, prompt, new_tokens,
                               bench::parse_precision(c.precision), 1, draws);
  work.run();  // warm-up
  for (auto _ : state) work.run();
  state.counters["new_tokens_per_s"] = benchmark::Counter(
      double(work.new_tokens_per_call()), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["peak_memory_mib"] = memory.mib();
}

// A failure (out of memory, say) skips that benchmark with its message.
template <class Run>
void add(const std::string& name, Run run) {
  benchmark::RegisterBenchmark(name.c_str(),
                               [run](benchmark::State& state) {
                                 try {
                                   run(state);
                                 } catch (const std::exception& e) {
                                   state.SkipWithError(e.what());
                                 }
                               })
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime()
      ->MinTime(2.0);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    bench::require_gpu();
  } catch (const std::exception& e) {
    std::cerr << "nla_cuda_benchmark: " << e.what() << "\n";
    return 1;
  }
  for (Case c :
       {Case{"gpt2-124m", "fp32", 16}, Case{"gpt2-124m", "tf32", 16}, Case{"gpt2-124m", "bf16", 16},
        Case{"small", "fp32", 64}, Case{"small", "bf16", 64}})
    add(std::string("TrainStep/") + c.preset + "/" + c.precision,
        [c](benchmark::State& s) { train_step(s, c); });
  bench::TrainStepOptions unpadded, cuda_cores, separate_epilogues;
  unpadded.logits_padding = 1;
  cuda_cores.tensor_core_attention = false;
  separate_epilogues.gemm_epilogues = false;
  add("TrainStep/gpt2-124m/bf16/unpadded-logits", [unpadded](benchmark::State& s) {
    train_step(s, Case{"gpt2-124m", "bf16", 16, unpadded});
  });
  add("TrainStep/gpt2-124m/bf16/separate-epilogues", [separate_epilogues](benchmark::State& s) {
    train_step(s, Case{"gpt2-124m", "bf16", 16, separate_epilogues});
  });
  for (const char* precision : {"tf32", "bf16"})
    add(std::string("TrainStep/gpt2-124m/") + precision + "/cuda-core-attention",
        [precision, cuda_cores](benchmark::State& s) {
          train_step(s, Case{"gpt2-124m", precision, 16, cuda_cores});
        });
  for (bench::Draws draws : {bench::Draws::Device, bench::Draws::Host})
    add(std::string("Generate/gpt2-124m/bf16") + (draws == bench::Draws::Host ? "/host-draws" : ""),
        [draws](benchmark::State& s) {
          generate(s, Case{"gpt2-124m", "bf16", 64}, 64, 64, draws);
        });
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
