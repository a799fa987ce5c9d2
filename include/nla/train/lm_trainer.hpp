#pragma once
// One language-model training step, shared by the examples, the benchmarks
// and the tests, so that what is timed is exactly what is trained:
//   forward -> weighted cross-entropy -> backward -> clip global norm -> AdamW
// The learning rate comes from the schedule at the optimiser's step count,
// so a trainer restored from a checkpoint continues on the same schedule.
// Under data parallelism (set_data_parallel) each rank passes its slice of
// the batch and the update is dist/data_parallel.hpp's.

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>

#include "nla/dist/data_parallel.hpp"
#include "nla/io/checkpoint.hpp"
#include "nla/nn/transformer_lm.hpp"
#include "nla/optim/adamw.hpp"
#include "nla/optim/clip.hpp"
#include "nla/optim/schedule.hpp"

namespace nla {

struct LmTrainerOptions {
  AdamWOptions adamw;
  WarmupCosineSchedule schedule;
  double clip_norm = 1.0;  // <= 0: no clipping
  // The logits' rows are padded to a multiple of this many entries (see
  // LmActivations::logits_padding): 64 makes GPT-2's 50257 a 50304-entry
  // row, which cuBLASLt multiplies with its aligned kernels. 1: no padding.
  index_t logits_padding = kAlignedLogitsPadding;
};

struct LmStepResult {
  double loss = 0;       // mean loss before the update (over all ranks)
  double grad_norm = 0;  // global gradient norm before clipping
  double lr = 0;         // learning rate used
};

template <class B, class T>
class LmTrainer {
 public:
  LmTrainer(TransformerLM<B, T>& model, const LmTrainerOptions& options)
      : model_(&model), options_(options), optimizer_(model.parameters(), options.adamw) {
    activations_.logits_padding = options.logits_padding;
  }

  // Every rank trains on its slice of each batch from now on; the optimiser
  // becomes this rank's (its shard under ZeRO stage 1).
  void set_data_parallel(const DataParallel& data_parallel) {
    data_parallel_ = data_parallel;
    data_parallel_.adopt(model_->backend(), optimizer_, model_->parameters());
  }
  const DataParallel& data_parallel() const { return data_parallel_; }

  // tokens: [batch, t]; targets: [batch * t] (ignore_index skips a position);
  // weights: [batch * t] or empty. rank_weight: this rank's share of the
  // global batch (its target count when ranks' counts differ; 1 when equal).
  LmStepResult step(ConstView<std::int32_t, B> tokens, ConstView<std::int32_t, B> targets,
                    ConstView<float, B> weights = {}, std::int32_t ignore_index = -100,
                    double rank_weight = 1.0) {
    LmStepResult r;
    r.lr = options_.schedule(optimizer_.step_count());
    data_parallel_.run_local("LmTrainer::step", [&] {
      NLA_CHECK(std::isfinite(rank_weight) && rank_weight > 0, "LmTrainer::step",
                "rank_weight {} must be positive", rank_weight);
      model_->forward(tokens, activations_);
      r.loss = model_->loss(activations_, targets, weights, ignore_index);
    });
    // One collective gives the mean loss and this rank's gradient share.
    double share = 1;
    if (data_parallel_.size() > 1) {
      const auto s = data_parallel_.sum({r.loss * rank_weight, rank_weight});
      r.loss = s[0] / s[1];
      share = rank_weight / s[1];
    }
    model_->zero_grad();
    data_parallel_.backward_and_reduce(
        model_->backend(), model_->parameters(), share,
        [&](const GradientsFinal& on_final) { model_->backward(activations_, nullptr, on_final); });
    r.grad_norm = data_parallel_.apply(model_->backend(), model_->parameters(), optimizer_, r.lr,
                                       options_.clip_norm);
    return r;
  }

  // Mean loss without a gradient (validation).
  double evaluate(ConstView<std::int32_t, B> tokens, ConstView<std::int32_t, B> targets,
                  ConstView<float, B> weights = {}, std::int32_t ignore_index = -100) {
    model_->forward(tokens, activations_);
    const double loss = model_->loss(activations_, targets, weights, ignore_index);
    activations_.has_loss = false;
    return loss;
  }

  // Checkpoints (io/checkpoint.hpp) that hold the whole optimiser state, so
  // a run resumes on any number of ranks. Data parallel: every rank calls
  // both; rank 0 alone writes, every rank reads and keeps its shard.
  void save_checkpoint(const std::string& path, const TrainingState& state) const {
    std::optional<AdamW<B, T>> storage;
    const AdamW<B, T>& whole = data_parallel_.whole_optimizer(model_->backend(), optimizer_,
                                                              model_->parameters(), storage);
    data_parallel_.on_root("LmTrainer::save_checkpoint",
                           [&] { nla::save_checkpoint(path, *model_, whole, state); });
  }
  TrainingState load_checkpoint(const std::string& path) {
    const TrainingState state = nla::load_checkpoint(path, *model_, optimizer_);
    data_parallel_.adopt(model_->backend(), optimizer_, model_->parameters());
    return state;
  }

  TransformerLM<B, T>& model() { return *model_; }
  AdamW<B, T>& optimizer() { return optimizer_; }
  const LmTrainerOptions& options() const { return options_; }
  std::int64_t step_count() const { return optimizer_.step_count(); }

 private:
  TransformerLM<B, T>* model_;
  LmTrainerOptions options_;
  AdamW<B, T> optimizer_;
  DataParallel data_parallel_;
  LmActivations<T, B> activations_;
};

}  // namespace nla
