#pragma once
// Group-relative policy optimisation as a loss over per-token
// log-probabilities, for any policy model. The model computes logp (current
// policy, with gradients), the sampler recorded old_logp, a frozen copy gives
// ref_logp; this returns the loss and d loss / d logp per token, which the
// model turns into parameter gradients (TransformerLM::set_row_loss_gradient).
//
// Sequence i of group g has reward r_i. Advantage:
//   A_i = (r_i - mean_g r) / (std_g r + eps)     std unbiased (n - 1)
//   A_i =  r_i - mean_g r                         scale_by_std = false (Dr. GRPO)
// Token t of sequence i, ratio rho = exp(logp - old_logp):
//   s_t = min(rho A_i, clip(rho, 1 - clip_low, 1 + clip_high) A_i)
//   o_t = s_t - beta KL_t, with KL_t estimating KL(pi || pi_ref) from delta = ref_logp - logp:
//     k1 = -delta       k2 = delta^2 / 2       k3 = exp(delta) - delta - 1
// Loss = -sum_t w_t o_t, with the aggregation weights w_t:
//   SequenceMean:  1 / (n_seq |i|)     token mean per sequence, then mean over sequences
//   TokenMean:     1 / n_tokens        token mean over the batch
//   Constant:      1 / (n_seq C)       Dr. GRPO's constant normaliser
// Gradient: d s_t / d logp = rho A_i where the unclipped term is the min (or
// they tie), else 0; d k1 = 1, d k2 = -delta, d k3 = 1 - exp(delta).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "nla/core/error.hpp"

namespace nla {

enum class KlEstimator { K1, K2, K3 };
enum class LossAggregation { SequenceMean, TokenMean, Constant };

struct GrpoOptions {
  double clip_low = 0.2, clip_high = 0.2;
  double kl_coef = 0.01;
  KlEstimator kl = KlEstimator::K1;
  bool scale_by_std = true;  // false: Dr. GRPO advantages
  double eps = 1e-6;
  LossAggregation aggregation = LossAggregation::SequenceMean;
  double constant_normalizer = 1.0;  // C for LossAggregation::Constant (e.g. max length)

  void check() const {
    const char* op = "GrpoOptions";
    NLA_CHECK(clip_low >= 0 && clip_low < 1 && clip_high >= 0, op,
              "clip range [1 - {}, 1 + {}] is invalid", clip_low, clip_high);
    NLA_CHECK(kl_coef >= 0 && eps > 0 && constant_normalizer > 0, op,
              "kl_coef {}, eps {}, constant_normalizer {} must be >= 0, > 0, > 0", kl_coef, eps,
              constant_normalizer);
  }
};

// Rewards of n_groups * group_size sequences, groups contiguous.
inline std::vector<double> group_advantages(const std::vector<double>& rewards,
                                            std::size_t group_size, const GrpoOptions& o) {
  const char* op = "group_advantages";
  NLA_CHECK(group_size >= 2 && rewards.size() % group_size == 0, op,
            "{} rewards do not form groups of {} (need >= 2 per group)", rewards.size(),
            group_size);
  std::vector<double> adv(rewards.size());
  for (std::size_t g = 0; g < rewards.size(); g += group_size) {
    double mean = 0, var = 0;
    for (std::size_t i = g; i < g + group_size; ++i) {
      NLA_CHECK(std::isfinite(rewards[i]), op, "reward[{}] = {} is not finite", i, rewards[i]);
      mean += rewards[i] / double(group_size);
    }
    for (std::size_t i = g; i < g + group_size; ++i)
      var += (rewards[i] - mean) * (rewards[i] - mean) / double(group_size - 1);
    for (std::size_t i = g; i < g + group_size; ++i)
      adv[i] = o.scale_by_std ? (rewards[i] - mean) / (std::sqrt(var) + o.eps) : rewards[i] - mean;
  }
  return adv;
}

// Per-token inputs, sequences concatenated: tokens of sequence i are
// [offsets[i], offsets[i + 1]).
struct GrpoBatch {
  std::vector<double> logp, old_logp, ref_logp;
  std::vector<std::size_t> offsets;  // n_seq + 1
  std::vector<double> advantages;    // n_seq
};

struct GrpoLoss {
  double loss = 0;
  std::vector<double> dlogp;    // d loss / d logp per token
  double clip_fraction = 0;     // tokens whose gradient the clip removed
  double kl = 0;                // mean KL estimate per token
  double entropy_estimate = 0;  // mean -logp of the sampled tokens (a Monte Carlo entropy)
  double mean_ratio = 0;
};

inline GrpoLoss grpo_loss(const GrpoBatch& b, const GrpoOptions& o) {
  const char* op = "grpo_loss";
  o.check();
  const std::size_t n_seq = b.advantages.size(), n = b.logp.size();
  NLA_CHECK(b.offsets.size() == n_seq + 1 && b.offsets.front() == 0 && b.offsets.back() == n, op,
            "offsets ({} entries, last {}) do not cover {} tokens of {} sequences",
            b.offsets.size(), b.offsets.empty() ? 0 : b.offsets.back(), n, n_seq);
  NLA_CHECK(b.old_logp.size() == n && b.ref_logp.size() == n, op,
            "logp/old_logp/ref_logp have {}/{}/{} tokens", n, b.old_logp.size(), b.ref_logp.size());
  GrpoLoss r;
  r.dlogp.assign(n, 0.0);
  std::size_t clipped = 0;
  for (std::size_t i = 0; i < n_seq; ++i) {
    const std::size_t first = b.offsets[i], last = b.offsets[i + 1];
    NLA_CHECK(first <= last, op, "offsets decrease at sequence {}", i);
    const std::size_t len = last - first;
    if (len == 0) continue;
    const double w = o.aggregation == LossAggregation::SequenceMean ? 1.0 / double(n_seq * len)
                     : o.aggregation == LossAggregation::TokenMean
                         ? 1.0 / double(n)
                         : 1.0 / (double(n_seq) * o.constant_normalizer);
    const double a = b.advantages[i];
    for (std::size_t t = first; t < last; ++t) {
      NLA_CHECK(
          std::isfinite(b.logp[t]) && std::isfinite(b.old_logp[t]) && std::isfinite(b.ref_logp[t]),
          op, "token {} has a non-finite log-probability", t);
      const double rho = std::exp(b.logp[t] - b.old_logp[t]);
      const double clipped_rho = std::clamp(rho, 1 - o.clip_low, 1 + o.clip_high);
      const double unclipped = rho * a, clip_term = clipped_rho * a;
      const double s = std::min(unclipped, clip_term);
      const double ds = unclipped <= clip_term ? rho * a : 0.0;
      clipped += unclipped > clip_term;
      const double delta = b.ref_logp[t] - b.logp[t];
      double kl = 0, dkl = 0;
      switch (o.kl) {
        case KlEstimator::K1:
          kl = -delta, dkl = 1;
          break;
        case KlEstimator::K2:
          kl = 0.5 * delta * delta, dkl = -delta;
          break;
        case KlEstimator::K3:
          kl = std::exp(delta) - delta - 1, dkl = 1 - std::exp(delta);
          break;
      }
      r.loss -= w * (s - o.kl_coef * kl);
      r.dlogp[t] = -w * (ds - o.kl_coef * dkl);
      r.kl += kl / double(n);
      r.entropy_estimate -= b.logp[t] / double(n);
      r.mean_ratio += rho / double(n);
    }
  }
  r.clip_fraction = n ? double(clipped) / double(n) : 0.0;
  return r;
}

}  // namespace nla
