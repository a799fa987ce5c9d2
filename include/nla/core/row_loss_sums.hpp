#pragma once
// What a weighted cross-entropy needs from its per-row losses, reduced where
// the losses are, so that a step moves three numbers to the host instead of
// the targets, the weights and the losses (and the gradients back):
//   w_r       = 0 where target_r == ignore, else weights_r (1 without weights)
//   total     = sum_r w_r loss_r    (rows with w_r = 0 left out, so that a
//                                    masked row's loss cannot poison the sum)
//   weight    = sum_r w_r
//   first_bad = the first row whose target is neither the ignore index nor
//               in [0, vocab), or kNoBadRow when there is none
// and d mean / d loss_r = w_r / weight for the backward pass.

#include <cstdint>

#include "nla/core/config.hpp"
#include "nla/core/shape.hpp"

namespace nla {

constexpr index_t kNoBadRow = INT64_MAX;

struct RowLossSums {
  double total = 0;
  double weight = 0;
  index_t first_bad = kNoBadRow;
};

NLA_HOST_DEVICE inline RowLossSums combine(const RowLossSums& a, const RowLossSums& b) {
  RowLossSums s;
  s.total = a.total + b.total;
  s.weight = a.weight + b.weight;
  s.first_bad = a.first_bad < b.first_bad ? a.first_bad : b.first_bad;
  return s;
}

NLA_HOST_DEVICE inline bool target_in_vocabulary(std::int32_t target, index_t vocab) {
  return target >= 0 && target < vocab;
}

// weights may be null (every counted row weighs 1).
NLA_HOST_DEVICE inline double row_loss_weight(const std::int32_t* targets, const float* weights,
                                              index_t r, std::int32_t ignore_index) {
  if (targets[r] == ignore_index) return 0.0;
  return weights ? double(weights[r]) : 1.0;
}

// One row's contribution, to be combined (above) with the others'.
template <class A>
NLA_HOST_DEVICE RowLossSums row_loss_term(const A* row_loss, const std::int32_t* targets,
                                          const float* weights, index_t r, index_t vocab,
                                          std::int32_t ignore_index) {
  RowLossSums s;
  const std::int32_t t = targets[r];
  if (t != ignore_index && !target_in_vocabulary(t, vocab)) s.first_bad = r;
  const double w = row_loss_weight(targets, weights, r, ignore_index);
  s.total = w == 0 ? 0.0 : w * double(row_loss[r]);
  s.weight = w;
  return s;
}

}  // namespace nla
