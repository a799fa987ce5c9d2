#pragma once
// Causal self-attention module: fused QKV projection, optional rotary
// embedding, multi-head or grouped-query attention, output projection, and
// an optional KV cache for incremental decoding.
//   Gpt2 names:  <prefix>.c_attn [3d, d], <prefix>.c_proj [d, d]
//   Llama names: <prefix>.q_proj, k_proj, v_proj (adjacent), o_proj

#include <string>
#include <vector>

#include "nla/nn/linear.hpp"
#include "nla/ops/attention.hpp"
#include "nla/ops/rope.hpp"

namespace nla {

// Keys and values of every layer for `batch` sequences of up to `capacity`
// tokens; `length` tokens are filled. Decoding appends and advances length.
template <class T, class B>
struct KvCache {
  KvCache() = default;
  KvCache(index_t layers, index_t batch, index_t capacity, index_t kv_width)
      : batch(batch), capacity(capacity) {
    for (index_t l = 0; l < layers; ++l) {
      keys.emplace_back(Shape{batch, capacity, kv_width});
      values.emplace_back(Shape{batch, capacity, kv_width});
    }
  }
  void reset() { length = 0; }

  std::vector<Tensor<T, B>> keys, values;  // per layer: [batch, capacity, Hkv * hd]
  index_t batch = 0, capacity = 0, length = 0;
};

template <class T, class B>
struct AttentionCache {
  Tensor<T, B> qkv;           // [batch, t, (H + 2 Hkv) hd], q and k after rotation
  Tensor<accum_t<T>, B> lse;  // [batch, H, t], row log-sum-exp of the scores
  Tensor<T, B> heads;         // [batch, t, H hd], attention output before o_proj
};

template <class T, class B>
struct AttentionScratch {
  Tensor<T, B> dheads, dqkv;
};

template <class B, class T>
class Attention {
 public:
  Attention() = default;
  Attention(ParameterSet<T, B>& params, const std::string& prefix, index_t d, AttentionHeads heads,
            bool gpt2_names, bool qkv_bias, bool out_bias, bool rotary)
      : heads_(heads), rotary_(rotary) {
    const index_t hd = heads.head_dim;
    if (gpt2_names) {
      qkv_ = Linear<B, T>(params, prefix + ".c_attn", d, heads.qkv_width(), qkv_bias);
      out_ = Linear<B, T>(params, prefix + ".c_proj", heads.heads * hd, d, out_bias);
    } else {
      qkv_ = Linear<B, T>(params, {prefix + ".q_proj", prefix + ".k_proj", prefix + ".v_proj"}, d,
                          {heads.heads * hd, heads.kv_heads * hd, heads.kv_heads * hd}, qkv_bias);
      out_ = Linear<B, T>(params, prefix + ".o_proj", heads.heads * hd, d, out_bias);
    }
  }

  const Linear<B, T>& output_projection() const { return out_; }
  const AttentionHeads& heads() const { return heads_; }

  // x: [batch, t, d] -> y: [batch, t, d]; positions: [batch * t].
  // With a KV cache layer (keys, values at cache->length), the new keys and
  // values are appended and queries attend over the whole cache.
  void forward(B& backend, const ParameterSet<T, B>& p, TensorView<T, B> y, ConstView<T, B> x,
               ConstView<std::int32_t, B> positions, const RopeTable<T, B>* rope,
               AttentionCache<T, B>& cache, KvCache<T, B>* kv = nullptr, index_t layer = 0) const {
    const index_t batch = x.shape()[0], t = x.shape()[1], hd = heads_.head_dim;
    const index_t w = heads_.qkv_width(), kw = heads_.kv_heads * hd;
    cache.qkv.resize(Shape{batch, t, w});
    cache.heads.resize(Shape{batch, t, heads_.heads * hd});
    qkv_.forward(backend, p, cache.qkv.view(), x);
    if (rotary_)
      rope_forward(backend, cache.qkv.view(), heads_.heads + heads_.kv_heads, positions, *rope);
    if (kv) {
      const index_t past = kv->length, tk = past + t;
      NLA_CHECK(kv->batch == batch && tk <= kv->capacity, "Attention::forward",
                "KV cache holds {} sequences of {} tokens; got {} sequences reaching {}", kv->batch,
                kv->capacity, batch, tk);
      // New row (b, i) of qkv goes to cache row (b, past + i). Each copy_rows
      // call covers one axis (sequences or positions) with its strides; the
      // loop runs over the shorter one, so a decode step (t = 1) is two copies
      // across the batch and a prefill is two per sequence.
      struct Axis {
        index_t count, src_stride, dst_stride;
      };
      const Axis sequences{batch, t * w, kv->capacity * kw}, steps{t, w, kw};
      const Axis& outer = t < batch ? steps : sequences;
      const Axis& inner = t < batch ? sequences : steps;
      const T* src = cache.qkv.data() + heads_.heads * hd;  // the first key column
      T* keys = kv->keys[layer].data() + past * kw;
      T* values = kv->values[layer].data() + past * kw;
      for (index_t o = 0; o < outer.count; ++o) {
        const T* k = src + o * outer.src_stride;
        copy_rows(backend, keys + o * outer.dst_stride, inner.dst_stride, k, inner.src_stride,
                  inner.count, kw);
        copy_rows(backend, values + o * outer.dst_stride, inner.dst_stride, k + kw,
                  inner.src_stride, inner.count, kw);
      }
      cache.lse.resize(Shape{batch, heads_.heads, t});
      cached_attention_forward(backend, cache.heads.view(), cache.lse.view(), cache.qkv.view(),
                               kv->keys[layer].view(), kv->values[layer].view(), tk, heads_);
    } else {
      cache.lse.resize(Shape{batch, heads_.heads, t});
      self_attention_forward(backend, cache.heads.view(), cache.lse.view(), cache.qkv.view(),
                             heads_);
    }
    out_.forward(backend, p, y, cache.heads.view());
  }

  // dx: [batch, t, d] overwritten. Only for forwards without a KV cache.
  void backward(B& backend, ParameterSet<T, B>& p, TensorView<T, B> dx, ConstView<T, B> dy,
                ConstView<T, B> x, ConstView<std::int32_t, B> positions,
                const RopeTable<T, B>* rope, const AttentionCache<T, B>& cache,
                AttentionScratch<T, B>& s) const {
    s.dheads.resize(cache.heads.shape());
    s.dqkv.resize(cache.qkv.shape());
    out_.backward(backend, p, s.dheads.view(), dy, cache.heads.view());
    self_attention_backward(backend, s.dqkv.view(), s.dheads.view(), cache.heads.view(),
                            cache.lse.view(), cache.qkv.view(), heads_);
    if (rotary_)
      rope_backward(backend, s.dqkv.view(), heads_.heads + heads_.kv_heads, positions, *rope);
    qkv_.backward(backend, p, dx, s.dqkv.view(), x);
  }

 private:
  AttentionHeads heads_{};
  bool rotary_ = false;
  Linear<B, T> qkv_, out_;
};

}  // namespace nla
