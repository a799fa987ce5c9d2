#pragma once
// Draws one token per request from rows of logits on the backend that holds
// them (the law: core/token_draw.hpp). Only the draws, one small record a
// request, need to reach the host, not the logits.

#include <cmath>
#include <cstdint>

#include "nla/core/tensor.hpp"
#include "nla/core/token_draw.hpp"

namespace nla {

// logits: [n, vocab] (leading axes flattened); requests, out: [m];
// allowed: [vocab] mask or empty for every token. A request that cannot draw
// (a non-finite logit, an empty mask, a row the logits do not have) comes
// back with that status and token -1 (TokenDraw; describe_failure words it).
// The requests are checked by the kernels, where they are, so a device
// backend downloads nothing here.
template <class T, class B>
void draw_tokens(B& backend, TensorView<TokenDraw, B> out, ConstView<T, B> logits,
                 ConstView<TokenDrawRequest, B> requests, std::uint64_t seed, double temperature,
                 ConstView<std::uint8_t, B> allowed) {
  const char* op = "draw_tokens";
  const index_t rows = logits.rows(), vocab = logits.cols();
  NLA_CHECK(out.size() == requests.size(), op, "out has {} entries for {} requests", out.size(),
            requests.size());
  NLA_CHECK(std::isfinite(temperature) && temperature >= 0, op,
            "temperature {} must be finite and >= 0", temperature);
  NLA_CHECK(allowed.empty() || allowed.size() == vocab, op,
            "the allowed-token mask has {} entries for a vocabulary of {}", allowed.size(), vocab);
  draw_tokens(backend, out.data(), logits.data(), rows, vocab, requests.data(), requests.size(),
              seed, temperature, allowed.empty() ? nullptr : allowed.data());
}

}  // namespace nla
