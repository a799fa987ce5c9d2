#pragma once
// A noisy channel between a text encoder and its decoder: each content token
// is dropped with probability p_drop, else replaced by a random token of
// `vocabulary` with probability p_substitute, before the decoder reads it. The
// encoder is rewarded for what survives the noise, so RL favours redundant,
// robust phrasing. Draws are Philox(seed, stream = call count, message * 4096
// + token), so a run is reproducible. It models the Decoder concept by
// wrapping one (bottleneck/autoencoder.hpp).

#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

#include "nla/bottleneck/autoencoder.hpp"
#include "nla/bottleneck/explanation.hpp"
#include "nla/core/random.hpp"

namespace nla {

struct NoisyChannelOptions {
  double p_drop = 0.1;
  double p_substitute = 0.1;
  std::vector<std::int32_t> vocabulary;  // substitutes are drawn from these
  std::uint64_t seed = 0;
};

template <class Decoder>
class NoisyChannel {
 public:
  using Message = Explanation;

  NoisyChannel(Decoder& decoder, NoisyChannelOptions options)
      : decoder_(&decoder), options_(std::move(options)) {
    NLA_CHECK(options_.p_drop >= 0 && options_.p_substitute >= 0 &&
                  options_.p_drop + options_.p_substitute <= 1,
              "NoisyChannel", "p_drop {} and p_substitute {} must be >= 0 and sum to <= 1",
              options_.p_drop, options_.p_substitute);
    NLA_CHECK(options_.p_substitute == 0 || !options_.vocabulary.empty(), "NoisyChannel",
              "substitution needs a vocabulary to draw from");
  }

  // The message as the decoder receives it (the stop token is kept).
  Explanation corrupt(const Explanation& e, std::uint64_t message) const {
    Explanation out = e;
    out.tokens.clear();
    const auto content = e.content();
    for (std::size_t i = 0; i < content.size(); ++i) {
      const std::uint64_t k = message * 4096 + i;
      const double u = random_uniform(options_.seed, calls_, k);
      if (u < options_.p_drop) continue;
      if (u < options_.p_drop + options_.p_substitute) {
        const auto pick = random_bits(options_.seed ^ 0x5eedULL, calls_, k);
        out.tokens.push_back(options_.vocabulary[pick % options_.vocabulary.size()]);
      } else {
        out.tokens.push_back(content[i]);
      }
    }
    if (e.stopped) out.tokens.push_back(e.tokens.back());
    return out;
  }

  DecoderFeedback decode(const std::vector<Explanation>& messages,
                         const std::vector<float>& targets, bool train) {
    std::vector<Explanation> noisy;
    noisy.reserve(messages.size());
    for (std::size_t i = 0; i < messages.size(); ++i) noisy.push_back(corrupt(messages[i], i));
    ++calls_;
    return decoder_->decode(noisy, targets, train);
  }

  void learn() { decoder_->learn(); }
  nlohmann::json stats() const { return decoder_->stats(); }
  Decoder& inner() { return *decoder_; }

 private:
  Decoder* decoder_;
  NoisyChannelOptions options_;
  std::uint64_t calls_ = 0;
};

}  // namespace nla
