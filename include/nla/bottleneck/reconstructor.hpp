#pragma once
// The activation reconstructor (AR): rebuilds an activation from text alone.
//   h      = stream[K + 1] of the first K + 1 blocks of the target model, at
//            the last token of a template around the explanation   [batch, d]
//   p      = h W^T,  W: [d, d] without bias, initialised to the identity
//   loss   = mean_b (1/d) || sqrt(d) p_b/|p_b| - sqrt(d) g_b/|g_b| ||^2
//          = mean_b 2 (1 - cos(p_b, g_b))
// so the loss, and the RL reward computed from it, depend only on direction.
// d loss / d p_b = -(2 / batch) (g_b / (|p_b||g_b|) - (p_b . g_b) p_b / (|p_b|^3 |g_b|))
//
// The truncated model is a TransformerLM of K + 1 layers whose parameters
// are copied by name from the target. Its final norm and (untied) LM head
// stay registered but unused: they get no gradient. The head lives in a
// ParameterSet of its own, so it can take its own learning rate.

#include <cmath>
#include <vector>

#include "nla/core/host.hpp"
#include "nla/metrics/reconstruction.hpp"
#include "nla/nn/linear.hpp"
#include "nla/nn/transformer_lm.hpp"

namespace nla {

template <class T, class B>
struct ReconstructorCache {
  LmActivations<T, B> lm;
  std::vector<index_t> read;    // [batch] position read in each sequence
  Tensor<T, B> hidden, pred;    // [batch, d]
  Tensor<T, B> dpred, dhidden;  // [batch, d]
  Tensor<T, B> dstream;         // [batch, t, d]
  std::vector<double> row_mse;  // [batch] 2 (1 - cos) of the last loss()
};

template <class B, class T>
class Reconstructor {
 public:
  using Cache = ReconstructorCache<T, B>;

  // blocks = K + 1 reads the output of block K (hidden_states[K + 1]).
  Reconstructor(const TransformerLM<B, T>& target, index_t blocks)
      : Reconstructor(TransformerLM<B, T>(truncated(target.config(), blocks))) {
    copy_parameters_by_name(lm_.backend(), lm_.parameters(), target.parameters());
    const index_t d = target.config().d_model;
    std::vector<T> eye(static_cast<std::size_t>(d * d), T(0));
    for (index_t i = 0; i < d; ++i) eye[i * d + i] = T(1);
    from_host(lm_.backend(), head_params_.value(head_.weight_id()), eye.data());
  }

  // A reconstructor from its parts: the truncated model (all its blocks are
  // read) and the head's weight [d, d] (save_nla_release wrote them, say).
  static Reconstructor from_parts(TransformerLM<B, T>&& truncated_model,
                                  const std::vector<T>& head_weight) {
    const index_t d = truncated_model.config().d_model;
    NLA_CHECK(index_t(head_weight.size()) == d * d, "Reconstructor::from_parts",
              "head weight has {} values, expected d * d = {}", head_weight.size(), d * d);
    Reconstructor r(std::move(truncated_model));
    from_host(r.lm_.backend(), r.head_params_.value(r.head_.weight_id()), head_weight.data());
    return r;
  }

  TransformerLM<B, T>& model() { return lm_; }
  const TransformerLM<B, T>& model() const { return lm_; }
  ParameterSet<T, B>& head_parameters() { return head_params_; }
  const ParameterSet<T, B>& head_parameters() const { return head_params_; }
  // The head's weight [d, d] (y = W h).
  TensorView<const T, B> head_weight() const { return head_params_.value(head_.weight_id()); }
  index_t blocks() const { return lm_.config().n_layers; }
  index_t dim() const { return lm_.config().d_model; }

  // tokens: [batch, t]; read[b]: the position whose stream is read (the
  // template's last real token). Returns predictions [batch, d].
  TensorView<T, B> forward(ConstView<std::int32_t, B> tokens, const std::vector<index_t>& read,
                           Cache& c) {
    const char* op = "Reconstructor::forward";
    check_rank(tokens, 2, op, "tokens");
    const index_t batch = tokens.shape()[0], t = tokens.shape()[1], d = dim();
    NLA_CHECK(index_t(read.size()) == batch, op, "{} read positions for {} sequences", read.size(),
              batch);
    for (index_t b = 0; b < batch; ++b)
      NLA_CHECK(read[b] >= 0 && read[b] < t, op, "read[{}] = {} is outside [0, {})", b, read[b], t);
    c.read = read;
    auto stream = lm_.forward_stream(tokens, blocks(), c.lm);
    c.hidden.resize(Shape{batch, d});
    c.pred.resize(Shape{batch, d});
    for (index_t b = 0; b < batch; ++b)
      copy_rows(lm_.backend(), c.hidden.data() + b * d, d, stream.data() + (b * t + read[b]) * d, d,
                1, d);
    head_.forward(lm_.backend(), head_params_, c.pred.view(), c.hidden.view());
    return c.pred.view();
  }

  // Mean normalised MSE against targets (host, [batch, d] row-major floats);
  // prepares the backward pass. Per-row values are left in c.row_mse.
  double loss(Cache& c, const std::vector<float>& targets) {
    const char* op = "Reconstructor::loss";
    const index_t batch = c.pred.shape()[0], d = dim();
    NLA_CHECK(index_t(targets.size()) == batch * d, op, "targets hold {} values, expected {} x {}",
              targets.size(), batch, d);
    const auto p = to_host(lm_.backend(), ConstView<T, B>(c.pred.view()));
    std::vector<float> pf(static_cast<std::size_t>(d));
    std::vector<T> grad(static_cast<std::size_t>(batch * d));
    c.row_mse.assign(static_cast<std::size_t>(batch), 0.0);
    double total = 0;
    for (index_t b = 0; b < batch; ++b) {
      const T* pb = p.data() + b * d;
      const float* gb = targets.data() + b * d;
      double pp = 0, gg = 0, pg = 0;
      for (index_t j = 0; j < d; ++j) {
        pp += double(pb[j]) * double(pb[j]);
        gg += double(gb[j]) * double(gb[j]);
        pg += double(pb[j]) * double(gb[j]);
      }
      NLA_CHECK(gg > 0 && std::isfinite(gg), op, "target {} has norm {} (zero or not finite)", b,
                std::sqrt(gg));
      NLA_CHECK(pp > 0 && std::isfinite(pp), op, "prediction {} has norm {}", b, std::sqrt(pp));
      const double np = std::sqrt(pp), ng = std::sqrt(gg), cos = pg / (np * ng);
      c.row_mse[b] = 2.0 * (1.0 - cos);
      total += c.row_mse[b];
      const double k = -2.0 / double(batch);
      for (index_t j = 0; j < d; ++j)
        grad[b * d + j] = T(k * (gb[j] / (np * ng) - pg * double(pb[j]) / (pp * np * ng)));
    }
    c.dpred.resize(c.pred.shape());
    from_host(lm_.backend(), c.dpred.view(), grad.data());
    return total / double(batch);
  }

  // Accumulates gradients of the last loss() into the truncated model's and
  // the head's parameters; on_final hears about the model's flat buffer.
  void backward(Cache& c, const GradientsFinal& on_final = {}) {
    const index_t batch = c.pred.shape()[0], d = dim(), t = c.lm.time;
    c.dhidden.resize(Shape{batch, d});
    head_.backward(lm_.backend(), head_params_, c.dhidden.view(), c.dpred.view(), c.hidden.view());
    c.dstream.resize(Shape{batch, t, d});
    zero(lm_.backend(), c.dstream.view());
    for (index_t b = 0; b < batch; ++b)
      copy_rows(lm_.backend(), c.dstream.data() + (b * t + c.read[b]) * d, d,
                static_cast<const T*>(c.dhidden.data() + b * d), d, 1, d);
    lm_.backward_stream(c.lm, c.dstream.view(), nullptr, on_final);
  }

  void zero_grad() {
    lm_.zero_grad();
    zero(lm_.backend(), head_params_.grads());
  }

 private:
  static TransformerConfig truncated(TransformerConfig c, index_t blocks) {
    NLA_CHECK(blocks >= 1 && blocks <= c.n_layers, "Reconstructor",
              "blocks {} is outside [1, {}] of the target", blocks, c.n_layers);
    c.n_layers = blocks;
    return c;
  }

  // Registers the head [d, d] beside the model; its values are the caller's.
  explicit Reconstructor(TransformerLM<B, T>&& lm) : lm_(std::move(lm)) {
    const index_t d = lm_.config().d_model;
    head_ = Linear<B, T>(head_params_, "reconstructor.head", d, d, false);
    head_params_.allocate();
  }

  TransformerLM<B, T> lm_;
  ParameterSet<T, B> head_params_;
  Linear<B, T> head_;
};

}  // namespace nla
