#include <catch2/catch.hpp>

#include "nla/nla.hpp"
#include "nla/train/lm_batch.hpp"

using namespace nla;

TEST_CASE("pack_lm_batch shifts targets and ignores padding", "[train]") {
  Cpu cpu;
  const std::vector<std::int32_t> a = {1, 5, 6, 2}, b = {1, 7, 2};
  LmBatch<Cpu> batch;
  pack_lm_batch(cpu, {&a, &b}, 0, batch);
  REQUIRE(batch.tokens.shape() == Shape{2, 3});
  const std::vector<std::int32_t> tokens(batch.tokens.data(), batch.tokens.data() + 6);
  const std::vector<std::int32_t> targets(batch.targets.data(), batch.targets.data() + 6);
  REQUIRE(tokens == std::vector<std::int32_t>{1, 5, 6, 1, 7, 0});
  REQUIRE(targets == std::vector<std::int32_t>{5, 6, 2, 7, 2, -100});
  REQUIRE(batch.target_count == 5);
  const std::vector<std::int32_t> one = {3};
  REQUIRE_THROWS_WITH(pack_lm_batch(cpu, {&a, &one}, 0, batch),
                      Catch::Contains("sequence 1 has 1 tokens"));
}

TEST_CASE("LmTrainer's step equals forward, loss, backward, clip and AdamW by hand", "[train]") {
  // The trainer pads its logits' rows (16 -> 24 or 64 entries); by hand
  // they are not padded: the results must not differ in a single bit. Rows of
  // 16, 24 and 64 doubles all start 64-byte aligned; rows at other alignments
  // agree only to rounding (Eigen computes the exp of a row's unaligned head
  // with the scalar function).
  const index_t padding = GENERATE(index_t(1), index_t(24), index_t(64));
  INFO("logits_padding " << padding);
  const auto config = TransformerConfig::gpt2(16, 8, 16, 1, 2);
  TransformerLM<Cpu, double> a(config, 3), b(config, 3);
  LmTrainerOptions o;
  o.schedule = {1e-2, 1e-3, 2, 10};
  o.clip_norm = 0.5;
  o.logits_padding = padding;
  LmTrainer<Cpu, double> trainer(a, o);
  AdamW<Cpu, double> opt(b.parameters(), o.adamw);
  LmActivations<double, Cpu> acts;
  Tensor<std::int32_t, Cpu> tokens(Shape{2, 8}), targets(Shape{16});
  for (index_t i = 0; i < 16; ++i) {
    tokens.data()[i] = std::int32_t(random_bits(1, 0, i) % 16);
    targets.data()[i] = std::int32_t(random_bits(1, 1, i) % 16);
  }
  for (int step = 0; step < 3; ++step) {
    const auto r = trainer.step(tokens.view(), targets.view());
    b.forward(tokens.view(), acts);
    const double loss = b.loss(acts, targets.view());
    b.zero_grad();
    b.backward(acts);
    const double norm = clip_grad_norm(b.backend(), b.parameters(), 0.5);
    opt.step(b.backend(), b.parameters(), o.schedule(step));
    REQUIRE(r.loss == loss);
    REQUIRE(r.grad_norm == norm);
    REQUIRE(r.lr == o.schedule(step));
  }
  const auto va = a.parameters().values(), vb = b.parameters().values();
  REQUIRE(std::equal(va.data(), va.data() + va.size(), vb.data()));
}
