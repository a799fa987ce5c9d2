#pragma once
// Causal multi-head / grouped-query attention over a fused QKV projection
// (formulas beside the CPU kernel in backend/cpu/attention.hpp).
//   qkv:   [batch, t, (H + 2 Hkv) * hd]   queries, then keys, then values
//   out:   [batch, t, H * hd]
//   lse:   [batch, H, t]                  log-sum-exp of each query's scores,
//                                         all the backward needs besides out
// The cached variant reads keys and values from a KV cache
//   k_cache, v_cache: [batch, max_t, Hkv * hd], rows [0, tk) valid,
// and lets query t (of tq new ones) see keys s <= t + tk - tq.

#include "nla/core/head_layout.hpp"
#include "nla/core/scalar.hpp"
#include "nla/core/tensor.hpp"

namespace nla {

struct AttentionHeads {
  index_t heads;
  index_t kv_heads;
  index_t head_dim;
  index_t qkv_width() const { return (heads + 2 * kv_heads) * head_dim; }
};

namespace detail {
inline void check_heads(const AttentionHeads& h, const char* op) {
  NLA_CHECK(h.heads > 0 && h.kv_heads > 0 && h.head_dim > 0 && h.heads % h.kv_heads == 0, op,
            "{} query heads cannot be grouped over {} key/value heads", h.heads, h.kv_heads);
}
}  // namespace detail

template <class T, class B>
void self_attention_forward(B& backend, TensorView<T, B> out, TensorView<accum_t<T>, B> lse,
                            ConstView<T, B> qkv, AttentionHeads h) {
  const char* op = "self_attention_forward";
  detail::check_heads(h, op);
  check_rank(qkv, 3, op, "qkv");
  const index_t batch = qkv.shape()[0], t = qkv.shape()[1], hd = h.head_dim;
  check_shape(qkv, Shape{batch, t, h.qkv_width()}, op, "qkv");
  check_shape(out, Shape{batch, t, h.heads * hd}, op, "out");
  check_shape(lse, Shape{batch, h.heads, t}, op, "lse");
  const index_t w = h.qkv_width();
  const T* base = qkv.data();
  attention_forward(backend, out.data(), lse.data(), HeadLayout<const T>{base, t * w, w},
                    HeadLayout<const T>{base + h.heads * hd, t * w, w},
                    HeadLayout<const T>{base + (h.heads + h.kv_heads) * hd, t * w, w}, batch, t, t,
                    h.heads, h.kv_heads, hd);
}

// dqkv is overwritten; out and lse are the forward's.
template <class T, class B>
void self_attention_backward(B& backend, TensorView<T, B> dqkv, ConstView<T, B> dout,
                             ConstView<T, B> out, ConstView<accum_t<T>, B> lse, ConstView<T, B> qkv,
                             AttentionHeads h) {
  const char* op = "self_attention_backward";
  detail::check_heads(h, op);
  check_rank(qkv, 3, op, "qkv");
  const index_t batch = qkv.shape()[0], t = qkv.shape()[1], hd = h.head_dim, w = h.qkv_width();
  check_shape(qkv, Shape{batch, t, w}, op, "qkv");
  check_shape(dqkv, qkv.shape(), op, "dqkv");
  check_shape(dout, Shape{batch, t, h.heads * hd}, op, "dout");
  check_shape(out, dout.shape(), op, "out");
  check_shape(lse, Shape{batch, h.heads, t}, op, "lse");
  const index_t k_off = h.heads * hd, v_off = (h.heads + h.kv_heads) * hd;
  T* d = dqkv.data();
  const T* q = qkv.data();
  attention_backward(backend, HeadLayout<T>{d, t * w, w}, HeadLayout<T>{d + k_off, t * w, w},
                     HeadLayout<T>{d + v_off, t * w, w}, dout.data(), out.data(), lse.data(),
                     HeadLayout<const T>{q, t * w, w}, HeadLayout<const T>{q + k_off, t * w, w},
                     HeadLayout<const T>{q + v_off, t * w, w}, batch, t, t, h.heads, h.kv_heads,
                     hd);
}

// Queries from qkv ([batch, tq, qkv_width]); keys and values from the cache.
template <class T, class B>
void cached_attention_forward(B& backend, TensorView<T, B> out, TensorView<accum_t<T>, B> lse,
                              ConstView<T, B> qkv, ConstView<T, B> k_cache, ConstView<T, B> v_cache,
                              index_t tk, AttentionHeads h) {
  const char* op = "cached_attention_forward";
  detail::check_heads(h, op);
  check_rank(qkv, 3, op, "qkv");
  check_rank(k_cache, 3, op, "k_cache");
  const index_t batch = qkv.shape()[0], tq = qkv.shape()[1], hd = h.head_dim;
  const index_t max_t = k_cache.shape()[1], kw = h.kv_heads * hd, w = h.qkv_width();
  check_shape(qkv, Shape{batch, tq, w}, op, "qkv");
  check_shape(k_cache, Shape{batch, max_t, kw}, op, "k_cache");
  check_shape(v_cache, k_cache.shape(), op, "v_cache");
  NLA_CHECK(tq <= tk && tk <= max_t, op, "{} queries over {} cached keys (capacity {})", tq, tk,
            max_t);
  check_shape(out, Shape{batch, tq, h.heads * hd}, op, "out");
  check_shape(lse, Shape{batch, h.heads, tq}, op, "lse");
  attention_forward(backend, out.data(), lse.data(), HeadLayout<const T>{qkv.data(), tq * w, w},
                    HeadLayout<const T>{k_cache.data(), max_t * kw, kw},
                    HeadLayout<const T>{v_cache.data(), max_t * kw, kw}, batch, tq, tk, h.heads,
                    h.kv_heads, hd);
}

}  // namespace nla
