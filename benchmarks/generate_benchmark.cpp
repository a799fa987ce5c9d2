// Batched sampling with the KV cache: prefill a prompt, then draw new tokens
// one at a time at temperature 1, reported as new tokens per second of wall
// time (prefill included, as in benchmarks/pytorch_reference.py --task generate).
//   tiny:  batch 64, prompt 32, 32 new tokens
//   small: batch 16, prompt 64, 64 new tokens

#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "bench_configs.hpp"
#include "nla/backend/cpu.hpp"
#include "nla/rl/generate.hpp"

namespace {

using namespace nla;

struct GenerateShape {
  index_t batch, prompt, new_tokens;
};

void generate(benchmark::State& state, Flavour flavour, bench::BenchConfig b, GenerateShape g) {
  TransformerLM<Cpu, float> model(bench::model_config(flavour, b), 1);
  Generator<Cpu, float> generator(model);
  const auto ids = bench::random_tokens<Cpu>(Shape{g.batch, g.prompt}, b.vocab, 2);
  std::vector<std::vector<std::int32_t>> prompts(g.batch);
  for (index_t i = 0; i < g.batch; ++i)
    prompts[i].assign(ids.data() + i * g.prompt, ids.data() + (i + 1) * g.prompt);
  SamplingOptions sampling;
  sampling.max_new_tokens = g.new_tokens;
  GenerateOptions options;
  std::uint64_t seed = 0;
  generator.generate(prompts, sampling, options);  // warm-up: buffers reach their size
  for (auto _ : state) {
    options.seed = ++seed;
    auto out = generator.generate(prompts, sampling, options);
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["new_tokens_per_s"] = benchmark::Counter(
      double(g.batch * g.new_tokens), benchmark::Counter::kIsIterationInvariantRate);
}

const bool registered = [] {
  for (Flavour f : {Flavour::Gpt2, Flavour::Llama}) {
    for (const auto& [b, g] : {std::pair{bench::kTiny, GenerateShape{64, 32, 32}},
                               std::pair{bench::kSmall, GenerateShape{16, 64, 64}}})
      benchmark::RegisterBenchmark(
          (std::string("Generate/") + flavour_name(f) + "/" + b.name).c_str(),
          [f, b = b, g = g](benchmark::State& s) { generate(s, f, b, g); })
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime()
          ->MinTime(1.0);
  }
  return true;
}();

}  // namespace
