#pragma once
// TransformerLM<Backend, T>: a decoder-only language model, GPT-2 or Llama
// flavour, with an explicit forward/backward pass (no tape).
//
//   stream[0]     = embed(tokens) (+ positions)          [batch, t, d]
//   stream[k + 1] = block_k(stream[k])                    k < n_layers
//   logits        = head(final_norm(stream[L]))          [batch, t, vocab]
//                   (rows optionally padded: LmActivations::logits_padding)
//
// Forward state lives in an LmActivations the caller owns (one per concurrent
// forward); it grows to the largest batch seen and is reused, so a training
// step allocates nothing once warm. Residual-stream hooks (nn/hooks.hpp) read
// or write any stream index on the way; forward_stream stops after any number
// of blocks (the reconstructor's truncated model). After a backward pass
// `activations.dresidual` holds d loss / d stream[0], the gradient with
// respect to the input embeddings.

#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "nla/core/check.hpp"
#include "nla/core/random.hpp"
#include "nla/nn/config.hpp"
#include "nla/nn/hooks.hpp"
#include "nla/nn/transformer_block.hpp"
#include "nla/ops/cross_entropy.hpp"
#include "nla/ops/embedding.hpp"

namespace nla {

template <class T, class B>
struct LmActivations {
  index_t batch = 0, time = 0, blocks_run = 0;
  bool has_loss = false;
  Tensor<std::int32_t, B> tokens, positions, targets;  // [batch * t]
  std::vector<Tensor<T, B>> streams;                   // n_layers + 1 of [batch, t, d]
  std::vector<BlockCache<T, B>> blocks;
  Tensor<std::int32_t, B> last_rows;  // [batch], forward_last's gather
  Tensor<T, B> last_stream;           // [batch, 1, d], forward_last's final stream rows
  Tensor<T, B> final_normed;          // [batch, t, d]
  NormCache<T, B> final_norm;
  Tensor<T, B> logits;  // [batch, t, logits_stride]; dlogits after backward
  // Each row of logits is padded to a multiple of logits_padding entries
  // (1: no padding), of which the first vocab_size are the logits and the
  // rest is left undefined and never read by the model. With a vocabulary of 50257 the projection's
  // output rows (and the backward's input rows) would start at unaligned addresses, which leaves
  // cuBLASLt only its slow unaligned kernels; padded to 50304 they are 64-entry aligned. A caller
  // who sets it reads forward()'s logits as [batch, t, logits_stride] (LmTrainer does; loss() and
  // backward() handle either layout).
  index_t logits_padding = 1;
  index_t logits_stride = 0;
  Tensor<accum_t<T>, B> row_loss, lse, dloss;  // [batch * t]
  Tensor<T, B> dresidual;                      // [batch, t, d]
};

template <class B, class T>
class TransformerLM {
 public:
  using Activations = LmActivations<T, B>;
  using HookList = Hooks<T, B>;

  explicit TransformerLM(const TransformerConfig& config, std::uint64_t seed = 0)
      : config_(config.resolved()) {
    const auto& c = config_;
    const bool gpt2 = c.flavour == Flavour::Gpt2;
    token_embedding_ = params_.add(gpt2 ? "transformer.wte.weight" : "model.embed_tokens.weight",
                                   Shape{c.vocab_size, c.d_model}, true);
    if (gpt2)
      position_embedding_ =
          params_.add("transformer.wpe.weight", Shape{c.context_length, c.d_model}, true);
    for (index_t l = 0; l < c.n_layers; ++l) {
      first_parameter_of_block_.push_back(params_.count());
      blocks_.emplace_back(params_, c, l);
    }
    first_parameter_of_block_.push_back(params_.count());
    final_norm_ = Norm<B, T>(params_, gpt2 ? "transformer.ln_f" : "model.norm", c.d_model,
                             gpt2 ? NormKind::LayerNorm : NormKind::RmsNorm, c.norm_eps);
    head_ = c.tied_embeddings ? token_embedding_
                              : params_.add("lm_head.weight", Shape{c.vocab_size, c.d_model}, true);
    params_.allocate();
    if (!gpt2) rope_ = RopeTable<T, B>(backend_, c.context_length, c.head_dim(), c.rope_theta);
    initialize(seed);
  }

  const TransformerConfig& config() const { return config_; }
  ParameterSet<T, B>& parameters() { return params_; }
  const ParameterSet<T, B>& parameters() const { return params_; }
  // The stream and handles the model's kernels run on: an execution
  // resource, not model state, so a const model lends it too (to download its
  // parameters).
  B& backend() const { return backend_; }
  const std::vector<TransformerBlock<B, T>>& blocks() const { return blocks_; }

  // GPT-2 initialisation: N(0, 0.02) weights, residual output projections
  // scaled by 1/sqrt(2 L) so the stream's variance does not grow with depth,
  // N(0, 0.01) positions, zero biases, unit norm gains. Parameter i draws from
  // stream i of the seed, so the result does not depend on the backend.
  void initialize(std::uint64_t seed) {
    const Rng rng(seed);
    std::vector<int> residual_outputs;
    for (const auto& b : blocks_) {
      residual_outputs.push_back(b.attention().output_projection().weight_id());
      residual_outputs.push_back(b.mlp().output_projection().weight_id());
    }
    for (int id = 0; id < params_.count(); ++id) {
      const ParameterInfo& info = params_.info(id);
      auto v = params_.value(id);
      const bool is_bias =
          info.name.size() > 5 && info.name.substr(info.name.size() - 5) == ".bias";
      if (is_bias) {
        fill(backend_, v, T(0));
      } else if (info.shape.rank() == 1) {
        fill(backend_, v, T(1));
      } else {
        double std = id == position_embedding_ ? 0.01 : 0.02;
        for (int r : residual_outputs)
          if (r == id) std /= std::sqrt(2.0 * config_.n_layers);
        std::vector<T> host(static_cast<std::size_t>(v.size()));
        for (index_t i = 0; i < v.size(); ++i)
          host[i] = T(std * random_normal(rng.seed(), static_cast<std::uint64_t>(id), i));
        from_host(backend_, v, host.data());
      }
    }
    zero_grad();
  }

  void zero_grad() { zero(backend_, params_.grads()); }

  // tokens: [batch, t]. Runs embeddings and the first `n_blocks` blocks and
  // returns stream[n_blocks]: [batch, t, d].
  TensorView<T, B> forward_stream(ConstView<std::int32_t, B> tokens, index_t n_blocks,
                                  Activations& a, const HookList* hooks = nullptr,
                                  KvCache<T, B>* kv = nullptr) {
    const char* op = "TransformerLM::forward";
    check_rank(tokens, 2, op, "tokens");
    const index_t batch = tokens.shape()[0], t = tokens.shape()[1], n = batch * t;
    const index_t past = kv ? kv->length : 0, d = config_.d_model;
    NLA_CHECK(n_blocks >= 0 && n_blocks <= config_.n_layers, op, "n_blocks {} is outside [0, {}]",
              n_blocks, config_.n_layers);
    NLA_CHECK(t >= 1 && past + t <= config_.context_length, op,
              "tokens {} reach position {}, beyond context_length {}", tokens.shape(), past + t,
              config_.context_length);
    if (hooks)
      for (const auto& h : *hooks) detail::check_hook(backend_, h, n, d, config_.n_layers);
    a.batch = batch;
    a.time = t;
    a.blocks_run = n_blocks;
    a.has_loss = false;
    a.tokens.resize(Shape{n});
    a.positions.resize(Shape{n});
    copy(backend_, a.tokens.view(), tokens.reshape(Shape{n}));
    host_positions_.resize(static_cast<std::size_t>(n));
    for (index_t b = 0; b < batch; ++b)
      for (index_t i = 0; i < t; ++i) host_positions_[b * t + i] = std::int32_t(past + i);
    from_host(backend_, a.positions.view(), host_positions_.data());
    if (a.streams.size() < static_cast<std::size_t>(config_.n_layers + 1)) {
      a.streams.resize(config_.n_layers + 1);
      a.blocks.resize(config_.n_layers);
    }
    for (index_t s = 0; s <= n_blocks; ++s) a.streams[s].resize(Shape{batch, t, d});

    auto x0 = a.streams[0].view();
    embedding_forward(backend_, x0.reshape(Shape{n, d}), a.tokens.view(),
                      params_.value(token_embedding_));
    if (position_embedding_ >= 0)
      embedding_forward(backend_, x0.reshape(Shape{n, d}), a.positions.view(),
                        params_.value(position_embedding_), true);
    apply_hooks_forward(backend_, hooks, 0, x0.reshape(Shape{n, d}));
    for (index_t l = 0; l < n_blocks; ++l) {
      blocks_[l].forward(backend_, params_, a.streams[l + 1].view(), a.streams[l].view(),
                         a.positions.view(), rope(), a.blocks[l], scratch_, kv, l);
      apply_hooks_forward(backend_, hooks, l + 1, a.streams[l + 1].view().reshape(Shape{n, d}));
    }
    if (kv && n_blocks == config_.n_layers) kv->length += t;
    return a.streams[n_blocks].view();
  }

  // tokens: [batch, t] -> logits: [batch, t, vocab] (padded rows: see
  // LmActivations::logits_padding)
  TensorView<T, B> forward(ConstView<std::int32_t, B> tokens, Activations& a,
                           const HookList* hooks = nullptr, KvCache<T, B>* kv = nullptr) {
    set_logits_stride(a);
    auto x = forward_stream(tokens, config_.n_layers, a, hooks, kv);
    return project_to_vocabulary(x, a);
  }

  // tokens: [batch, t] -> logits of each row's last position: [batch, 1, vocab]
  // (padded rows: as forward()).
  // A sampler needs nothing else, and the vocabulary projection is the
  // largest product of a prefill ([batch * t, d] x [d, vocab] otherwise).
  // For t > 1 loss() refuses the result: there is nothing to backpropagate.
  TensorView<T, B> forward_last(ConstView<std::int32_t, B> tokens, Activations& a,
                                const HookList* hooks = nullptr, KvCache<T, B>* kv = nullptr) {
    set_logits_stride(a);
    auto x = forward_stream(tokens, config_.n_layers, a, hooks, kv);
    const index_t batch = a.batch, t = a.time, d = config_.d_model;
    if (t == 1) return project_to_vocabulary(x, a);
    // Row b * t + t - 1 of the [batch * t, d] stream, gathered by the
    // embedding lookup (a row gather on every backend).
    host_positions_.resize(static_cast<std::size_t>(batch));
    for (index_t b = 0; b < batch; ++b) host_positions_[b] = std::int32_t(b * t + t - 1);
    a.last_rows.resize(Shape{batch});
    from_host(backend_, a.last_rows.view(), host_positions_.data());
    a.last_stream.resize(Shape{batch, 1, d});
    embedding_forward(backend_, a.last_stream.view().reshape(Shape{batch, d}), a.last_rows.view(),
                      ConstView<T, B>(x.reshape(Shape{batch * t, d})));
    return project_to_vocabulary(a.last_stream.view(), a);
  }

  // Weighted mean cross-entropy of the last forward's logits against targets
  // ([batch * t] or [batch, t]); weights: [batch * t] or empty. Prepares the
  // backward pass of that mean.
  double loss(Activations& a, ConstView<std::int32_t, B> targets, ConstView<float, B> weights = {},
              std::int32_t ignore_index = -100) {
    const char* op = "TransformerLM::loss";
    const index_t n = a.batch * a.time;
    a.has_loss = false;  // until this loss has been taken: backward() must not run on bad targets
    NLA_CHECK(a.blocks_run == config_.n_layers && a.logits_stride >= config_.vocab_size &&
                  a.logits.size() == n * a.logits_stride,
              op, "call forward (all blocks) before loss");
    NLA_CHECK(targets.size() == n, op, "targets has shape {}, expected {} entries", targets.shape(),
              n);
    a.targets.resize(Shape{n});
    a.row_loss.resize(Shape{n});
    a.lse.resize(Shape{n});
    a.dloss.resize(Shape{n});
    copy(backend_, a.targets.view(), targets.reshape(Shape{n}));
    const double mean = cross_entropy_forward<T>(backend_, a.row_loss.view(), a.lse.view(),
                                                 a.logits.view().reshape(Shape{n, a.logits_stride}),
                                                 a.targets.view(), weights, ignore_index,
                                                 a.dloss.view(), config_.vocab_size);
    NLA_CHECK(std::isfinite(mean), op, "loss is {} (non-finite logits or weights)", mean);
    ignore_index_ = ignore_index;
    a.has_loss = true;
    return mean;
  }

  // Replaces d objective / d row_loss of the last loss() ([batch * t], host
  // values) for objectives that are not a mean cross-entropy, such as a
  // policy-gradient loss: row_loss[r] = -log p(target[r]), so a caller with
  // d objective / d logp passes its negation. backward() then runs as usual.
  void set_row_loss_gradient(Activations& a, const std::vector<accum_t<T>>& dloss) {
    const char* op = "TransformerLM::set_row_loss_gradient";
    NLA_CHECK(a.has_loss, op, "call loss() first");
    NLA_CHECK(index_t(dloss.size()) == a.batch * a.time, op, "{} gradients for {} rows",
              dloss.size(), a.batch * a.time);
    from_host(backend_, a.dloss.view().slice(0, a.batch * a.time), dloss.data());
  }

  // Backward pass of the last loss(); parameter gradients accumulate. The
  // logits buffer is overwritten with d loss / d logits. on_final hears, top
  // block first, from where on the gradients are final.
  void backward(Activations& a, const HookList* hooks = nullptr,
                const GradientsFinal& on_final = {}) {
    NLA_CHECK(a.has_loss, "TransformerLM::backward", "call loss() after forward() first");
    const index_t n = a.batch * a.time, d = config_.d_model;
    auto dlogits = a.logits.view().reshape(Shape{n, a.logits_stride});
    cross_entropy_backward(backend_, dlogits, a.dloss.view(), a.lse.view(), a.targets.view(),
                           ignore_index_, config_.vocab_size);
    // d(final_normed) reuses the final_normed-sized branch scratch.
    scratch_.branch.resize(Shape{n, d});
    linear_backward(backend_, scratch_.branch.view(), params_.grad(head_), TensorView<T, B>(),
                    ConstView<T, B>(dlogits), a.final_normed.view().reshape(Shape{n, d}),
                    params_.value(head_));
    a.dresidual.resize(Shape{a.batch, a.time, d});
    zero(backend_, a.dresidual.view());
    final_norm_.backward(backend_, params_, a.dresidual.view(), scratch_.branch.view(),
                         a.streams[config_.n_layers].view(), a.final_norm);
    a.has_loss = false;
    backward_blocks(a, hooks, config_.n_layers, on_final);
  }

  // Backward pass of forward_stream: dstream is d(something)/d stream[blocks_run].
  void backward_stream(Activations& a, ConstView<T, B> dstream, const HookList* hooks = nullptr,
                       const GradientsFinal& on_final = {}) {
    check_shape(dstream, Shape{a.batch, a.time, config_.d_model}, "TransformerLM::backward_stream",
                "dstream");
    a.dresidual.resize(dstream.shape());
    copy(backend_, a.dresidual.view(), dstream);
    backward_blocks(a, hooks, a.blocks_run, on_final);
  }

  // A KV cache for `batch` sequences of up to `capacity` tokens.
  KvCache<T, B> make_kv_cache(index_t batch, index_t capacity) const {
    NLA_CHECK(capacity <= config_.context_length, "TransformerLM::make_kv_cache",
              "capacity {} exceeds context_length {}", capacity, config_.context_length);
    return KvCache<T, B>(config_.n_layers, batch, capacity,
                         config_.kv_heads() * config_.head_dim());
  }

 private:
  // Checked before the forward pass, which would otherwise have advanced a
  // KV cache by the time a bad padding showed.
  void set_logits_stride(Activations& a) const {
    const index_t v = config_.vocab_size, multiple = a.logits_padding;
    NLA_CHECK(multiple >= 1, "TransformerLM::forward", "logits_padding {} must be at least 1",
              multiple);
    a.logits_stride = (v + multiple - 1) / multiple * multiple;
  }

  // x: [batch, t, d] final stream -> logits [batch, t, logits_stride] in a.logits.
  TensorView<T, B> project_to_vocabulary(TensorView<T, B> x, Activations& a) {
    const index_t batch = x.shape()[0], t = x.shape()[1], n = batch * t, d = config_.d_model;
    a.final_normed.resize(Shape{batch, t, d});
    a.logits.resize(Shape{batch, t, a.logits_stride});
    final_norm_.forward(backend_, params_, a.final_normed.view(), x, a.final_norm);
    linear_forward(backend_, a.logits.view().reshape(Shape{n, a.logits_stride}),
                   a.final_normed.view().reshape(Shape{n, d}), params_.value(head_),
                   TensorView<const T, B>());
    return a.logits.view();
  }

  const RopeTable<T, B>* rope() const {
    return config_.flavour == Flavour::Llama ? &rope_ : nullptr;
  }

  // a.dresidual holds d/d stream[top]; walks blocks top-1 .. 0 and the
  // embeddings. The flat buffer holds [embeddings | block 0 .. L-1 | final
  // norm | untied head], so once block l is done everything from its first
  // parameter on is final (a tied head is the embedding: final at the end).
  void backward_blocks(Activations& a, const HookList* hooks, index_t top,
                       const GradientsFinal& on_final) {
    const index_t n = a.batch * a.time, d = config_.d_model;
    auto dres = a.dresidual.view();
    const auto final_from_block = [&](index_t l) {
      if (on_final) on_final(params_.info(first_parameter_of_block_[std::size_t(l)]).offset);
    };
    final_from_block(top);
    for (index_t l = top - 1; l >= 0; --l) {
      apply_hooks_backward(backend_, hooks, l + 1, dres.reshape(Shape{n, d}));
      blocks_[l].backward(backend_, params_, dres, a.streams[l].view(), a.positions.view(), rope(),
                          a.blocks[l], scratch_);
      final_from_block(l);
    }
    apply_hooks_backward(backend_, hooks, 0, dres.reshape(Shape{n, d}));
    embedding_backward(backend_, params_.grad(token_embedding_), a.tokens.view(),
                       ConstView<T, B>(dres.reshape(Shape{n, d})));
    if (position_embedding_ >= 0)
      embedding_backward(backend_, params_.grad(position_embedding_), a.positions.view(),
                         ConstView<T, B>(dres.reshape(Shape{n, d})));
    if (on_final) on_final(0);
  }

  TransformerConfig config_;
  mutable B backend_;
  ParameterSet<T, B> params_;
  int token_embedding_ = -1, position_embedding_ = -1, head_ = -1;
  std::vector<TransformerBlock<B, T>> blocks_;
  std::vector<int> first_parameter_of_block_;  // [n_layers + 1]: the last is the final norm's
  Norm<B, T> final_norm_;
  RopeTable<T, B> rope_;
  BlockScratch<T, B> scratch_;
  std::vector<std::int32_t> host_positions_;
  std::int32_t ignore_index_ = -100;
};

}  // namespace nla
