#pragma once
// Causal scaled dot-product attention with grouped-query heads, per (batch,
// head), on Eigen GEMMs. Query head h reads key/value head h / (H / Hkv).
//
//   S = Q K^T / sqrt(hd)          Q: [Tq, hd], K, V: [Tk, hd]
//   P = softmax(S + causal mask)  query t sees keys s <= t + (Tk - Tq)
//   O = P V
// The forward keeps one log-sum-exp per query row, lse_t = log sum_s exp S_ts,
// never P: the backward recomputes P = exp(S - lse) (one more Q K^T), so
// memory stays linear in the sequence length on every backend.
//   delta_t = dO_t . O_t  (= rowsum(P * dP)),  dP = dO V^T,
//   dS = P * (dP - delta),  dV = P^T dO,
//   dQ = dS K / sqrt(hd),  dK = dS^T Q / sqrt(hd)
// P and dS live in a per-thread scratch of [Tq, Tk] that grows to the largest
// call and is then reused. Queries, keys and values are read in place from
// the fused QKV projection (or the KV cache) through row strides, so nothing
// is transposed.

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "nla/backend/cpu/cpu.hpp"
#include "nla/backend/cpu/eigen.hpp"
#include "nla/backend/cpu/parallel.hpp"
#include "nla/core/head_layout.hpp"
#include "nla/core/scalar.hpp"

namespace nla {
namespace cpu {

namespace detail {
// This thread's [rows, cols] scratch matrix number `slot` (P, dS).
template <class T>
MatrixMap<T> attention_scratch(int slot, index_t rows, index_t cols) {
  thread_local std::vector<T> buffers[2];
  auto& b = buffers[slot];
  if (b.size() < std::size_t(rows * cols)) b.resize(std::size_t(rows * cols));
  return matrix(b.data(), rows, cols);
}

// P = exp(scale Q K^T - lse), zero where masked; with lse = nullptr, the
// forward's softmax, writing lse.
template <class T, class QMap, class KMap>
void causal_probabilities(MatrixMap<T>& P, const QMap& Q, const KMap& K, T scale, index_t past,
                          accum_t<T>* lse_out, const accum_t<T>* lse_in) {
  using A = accum_t<T>;
  const index_t tq = P.rows(), tk = P.cols();
  P.noalias() = scale * Q * K.transpose();
  for (index_t t = 0; t < tq; ++t) {
    T* row = &P(t, 0);
    const index_t visible = std::min(tk, t + past + 1);
    A log_sum;
    if (lse_in) {
      log_sum = lse_in[t];
    } else {
      A max = -std::numeric_limits<A>::infinity();
      for (index_t s = 0; s < visible; ++s) max = std::max<A>(max, row[s]);
      A sum = 0;
      for (index_t s = 0; s < visible; ++s) sum += std::exp(A(row[s]) - max);
      log_sum = max + std::log(sum);
      lse_out[t] = log_sum;
    }
    for (index_t s = 0; s < visible; ++s) row[s] = T(std::exp(A(row[s]) - log_sum));
    for (index_t s = visible; s < tk; ++s) row[s] = T(0);
  }
}
}  // namespace detail

// out: [batch, tq, heads * hd]; lse: [batch, heads, tq].
template <class T>
void attention_forward(Cpu&, T* out, accum_t<T>* lse, HeadLayout<const T> q, HeadLayout<const T> k,
                       HeadLayout<const T> v, index_t batch, index_t tq, index_t tk, index_t heads,
                       index_t kv_heads, index_t head_dim) {
  const index_t group = heads / kv_heads;
  const T scale = T(1.0 / std::sqrt(static_cast<double>(head_dim)));
  parallel_for(batch * heads, 4 * tq * tk * head_dim, [&](index_t bh) {
    const index_t b = bh / heads, h = bh % heads, g = h / group;
    const auto Q = matrix(q.data + b * q.batch_stride + h * head_dim, tq, head_dim, q.row_stride);
    const auto K = matrix(k.data + b * k.batch_stride + g * head_dim, tk, head_dim, k.row_stride);
    const auto V = matrix(v.data + b * v.batch_stride + g * head_dim, tk, head_dim, v.row_stride);
    auto P = detail::attention_scratch<T>(0, tq, tk);
    detail::causal_probabilities(P, Q, K, scale, tk - tq, lse + bh * tq, nullptr);
    auto O =
        matrix(out + (b * tq) * heads * head_dim + h * head_dim, tq, head_dim, heads * head_dim);
    O.noalias() = P * V;
  });
}

// dq, dk, dv are overwritten. Work is split over (batch, kv head) so the heads
// of one group add into their shared dK, dV in a fixed order without races.
template <class T>
void attention_backward(Cpu&, HeadLayout<T> dq, HeadLayout<T> dk, HeadLayout<T> dv, const T* dout,
                        const T* out, const accum_t<T>* lse, HeadLayout<const T> q,
                        HeadLayout<const T> k, HeadLayout<const T> v, index_t batch, index_t tq,
                        index_t tk, index_t heads, index_t kv_heads, index_t head_dim) {
  using A = accum_t<T>;
  const index_t group = heads / kv_heads;
  const T scale = T(1.0 / std::sqrt(static_cast<double>(head_dim)));
  parallel_for(batch * kv_heads, 10 * group * tq * tk * head_dim, [&](index_t bg) {
    const index_t b = bg / kv_heads, g = bg % kv_heads;
    const auto K = matrix(k.data + b * k.batch_stride + g * head_dim, tk, head_dim, k.row_stride);
    const auto V = matrix(v.data + b * v.batch_stride + g * head_dim, tk, head_dim, v.row_stride);
    auto dK = matrix(dk.data + b * dk.batch_stride + g * head_dim, tk, head_dim, dk.row_stride);
    auto dV = matrix(dv.data + b * dv.batch_stride + g * head_dim, tk, head_dim, dv.row_stride);
    dK.setZero();
    dV.setZero();
    auto P = detail::attention_scratch<T>(0, tq, tk);
    auto dS = detail::attention_scratch<T>(1, tq, tk);
    for (index_t h = g * group; h < (g + 1) * group; ++h) {
      const index_t bh = b * heads + h, row_stride = heads * head_dim;
      const auto Q = matrix(q.data + b * q.batch_stride + h * head_dim, tq, head_dim, q.row_stride);
      const auto O = matrix(out + b * tq * row_stride + h * head_dim, tq, head_dim, row_stride);
      const auto dO = matrix(dout + b * tq * row_stride + h * head_dim, tq, head_dim, row_stride);
      detail::causal_probabilities(P, Q, K, scale, tk - tq, static_cast<A*>(nullptr),
                                   lse + bh * tq);
      dV.noalias() += P.transpose() * dO;
      dS.noalias() = dO * V.transpose();
      // dS = P * (dP - delta); masked entries have P = 0.
      for (index_t t = 0; t < tq; ++t) {
        A delta = 0;
        for (index_t i = 0; i < head_dim; ++i) delta += A(dO(t, i)) * A(O(t, i));
        for (index_t s = 0; s < tk; ++s) dS(t, s) = T(A(P(t, s)) * (A(dS(t, s)) - delta));
      }
      auto dQ = matrix(dq.data + b * dq.batch_stride + h * head_dim, tq, head_dim, dq.row_stride);
      dQ.noalias() = scale * dS * K;
      dK.noalias() += scale * dS.transpose() * Q;
    }
  });
}

}  // namespace cpu
}  // namespace nla
