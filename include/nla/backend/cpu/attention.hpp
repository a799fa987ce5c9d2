#pragma once
// Causal scaled dot-product attention with grouped-query heads, per (batch,
// head), on Eigen GEMMs. Query head h reads key/value head h / (H / Hkv).
//
//   S = Q K^T / sqrt(hd)          Q: [Tq, hd], K, V: [Tk, hd]
//   P = softmax(S + causal mask)  query t sees keys s <= t + (Tk - Tq)
//   O = P V
// Backward, with P saved from the forward:
//   dV = P^T dO,  dP = dO V^T,  dS = P * (dP - rowsum(P * dP)),
//   dQ = dS K / sqrt(hd),  dK = dS^T Q / sqrt(hd)
// The CPU keeps P ([B, H, Tq, Tk]); the CUDA backend recomputes it tile by
// tile instead. Queries, keys and values are read in place from the fused QKV
// projection (or the KV cache) through row strides, so nothing is transposed.

#include <algorithm>
#include <cmath>
#include <limits>

#include "nla/backend/cpu/cpu.hpp"
#include "nla/backend/cpu/eigen.hpp"
#include "nla/backend/cpu/parallel.hpp"
#include "nla/core/head_layout.hpp"
#include "nla/core/scalar.hpp"

namespace nla {
namespace cpu {

template <class T>
void attention_forward(Cpu&, T* out, T* probs, HeadLayout<const T> q, HeadLayout<const T> k,
                       HeadLayout<const T> v, index_t batch, index_t tq, index_t tk, index_t heads,
                       index_t kv_heads, index_t head_dim) {
  using A = accum_t<T>;
  const index_t group = heads / kv_heads;
  const index_t past = tk - tq;
  const T scale = T(1.0 / std::sqrt(static_cast<double>(head_dim)));
  parallel_for(batch * heads, 4 * tq * tk * head_dim, [&](index_t bh) {
    const index_t b = bh / heads, h = bh % heads, g = h / group;
    const auto Q = matrix(q.data + b * q.batch_stride + h * head_dim, tq, head_dim, q.row_stride);
    const auto K = matrix(k.data + b * k.batch_stride + g * head_dim, tk, head_dim, k.row_stride);
    const auto V = matrix(v.data + b * v.batch_stride + g * head_dim, tk, head_dim, v.row_stride);
    auto P = matrix(probs + bh * tq * tk, tq, tk);
    P.noalias() = scale * Q * K.transpose();
    for (index_t t = 0; t < tq; ++t) {
      T* row = &P(t, 0);
      const index_t visible = std::min(tk, t + past + 1);
      A max = -std::numeric_limits<A>::infinity();
      for (index_t s = 0; s < visible; ++s) max = std::max<A>(max, row[s]);
      A sum = 0;
      for (index_t s = 0; s < visible; ++s) {
        const A e = std::exp(A(row[s]) - max);
        row[s] = T(e);
        sum += e;
      }
      const A inv = A(1) / sum;
      for (index_t s = 0; s < visible; ++s) row[s] = T(row[s] * inv);
      for (index_t s = visible; s < tk; ++s) row[s] = T(0);
    }
    auto O =
        matrix(out + (b * tq) * heads * head_dim + h * head_dim, tq, head_dim, heads * head_dim);
    O.noalias() = P * V;
  });
}

// dq, dk, dv are overwritten. dscores: scratch of the same size as probs.
// Work is split over (batch, kv head) so the heads of one group add into
// their shared dK, dV in a fixed order without races.
template <class T>
void attention_backward(Cpu&, HeadLayout<T> dq, HeadLayout<T> dk, HeadLayout<T> dv, T* dscores,
                        const T* dout, const T* probs, HeadLayout<const T> q, HeadLayout<const T> k,
                        HeadLayout<const T> v, index_t batch, index_t tq, index_t tk, index_t heads,
                        index_t kv_heads, index_t head_dim) {
  const index_t group = heads / kv_heads;
  const T scale = T(1.0 / std::sqrt(static_cast<double>(head_dim)));
  parallel_for(batch * kv_heads, 8 * group * tq * tk * head_dim, [&](index_t bg) {
    const index_t b = bg / kv_heads, g = bg % kv_heads;
    const auto K = matrix(k.data + b * k.batch_stride + g * head_dim, tk, head_dim, k.row_stride);
    const auto V = matrix(v.data + b * v.batch_stride + g * head_dim, tk, head_dim, v.row_stride);
    auto dK = matrix(dk.data + b * dk.batch_stride + g * head_dim, tk, head_dim, dk.row_stride);
    auto dV = matrix(dv.data + b * dv.batch_stride + g * head_dim, tk, head_dim, dv.row_stride);
    dK.setZero();
    dV.setZero();
    for (index_t h = g * group; h < (g + 1) * group; ++h) {
      const index_t bh = b * heads + h;
      const auto Q = matrix(q.data + b * q.batch_stride + h * head_dim, tq, head_dim, q.row_stride);
      const auto P = matrix(probs + bh * tq * tk, tq, tk);
      const auto dO =
          matrix(dout + (b * tq) * heads * head_dim + h * head_dim, tq, head_dim, heads * head_dim);
      auto dS = matrix(dscores + bh * tq * tk, tq, tk);
      dV.noalias() += P.transpose() * dO;
      dS.noalias() = dO * V.transpose();
      // dS = P * (dP - rowsum(P * dP)); masked entries have P = 0.
      for (index_t t = 0; t < tq; ++t) {
        const T dot = P.row(t).dot(dS.row(t));
        dS.row(t) = P.row(t).cwiseProduct((dS.row(t).array() - dot).matrix());
      }
      auto dQ = matrix(dq.data + b * dq.batch_stride + h * head_dim, tq, head_dim, dq.row_stride);
      dQ.noalias() = scale * dS * K;
      dK.noalias() += scale * dS.transpose() * Q;
    }
  });
}

}  // namespace cpu
}  // namespace nla
