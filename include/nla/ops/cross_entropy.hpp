#pragma once
// Fused softmax cross-entropy over the vocabulary with an ignore index and
// optional per-token weights:
//   loss = sum_r w_r * ce_r / sum_r w_r   over rows whose target != ignore_index
// The forward returns that mean and leaves per-row losses (= -log p(target))
// and log-sum-exps in the caller's buffers; the backward writes dloss/dlogits
// over the logits buffer in place. Weights may be any sign: a policy-gradient
// loss is a cross-entropy whose weights are advantages.

#include <cmath>
#include <cstdint>

#include "nla/core/scalar.hpp"
#include "nla/core/tensor.hpp"

namespace nla {

// logits: [n, V]; targets: [n]; row_loss, lse: [n]; weights: [n] or empty.
// Returns the weighted mean loss and, in *weight_sum, the sum of weights of
// counted rows. T is named at the call (cross_entropy_forward<float>(...)):
// every tensor argument is either of the accumulation type or an input.
template <class T, class B>
double cross_entropy_forward(B& backend, TensorView<accum_t<T>, B> row_loss,
                             TensorView<accum_t<T>, B> lse, ConstView<T, B> logits,
                             ConstView<std::int32_t, B> targets, ConstView<float, B> weights,
                             std::int32_t ignore_index, double* weight_sum = nullptr) {
  const char* op = "cross_entropy_forward";
  const index_t n = logits.rows(), vocab = logits.cols();
  NLA_CHECK(targets.size() == n, op, "targets has {} entries for {} rows of logits", targets.size(),
            n);
  NLA_CHECK(row_loss.size() >= n && lse.size() >= n, op, "row_loss/lse hold {}/{}, need {}",
            row_loss.size(), lse.size(), n);
  NLA_CHECK(weights.empty() || weights.size() == n, op, "weights has {} entries for {} rows",
            weights.size(), n);
  static_assert(B::kHostAccessible, "cross_entropy_forward: reduce on the device for this backend");
  for (index_t r = 0; r < n; ++r) {
    const std::int32_t t = targets.data()[r];
    NLA_CHECK(t == ignore_index || (t >= 0 && t < vocab), op,
              "target[{}] = {} is outside [0, {}) and is not the ignore index {}", r, t, vocab,
              ignore_index);
  }
  cross_entropy_forward(backend, row_loss.data(), lse.data(), logits.data(), targets.data(), n,
                        vocab, ignore_index);
  double total = 0, wsum = 0;
  for (index_t r = 0; r < n; ++r) {
    if (targets.data()[r] == ignore_index) continue;
    const double w = weights.empty() ? 1.0 : weights.data()[r];
    total += w * row_loss.data()[r];
    wsum += w;
  }
  if (weight_sum) *weight_sum = wsum;
  return wsum != 0 ? total / wsum : 0.0;
}

// dloss: [n] the gradient of the caller's scalar w.r.t. each row's loss.
template <class T, class B>
void cross_entropy_backward(B& backend, TensorView<T, B> logits, ConstView<accum_t<T>, B> dloss,
                            ConstView<accum_t<T>, B> lse, ConstView<std::int32_t, B> targets,
                            std::int32_t ignore_index) {
  const index_t n = logits.rows();
  NLA_CHECK(dloss.size() >= n && lse.size() >= n && targets.size() == n, "cross_entropy_backward",
            "dloss/lse/targets hold {}/{}/{} for {} rows", dloss.size(), lse.size(),
            targets.size(), n);
  cross_entropy_backward(backend, logits.data(), dloss.data(), lse.data(), targets.data(), n,
                         logits.cols(), ignore_index);
}

}  // namespace nla
