#include <catch2/catch.hpp>

#include "nla/bottleneck/reconstructor.hpp"
#include "nla/nla.hpp"
#include "support/gradcheck.hpp"
#include "support/random_tokens.hpp"

using namespace nla;
using namespace nla::testing;

namespace {}  // namespace

TEST_CASE("the reconstructor starts as the target's truncated stream through an identity head",
          "[bottleneck]") {
  TransformerLM<Cpu, double> target(TransformerConfig::llama(20, 8, 16, 3, 4, 2), 4);
  Reconstructor<Cpu, double> ar(target, 2);
  const auto tokens = random_tokens(2, 6, 20, 1);
  LmActivations<double, Cpu> acts;
  auto stream = target.forward_stream(tokens.view(), 2, acts);
  ReconstructorCache<double, Cpu> cache;
  auto pred = ar.forward(tokens.view(), {5, 3}, cache);
  for (index_t j = 0; j < 16; ++j) {
    REQUIRE(pred.data()[j] == Approx(stream.data()[5 * 16 + j]).margin(1e-12));
    REQUIRE(pred.data()[16 + j] == Approx(stream.data()[(6 + 3) * 16 + j]).margin(1e-12));
  }
}

TEST_CASE("reconstructor loss is 2(1 - cos) and its gradient passes finite differences",
          "[bottleneck][gradcheck]") {
  for (Flavour f : {Flavour::Gpt2, Flavour::Llama}) {
    const auto config = f == Flavour::Gpt2 ? TransformerConfig::gpt2(20, 8, 16, 3, 2)
                                           : TransformerConfig::llama(20, 8, 16, 3, 4, 2);
    TransformerLM<Cpu, double> target(config, 7);
    Reconstructor<Cpu, double> ar(target, 2);
    // A non-identity head so its gradient is generic.
    auto head = ar.head_parameters().values();
    for (index_t i = 0; i < head.size(); ++i) head.data()[i] += 0.1 * random_normal(3, 0, i);
    const auto tokens = random_tokens(3, 5, 20, 2);
    const std::vector<index_t> read = {4, 2, 0};
    std::vector<float> goal(3 * 16);
    for (std::size_t i = 0; i < goal.size(); ++i) goal[i] = float(random_normal(5, 0, i));
    ReconstructorCache<double, Cpu> cache;
    auto loss = [&] {
      ar.forward(tokens.view(), read, cache);
      return ar.loss(cache, goal);
    };
    const double l = loss();
    double by_hand = 0;
    std::vector<float> p(16);
    for (index_t b = 0; b < 3; ++b) {
      for (index_t j = 0; j < 16; ++j) p[j] = float(cache.pred.data()[b * 16 + j]);
      by_hand += normalized_mse(p.data(), goal.data() + b * 16, 16) / 3;
    }
    REQUIRE(l == Approx(by_hand).epsilon(1e-5));
    ar.zero_grad();
    ar.backward(cache);
    auto& lp = ar.model().parameters();
    const std::vector<double> g_lm(lp.grads().data(), lp.grads().data() + lp.size());
    const std::vector<double> g_head(ar.head_parameters().grads().data(),
                                     ar.head_parameters().grads().data() + head.size());
    GradcheckOptions o;
    o.max_checks = 64;
    gradcheck("reconstructor head", head.data(), g_head.data(), head.size(), loss, o);
    gradcheck("truncated model", lp.values().data(), g_lm.data(), lp.size(), loss, o);
  }
}

TEST_CASE("reconstructor rejects bad read positions, targets and block counts",
          "[bottleneck][errors]") {
  TransformerLM<Cpu, double> target(TransformerConfig::gpt2(20, 8, 16, 2, 2), 1);
  using Ar = Reconstructor<Cpu, double>;
  REQUIRE_THROWS_WITH(Ar(target, 3), Catch::Contains("outside [1, 2]"));
  Reconstructor<Cpu, double> ar(target, 2);
  ReconstructorCache<double, Cpu> cache;
  const auto tokens = random_tokens(2, 4, 20, 1);
  REQUIRE_THROWS_WITH(ar.forward(tokens.view(), {1}, cache), Catch::Contains("1 read positions"));
  REQUIRE_THROWS_WITH(ar.forward(tokens.view(), {1, 4}, cache), Catch::Contains("read[1] = 4"));
  ar.forward(tokens.view(), {1, 3}, cache);
  REQUIRE_THROWS_WITH(ar.loss(cache, std::vector<float>(5)), Catch::Contains("5 values"));
  REQUIRE_THROWS_WITH(ar.loss(cache, std::vector<float>(32, 0.0f)), Catch::Contains("target 0"));
}
