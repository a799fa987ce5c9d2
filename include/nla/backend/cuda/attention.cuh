#pragma once
// Causal grouped-query attention (the contract and formulas of
// backend/cpu/attention.hpp), saving P = softmax(S) for the backward pass.
// Portable form: one index per (batch, head, query) row for the forward and
// for dS, dQ; one index per (batch, kv head, key, channel) for dK, dV, which
// sums over the group's heads and the queries in a fixed order (no atomics).

#include "nla/backend/cuda/cuda.cuh"
#include "nla/backend/cuda/math.cuh"
#include "nla/core/head_layout.hpp"
#include "nla/core/scalar.hpp"

namespace nla {
namespace gpu {

template <class T>
void attention_forward(Cuda& backend, T* out, T* probs, HeadLayout<const T> q,
                       HeadLayout<const T> k, HeadLayout<const T> v, index_t batch, index_t tq,
                       index_t tk, index_t heads, index_t kv_heads, index_t head_dim) {
  using A = accum_t<T>;
  const index_t group = heads / kv_heads, past = tk - tq;
  const A scale = A(1) / math::sqrt(A(head_dim));
  for_each_index(backend, batch * heads * tq, [=] NLA_HOST_DEVICE(index_t e) {
    const index_t b = e / (heads * tq), h = (e / tq) % heads, t = e % tq, g = h / group;
    const T* qr = q.data + b * q.batch_stride + t * q.row_stride + h * head_dim;
    const T* kb = k.data + b * k.batch_stride + g * head_dim;
    const T* vb = v.data + b * v.batch_stride + g * head_dim;
    T* p = probs + e * tk;
    const index_t visible = math::min(tk, t + past + 1);
    A max = math::minus_infinity<A>();
    for (index_t s = 0; s < visible; ++s) {
      A dot = 0;
      for (index_t i = 0; i < head_dim; ++i) dot += A(qr[i]) * A(kb[s * k.row_stride + i]);
      p[s] = T(scale * dot);
      max = math::max(max, A(p[s]));
    }
    A sum = 0;
    for (index_t s = 0; s < visible; ++s) {
      const A x = math::exp(A(p[s]) - max);
      p[s] = T(x);
      sum += x;
    }
    for (index_t s = 0; s < visible; ++s) p[s] = T(A(p[s]) / sum);
    for (index_t s = visible; s < tk; ++s) p[s] = T(0);
    T* o = out + (b * tq + t) * heads * head_dim + h * head_dim;
    for (index_t i = 0; i < head_dim; ++i) {
      A acc = 0;
      for (index_t s = 0; s < visible; ++s) acc += A(p[s]) * A(vb[s * v.row_stride + i]);
      o[i] = T(acc);
    }
  });
}

template <class T>
void attention_backward(Cuda& backend, HeadLayout<T> dq, HeadLayout<T> dk, HeadLayout<T> dv,
                        T* dscores, const T* dout, const T* probs, HeadLayout<const T> q,
                        HeadLayout<const T> k, HeadLayout<const T> v, index_t batch, index_t tq,
                        index_t tk, index_t heads, index_t kv_heads, index_t head_dim) {
  using A = accum_t<T>;
  const index_t group = heads / kv_heads;
  const A scale = A(1) / math::sqrt(A(head_dim));
  // dS = P * (dP - rowsum(P * dP)) with dP = dO V^T, then dQ = scale dS K.
  for_each_index(backend, batch * heads * tq, [=] NLA_HOST_DEVICE(index_t e) {
    const index_t b = e / (heads * tq), h = (e / tq) % heads, t = e % tq, g = h / group;
    const T* kb = k.data + b * k.batch_stride + g * head_dim;
    const T* vb = v.data + b * v.batch_stride + g * head_dim;
    const T* p = probs + e * tk;
    const T* d_o = dout + (b * tq + t) * heads * head_dim + h * head_dim;
    T* ds = dscores + e * tk;
    A row_dot = 0;
    for (index_t s = 0; s < tk; ++s) {
      A dp = 0;
      for (index_t i = 0; i < head_dim; ++i) dp += A(d_o[i]) * A(vb[s * v.row_stride + i]);
      ds[s] = T(dp);
      row_dot += A(p[s]) * dp;
    }
    for (index_t s = 0; s < tk; ++s) ds[s] = T(A(p[s]) * (A(ds[s]) - row_dot));
    T* dqr = dq.data + b * dq.batch_stride + t * dq.row_stride + h * head_dim;
    for (index_t i = 0; i < head_dim; ++i) {
      A acc = 0;
      for (index_t s = 0; s < tk; ++s) acc += A(ds[s]) * A(kb[s * k.row_stride + i]);
      dqr[i] = T(scale * acc);
    }
  });
  // dV = P^T dO and dK = scale dS^T Q, summed over the group's query heads.
  for_each_index(backend, batch * kv_heads * tk * head_dim, [=] NLA_HOST_DEVICE(index_t e) {
    const index_t i = e % head_dim, s = (e / head_dim) % tk, g = (e / (head_dim * tk)) % kv_heads,
                  b = e / (head_dim * tk * kv_heads);
    A acc_v = 0, acc_k = 0;
    for (index_t h = g * group; h < (g + 1) * group; ++h) {
      const index_t row0 = (b * heads + h) * tq;
      for (index_t t = 0; t < tq; ++t) {
        const index_t pi = (row0 + t) * tk + s;
        acc_v += A(probs[pi]) * A(dout[(b * tq + t) * heads * head_dim + h * head_dim + i]);
        acc_k +=
            A(dscores[pi]) * A(q.data[b * q.batch_stride + t * q.row_stride + h * head_dim + i]);
      }
    }
    dv.data[b * dv.batch_stride + s * dv.row_stride + g * head_dim + i] = T(acc_v);
    dk.data[b * dk.batch_stride + s * dk.row_stride + g * head_dim + i] = T(scale * acc_k);
  });
}

}  // namespace gpu
}  // namespace nla
