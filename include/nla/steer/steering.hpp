#pragma once
// Steering with an edited explanation: the paper's causal test of an NLA.
// The reconstructor (AR) turns an explanation and a hand-edited copy of it
// into two activations; their difference is a direction in the target's
// residual stream, added back during the target's forward pass:
//   delta = AR(edited) - AR(original)                          [d]
//   h    <- h + alpha * |h| * delta / |delta|   at stream K, at the chosen positions
// |h| is each row's own norm at that stream, so alpha is a strength relative
// to the activation it perturbs and means the same at every layer. The add is
// the AddNormScaled hook (nn/hooks.hpp) with values = alpha * delta / |delta|.
//
// SteeringHooks turns a direction and SteeringOptions into the HookProvider
// that Generator::generate calls once per forward (positions [past, past + t),
// so the same positions are steered with and without the KV cache);
// steered_generate is the one-call version.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "nla/core/error.hpp"
#include "nla/core/host.hpp"
#include "nla/nn/hooks.hpp"
#include "nla/nn/transformer_lm.hpp"
#include "nla/rl/generate.hpp"

namespace nla {

// delta = edited - original, in double. original, edited: [d], the AR's
// reconstructions of the original and the edited explanation.
template <class T>
std::vector<double> steering_delta(const std::vector<T>& original, const std::vector<T>& edited) {
  const char* op = "steering_delta";
  NLA_CHECK(!original.empty(), op, "original is empty");
  NLA_CHECK(original.size() == edited.size(), op, "original has {} entries but edited has {}",
            original.size(), edited.size());
  std::vector<double> delta(original.size());
  double sum_sq = 0;
  for (std::size_t i = 0; i < original.size(); ++i) {
    const double a = double(original[i]), b = double(edited[i]);
    NLA_CHECK(std::isfinite(a), op, "original[{}] = {} is not finite", i, a);
    NLA_CHECK(std::isfinite(b), op, "edited[{}] = {} is not finite", i, b);
    delta[i] = b - a;
    sum_sq += delta[i] * delta[i];
  }
  NLA_CHECK(sum_sq > 0, op,
            "edited equals original in all {} entries, so there is no steering direction",
            original.size());
  return delta;
}

// Which positions of each sequence are steered: an explicit list, or every
// position from `first` on, the generated tokens included. The default is
// every position.
class SteeringPositions {
 public:
  SteeringPositions() = default;
  static SteeringPositions at(std::vector<index_t> positions) {
    SteeringPositions p;
    p.list_ = std::move(positions);
    p.first_ = -1;
    return p;
  }
  static SteeringPositions from(index_t first) {
    SteeringPositions p;
    p.first_ = first;
    return p;
  }

  bool is_list() const { return first_ < 0; }
  index_t first() const { return first_; }
  const std::vector<index_t>& list() const { return list_; }

  bool contains(index_t position) const {
    if (!is_list()) return position >= first_;
    return std::find(list_.begin(), list_.end(), position) != list_.end();
  }

  void check(index_t context_length) const {
    const char* op = "SteeringPositions";
    if (!is_list()) {
      NLA_CHECK(first_ < context_length, op, "from position {} is not below context_length {}",
                first_, context_length);
      return;
    }
    NLA_CHECK(!list_.empty(), op, "the position list is empty (nothing would be steered)");
    for (std::size_t i = 0; i < list_.size(); ++i) {
      NLA_CHECK(list_[i] >= 0 && list_[i] < context_length, op,
                "positions[{}] = {} is outside [0, {})", i, list_[i], context_length);
      for (std::size_t j = 0; j < i; ++j)
        NLA_CHECK(list_[j] != list_[i], op,
                  "position {} is listed twice (positions[{}] and positions[{}])", list_[i], j, i);
    }
  }

 private:
  std::vector<index_t> list_;
  index_t first_ = 0;  // < 0: use list_
};

struct SteeringOptions {
  index_t stream = 0;  // residual stream K: 0 embeddings, k + 1 the output of block k
  double alpha = 0.0;  // strength, in units of the steered row's own norm |h|
  SteeringPositions positions;

  void check(const TransformerConfig& config) const {
    const char* op = "SteeringOptions";
    NLA_CHECK(stream >= 0 && stream <= config.n_layers, op, "stream {} is outside [0, {}]", stream,
              config.n_layers);
    NLA_CHECK(std::isfinite(alpha), op, "alpha {} is not finite", alpha);
    positions.check(config.context_length);
  }
};

// The hooks that steer one model along one direction. hooks() (or the
// provider() handed to Generator::generate) gives, for a forward over tokens
// [batch, t] at positions [past, past + t), one AddNormScaled hook on rows
// b * t + (p - past) for every steered position p in range, or nullptr when
// none is. The returned pointer stays valid until the next call.
template <class B, class T>
class SteeringHooks {
 public:
  // direction: [d_model], any non-zero length (e.g. steering_delta's result).
  SteeringHooks(TransformerLM<B, T>& model, const std::vector<double>& direction,
                const SteeringOptions& options)
      : model_(&model), options_(options) {
    const char* op = "SteeringHooks";
    const auto& c = model.config();
    options.check(c);
    NLA_CHECK(index_t(direction.size()) == c.d_model, op,
              "direction has {} entries, expected d_model = {}", direction.size(), c.d_model);
    double sum_sq = 0;
    for (std::size_t i = 0; i < direction.size(); ++i) {
      NLA_CHECK(std::isfinite(direction[i]), op, "direction[{}] = {} is not finite", i,
                direction[i]);
      sum_sq += direction[i] * direction[i];
    }
    const double norm = std::sqrt(sum_sq);
    NLA_CHECK(norm > 0, op, "direction is zero, so it has no unit vector");
    unit_.resize(direction.size());
    row_.resize(direction.size());
    for (std::size_t i = 0; i < direction.size(); ++i) {
      unit_[i] = direction[i] / norm;
      row_[i] = T(options.alpha * unit_[i]);
    }
    hooks_.resize(1);
    hooks_[0].stream = options.stream;
    hooks_[0].action = HookAction::AddNormScaled;
  }

  const SteeringOptions& options() const { return options_; }
  const std::vector<double>& unit_direction() const { return unit_; }  // [d_model]

  const Hooks<T, B>* hooks(index_t batch, index_t past, index_t t) {
    auto& rows = hooks_[0].rows;
    rows.clear();
    for (index_t b = 0; b < batch; ++b)
      for (index_t p = past; p < past + t; ++p)
        if (options_.positions.contains(p)) rows.push_back(b * t + (p - past));
    if (rows.empty()) return nullptr;
    const index_t n = index_t(rows.size()), d = index_t(row_.size());
    // Every row of values is alpha * u; uploaded again only when more rows are needed.
    if (n > filled_rows_) {
      std::vector<T> host(static_cast<std::size_t>(n * d));
      for (index_t r = 0; r < n; ++r) std::copy(row_.begin(), row_.end(), host.begin() + r * d);
      values_.resize(Shape{n, d});
      from_host(model_->backend(), values_.view(), host.data());
      filled_rows_ = n;
    }
    hooks_[0].values = values_.view().slice(0, n);
    return &hooks_;
  }

  // For Generator::generate; valid while *this lives.
  HookProvider<T, B> provider() {
    return [this](index_t batch, index_t past, index_t t) { return hooks(batch, past, t); };
  }

 private:
  TransformerLM<B, T>* model_;
  SteeringOptions options_;
  std::vector<double> unit_;  // [d] u = direction / |direction|
  std::vector<T> row_;        // [d] alpha * u
  Tensor<T, B> values_;       // [filled_rows_, d], every row alpha * u
  index_t filled_rows_ = 0;
  Hooks<T, B> hooks_;
};

// Generates from `prompts` while steering along `direction` ([d_model]).
// alpha = 0 reproduces an unhooked Generator::generate token for token.
template <class B, class T>
std::vector<Generation> steered_generate(TransformerLM<B, T>& model,
                                         const std::vector<std::vector<std::int32_t>>& prompts,
                                         const std::vector<double>& direction,
                                         const SteeringOptions& steering,
                                         const SamplingOptions& sampling,
                                         const GenerateOptions& options = {}) {
  SteeringHooks<B, T> hooks(model, direction, steering);
  Generator<B, T> generator(model);
  return generator.generate(prompts, sampling, options, hooks.provider());
}

}  // namespace nla
