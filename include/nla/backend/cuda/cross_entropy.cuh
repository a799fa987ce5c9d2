#pragma once
// Fused softmax cross-entropy over the vocabulary (the contract and formulas
// of backend/cpu/cross_entropy.hpp): the forward reduces each row with
// rows.cuh (a warp per row on a GPU) and keeps one log-sum-exp per row; the
// backward, one index per logit, overwrites the logits with their gradient,
// so probabilities are never stored. The row sums behind the mean
// (core/row_loss_sums.hpp) reduce on the device, and the host reads back
// only them.

#include <math.h>

#include <cstdint>

#include <thrust/iterator/counting_iterator.h>
#include <thrust/transform_reduce.h>

#include "nla/backend/cuda/cuda.cuh"
#include "nla/backend/cuda/math.cuh"
#include "nla/backend/cuda/rows.cuh"
#include "nla/core/row_loss_sums.hpp"
#include "nla/core/scalar.hpp"

namespace nla {
namespace gpu {

template <class T>
void cross_entropy_forward(Cuda& backend, accum_t<T>* loss, accum_t<T>* lse, const T* logits,
                           index_t ld, const std::int32_t* targets, index_t rows, index_t vocab,
                           std::int32_t ignore_index) {
  using A = accum_t<T>;
  for_each_row(backend, rows, [=] NLA_HOST_DEVICE(index_t r, RowLanes lanes) {
    const T* x = logits + r * ld;
    A max = math::minus_infinity<A>();
    for (index_t i = lanes.lane; i < vocab; i += lanes.count) max = math::max(max, A(x[i]));
    max = lanes.max(max);
    A sum = 0;
    for (index_t i = lanes.lane; i < vocab; i += lanes.count) sum += math::exp(A(x[i]) - max);
    const A log_sum = math::log(lanes.sum(sum));
    if (lanes.lane != 0) return;
    lse[r] = max + log_sum;
    // (max - x_t) + log(sum): see the CPU kernel for why not lse - x_t.
    const std::int32_t t = targets[r];
    loss[r] = t == ignore_index                 ? A(0)
              : !target_in_vocabulary(t, vocab) ? A(NAN)
                                                : (max - A(x[t])) + log_sum;
  });
}

namespace detail {
template <class A>
struct RowLossTerm {
  const A* row_loss;
  const std::int32_t* targets;
  const float* weights;
  index_t vocab;
  std::int32_t ignore_index;
  NLA_HOST_DEVICE RowLossSums operator()(index_t r) const {
    return row_loss_term(row_loss, targets, weights, r, vocab, ignore_index);
  }
};
struct CombineRowLossSums {
  NLA_HOST_DEVICE RowLossSums operator()(const RowLossSums& a, const RowLossSums& b) const {
    return combine(a, b);
  }
};
}  // namespace detail

// One reduction; its three numbers are the step's only transfer to the host.
template <class A>
RowLossSums sum_row_losses(Cuda& backend, const A* row_loss, const std::int32_t* targets,
                           const float* weights, index_t rows, index_t vocab,
                           std::int32_t ignore_index) {
  if (rows <= 0) return RowLossSums{};
  return thrust::transform_reduce(
      backend.policy(), thrust::counting_iterator<index_t>(0),
      thrust::counting_iterator<index_t>(rows),
      detail::RowLossTerm<A>{row_loss, targets, weights, vocab, ignore_index}, RowLossSums{},
      detail::CombineRowLossSums{});
}

template <class A>
void row_loss_gradient(Cuda& backend, A* dloss, const std::int32_t* targets, const float* weights,
                       index_t rows, std::int32_t ignore_index, double weight) {
  for_each_index(backend, rows, [=] NLA_HOST_DEVICE(index_t r) {
    dloss[r] = weight != 0 ? A(row_loss_weight(targets, weights, r, ignore_index) / weight) : A(0);
  });
}

template <class T>
void cross_entropy_backward(Cuda& backend, T* logits, index_t ld, const accum_t<T>* dloss,
                            const accum_t<T>* lse, const std::int32_t* targets, index_t rows,
                            index_t vocab, std::int32_t ignore_index) {
  using A = accum_t<T>;
  for_each_index(backend, rows * vocab, [=] NLA_HOST_DEVICE(index_t e) {
    const index_t r = e / vocab, i = e % vocab;
    T& x = logits[r * ld + i];
    if (targets[r] == ignore_index || dloss[r] == A(0)) {
      x = T(0);
      return;
    }
    const A g = dloss[r];
    A p = g * math::exp(A(x) - lse[r]);
    if (i == targets[r]) p -= g;
    x = T(p);
  });
}

}  // namespace gpu
}  // namespace nla
