// Data parallelism in one process: the pieces that need no peers. The
// multi-rank behaviour is tests/dist/mpi_data_parallel_test.cpp's (ctest
// runs it under mpirun).
#include <catch2/catch.hpp>

#include <stdexcept>

#include "nla/dist/data_parallel.hpp"
#include "nla/nla.hpp"
#include "support/temp_dir.hpp"

using namespace nla;

TEST_CASE("partition splits n items into contiguous parts differing by at most one", "[dist]") {
  for (index_t n : {0, 1, 5, 7, 100})
    for (int w : {1, 2, 3, 8}) {
      index_t next = 0;
      for (int r = 0; r < w; ++r) {
        const Partition p = partition(n, r, w);
        REQUIRE(p.first == next);
        REQUIRE((p.size() == n / w || p.size() == n / w + 1));
        next = p.last;
      }
      REQUIRE(next == n);
    }
}

TEST_CASE("the single-process communicator is the identity", "[dist]") {
  SingleProcessCommunicator& one = single_process();
  REQUIRE(one.rank() == 0);
  REQUIRE(one.size() == 1);
  std::vector<float> x{1.5f, -2.0f};
  all_reduce_sum(one, x.data(), 2);
  REQUIRE(x == std::vector<float>{1.5f, -2.0f});
  const auto gathered = all_gather_sequences(one, std::vector<std::int32_t>{4, 5, 6});
  REQUIRE(gathered == std::vector<std::vector<std::int32_t>>{{4, 5, 6}});
  REQUIRE_THROWS_WITH(one.broadcast(x.data(), 2, DataType::F32, 1), Catch::Contains("root 1"));
}

TEST_CASE("one-process DataParallel is plain training and rethrows errors unchanged", "[dist]") {
  const DataParallel dp;
  REQUIRE(dp.is_root());
  REQUIRE(dp.batch_slice(7, "test").size() == 7);
  REQUIRE_THROWS_AS(dp.run_local("work", [] { throw std::out_of_range("index 9"); }),
                    std::out_of_range);
  bool ran = false;
  dp.on_root("write", [&] { ran = true; });
  REQUIRE(ran);
  // update = clip + step, bit for bit.
  Cpu cpu;
  ParameterSet<double, Cpu> a, b;
  for (auto* p : {&a, &b}) {
    p->add("w", Shape{4}, true);
    p->allocate();
    for (index_t i = 0; i < 4; ++i) p->values().data()[i] = 0.5 * double(i);
    for (index_t i = 0; i < 4; ++i) p->grads().data()[i] = 3.0 - double(i);
  }
  AdamW<Cpu, double> oa = dp.make_optimizer(a, AdamWOptions{}), ob(b, AdamWOptions{});
  REQUIRE_FALSE(oa.sharded());
  const double norm = dp.update(cpu, a, oa, 1e-2, 1.0);
  REQUIRE(norm == clip_grad_norm(cpu, b, 1.0));
  ob.step(cpu, b, 1e-2);
  for (index_t i = 0; i < 4; ++i) REQUIRE(a.values().data()[i] == b.values().data()[i]);
  REQUIRE(dp.communication().collectives == 0);
}

namespace {
// A communicator for device buffers, to check the memory-space pairing.
class DeviceOnly final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 2; }
  MemorySpace memory() const override { return MemorySpace::Device; }
  std::string name() const override { return "device-only"; }
  void all_reduce_sum(void*, index_t, DataType) override {}
  void broadcast(void*, index_t, DataType, int) override {}
  void all_gather(const void*, void*, const std::vector<index_t>&, DataType) override {}
  void barrier() override {}
  Communicator& host() override { return single_process(); }
};
}  // namespace

namespace {
// Rank 0 of two whose peer holds the same fp32 gradients: all_reduce_sum
// doubles. Records where every all-reduce started, and from where the
// gradients were final at that moment.
class MirrorPeer final : public Communicator {
 public:
  struct Start {
    index_t offset, count, final_from;
  };
  const float* base = nullptr;
  const index_t* final_from = nullptr;
  std::vector<Start> starts;

  int rank() const override { return 0; }
  int size() const override { return 2; }
  MemorySpace memory() const override { return MemorySpace::Host; }
  std::string name() const override { return "mirror"; }
  void all_reduce_sum(void* data, index_t count, DataType type) override {
    NLA_CHECK(type == DataType::F32, "MirrorPeer", "fp32 only");
    float* x = static_cast<float*>(data);
    starts.push_back({index_t(x - base), count, *final_from});
    for (index_t i = 0; i < count; ++i) x[i] *= 2;
  }
  void broadcast(void*, index_t, DataType, int) override {}
  void all_gather(const void*, void*, const std::vector<index_t>&, DataType) override {}
  void barrier() override {}
  Communicator& host() override { return single_process(); }
};
}  // namespace

TEST_CASE("gradient buckets leave during the backward pass, top first, once final", "[dist]") {
  MirrorPeer peer;
  DataParallelOptions o;
  o.bucket_elements = 100;
  const DataParallel dp(peer, o);
  TransformerLM<Cpu, float> lm(TransformerConfig::gpt2(17, 12, 16, 3, 2), 5);
  LmActivations<float, Cpu> acts;
  Tensor<std::int32_t, Cpu> tokens(Shape{2, 6}), targets(Shape{12});
  for (index_t i = 0; i < 12; ++i) {
    tokens.data()[i] = std::int32_t((5 * i + 1) % 17);
    targets.data()[i] = std::int32_t((3 * i + 2) % 17);
  }
  const auto pass = [&](const GradientsFinal& on_final) {
    lm.forward(tokens.view(), acts);
    lm.loss(acts, targets.view());
    lm.zero_grad();
    lm.backward(acts, nullptr, on_final);
  };
  pass({});
  const index_t n = lm.parameters().size();
  const std::vector<float> plain(lm.parameters().grads().data(),
                                 lm.parameters().grads().data() + n);
  index_t final_from = n;
  peer.base = lm.parameters().grads().data();
  peer.final_from = &final_from;
  dp.backward_and_reduce(lm.backend(), lm.parameters(), 0.5, [&](const GradientsFinal& on_final) {
    pass([&](index_t first) {
      final_from = first;
      on_final(first);
    });
  });
  // Fixed buckets [100 k, 100 (k + 1)), top first, each once it was final.
  REQUIRE(peer.starts.size() == std::size_t((n + 99) / 100));
  index_t end = n;
  for (const auto& s : peer.starts) {
    REQUIRE(s.offset + s.count == end);
    REQUIRE(s.offset % 100 == 0);
    REQUIRE(s.offset >= s.final_from);
    end = s.offset;
  }
  REQUIRE(end == 0);
  // Most of them left while lower blocks were still computing.
  REQUIRE(peer.starts[peer.starts.size() / 2].final_from > 0);
  // 2 x (0.5 g): the plain gradient bit for bit.
  for (index_t i = 0; i < n; ++i) REQUIRE(lm.parameters().grads().data()[i] == plain[i]);
  REQUIRE(dp.communication().collectives == index_t(peer.starts.size()));
}

TEST_CASE("DataParallel refuses a communicator for the other memory space", "[dist]") {
  DeviceOnly device;
  const DataParallel dp(device);
  Cpu cpu;
  ParameterSet<float, Cpu> p;
  p.add("w", Shape{3}, true);
  p.allocate();
  REQUIRE_THROWS_WITH(dp.reduce_gradients(cpu, p),
                      Catch::Contains("cpu backend keeps buffers in host memory") &&
                          Catch::Contains("device-only communicator works on device memory"));
  REQUIRE_THROWS_WITH(dp.batch_slice(5, "sft"),
                      Catch::Contains("global batch 5") && Catch::Contains("over 2 ranks"));
}

TEST_CASE("a sharded optimiser cannot be saved whole by mistake", "[dist][io]") {
  nla::testing::TempDir tmp("sharded_save");
  TransformerLM<Cpu, float> lm(TransformerConfig::gpt2(8, 4, 8, 1, 2), 1);
  AdamW<Cpu, float> shard(lm.parameters(), AdamWOptions{}, partition(lm.parameters().size(), 0, 2));
  REQUIRE_THROWS_WITH(
      save_checkpoint(tmp.file("x.ckpt"), lm, shard, TrainingState{}),
      Catch::Contains("holds the shard [0, ") && Catch::Contains("gather the whole state first"));
}
