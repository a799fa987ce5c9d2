#pragma once
// The distribution a token is drawn from, given one row of logits z [vocab]:
//   z_i    = -inf for tokens outside allowed_tokens (when that list is set:
//            a restricted-vocabulary policy is the masked model)
//   p      = softmax(z / temperature)
//   top-k: keep the k most probable tokens (ties broken by lower id)
//   top-p: of those, keep the smallest most-probable-first prefix whose mass
//          reaches top_p (the token that crosses top_p is kept)
//   q      = p restricted to the kept set, renormalised
// temperature 0 is greedy decoding: q puts all mass on argmax z.
// A token is drawn by inverting q's cumulative sum at a counter-based uniform
// u(seed, stream, index), so a draw depends only on (seed, stream, index), not
// on batch composition, thread count or whether a KV cache was used.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <vector>

#include "nla/core/error.hpp"
#include "nla/core/shape.hpp"
#include "nla/core/token_draw.hpp"

namespace nla {

struct SamplingOptions {
  double temperature = 1.0;  // 0: greedy
  index_t top_k = 0;         // 0: no top-k truncation
  double top_p = 1.0;        // 1: no nucleus truncation
  index_t max_new_tokens = 32;
  std::vector<std::int32_t> stop_tokens;  // generation ends after emitting one
  // Empty: every token. Otherwise the only tokens the policy can emit; the
  // model's log-probabilities are then those of the masked softmax too.
  std::vector<std::int32_t> allowed_tokens;

  void check() const {
    const char* op = "SamplingOptions";
    NLA_CHECK(std::isfinite(temperature) && temperature >= 0, op,
              "temperature {} must be finite and >= 0", temperature);
    NLA_CHECK(top_k >= 0, op, "top_k {} must be >= 0", top_k);
    NLA_CHECK(top_p > 0 && top_p <= 1, op, "top_p {} must lie in (0, 1]", top_p);
    NLA_CHECK(max_new_tokens >= 1, op, "max_new_tokens {} must be >= 1", max_new_tokens);
    for (std::int32_t t : allowed_tokens) NLA_CHECK(t >= 0, op, "allowed token {} is negative", t);
    for (std::int32_t t : stop_tokens)
      NLA_CHECK(allowed_tokens.empty() || std::find(allowed_tokens.begin(), allowed_tokens.end(),
                                                    t) != allowed_tokens.end(),
                op, "stop token {} is not among the allowed tokens", t);
  }
  bool is_stop(std::int32_t token) const {
    return std::find(stop_tokens.begin(), stop_tokens.end(), token) != stop_tokens.end();
  }
};

// Writes q (above) into probs [vocab], and into model_log_probs [vocab] the
// temperature-1 untruncated log-softmax, which is what a teacher-forced pass
// computes for the same tokens. `order` is scratch.
template <class T>
void sampling_distribution(const T* logits, index_t vocab, const SamplingOptions& o,
                           std::vector<double>& probs, std::vector<double>& model_log_probs,
                           std::vector<std::int32_t>& order) {
  const char* op = "sampling_distribution";
  constexpr double kMasked = -std::numeric_limits<double>::infinity();
  probs.assign(vocab, 0.0);
  model_log_probs.assign(vocab, o.allowed_tokens.empty() ? 0.0 : kMasked);
  for (std::int32_t t : o.allowed_tokens) {
    NLA_CHECK(t < vocab, op, "allowed token {} is outside the vocabulary of {}", t, vocab);
    model_log_probs[t] = 0.0;
  }
  double max = kMasked;
  index_t argmax = 0;
  for (index_t i = 0; i < vocab; ++i) {
    const double z = double(logits[i]);
    NLA_CHECK(std::isfinite(z), op, "logit {} of token {} is not finite", z, i);
    if (model_log_probs[i] == kMasked) continue;
    if (z > max) max = z, argmax = i;
  }
  // exp(z - max) gives the model's log-softmax and, at temperature 1 (the
  // RL default), the sampling distribution too: one exp per token, not two.
  double sum = 0;
  for (index_t i = 0; i < vocab; ++i)
    if (model_log_probs[i] != kMasked) sum += probs[i] = std::exp(double(logits[i]) - max);
  const double lse = max + std::log(sum);
  for (index_t i = 0; i < vocab; ++i)
    if (model_log_probs[i] != kMasked) model_log_probs[i] = double(logits[i]) - lse;
  if (o.temperature == 0) {
    probs.assign(vocab, 0.0);
    probs[argmax] = 1.0;
    return;
  }
  double tsum = sum;
  if (o.temperature != 1) {
    tsum = 0;
    for (index_t i = 0; i < vocab; ++i)
      if (model_log_probs[i] != kMasked)
        tsum += probs[i] = std::exp((double(logits[i]) - max) / o.temperature);
  }
  for (auto& p : probs) p /= tsum;
  const bool top_k = o.top_k > 0 && o.top_k < vocab;
  if (!top_k && o.top_p >= 1) return;
  order.resize(vocab);
  std::iota(order.begin(), order.end(), 0);
  const auto more_probable = [&](std::int32_t a, std::int32_t b) {
    return probs[a] > probs[b] || (probs[a] == probs[b] && a < b);
  };
  const index_t k = top_k ? o.top_k : vocab;
  std::partial_sort(order.begin(), order.begin() + k, order.end(), more_probable);
  index_t keep = k;
  if (o.top_p < 1) {
    double mass = 0, kept_k = 0;
    for (index_t i = 0; i < k; ++i) kept_k += probs[order[i]];
    for (keep = 0; keep < k;) {
      mass += probs[order[keep++]];
      if (mass >= o.top_p * kept_k) break;
    }
  }
  double kept = 0;
  for (index_t i = 0; i < keep; ++i) kept += probs[order[i]];
  std::vector<double>& q = probs;
  for (index_t i = keep; i < vocab; ++i) q[order[i]] = 0.0;
  for (index_t i = 0; i < keep; ++i) q[order[i]] /= kept;
}

// Inverse-CDF draw from probs at u in [0, 1); never returns a zero-probability
// token (rounding cannot push it past the last kept one).
inline std::int32_t draw_token(const std::vector<double>& probs, double u) {
  double cdf = 0;
  std::int32_t last = -1;
  for (std::size_t i = 0; i < probs.size(); ++i) {
    if (probs[i] <= 0) continue;
    last = std::int32_t(i);
    cdf += probs[i];
    if (u < cdf) return last;
  }
  NLA_CHECK(last >= 0, "draw_token", "the sampling distribution has no mass");
  return last;
}

// One token drawn from the whole law at u: the token, log q(token) and
// log p(token) (scratch is thread-local, so rows may be drawn in parallel).
template <class T>
TokenDraw sample_token(const T* logits, index_t vocab, const SamplingOptions& o, double u) {
  thread_local std::vector<double> probs, model_log_probs;
  thread_local std::vector<std::int32_t> order;
  sampling_distribution(logits, vocab, o, probs, model_log_probs, order);
  TokenDraw d;
  d.token = draw_token(probs, u);
  d.status = TokenDrawStatus::Drawn;
  d.logprob = float(std::log(probs[d.token]));
  d.model_logprob = float(model_log_probs[d.token]);
  return d;
}

}  // namespace nla
