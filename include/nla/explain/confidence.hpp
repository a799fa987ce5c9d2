#pragma once
// Explain with confidence: n sampled explanations of each activation and, per
// claim, how many of them state it. The article's advice against
// confabulation is to trust what recurs across samples; on the synthetic
// world a claim stated by at least half of 8 samples is true far more often
// than a one-off (examples/tiny_nla reports both rates).
//
// Works with any encoder of the Autoencoder concept whose messages carry
// text (Explanation::text): its training-mode encode() draws G independent
// samples per activation, so n is the encoder's group size.

#include <string>
#include <vector>

#include "nla/bottleneck/autoencoder.hpp"
#include "nla/explain/claims.hpp"

namespace nla {

struct ConfidentExplanation {
  std::vector<std::string> samples;  // [n] the sampled explanations
  std::vector<ClaimSupport> claims;  // most repeated first
};

// One ConfidentExplanation per activation of the batch.
template <class Encoder>
std::vector<ConfidentExplanation> explain_with_confidence(Encoder& encoder,
                                                          const ActivationBatch& batch) {
  batch.check("explain_with_confidence");
  const auto messages = encoder.encode(batch, true);
  const std::size_t n = std::size_t(encoder.samples_per_activation());
  NLA_CHECK(messages.size() == std::size_t(batch.size()) * n, "explain_with_confidence",
            "the encoder returned {} messages for {} activations x {} samples", messages.size(),
            batch.size(), n);
  std::vector<ConfidentExplanation> out(std::size_t(batch.size()));
  for (std::size_t i = 0; i < out.size(); ++i) {
    for (std::size_t g = 0; g < n; ++g) out[i].samples.push_back(messages[i * n + g].text);
    out[i].claims = rank_claims(out[i].samples);
  }
  return out;
}

}  // namespace nla
