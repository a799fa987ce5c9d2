#pragma once
// The reconstructor as the decoder of the generic Autoencoder: each
// explanation is placed in a fixed template,
//   tokens = prefix, explanation content, suffix     (prefix starts with BOS)
// and the reconstructor reads the stream at the template's last token
// (bottleneck/reconstructor.hpp). Sequences of a batch are right-padded;
// causal attention keeps the padding out of every position that is read.
//
// learn() is one AdamW step on the mean normalised MSE of the last
// decode(..., train = true), over the truncated model and the head (each
// clipped to clip_norm on its own). Anchors (set_anchors) are messages with
// known targets, such as true descriptions, added to every training batch:
// they keep the reconstructor reading the plain-English meaning of words,
// which RL alone lets drift into the verbalizer's private dialect.
// Data parallel (set_data_parallel): each rank decodes its slice of the
// messages (and of the anchors); learn() reduces the gradients over ranks
// (dist/data_parallel.hpp) and stats() reports the loss over all ranks.

#include <algorithm>
#include <vector>

#include <nlohmann/json.hpp>

#include "nla/bottleneck/autoencoder.hpp"
#include "nla/bottleneck/explanation.hpp"
#include "nla/bottleneck/reconstructor.hpp"
#include "nla/core/host.hpp"
#include "nla/dist/data_parallel.hpp"
#include "nla/optim/adamw.hpp"

namespace nla {

struct ReconstructorPrompt {
  std::vector<std::int32_t> prefix, suffix;  // around the explanation; prefix starts with BOS
};

struct ReconstructorDecoderOptions {
  AdamWOptions adamw{5e-5, 0.9, 0.95, 1e-8, 0.0};
  double head_lr_multiplier = 1.0;  // the head's lr = adamw.lr * this
  double clip_norm = 1.0;
};

template <class B, class T>
class ReconstructorDecoder {
 public:
  using Message = Explanation;

  ReconstructorDecoder(Reconstructor<B, T>& reconstructor, ReconstructorPrompt prompt,
                       ReconstructorDecoderOptions options = {})
      : ar_(&reconstructor),
        prompt_(std::move(prompt)),
        options_(options),
        optimizer_(reconstructor.model().parameters(), options.adamw),
        head_optimizer_(reconstructor.head_parameters(), options.adamw) {
    NLA_CHECK(!prompt_.prefix.empty() && !prompt_.suffix.empty(), "ReconstructorDecoder",
              "the template needs a prefix (BOS first) and a non-empty suffix to read");
  }

  Reconstructor<B, T>& reconstructor() { return *ar_; }
  ReconstructorDecoderOptions& options() { return options_; }
  AdamW<B, T>& optimizer() { return optimizer_; }
  AdamW<B, T>& head_optimizer() { return head_optimizer_; }

  void set_data_parallel(const DataParallel& data_parallel) {
    data_parallel_ = data_parallel;
    auto& backend = ar_->model().backend();
    data_parallel_.adopt(backend, optimizer_, ar_->model().parameters());
    data_parallel_.adopt(backend, head_optimizer_, ar_->head_parameters());
  }
  const DataParallel& data_parallel() const { return data_parallel_; }

  // Messages with targets ([m, d]) added to every training batch.
  void set_anchors(std::vector<Explanation> messages, std::vector<float> targets) {
    NLA_CHECK(index_t(targets.size()) == index_t(messages.size()) * ar_->dim(),
              "ReconstructorDecoder::set_anchors", "{} targets for {} anchors of d = {}",
              targets.size(), messages.size(), ar_->dim());
    anchors_ = std::move(messages);
    anchor_targets_ = std::move(targets);
  }

  // Predictions and errors for m messages against targets [m, d].
  DecoderFeedback decode(const std::vector<Explanation>& messages,
                         const std::vector<float>& targets, bool train) {
    const char* op = "ReconstructorDecoder::decode";
    const index_t m = index_t(messages.size()), d = ar_->dim();
    NLA_CHECK(m > 0 && index_t(targets.size()) == m * d, op, "{} targets for {} messages of d = {}",
              targets.size(), m, d);
    std::vector<const Explanation*> all;
    for (const auto& e : messages) all.push_back(&e);
    std::vector<float> all_targets = targets;
    if (train && !anchors_.empty()) {
      for (const auto& e : anchors_) all.push_back(&e);
      all_targets.insert(all_targets.end(), anchor_targets_.begin(), anchor_targets_.end());
    }
    pack(all);
    ar_->forward(tokens_.view(), read_, cache_);
    loss_ = ar_->loss(cache_, all_targets);
    has_step_ = train;
    DecoderFeedback f;
    const auto p = to_host(ar_->model().backend(), ConstView<T, B>(cache_.pred.view()));
    f.predictions.resize(static_cast<std::size_t>(m * d));
    for (index_t i = 0; i < m * d; ++i) f.predictions[i] = float(p.data()[i]);
    f.error.assign(cache_.row_mse.begin(), cache_.row_mse.begin() + m);
    return f;
  }

  // The reconstructions [m, d] of m messages: no targets, no training
  // (`nla reconstruct`, steering directions from edited explanations).
  std::vector<float> reconstruct(const std::vector<Explanation>& messages) {
    NLA_CHECK(!messages.empty(), "ReconstructorDecoder::reconstruct", "no messages");
    std::vector<const Explanation*> all;
    for (const auto& e : messages) all.push_back(&e);
    pack(all);
    ar_->forward(tokens_.view(), read_, cache_);
    has_step_ = false;
    const auto p = to_host(ar_->model().backend(), ConstView<T, B>(cache_.pred.view()));
    std::vector<float> out(static_cast<std::size_t>(p.size()));
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = float(p.data()[i]);
    return out;
  }

  void learn() {
    NLA_CHECK(has_step_, "ReconstructorDecoder::learn", "call decode(..., train = true) first");
    has_step_ = false;
    // The loss was agreed on in decode(); ranks hold equal slices, so each
    // gradient weighs 1 / size. The model's buckets leave during the
    // backward pass, the head's (small) after it.
    auto& backend = ar_->model().backend();
    const double lr = options_.adamw.lr, share = 1.0 / data_parallel_.size();
    ar_->zero_grad();
    data_parallel_.backward_and_reduce(
        backend, ar_->model().parameters(), share,
        [&](const GradientsFinal& on_final) { ar_->backward(cache_, on_final); });
    data_parallel_.backward_and_reduce(backend, ar_->head_parameters(), share,
                                       [](const GradientsFinal&) {});
    grad_norm_ = data_parallel_.apply(backend, ar_->model().parameters(), optimizer_, lr,
                                      options_.clip_norm);
    head_grad_norm_ = data_parallel_.apply(backend, ar_->head_parameters(), head_optimizer_,
                                           lr * options_.head_lr_multiplier, options_.clip_norm);
    learned_loss_ = data_parallel_.sum({loss_ / data_parallel_.size()})[0];
  }

  // Of the last learn(): the loss over all ranks' batches.
  nlohmann::json stats() const {
    return {
        {"loss", learned_loss_}, {"grad_norm", grad_norm_}, {"head_grad_norm", head_grad_norm_}};
  }

 private:
  // tokens_: [m, t], right-padded with BOS; read_[i]: the last template token.
  void pack(const std::vector<const Explanation*>& messages) {
    const index_t m = index_t(messages.size());
    std::vector<std::vector<std::int32_t>> seqs(static_cast<std::size_t>(m));
    index_t t = 0;
    read_.assign(static_cast<std::size_t>(m), 0);
    for (index_t i = 0; i < m; ++i) {
      auto& s = seqs[i];
      s = prompt_.prefix;
      const auto content = messages[i]->content();
      s.insert(s.end(), content.begin(), content.end());
      s.insert(s.end(), prompt_.suffix.begin(), prompt_.suffix.end());
      NLA_CHECK(index_t(s.size()) <= ar_->model().config().context_length,
                "ReconstructorDecoder::decode",
                "message {} needs {} template tokens, more than the context of {}", i, s.size(),
                ar_->model().config().context_length);
      read_[i] = index_t(s.size()) - 1;
      t = std::max(t, index_t(s.size()));
    }
    std::vector<std::int32_t> flat(static_cast<std::size_t>(m * t), prompt_.prefix[0]);
    for (index_t i = 0; i < m; ++i) std::copy(seqs[i].begin(), seqs[i].end(), flat.begin() + i * t);
    tokens_.resize(Shape{m, t});
    from_host(ar_->model().backend(), tokens_.view(), flat.data());
  }

  Reconstructor<B, T>* ar_;
  ReconstructorPrompt prompt_;
  ReconstructorDecoderOptions options_;
  AdamW<B, T> optimizer_, head_optimizer_;
  typename Reconstructor<B, T>::Cache cache_;
  Tensor<std::int32_t, B> tokens_;
  std::vector<index_t> read_;
  std::vector<Explanation> anchors_;
  std::vector<float> anchor_targets_;
  DataParallel data_parallel_;
  double loss_ = 0, learned_loss_ = 0, grad_norm_ = 0, head_grad_norm_ = 0;
  bool has_step_ = false;
};

}  // namespace nla
