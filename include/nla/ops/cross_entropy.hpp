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

#include "nla/core/host.hpp"
#include "nla/core/row_loss_sums.hpp"
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
// accumulation type or an input. The n per-row values are summed where they
// are (core/row_loss_sums.hpp): the host reads three numbers back.
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
  // The kernel reads no target outside the vocabulary (its row's loss is
  // NaN); the sums name the first such row.
  // An empty view may still hold a pointer (a slice of nothing): the
  // kernels read weights whenever they get one.
  const float* w = weights.empty() ? nullptr : weights.data();
  cross_entropy_forward(backend, row_loss.data(), lse.data(), logits.data(), ld, targets.data(), n,
                        vocab, ignore_index);
  const RowLossSums sums = sum_row_losses(backend, static_cast<const A*>(row_loss.data()),
                                          targets.data(), w, n, vocab, ignore_index);
  if (sums.first_bad != kNoBadRow) {
    const index_t r = sums.first_bad;
    const auto bad = to_host(backend, targets.reshape(Shape{n}).slice(r, r + 1));
    NLA_FAIL(op, "target[{}] = {} is outside [0, {}) and is not the ignore index {}", r, bad[0],
             vocab, ignore_index);
  }
  if (!dloss.empty())
    row_loss_gradient(backend, dloss.data(), targets.data(), w, n, ignore_index, sums.weight);
  return sums.weight != 0 ? sums.total / sums.weight : 0.0;
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
