#pragma once
// AdamW over a model's flat parameter buffer, with decoupled weight decay
// applied only to tensors marked `decay` (matrices, embeddings) and not to
// biases or norm gains. Moments are kept in the accumulation type (fp32 for a
// bf16 model). The update formula is beside the kernel in
// backend/cpu/optimizer.hpp.

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "nla/core/scalar.hpp"
#include "nla/nn/parameters.hpp"

namespace nla {

struct AdamWOptions {
  double lr = 3e-4;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.1;
};

template <class B, class T>
class AdamW {
 public:
  using State = accum_t<T>;
  // Mixed precision (T narrower than State, e.g. bf16 with fp32 state): the
  // update runs on a State-typed master copy of the parameters, made from
  // them at the first step, and the model receives it rounded to T. Updates
  // smaller than T's resolution then accumulate instead of vanishing.
  static constexpr bool kMasterWeights = !std::is_same<T, State>::value;

  AdamW() = default;
  AdamW(const ParameterSet<T, B>& params, AdamWOptions options)
      : options_(options), m_(Shape{params.size()}), v_(Shape{params.size()}) {
    const char* op = "AdamW";
    NLA_CHECK(options.beta1 >= 0 && options.beta1 < 1 && options.beta2 >= 0 && options.beta2 < 1,
              op, "betas ({}, {}) must lie in [0, 1)", options.beta1, options.beta2);
    NLA_CHECK(options.eps > 0 && options.weight_decay >= 0, op,
              "eps {} must be positive and weight_decay {} non-negative", options.eps,
              options.weight_decay);
  }

  AdamWOptions& options() { return options_; }
  const AdamWOptions& options() const { return options_; }
  std::int64_t step_count() const { return step_; }

  // One update with learning rate lr (from a schedule), using the gradients
  // in params.grads().
  void step(B& backend, ParameterSet<T, B>& params, double lr) {
    NLA_CHECK(params.size() == m_.size(), "AdamW::step",
              "optimiser was built for {} parameters, model has {}", m_.size(), params.size());
    NLA_CHECK(std::isfinite(lr) && lr >= 0, "AdamW::step", "learning rate {} is invalid", lr);
    ++step_;
    const double bc1 = 1 - std::pow(options_.beta1, double(step_));
    const double bc2 = 1 - std::pow(options_.beta2, double(step_));
    if (kMasterWeights && master_.size() != params.size()) {
      master_ = Tensor<State, B>(Shape{params.size()});
      convert(backend, master_.data(), static_cast<const T*>(params.values().data()),
              params.size());
    }
    for (const ParameterInfo& info : params.infos()) {
      const index_t o = info.offset, n = info.shape.size();
      State* master = kMasterWeights ? master_.data() + o : nullptr;
      adamw_update(backend, params.values().data() + o, master, params.grads().data() + o,
                   m_.data() + o, v_.data() + o, n, lr, options_.beta1, options_.beta2,
                   options_.eps, info.decay ? options_.weight_decay : 0.0, bc1, bc2);
    }
  }

  // Optimiser state for checkpoints.
  Tensor<State, B>& first_moment() { return m_; }
  Tensor<State, B>& second_moment() { return v_; }
  const Tensor<State, B>& first_moment() const { return m_; }
  const Tensor<State, B>& second_moment() const { return v_; }
  void set_step_count(std::int64_t s) { step_ = s; }

 private:
  AdamWOptions options_;
  Tensor<State, B> m_, v_;
  Tensor<State, B> master_;  // kMasterWeights only
  std::int64_t step_ = 0;
};

}  // namespace nla
