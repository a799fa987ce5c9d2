#include <cmath>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nla/nla.hpp>

using namespace nla;

TEST_CASE("AdamW follows the update rule, decaying only decayed tensors", "[optim]") {
  Cpu cpu;
  ParameterSet<double, Cpu> p;
  const int w = p.add("w", Shape{2, 2}, true), b = p.add("b", Shape{2}, false);
  p.allocate();
  for (int i = 0; i < 4; ++i) p.value(w).data()[i] = 1.0 + i;
  for (int i = 0; i < 2; ++i) p.value(b).data()[i] = -1.0;
  AdamWOptions o;
  o.lr = 0.1;
  o.beta1 = 0.8;
  o.beta2 = 0.9;
  o.eps = 1e-8;
  o.weight_decay = 0.5;
  AdamW<Cpu, double> opt(p, o);
  const double g[2][6] = {{0.5, -1.0, 2.0, 0.0, 3.0, -0.5}, {-0.25, 0.5, 1.0, 4.0, -1.0, 0.5}};
  double expect[6], m[6] = {}, v[6] = {};
  for (int i = 0; i < 6; ++i) expect[i] = p.values().data()[i];
  for (int step = 1; step <= 2; ++step) {
    for (int i = 0; i < 6; ++i) p.grads().data()[i] = g[step - 1][i];
    opt.step(cpu, p, o.lr);
    for (int i = 0; i < 6; ++i) {
      m[i] = o.beta1 * m[i] + (1 - o.beta1) * g[step - 1][i];
      v[i] = o.beta2 * v[i] + (1 - o.beta2) * g[step - 1][i] * g[step - 1][i];
      const double mhat = m[i] / (1 - std::pow(o.beta1, step));
      const double vhat = v[i] / (1 - std::pow(o.beta2, step));
      const double wd = i < 4 ? o.weight_decay : 0.0;
      expect[i] -= o.lr * (mhat / (std::sqrt(vhat) + o.eps) + wd * expect[i]);
      REQUIRE(p.values().data()[i] == Approx(expect[i]).epsilon(1e-12));
    }
  }
  REQUIRE(opt.step_count() == 2);
  REQUIRE_THROWS_AS(opt.step(cpu, p, std::nan("")), nla::Error);
}

TEST_CASE("AdamW's one pass decays exactly the decayed tensors of a long buffer", "[optim]") {
  // Enough tensors and elements that the pass splits into one chunk per
  // thread, with chunk edges inside tensors; runs of equal decay merge.
  Cpu cpu;
  ParameterSet<double, Cpu> p;
  std::vector<bool> decayed;
  for (int t = 0; t < 40; ++t) {
    const index_t size = 1 + index_t(random_bits(5, 0, std::uint64_t(t)) % 5000);
    const bool decay = random_bits(5, 1, std::uint64_t(t)) % 3 != 0;
    p.add("t" + std::to_string(t), Shape{size}, decay);
    decayed.insert(decayed.end(), std::size_t(size), decay);
  }
  p.allocate();
  for (index_t i = 0; i < p.size(); ++i) {
    p.values().data()[i] = 1.0 + 1e-3 * double(i % 97);
    p.grads().data()[i] = 0.0;  // the update is then the decay alone
  }
  AdamWOptions o;
  o.lr = 0.1;
  o.weight_decay = 0.5;
  AdamW<Cpu, double> opt(p, o);
  opt.step(cpu, p, o.lr);
  for (index_t i = 0; i < p.size(); ++i) {
    const double before = 1.0 + 1e-3 * double(i % 97);
    const double expect = decayed[std::size_t(i)] ? before * (1 - o.lr * o.weight_decay) : before;
    REQUIRE(p.values().data()[i] == Approx(expect).epsilon(1e-15));
  }
}

TEST_CASE("global-norm clipping scales every gradient by max_norm / norm", "[optim]") {
  Cpu cpu;
  ParameterSet<float, Cpu> p;
  p.add("a", Shape{3}, true);
  p.add("b", Shape{1}, false);
  p.allocate();
  const float g[4] = {3, 0, 0, 4};  // norm 5
  for (int i = 0; i < 4; ++i) p.grads().data()[i] = g[i];
  REQUIRE(clip_grad_norm(cpu, p, 10.0) == Approx(5.0));
  REQUIRE(p.grads().data()[3] == 4.0f);  // below the limit: unchanged
  REQUIRE(clip_grad_norm(cpu, p, 1.0) == Approx(5.0));
  REQUIRE(p.grads().data()[0] == Approx(0.6f));
  REQUIRE(p.grads().data()[3] == Approx(0.8f));
  p.grads().data()[1] = std::numeric_limits<float>::infinity();
  REQUIRE_THROWS_WITH(clip_grad_norm(cpu, p, 1.0), Catch::Contains("gradient norm"));
}

TEST_CASE("warm-up then cosine schedule", "[optim]") {
  WarmupCosineSchedule s{1.0, 0.1, 10, 110};
  REQUIRE(s(0) == Approx(0.1));
  REQUIRE(s(9) == Approx(1.0));
  REQUIRE(s(10) == Approx(1.0));
  REQUIRE(s(60) == Approx(0.55));  // halfway through the cosine
  REQUIRE(s(110) == Approx(0.1));
  REQUIRE(s(500) == Approx(0.1));
  for (int i = 11; i < 110; ++i) REQUIRE(s(i) <= s(i - 1));
}

TEMPLATE_TEST_CASE("a sharded AdamW updates its part exactly as the whole one does",
                   "[optim][dist]", double, bf16) {
  Cpu cpu;
  // Shards cut through tensors, decayed and not: [0, 5), [5, 10), [10, 14).
  ParameterSet<TestType, Cpu> whole_p, shard_p;
  for (auto* p : {&whole_p, &shard_p}) {
    p->add("w", Shape{3, 2}, true);
    p->add("b", Shape{3}, false);
    p->add("u", Shape{5}, true);
    p->allocate();
    for (index_t i = 0; i < p->size(); ++i) p->values().data()[i] = TestType(0.1 * double(i) - 0.5);
  }
  AdamWOptions o;
  o.lr = 0.05;
  o.weight_decay = 0.3;
  AdamW<Cpu, TestType> whole(whole_p, o);
  std::vector<AdamW<Cpu, TestType>> shards;
  for (int r = 0; r < 3; ++r) shards.emplace_back(shard_p, o, partition(whole_p.size(), r, 3));
  REQUIRE(shards[1].sharded());
  REQUIRE(shards[1].shard().first == 5);
  REQUIRE(shards[1].first_moment().size() == 5);
  for (int step = 0; step < 3; ++step) {
    for (index_t i = 0; i < whole_p.size(); ++i)
      whole_p.grads().data()[i] = shard_p.grads().data()[i] =
          TestType(std::sin(1.0 + double(i) * (step + 1)));
    whole.step(cpu, whole_p, o.lr);
    for (auto& s : shards) s.step(cpu, shard_p, o.lr);
  }
  // Each shard wrote its own part; together they equal the whole update,
  // master weights (bf16) included.
  for (index_t i = 0; i < whole_p.size(); ++i)
    REQUIRE(float(shard_p.values().data()[i]) == float(whole_p.values().data()[i]));
  // slice() of the whole state continues as the shard does.
  AdamW<Cpu, TestType> sliced = whole.slice(cpu, partition(whole_p.size(), 1, 3));
  for (index_t i = 0; i < 5; ++i) {
    REQUIRE(sliced.first_moment().data()[i] == shards[1].first_moment().data()[i]);
    REQUIRE(sliced.second_moment().data()[i] == shards[1].second_moment().data()[i]);
  }
  REQUIRE(sliced.step_count() == 3);
  REQUIRE_THROWS_WITH(shards[1].slice(cpu, Partition{0, 6}), Catch::Contains("not inside"));
  const auto outside = [&] { return AdamW<Cpu, TestType>(whole_p, o, Partition{4, 20}); };
  REQUIRE_THROWS_WITH(outside(), Catch::Contains("outside the 14 parameters"));
}
