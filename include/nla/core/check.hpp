#pragma once
// Checks on values (not shapes) shared by modules and loaders.

#include <cmath>

#include "nla/core/error.hpp"
#include "nla/core/tensor.hpp"

namespace nla {

// Throws naming the first NaN or infinite element of a host-readable view.
template <class T, class B>
void check_finite(TensorView<T, B> x, const char* op, const char* arg) {
  static_assert(B::kHostAccessible, "check_finite: copy to the host first on this backend");
  for (index_t i = 0; i < x.size(); ++i)
    NLA_CHECK(std::isfinite(static_cast<double>(x.data()[i])), op,
              "{} has a non-finite value ({}) at flat index {} of shape {}", arg,
              static_cast<double>(x.data()[i]), i, x.shape());
}

}  // namespace nla
