#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "nla/nla.hpp"
#include "nla/rl/grpo.hpp"

using namespace nla;

TEST_CASE("group advantages: standardised with the unbiased std, or centred (Dr. GRPO)", "[rl]") {
  GrpoOptions o;
  const std::vector<double> r = {1, 2, 3, 10, 10, 10};
  const auto a = group_advantages(r, 3, o);
  // group 1: mean 2, unbiased std 1
  REQUIRE(a[0] == Approx(-1 / (1 + 1e-6)));
  REQUIRE(a[2] == Approx(1 / (1 + 1e-6)));
  REQUIRE(a[3] == 0.0);  // equal rewards: no signal, no division by zero
  o.scale_by_std = false;
  const auto c = group_advantages(r, 3, o);
  REQUIRE(c[0] == -1.0);
  REQUIRE(c[1] == 0.0);
  REQUIRE_THROWS_WITH(group_advantages({1, 2, 3}, 2, o), Catch::Contains("groups of 2"));
}

TEST_CASE("KL estimators have their known values and k1, k3 are unbiased", "[rl]") {
  // E over tokens sampled from p of each estimator, computed exactly over the
  // support; KL(p || q) by definition.
  const std::vector<double> p = {0.5, 0.3, 0.2}, q = {0.2, 0.5, 0.3};
  double kl = 0;
  for (std::size_t i = 0; i < p.size(); ++i) kl += p[i] * std::log(p[i] / q[i]);
  for (KlEstimator e : {KlEstimator::K1, KlEstimator::K2, KlEstimator::K3}) {
    GrpoOptions o;
    o.kl = e;
    o.kl_coef = 1.0;
    double expected = 0, expected_k2 = 0;
    for (std::size_t i = 0; i < p.size(); ++i) {
      GrpoBatch b;
      b.logp.assign(1, std::log(p[i]));
      b.old_logp = b.logp;
      b.ref_logp.assign(1, std::log(q[i]));
      b.offsets = {0, 1};
      b.advantages.assign(1, 0.0);
      const auto l = grpo_loss(b, o);
      expected += p[i] * l.kl;
      const double delta = std::log(q[i] / p[i]);
      expected_k2 += p[i] * 0.5 * delta * delta;
      if (e == KlEstimator::K1) REQUIRE(l.kl == Approx(-delta));
      if (e == KlEstimator::K3) REQUIRE(l.kl == Approx(std::exp(delta) - delta - 1));
      REQUIRE(l.loss == Approx(l.kl));  // zero advantage: the loss is the KL term
    }
    if (e == KlEstimator::K2)
      REQUIRE(expected == Approx(expected_k2));
    else
      REQUIRE(expected == Approx(kl));
  }
}

TEST_CASE("GRPO loss and gradient match a hand-worked example", "[rl]") {
  // Two sequences (2 and 1 tokens), advantages +1 and -1, no KL.
  GrpoOptions o;
  o.kl_coef = 0;
  GrpoBatch b;
  b.old_logp = {std::log(0.5), std::log(0.5), std::log(0.5)};
  b.logp = {std::log(0.7), std::log(0.5), std::log(0.3)};  // ratios 1.4, 1.0, 0.6
  b.ref_logp = b.old_logp;
  b.offsets = {0, 2, 3};
  b.advantages = {1.0, -1.0};
  const auto l = grpo_loss(b, o);
  // seq 0: min(1.4, 1.2) = 1.2 (clipped, no gradient), min(1, 1) = 1 (grad 1)
  // seq 1: min(-0.6, -0.8) = -0.8 (clipped), weights 1/4, 1/4, 1/2
  REQUIRE(l.loss == Approx(-(0.25 * 1.2 + 0.25 * 1.0 + 0.5 * -0.8)));
  REQUIRE(l.dlogp[0] == 0.0);
  REQUIRE(l.dlogp[1] == Approx(-0.25));
  REQUIRE(l.dlogp[2] == 0.0);
  REQUIRE(l.clip_fraction == Approx(2.0 / 3));
}

TEST_CASE("GRPO gradients match finite differences for every option", "[rl][gradcheck]") {
  GrpoBatch b;
  b.offsets = {0, 3, 4, 6};
  b.advantages = {0.8, -1.1, 0.3};
  for (int t = 0; t < 6; ++t) {
    b.old_logp.push_back(-0.5 - 0.2 * t);
    b.logp.push_back(b.old_logp.back() + 0.07 * (t % 3 - 1));  // ratios inside the clip range
    b.ref_logp.push_back(-0.4 - 0.25 * t);
  }
  for (KlEstimator e : {KlEstimator::K1, KlEstimator::K2, KlEstimator::K3})
    for (LossAggregation agg :
         {LossAggregation::SequenceMean, LossAggregation::TokenMean, LossAggregation::Constant})
      for (bool by_std : {true, false}) {
        GrpoOptions o;
        o.kl = e;
        o.kl_coef = 0.3;
        o.aggregation = agg;
        o.constant_normalizer = 4;
        o.scale_by_std = by_std;
        o.clip_low = 0.1;
        o.clip_high = 0.12;
        const auto l = grpo_loss(b, o);
        for (std::size_t t = 0; t < b.logp.size(); ++t) {
          GrpoBatch plus = b, minus = b;
          const double h = 1e-6;
          plus.logp[t] += h;
          minus.logp[t] -= h;
          const double fd = (grpo_loss(plus, o).loss - grpo_loss(minus, o).loss) / (2 * h);
          REQUIRE(l.dlogp[t] == Approx(fd).margin(1e-7));
        }
      }
}

TEST_CASE("GRPO rejects inconsistent batches", "[rl][errors]") {
  GrpoBatch b;
  b.logp = {-1.0, -2.0};
  b.old_logp = {-1.0};
  b.ref_logp = {-1.0, -2.0};
  b.offsets = {0, 2};
  b.advantages = {1.0};
  REQUIRE_THROWS_WITH(grpo_loss(b, {}), Catch::Contains("2/1/2 tokens"));
  b.old_logp = {-1.0, std::nan("")};
  REQUIRE_THROWS_WITH(grpo_loss(b, {}), Catch::Contains("token 1"));
}

TEST_CASE("GRPO teaches a language-model policy a target sequence (bandit)", "[rl][train]") {
  // The optimum is known: reward = fraction of positions equal to target.
  const std::vector<std::int32_t> target = {3, 1, 4, 2};
  const auto config = TransformerConfig::gpt2(6, 8, 16, 1, 2);
  TransformerLM<Cpu, float> policy(config, 11), reference(config, 11);
  AdamWOptions ao;
  ao.weight_decay = 0;
  AdamW<Cpu, float> opt(policy.parameters(), ao);
  Generator<Cpu, float> gen(policy);
  GrpoOptions go;
  const std::size_t groups = 2, group_size = 8, n = groups * group_size, len = target.size();
  SamplingOptions so;
  so.max_new_tokens = index_t(len);
  LmActivations<float, Cpu> acts, ref_acts;
  auto reward_of = [&](const std::vector<std::int32_t>& y) {
    double r = 0;
    for (std::size_t i = 0; i < len; ++i) r += y[i] == target[i];
    return r / double(len);
  };
  double first_reward = -1, last_reward = 0;
  for (int it = 0; it < 90; ++it) {
    GenerateOptions gopt;
    gopt.seed = std::uint64_t(it);
    const auto samples = gen.generate(std::vector<std::vector<std::int32_t>>(n, {0}), so, gopt);
    std::vector<double> rewards;
    GrpoBatch b;
    Tensor<std::int32_t, Cpu> tokens(Shape{index_t(n), index_t(len)}),
        targets(Shape{index_t(n * len)});
    for (std::size_t i = 0; i < n; ++i) {
      rewards.push_back(reward_of(samples[i].tokens));
      for (std::size_t t = 0; t < len; ++t) {
        tokens.data()[i * len + t] = t == 0 ? 0 : samples[i].tokens[t - 1];
        targets.data()[i * len + t] = samples[i].tokens[t];
        b.old_logp.push_back(samples[i].model_logprobs[t]);
      }
      b.offsets.push_back(i * len);
    }
    b.offsets.push_back(n * len);
    double mean = 0;
    for (double r : rewards) mean += r / double(n);
    if (first_reward < 0) first_reward = mean;
    last_reward = mean;
    b.advantages = group_advantages(rewards, group_size, go);
    reference.forward(tokens.view(), ref_acts);
    reference.loss(ref_acts, targets.view());
    for (std::size_t k = 0; k < n * len; ++k) b.ref_logp.push_back(-ref_acts.row_loss.data()[k]);
    for (int epoch = 0; epoch < 2; ++epoch) {
      policy.forward(tokens.view(), acts);
      policy.loss(acts, targets.view());
      b.logp.clear();
      for (std::size_t k = 0; k < n * len; ++k) b.logp.push_back(-acts.row_loss.data()[k]);
      if (epoch == 0)  // sampling-time and teacher-forced log-probabilities agree
        for (std::size_t k = 0; k < n * len; ++k)
          REQUIRE(b.logp[k] == Approx(b.old_logp[k]).margin(1e-4));
      const auto l = grpo_loss(b, go);
      std::vector<float> dloss(l.dlogp.size());
      for (std::size_t k = 0; k < dloss.size(); ++k) dloss[k] = float(-l.dlogp[k]);
      policy.set_row_loss_gradient(acts, dloss);
      policy.zero_grad();
      policy.backward(acts);
      clip_grad_norm(policy.backend(), policy.parameters(), 1.0);
      // A rate of 3e-2 can collapse onto one partly right sequence (whole groups
      // then tie and their advantages vanish); 1e-2 converges for every
      // rounding mode tried (g++/clang++, with and without FMA contraction).
      opt.step(policy.backend(), policy.parameters(), 1e-2);
    }
  }
  INFO("mean reward " << first_reward << " -> " << last_reward);
  REQUIRE(first_reward < 0.5);
  REQUIRE(last_reward > 0.9);
  SamplingOptions greedy = so;
  greedy.temperature = 0;
  REQUIRE(gen.generate({{0}}, greedy)[0].tokens == target);
}
