#pragma once
// Checks on values (not shapes) shared by modules and loaders.

#include <cmath>

#include "nla/core/error.hpp"
#include "nla/core/host.hpp"

namespace nla {

// Throws naming the first NaN or infinite element of x.
template <class T, class B>
void check_finite(B& backend, TensorView<T, B> x, const char* op, const char* arg) {
  const auto h = to_host(backend, x);
  for (index_t i = 0; i < h.size(); ++i)
    NLA_CHECK(std::isfinite(static_cast<double>(h[i])), op,
              "{} has a non-finite value ({}) at flat index {} of shape {}", arg,
              static_cast<double>(h[i]), i, x.shape());
}

}  // namespace nla
