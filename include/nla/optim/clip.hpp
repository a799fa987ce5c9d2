#pragma once
// Global-norm gradient clipping over the flat gradient buffer:
//   norm = sqrt(sum_i g_i^2);  g *= max_norm / norm  when norm > max_norm.
// Returns the norm before clipping; a non-finite norm is an error naming it,
// because stepping with it would destroy the parameters.

#include <cmath>

#include "nla/nn/parameters.hpp"

namespace nla {

template <class T, class B>
double clip_grad_norm(B& backend, ParameterSet<T, B>& params, double max_norm) {
  auto g = params.grads();
  const double norm = std::sqrt(sum_of_squares(backend, static_cast<const T*>(g.data()), g.size()));
  NLA_CHECK(std::isfinite(norm), "clip_grad_norm", "gradient norm is {} (NaN or Inf in gradients)",
            norm);
  if (max_norm > 0 && norm > max_norm) scale(backend, g.data(), g.size(), T(max_norm / norm));
  return norm;
}

}  // namespace nla
