#pragma once
// The message of a text bottleneck: an explanation sampled by the verbalizer.
// Its tokens are the policy's actions, the stop token included (stopping is a
// decision the policy is rewarded for); the reconstructor reads the content,
// the tokens before the stop token. An explanation that ran out of tokens
// without stopping, or that stopped at once, has failed: RL gives it the
// worst reward.

#include <cstdint>
#include <string>
#include <vector>

namespace nla {

struct Explanation {
  std::vector<std::int32_t> tokens;  // as sampled, the stop token included when it stopped
  std::vector<float> logprobs;       // [tokens] log p(token) under the policy that sampled it
  bool stopped = false;              // ended on a stop token
  std::string text;                  // the content, decoded (when a tokenizer was given)

  std::vector<std::int32_t> content() const {
    return stopped ? std::vector<std::int32_t>(tokens.begin(), tokens.end() - 1) : tokens;
  }
  bool failed() const { return !stopped || tokens.size() < 2; }
};

}  // namespace nla
