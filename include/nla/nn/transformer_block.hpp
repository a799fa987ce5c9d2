#pragma once
// A pre-norm transformer block:
//   mid = x + Attention(Norm1(x))
//   out = mid + Mlp(Norm2(mid))
// The backward pass takes d(out) in `dresidual` and leaves d(x) there: both
// norms add their input gradient into it, which is exactly the skip path.

#include <string>

#include "nla/nn/attention.hpp"
#include "nla/nn/config.hpp"
#include "nla/nn/mlp.hpp"
#include "nla/nn/norm.hpp"

namespace nla {

template <class T, class B>
struct BlockCache {
  Tensor<T, B> normed1, mid, normed2;  // [n, d]
  NormCache<T, B> norm1, norm2;
  AttentionCache<T, B> attention;
  MlpCache<T, B> mlp;
};

// Buffers reused by every block's backward pass (one set per model).
template <class T, class B>
struct BlockScratch {
  Tensor<T, B> branch;  // [n, d] a branch output (forward) / d(normed) (backward)
  AttentionScratch<T, B> attention;
  MlpScratch<T, B> mlp;
};

template <class B, class T>
class TransformerBlock {
 public:
  TransformerBlock() = default;
  TransformerBlock(ParameterSet<T, B>& params, const TransformerConfig& c, index_t layer) {
    const bool gpt2 = c.flavour == Flavour::Gpt2;
    const std::string prefix =
        gpt2 ? "transformer.h." + std::to_string(layer) : "model.layers." + std::to_string(layer);
    const NormKind norm = gpt2 ? NormKind::LayerNorm : NormKind::RmsNorm;
    const AttentionHeads heads{c.n_heads, c.kv_heads(), c.head_dim()};
    norm1_ = Norm<B, T>(params, prefix + (gpt2 ? ".ln_1" : ".input_layernorm"), c.d_model, norm,
                        c.norm_eps);
    attention_ = Attention<B, T>(params, prefix + (gpt2 ? ".attn" : ".self_attn"), c.d_model, heads,
                                 gpt2, c.attention_bias, c.projection_bias, !gpt2);
    norm2_ = Norm<B, T>(params, prefix + (gpt2 ? ".ln_2" : ".post_attention_layernorm"), c.d_model,
                        norm, c.norm_eps);
    mlp_ = Mlp<B, T>(params, prefix + ".mlp", c.d_model, c.ff_dim(),
                     gpt2 ? MlpKind::Gelu : MlpKind::SwiGlu, c.projection_bias);
  }

  const Attention<B, T>& attention() const { return attention_; }
  const Mlp<B, T>& mlp() const { return mlp_; }

  // x, out: [batch, t, d]
  void forward(B& backend, const ParameterSet<T, B>& p, TensorView<T, B> out, ConstView<T, B> x,
               ConstView<std::int32_t, B> positions, const RopeTable<T, B>* rope,
               BlockCache<T, B>& cache, BlockScratch<T, B>& scratch, KvCache<T, B>* kv,
               index_t layer) const {
    cache.normed1.resize(x.shape());
    cache.mid.resize(x.shape());
    cache.normed2.resize(x.shape());
    scratch.branch.resize(x.shape());
    norm1_.forward(backend, p, cache.normed1.view(), x, cache.norm1);
    attention_.forward(backend, p, scratch.branch.view(), cache.normed1.view(), positions, rope,
                       cache.attention, kv, layer);
    copy(backend, cache.mid.view(), x);
    add(backend, cache.mid.view(), scratch.branch.view());
    norm2_.forward(backend, p, cache.normed2.view(), cache.mid.view(), cache.norm2);
    mlp_.forward(backend, p, scratch.branch.view(), cache.normed2.view(), cache.mlp);
    copy(backend, out, cache.mid.view());
    add(backend, out, scratch.branch.view());
  }

  // dresidual: [batch, t, d], d(out) in, d(x) out.
  void backward(B& backend, ParameterSet<T, B>& p, TensorView<T, B> dresidual, ConstView<T, B> x,
                ConstView<std::int32_t, B> positions, const RopeTable<T, B>* rope,
                const BlockCache<T, B>& cache, BlockScratch<T, B>& scratch) const {
    scratch.branch.resize(x.shape());
    auto dnormed = scratch.branch.view();
    mlp_.backward(backend, p, dnormed, dresidual, cache.normed2.view(), cache.mlp, scratch.mlp);
    norm2_.backward(backend, p, dresidual, dnormed, cache.mid.view(), cache.norm2);
    attention_.backward(backend, p, dnormed, dresidual, cache.normed1.view(), positions, rope,
                        cache.attention, scratch.attention);
    norm1_.backward(backend, p, dresidual, dnormed, x, cache.norm1);
  }

 private:
  Norm<B, T> norm1_, norm2_;
  Attention<B, T> attention_;
  Mlp<B, T> mlp_;
};

}  // namespace nla
