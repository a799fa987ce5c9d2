#include <algorithm>

#include <catch2/catch.hpp>

#include "nla/bottleneck/verbalizer.hpp"
#include "nla/nla.hpp"
#include "support/gradcheck.hpp"

using namespace nla;
using namespace nla::testing;

namespace {

std::vector<float> random_activations(index_t n, index_t d, std::uint64_t seed) {
  std::vector<float> v(static_cast<std::size_t>(n * d));
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = float(3 * random_normal(seed, 0, i));
  return v;
}

}  // namespace

TEST_CASE("the verbalizer injects v * scale / |v| at the slot and extends the vocabulary",
          "[bottleneck]") {
  TransformerLM<Cpu, double> target(TransformerConfig::gpt2(12, 24, 8, 2, 2), 1);
  Verbalizer<Cpu, double> av(target, {{0, 5}, {6}}, 2.5);
  REQUIRE(av.slot_token() == 12);
  REQUIRE(av.prompt_tokens() == std::vector<std::int32_t>{0, 5, 12, 6});
  VerbalizerCache<double, Cpu> c;
  const auto v = random_activations(2, 8, 3);
  av.inject(v, c);
  for (index_t b = 0; b < 2; ++b) {
    double sq = 0;
    for (index_t j = 0; j < 8; ++j) sq += double(v[b * 8 + j]) * v[b * 8 + j];
    for (index_t j = 0; j < 8; ++j)
      REQUIRE(c.injected.data()[b * 8 + j] == Approx(2.5 * v[b * 8 + j] / std::sqrt(sq)));
  }
  REQUIRE_THROWS_WITH(av.inject(std::vector<float>(7), c), Catch::Contains("rows of d = 8"));
  std::vector<float> bad = v;
  bad[3] = std::nanf("");
  REQUIRE_THROWS_WITH(av.inject(bad, c), Catch::Contains("activation 0 has a non-finite"));
  REQUIRE_THROWS_WITH(av.teacher_forced(c, {{1}, {}}), Catch::Contains("explanation 1 is empty"));
}

TEST_CASE("gradients flow through the injection slot (finite differences)",
          "[bottleneck][gradcheck]") {
  for (Flavour f : {Flavour::Gpt2, Flavour::Llama}) {
    const auto config = f == Flavour::Gpt2 ? TransformerConfig::gpt2(12, 24, 8, 2, 2)
                                           : TransformerConfig::llama(12, 24, 8, 2, 2, 1);
    TransformerLM<Cpu, double> target(config, 2);
    Verbalizer<Cpu, double> av(target, {{0, 5}, {6}}, 2.0);
    VerbalizerCache<double, Cpu> c;
    av.inject(random_activations(2, 8, 4), c);
    const std::vector<std::vector<std::int32_t>> text = {{3, 4, 1}, {7, 2}};
    auto loss = [&] { return av.teacher_forced(c, text); };
    loss();
    av.model().zero_grad();
    av.backward(c);
    const std::vector<double> dinj(c.dinjected.data(), c.dinjected.data() + c.dinjected.size());
    auto& p = av.model().parameters();
    const std::vector<double> dp(p.grads().data(), p.grads().data() + p.size());
    REQUIRE(std::any_of(dinj.begin(), dinj.end(), [](double x) { return x != 0; }));
    gradcheck("injected", c.injected.data(), dinj.data(), c.injected.size(), loss);
    gradcheck("parameters", p.values().data(), dp.data(), p.size(), loss);
  }
}

TEST_CASE("explanation log-probabilities from sampling equal the teacher-forced ones",
          "[bottleneck]") {
  TransformerLM<Cpu, double> target(TransformerConfig::llama(12, 24, 8, 2, 2, 1), 3);
  auto w = target.parameters().values();
  for (index_t i = 0; i < w.size(); ++i) w.data()[i] *= 6;  // a peaked distribution
  Verbalizer<Cpu, double> av(target, {{0, 5}, {6}}, 2.0);
  VerbalizerCache<double, Cpu> c;
  av.inject(random_activations(3, 8, 5), c);
  SamplingOptions o;
  o.max_new_tokens = 6;
  GenerateOptions g;
  g.seed = 9;
  const auto samples = av.explain(c, o, g);
  std::vector<std::vector<std::int32_t>> text;
  for (const auto& s : samples) text.push_back(s.tokens);
  av.teacher_forced(c, text);
  const index_t t = c.lm.time, p = index_t(av.prompt_tokens().size());
  for (std::size_t b = 0; b < samples.size(); ++b)
    for (std::size_t i = 0; i < samples[b].tokens.size(); ++i)
      REQUIRE(-c.lm.row_loss.data()[index_t(b) * t + p - 1 + index_t(i)] ==
              Approx(samples[b].model_logprobs[i]).margin(1e-6));
  // Different activations give different explanations: the slot is read.
  REQUIRE((samples[0].tokens != samples[1].tokens || samples[1].tokens != samples[2].tokens));
}

TEST_CASE("a restricted vocabulary masks teacher forcing as it masks sampling, clones included",
          "[bottleneck]") {
  // The teacher-forced losses of sampled explanations are the masked
  // policy's -log q: the mask is applied to the logits where they are.
  TransformerLM<Cpu, double> target(TransformerConfig::llama(12, 24, 8, 2, 2, 1), 3);
  auto w = target.parameters().values();
  for (index_t i = 0; i < w.size(); ++i) w.data()[i] *= 6;
  Verbalizer<Cpu, double> original(target, {{0, 5}, {6}}, 2.0);
  const std::vector<std::int32_t> allowed = {0, 2, 3, 7, 8, 11};
  original.set_allowed_tokens(allowed);
  Verbalizer<Cpu, double> clone = original.clone();
  for (Verbalizer<Cpu, double>* av : {&original, &clone}) {
    VerbalizerCache<double, Cpu> c;
    av->inject(random_activations(4, 8, 6), c);
    SamplingOptions o;
    o.max_new_tokens = 5;
    o.allowed_tokens = allowed;
    GenerateOptions g;
    g.seed = 10;
    const auto samples = av->explain(c, o, g);
    std::vector<std::vector<std::int32_t>> text;
    for (const auto& s : samples) {
      for (auto token : s.tokens)
        REQUIRE(std::find(allowed.begin(), allowed.end(), token) != allowed.end());
      text.push_back(s.tokens);
    }
    av->teacher_forced(c, text);
    const index_t t = c.lm.time, p = index_t(av->prompt_tokens().size());
    for (std::size_t b = 0; b < samples.size(); ++b)
      for (std::size_t i = 0; i < samples[b].tokens.size(); ++i)
        REQUIRE(-c.lm.row_loss.data()[index_t(b) * t + p - 1 + index_t(i)] ==
                Approx(samples[b].model_logprobs[i]).margin(1e-6));
  }
  REQUIRE_THROWS_WITH(original.set_allowed_tokens({3, 13}), Catch::Contains("token 13"));
}
