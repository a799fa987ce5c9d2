#pragma once
// The benchmark model sizes, shared by every benchmark and by the PyTorch
// reference (benchmarks/pytorch_reference.py defines the same two).
//   tiny:  d 128, 4 layers, 4 heads, context 64,  vocab 512,  batch 16
//   small: d 256, 6 layers, 8 heads, context 128, vocab 4096, batch 8
// Llama uses heads / 2 key-value heads, as the reference does.

#include <cstdint>
#include <string>

#include "nla/core/random.hpp"
#include "nla/core/tensor.hpp"
#include "nla/nn/config.hpp"

namespace nla::bench {

struct BenchConfig {
  const char* name;
  index_t d_model, layers, heads, context, vocab, batch;
};

inline constexpr BenchConfig kTiny{"tiny", 128, 4, 4, 64, 512, 16};
inline constexpr BenchConfig kSmall{"small", 256, 6, 8, 128, 4096, 8};

inline TransformerConfig model_config(Flavour flavour, const BenchConfig& b) {
  return flavour == Flavour::Gpt2
             ? TransformerConfig::gpt2(b.vocab, b.context, b.d_model, b.layers, b.heads)
             : TransformerConfig::llama(b.vocab, b.context, b.d_model, b.layers, b.heads,
                                        b.heads / 2);
}

// Uniform random token ids in [0, vocab), from the library's counter RNG.
template <class B>
Tensor<std::int32_t, B> random_tokens(Shape shape, index_t vocab, std::uint64_t seed) {
  Tensor<std::int32_t, B> t(shape);
  for (index_t i = 0; i < t.size(); ++i)
    t.data()[i] = std::int32_t(random_bits(seed, 0, std::uint64_t(i)) % std::uint64_t(vocab));
  return t;
}

}  // namespace nla::bench
