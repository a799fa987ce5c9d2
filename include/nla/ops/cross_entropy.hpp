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

#include <vector>

#include "nla/core/host.hpp"
#include "nla/core/scalar.hpp"

namespace nla {

// logits: [n, ld]; targets: [n]; row_loss, lse: [n]; weights: [n] or empty.
// The vocabulary is the first `vocab` columns of each row (0: all ld of
// them); the rest is padding, never read, which lets the logits' rows start
// at aligned addresses (a vocabulary of 50257 would leave cuBLASLt only its
// unaligned GEMM kernels).
// Returns the weighted mean loss. If dloss ([n]) is given it receives the
// gradient of that mean with respect to each row's loss, w_r / sum w (0 for
// ignored rows), ready for cross_entropy_backward. T is named at the call
// (cross_entropy_forward<float>(...)): every tensor argument is either of the
// accumulation type or an input. The n per-row values are summed on the host.
template <class T, class B>
double cross_entropy_forward(B& backend, TensorView<accum_t<T>, B> row_loss,
                             TensorView<accum_t<T>, B> lse, ConstView<T, B> logits,
                             ConstView<std::int32_t, B> targets, ConstView<float, B> weights,
                             std::int32_t ignore_index, TensorView<accum_t<T>, B> dloss = {},
                             index_t vocab = 0) {
  using A = accum_t<T>;
  const char* op = "cross_entropy_forward";
  const index_t n = logits.rows(), ld = logits.cols();
  if (vocab == 0) vocab = ld;
  NLA_CHECK(vocab > 0 && vocab <= ld, op, "vocabulary of {} in logits rows of {}", vocab, ld);
  NLA_CHECK(targets.size() == n, op, "targets has {} entries for {} rows of logits", targets.size(),
            n);
  NLA_CHECK(row_loss.size() >= n && lse.size() >= n, op, "row_loss/lse hold {}/{}, need {}",
            row_loss.size(), lse.size(), n);
  NLA_CHECK(weights.empty() || weights.size() == n, op, "weights has {} entries for {} rows",
            weights.size(), n);
  NLA_CHECK(dloss.empty() || dloss.size() >= n, op, "dloss holds {}, needs {}", dloss.size(), n);
  const auto target = to_host(backend, targets);
  for (index_t r = 0; r < n; ++r)
    NLA_CHECK(target[r] == ignore_index || (target[r] >= 0 && target[r] < vocab), op,
              "target[{}] = {} is outside [0, {}) and is not the ignore index {}", r, target[r],
              vocab, ignore_index);
  cross_entropy_forward(backend, row_loss.data(), lse.data(), logits.data(), ld, targets.data(), n,
                        vocab, ignore_index);
  const auto loss = to_host(backend, ConstView<A, B>(row_loss));
  const auto weight = to_host(backend, weights);
  auto w = [&](index_t r) {
    return target[r] == ignore_index ? 0.0 : weights.empty() ? 1.0 : double(weight[r]);
  };
  double total = 0, wsum = 0;
  for (index_t r = 0; r < n; ++r) {
    total += w(r) == 0 ? 0.0 : w(r) * double(loss[r]);
    wsum += w(r);
  }
  if (!dloss.empty()) {
    auto fill = [&](A* grad) {
      for (index_t r = 0; r < n; ++r) grad[r] = wsum != 0 ? A(w(r) / wsum) : A(0);
    };
    if constexpr (B::kHostAccessible) {
      fill(dloss.data());  // no allocation in a training step
    } else {
      std::vector<A> grad(static_cast<std::size_t>(n));
      fill(grad.data());
      from_host(backend, dloss.slice(0, n), grad.data());
    }
  }
  return wsum != 0 ? total / wsum : 0.0;
}

// dloss: [n] the gradient of the caller's scalar w.r.t. each row's loss;
// logits and vocab as in the forward (padding stays untouched).
template <class T, class B>
void cross_entropy_backward(B& backend, TensorView<T, B> logits, ConstView<accum_t<T>, B> dloss,
                            ConstView<accum_t<T>, B> lse, ConstView<std::int32_t, B> targets,
                            std::int32_t ignore_index, index_t vocab = 0) {
  const char* op = "cross_entropy_backward";
  const index_t n = logits.rows(), ld = logits.cols();
  if (vocab == 0) vocab = ld;
  NLA_CHECK(vocab > 0 && vocab <= ld, op, "vocabulary of {} in logits rows of {}", vocab, ld);
  NLA_CHECK(dloss.size() >= n && lse.size() >= n && targets.size() == n, op,
            "dloss/lse/targets hold {}/{}/{} for {} rows", dloss.size(), lse.size(), targets.size(),
            n);
  cross_entropy_backward(backend, logits.data(), ld, dloss.data(), lse.data(), targets.data(), n,
                         vocab, ignore_index);
}

}  // namespace nla
