#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include <catch2/catch.hpp>
#include <nla/nla.hpp>
#include <nla/steer/steering.hpp>
#include <nla/steer/sweep.hpp>

#include "support/gradcheck.hpp"
#include "support/random_tokens.hpp"

using namespace nla;
using namespace nla::testing;

namespace {

TransformerConfig steer_config(Flavour f) {
  return f == Flavour::Gpt2 ? TransformerConfig::gpt2(50, 16, 16, 3, 2)
                            : TransformerConfig::llama(50, 16, 16, 3, 4, 2);
}

std::vector<double> random_direction(index_t d, std::uint64_t seed) {
  std::vector<double> v(static_cast<std::size_t>(d));
  for (index_t i = 0; i < d; ++i) v[i] = random_normal(seed, 0, static_cast<std::uint64_t>(i));
  return v;
}

// Row `token` of a [vocab, d] parameter: the direction the LM head maps to it.
template <class T>
std::vector<double> parameter_row(const TransformerLM<Cpu, T>& lm, const std::string& name,
                                  std::int32_t token) {
  const auto& p = lm.parameters();
  const auto& info = p.info(p.find(name));
  const index_t d = info.shape[1];
  std::vector<double> row(static_cast<std::size_t>(d));
  const T* values = p.values().data() + info.offset + token * d;
  for (index_t c = 0; c < d; ++c) row[c] = double(values[c]);
  return row;
}

std::vector<std::vector<std::int32_t>> prompts_for(index_t vocab) {
  std::vector<std::vector<std::int32_t>> prompts = {{1, 7, 3, 9}, {2, 5}, {4, 11, 6}};
  for (auto& p : prompts)
    for (auto& t : p) t %= std::int32_t(vocab);
  return prompts;
}

}  // namespace

TEST_CASE("AddNormScaled adds alpha |h| u at the steered rows and nothing elsewhere", "[steer]") {
  for (Flavour f : {Flavour::Gpt2, Flavour::Llama}) {
    DYNAMIC_SECTION(flavour_name(f)) {
      const auto config = steer_config(f);
      TransformerLM<Cpu, float> lm(config, 3);
      LmActivations<float, Cpu> acts;
      const index_t batch = 2, t = 5, n = batch * t, d = config.d_model, stream = 2;
      const double alpha = 1.5;
      auto tokens = random_tokens(batch, t, config.vocab_size, 4);
      SteeringOptions options{stream, alpha, SteeringPositions::at({1, 3})};
      SteeringHooks<Cpu, float> steering(lm, random_direction(d, 5), options);
      const auto* steer = steering.hooks(batch, 0, t);
      REQUIRE(steer != nullptr);
      REQUIRE(steer->front().rows == std::vector<index_t>{1, 3, t + 1, t + 3});

      // Read every row of every stream, with the steering hook between the
      // two reads at `stream`.
      std::vector<index_t> all(static_cast<std::size_t>(n));
      for (index_t i = 0; i < n; ++i) all[i] = i;
      std::vector<Tensor<float, Cpu>> clean(config.n_layers + 1), steered(config.n_layers + 1);
      Tensor<float, Cpu> before(Shape{n, d});
      Hooks<float, Cpu> read_clean, read_steered;
      for (index_t s = 0; s <= config.n_layers; ++s) {
        clean[s] = Tensor<float, Cpu>(Shape{n, d});
        steered[s] = Tensor<float, Cpu>(Shape{n, d});
        read_clean.push_back({s, HookAction::Read, all, clean[s].view(), {}});
        if (s == stream) read_steered.push_back({s, HookAction::Read, all, before.view(), {}});
        if (s == stream) read_steered.push_back(steer->front());
        read_steered.push_back({s, HookAction::Read, all, steered[s].view(), {}});
      }
      lm.forward(tokens.view(), acts, &read_clean);
      lm.forward(tokens.view(), acts, &read_steered);

      const auto& u = steering.unit_direction();
      for (index_t s = 0; s <= config.n_layers; ++s)
        for (index_t r = 0; r < n; ++r) {
          const bool hit = s == stream && (r % t == 1 || r % t == 3);
          double norm = 0;
          for (index_t c = 0; c < d; ++c)
            norm += double(before.data()[r * d + c]) * double(before.data()[r * d + c]);
          norm = std::sqrt(norm);
          for (index_t c = 0; c < d; ++c) {
            const float got = steered[s].data()[r * d + c], was = clean[s].data()[r * d + c];
            INFO("stream " << s << " row " << r << " col " << c);
            if (s < stream) {
              REQUIRE(got == was);  // upstream of the hook: untouched, bit for bit
            } else if (s == stream && !hit) {
              REQUIRE(got == was);
            } else if (hit) {
              REQUIRE(before.data()[r * d + c] == was);
              REQUIRE(double(got) - double(was) == Approx(alpha * norm * u[c]).margin(1e-5));
            }
          }
        }
      // Downstream streams change, and only through the steered rows'
      // causal future: row 0 of each sequence precedes position 1.
      bool changed = false;
      for (index_t c = 0; c < d; ++c) {
        REQUIRE(steered[stream + 1].data()[c] == clean[stream + 1].data()[c]);
        changed =
            changed || steered[stream + 1].data()[4 * d + c] != clean[stream + 1].data()[4 * d + c];
      }
      REQUIRE(changed);
    }
  }
}

TEST_CASE("AddNormScaled gradients pass the finite-difference check", "[steer][gradcheck]") {
  for (Flavour f : {Flavour::Gpt2, Flavour::Llama}) {
    DYNAMIC_SECTION(flavour_name(f)) {
      auto config = TransformerConfig::llama(11, 8, 8, 2, 4, 2);
      if (f == Flavour::Gpt2) config = TransformerConfig::gpt2(11, 8, 8, 2, 2);
      TransformerLM<Cpu, double> lm(config, 13);
      LmActivations<double, Cpu> acts;
      const index_t batch = 2, t = 5, d = config.d_model;
      auto tokens = random_tokens(batch, t, config.vocab_size, 14);
      auto targets = random_tokens(batch, t, config.vocab_size, 15);
      // Row 1 is steered twice (its second add sees the first one's result),
      // so the backward must unwind the rows in reverse.
      const std::vector<index_t> rows = {1, t + 3, 1};
      auto v = random_tensor<double>(Shape{3, d}, 16, 0.7);
      auto read_weight = random_tensor<double>(Shape{1, d}, 17);
      TensorD dv(Shape{3, d}), saved(Shape{3, d}), read(Shape{1, d});
      Hooks<double, Cpu> hooks(2);
      hooks[0] = {1, HookAction::AddNormScaled, rows, v.view(), dv.view()};
      hooks[0].saved = saved.view();
      hooks[1] = {1, HookAction::Read, {t + 3}, read.view(), read_weight.view()};
      auto loss = [&] {
        lm.forward(tokens.view(), acts, &hooks);
        return lm.loss(acts, targets.view()) + dot(read, read_weight);
      };
      const GradcheckOptions options{1e-6, 1e-8, 1e-5, 400};
      gradcheck_parameters_through_hooks(lm, acts, hooks, loss, options);
      gradcheck("values", v, dv, loss, options);

      // Without somewhere to save the rows the backward cannot run.
      hooks[0].saved = {};
      loss();
      REQUIRE_THROWS_WITH(lm.backward(acts, &hooks), Catch::Contains("needs `saved`"));
    }
  }
}

TEST_CASE("SteeringHooks picks rows by absolute position under the KV cache", "[steer]") {
  TransformerLM<Cpu, float> lm(steer_config(Flavour::Gpt2), 1);
  const auto dir = random_direction(16, 2);
  SteeringHooks<Cpu, float> listed(lm, dir, {0, 1.0, SteeringPositions::at({1, 4, 6})});
  // Forward over positions [3, 7) of 2 sequences: positions 4 and 6 are rows 1 and 3.
  const auto* h = listed.hooks(2, 3, 4);
  REQUIRE(h != nullptr);
  REQUIRE(h->front().rows == std::vector<index_t>{1, 3, 5, 7});
  REQUIRE(h->front().values.shape() == (Shape{4, 16}));
  REQUIRE(listed.hooks(2, 7, 1) == nullptr);
  REQUIRE(listed.hooks(1, 6, 1)->front().rows == std::vector<index_t>{0});
  REQUIRE(listed.hooks(1, 6, 1)->front().values.shape() == (Shape{1, 16}));
  SteeringHooks<Cpu, float> open(lm, dir, {0, 1.0, SteeringPositions::from(5)});
  REQUIRE(open.hooks(2, 3, 4)->front().rows == std::vector<index_t>{2, 3, 6, 7});
  REQUIRE(open.hooks(3, 0, 5) == nullptr);
  REQUIRE(open.hooks(1, 9, 1)->front().rows == std::vector<index_t>{0});
  // Every row holds alpha * u.
  SteeringHooks<Cpu, float> strong(lm, dir, {0, -2.5, SteeringPositions::from(0)});
  const auto* all = strong.hooks(2, 0, 3);
  double norm = 0;
  for (double x : dir) norm += x * x;
  norm = std::sqrt(norm);
  for (index_t r = 0; r < 6; ++r)
    for (index_t c = 0; c < 16; ++c)
      REQUIRE(all->front().values.data()[r * 16 + c] == Approx(-2.5 * dir[c] / norm));
}

TEST_CASE("alpha = 0 generates exactly what the unsteered model does", "[steer]") {
  for (Flavour f : {Flavour::Gpt2, Flavour::Llama}) {
    DYNAMIC_SECTION(flavour_name(f)) {
      const auto config = steer_config(f);
      TransformerLM<Cpu, float> lm(config, 21);
      const auto prompts = prompts_for(config.vocab_size);
      SamplingOptions sampling;
      sampling.max_new_tokens = 8;
      for (bool cache : {true, false}) {
        GenerateOptions options;
        options.seed = 9;
        options.use_kv_cache = cache;
        Generator<Cpu, float> generator(lm);
        const auto plain = generator.generate(prompts, sampling, options);
        const auto zero = steered_generate(lm, prompts, random_direction(config.d_model, 3),
                                           {1, 0.0, SteeringPositions::from(0)}, sampling, options);
        const auto strong =
            steered_generate(lm, prompts, random_direction(config.d_model, 3),
                             {1, 4.0, SteeringPositions::from(0)}, sampling, options);
        bool differs = false;
        for (std::size_t b = 0; b < prompts.size(); ++b) {
          REQUIRE(zero[b].tokens == plain[b].tokens);
          REQUIRE(zero[b].logprobs == plain[b].logprobs);
          REQUIRE(zero[b].model_logprobs == plain[b].model_logprobs);
          differs = differs || strong[b].model_logprobs != plain[b].model_logprobs;
        }
        REQUIRE(differs);  // the comparison can fail: steering does change things
      }
    }
  }
}

TEST_CASE("steered generation is the same with and without the KV cache", "[steer]") {
  for (Flavour f : {Flavour::Gpt2, Flavour::Llama}) {
    for (int mode = 0; mode < 2; ++mode) {
      DYNAMIC_SECTION(flavour_name(f) << (mode ? " from position 3" : " at listed positions")) {
        const auto config = steer_config(f);
        TransformerLM<Cpu, float> lm(config, 31);
        const auto prompts = prompts_for(config.vocab_size);
        SamplingOptions sampling;
        sampling.max_new_tokens = 9;
        const SteeringOptions steering{
            2, 3.0, mode ? SteeringPositions::from(3) : SteeringPositions::at({1, 4, 7})};
        const auto dir = random_direction(config.d_model, 8);
        GenerateOptions cached, uncached;
        cached.seed = uncached.seed = 17;
        uncached.use_kv_cache = false;
        const auto a = steered_generate(lm, prompts, dir, steering, sampling, cached);
        const auto b = steered_generate(lm, prompts, dir, steering, sampling, uncached);
        Generator<Cpu, float> generator(lm);
        const auto plain = generator.generate(prompts, sampling, cached);
        bool differs = false;
        for (std::size_t i = 0; i < prompts.size(); ++i) {
          REQUIRE(a[i].tokens == b[i].tokens);
          REQUIRE(a[i].model_logprobs.size() == b[i].model_logprobs.size());
          for (std::size_t j = 0; j < a[i].model_logprobs.size(); ++j)
            REQUIRE(a[i].model_logprobs[j] == Approx(b[i].model_logprobs[j]).margin(1e-4));
          differs = differs || a[i].model_logprobs != plain[i].model_logprobs;
        }
        REQUIRE(differs);
      }
    }
  }
}

TEST_CASE("a strong push along a token's head row makes greedy decoding emit it", "[steer]") {
  for (Flavour f : {Flavour::Gpt2, Flavour::Llama}) {
    DYNAMIC_SECTION(flavour_name(f)) {
      const auto config = steer_config(f);
      TransformerLM<Cpu, float> lm(config, 41);
      const std::int32_t target = 23;
      // GPT-2 ties the head to the token embedding; Llama has its own head.
      const auto dir = parameter_row(
          lm, f == Flavour::Gpt2 ? "transformer.wte.weight" : "lm_head.weight", target);
      const auto prompts = prompts_for(config.vocab_size);
      SamplingOptions greedy;
      greedy.temperature = 0;
      greedy.max_new_tokens = 6;
      Generator<Cpu, float> generator(lm);
      const auto plain = generator.generate(prompts, greedy);
      // Steer the last prompt position of the shortest prompt on, at the final stream.
      const auto steered = steered_generate(
          lm, prompts, dir, {config.n_layers, 40.0, SteeringPositions::from(1)}, greedy);
      index_t plain_hits = 0;
      for (std::size_t b = 0; b < prompts.size(); ++b) {
        for (std::int32_t tok : plain[b].tokens) plain_hits += tok == target;
        for (std::int32_t tok : steered[b].tokens) REQUIRE(tok == target);
      }
      REQUIRE(plain_hits < 6);  // the unsteered model does not already say it
      // The opposite direction suppresses it.
      const auto away = steered_generate(
          lm, prompts, dir, {config.n_layers, -40.0, SteeringPositions::from(1)}, greedy);
      for (const auto& g : away)
        for (std::int32_t tok : g.tokens) REQUIRE(tok != target);
    }
  }
}

TEST_CASE("a sweep scores every stream x alpha pair in order", "[steer]") {
  const auto config = steer_config(Flavour::Gpt2);
  TransformerLM<Cpu, float> lm(config, 41);
  const std::int32_t target = 23;
  const auto dir = parameter_row(lm, "transformer.wte.weight", target);
  const auto prompts = prompts_for(config.vocab_size);
  SamplingOptions greedy;
  greedy.temperature = 0;
  greedy.max_new_tokens = 4;
  std::vector<std::pair<index_t, double>> calls;
  const auto sweep = steering_sweep(
      lm, prompts, dir, {1, config.n_layers}, {0.0, 40.0}, SteeringPositions::from(1), greedy, {},
      [&](index_t stream, double alpha, const std::vector<Generation>& gens) {
        calls.emplace_back(stream, alpha);
        double hits = 0, total = 0;
        for (const auto& g : gens)
          for (std::int32_t tok : g.tokens) hits += tok == target, total += 1;
        return hits / total;
      });
  REQUIRE(calls == std::vector<std::pair<index_t, double>>{
                       {1, 0.0}, {1, 40.0}, {config.n_layers, 0.0}, {config.n_layers, 40.0}});
  REQUIRE(sweep.points.size() == 4);
  REQUIRE(sweep.at(1, 1).stream == config.n_layers);
  REQUIRE(sweep.at(1, 1).alpha == 40.0);
  REQUIRE(sweep.at(1, 1).score == 1.0);
  REQUIRE(sweep.best().score == 1.0);
  Generator<Cpu, float> generator(lm);
  const auto plain = generator.generate(prompts, greedy);
  for (std::size_t s = 0; s < 2; ++s)
    for (std::size_t b = 0; b < prompts.size(); ++b)
      REQUIRE(sweep.at(s, 0).generations[b].tokens == plain[b].tokens);
  REQUIRE_THROWS_WITH(sweep.at(2, 0), Catch::Contains("outside the 2 x 2 grid"));
  auto score = [](index_t, double, const std::vector<Generation>&) { return 0.0; };
  REQUIRE_THROWS_WITH(
      steering_sweep(lm, prompts, dir, {1}, {}, SteeringPositions{}, greedy, {}, score),
      Catch::Contains("no alphas"));
  REQUIRE_THROWS_WITH(
      steering_sweep(lm, prompts, dir, {1, 4}, {1.0}, SteeringPositions{}, greedy, {}, score),
      Catch::Contains("stream 4 is outside [0, 3]"));
  REQUIRE_THROWS_WITH(steering_sweep(lm, prompts, dir, {1}, {1.0}, SteeringPositions{}, greedy, {},
                                     [](index_t, double, const std::vector<Generation>&) {
                                       return std::numeric_limits<double>::quiet_NaN();
                                     }),
                      Catch::Contains("not finite"));
}

TEST_CASE("steering names bad input in its errors", "[steer][errors]") {
  const std::vector<float> a = {1, 2, 3}, b = {1, 2.5f, 3};
  REQUIRE(steering_delta(a, b) == std::vector<double>{0.0, 0.5, 0.0});
  REQUIRE_THROWS_WITH(steering_delta(a, std::vector<float>{1, 2}),
                      Catch::Contains("original has 3 entries but edited has 2"));
  REQUIRE_THROWS_WITH(steering_delta(a, a), Catch::Contains("no steering direction"));
  REQUIRE_THROWS_WITH(steering_delta(std::vector<float>{}, std::vector<float>{}),
                      Catch::Contains("original is empty"));
  const float nan = std::numeric_limits<float>::quiet_NaN();
  REQUIRE_THROWS_WITH(steering_delta(a, std::vector<float>{1, nan, 3}),
                      Catch::Contains("edited[1] = nan is not finite"));

  const auto config = steer_config(Flavour::Gpt2);
  TransformerLM<Cpu, float> lm(config, 1);
  const auto dir = random_direction(config.d_model, 1);
  using Hooks = SteeringHooks<Cpu, float>;
  REQUIRE_THROWS_WITH(Hooks(lm, dir, {4, 1.0, {}}), Catch::Contains("stream 4 is outside [0, 3]"));
  REQUIRE_THROWS_WITH(Hooks(lm, dir, {-1, 1.0, {}}), Catch::Contains("stream -1"));
  REQUIRE_THROWS_WITH(Hooks(lm, dir, {1, std::nan(""), {}}), Catch::Contains("alpha nan"));
  REQUIRE_THROWS_WITH(Hooks(lm, dir, {1, 1.0, SteeringPositions::at({2, -1})}),
                      Catch::Contains("positions[1] = -1 is outside [0, 16)"));
  REQUIRE_THROWS_WITH(Hooks(lm, dir, {1, 1.0, SteeringPositions::at({16})}),
                      Catch::Contains("positions[0] = 16"));
  REQUIRE_THROWS_WITH(Hooks(lm, dir, {1, 1.0, SteeringPositions::at({3, 5, 3})}),
                      Catch::Contains("position 3 is listed twice"));
  REQUIRE_THROWS_WITH(Hooks(lm, dir, {1, 1.0, SteeringPositions::at({})}),
                      Catch::Contains("position list is empty"));
  REQUIRE_THROWS_WITH(Hooks(lm, dir, {1, 1.0, SteeringPositions::from(16)}),
                      Catch::Contains("from position 16"));
  REQUIRE_THROWS_WITH(Hooks(lm, std::vector<double>(16, 0.0), {1, 1.0, {}}),
                      Catch::Contains("direction is zero"));
  REQUIRE_THROWS_WITH(Hooks(lm, std::vector<double>(15, 1.0), {1, 1.0, {}}),
                      Catch::Contains("direction has 15 entries, expected d_model = 16"));
  auto bad = dir;
  bad[2] = std::numeric_limits<double>::infinity();
  REQUIRE_THROWS_WITH(Hooks(lm, bad, {1, 1.0, {}}), Catch::Contains("direction[2] = inf"));

  // A saved buffer of the wrong shape is named by the hook check.
  LmActivations<float, Cpu> acts;
  auto tokens = random_tokens(1, 4, config.vocab_size, 1);
  Tensor<float, Cpu> v(Shape{1, config.d_model}), saved(Shape{2, config.d_model});
  nla::Hooks<float, Cpu> hooks{{1, HookAction::AddNormScaled, {0}, v.view(), {}}};
  hooks[0].saved = saved.view();
  REQUIRE_THROWS_WITH(lm.forward(tokens.view(), acts, &hooks), Catch::Contains("saved has shape"));
}
