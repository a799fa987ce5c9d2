#pragma once
// A [batch, t] batch of token ids drawn uniformly from [0, vocab) by the
// counter-based generator: the same seed gives the same batch everywhere.

#include <cstdint>

#include "nla/backend/cpu.hpp"
#include "nla/core/random.hpp"
#include "nla/core/tensor.hpp"

namespace nla::testing {

inline Tensor<std::int32_t, Cpu> random_tokens(index_t batch, index_t t, index_t vocab,
                                               std::uint64_t seed) {
  Tensor<std::int32_t, Cpu> x(Shape{batch, t});
  for (index_t i = 0; i < x.size(); ++i)
    x.data()[i] = std::int32_t(random_bits(seed, 0, static_cast<std::uint64_t>(i)) % vocab);
  return x;
}

}  // namespace nla::testing
