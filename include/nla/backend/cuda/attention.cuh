#pragma once
// Causal grouped-query attention (the contract and formulas of
// backend/cpu/attention.hpp): the forward keeps the row log-sum-exp, the
// backward recomputes the probabilities from it. On a GPU, bf16 models and
// fp32 models under TF32 take the tensor-core kernels
// (tensor_core_attention.cuh) where those serve, other head sizes with a
// flash kernel (flash_attention.cuh) take that; everything else, and Thrust's
// host systems, run the same algorithm untiled as portable loops: one index
// per (batch, head, query) row for the forward and for dQ, one per
// (batch, kv head, key) row for dK and dV, which sums over the group's heads
// and the queries in a fixed order (no atomics).

#include "nla/backend/cuda/cuda.cuh"
#include "nla/backend/cuda/flash_attention.cuh"
#include "nla/backend/cuda/math.cuh"
#include "nla/backend/cuda/tensor_core_attention.cuh"
#include "nla/core/head_layout.hpp"
#include "nla/core/scalar.hpp"

namespace nla {
namespace gpu {

// The portable loops keep one row of head_dim accumulators per index.
constexpr index_t kMaxPortableHeadDim = 256;

namespace detail {
// P_ts = exp(scale q_t . k_s - lse_t) and dP_ts = dO_t . v_s of one (query,
// key) pair, recomputed by both portable backward loops.
template <class T>
struct RecomputedPair {
  using A = accum_t<T>;
  HeadLayout<const T> q, k, v;
  const T* dout;
  const A* lse;
  index_t tq, heads, group, head_dim;
  A scale;

  NLA_HOST_DEVICE void operator()(index_t b, index_t h, index_t t, index_t s, A& p, A& dp) const {
    const index_t g = h / group;
    const T* qr = q.data + b * q.batch_stride + t * q.row_stride + h * head_dim;
    const T* kr = k.data + b * k.batch_stride + s * k.row_stride + g * head_dim;
    const T* vr = v.data + b * v.batch_stride + s * v.row_stride + g * head_dim;
    const T* dor = dout + (b * tq + t) * heads * head_dim + h * head_dim;
    A qk = 0;
    dp = 0;
    for (index_t i = 0; i < head_dim; ++i) {
      qk += A(qr[i]) * A(kr[i]);
      dp += A(dor[i]) * A(vr[i]);
    }
    p = math::exp(scale * qk - lse[(b * heads + h) * tq + t]);
  }
};

inline void check_portable_head_dim(index_t head_dim, const char* op) {
  NLA_CHECK(head_dim <= kMaxPortableHeadDim, op,
            "head_dim {} has no flash kernel and exceeds the portable limit of {}", head_dim,
            kMaxPortableHeadDim);
}
}  // namespace detail

template <class T>
void attention_forward(Cuda& backend, T* out, accum_t<T>* lse, HeadLayout<const T> q,
                       HeadLayout<const T> k, HeadLayout<const T> v, index_t batch, index_t tq,
                       index_t tk, index_t heads, index_t kv_heads, index_t head_dim) {
  using A = accum_t<T>;
  const A scale = A(1) / math::sqrt(A(head_dim));
#if NLA_CUDA_DEVICE_SYSTEM
  if (tensor_core_attention::forward(backend, out, lse, q, k, v, batch, tq, tk, heads, kv_heads,
                                     head_dim, scale))
    return;
  if (flash::forward(backend, out, lse, q, k, v, batch, tq, tk, heads, kv_heads, head_dim, scale))
    return;
#endif
  detail::check_portable_head_dim(head_dim, "attention_forward");
  const index_t group = heads / kv_heads, past = tk - tq;
  for_each_index(backend, batch * heads * tq, [=] NLA_HOST_DEVICE(index_t e) {
    const index_t b = e / (heads * tq), h = (e / tq) % heads, t = e % tq, g = h / group;
    const T* qr = q.data + b * q.batch_stride + t * q.row_stride + h * head_dim;
    const T* kb = k.data + b * k.batch_stride + g * head_dim;
    const T* vb = v.data + b * v.batch_stride + g * head_dim;
    const index_t visible = math::min(tk, t + past + 1);
    auto score = [&](index_t s) {
      A dot = 0;
      for (index_t i = 0; i < head_dim; ++i) dot += A(qr[i]) * A(kb[s * k.row_stride + i]);
      return scale * dot;
    };
    A max = math::minus_infinity<A>();
    for (index_t s = 0; s < visible; ++s) max = math::max(max, score(s));
    A sum = 0, o[kMaxPortableHeadDim] = {};
    for (index_t s = 0; s < visible; ++s) {
      const A p = math::exp(score(s) - max);
      sum += p;
      for (index_t i = 0; i < head_dim; ++i) o[i] += p * A(vb[s * v.row_stride + i]);
    }
    T* orow = out + (b * tq + t) * heads * head_dim + h * head_dim;
    for (index_t i = 0; i < head_dim; ++i) orow[i] = T(o[i] / sum);
    lse[e] = max + math::log(sum);
  });
}

// dq, dk, dv are overwritten.
template <class T>
void attention_backward(Cuda& backend, HeadLayout<T> dq, HeadLayout<T> dk, HeadLayout<T> dv,
                        const T* dout, const T* out, const accum_t<T>* lse, HeadLayout<const T> q,
                        HeadLayout<const T> k, HeadLayout<const T> v, index_t batch, index_t tq,
                        index_t tk, index_t heads, index_t kv_heads, index_t head_dim) {
  using A = accum_t<T>;
  const A scale = A(1) / math::sqrt(A(head_dim));
  DeviceScratch<A> delta_buffer(backend, batch * heads * tq);  // delta_t = dO_t . O_t
  A* delta = delta_buffer.data();
#if NLA_CUDA_DEVICE_SYSTEM
  if (tensor_core_attention::backward(backend, dq, dk, dv, delta, dout, out, lse, q, k, v, batch,
                                      tq, tk, heads, kv_heads, head_dim, scale))
    return;
  if (flash::backward(backend, dq, dk, dv, delta, dout, out, lse, q, k, v, batch, tq, tk, heads,
                      kv_heads, head_dim, scale))
    return;
#endif
  detail::check_portable_head_dim(head_dim, "attention_backward");
  const index_t group = heads / kv_heads, past = tk - tq, width = heads * head_dim;
  const detail::RecomputedPair<T> pair{q, k, v, dout, lse, tq, heads, group, head_dim, scale};
  for_each_index(backend, batch * heads * tq, [=] NLA_HOST_DEVICE(index_t e) {
    const index_t b = e / (heads * tq), h = (e / tq) % heads, t = e % tq, g = h / group;
    const T* dor = dout + (b * tq + t) * width + h * head_dim;
    const T* orow = out + (b * tq + t) * width + h * head_dim;
    A row_delta = 0;
    for (index_t i = 0; i < head_dim; ++i) row_delta += A(dor[i]) * A(orow[i]);
    delta[e] = row_delta;
    A acc[kMaxPortableHeadDim] = {};
    const index_t visible = math::min(tk, t + past + 1);
    for (index_t s = 0; s < visible; ++s) {
      A p, dp;
      pair(b, h, t, s, p, dp);
      const A ds = p * (dp - row_delta);
      const T* kr = k.data + b * k.batch_stride + s * k.row_stride + g * head_dim;
      for (index_t i = 0; i < head_dim; ++i) acc[i] += ds * A(kr[i]);
    }
    T* dqr = dq.data + b * dq.batch_stride + t * dq.row_stride + h * head_dim;
    for (index_t i = 0; i < head_dim; ++i) dqr[i] = T(scale * acc[i]);
  });
  for_each_index(backend, batch * kv_heads * tk, [=] NLA_HOST_DEVICE(index_t e) {
    const index_t s = e % tk, g = (e / tk) % kv_heads, b = e / (tk * kv_heads);
    A acc_k[kMaxPortableHeadDim] = {}, acc_v[kMaxPortableHeadDim] = {};
    for (index_t h = g * group; h < (g + 1) * group; ++h)
      for (index_t t = math::max(index_t(0), s - past); t < tq; ++t) {
        A p, dp;
        pair(b, h, t, s, p, dp);
        const A ds = p * (dp - delta[(b * heads + h) * tq + t]);
        const T* qr = q.data + b * q.batch_stride + t * q.row_stride + h * head_dim;
        const T* dor = dout + (b * tq + t) * width + h * head_dim;
        for (index_t i = 0; i < head_dim; ++i) {
          acc_v[i] += p * A(dor[i]);
          acc_k[i] += ds * A(qr[i]);
        }
      }
    T* dkr = dk.data + b * dk.batch_stride + s * dk.row_stride + g * head_dim;
    T* dvr = dv.data + b * dv.batch_stride + s * dv.row_stride + g * head_dim;
    for (index_t i = 0; i < head_dim; ++i) {
      dkr[i] = T(scale * acc_k[i]);
      dvr[i] = T(acc_v[i]);
    }
  });
}

}  // namespace gpu
}  // namespace nla
