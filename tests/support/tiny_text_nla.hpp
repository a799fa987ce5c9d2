#pragma once
// A text NLA small enough for unit tests: verbalizer and reconstructor of a
// given tiny target, G = 4 explanations of at most 3 tokens (stop token 1),
// lr 1e-2 for both, as the generic Autoencoder. Shared by the checkpoint
// tests of tests/bottleneck and the data-parallel ones of tests/dist.

#include <vector>

#include "nla/backend/cpu.hpp"
#include "nla/bottleneck/autoencoder.hpp"
#include "nla/bottleneck/reconstructor_decoder.hpp"
#include "nla/bottleneck/verbalizer_encoder.hpp"
#include "nla/core/random.hpp"

namespace nla::testing {

// n activations of d values, N(0, 9) from the seed.
inline ActivationBatch random_batch(index_t n, index_t d, std::uint64_t seed) {
  ActivationBatch b;
  b.dim = d;
  b.vectors.resize(static_cast<std::size_t>(n * d));
  for (std::size_t i = 0; i < b.vectors.size(); ++i)
    b.vectors[i] = float(3 * random_normal(seed, 0, i));
  return b;
}

template <class T>
struct TinyTextNla {
  Verbalizer<Cpu, T> av;
  Reconstructor<Cpu, T> ar;
  VerbalizerEncoder<Cpu, T> encoder;
  ReconstructorDecoder<Cpu, T> decoder;
  Autoencoder<VerbalizerEncoder<Cpu, T>, ReconstructorDecoder<Cpu, T>> nla;

  explicit TinyTextNla(const TransformerLM<Cpu, T>& target)
      : av(target, {{0, 2}, {3}}, 4.0),
        ar(target, 2),
        encoder(av, options()),
        decoder(ar, {{0, 4}, {5}}, {{1e-2, 0.9, 0.95, 1e-8, 0.0}, 1.0, 1.0}),
        nla(encoder, decoder, 1.0) {}

  static VerbalizerEncoderOptions options() {
    VerbalizerEncoderOptions o;
    o.group_size = 4;
    o.sampling.max_new_tokens = 3;
    o.sampling.stop_tokens = {1};
    o.evaluation_sampling = o.sampling;
    o.seed = 7;
    o.adamw.lr = 1e-2;
    return o;
  }

  // Every trained parameter: verbalizer, reconstructor, head.
  std::vector<T> state() {
    std::vector<T> s;
    for (auto* p : {&av.model().parameters(), &ar.model().parameters(), &ar.head_parameters()})
      s.insert(s.end(), p->values().data(), p->values().data() + p->size());
    return s;
  }
};

}  // namespace nla::testing
