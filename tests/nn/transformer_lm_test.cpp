#include <cstring>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>
#include <nla/nla.hpp>

#include "support/gradcheck.hpp"
#include "support/random_tokens.hpp"

using namespace nla;
using namespace nla::testing;

namespace {

TransformerConfig tiny_config(Flavour f, index_t vocab = 11, index_t context = 8, index_t d = 8) {
  return f == Flavour::Gpt2 ? TransformerConfig::gpt2(vocab, context, d, 2, 2)
                            : TransformerConfig::llama(vocab, context, d, 2, 4, 2);
}

}  // namespace

TEST_CASE("whole-model gradients pass the finite-difference check through hooks",
          "[nn][gradcheck]") {
  for (Flavour f : {Flavour::Gpt2, Flavour::Llama}) {
    DYNAMIC_SECTION(flavour_name(f)) {
      auto config = tiny_config(f);
      config.attention_bias = true;  // Qwen2-style q/k/v biases on the Llama flavour too
      TransformerLM<Cpu, double> lm(config, 3);
      LmActivations<double, Cpu> acts;
      const index_t batch = 2, t = 5, d = config.d_model;
      auto tokens = random_tokens(batch, t, config.vocab_size, 1);
      auto targets = random_tokens(batch, t, config.vocab_size, 2);
      targets.data()[3] = -100;  // one ignored position
      // Replace row 1 of the embeddings (an injection slot), add a vector at
      // the output of block 0 (steering), read two rows after block 1.
      auto injected = random_tensor<double>(Shape{1, d}, 4);
      auto steer = random_tensor<double>(Shape{1, d}, 5, 0.5);
      auto read_weight = random_tensor<double>(Shape{2, d}, 6);
      TensorD read(Shape{2, d}), dinjected(Shape{1, d}), dsteer(Shape{1, d});
      Hooks<double, Cpu> hooks(3);
      hooks[0] = {0, HookAction::Replace, {1}, injected.view(), dinjected.view()};
      hooks[1] = {1, HookAction::Add, {2 + t}, steer.view(), dsteer.view()};
      hooks[2] = {2, HookAction::Read, {0, t + 4}, read.view(), read_weight.view()};
      auto loss = [&] {
        lm.forward(tokens.view(), acts, &hooks);
        return lm.loss(acts, targets.view()) + dot(read, read_weight);
      };
      const GradcheckOptions options{1e-6, 1e-8, 1e-5, 400};
      gradcheck_parameters_through_hooks(lm, acts, hooks, loss, options);
      gradcheck("injected", injected, dinjected, loss, options);
      gradcheck("steer", steer, dsteer, loss, options);
      // The replaced row has no gradient w.r.t. its original embedding.
      for (index_t c = 0; c < d; ++c) REQUIRE(acts.dresidual.data()[1 * d + c] == 0.0);
    }
  }
}

TEST_CASE("truncated forward returns the stream after k blocks, with its backward",
          "[nn][gradcheck]") {
  for (Flavour f : {Flavour::Gpt2, Flavour::Llama}) {
    DYNAMIC_SECTION(flavour_name(f)) {
      const auto config = tiny_config(f);
      TransformerLM<Cpu, double> lm(config, 7);
      LmActivations<double, Cpu> acts, full;
      auto tokens = random_tokens(2, 4, config.vocab_size, 8);
      auto r = random_tensor<double>(Shape{2, 4, config.d_model}, 9);
      // stream[1] equals what a Read hook sees there in a full forward.
      TensorD seen(Shape{8, config.d_model});
      Hooks<double, Cpu> read(1);
      read[0] = {1, HookAction::Read, {0, 1, 2, 3, 4, 5, 6, 7}, seen.view(), {}};
      lm.forward(tokens.view(), full, &read);
      auto stream = lm.forward_stream(tokens.view(), 1, acts);
      for (index_t i = 0; i < seen.size(); ++i) REQUIRE(stream.data()[i] == seen.data()[i]);
      auto loss = [&] {
        auto s = lm.forward_stream(tokens.view(), 1, acts);
        double v = 0;
        for (index_t i = 0; i < s.size(); ++i) v += s.data()[i] * r.data()[i];
        return v;
      };
      loss();
      lm.zero_grad();
      lm.backward_stream(acts, r.view());
      TensorD grads(Shape{lm.parameters().size()});
      copy(lm.backend(), grads.view(), ConstView<double, Cpu>(lm.parameters().grads()));
      gradcheck("parameters", lm.parameters().values().data(), grads.data(), grads.size(), loss,
                {1e-6, 1e-8, 1e-5, 300});
      // Blocks past the cut get no gradient.
      const auto& p = lm.parameters();
      const std::string later = f == Flavour::Gpt2 ? "transformer.h.1." : "model.layers.1.";
      for (const auto& info : p.infos())
        if (info.name.rfind(later, 0) == 0)
          for (index_t i = 0; i < info.shape.size(); ++i)
            REQUIRE(grads.data()[info.offset + i] == 0.0);
    }
  }
}

TEST_CASE("incremental decoding with the KV cache equals the full forward", "[nn]") {
  for (Flavour f : {Flavour::Gpt2, Flavour::Llama}) {
    DYNAMIC_SECTION(flavour_name(f)) {
      const auto config = tiny_config(f, 17, 12, 16);
      TransformerLM<Cpu, float> lm(config, 11);
      LmActivations<float, Cpu> full, step;
      const index_t batch = 3, t = 9, v = config.vocab_size;
      auto tokens = random_tokens(batch, t, v, 12);
      auto logits = lm.forward(tokens.view(), full);
      auto cache = lm.make_kv_cache(batch, config.context_length);
      // A 4-token prompt, two tokens, then one at a time: the cache append
      // loops over sequences (4 >= batch) and over positions (2, 1 < batch).
      index_t pos = 0;
      while (pos < t) {
        const index_t chunk = pos == 0 ? 4 : pos == 4 ? 2 : 1;
        Tensor<std::int32_t, Cpu> piece(Shape{batch, chunk});
        for (index_t b = 0; b < batch; ++b)
          for (index_t i = 0; i < chunk; ++i)
            piece.data()[b * chunk + i] = tokens.data()[b * t + pos + i];
        auto out = lm.forward(piece.view(), step, nullptr, &cache);
        for (index_t b = 0; b < batch; ++b)
          for (index_t i = 0; i < chunk; ++i)
            for (index_t c = 0; c < v; ++c)
              REQUIRE(out.data()[(b * chunk + i) * v + c] ==
                      Approx(logits.data()[(b * t + pos + i) * v + c]).margin(1e-5));
        pos += chunk;
      }
      REQUIRE(cache.length == t);
      Tensor<std::int32_t, Cpu> more(Shape{batch, config.context_length});
      for (index_t i = 0; i < more.size(); ++i) more.data()[i] = 0;
      REQUIRE_THROWS_AS(lm.forward(more.view(), step, nullptr, &cache), nla::Error);
    }
  }
}

TEST_CASE("backward reports, top block first, from where the gradients are final", "[nn][dist]") {
  // What DataParallel relies on to all-reduce a bucket during the pass: when
  // on_final(first) is heard, no later step changes a gradient in [first, n).
  for (Flavour f : {Flavour::Gpt2, Flavour::Llama}) {  // tied head; untied head at the end
    DYNAMIC_SECTION(flavour_name(f)) {
      const auto config = tiny_config(f, 17, 12, 16);
      TransformerLM<Cpu, float> lm(config, 3);
      LmActivations<float, Cpu> acts;
      const auto tokens = random_tokens(2, 6, config.vocab_size, 4);
      Tensor<std::int32_t, Cpu> targets(Shape{12});
      for (index_t i = 0; i < 12; ++i) targets.data()[i] = tokens.data()[(i + 1) % 12];
      const index_t n = lm.parameters().size();
      const float* g = lm.parameters().grads().data();
      std::vector<std::pair<index_t, std::vector<float>>> heard;
      const auto snapshot = [&](index_t first) {
        heard.emplace_back(first, std::vector<float>(g + first, g + n));
      };
      lm.forward(tokens.view(), acts);
      lm.loss(acts, targets.view());
      lm.zero_grad();
      lm.backward(acts, nullptr, snapshot);
      // Once per block and once before the first block: the suffix grows.
      REQUIRE(heard.size() == std::size_t(config.n_layers + 2));
      REQUIRE(heard.front().first > heard[1].first);
      REQUIRE(heard.back().first == 0);
      for (std::size_t k = 1; k < heard.size(); ++k) REQUIRE(heard[k].first < heard[k - 1].first);
      for (const auto& [first, values] : heard)
        REQUIRE(std::memcmp(values.data(), g + first, values.size() * sizeof(float)) == 0);
      // The truncated pass of the reconstructor: blocks past the cut are
      // final (zero) from the start.
      heard.clear();
      auto stream = lm.forward_stream(tokens.view(), 1, acts);
      Tensor<float, Cpu> dstream(stream.shape());
      fill(lm.backend(), dstream.view(), 0.5f);
      lm.zero_grad();
      lm.backward_stream(acts, dstream.view(), nullptr, snapshot);
      REQUIRE(heard.size() == 3);
      for (const auto& [first, values] : heard)
        REQUIRE(std::memcmp(values.data(), g + first, values.size() * sizeof(float)) == 0);
    }
  }
}

TEST_CASE("padded logits rows hold the same logits, loss and gradients", "[nn]") {
  for (Flavour f : {Flavour::Gpt2, Flavour::Llama}) {
    DYNAMIC_SECTION(flavour_name(f)) {
      const auto config = tiny_config(f, 17, 12, 16);
      TransformerLM<Cpu, float> plain(config, 13), padded(config, 13);
      LmActivations<float, Cpu> a, b;
      b.logits_padding = 8;  // rows of 24: 17 logits and 7 entries of padding
      const index_t batch = 2, t = 5, v = config.vocab_size, ld = 24;
      auto tokens = random_tokens(batch, t, v, 15);
      auto targets = random_tokens(batch, t, v, 16);
      const auto x = plain.forward(tokens.view(), a);
      const auto y = padded.forward(tokens.view(), b);
      REQUIRE(y.shape() == Shape{batch, t, ld});
      for (index_t r = 0; r < batch * t; ++r)
        for (index_t c = 0; c < v; ++c) REQUIRE(y.data()[r * ld + c] == x.data()[r * v + c]);
      const auto flat = targets.view().reshape(Shape{batch * t});
      REQUIRE(plain.loss(a, flat) == Approx(padded.loss(b, flat)).epsilon(1e-6));
      plain.zero_grad();
      padded.zero_grad();
      plain.backward(a);
      padded.backward(b);
      // To rounding, not to the bit: Eigen's exp takes the scalar path for
      // the head of a row that starts unaligned, and the rows of 17 and 24
      // floats start at different alignments.
      const auto ga = plain.parameters().grads(), gb = padded.parameters().grads();
      for (index_t i = 0; i < ga.size(); ++i)
        REQUIRE(gb.data()[i] == Approx(ga.data()[i]).epsilon(1e-5).margin(1e-7));
    }
  }
  TransformerLM<Cpu, float> lm(tiny_config(Flavour::Gpt2, 17, 12, 16), 13);
  LmActivations<float, Cpu> acts;
  acts.logits_padding = 0;
  REQUIRE_THROWS_WITH(lm.forward(random_tokens(1, 3, 17, 1).view(), acts),
                      Catch::Contains("logits_padding 0"));
}

TEST_CASE("forward_last gives the last position's logits of the full forward", "[nn]") {
  for (Flavour f : {Flavour::Gpt2, Flavour::Llama}) {
    DYNAMIC_SECTION(flavour_name(f)) {
      const auto config = tiny_config(f, 17, 12, 16);
      TransformerLM<Cpu, float> lm(config, 13);
      LmActivations<float, Cpu> full, last;
      const index_t batch = 3, t = 7, v = config.vocab_size;
      auto tokens = random_tokens(batch, t, v, 14);
      const auto logits =
          to_host(lm.backend(), ConstView<float, Cpu>(lm.forward(tokens.view(), full)));
      auto out = lm.forward_last(tokens.view(), last);
      REQUIRE(out.shape() == Shape{batch, 1, v});
      for (index_t b = 0; b < batch; ++b)
        for (index_t c = 0; c < v; ++c)
          REQUIRE(out.data()[b * v + c] ==
                  Approx(logits.data()[(b * t + t - 1) * v + c]).margin(1e-5));
      // Only the last position was projected: there is no loss to take.
      Tensor<std::int32_t, Cpu> targets(Shape{batch * t});
      for (index_t i = 0; i < targets.size(); ++i) targets.data()[i] = 0;
      REQUIRE_THROWS_AS(lm.loss(last, targets.view()), nla::Error);
    }
  }
}

namespace {

// Trains on one fixed batch; returns the loss of every step.
std::vector<double> overfit(Flavour f, int steps, double lr, std::uint64_t seed) {
  const auto config = f == Flavour::Gpt2 ? TransformerConfig::gpt2(32, 16, 32, 2, 4)
                                         : TransformerConfig::llama(32, 16, 32, 2, 4, 2);
  TransformerLM<Cpu, float> lm(config, seed);
  AdamWOptions o;
  o.weight_decay = 0.0;
  AdamW<Cpu, float> opt(lm.parameters(), o);
  LmActivations<float, Cpu> acts;
  auto tokens = random_tokens(4, 16, 32, seed + 1);
  Tensor<std::int32_t, Cpu> targets(Shape{64});
  for (index_t i = 0; i < 64; ++i) targets.data()[i] = tokens.data()[(i + 1) % 64];
  std::vector<double> losses;
  for (int s = 0; s < steps; ++s) {
    lm.forward(tokens.view(), acts);
    losses.push_back(lm.loss(acts, targets.view()));
    lm.zero_grad();
    lm.backward(acts);
    clip_grad_norm(lm.backend(), lm.parameters(), 1.0);
    opt.step(lm.backend(), lm.parameters(), lr);
  }
  return losses;
}

}  // namespace

TEST_CASE("a tiny model overfits one batch to loss below 0.05", "[nn][train]") {
  for (Flavour f : {Flavour::Gpt2, Flavour::Llama}) {
    const auto losses = overfit(f, 300, 3e-3, 21);
    INFO(flavour_name(f) << ": first " << losses.front() << ", last " << losses.back());
    REQUIRE(losses.front() > 3.0);
    REQUIRE(losses.back() < 0.05);
  }
}

TEST_CASE("the same seed gives a bit-identical loss curve", "[nn][train]") {
  const auto a = overfit(Flavour::Llama, 12, 3e-3, 5), b = overfit(Flavour::Llama, 12, 3e-3, 5);
  const auto c = overfit(Flavour::Llama, 12, 3e-3, 6);
  REQUIRE(std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0);
  REQUIRE(a != c);
}

TEST_CASE("the model names bad input in its errors", "[nn][errors]") {
  const auto config = tiny_config(Flavour::Gpt2);
  TransformerLM<Cpu, float> lm(config, 1);
  LmActivations<float, Cpu> acts;
  auto tokens = random_tokens(1, 4, config.vocab_size, 1);
  tokens.data()[2] = 11;
  REQUIRE_THROWS_WITH(lm.forward(tokens.view(), acts), Catch::Contains("ids[2] = 11"));
  tokens.data()[2] = 0;
  auto too_long = random_tokens(1, config.context_length + 1, config.vocab_size, 1);
  REQUIRE_THROWS_WITH(lm.forward(too_long.view(), acts), Catch::Contains("context_length"));
  Tensor<std::int32_t, Cpu> targets(Shape{4});
  REQUIRE_THROWS_WITH(lm.loss(acts, targets.view()), Catch::Contains("call forward"));
  REQUIRE_THROWS_WITH(lm.backward(acts), Catch::Contains("call loss"));
  Tensor<float, Cpu> nan_vector(Shape{1, config.d_model});
  nan_vector.data()[3] = std::numeric_limits<float>::quiet_NaN();
  Hooks<float, Cpu> hooks{{0, HookAction::Add, {1}, nan_vector.view(), {}}};
  REQUIRE_THROWS_WITH(lm.forward(tokens.view(), acts, &hooks), Catch::Contains("non-finite"));
  Tensor<float, Cpu> ok_vector(Shape{1, config.d_model});
  hooks[0] = {0, HookAction::Add, {4}, ok_vector.view(), {}};
  REQUIRE_THROWS_WITH(lm.forward(tokens.view(), acts, &hooks), Catch::Contains("rows[0] = 4"));
  hooks[0] = {3, HookAction::Add, {0}, ok_vector.view(), {}};
  REQUIRE_THROWS_WITH(lm.forward(tokens.view(), acts, &hooks), Catch::Contains("stream index 3"));
  Tensor<std::int32_t, Cpu> flat(Shape{4});
  REQUIRE_THROWS_WITH(lm.forward(flat.view(), acts), Catch::Contains("rank 2"));
  REQUIRE_THROWS_AS(TransformerConfig::gpt2(10, 8, 10, 2, 3), nla::Error);
  // A loss refused for a bad target leaves nothing for backward() to run on,
  // even after an earlier loss that succeeded.
  lm.forward(tokens.view(), acts);
  for (index_t i = 0; i < 4; ++i) targets.data()[i] = std::int32_t(i);
  lm.loss(acts, targets.view());
  targets.data()[1] = std::int32_t(config.vocab_size);
  REQUIRE_THROWS_WITH(lm.loss(acts, targets.view()), Catch::Contains("target[1] = 11"));
  REQUIRE_THROWS_WITH(lm.backward(acts), Catch::Contains("call loss"));
}

TEST_CASE("parameters carry Hugging Face names in one flat buffer", "[nn]") {
  TransformerLM<Cpu, float> gpt2(TransformerConfig::gpt2(11, 8, 8, 2, 2));
  const auto& p = gpt2.parameters();
  REQUIRE(p.contains("transformer.wte.weight"));
  REQUIRE(p.contains("transformer.h.1.attn.c_attn.weight"));
  REQUIRE(p.info(p.find("transformer.h.0.mlp.c_fc.weight")).shape == (Shape{32, 8}));
  REQUIRE_FALSE(p.contains("lm_head.weight"));  // tied
  TransformerLM<Cpu, float> llama(TransformerConfig::llama(11, 8, 8, 2, 4, 2));
  const auto& q = llama.parameters();
  REQUIRE(q.info(q.find("model.layers.0.self_attn.k_proj.weight")).shape == (Shape{4, 8}));
  REQUIRE(q.contains("lm_head.weight"));
  REQUIRE(q.contains("model.norm.weight"));
  index_t total = 0;
  for (const auto& info : q.infos()) {
    REQUIRE(info.offset == total);
    total += info.shape.size();
  }
  REQUIRE(total == q.size());
}
