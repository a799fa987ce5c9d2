#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "nla/nla.hpp"
#include "nla/rl/generate.hpp"

using namespace nla;

namespace {

std::vector<double> softmax(const std::vector<float>& z, double temperature = 1.0) {
  double max = z[0], sum = 0;
  for (float x : z) max = std::max(max, double(x));
  std::vector<double> p(z.size());
  for (std::size_t i = 0; i < z.size(); ++i) sum += p[i] = std::exp((z[i] - max) / temperature);
  for (auto& x : p) x /= sum;
  return p;
}

std::vector<double> distribution(const std::vector<float>& z, const SamplingOptions& o) {
  std::vector<double> q, logp;
  std::vector<std::int32_t> order;
  sampling_distribution(z.data(), index_t(z.size()), o, q, logp, order);
  return q;
}

}  // namespace

TEST_CASE("sampled token frequencies match the tempered softmax", "[rl]") {
  const std::vector<float> z = {1.0f, 0.2f, -0.5f, 2.0f, 0.0f, -3.0f};
  for (double temperature : {1.0, 0.5, 2.0}) {
    SamplingOptions o;
    o.temperature = temperature;
    const auto q = distribution(z, o);
    const auto p = softmax(z, temperature);
    for (std::size_t i = 0; i < z.size(); ++i) REQUIRE(q[i] == Approx(p[i]).epsilon(1e-12));
    const int n = 40000;
    std::vector<int> counts(z.size(), 0);
    for (int i = 0; i < n; ++i) ++counts[draw_token(q, random_uniform(7, 3, std::uint64_t(i)))];
    for (std::size_t i = 0; i < z.size(); ++i) {
      // Binomial count: within 5 standard deviations (false failure ~ 1e-6).
      const double sd = std::sqrt(n * p[i] * (1 - p[i]));
      INFO("temperature " << temperature << " token " << i << ": " << counts[i] << " vs "
                          << n * p[i]);
      REQUIRE(std::abs(counts[i] - n * p[i]) <= 5 * sd + 1);
    }
  }
}

TEST_CASE("top-k keeps exactly the k most probable tokens, renormalised", "[rl]") {
  const std::vector<float> z = {0.5f, 3.0f, -1.0f, 2.0f, 2.0f, 0.0f};
  SamplingOptions o;
  o.top_k = 3;
  const auto q = distribution(z, o);
  const auto p = softmax(z);
  const double kept = p[1] + p[3] + p[4];
  for (std::size_t i = 0; i < z.size(); ++i) {
    const bool keep = i == 1 || i == 3 || i == 4;
    REQUIRE(q[i] == Approx(keep ? p[i] / kept : 0.0).margin(1e-15));
  }
  // A tie at the boundary goes to the lower token id.
  o.top_k = 2;
  const auto q2 = distribution(z, o);
  REQUIRE(q2[3] > 0);
  REQUIRE(q2[4] == 0);
}

TEST_CASE("top-p keeps the smallest prefix reaching p, including the crossing token", "[rl]") {
  // probabilities 0.5, 0.3, 0.15, 0.05 (given as log-probabilities)
  const std::vector<float> z = {std::log(0.15f), std::log(0.5f), std::log(0.05f), std::log(0.3f)};
  SamplingOptions o;
  o.top_p = 0.7;  // 0.5 < 0.7 <= 0.8: keeps tokens 1 and 3
  auto q = distribution(z, o);
  REQUIRE(q[1] == Approx(0.5 / 0.8));
  REQUIRE(q[3] == Approx(0.3 / 0.8));
  REQUIRE(q[0] == 0);
  REQUIRE(q[2] == 0);
  o.top_p = 0.5;  // exactly the top token's mass: only it
  q = distribution(z, o);
  REQUIRE(q[1] == Approx(1.0));
  REQUIRE(q[3] == 0);
  o.top_p = 0.96;  // needs all four
  q = distribution(z, o);
  REQUIRE(q[2] == Approx(0.05).epsilon(1e-5));
  // top-k then top-p over the renormalised survivors: k=2 leaves 0.625/0.375.
  o.top_k = 2;
  o.top_p = 0.6;
  q = distribution(z, o);
  REQUIRE(q[1] == Approx(1.0));
}

TEST_CASE("temperature 0 is greedy", "[rl]") {
  SamplingOptions o;
  o.temperature = 0;
  const auto q = distribution({0.1f, 2.5f, 2.4f}, o);
  REQUIRE(q == std::vector<double>{0.0, 1.0, 0.0});
}

namespace {

TransformerLM<Cpu, double> sampling_model(Flavour f) {
  const auto c = f == Flavour::Gpt2 ? TransformerConfig::gpt2(19, 24, 16, 2, 2)
                                    : TransformerConfig::llama(19, 24, 16, 2, 4, 2);
  TransformerLM<Cpu, double> lm(c, 5);
  // Larger weights than the GPT-2 init so the distribution is far from uniform.
  auto v = lm.parameters().values();
  for (index_t i = 0; i < v.size(); ++i) v.data()[i] *= 8;
  return lm;
}

}  // namespace

TEST_CASE("KV-cache sampling equals full-forward sampling for the same seed", "[rl]") {
  for (Flavour f : {Flavour::Gpt2, Flavour::Llama}) {
    auto lm = sampling_model(f);
    Generator<Cpu, double> gen(lm);
    const std::vector<std::vector<std::int32_t>> prompts = {{1, 2, 3}, {4}, {5, 6, 7, 8, 9}};
    SamplingOptions o;
    o.max_new_tokens = 10;
    o.top_k = 12;
    o.top_p = 0.95;
    GenerateOptions cached, full;
    cached.seed = full.seed = 42;
    full.use_kv_cache = false;
    const auto a = gen.generate(prompts, o, cached);
    const auto b = gen.generate(prompts, o, full);
    for (std::size_t i = 0; i < prompts.size(); ++i) {
      REQUIRE(a[i].tokens == b[i].tokens);
      REQUIRE(a[i].tokens.size() == 10);
      for (std::size_t j = 0; j < a[i].tokens.size(); ++j) {
        REQUIRE(a[i].logprobs[j] == Approx(b[i].logprobs[j]).margin(1e-6));
        REQUIRE(a[i].model_logprobs[j] == Approx(b[i].model_logprobs[j]).margin(1e-6));
      }
    }
    // A row's samples do not depend on the other rows of the batch.
    const auto alone = gen.generate({prompts[1]}, o, [&] {
      GenerateOptions g = cached;
      g.streams = {1};
      return g;
    }());
    REQUIRE(alone[0].tokens == a[1].tokens);
    // A different seed gives a different sample.
    cached.seed = 43;
    const auto c = gen.generate(prompts, o, cached);
    REQUIRE(
        (c[0].tokens != a[0].tokens || c[1].tokens != a[1].tokens || c[2].tokens != a[2].tokens));
  }
}

TEST_CASE("sampling log-probabilities equal a teacher-forced pass", "[rl]") {
  auto lm = sampling_model(Flavour::Llama);
  Generator<Cpu, double> gen(lm);
  const std::vector<std::int32_t> prompt = {3, 1, 4, 1};
  SamplingOptions o;
  o.max_new_tokens = 8;
  const auto g = gen.generate({prompt}, o)[0];
  std::vector<std::int32_t> text = prompt;
  text.insert(text.end(), g.tokens.begin(), g.tokens.end());
  const index_t t = index_t(text.size()) - 1;
  Tensor<std::int32_t, Cpu> tokens(Shape{1, t});
  std::copy_n(text.begin(), t, tokens.data());
  LmActivations<double, Cpu> acts;
  auto logits = lm.forward(tokens.view(), acts);
  const index_t v = lm.config().vocab_size;
  for (std::size_t j = 0; j < g.tokens.size(); ++j) {
    const double* row = logits.data() + (index_t(prompt.size()) - 1 + index_t(j)) * v;
    double max = row[0], sum = 0;
    for (index_t i = 0; i < v; ++i) max = std::max(max, row[i]);
    for (index_t i = 0; i < v; ++i) sum += std::exp(row[i] - max);
    const double logp = row[g.tokens[j]] - max - std::log(sum);
    REQUIRE(g.model_logprobs[j] == Approx(logp).margin(1e-6));
    // Temperature 1, no truncation: the sampling law is the model's.
    REQUIRE(g.logprobs[j] == Approx(logp).margin(1e-6));
  }
}

TEST_CASE("generation stops at a stop token or max_new_tokens", "[rl]") {
  auto lm = sampling_model(Flavour::Gpt2);
  Generator<Cpu, double> gen(lm);
  SamplingOptions o;
  o.max_new_tokens = 12;
  GenerateOptions g;
  g.seed = 3;
  const auto free_run = gen.generate({{1, 2}}, o, g)[0];
  REQUIRE(free_run.finish == FinishReason::Length);
  REQUIRE(free_run.tokens.size() == 12);
  o.stop_tokens = {free_run.tokens[4]};
  const auto stopped = gen.generate({{1, 2}}, o, g)[0];
  REQUIRE(stopped.finish == FinishReason::Stop);
  REQUIRE(stopped.tokens.size() <= 5);
  REQUIRE(stopped.tokens.back() == free_run.tokens[4]);
  REQUIRE(std::equal(stopped.tokens.begin(), stopped.tokens.end(), free_run.tokens.begin()));
}

TEST_CASE("generation rejects bad prompts and options", "[rl]") {
  auto lm = sampling_model(Flavour::Gpt2);
  Generator<Cpu, double> gen(lm);
  SamplingOptions o;
  o.max_new_tokens = 10;
  REQUIRE_THROWS_WITH(gen.generate({{1, 19}}, o), Catch::Contains("outside [0, 19)"));
  REQUIRE_THROWS_WITH(gen.generate({{}}, o), Catch::Contains("prompt 0 is empty"));
  REQUIRE_THROWS_WITH(gen.generate({std::vector<std::int32_t>(20, 1)}, o),
                      Catch::Contains("exceeds context_length 24"));
  o.top_p = 0;
  REQUIRE_THROWS_WITH(gen.generate({{1}}, o), Catch::Contains("top_p"));
}

TEST_CASE("generation reports non-finite logits and bad allowed tokens, on both draw paths",
          "[rl][errors]") {
  auto lm = sampling_model(Flavour::Gpt2);
  auto v = lm.parameters().values();
  for (index_t i = 0; i < v.size(); ++i) v.data()[i] = std::nan("");
  Generator<Cpu, double> gen(lm);
  SamplingOptions o;
  o.max_new_tokens = 3;
  // top_k 0: the backend draws (ops/token_draw.hpp); top_k 5: the host
  // reference does (rl/sampling.hpp).
  REQUIRE_THROWS_WITH(gen.generate({{1, 2}, {3}}, o),
                      Catch::Contains("row 1 at position 1") &&
                          Catch::Contains("the logit of token 0 is not finite"));
  o.top_k = 5;
  REQUIRE_THROWS_WITH(gen.generate({{1, 2}}, o),
                      Catch::Contains("logit nan of token 0 is not finite"));
  o.top_k = 0;
  o.allowed_tokens = {3, 19};
  REQUIRE_THROWS_WITH(gen.generate({{1}}, o),
                      Catch::Contains("allowed token 19 is outside the vocabulary of 19"));
}

TEST_CASE("the backend's draws and the host reference's give the same generations", "[rl]") {
  // top_k = vocab_size keeps every token but takes the host path.
  auto lm = sampling_model(Flavour::Llama);
  Generator<Cpu, double> gen(lm);
  const std::vector<std::vector<std::int32_t>> prompts = {{1, 2, 3}, {4}, {5, 6}};
  for (double temperature : {0.0, 0.7, 1.0}) {
    for (bool masked : {false, true}) {
      CAPTURE(temperature, masked);
      SamplingOptions o;
      o.max_new_tokens = 12;
      o.temperature = temperature;
      if (masked) o.allowed_tokens = {0, 2, 3, 5, 7, 11, 13, 17};
      GenerateOptions g;
      g.seed = 9;
      const auto backend = gen.generate(prompts, o, g);
      o.top_k = 19;
      const auto host = gen.generate(prompts, o, g);
      for (std::size_t b = 0; b < prompts.size(); ++b) {
        REQUIRE(backend[b].tokens == host[b].tokens);
        REQUIRE(backend[b].logprobs == host[b].logprobs);
        REQUIRE(backend[b].model_logprobs == host[b].model_logprobs);
      }
    }
  }
}
