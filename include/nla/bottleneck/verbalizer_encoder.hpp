#pragma once
// The verbalizer as the encoder of the generic Autoencoder: it samples G
// explanations per activation and learns from the reconstructor's errors by
// GRPO, with a KL penalty to a frozen copy of itself (taken when the encoder
// is made, i.e. after the warm start).
//
// Reward of explanation i with normalised MSE e_i (its reconstruction error):
//   NegLogMse:  r_i = -log(max(e_i, 1e-8))     (the article's)
//   NegMse:     r_i = -e_i
// A failed explanation (no stop token, or nothing before it) gets the worst
// reward the function can give, at e = 4 (2 (1 - cos) <= 4): -log 4 or -4.
// Then per rollout, `epochs` times: teacher-forced log-probabilities with
// gradients -> grpo_loss -> backward -> clip -> AdamW (rl/grpo.hpp).
//
// Data parallel (set_data_parallel): each rank encodes its slice of the
// activations, so all G samples of an activation stay on one rank and group
// advantages need no communication. Sample streams are numbered globally
// (rank r's slice of n activations starts at stream base + r n G), so w
// ranks draw exactly the samples one process would; gradients are reduced
// by DataParallel::update and the logged statistics are over all ranks.
//
// The variants of the text bottleneck are options, not classes:
//   restricted vocabulary: sampling.allowed_tokens (masks sampling and training alike)
//   length limit:          sampling.max_new_tokens (an explanation that hits it has failed)
// and the noisy channel wraps the decoder (bottleneck/noisy_channel.hpp).

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "nla/bottleneck/autoencoder.hpp"
#include "nla/bottleneck/explanation.hpp"
#include "nla/bottleneck/verbalizer.hpp"
#include "nla/dist/data_parallel.hpp"
#include "nla/optim/adamw.hpp"
#include "nla/rl/grpo.hpp"

namespace nla {

enum class RewardKind { NegLogMse, NegMse };

struct VerbalizerEncoderOptions {
  index_t group_size = 8;               // G explanations per activation in a training step
  SamplingOptions sampling;             // training samples: temperature 1 by default
  SamplingOptions evaluation_sampling;  // evaluate(): one sample per activation
  GrpoOptions grpo;
  RewardKind reward = RewardKind::NegLogMse;
  int epochs = 1;  // optimisation epochs per rollout batch
  AdamWOptions adamw{1e-5, 0.9, 0.95, 1e-8, 0.0};
  double clip_norm = 1.0;
  std::uint64_t seed = 0;
};

inline double explanation_reward(double error, RewardKind kind) {
  return kind == RewardKind::NegLogMse ? -std::log(std::max(error, 1e-8)) : -error;
}
inline double worst_explanation_reward(RewardKind kind) {
  return explanation_reward(4.0, kind);
}

template <class B, class T>
class VerbalizerEncoder {
 public:
  using Message = Explanation;
  using Detokenize = std::function<std::string(const std::vector<std::int32_t>&)>;

  VerbalizerEncoder(Verbalizer<B, T>& policy, VerbalizerEncoderOptions options,
                    Detokenize detokenize = {})
      : policy_(&policy),
        reference_(policy.clone()),
        options_(std::move(options)),
        optimizer_(policy.model().parameters(), options_.adamw),
        detokenize_(std::move(detokenize)) {
    const char* op = "VerbalizerEncoder";
    NLA_CHECK(options_.group_size >= 2, op, "group_size {} must be >= 2 (GRPO compares samples)",
              options_.group_size);
    NLA_CHECK(options_.epochs >= 1, op, "epochs {} must be >= 1", options_.epochs);
    NLA_CHECK(!options_.sampling.stop_tokens.empty(), op,
              "sampling.stop_tokens is empty: explanations could never end");
    // The slot token is input only: the policy never emits it.
    for (SamplingOptions* s : {&options_.sampling, &options_.evaluation_sampling}) {
      if (s->allowed_tokens.empty())
        for (std::int32_t t = 0; t < policy.slot_token(); ++t) s->allowed_tokens.push_back(t);
      NLA_CHECK(std::find(s->allowed_tokens.begin(), s->allowed_tokens.end(),
                          policy.slot_token()) == s->allowed_tokens.end(),
                op, "the slot token {} cannot be an allowed output token", policy.slot_token());
    }
    options_.sampling.check();
    options_.evaluation_sampling.check();
    options_.grpo.check();
    policy_->set_allowed_tokens(options_.sampling.allowed_tokens);
    reference_.set_allowed_tokens(options_.sampling.allowed_tokens);
  }

  index_t samples_per_activation() const { return options_.group_size; }
  Verbalizer<B, T>& policy() { return *policy_; }
  Verbalizer<B, T>& reference() { return reference_; }
  AdamW<B, T>& optimizer() { return optimizer_; }
  VerbalizerEncoderOptions& options() { return options_; }

  // From now on each rank trains on its slice of every batch (see the top).
  void set_data_parallel(const DataParallel& data_parallel) {
    data_parallel_ = data_parallel;
    data_parallel_.adopt(policy_->model().backend(), optimizer_, policy_->model().parameters());
  }
  const DataParallel& data_parallel() const { return data_parallel_; }

  // train: G samples per activation, activation-major; else one each. Every
  // call draws from a fresh RNG stream range, so repeated calls differ.
  // Training batches are this rank's slice (equal on every rank); evaluation
  // batches are not split.
  std::vector<Explanation> encode(const ActivationBatch& batch, bool train) {
    const index_t n = batch.size(), g = train ? options_.group_size : 1;
    const index_t ranks = train ? data_parallel_.size() : 1;
    const index_t first = train ? data_parallel_.rank() * n * g : 0;
    policy_->inject(repeat_rows(batch, g), cache_);
    GenerateOptions go;
    go.seed = options_.seed;
    for (index_t i = 0; i < n * g; ++i) go.streams.push_back(next_stream_ + first + i);
    next_stream_ += ranks * n * g;
    const auto generations =
        policy_->explain(cache_, train ? options_.sampling : options_.evaluation_sampling, go);
    std::vector<Explanation> out(generations.size());
    for (std::size_t i = 0; i < generations.size(); ++i) {
      const Generation& gen = generations[i];
      Explanation& e = out[i];
      e.tokens = gen.tokens;
      e.logprobs = gen.model_logprobs;
      e.stopped = gen.finish == FinishReason::Stop;
      if (detokenize_) e.text = detokenize_(e.content());
    }
    return out;
  }

  // One GRPO update from the decoder's errors on encode(batch, true)'s output.
  void learn(const ActivationBatch& batch, const std::vector<Explanation>& messages,
             const DecoderFeedback& feedback) {
    const char* op = "VerbalizerEncoder::learn";
    const index_t g = options_.group_size, m = index_t(messages.size());
    NLA_CHECK(m == batch.size() * g && index_t(feedback.error.size()) == m, op,
              "{} messages and {} errors for {} activations x {}", m, feedback.error.size(),
              batch.size(), g);
    std::vector<double> rewards(static_cast<std::size_t>(m));
    double failures = 0, length = 0;
    for (index_t i = 0; i < m; ++i) {
      const bool failed = messages[i].failed();
      failures += failed;
      length += double(messages[i].tokens.size());
      rewards[i] = failed ? worst_explanation_reward(options_.reward)
                          : explanation_reward(feedback.error[i], options_.reward);
    }
    GrpoBatch gb;
    gb.advantages = group_advantages(rewards, std::size_t(g), options_.grpo);
    std::vector<std::vector<std::int32_t>> actions(static_cast<std::size_t>(m));
    gb.offsets.push_back(0);
    for (index_t i = 0; i < m; ++i) {
      actions[i] = messages[i].tokens;
      NLA_CHECK(!actions[i].empty() && messages[i].logprobs.size() == actions[i].size(), op,
                "explanation {} has {} tokens and {} log-probabilities", i, actions[i].size(),
                messages[i].logprobs.size());
      gb.old_logp.insert(gb.old_logp.end(), messages[i].logprobs.begin(),
                         messages[i].logprobs.end());
      gb.offsets.push_back(gb.old_logp.size());
    }
    const std::vector<float> injected = repeat_rows(batch, g);
    GrpoLoss last;
    data_parallel_.run_local(op, [&] {
      reference_.inject(injected, reference_cache_);
      reference_.teacher_forced(reference_cache_, actions);
      gb.ref_logp = reference_.token_logprobs(reference_cache_);
      reference_cache_.lm.has_loss = false;
      policy_->inject(injected, cache_);
    });
    for (int epoch = 0; epoch < options_.epochs; ++epoch) {
      data_parallel_.run_local(op, [&] {
        policy_->teacher_forced(cache_, actions);
        gb.logp = policy_->token_logprobs(cache_);
        last = grpo_loss(gb, options_.grpo);
        policy_->set_logprob_gradient(cache_, last.dlogp);
      });
      grad_norm_ = learn_from_backward(options_.adamw.lr);
    }
    // Sums over all ranks' messages; the per-token means are means of the
    // ranks' means (slices are equal).
    double sum_r = 0, sum_r2 = 0;
    for (double r : rewards) sum_r += r, sum_r2 += r * r;
    const double w = data_parallel_.size();
    const auto t = data_parallel_.sum({sum_r, sum_r2, double(m), failures, length, last.kl / w,
                                       last.clip_fraction / w, last.entropy_estimate / w,
                                       last.mean_ratio / w, last.loss / w});
    const double mean = t[0] / t[2];
    stats_ = {{"reward_mean", mean},
              {"reward_std", std::sqrt(std::max(0.0, t[1] / t[2] - mean * mean))},
              {"kl", t[5]},
              {"clip_fraction", t[6]},
              {"entropy", t[7]},
              {"mean_ratio", t[8]},
              {"policy_loss", t[9]},
              {"grad_norm", grad_norm_},
              {"failure_rate", t[3] / t[2]},
              {"explanation_tokens", t[4] / t[2]}};
  }

  // Supervised warm start: next-token loss on the explanation tokens only
  // (each ends with its stop token), given the injected activation; one
  // AdamW step at learning rate lr. Returns the loss before the step.
  // Data parallel: the batch is this rank's slice, and the loss returned is
  // the mean over ranks.
  double learn_supervised(const ActivationBatch& batch,
                          const std::vector<std::vector<std::int32_t>>& explanations, double lr) {
    double loss = 0;
    data_parallel_.run_local("VerbalizerEncoder::learn_supervised",
                             [&] { loss = supervised_loss(batch, explanations); });
    grad_norm_ = learn_from_backward(lr);
    return data_parallel_.sum({loss / data_parallel_.size()})[0];
  }

  // The same loss without an update (validation, the shuffled control).
  double supervised_loss(const ActivationBatch& batch,
                         const std::vector<std::vector<std::int32_t>>& explanations) {
    batch.check("VerbalizerEncoder::supervised_loss");
    policy_->inject(batch.vectors, cache_);
    return policy_->teacher_forced(cache_, explanations);
  }

  // The reference becomes a copy of the current policy (call after the warm
  // start, before RL).
  void reset_reference() {
    copy_parameters_by_name(reference_.model().backend(), reference_.model().parameters(),
                            policy_->model().parameters());
  }

  nlohmann::json stats() const { return stats_; }
  double grad_norm() const { return grad_norm_; }
  std::uint64_t next_stream() const { return next_stream_; }
  void set_next_stream(std::uint64_t s) { next_stream_ = s; }

 private:
  // The policy's last loss -> backward, its all-reduce overlapped -> clip ->
  // AdamW at lr. Ranks hold equal slices: each gradient weighs 1 / size.
  double learn_from_backward(double lr) {
    auto& model = policy_->model();
    model.zero_grad();
    data_parallel_.backward_and_reduce(
        model.backend(), model.parameters(), 1.0 / data_parallel_.size(),
        [&](const GradientsFinal& on_final) { policy_->backward(cache_, on_final); });
    return data_parallel_.apply(model.backend(), model.parameters(), optimizer_, lr,
                                options_.clip_norm);
  }

  Verbalizer<B, T>* policy_;
  Verbalizer<B, T> reference_;
  VerbalizerEncoderOptions options_;
  AdamW<B, T> optimizer_;
  DataParallel data_parallel_;
  Detokenize detokenize_;
  typename Verbalizer<B, T>::Cache cache_, reference_cache_;
  std::uint64_t next_stream_ = 0;
  nlohmann::json stats_ = nlohmann::json::object();
  double grad_norm_ = 0;
};

}  // namespace nla
