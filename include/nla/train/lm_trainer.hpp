#pragma once
// One language-model training step, shared by the examples, the benchmarks
// and the tests, so that what is timed is exactly what is trained:
//   forward -> weighted cross-entropy -> backward -> clip global norm -> AdamW
// The learning rate comes from the schedule at the optimiser's step count,
// so a trainer restored from a checkpoint continues on the same schedule.

#include <cstdint>

#include "nla/nn/transformer_lm.hpp"
#include "nla/optim/adamw.hpp"
#include "nla/optim/clip.hpp"
#include "nla/optim/schedule.hpp"

namespace nla {

struct LmTrainerOptions {
  AdamWOptions adamw;
  WarmupCosineSchedule schedule;
  double clip_norm = 1.0;  // <= 0: no clipping
};

struct LmStepResult {
  double loss = 0;       // mean loss before the update
  double grad_norm = 0;  // global gradient norm before clipping
  double lr = 0;         // learning rate used
};

template <class B, class T>
class LmTrainer {
 public:
  LmTrainer(TransformerLM<B, T>& model, const LmTrainerOptions& options)
      : model_(&model), options_(options), optimizer_(model.parameters(), options.adamw) {}

  // tokens: [batch, t]; targets: [batch * t] (ignore_index skips a position);
  // weights: [batch * t] or empty.
  LmStepResult step(ConstView<std::int32_t, B> tokens, ConstView<std::int32_t, B> targets,
                    ConstView<float, B> weights = {}, std::int32_t ignore_index = -100) {
    LmStepResult r;
    r.lr = options_.schedule(optimizer_.step_count());
    model_->forward(tokens, activations_);
    r.loss = model_->loss(activations_, targets, weights, ignore_index);
    model_->zero_grad();
    model_->backward(activations_);
    r.grad_norm = clip_grad_norm(model_->backend(), model_->parameters(), options_.clip_norm);
    optimizer_.step(model_->backend(), model_->parameters(), r.lr);
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

  TransformerLM<B, T>& model() { return *model_; }
  AdamW<B, T>& optimizer() { return optimizer_; }
  const LmTrainerOptions& options() const { return options_; }
  std::int64_t step_count() const { return optimizer_.step_count(); }

 private:
  TransformerLM<B, T>* model_;
  LmTrainerOptions options_;
  AdamW<B, T> optimizer_;
  LmActivations<T, B> activations_;
};

}  // namespace nla
