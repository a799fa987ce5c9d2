// A full training step (forward, cross-entropy, backward, clipping, AdamW) of
// the benchmark configs, reported as tokens per second of wall time. The
// PyTorch side of the comparison is benchmarks/pytorch_reference.py, run
// beside this by benchmarks/compare_pytorch.sh.

#include <benchmark/benchmark.h>

#include <string>

#include "bench_configs.hpp"
#include "nla/backend/cpu.hpp"
#include "nla/train/lm_trainer.hpp"

namespace {

using namespace nla;

void train_step(benchmark::State& state, Flavour flavour, bench::BenchConfig b) {
  TransformerLM<Cpu, float> model(bench::model_config(flavour, b), 1);
  LmTrainerOptions options;
  options.schedule.peak_lr = options.schedule.min_lr = 1e-4;
  LmTrainer<Cpu, float> trainer(model, options);
  const auto tokens = bench::random_tokens<Cpu>(Shape{b.batch, b.context}, b.vocab, 2);
  const auto targets = bench::random_tokens<Cpu>(Shape{b.batch * b.context}, b.vocab, 3);
  trainer.step(tokens.view(), targets.view());  // warm-up: buffers reach their size
  for (auto _ : state) {
    const auto r = trainer.step(tokens.view(), targets.view());
    benchmark::DoNotOptimize(r.loss);
  }
  const double tokens_per_step = double(b.batch * b.context);
  state.counters["tokens_per_s"] =
      benchmark::Counter(tokens_per_step, benchmark::Counter::kIsIterationInvariantRate);
}

const bool registered = [] {
  for (Flavour f : {Flavour::Gpt2, Flavour::Llama})
    for (const auto& b : {bench::kTiny, bench::kSmall})
      benchmark::RegisterBenchmark(
          (std::string("TrainStep/") + flavour_name(f) + "/" + b.name).c_str(),
          [f, b](benchmark::State& s) { train_step(s, f, b); })
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime()
          ->MinTime(1.0);
  return true;
}();

}  // namespace
