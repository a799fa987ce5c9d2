#pragma once
// Rotary position embedding (Su et al.), in the "rotate half" layout used by
// Hugging Face Llama: within a head of size h, element i < h/2 pairs with
// i + h/2 and the pair is rotated by angle pos * theta^(-2i/h):
//   y1 = x1 cos - x2 sin,  y2 = x2 cos + x1 sin.
// The backward pass is the rotation by -angle. Rotates `heads` consecutive
// heads at the start of every row of x: [n, row_stride], in place.
// cos_sin: [max_positions, h/2, 2] precomputed in the accumulation type.

#include <cstdint>

#include "nla/backend/cpu/cpu.hpp"
#include "nla/backend/cpu/parallel.hpp"
#include "nla/core/scalar.hpp"

namespace nla {
namespace cpu {

template <class T>
void rope_rotate(Cpu&, T* x, index_t n, index_t row_stride, index_t heads, index_t head_dim,
                 const std::int32_t* positions, const accum_t<T>* cos_sin, bool inverse) {
  using A = accum_t<T>;
  const index_t half = head_dim / 2;
  parallel_for(n, 6 * heads * head_dim, [&](index_t i) {
    const A* cs = cos_sin + static_cast<index_t>(positions[i]) * half * 2;
    for (index_t h = 0; h < heads; ++h) {
      T* v = x + i * row_stride + h * head_dim;
      for (index_t j = 0; j < half; ++j) {
        const A c = cs[2 * j], s = inverse ? -cs[2 * j + 1] : cs[2 * j + 1];
        const A x1 = v[j], x2 = v[j + half];
        v[j] = T(x1 * c - x2 * s);
        v[j + half] = T(x2 * c + x1 * s);
      }
    }
  });
}

}  // namespace cpu
}  // namespace nla
