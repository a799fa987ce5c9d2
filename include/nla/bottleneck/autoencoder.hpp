#pragma once
// The generic autoencoder: an encoder turns each activation into a message,
// a decoder turns each message back into a vector, and one training step and
// one evaluation serve every bottleneck: free text (the NLA), restricted or
// length-limited text, a noisy channel, and the non-text baselines (PCA,
// top-k sparse autoencoder) on the same metrics.
//
// Encoder concept (E):
//   using Message = ...;                   // what crosses the bottleneck
//   index_t samples_per_activation() const;  // G messages per activation when training
//   std::vector<Message> encode(const ActivationBatch& batch, bool train);
//       // train: G messages per activation, activation-major ([n * G]);
//       // evaluation: exactly one per activation ([n])
//   void learn(const ActivationBatch& batch, const std::vector<Message>& messages,
//              const DecoderFeedback& feedback);   // one update from the decoder's verdict
//   nlohmann::json stats() const;          // what the last learn() measured (for logs)
//
// Decoder concept (D), for the same Message:
//   DecoderFeedback decode(const std::vector<Message>& messages, const std::vector<float>& targets,
//                          bool train);   // targets: [m, d]; train: keep what learn() needs
//   void learn();                          // one update from the last decode(..., true)
//   nlohmann::json stats() const;
//
// Order within a step follows the release: the encoder's reward comes from
// the live decoder *before* the decoder trains on the same messages.
//
// Data parallel (set_data_parallel): the batch of step() is this rank's
// slice; encoding and decoding are local work, agreed on by every rank
// before anyone learns (a bad batch on one rank stops all of them), and the
// step's error and FVE are over all ranks. Encoders and decoders that train
// data-parallel (the verbalizer's, the reconstructor's) are handed the same
// DataParallel; the others must then run on one rank.
//
// Every error is the normalised MSE of metrics/reconstruction.hpp,
// 2 (1 - cos(p, g)), so FVE = 1 - mean(error) / B is comparable across
// bottlenecks; B comes from the training split (FveBaseline).

#include <chrono>
#include <cmath>
#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

#include "nla/core/error.hpp"
#include "nla/core/shape.hpp"
#include "nla/dist/data_parallel.hpp"
#include "nla/metrics/reconstruction.hpp"

namespace nla {

// n activations, host row-major [n, d], with their dataset rows (JSONL
// records, may be null) for encoders that need context such as summaries.
struct ActivationBatch {
  index_t dim = 0;
  std::vector<float> vectors;               // [n, d]
  std::vector<const nlohmann::json*> rows;  // [n] or empty

  index_t size() const { return dim > 0 ? index_t(vectors.size()) / dim : 0; }
  const float* row(index_t i) const { return vectors.data() + i * dim; }

  void check(const char* op) const {
    NLA_CHECK(dim > 0 && !vectors.empty() && index_t(vectors.size()) % dim == 0, op,
              "batch of {} values is not a non-empty set of rows of d = {}", vectors.size(), dim);
    NLA_CHECK(rows.empty() || index_t(rows.size()) == size(), op,
              "{} rows of context for {} activations", rows.size(), size());
    for (std::size_t i = 0; i < vectors.size(); ++i)
      NLA_CHECK(std::isfinite(vectors[i]), op, "activation {} has a non-finite value at {}",
                index_t(i) / dim, index_t(i) % dim);
  }
};

// What the decoder reports for m messages.
struct DecoderFeedback {
  std::vector<float> predictions;  // [m, d]
  std::vector<double> error;       // [m] normalised MSE 2 (1 - cos)
  // d (the decoder's training loss) / d message values, for encoders with
  // differentiable messages (the sparse autoencoder); layout: the message type's.
  std::vector<float> dmessage;
};

// Targets of a step: each activation repeated G times, matching
// encode(..., train = true)'s activation-major order.
inline std::vector<float> repeat_rows(const ActivationBatch& batch, index_t times) {
  std::vector<float> out;
  out.reserve(batch.vectors.size() * std::size_t(times));
  for (index_t i = 0; i < batch.size(); ++i)
    for (index_t g = 0; g < times; ++g)
      out.insert(out.end(), batch.row(i), batch.row(i) + batch.dim);
  return out;
}

// Per-row normalised MSE of predictions against targets, both [m, d].
inline std::vector<double> normalized_mse_rows(const std::vector<float>& predictions,
                                               const std::vector<float>& targets, index_t d) {
  NLA_CHECK(predictions.size() == targets.size() && d > 0 && index_t(targets.size()) % d == 0,
            "normalized_mse_rows", "{} predictions and {} targets are not rows of d = {}",
            predictions.size(), targets.size(), d);
  std::vector<double> e(targets.size() / std::size_t(d));
  for (std::size_t i = 0; i < e.size(); ++i)
    e[i] = normalized_mse(predictions.data() + i * std::size_t(d),
                          targets.data() + i * std::size_t(d), std::size_t(d));
  return e;
}

struct AutoencoderStep {
  double mse_nrm = 0;  // mean error over the step's messages
  double fve = 0;      // 1 - mse_nrm / B
  index_t messages = 0;
  nlohmann::json encoder, decoder;  // their stats() after learning
  // Wall-clock seconds per phase.
  double encode_s = 0, decode_s = 0, encoder_learn_s = 0, decoder_learn_s = 0;
};

struct AutoencoderEvaluation {
  double mse_nrm = 0, cosine = 0, fve = 0;
  std::vector<double> error;  // [n] per activation
  index_t count = 0;
};

template <class Encoder, class Decoder>
class Autoencoder {
 public:
  using Message = typename Encoder::Message;

  // baseline: B of the training split (FveBaseline::baseline()).
  Autoencoder(Encoder& encoder, Decoder& decoder, double baseline)
      : encoder_(&encoder), decoder_(&decoder), baseline_(baseline) {
    NLA_CHECK(baseline > 0 && std::isfinite(baseline), "Autoencoder",
              "FVE baseline B = {} must be positive", baseline);
  }

  Encoder& encoder() { return *encoder_; }
  Decoder& decoder() { return *decoder_; }
  double baseline() const { return baseline_; }

  void set_data_parallel(const DataParallel& data_parallel) {
    data_parallel_ = data_parallel;
    encoder_->set_data_parallel(data_parallel);
    decoder_->set_data_parallel(data_parallel);
  }
  const DataParallel& data_parallel() const { return data_parallel_; }

  // One joint step: encode (G per activation), decode against the repeated
  // targets, the encoder learns from that feedback, then the decoder learns.
  AutoencoderStep step(const ActivationBatch& batch) {
    using Clock = std::chrono::steady_clock;
    const auto seconds = [](Clock::time_point a, Clock::time_point b) {
      return std::chrono::duration<double>(b - a).count();
    };
    const auto t0 = Clock::now();
    Clock::time_point t1;
    std::vector<Message> messages;
    DecoderFeedback feedback;
    data_parallel_.run_local("Autoencoder::step", [&] {
      batch.check("Autoencoder::step");
      messages = encoder_->encode(batch, true);
      const index_t g = encoder_->samples_per_activation();
      NLA_CHECK(index_t(messages.size()) == batch.size() * g, "Autoencoder::step",
                "the encoder returned {} messages for {} activations x {} samples", messages.size(),
                batch.size(), g);
      t1 = Clock::now();
      feedback = decoder_->decode(messages, repeat_rows(batch, g), true);
    });
    const auto t2 = Clock::now();
    encoder_->learn(batch, messages, feedback);
    const auto t3 = Clock::now();
    decoder_->learn();
    const auto t4 = Clock::now();
    AutoencoderStep s;
    s.encode_s = seconds(t0, t1);
    s.decode_s = seconds(t1, t2);
    s.encoder_learn_s = seconds(t2, t3);
    s.decoder_learn_s = seconds(t3, t4);
    s.messages = index_t(messages.size());
    for (double e : feedback.error) s.mse_nrm += e / double(feedback.error.size());
    s.mse_nrm = data_parallel_.sum({s.mse_nrm / data_parallel_.size()})[0];
    s.fve = fraction_of_variance_explained(s.mse_nrm, baseline_);
    s.encoder = encoder_->stats();
    s.decoder = decoder_->stats();
    return s;
  }

  // One message per activation, no learning.
  AutoencoderEvaluation evaluate(const ActivationBatch& batch) {
    batch.check("Autoencoder::evaluate");
    const std::vector<Message> messages = encoder_->encode(batch, false);
    NLA_CHECK(index_t(messages.size()) == batch.size(), "Autoencoder::evaluate",
              "the encoder returned {} messages for {} activations", messages.size(), batch.size());
    const DecoderFeedback feedback = decoder_->decode(messages, batch.vectors, false);
    AutoencoderEvaluation r;
    r.count = batch.size();
    r.error = feedback.error;
    for (index_t i = 0; i < r.count; ++i) {
      r.mse_nrm += r.error[i] / double(r.count);
      r.cosine += (1.0 - r.error[i] / 2.0) / double(r.count);
    }
    r.fve = fraction_of_variance_explained(r.mse_nrm, baseline_);
    return r;
  }

 private:
  Encoder* encoder_;
  Decoder* decoder_;
  double baseline_;
  DataParallel data_parallel_;
};

}  // namespace nla
