// Data parallelism on MPI, run by ctest as `mpirun -np 2 nla_mpi_tests`
// (any number of ranks works). Every rank also computes the single-process
// reference locally, so each test compares w ranks with one process.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <thread>

#include "dist/mpi_world.hpp"
#include "nla/bottleneck/autoencoder.hpp"
#include "nla/bottleneck/nla_checkpoint.hpp"
#include "nla/bottleneck/reconstructor_decoder.hpp"
#include "nla/bottleneck/verbalizer_encoder.hpp"
#include "nla/dist/data_parallel.hpp"
#include "nla/nla.hpp"
#include "nla/train/lm_trainer.hpp"
#include "support/tiny_text_nla.hpp"

using namespace nla;
using namespace nla::testing;

namespace {

std::vector<double> host_values(const ParameterSet<double, Cpu>& p) {
  return {p.values().data(), p.values().data() + p.size()};
}

double max_abs_difference(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

// How errors from rank r name it: "rank r of w" (one process rethrows as is).
std::string rank_prefix(int r) {
  const int w = world().size();
  return w > 1 ? fmt::format("rank {} of {}", r, w) : std::string();
}

// ---- language model ----

constexpr index_t kVocab = 32, kTime = 12, kRowsPerRank = 3;

TransformerConfig lm_config() {
  return TransformerConfig::gpt2(kVocab, kTime, 16, 2, 2);
}

LmTrainerOptions lm_options() {
  LmTrainerOptions o;
  o.schedule = {3e-3, 3e-4, 3, 20};
  o.clip_norm = 0.5;
  return o;
}

// Global batch of step s: rows [rows, kTime] of tokens and next-token targets.
struct GlobalBatch {
  index_t rows = 0;
  std::vector<std::int32_t> tokens, targets;
};
GlobalBatch global_batch(index_t rows, index_t step) {
  GlobalBatch b;
  b.rows = rows;
  for (index_t i = 0; i < rows * kTime; ++i) {
    b.tokens.push_back(std::int32_t(random_bits(5, std::uint64_t(step), i) % kVocab));
    b.targets.push_back(std::int32_t(random_bits(6, std::uint64_t(step), i) % kVocab));
  }
  return b;
}
// Rows [first, last) as tensors.
struct LocalBatch {
  Tensor<std::int32_t, Cpu> tokens, targets;
};
LocalBatch rows_of(const GlobalBatch& g, Partition p) {
  LocalBatch l;
  l.tokens = Tensor<std::int32_t, Cpu>(Shape{p.size(), kTime});
  l.targets = Tensor<std::int32_t, Cpu>(Shape{p.size() * kTime});
  std::copy(g.tokens.begin() + p.first * kTime, g.tokens.begin() + p.last * kTime, l.tokens.data());
  std::copy(g.targets.begin() + p.first * kTime, g.targets.begin() + p.last * kTime,
            l.targets.data());
  return l;
}

// One process emulating w ranks: the gradients of w micro-batches, each
// scaled by 1 / w, summed in rank order, then clip and AdamW, exactly as
// DataParallel::update does with the rank-ordered reduction.
void micro_batch_step(TransformerLM<Cpu, double>& lm, AdamW<Cpu, double>& opt,
                      const LmTrainerOptions& o, const GlobalBatch& g, int w) {
  auto& params = lm.parameters();
  std::vector<double> sum(std::size_t(params.size()), 0.0);
  LmActivations<double, Cpu> acts;
  for (int r = 0; r < w; ++r) {
    const LocalBatch l = rows_of(g, partition(g.rows, r, w));
    lm.forward(l.tokens.view(), acts);
    lm.loss(acts, l.targets.view());
    lm.zero_grad();
    lm.backward(acts);
    if (w > 1) scale(lm.backend(), params.grads().data(), params.size(), 1.0 / w);
    const double* grad = params.grads().data();
    for (std::size_t i = 0; i < sum.size(); ++i) sum[i] = r == 0 ? grad[i] : sum[i] + grad[i];
  }
  std::copy(sum.begin(), sum.end(), params.grads().data());
  clip_grad_norm(lm.backend(), params, o.clip_norm);
  opt.step(lm.backend(), params, o.schedule(opt.step_count()));
}

// w ranks data parallel from step `first` to `last`.
void data_parallel_steps(LmTrainer<Cpu, double>& trainer, index_t first, index_t last) {
  const DataParallel& dp = trainer.data_parallel();
  for (index_t s = first; s < last; ++s) {
    const GlobalBatch g = global_batch(kRowsPerRank * dp.size(), s);
    const LocalBatch l = rows_of(g, dp.batch_slice(g.rows, "test"));
    trainer.step(l.tokens.view(), l.targets.view());
  }
}

}  // namespace

TEST_CASE("rank-ordered all-reduce sums in rank order on every rank", "[mpi]") {
  MpiCommunicator& comm = world();
  const int w = comm.size(), me = comm.rank();
  for (index_t n : {0, 1, 7, 1000}) {
    // Every rank's values, computed once and stored, so that the reference
    // sums below are plain additions (nothing for the compiler to fuse).
    std::vector<std::vector<double>> value(static_cast<std::size_t>(w));
    for (int r = 0; r < w; ++r)
      for (index_t i = 0; i < n; ++i) value[r].push_back(0.1 * (r + 1) + 1e-3 * double(i));
    std::vector<double> x = value[me];
    std::vector<float> xf(x.begin(), x.end());
    std::vector<bf16> xb(xf.begin(), xf.end());
    std::vector<std::int64_t> xi(static_cast<std::size_t>(n));
    for (index_t i = 0; i < n; ++i) xi[i] = me + i;
    all_reduce_sum(comm, x.data(), n);
    all_reduce_sum(comm, xf.data(), n);
    all_reduce_sum(comm, xb.data(), n);
    all_reduce_sum(comm, xi.data(), n);
    for (index_t i = 0; i < n; ++i) {
      double e = value[0][i];
      float ef = float(value[0][i]), eb = float(bf16(float(value[0][i])));
      std::int64_t ei = 0;
      for (int r = 1; r < w; ++r) {
        e += value[r][i];
        ef += float(value[r][i]);
        eb += float(bf16(float(value[r][i])));
      }
      for (int r = 0; r < w; ++r) ei += r + i;
      REQUIRE(x[i] == e);  // bit-identical: the same additions in the same order
      REQUIRE(xf[i] == ef);
      REQUIRE(float(xb[i]) == float(bf16(eb)));
      REQUIRE(xi[i] == ei);
    }
  }
  MpiCommunicator native(MpiCommunicator::Reduction::Native);
  std::vector<double> y(100, double(me + 1));
  all_reduce_sum(native, y.data(), 100);
  for (double v : y) REQUIRE(v == Approx(w * (w + 1) / 2.0));
}

TEST_CASE("started all-reduces run together and equal blocking ones, waited in any order",
          "[mpi]") {
  MpiCommunicator& ordered = world();
  MpiCommunicator native(MpiCommunicator::Reduction::Native);
  const int w = ordered.size(), me = ordered.rank();
  for (MpiCommunicator* comm : {&ordered, &native}) {
    DYNAMIC_SECTION(comm->name()) {
      // Buffers of different sizes and types, a blocking collective started
      // between them, waits in reverse order.
      std::vector<std::vector<float>> started, blocking;
      for (index_t n : {1000, 7, 0, 333, 2048}) {
        std::vector<float> x(static_cast<std::size_t>(n));
        for (index_t i = 0; i < n; ++i) x[i] = 0.1f * float(me + 1) + 1e-3f * float(i % 97);
        started.push_back(x);
        blocking.push_back(x);
      }
      std::vector<double> d(5, me + 1.0);
      std::vector<std::unique_ptr<PendingCollective>> pending;
      for (std::size_t k = 0; k < started.size(); ++k) {
        pending.push_back(comm->start_all_reduce_sum(started[k].data(), index_t(started[k].size()),
                                                     DataType::F32));
        if (k == 2) all_reduce_sum(*comm, d.data(), 5);
        pending.front()->progress();
      }
      for (auto it = pending.rbegin(); it != pending.rend(); ++it) (*it)->wait();
      for (auto& p : pending) REQUIRE(p->progress());
      for (auto& x : blocking) all_reduce_sum(*comm, x.data(), index_t(x.size()));
      for (std::size_t k = 0; k < started.size(); ++k)
        for (std::size_t i = 0; i < started[k].size(); ++i)
          REQUIRE(started[k][i] == blocking[k][i]);
      for (double v : d) REQUIRE(v == w * (w + 1) / 2.0);
    }
  }
}

TEST_CASE("broadcast, variable all-gather and barrier", "[mpi]") {
  MpiCommunicator& comm = world();
  const int w = comm.size(), me = comm.rank();
  std::vector<std::int32_t> b(5, me == w - 1 ? 42 : -1);
  comm.broadcast(b.data(), 5, DataType::I32, w - 1);
  for (auto v : b) REQUIRE(v == 42);
  // Rank r contributes r + 1 tokens (rank 0 might as well send none).
  std::vector<std::int32_t> mine(static_cast<std::size_t>(me + 1), me * 10);
  const auto all = all_gather_sequences(comm, mine);
  REQUIRE(int(all.size()) == w);
  for (int r = 0; r < w; ++r)
    REQUIRE(all[r] == std::vector<std::int32_t>(std::size_t(r + 1), r * 10));
  comm.barrier();
  REQUIRE_THROWS_WITH(comm.broadcast(b.data(), 5, DataType::I32, w), Catch::Contains("root"));
}

TEST_CASE("w ranks with batch B match one process with batch wB, and its micro-batches bit for bit",
          "[mpi][train]") {
  const int w = world().size();
  const auto o = lm_options();
  for (bool sharded : {false, true}) {
    INFO("ZeRO-1 sharded optimiser: " << sharded);
    TransformerLM<Cpu, double> dp_lm(lm_config(), 1), micro_lm(lm_config(), 1),
        whole_lm(lm_config(), 1);
    LmTrainer<Cpu, double> trainer(dp_lm, o);
    DataParallelOptions dpo;
    dpo.shard_optimizer = sharded;
    dpo.bucket_elements = 1000;  // several buckets
    trainer.set_data_parallel(DataParallel(world(), dpo));
    REQUIRE(trainer.optimizer().sharded() == (sharded && w > 1));
    AdamW<Cpu, double> micro_opt(micro_lm.parameters(), o.adamw);
    LmTrainer<Cpu, double> whole(whole_lm, o);
    data_parallel_steps(trainer, 0, 20);
    for (index_t s = 0; s < 20; ++s) {
      const GlobalBatch g = global_batch(kRowsPerRank * w, s);
      micro_batch_step(micro_lm, micro_opt, o, g, w);
      const LocalBatch all = rows_of(g, {0, g.rows});
      whole.step(all.tokens.view(), all.targets.view());
    }
    const auto dp = host_values(dp_lm.parameters());
    REQUIRE(dp == host_values(micro_lm.parameters()));
    // One GEMM over wB rows sums in another order than w GEMMs over B:
    // fp64 rounding, amplified by 20 AdamW steps, stays below 1e-10.
    REQUIRE(max_abs_difference(dp, host_values(whole_lm.parameters())) < 1e-10);
    // Every rank holds the same parameters.
    std::vector<double> root = dp;
    world().broadcast(root.data(), index_t(root.size()), DataType::F64, 0);
    REQUIRE(root == dp);
  }
}

TEST_CASE("an LM checkpoint of w ranks resumes in one process and back", "[mpi][io]") {
  const int w = world().size();
  const auto o = lm_options();
  SharedTempDir dir("lm_checkpoint");
  DataParallelOptions sharded;
  sharded.shard_optimizer = true;

  // Reference: one process, 20 micro-batched steps.
  TransformerLM<Cpu, double> ref_lm(lm_config(), 2);
  AdamW<Cpu, double> ref_opt(ref_lm.parameters(), o.adamw);
  for (index_t s = 0; s < 20; ++s)
    micro_batch_step(ref_lm, ref_opt, o, global_batch(kRowsPerRank * w, s), w);

  // w ranks (ZeRO-1) for 10 steps; rank 0 alone writes.
  {
    TransformerLM<Cpu, double> lm(lm_config(), 2);
    LmTrainer<Cpu, double> trainer(lm, o);
    trainer.set_data_parallel(DataParallel(world(), sharded));
    data_parallel_steps(trainer, 0, 10);
    TrainingState state;
    state.step = 10;
    trainer.save_checkpoint(dir.file("ranks.ckpt"), state);
  }
  // One process resumes it for 10 more.
  {
    TransformerLM<Cpu, double> lm(lm_config(), 99);
    AdamW<Cpu, double> opt;
    REQUIRE(load_checkpoint(dir.file("ranks.ckpt"), lm, opt).step == 10);
    for (index_t s = 10; s < 20; ++s)
      micro_batch_step(lm, opt, o, global_batch(kRowsPerRank * w, s), w);
    REQUIRE(host_values(lm.parameters()) == host_values(ref_lm.parameters()));
  }
  // And back: one process writes at step 10 (rank 0 only), w ranks resume.
  {
    TransformerLM<Cpu, double> lm(lm_config(), 2);
    AdamW<Cpu, double> opt(lm.parameters(), o.adamw);
    for (index_t s = 0; s < 10; ++s)
      micro_batch_step(lm, opt, o, global_batch(kRowsPerRank * w, s), w);
    TrainingState state;
    state.step = 10;
    DataParallel(world()).on_root("test",
                                  [&] { save_checkpoint(dir.file("one.ckpt"), lm, opt, state); });
  }
  {
    TransformerLM<Cpu, double> lm(lm_config(), 98);
    LmTrainer<Cpu, double> trainer(lm, o);
    trainer.set_data_parallel(DataParallel(world(), sharded));
    REQUIRE(trainer.load_checkpoint(dir.file("one.ckpt")).step == 10);
    REQUIRE(trainer.optimizer().sharded() == (w > 1));
    data_parallel_steps(trainer, 10, 20);
    REQUIRE(host_values(lm.parameters()) == host_values(ref_lm.parameters()));
  }
}

TEST_CASE("only rank 0 runs on_root, and its failure stops every rank", "[mpi][io]") {
  const DataParallel dp(world());
  std::vector<double> writes{0};
  dp.on_root("write", [&] { writes[0] += 1; });
  REQUIRE(writes[0] == (dp.is_root() ? 1 : 0));
  REQUIRE(dp.sum(writes)[0] == 1);
  REQUIRE_THROWS_WITH(dp.on_root("write log", [&] { throw Error("open", "disk full"); }),
                      Catch::Contains(world().size() > 1 ? "write log" : "") &&
                          Catch::Contains(rank_prefix(0)) && Catch::Contains("disk full"));
}

TEST_CASE("bad input or a NaN loss on one rank stops every rank with its message", "[mpi][train]") {
  const int w = world().size(), me = world().rank();
  TransformerLM<Cpu, double> lm(lm_config(), 3);
  LmTrainer<Cpu, double> trainer(lm, lm_options());
  trainer.set_data_parallel(DataParallel(world()));
  GlobalBatch g = global_batch(kRowsPerRank * w, 0);
  LocalBatch l = rows_of(g, trainer.data_parallel().batch_slice(g.rows, "test"));
  // The last rank reads a token outside the vocabulary.
  if (me == w - 1) l.tokens.data()[1] = kVocab + 5;
  const std::string expected_rank = rank_prefix(w - 1);
  REQUIRE_THROWS_WITH(trainer.step(l.tokens.view(), l.targets.view()),
                      Catch::Contains(expected_rank) && Catch::Contains("37"));
  // The ranks are still in step: a NaN loss (NaN weights) on the last rank.
  l = rows_of(g, trainer.data_parallel().batch_slice(g.rows, "test"));
  Tensor<float, Cpu> weights(Shape{l.targets.size()});
  std::fill(weights.data(), weights.data() + weights.size(), 1.0f);
  if (me == w - 1) weights.data()[2] = std::nanf("");
  REQUIRE_THROWS_WITH(trainer.step(l.tokens.view(), l.targets.view(), weights.view()),
                      Catch::Contains(expected_rank) && Catch::Contains("nan"));
  // And they still train together afterwards.
  const auto r = trainer.step(l.tokens.view(), l.targets.view());
  REQUIRE(std::isfinite(r.loss));
  if (w > 1)
    REQUIRE_THROWS_WITH(trainer.data_parallel().batch_slice(w * 3 + 1, "test"),
                        Catch::Contains("does not split evenly over"));
}

namespace {

ActivationBatch rows(const ActivationBatch& b, Partition p) {
  ActivationBatch out;
  out.dim = b.dim;
  out.vectors.assign(b.vectors.begin() + p.first * b.dim, b.vectors.begin() + p.last * b.dim);
  return out;
}

// The verbalizer and reconstructor of tests/bottleneck's checkpoint test.
struct TinyNla : TinyTextNla<double> {
  using TinyTextNla<double>::TinyTextNla;
  void set_data_parallel(const DataParallel& dp) { nla.set_data_parallel(dp); }
};

}  // namespace

TEST_CASE("joint RL on w ranks matches one process, and its checkpoint resumes anywhere",
          "[mpi][bottleneck]") {
  const int w = world().size();
  const index_t d = 16;
  TransformerLM<Cpu, double> target(TransformerConfig::llama(10, 16, d, 2, 2, 1), 21);
  const ActivationBatch batch = random_batch(2 * w, d, 22);
  SharedTempDir dir("nla_checkpoint");
  DataParallelOptions sharded;
  sharded.shard_optimizer = true;

  TinyNla one(target);
  TinyNla ranks(target);
  ranks.set_data_parallel(DataParallel(world(), sharded));
  const Partition mine = partition(batch.size(), world().rank(), w);
  for (int i = 0; i < 3; ++i) {
    const AutoencoderStep a = one.nla.step(batch);
    const AutoencoderStep b = ranks.nla.step(rows(batch, mine));
    // All G samples of an activation are drawn on its rank from the global
    // stream numbering, so the rewards are the ones one process computes.
    REQUIRE(double(b.encoder["reward_mean"]) ==
            Approx(double(a.encoder["reward_mean"])).margin(1e-9));
    REQUIRE(double(b.decoder["loss"]) == Approx(double(a.decoder["loss"])).margin(1e-9));
  }
  REQUIRE(max_abs_difference(one.state(), ranks.state()) < 1e-9);

  save_nla_checkpoint(dir.file("run"), ranks.encoder, ranks.decoder, 3);
  for (int i = 0; i < 2; ++i) ranks.nla.step(rows(batch, mine));
  // One process resumes the w-rank checkpoint: the same two steps.
  TinyNla resumed(target);
  REQUIRE(load_nla_checkpoint(dir.file("run"), resumed.encoder, resumed.decoder).step == 3);
  for (int i = 0; i < 2; ++i) resumed.nla.step(batch);
  REQUIRE(max_abs_difference(resumed.state(), ranks.state()) < 1e-9);
}

TEST_CASE("a NaN activation on one rank stops joint RL on every rank", "[mpi][bottleneck]") {
  const int w = world().size(), me = world().rank();
  const index_t d = 16;
  TransformerLM<Cpu, double> target(TransformerConfig::llama(10, 16, d, 2, 2, 1), 21);
  TinyNla ranks(target);
  ranks.set_data_parallel(DataParallel(world()));
  ActivationBatch local = rows(random_batch(2 * w, d, 22), partition(2 * w, me, w));
  if (me == w - 1) local.vectors[3] = std::nanf("");
  REQUIRE_THROWS_WITH(ranks.nla.step(local),
                      Catch::Contains(rank_prefix(w - 1)) && Catch::Contains("non-finite"));
}

// Run alone by ctest (mpi.collective_timeout): the last rank skips a
// barrier, so the others must give up after the timeout with a message
// instead of hanging.
TEST_CASE("a rank that stops calling collectives times the others out", "[.timeout]") {
  MpiCommunicator& comm = world();
  comm.set_timeout(2);
  if (comm.rank() != comm.size() - 1) comm.barrier();
  std::this_thread::sleep_for(std::chrono::seconds(20));
}
