#pragma once
// Rotary position embedding, "rotate half" layout (the contract and formula
// of backend/cpu/rope.hpp): one index per rotated pair.

#include <cstdint>

#include "nla/backend/cuda/cuda.cuh"
#include "nla/core/scalar.hpp"

namespace nla {
namespace gpu {

template <class T>
void rope_rotate(Cuda& backend, T* x, index_t n, index_t row_stride, index_t heads,
                 index_t head_dim, const std::int32_t* positions, const accum_t<T>* cos_sin,
                 bool inverse) {
  using A = accum_t<T>;
  const index_t half = head_dim / 2;
  for_each_index(backend, n * heads * half, [=] NLA_HOST_DEVICE(index_t e) {
    const index_t j = e % half, h = (e / half) % heads, i = e / (half * heads);
    const A* cs = cos_sin + static_cast<index_t>(positions[i]) * half * 2;
    const A c = cs[2 * j], s = inverse ? -cs[2 * j + 1] : cs[2 * j + 1];
    T* v = x + i * row_stride + h * head_dim;
    const A x1 = v[j], x2 = v[j + half];
    v[j] = T(x1 * c - x2 * s);
    v[j + half] = T(x2 * c + x1 * s);
  });
}

}  // namespace gpu
}  // namespace nla
