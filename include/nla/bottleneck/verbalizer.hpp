#pragma once
// The activation verbalizer (AV): a copy of the target model, its vocabulary
// extended by one activation-slot token, that reads an activation written
// over the input embedding at the slot of a fixed prompt and writes text.
//   prompt  = prefix, <slot>, suffix                         (fixed tokens)
//   stream[0][slot] = v * injection_scale / max(|v|, 1e-12)   (norm in fp32)
// Optionally v is first centred, v - mean (set_centre): a small model's
// activations share one large mean direction, and after normalisation the
// slot would then carry little that varies between activations.
// A restricted vocabulary (set_allowed_tokens) masks the other tokens' logits
// in teacher-forced passes, matching SamplingOptions::allowed_tokens when
// sampling, so the PPO ratio compares the same masked policy.
// The injection is a Replace hook at stream 0, so its backward pass gives the
// gradient with respect to the injected vector as well as the parameters.
// The slot token's own embedding row (the mean of the others) is never read.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "nla/core/host.hpp"
#include "nla/nn/transformer_lm.hpp"
#include "nla/rl/generate.hpp"

namespace nla {

struct VerbalizerPrompt {
  std::vector<std::int32_t> prefix, suffix;  // tokens around the slot (prefix starts with BOS)
};

template <class T, class B>
struct VerbalizerCache {
  LmActivations<T, B> lm;
  Tensor<T, B> injected, dinjected;  // [batch, d]
  Tensor<std::int32_t, B> tokens, targets;
  Hooks<T, B> hooks;
  std::vector<index_t> explanation_lengths;  // of the last teacher_forced()
};

template <class B, class T>
class Verbalizer {
 public:
  using Cache = VerbalizerCache<T, B>;

  Verbalizer(const TransformerLM<B, T>& target, VerbalizerPrompt prompt, double injection_scale)
      : lm_(extended(target.config())), prompt_(std::move(prompt)), scale_(injection_scale) {
    const char* op = "Verbalizer";
    NLA_CHECK(!prompt_.prefix.empty(), op, "the prompt needs at least one token before the slot");
    NLA_CHECK(injection_scale > 0 && std::isfinite(injection_scale), op,
              "injection_scale {} must be positive", injection_scale);
    const index_t v = target.config().vocab_size;
    for (auto t : prompt_.prefix)
      NLA_CHECK(t >= 0 && t < v, op, "prompt token {} is outside the vocabulary", t);
    for (auto t : prompt_.suffix)
      NLA_CHECK(t >= 0 && t < v, op, "prompt token {} is outside the vocabulary", t);
    copy_parameters_by_name(lm_.backend(), lm_.parameters(), target.parameters());
  }

  // A verbalizer over a model that already has the slot token as its last
  // vocabulary entry (one that save_nla_release wrote, say).
  static Verbalizer from_extended_model(TransformerLM<B, T>&& lm, VerbalizerPrompt prompt,
                                        double injection_scale) {
    const char* op = "Verbalizer::from_extended_model";
    NLA_CHECK(!prompt.prefix.empty(), op, "the prompt needs at least one token before the slot");
    NLA_CHECK(injection_scale > 0 && std::isfinite(injection_scale), op,
              "injection_scale {} must be positive", injection_scale);
    const index_t slot = lm.config().vocab_size - 1;
    for (const auto* part : {&prompt.prefix, &prompt.suffix})
      for (auto t : *part)
        NLA_CHECK(t >= 0 && t < slot, op,
                  "prompt token {} is outside the vocabulary (slot token {} excluded)", t, slot);
    return Verbalizer(CloneTag{}, std::move(lm), std::move(prompt), injection_scale);
  }

  // A deep copy with parameters of its own: the frozen reference policy of RL.
  Verbalizer clone() const {
    Verbalizer v(CloneTag{}, lm_.config(), prompt_, scale_);
    copy_parameters_by_name(v.lm_.backend(), v.lm_.parameters(), lm_.parameters());
    v.centre_ = centre_;
    v.set_allowed_tokens(allowed_);
    return v;
  }

  TransformerLM<B, T>& model() { return lm_; }
  std::int32_t slot_token() const { return std::int32_t(lm_.config().vocab_size - 1); }
  index_t slot_position() const { return index_t(prompt_.prefix.size()); }
  double injection_scale() const { return scale_; }

  // Mean-centring before injection ([d] raw mean activation; empty: off).
  void set_centre(std::vector<float> mean) {
    NLA_CHECK(mean.empty() || index_t(mean.size()) == lm_.config().d_model,
              "Verbalizer::set_centre", "centre has {} values, d_model is {}", mean.size(),
              lm_.config().d_model);
    centre_ = std::move(mean);
  }
  const std::vector<float>& centre() const { return centre_; }

  // Tokens the explanation may use in teacher-forced passes (empty: all).
  void set_allowed_tokens(std::vector<std::int32_t> tokens) {
    const index_t v = lm_.config().vocab_size;
    std::vector<std::uint8_t> keep(static_cast<std::size_t>(v), 0);
    for (auto t : tokens) {
      NLA_CHECK(t >= 0 && t < v, "Verbalizer::set_allowed_tokens",
                "token {} is outside the vocabulary of {}", t, v);
      keep[static_cast<std::size_t>(t)] = 1;
    }
    allowed_ = std::move(tokens);
    allowed_mask_ = Tensor<std::uint8_t, B>(Shape{v});
    from_host(lm_.backend(), allowed_mask_.view(), keep.data());
  }
  const std::vector<std::int32_t>& allowed_tokens() const { return allowed_; }

  std::vector<std::int32_t> prompt_tokens() const {
    std::vector<std::int32_t> p = prompt_.prefix;
    p.push_back(slot_token());
    p.insert(p.end(), prompt_.suffix.begin(), prompt_.suffix.end());
    return p;
  }

  // Writes v_b * scale / max(|v_b|, 1e-12) for n activations (host [n, d]).
  void inject(const std::vector<float>& activations, Cache& c) {
    const char* op = "Verbalizer::inject";
    const index_t d = lm_.config().d_model;
    NLA_CHECK(!activations.empty() && index_t(activations.size()) % d == 0, op,
              "{} values are not rows of d = {}", activations.size(), d);
    const index_t n = index_t(activations.size()) / d;
    std::vector<T> rows(activations.size());
    for (index_t b = 0; b < n; ++b) {
      double sq = 0;
      for (index_t j = 0; j < d; ++j) {
        const float x = activations[b * d + j];
        NLA_CHECK(std::isfinite(x), op, "activation {} has a non-finite value at {}", b, j);
        const float v = centre_.empty() ? x : x - centre_[j];
        sq += double(v) * double(v);
      }
      const double k = scale_ / std::max(std::sqrt(sq), 1e-12);
      for (index_t j = 0; j < d; ++j)
        rows[b * d + j] =
            T(k * (centre_.empty() ? activations[b * d + j] : activations[b * d + j] - centre_[j]));
    }
    c.injected.resize(Shape{n, d});
    from_host(lm_.backend(), c.injected.view(), rows.data());
  }

  // Samples explanations for the activations injected in c (one per row;
  // repeat rows for a group). Per-token log-probabilities come back with them.
  std::vector<Generation> explain(Cache& c, const SamplingOptions& sampling,
                                  const GenerateOptions& options = {}) {
    const index_t n = c.injected.shape()[0];
    const std::vector<std::vector<std::int32_t>> prompts(n, prompt_tokens());
    Generator<B, T> gen(lm_);
    return gen.generate(prompts, sampling, options, [&](index_t batch, index_t past, index_t t) {
      return set_hooks(c, batch, past, t) ? &c.hooks : nullptr;
    });
  }

  // Teacher-forced pass over prompt + explanation b for each injected row b;
  // the loss is the mean next-token loss over explanation tokens only
  // (weights optional, one per explanation). Prepares backward().
  double teacher_forced(Cache& c, const std::vector<std::vector<std::int32_t>>& explanations) {
    const char* op = "Verbalizer::teacher_forced";
    const index_t n = c.injected.shape()[0], p = index_t(prompt_tokens().size());
    NLA_CHECK(index_t(explanations.size()) == n, op, "{} explanations for {} activations",
              explanations.size(), n);
    index_t longest = 0;
    for (index_t b = 0; b < n; ++b) {
      NLA_CHECK(!explanations[b].empty(), op, "explanation {} is empty", b);
      longest = std::max(longest, index_t(explanations[b].size()));
    }
    const index_t t = p + longest - 1;
    std::vector<std::int32_t> tokens(static_cast<std::size_t>(n * t), prompt_.prefix[0]),
        targets(static_cast<std::size_t>(n * t), -100);
    const auto prompt = prompt_tokens();
    for (index_t b = 0; b < n; ++b) {
      const auto& e = explanations[b];
      for (index_t i = 0; i < p; ++i) tokens[b * t + i] = prompt[i];
      for (index_t i = 0; i + 1 < index_t(e.size()); ++i) tokens[b * t + p + i] = e[i];
      for (index_t i = 0; i < index_t(e.size()); ++i) targets[b * t + p - 1 + i] = e[i];
    }
    c.tokens.resize(Shape{n, t});
    c.targets.resize(Shape{n * t});
    from_host(lm_.backend(), c.tokens.view(), tokens.data());
    from_host(lm_.backend(), c.targets.view(), targets.data());
    for (const auto& e : explanations)
      for (auto tok : e)
        NLA_CHECK(tok >= 0 && tok < lm_.config().vocab_size && tok != slot_token() &&
                      (allowed_.empty() ||
                       std::find(allowed_.begin(), allowed_.end(), tok) != allowed_.end()),
                  op,
                  "explanation token {} is outside the vocabulary, the slot token or not allowed",
                  tok);
    set_hooks(c, n, 0, t);
    c.lm.logits_padding = kAlignedLogitsPadding;
    lm_.forward(c.tokens.view(), c.lm, &c.hooks);
    if (!allowed_.empty()) mask_logits(c);
    c.explanation_lengths.clear();
    for (const auto& e : explanations) c.explanation_lengths.push_back(index_t(e.size()));
    return lm_.loss(c.lm, c.targets.view());
  }

  // log p(token) of every explanation token of the last teacher_forced(),
  // concatenated explanation by explanation.
  std::vector<double> token_logprobs(const Cache& c) {
    const auto row_loss = to_host(lm_.backend(), ConstView<accum_t<T>, B>(c.lm.row_loss.view()));
    const index_t t = c.lm.time, p = index_t(prompt_.prefix.size() + 1 + prompt_.suffix.size());
    std::vector<double> out;
    for (index_t b = 0; b < index_t(c.explanation_lengths.size()); ++b)
      for (index_t i = 0; i < c.explanation_lengths[b]; ++i)
        out.push_back(-double(row_loss.data()[b * t + p - 1 + i]));
    return out;
  }

  // Replaces the gradient of the last teacher_forced() by d objective / d logp
  // per explanation token (token_logprobs' order), e.g. a GRPO loss's.
  void set_logprob_gradient(Cache& c, const std::vector<double>& dlogp) {
    const index_t t = c.lm.time, p = index_t(prompt_.prefix.size() + 1 + prompt_.suffix.size());
    std::vector<accum_t<T>> dloss(static_cast<std::size_t>(c.lm.batch * t), accum_t<T>(0));
    std::size_t k = 0;
    for (index_t b = 0; b < index_t(c.explanation_lengths.size()); ++b)
      for (index_t i = 0; i < c.explanation_lengths[b]; ++i, ++k) {
        NLA_CHECK(k < dlogp.size(), "Verbalizer::set_logprob_gradient",
                  "{} gradients for more explanation tokens", dlogp.size());
        dloss[b * t + p - 1 + i] = accum_t<T>(-dlogp[k]);  // row_loss = -logp
      }
    NLA_CHECK(k == dlogp.size(), "Verbalizer::set_logprob_gradient",
              "{} gradients for {} explanation tokens", dlogp.size(), k);
    lm_.set_row_loss_gradient(c.lm, dloss);
  }

  // Parameter gradients accumulate; c.dinjected receives d loss / d injected.
  void backward(Cache& c, const GradientsFinal& on_final = {}) {
    lm_.backward(c.lm, &c.hooks, on_final);
  }

 private:
  struct CloneTag {};
  Verbalizer(CloneTag, const TransformerConfig& config, VerbalizerPrompt prompt, double scale)
      : lm_(config), prompt_(std::move(prompt)), scale_(scale) {}
  Verbalizer(CloneTag, TransformerLM<B, T>&& lm, VerbalizerPrompt prompt, double scale)
      : lm_(std::move(lm)), prompt_(std::move(prompt)), scale_(scale) {}

  static TransformerConfig extended(TransformerConfig c) {
    c.vocab_size += 1;
    return c;
  }

  // The Replace hook for a forward over positions [past, past + t).
  bool set_hooks(Cache& c, index_t batch, index_t past, index_t t) {
    const index_t slot = slot_position();
    if (slot < past || slot >= past + t) return false;
    NLA_CHECK(batch == c.injected.shape()[0], "Verbalizer", "{} sequences for {} injected rows",
              batch, c.injected.shape()[0]);
    c.dinjected.resize(c.injected.shape());
    StreamHook<T, B> h;
    h.stream = 0;
    h.action = HookAction::Replace;
    for (index_t b = 0; b < batch; ++b) h.rows.push_back(b * t + slot - past);
    h.values = c.injected.view();
    h.grad = c.dinjected.view();
    c.hooks = {h};
    return true;
  }

  // Logits of tokens outside allowed_ become -1e30 (exp underflows to 0), so
  // the softmax, its loss and its gradient are the masked policy's. One pass
  // where the logits are (it used to take them to the host and back: two
  // transfers of [batch * t, vocab] per teacher-forced pass).
  void mask_logits(Cache& c) {
    const index_t ld = c.lm.logits_stride;
    mask_columns(lm_.backend(), c.lm.logits.data(), c.lm.logits.size() / ld, ld,
                 lm_.config().vocab_size, static_cast<const std::uint8_t*>(allowed_mask_.data()),
                 T(-1e30));
  }

  TransformerLM<B, T> lm_;
  VerbalizerPrompt prompt_;
  double scale_;
  std::vector<float> centre_;
  std::vector<std::int32_t> allowed_;
  Tensor<std::uint8_t, B> allowed_mask_;  // [vocab]: 1 where allowed_ lets a token through
};

}  // namespace nla
