#pragma once
// Where the heads of a [batch, time, heads * head_dim] tensor live inside a
// larger buffer (a fused QKV projection, a KV cache): element (b, t, head, i)
// is at data + b * batch_stride + t * row_stride + head * head_dim + i.
// Attention kernels read and write heads in place through it.

#include <type_traits>

#include "nla/core/shape.hpp"

namespace nla {

template <class T>
struct HeadLayout {
  T* data;
  index_t batch_stride;
  index_t row_stride;

  // Mutable to const; a template so that HeadLayout<const T> declares no
  // conversion to itself.
  template <class U = T, class = std::enable_if_t<!std::is_const<U>::value>>
  operator HeadLayout<const U>() const {
    return {data, batch_stride, row_stride};
  }
};

}  // namespace nla
