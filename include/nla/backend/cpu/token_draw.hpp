#pragma once
// Token draws from rows of logits (the law and its arguments:
// core/token_draw.hpp), one row per request, the rows in parallel. Each row is
// worked by one lane, which makes the draw the sequential reference's, with
// the reference's one exp per token (the weights kept in thread-local scratch).

#include <cstdint>
#include <vector>

#include "nla/backend/cpu/cpu.hpp"
#include "nla/backend/cpu/parallel.hpp"
#include "nla/core/token_draw.hpp"

namespace nla {
namespace cpu {

template <class T>
void draw_tokens(Cpu&, TokenDraw* out, const T* logits, index_t rows, index_t vocab,
                 const TokenDrawRequest* requests, index_t count, std::uint64_t seed,
                 double temperature, const std::uint8_t* allowed) {
  parallel_for(count, 8 * vocab, [&](index_t i) {
    thread_local std::vector<double> weights;
    weights.resize(static_cast<std::size_t>(vocab));
    out[i] = draw_token_for_request(logits, rows, vocab, requests[i], seed, temperature, allowed,
                                    RowLanes{0, 1}, weights.data());
  });
}

}  // namespace cpu
}  // namespace nla
