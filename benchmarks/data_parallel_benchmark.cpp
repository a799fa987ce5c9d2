// Data parallelism over MPI, run under mpirun (benchmarks/run_scaling.sh):
//
//   AllReduce/<mode>/<config>  one all-reduce of the config's flat fp32
//       gradient buffer. bytes_per_s: buffer bytes / time (algorithm
//       bandwidth); bus_bytes_per_s: 2 (w - 1) / w of that, the bytes each
//       rank moves in a bandwidth-optimal all-reduce (comparable across w).
//   DataParallelStep/<flavour>/<config>  one LmTrainer step with the config's
//       batch on every rank (weak scaling): tokens_per_s over all ranks and
//       allreduce_share, the part of the step in gradient collectives.
//
// Every rank runs every benchmark for a fixed number of iterations, so the
// ranks call the same collectives; rank 0 alone reports.

#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "bench_configs.hpp"
#include "nla/backend/cpu.hpp"
#include "nla/dist/data_parallel.hpp"
#include "nla/dist/mpi_communicator.hpp"
#include "nla/train/lm_trainer.hpp"

namespace {

using namespace nla;

MpiCommunicator* world = nullptr;

index_t parameter_count(Flavour flavour, const bench::BenchConfig& b) {
  return TransformerLM<Cpu, float>(bench::model_config(flavour, b), 1).parameters().size();
}

void all_reduce(benchmark::State& state, MpiCommunicator::Reduction mode, index_t n) {
  MpiCommunicator comm(mode);
  std::vector<float> buffer(static_cast<std::size_t>(n), 1.0f);
  comm.all_reduce_sum(buffer.data(), n, DataType::F32);  // warm-up
  for (auto _ : state) comm.all_reduce_sum(buffer.data(), n, DataType::F32);
  const double bytes = double(n) * sizeof(float), w = comm.size();
  state.counters["bytes_per_s"] =
      benchmark::Counter(bytes, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["bus_bytes_per_s"] = benchmark::Counter(
      w > 1 ? bytes * 2 * (w - 1) / w : 0.0, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["ranks"] = w;
  state.counters["parameters"] = double(n);
}

void data_parallel_step(benchmark::State& state, Flavour flavour, bench::BenchConfig b) {
  TransformerLM<Cpu, float> model(bench::model_config(flavour, b), 1);
  LmTrainerOptions options;
  options.schedule.peak_lr = options.schedule.min_lr = 1e-4;
  LmTrainer<Cpu, float> trainer(model, options);
  const DataParallel dp(*world);
  trainer.set_data_parallel(dp);
  const std::uint64_t seed = 2 + 2 * std::uint64_t(dp.rank());
  const auto tokens = bench::random_tokens<Cpu>(Shape{b.batch, b.context}, b.vocab, seed);
  const auto targets = bench::random_tokens<Cpu>(Shape{b.batch * b.context}, b.vocab, seed + 1);
  trainer.step(tokens.view(), targets.view());  // warm-up: buffers reach their size
  dp.reset_communication();
  for (auto _ : state) {
    const auto r = trainer.step(tokens.view(), targets.view());
    benchmark::DoNotOptimize(r.loss);
  }
  const double tokens_per_step = double(b.batch * b.context * dp.size());
  state.counters["tokens_per_s"] =
      benchmark::Counter(tokens_per_step, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["allreduce_s_per_step"] = dp.communication().seconds / double(state.iterations());
  state.counters["ranks"] = dp.size();
}

void register_all() {
  for (const auto& b : {bench::kTiny, bench::kSmall}) {
    const index_t n = parameter_count(Flavour::Gpt2, b);
    for (auto [mode, name] : {std::pair{MpiCommunicator::Reduction::RankOrdered, "rank_ordered"},
                              std::pair{MpiCommunicator::Reduction::Native, "native"}})
      benchmark::RegisterBenchmark(
          (std::string("AllReduce/") + name + "/" + b.name).c_str(),
          [mode = mode, n](benchmark::State& s) { all_reduce(s, mode, n); })
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime()
          ->Iterations(20);
  }
  for (const auto& b : {bench::kTiny, bench::kSmall})
    benchmark::RegisterBenchmark(
        (std::string("DataParallelStep/gpt2/") + b.name).c_str(),
        [b](benchmark::State& s) { data_parallel_step(s, Flavour::Gpt2, b); })
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime()
        ->Iterations(b.name == std::string("tiny") ? 20 : 6);
}

// Reports nothing: the other ranks' view of the same run.
class SilentReporter : public benchmark::BenchmarkReporter {
 public:
  bool ReportContext(const Context&) override { return true; }
  void ReportRuns(const std::vector<Run>&) override {}
};

}  // namespace

int main(int argc, char** argv) {
  MpiCommunicator comm;
  world = &comm;
  benchmark::Initialize(&argc, argv);
  register_all();
  if (comm.rank() == 0) {
    benchmark::RunSpecifiedBenchmarks();
  } else {
    SilentReporter silent;  // (rank 0 alone should get --benchmark_out, if any)
    benchmark::RunSpecifiedBenchmarks(&silent);
  }
  benchmark::Shutdown();
  return 0;
}
