#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>

#include "nla/bottleneck/autoencoder.hpp"
#include "nla/bottleneck/nla_checkpoint.hpp"
#include "nla/bottleneck/noisy_channel.hpp"
#include "nla/bottleneck/reconstructor_decoder.hpp"
#include "nla/bottleneck/verbalizer_encoder.hpp"
#include "nla/nla.hpp"
#include "support/gradcheck.hpp"
#include "support/temp_dir.hpp"
#include "support/tiny_text_nla.hpp"

using namespace nla;
using namespace nla::testing;

namespace {

constexpr std::int32_t kStop = 1;

VerbalizerEncoderOptions encoder_options(index_t g, index_t max_tokens) {
  VerbalizerEncoderOptions o;
  o.group_size = g;
  o.sampling.max_new_tokens = max_tokens;
  o.sampling.stop_tokens = {kStop};
  o.evaluation_sampling = o.sampling;
  o.seed = 7;
  return o;
}

}  // namespace

TEST_CASE("mean-centring subtracts the mean before normalising the injected vector",
          "[bottleneck]") {
  TransformerLM<Cpu, double> target(TransformerConfig::gpt2(12, 24, 8, 2, 2), 1);
  Verbalizer<Cpu, double> av(target, {{0, 5}, {6}}, 2.0);
  const ActivationBatch b = random_batch(2, 8, 3);
  std::vector<float> mean(8);
  for (index_t j = 0; j < 8; ++j) mean[j] = float(0.5 * j - 1);
  av.set_centre(mean);
  VerbalizerCache<double, Cpu> c;
  av.inject(b.vectors, c);
  for (index_t r = 0; r < 2; ++r) {
    double sq = 0;
    for (index_t j = 0; j < 8; ++j) sq += std::pow(double(b.row(r)[j]) - mean[j], 2);
    for (index_t j = 0; j < 8; ++j)
      REQUIRE(c.injected.data()[r * 8 + j] ==
              Approx(2.0 * (double(b.row(r)[j]) - mean[j]) / std::sqrt(sq)));
  }
  REQUIRE_THROWS_WITH(av.set_centre(std::vector<float>(7)), Catch::Contains("d_model is 8"));
}

TEST_CASE("a restricted vocabulary masks sampling and teacher forcing alike", "[bottleneck]") {
  TransformerLM<Cpu, double> target(TransformerConfig::llama(16, 32, 8, 2, 2, 1), 4);
  Verbalizer<Cpu, double> av(target, {{0, 5}, {6}}, 2.0);
  VerbalizerEncoderOptions o = encoder_options(4, 6);
  o.sampling.allowed_tokens = {kStop, 3, 7, 9};
  o.evaluation_sampling = o.sampling;
  VerbalizerEncoder<Cpu, double> encoder(av, o);
  const ActivationBatch b = random_batch(3, 8, 5);
  const auto messages = encoder.encode(b, true);
  REQUIRE(messages.size() == 12);
  std::vector<std::vector<std::int32_t>> actions;
  std::vector<double> sampled;
  for (const auto& m : messages) {
    for (auto t : m.tokens) REQUIRE((t == kStop || t == 3 || t == 7 || t == 9));
    actions.push_back(m.tokens);
    sampled.insert(sampled.end(), m.logprobs.begin(), m.logprobs.end());
  }
  // The PPO ratio's two sides: sampling-time and teacher-forced log p agree.
  VerbalizerCache<double, Cpu> c;
  av.inject(repeat_rows(b, 4), c);
  av.teacher_forced(c, actions);
  const auto forced = av.token_logprobs(c);
  REQUIRE(forced.size() == sampled.size());
  for (std::size_t i = 0; i < forced.size(); ++i)
    REQUIRE(forced[i] == Approx(sampled[i]).margin(1e-5));
  // The masked distribution sums to one over the allowed tokens only.
  double mass = 0;
  for (std::int32_t t : o.sampling.allowed_tokens) {
    av.teacher_forced(c, std::vector<std::vector<std::int32_t>>(12, {t}));
    mass += std::exp(av.token_logprobs(c)[0]);
  }
  REQUIRE(mass == Approx(1.0).epsilon(1e-9));
  REQUIRE_THROWS_WITH(av.teacher_forced(c, std::vector<std::vector<std::int32_t>>(12, {4})),
                      Catch::Contains("not allowed"));
}

TEST_CASE("set_logprob_gradient turns d objective / d log p into parameter gradients",
          "[bottleneck][gradcheck]") {
  TransformerLM<Cpu, double> target(TransformerConfig::gpt2(12, 24, 8, 2, 2), 2);
  Verbalizer<Cpu, double> av(target, {{0, 5}, {6}}, 2.0);
  VerbalizerCache<double, Cpu> c;
  av.inject(random_batch(2, 8, 6).vectors, c);
  const std::vector<std::vector<std::int32_t>> text = {{3, 4, 1}, {7, 2}};
  const std::vector<double> weight = {0.3, -1.2, 0.7, 2.0, -0.4};
  // objective = sum_k weight_k log p_k
  auto objective = [&] {
    av.teacher_forced(c, text);
    const auto lp = av.token_logprobs(c);
    double s = 0;
    for (std::size_t k = 0; k < lp.size(); ++k) s += weight[k] * lp[k];
    return s;
  };
  objective();
  av.set_logprob_gradient(c, weight);
  av.model().zero_grad();
  av.backward(c);
  auto& p = av.model().parameters();
  const std::vector<double> dp(p.grads().data(), p.grads().data() + p.size());
  gradcheck("parameters", p.values().data(), dp.data(), p.size(), objective);
  REQUIRE_THROWS_WITH(av.set_logprob_gradient(c, {1.0}), Catch::Contains("1 gradients"));
}

TEST_CASE("a noisy channel drops and substitutes tokens at the requested rates", "[bottleneck]") {
  struct Echo {  // a decoder that records what it was given
    std::vector<Explanation> seen;
    DecoderFeedback decode(const std::vector<Explanation>& m, const std::vector<float>&, bool) {
      seen = m;
      return {};
    }
    void learn() {}
    nlohmann::json stats() const { return {}; }
  } echo;
  Explanation e;
  e.tokens.assign(2000, 5);
  e.tokens.push_back(kStop);
  e.stopped = true;
  NoisyChannel<Echo> clean(echo, {0.0, 0.0, {}, 1});
  clean.decode({e}, {}, false);
  REQUIRE(echo.seen[0].tokens == e.tokens);
  NoisyChannel<Echo> noisy(echo, {0.2, 0.3, {8, 9}, 1});
  noisy.decode({e}, {}, false);
  const auto& out = echo.seen[0].tokens;
  REQUIRE(out.back() == kStop);
  const double kept = double(out.size() - 1) / 2000.0;
  const double substituted =
      double(std::count_if(out.begin(), out.end(), [](auto t) { return t == 8 || t == 9; })) /
      2000.0;
  REQUIRE(kept == Approx(0.8).margin(0.03));
  REQUIRE(substituted == Approx(0.3).margin(0.03));
  REQUIRE_THROWS_WITH((NoisyChannel<Echo>(echo, {0.7, 0.5, {8}, 1})), Catch::Contains("sum to"));
}

TEST_CASE("a short joint RL run raises the reward (verbalizer GRPO + reconstructor MSE)",
          "[bottleneck][train]") {
  // Two activations that differ in direction; the verbalizer must say which,
  // the reconstructor must read it. Start: untrained, reward at chance.
  const index_t d = 16;
  TransformerLM<Cpu, float> target(TransformerConfig::gpt2(10, 16, d, 2, 2), 11);
  Verbalizer<Cpu, float> av(target, {{0, 2}, {3}}, 4.0);
  Reconstructor<Cpu, float> ar(target, 2);
  VerbalizerEncoderOptions eo = encoder_options(8, 3);
  eo.adamw.lr = 1e-2;
  eo.grpo.kl_coef = 0.0;
  VerbalizerEncoder<Cpu, float> encoder(av, eo);
  ReconstructorDecoderOptions dopt;
  dopt.adamw.lr = 1e-2;
  ReconstructorDecoder<Cpu, float> decoder(ar, {{0, 4}, {5}}, dopt);
  const ActivationBatch batch = random_batch(2, d, 12);
  Autoencoder<VerbalizerEncoder<Cpu, float>, ReconstructorDecoder<Cpu, float>> nla(encoder, decoder,
                                                                                   1.0);
  auto mean_reward = [&](int steps) {
    double s = 0;
    for (int i = 0; i < steps; ++i) s += nla.step(batch).encoder["reward_mean"].get<double>();
    return s / steps;
  };
  const double first = mean_reward(5);
  mean_reward(40);
  const double last = mean_reward(5);
  INFO("reward " << first << " -> " << last);
  REQUIRE(last > first + 0.5);
}

TEST_CASE("joint RL resumes bit-identically from an NLA checkpoint", "[bottleneck][io]") {
  TempDir tmp("nla_checkpoint");
  const index_t d = 16;
  TransformerLM<Cpu, float> target(TransformerConfig::llama(10, 16, d, 2, 2, 1), 21);
  using Run = TinyTextNla<float>;
  const ActivationBatch batch = random_batch(3, d, 22);
  Run first(target);
  for (int i = 0; i < 3; ++i) first.nla.step(batch);
  save_nla_checkpoint(tmp.file("run"), first.encoder, first.decoder, 3, {{"note", "x"}});
  for (int i = 0; i < 3; ++i) first.nla.step(batch);

  Run resumed(target);
  const NlaCheckpointState s =
      load_nla_checkpoint(tmp.file("run"), resumed.encoder, resumed.decoder);
  REQUIRE(s.step == 3);
  REQUIRE(s.metadata["note"] == "x");
  for (int i = 0; i < 3; ++i) resumed.nla.step(batch);
  REQUIRE(resumed.state() == first.state());

  // A later save replaces the step directory; a broken pointer is named.
  save_nla_checkpoint(tmp.file("run"), first.encoder, first.decoder, 6);
  REQUIRE(std::filesystem::exists(tmp.file("run/step-000006")));
  REQUIRE_FALSE(std::filesystem::exists(tmp.file("run/step-000003")));
  { std::ofstream(tmp.file("run/latest")) << "../elsewhere"; }
  REQUIRE_THROWS_WITH(load_nla_checkpoint(tmp.file("run"), resumed.encoder, resumed.decoder),
                      Catch::Contains("not a step directory name"));
}

TEST_CASE("after a warm start the verbalizer reads the slot: shuffled activations cost more",
          "[bottleneck][train]") {
  // Four activations, each with its own explanation; the prompt is the same
  // for all, so only the injected vector can tell the verbalizer which to say.
  const index_t d = 16;
  TransformerLM<Cpu, float> target(TransformerConfig::gpt2(12, 16, d, 2, 2), 31);
  Verbalizer<Cpu, float> av(target, {{0, 2}, {3}}, 4.0);
  VerbalizerEncoder<Cpu, float> encoder(av, encoder_options(2, 4));
  const ActivationBatch batch = random_batch(4, d, 32);
  const std::vector<std::vector<std::int32_t>> text = {
      {4, 5, kStop}, {6, 7, kStop}, {8, 9, kStop}, {10, 4, kStop}};
  ActivationBatch shuffled = batch;
  std::rotate(shuffled.vectors.begin(), shuffled.vectors.begin() + d, shuffled.vectors.end());
  const double before_true = encoder.supervised_loss(batch, text);
  const double before_shuffled = encoder.supervised_loss(shuffled, text);
  for (int step = 0; step < 150; ++step) encoder.learn_supervised(batch, text, 1e-2);
  const double after_true = encoder.supervised_loss(batch, text);
  const double after_shuffled = encoder.supervised_loss(shuffled, text);
  INFO("before " << before_true << " / " << before_shuffled << ", after " << after_true << " / "
                 << after_shuffled);
  REQUIRE(std::abs(before_true - before_shuffled) < 0.1);  // untrained: the slot means nothing
  REQUIRE(after_true < 0.2);
  REQUIRE(after_shuffled > after_true + 1.0);
}

TEST_CASE("reconstruct gives decode's predictions without targets", "[bottleneck]") {
  TransformerLM<Cpu, float> target(TransformerConfig::llama(10, 16, 16, 2, 2, 1), 21);
  TinyTextNla<float> t(target);
  const auto messages = t.encoder.encode(random_batch(3, 16, 4), false);
  const std::vector<float> any(3 * 16, 0.5f);
  REQUIRE(t.decoder.reconstruct(messages) == t.decoder.decode(messages, any, false).predictions);
  REQUIRE_THROWS_WITH(t.decoder.reconstruct({}), Catch::Contains("no messages"));
}
