#pragma once
// The architecture of a TransformerLM. Two flavours share every module:
//   Gpt2:  LayerNorm, learned positions, GELU MLP, fused c_attn, tied head
//   Llama: RMSNorm, rotary positions, SwiGLU MLP, grouped-query attention,
//          untied head (Qwen2 = Llama with biases on q/k/v)

#include <string>

#include "nla/core/error.hpp"
#include "nla/core/shape.hpp"

namespace nla {

enum class Flavour { Gpt2, Llama };

// What training passes (LmTrainer, the verbalizer's teacher-forced pass) pad
// the rows of their logits to (LmActivations::logits_padding): 64 entries
// are 128 bytes of bf16, past any GEMM kernel's alignment requirement.
constexpr index_t kAlignedLogitsPadding = 64;

inline const char* flavour_name(Flavour f) {
  return f == Flavour::Gpt2 ? "gpt2" : "llama";
}
inline Flavour parse_flavour(const std::string& s) {
  if (s == "gpt2") return Flavour::Gpt2;
  if (s == "llama") return Flavour::Llama;
  NLA_FAIL("parse_flavour", "unknown flavour '{}' (expected gpt2 or llama)", s);
}

struct TransformerConfig {
  Flavour flavour = Flavour::Gpt2;
  index_t vocab_size = 512;
  index_t context_length = 64;  // longest sequence (learned positions / RoPE table)
  index_t d_model = 128;
  index_t n_layers = 4;
  index_t n_heads = 4;
  index_t n_kv_heads = 0;  // 0: same as n_heads
  index_t d_ff = 0;        // 0: 4 d (Gpt2) or 8d/3 rounded up to a multiple of 32 (Llama)
  double norm_eps = 1e-5;
  double rope_theta = 10000.0;
  bool tied_embeddings = true;  // Llama usually false
  bool attention_bias = true;   // bias on the q/k/v projection (Gpt2, Qwen2)
  bool projection_bias = true;  // bias on attention output and MLP (Gpt2)

  static TransformerConfig gpt2(index_t vocab, index_t context, index_t d, index_t layers,
                                index_t heads) {
    TransformerConfig c;
    c.flavour = Flavour::Gpt2;
    c.vocab_size = vocab;
    c.context_length = context;
    c.d_model = d;
    c.n_layers = layers;
    c.n_heads = heads;
    return c.resolved();
  }
  static TransformerConfig llama(index_t vocab, index_t context, index_t d, index_t layers,
                                 index_t heads, index_t kv_heads) {
    TransformerConfig c;
    c.flavour = Flavour::Llama;
    c.vocab_size = vocab;
    c.context_length = context;
    c.d_model = d;
    c.n_layers = layers;
    c.n_heads = heads;
    c.n_kv_heads = kv_heads;
    c.tied_embeddings = false;
    c.attention_bias = false;
    c.projection_bias = false;
    return c.resolved();
  }

  index_t kv_heads() const { return n_kv_heads ? n_kv_heads : n_heads; }
  index_t head_dim() const { return d_model / n_heads; }
  index_t ff_dim() const {
    if (d_ff) return d_ff;
    return flavour == Flavour::Gpt2 ? 4 * d_model : (8 * d_model / 3 + 31) / 32 * 32;
  }

  // Fills defaults and checks consistency; every constructor path calls it.
  TransformerConfig resolved() const {
    TransformerConfig c = *this;
    c.n_kv_heads = kv_heads();
    c.d_ff = ff_dim();
    const char* op = "TransformerConfig";
    NLA_CHECK(c.vocab_size > 0 && c.context_length > 0 && c.n_layers > 0, op,
              "vocab_size {}, context_length {}, n_layers {} must be positive", c.vocab_size,
              c.context_length, c.n_layers);
    NLA_CHECK(c.n_heads > 0 && c.d_model % c.n_heads == 0, op,
              "d_model {} is not divisible by n_heads {}", c.d_model, c.n_heads);
    NLA_CHECK(c.n_heads % c.n_kv_heads == 0, op, "n_heads {} is not a multiple of n_kv_heads {}",
              c.n_heads, c.n_kv_heads);
    NLA_CHECK(c.flavour == Flavour::Gpt2 || c.head_dim() % 2 == 0, op,
              "rotary embeddings need an even head_dim, got {}", c.head_dim());
    NLA_CHECK(c.norm_eps > 0, op, "norm_eps must be positive, got {}", c.norm_eps);
    return c;
  }

  bool operator==(const TransformerConfig& o) const {
    return flavour == o.flavour && vocab_size == o.vocab_size &&
           context_length == o.context_length && d_model == o.d_model && n_layers == o.n_layers &&
           n_heads == o.n_heads && kv_heads() == o.kv_heads() && ff_dim() == o.ff_dim() &&
           norm_eps == o.norm_eps && rope_theta == o.rope_theta &&
           tied_embeddings == o.tied_embeddings && attention_bias == o.attention_bias &&
           projection_bias == o.projection_bias;
  }
  bool operator!=(const TransformerConfig& o) const { return !(*this == o); }
};

}  // namespace nla
