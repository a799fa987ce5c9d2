#pragma once
// AdamW over the flat parameter buffer (with optional master weights) in one
// launch, and the sum of squares behind global-norm clipping (formulas in
// backend/cpu/optimizer.hpp).

#include <cmath>

#include <thrust/functional.h>
#include <thrust/transform_reduce.h>

#include "nla/backend/cuda/cuda.cuh"
#include "nla/backend/cuda/math.cuh"

namespace nla {
namespace gpu {

// One launch for the whole buffer; each index finds whether its tensor is
// decayed by a binary search of decay_switches (device memory, a few hundred
// entries at most, so it stays in cache).
template <class T, class S>
void adamw_update(Cuda& backend, T* params, S* master, const T* grads, S* m, S* v, index_t n,
                  const index_t* decay_switches, index_t switches, double lr, double beta1,
                  double beta2, double eps, double weight_decay, double bias_correction1,
                  double bias_correction2) {
  const S b1 = S(beta1), b2 = S(beta2), step = S(lr / bias_correction1);
  const S inv_sqrt_bc2 = S(1.0 / std::sqrt(bias_correction2)), decay_on = S(lr * weight_decay);
  const S epsilon = S(eps);
  for_each_index(backend, n, [=] NLA_HOST_DEVICE(index_t i) {
    index_t below = 0, above = switches;  // ends as the number of switches <= i
    while (below < above) {
      const index_t mid = (below + above) / 2;
      if (decay_switches[mid] <= i)
        below = mid + 1;
      else
        above = mid;
    }
    const S decay = below % 2 == 1 ? decay_on : S(0);
    const S g = S(grads[i]);
    const S mi = b1 * m[i] + (S(1) - b1) * g, vi = b2 * v[i] + (S(1) - b2) * g * g;
    m[i] = mi;
    v[i] = vi;
    const S p = master ? master[i] : S(params[i]);
    const S updated = p - step * mi / (math::sqrt(vi) * inv_sqrt_bc2 + epsilon) - decay * p;
    if (master) master[i] = updated;
    params[i] = T(updated);
  });
}

namespace detail {
template <class T>
struct SquareAsDouble {
  NLA_HOST_DEVICE double operator()(T x) const { return double(x) * double(x); }
};
}  // namespace detail

template <class T>
double sum_of_squares(Cuda& backend, const T* x, index_t n) {
  if (n <= 0) return 0.0;
  return thrust::transform_reduce(backend.policy(), x, x + n, detail::SquareAsDouble<T>{}, 0.0,
                                  thrust::plus<double>());
}

}  // namespace gpu
}  // namespace nla
