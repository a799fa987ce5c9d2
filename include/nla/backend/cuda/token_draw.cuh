#pragma once
// Token draws from rows of logits on the device (the law and its arguments:
// core/token_draw.hpp): a warp per request, so generation brings back one
// small record per row instead of the whole [rows, vocab] logits.

#include <cstdint>

#include "nla/backend/cuda/cuda.cuh"
#include "nla/backend/cuda/rows.cuh"
#include "nla/core/token_draw.hpp"

namespace nla {
namespace gpu {

template <class T>
void draw_tokens(Cuda& backend, TokenDraw* out, const T* logits, index_t rows, index_t vocab,
                 const TokenDrawRequest* requests, index_t count, std::uint64_t seed,
                 double temperature, const std::uint8_t* allowed) {
  for_each_row(backend, count, [=] NLA_HOST_DEVICE(index_t i, RowLanes lanes) {
    const TokenDraw d =
        draw_token_for_request(logits, rows, vocab, requests[i], seed, temperature, allowed, lanes);
    if (lanes.lane == 0) out[i] = d;
  });
}

}  // namespace gpu
}  // namespace nla
