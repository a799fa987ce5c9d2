#pragma once
// Scalar policy: the type a tensor stores (T) and the type its reductions
// accumulate in (accum_t<T>). Norms, softmax and losses accumulate in at least
// fp32, so a bf16 model reduces exactly as an fp32 one does; double stays
// double for finite-difference checks.

#include <type_traits>

#include "nla/core/bf16.hpp"

namespace nla {

template <class T>
struct ScalarTraits {
  using accum = float;
  static constexpr const char* kName = "unknown";
};
template <>
struct ScalarTraits<float> {
  using accum = float;
  static constexpr const char* kName = "f32";
};
template <>
struct ScalarTraits<double> {
  using accum = double;
  static constexpr const char* kName = "f64";
};

template <>
struct ScalarTraits<bf16> {
  using accum = float;
  static constexpr const char* kName = "bf16";
};

template <class T>
using accum_t = typename ScalarTraits<std::remove_const_t<T>>::accum;

}  // namespace nla
