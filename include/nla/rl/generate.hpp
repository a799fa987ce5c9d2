#pragma once
// Batched autoregressive sampling from a TransformerLM, with or without a KV
// cache. Prompts may have different lengths: all rows advance together from
// the shortest prompt's length, and a row still inside its prompt is fed its
// next prompt token instead of a sample (teacher forcing), so no padding mask
// is needed and every row sees exactly its own prefix. A row ends at a stop
// token or after max_new_tokens; the batch ends when every row has.
//
// Each new token j of row b is drawn with uniform(seed, stream_b, j)
// (rl/sampling.hpp), so the same seed gives the same tokens with and without
// the cache, at any batch size. Without top-k / top-p the backend draws the
// tokens where the logits are (ops/token_draw.hpp) and only the draws come
// back to the host; with them the logits come to the host for the sort.
// Besides the tokens, a Generation holds
//   logprobs[j]        log q(token_j), q the (tempered, truncated) sampling law
//   model_logprobs[j]  log p(token_j), the model's temperature-1 softmax: what
//                      a teacher-forced pass over the same text computes, and
//                      what a policy-gradient ratio needs.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <exception>
#include <functional>
#include <string>
#include <vector>

#include "nla/backend/cpu/parallel.hpp"
#include "nla/core/host.hpp"
#include "nla/core/random.hpp"
#include "nla/core/token_draw.hpp"
#include "nla/nn/transformer_lm.hpp"
#include "nla/ops/token_draw.hpp"
#include "nla/rl/sampling.hpp"

namespace nla {

enum class FinishReason { Stop, Length };

struct Generation {
  std::vector<std::int32_t> tokens;  // new tokens, the stop token included
  std::vector<float> logprobs;
  std::vector<float> model_logprobs;
  FinishReason finish = FinishReason::Length;
};

struct GenerateOptions {
  std::uint64_t seed = 0;
  bool use_kv_cache = true;
  // RNG stream of each row (default: the row index); giving every prompt of a
  // GRPO group its own stream makes its samples independent of batching.
  std::vector<std::uint64_t> streams;
};

// Hooks for one forward over tokens [batch, t] at positions [past, past + t),
// e.g. an activation injected at a prompt slot, or a steering vector added at
// every position. Rows are flat b * t + (position - past).
template <class T, class B>
using HookProvider = std::function<const Hooks<T, B>*(index_t batch, index_t past, index_t t)>;

template <class B, class T>
class Generator {
 public:
  explicit Generator(TransformerLM<B, T>& model) : model_(&model) {}

  std::vector<Generation> generate(const std::vector<std::vector<std::int32_t>>& prompts,
                                   const SamplingOptions& sampling,
                                   const GenerateOptions& options = {},
                                   const HookProvider<T, B>& hooks = {}) {
    const char* op = "Generator::generate";
    sampling.check();
    const auto& c = model_->config();
    const index_t batch = index_t(prompts.size());
    NLA_CHECK(batch > 0, op, "no prompts");
    NLA_CHECK(options.streams.empty() || index_t(options.streams.size()) == batch, op,
              "{} streams for {} prompts", options.streams.size(), batch);
    index_t min_len = c.context_length, max_len = 0;
    for (index_t b = 0; b < batch; ++b) {
      const index_t n = index_t(prompts[b].size());
      NLA_CHECK(n >= 1, op, "prompt {} is empty (start it with a BOS token)", b);
      for (index_t i = 0; i < n; ++i)
        NLA_CHECK(prompts[b][i] >= 0 && prompts[b][i] < c.vocab_size, op,
                  "prompt {} token {} is {}, outside [0, {})", b, i, prompts[b][i], c.vocab_size);
      min_len = std::min(min_len, n);
      max_len = std::max(max_len, n);
    }
    const index_t longest = max_len + sampling.max_new_tokens - 1;
    NLA_CHECK(longest <= c.context_length, op,
              "the longest prompt ({}) plus max_new_tokens ({}) exceeds context_length {}", max_len,
              sampling.max_new_tokens, c.context_length);

    set_allowed_mask(sampling.allowed_tokens);
    std::vector<Generation> out(batch);
    std::vector<std::vector<std::int32_t>> text(prompts);  // prompt + generated so far
    std::vector<bool> done(batch, false);
    if (options.use_kv_cache) {
      if (kv_.batch != batch || kv_.capacity < longest) kv_ = model_->make_kv_cache(batch, longest);
      kv_.reset();
    }

    // Feed positions [past, past + t) of every row; returns the logits of the
    // last one, [batch, 1, vocab].
    auto run = [&](index_t past, index_t t) {
      tokens_.resize(Shape{batch, t});
      host_tokens_.resize(static_cast<std::size_t>(batch * t));
      for (index_t b = 0; b < batch; ++b)
        std::copy_n(text[b].begin() + past, t, host_tokens_.begin() + b * t);
      from_host(model_->backend(), tokens_.view(), host_tokens_.data());
      const Hooks<T, B>* h = hooks ? hooks(batch, past, t) : nullptr;
      return model_->forward_last(tokens_.view(), acts_, h, options.use_kv_cache ? &kv_ : nullptr);
    };

    TensorView<T, B> logits = run(0, min_len);
    for (index_t pos = min_len;; ++pos) {
      // The rows that draw a token now.
      sampled_rows_.clear();
      for (index_t b = 0; b < batch; ++b)
        if (pos >= index_t(prompts[b].size()) && !done[b]) sampled_rows_.push_back(b);
      const TokenDraw* drawn = draw(logits, out, sampling, options);
      for (std::size_t i = 0; i < sampled_rows_.size(); ++i) {
        const index_t b = sampled_rows_[i];
        const TokenDraw& d = drawn[i];
        NLA_CHECK(d.status == TokenDrawStatus::Drawn, op, "row {} at position {}: {}", b, pos,
                  describe_failure(d, request(i, logits, out, options), logits.rows()));
        Generation& g = out[b];
        g.tokens.push_back(d.token);
        g.logprobs.push_back(d.logprob);
        g.model_logprobs.push_back(d.model_logprob);
        text[b].push_back(d.token);
        if (sampling.is_stop(d.token)) {
          done[b] = true;
          g.finish = FinishReason::Stop;
        } else if (index_t(g.tokens.size()) == sampling.max_new_tokens) {
          done[b] = true;
          g.finish = FinishReason::Length;
        }
      }
      // Every text is now pos + 1 long except rows still in their prompt
      // (longer) and rows finished at an earlier step (pos), which get a
      // filler token: the next forward feeds it and ignores its logits.
      bool all_done = true;
      for (index_t b = 0; b < batch; ++b) {
        if (index_t(text[b].size()) == pos) text[b].push_back(text[b].back());
        all_done = all_done && done[b];
      }
      if (all_done) break;
      logits = options.use_kv_cache ? run(pos, 1) : run(0, pos + 1);
    }
    return out;
  }

 private:
  // Draws the next token of each row in sampled_rows_ (out holds what each
  // has drawn so far) from the last position of `logits` [batch, t, vocab]:
  // on the backend, so only the draws come back to the host, unless top-k /
  // top-p truncation asks for the host's sort (rl/sampling.hpp). Both give
  // the same tokens for the same seed.
  const TokenDraw* draw(TensorView<T, B> logits, const std::vector<Generation>& out,
                        const SamplingOptions& sampling, const GenerateOptions& options) {
    const index_t vocab = model_->config().vocab_size;
    const index_t count = index_t(sampled_rows_.size());
    host_draws_.resize(static_cast<std::size_t>(count));
    if (count == 0) return host_draws_.data();
    if (sampling.top_k == 0 && sampling.top_p >= 1) {
      host_requests_.resize(static_cast<std::size_t>(count));
      for (index_t i = 0; i < count; ++i) host_requests_[i] = request(i, logits, out, options);
      requests_.resize(Shape{count});
      draws_.resize(Shape{count});
      from_host(model_->backend(), requests_.view(), host_requests_.data());
      draw_tokens<T>(model_->backend(), draws_.view(), ConstView<T, B>(logits), requests_.view(),
                     options.seed, sampling.temperature, allowed_.view());
      const auto drawn = to_host(model_->backend(), ConstView<TokenDraw, B>(draws_.view()));
      std::copy_n(drawn.data(), count, host_draws_.begin());
      return host_draws_.data();
    }
    // A large vocabulary costs about half a millisecond a row on the host, so
    // the rows run in parallel; an exception must not leave an OpenMP region,
    // so it is carried out and rethrown.
    const auto host_logits = to_host(model_->backend(), ConstView<T, B>(logits));
    std::vector<std::exception_ptr> errors(static_cast<std::size_t>(count));
    cpu::parallel_for(count, 8 * vocab, [&](index_t i) {
      const TokenDrawRequest r = request(i, logits, out, options);
      try {
        host_draws_[i] = sample_token(host_logits.data() + r.row * vocab, vocab, sampling,
                                      random_uniform(options.seed, r.stream, r.index));
      } catch (...) {
        errors[i] = std::current_exception();
      }
    });
    for (const auto& e : errors)
      if (e) std::rethrow_exception(e);
    return host_draws_.data();
  }

  // The draw of sampled_rows_[i]: the last position of its row of logits,
  // with its uniform's stream and index.
  TokenDrawRequest request(index_t i, TensorView<T, B> logits, const std::vector<Generation>& out,
                           const GenerateOptions& options) const {
    const index_t b = sampled_rows_[i], t = logits.shape()[1];
    return TokenDrawRequest{b * t + t - 1,
                            options.streams.empty() ? std::uint64_t(b) : options.streams[b],
                            std::uint64_t(out[b].tokens.size())};
  }

  // The sampling mask on the backend (empty: every token), rebuilt only when
  // the allowed tokens change.
  void set_allowed_mask(const std::vector<std::int32_t>& allowed_tokens) {
    if (allowed_tokens == allowed_tokens_) return;
    const index_t vocab = model_->config().vocab_size;
    std::vector<std::uint8_t> mask(allowed_tokens.empty() ? 0 : vocab, 0);
    for (std::int32_t token : allowed_tokens) {
      NLA_CHECK(token < vocab, "Generator::generate",
                "allowed token {} is outside the vocabulary of {}", token, vocab);
      mask[token] = 1;
    }
    allowed_.resize(Shape{index_t(mask.size())});
    from_host(model_->backend(), allowed_.view(), mask.data());
    allowed_tokens_ = allowed_tokens;
  }

  TransformerLM<B, T>* model_;
  LmActivations<T, B> acts_;
  KvCache<T, B> kv_;
  Tensor<std::int32_t, B> tokens_;
  std::vector<std::int32_t> host_tokens_;
  std::vector<index_t> sampled_rows_;
  std::vector<std::int32_t> allowed_tokens_;
  Tensor<std::uint8_t, B> allowed_;
  std::vector<TokenDrawRequest> host_requests_;
  Tensor<TokenDrawRequest, B> requests_;
  Tensor<TokenDraw, B> draws_;
  std::vector<TokenDraw> host_draws_;
};

}  // namespace nla
