#pragma once
// Softmax cross-entropy over the vocabulary, fused so that probabilities are
// never stored: the forward keeps the logits and one log-sum-exp per row, the
// backward writes the gradient over the logits buffer in place.
//   loss[r]    = lse[r] - logits[r, target[r]]        (0 where target == ignore)
//   dlogits[r] = dloss[r] * (softmax(logits[r]) - onehot(target[r]))
// Row r starts at logits + r * ld (ld >= vocab): entries past vocab are
// padding that is neither read nor written.
// -loss[r] is the token's log-probability, which the policy-gradient code
// reads directly. A target outside [0, vocab) (and not the ignore index)
// gives a NaN loss without being read; sum_row_losses reports the row.

#include <cmath>
#include <cstdint>
#include <limits>

#include "nla/backend/cpu/cpu.hpp"
#include "nla/backend/cpu/elementwise.hpp"
#include "nla/backend/cpu/parallel.hpp"
#include "nla/core/row_loss_sums.hpp"
#include "nla/core/scalar.hpp"

namespace nla {
namespace cpu {

template <class T>
void cross_entropy_forward(Cpu&, accum_t<T>* loss, accum_t<T>* lse, const T* logits, index_t ld,
                           const std::int32_t* targets, index_t rows, index_t vocab,
                           std::int32_t ignore_index) {
  using A = accum_t<T>;
  parallel_for(rows, 4 * vocab, [&](index_t r) {
    const auto x = array(logits + r * ld, vocab);
    const A max = x.maxCoeff();
    const A sum = (x - T(max)).exp().template cast<A>().sum();
    lse[r] = max + std::log(sum);
    // (max - x_t) + log(sum) rather than lse - x_t: with logits near 1e3 the
    // subtraction of two large numbers would lose the loss's low digits.
    const std::int32_t t = targets[r];
    loss[r] = t == ignore_index                 ? A(0)
              : !target_in_vocabulary(t, vocab) ? std::numeric_limits<A>::quiet_NaN()
                                                : (max - A(x[t])) + std::log(sum);
  });
}

// The sums of core/row_loss_sums.hpp, in row order.
template <class A>
RowLossSums sum_row_losses(Cpu&, const A* row_loss, const std::int32_t* targets,
                           const float* weights, index_t rows, index_t vocab,
                           std::int32_t ignore_index) {
  RowLossSums s;
  for (index_t r = 0; r < rows; ++r)
    s = combine(s, row_loss_term(row_loss, targets, weights, r, vocab, ignore_index));
  return s;
}

// dloss[r] = w_r / weight (0 when weight is 0): d mean / d loss_r.
template <class A>
void row_loss_gradient(Cpu&, A* dloss, const std::int32_t* targets, const float* weights,
                       index_t rows, std::int32_t ignore_index, double weight) {
  for (index_t r = 0; r < rows; ++r)
    dloss[r] = weight != 0 ? A(row_loss_weight(targets, weights, r, ignore_index) / weight) : A(0);
}

template <class T>
void cross_entropy_backward(Cpu&, T* logits, index_t ld, const accum_t<T>* dloss,
                            const accum_t<T>* lse, const std::int32_t* targets, index_t rows,
                            index_t vocab, std::int32_t ignore_index) {
  parallel_for(rows, 4 * vocab, [&](index_t r) {
    auto x = array(logits + r * ld, vocab);
    if (targets[r] == ignore_index || dloss[r] == 0) {
      x.setZero();
      return;
    }
    const T g = T(dloss[r]);
    x = g * (x - T(lse[r])).exp();
    x[targets[r]] -= g;
  });
}

}  // namespace cpu
}  // namespace nla
