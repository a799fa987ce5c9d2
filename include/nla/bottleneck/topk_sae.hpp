#pragma once
// A top-k sparse autoencoder (SAE), the second non-text baseline: the message
// is k (feature, value) pairs out of a dictionary of `width` learned
// directions. It answers "how much of an activation do k numbers keep when
// they may pick their own directions per activation?" on the NLA's metric.
//
// On the normalised activation v_n = sqrt(d) v / |v| (v: [d]):
//   z  = TopK_k(ReLU(W_enc (v_n - b_dec) + b_enc))    W_enc: [width, d], b_enc: [width]
//   v^ = W_dec z + b_dec                               W_dec: [d, width], b_dec: [d]
// TopK_k keeps the k largest entries and zeroes the rest; the message is
// their indices and values (strongest first, the lower index first on a tie).
//
// What it trains is the plain squared error of the normalised vector,
//   L = mean over the m rows of (1/d) || v^ - v_n ||^2,
// the usual SAE loss and a smooth one; the feedback's `error` (and so the
// reported FVE) is still normalized_mse(v^, v) = 2 (1 - cos), like every
// bottleneck's. The two agree to first order when v^ is close to v_n.
//
// The split between the halves is the Encoder/Decoder concept's
// differentiable-message path (bottleneck/autoencoder.hpp):
//   TopKSaeDecoder::decode(train)  dL/dv^ = 2 (v^ - v_n) / (m d)          [m, d]
//                                  dL/dvalue_j = W_dec[:, i_j] . dL/dv^   -> dmessage [m, k]
//                                  dL/dW_dec[:, i_j] += value_j dL/dv^,  dL/db_dec += dL/dv^
//   TopKSaeEncoder::learn()        straight through the top-k: a selected unit i_j with
//                                  pre-activation > 0 gets g_i = dL/dvalue_j, others 0;
//                                  dL/dW_enc[i, :] += g_i x,  dL/db_enc[i] += g_i,
//                                  dL/db_dec -= W_enc^T g      (x = v_n - b_dec uses b_dec)
// Autoencoder::step calls the encoder's learn() before the decoder's, so the
// encoder's share of dL/db_dec is in the decoder's gradient when it updates.
// Each half then takes one Adam step on its own parameters.
//
// After each decoder step the columns of W_dec are rescaled to unit norm.
// Without it the loss is unchanged by W_dec[:, i] *= s, z_i /= s, so the
// top-k, which compares z values, could be won by shrinking a column and
// growing its encoder row; with unit columns z_i is feature i's actual
// contribution to v^, and W_enc = W_dec^T is a meaningful start.
//
// Initialisation: W_dec columns are unit random directions, Philox normal
// draws (seed, stream 0, index i d + j) normalised; W_enc = W_dec^T;
// b_enc = 0; b_dec = 0 unless set_bias() gives it the data mean (Gao et al.
// start b_dec at the geometric median; the mean of the normalised training
// vectors, FveBaseline::mean(), is the cheap stand-in).
//
// T is float for use and double for the gradient check. Parameters,
// gradients and Adam moments are flat host arrays; the one dense product,
// W_enc x for a whole batch, is the Cpu backend's gemm, and the sparse rest
// (k of `width` features per row) plain loops.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "nla/backend/cpu/cpu.hpp"
#include "nla/backend/cpu/gemm.hpp"
#include "nla/bottleneck/autoencoder.hpp"
#include "nla/core/error.hpp"
#include "nla/core/random.hpp"
#include "nla/core/shape.hpp"

namespace nla {

struct TopKSaeOptions {
  index_t dim = 0;    // d
  index_t width = 0;  // dictionary size (features)
  index_t k = 0;      // active features per activation
  double lr = 1e-3;   // Adam, both halves
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  bool unit_norm_decoder = true;
  std::uint64_t seed = 0;

  void check(const char* op) const {
    NLA_CHECK(dim > 0 && width > 0, op, "d = {} and width = {} must be positive", dim, width);
    NLA_CHECK(k > 0 && k <= width, op, "k = {} must be in [1, width = {}]", k, width);
    NLA_CHECK(std::isfinite(lr) && lr >= 0, op, "learning rate {} must be finite and >= 0", lr);
    NLA_CHECK(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1 && eps > 0, op,
              "Adam betas ({}, {}) must lie in [0, 1) and eps {} be positive", beta1, beta2, eps);
  }
};

// The message: k (feature index, value) pairs, strongest first.
template <class T>
struct SparseCode {
  std::vector<std::int32_t> indices;  // [k] in [0, width)
  std::vector<T> values;              // [k] >= 0
};

namespace detail {

// Adam over one flat parameter array (no weight decay):
//   m = b1 m + (1 - b1) g,  v = b2 v + (1 - b2) g^2
//   p -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
template <class T>
class SaeAdam {
 public:
  explicit SaeAdam(std::size_t n = 0) : m_(n, T(0)), v_(n, T(0)) {}

  void step(std::vector<T>& params, const std::vector<T>& grads, const TopKSaeOptions& o) {
    ++step_;
    const double bc1 = 1 - std::pow(o.beta1, double(step_));
    const double bc2 = 1 - std::pow(o.beta2, double(step_));
    for (std::size_t i = 0; i < params.size(); ++i) {
      m_[i] = T(o.beta1) * m_[i] + T(1 - o.beta1) * grads[i];
      v_[i] = T(o.beta2) * v_[i] + T(1 - o.beta2) * grads[i] * grads[i];
      params[i] -= T(o.lr * (double(m_[i]) / bc1) / (std::sqrt(double(v_[i]) / bc2) + o.eps));
    }
  }

  std::int64_t steps() const { return step_; }

 private:
  std::vector<T> m_, v_;
  std::int64_t step_ = 0;
};

// sqrt(d) v / |v| for one raw row, in T. v: [d], out: [d]
template <class T>
void sae_normalize(const char* op, index_t row, const float* v, index_t d, T* out) {
  double s = 0;
  for (index_t j = 0; j < d; ++j) s += double(v[j]) * double(v[j]);
  NLA_CHECK(s > 0 && std::isfinite(s), op, "activation {} has norm {} (zero, NaN or Inf)", row,
            std::sqrt(s));
  const double scale = std::sqrt(double(d) / s);
  for (index_t j = 0; j < d; ++j) out[j] = T(double(v[j]) * scale);
}

}  // namespace detail

// Decoder concept: owns W_dec and b_dec.
template <class T = float>
class TopKSaeDecoder {
 public:
  using Message = SparseCode<T>;

  explicit TopKSaeDecoder(TopKSaeOptions options) : options_(options) {
    options_.check("TopKSaeDecoder");
    const index_t d = options_.dim, w = options_.width;
    params_.assign(std::size_t(w * d + d), T(0));
    grads_.assign(params_.size(), T(0));
    adam_ = detail::SaeAdam<T>(params_.size());
    for (index_t i = 0; i < w * d; ++i)
      params_[std::size_t(i)] = T(random_normal(options_.seed, 0, std::uint64_t(i)));
    normalize_columns();
  }

  const TopKSaeOptions& options() const { return options_; }

  // Flat [W_dec^T | b_dec]: W_dec stored transposed, [width, d], so that row i
  // is column i of W_dec (feature i's direction), then b_dec [d].
  std::vector<T>& parameters() { return params_; }
  const std::vector<T>& parameters() const { return params_; }
  // Same layout: dL/d parameters of the last training step (the decoder's
  // own terms from decode(train) plus the encoder's share of dL/db_dec).
  const std::vector<T>& gradients() const { return grads_; }
  const T* weight() const { return params_.data(); }                                // [width, d]
  const T* bias() const { return params_.data() + options_.width * options_.dim; }  // [d]

  // b_dec = b, e.g. FveBaseline::mean() (the mean of the normalised vectors).
  // b: [d]
  void set_bias(const std::vector<double>& b) {
    NLA_CHECK(index_t(b.size()) == options_.dim, "TopKSaeDecoder::set_bias",
              "bias has {} values, d = {}", b.size(), options_.dim);
    for (index_t j = 0; j < options_.dim; ++j) {
      NLA_CHECK(std::isfinite(b[std::size_t(j)]), "TopKSaeDecoder::set_bias",
                "bias value {} is not finite", j);
      params_[std::size_t(options_.width * options_.dim + j)] = T(b[std::size_t(j)]);
    }
  }

  // Adds the encoder's path into dL/db_dec; valid between decode(train) and
  // learn(). gradient: [d]
  void add_bias_gradient(const T* gradient) {
    NLA_CHECK(pending_, "TopKSaeDecoder::add_bias_gradient",
              "no decode(..., train = true) is waiting for learn()");
    T* g = grads_.data() + options_.width * options_.dim;
    for (index_t j = 0; j < options_.dim; ++j) g[j] += gradient[j];
  }

  // targets: [m, d] raw activations (normalised here).
  DecoderFeedback decode(const std::vector<Message>& messages, const std::vector<float>& targets,
                         bool train) {
    const char* op = "TopKSaeDecoder::decode";
    const index_t d = options_.dim, k = options_.k, w = options_.width;
    const index_t m = index_t(messages.size());
    NLA_CHECK(m > 0 && index_t(targets.size()) == m * d, op,
              "{} target values for {} messages of d = {}", targets.size(), m, d);
    check_messages(op, messages);
    DecoderFeedback f;
    f.predictions.resize(std::size_t(m * d));
    f.error.resize(std::size_t(m));
    if (train) {
      std::fill(grads_.begin(), grads_.end(), T(0));
      f.dmessage.resize(std::size_t(m * k));
    }
    T* dweight = grads_.data();
    T* dbias = grads_.data() + w * d;
    const auto size_d = static_cast<std::size_t>(d);
    std::vector<T> target(size_d), prediction(size_d), dprediction(size_d);
    double loss = 0;
    for (index_t r = 0; r < m; ++r) {
      const Message& msg = messages[std::size_t(r)];
      // v^ = b_dec + sum_j value_j W_dec[:, i_j]
      std::copy(bias(), bias() + d, prediction.begin());
      for (index_t j = 0; j < k; ++j) {
        const T* atom = weight() + index_t(msg.indices[std::size_t(j)]) * d;
        const T value = msg.values[std::size_t(j)];
        for (index_t c = 0; c < d; ++c) prediction[std::size_t(c)] += value * atom[c];
      }
      detail::sae_normalize(op, r, targets.data() + r * d, d, target.data());
      double row_loss = 0, norm2 = 0;
      for (index_t c = 0; c < d; ++c) {
        const double diff = double(prediction[std::size_t(c)]) - double(target[std::size_t(c)]);
        row_loss += diff * diff;
        norm2 += double(prediction[std::size_t(c)]) * double(prediction[std::size_t(c)]);
        f.predictions[std::size_t(r * d + c)] = float(prediction[std::size_t(c)]);
      }
      loss += row_loss / double(d * m);
      // A zero prediction has no direction: count it as an orthogonal guess
      // (error 2) instead of failing; it only happens before training.
      f.error[std::size_t(r)] = norm2 > 0 ? normalized_mse(f.predictions.data() + r * d,
                                                           targets.data() + r * d, std::size_t(d))
                                          : 2.0;
      if (!train) continue;
      for (index_t c = 0; c < d; ++c)
        dprediction[std::size_t(c)] =
            T(2) * (prediction[std::size_t(c)] - target[std::size_t(c)]) / T(double(m * d));
      for (index_t c = 0; c < d; ++c) dbias[c] += dprediction[std::size_t(c)];
      for (index_t j = 0; j < k; ++j) {
        const index_t i = msg.indices[std::size_t(j)];
        const T value = msg.values[std::size_t(j)];
        const T* atom = weight() + i * d;
        T* datom = dweight + i * d;
        T dvalue = 0;
        for (index_t c = 0; c < d; ++c) {
          dvalue += atom[c] * dprediction[std::size_t(c)];
          datom[c] += value * dprediction[std::size_t(c)];
        }
        f.dmessage[std::size_t(r * k + j)] = float(dvalue);
      }
    }
    loss_ = loss;
    pending_ = train;
    return f;
  }

  // One Adam step with the gradient of the last decode(..., true), then unit
  // columns.
  void learn() {
    NLA_CHECK(pending_, "TopKSaeDecoder::learn",
              "no decode(..., train = true) since the last learn()");
    adam_.step(params_, grads_, options_);
    if (options_.unit_norm_decoder) normalize_columns();
    pending_ = false;
  }

  // The training loss L (plain MSE of the normalised vectors) of the last
  // decode, train or not; in double whatever T is.
  double loss() const { return loss_; }

  nlohmann::json stats() const { return {{"mse", loss_}, {"steps", adam_.steps()}}; }

 private:
  void check_messages(const char* op, const std::vector<Message>& messages) const {
    for (std::size_t r = 0; r < messages.size(); ++r) {
      const Message& msg = messages[r];
      NLA_CHECK(
          index_t(msg.indices.size()) == options_.k && index_t(msg.values.size()) == options_.k, op,
          "message {} has {} indices and {} values, k = {}", r, msg.indices.size(),
          msg.values.size(), options_.k);
      for (std::size_t j = 0; j < msg.indices.size(); ++j) {
        NLA_CHECK(msg.indices[j] >= 0 && msg.indices[j] < options_.width, op,
                  "message {} names feature {}, width = {}", r, msg.indices[j], options_.width);
        NLA_CHECK(std::isfinite(double(msg.values[j])), op, "message {} value {} is not finite", r,
                  j);
      }
    }
  }

  // W_dec[:, i] /= |W_dec[:, i]| (rows of the stored transpose).
  void normalize_columns() {
    const index_t d = options_.dim;
    for (index_t i = 0; i < options_.width; ++i) {
      T* atom = params_.data() + i * d;
      double s = 0;
      for (index_t c = 0; c < d; ++c) s += double(atom[c]) * double(atom[c]);
      if (s <= 0) continue;  // a dead zero column stays zero
      const T scale = T(1 / std::sqrt(s));
      for (index_t c = 0; c < d; ++c) atom[c] *= scale;
    }
  }

  TopKSaeOptions options_;
  std::vector<T> params_, grads_;  // [width * d + d]
  detail::SaeAdam<T> adam_;
  double loss_ = 0;
  bool pending_ = false;
};

// Encoder concept: owns W_enc and b_enc, reads b_dec from its decoder.
template <class T = float>
class TopKSaeEncoder {
 public:
  using Message = SparseCode<T>;

  // W_enc = W_dec^T of the decoder at construction, b_enc = 0.
  explicit TopKSaeEncoder(TopKSaeDecoder<T>& decoder)
      : decoder_(&decoder), options_(decoder.options()) {
    const index_t d = options_.dim, w = options_.width;
    params_.assign(std::size_t(w * d + w), T(0));
    std::copy(decoder.weight(), decoder.weight() + w * d, params_.begin());
    grads_.assign(params_.size(), T(0));
    adam_ = detail::SaeAdam<T>(params_.size());
  }

  // Flat [W_enc | b_enc]: W_enc [width, d], then b_enc [width].
  std::vector<T>& parameters() { return params_; }
  const std::vector<T>& parameters() const { return params_; }
  // Same layout: dL/d parameters from the last learn().
  const std::vector<T>& gradients() const { return grads_; }
  const T* weight() const { return params_.data(); }                                // [width, d]
  const T* bias() const { return params_.data() + options_.width * options_.dim; }  // [width]

  index_t samples_per_activation() const { return 1; }

  // One code per activation in both modes. train: keeps x = v_n - b_dec
  // ([n, d]) for learn().
  std::vector<Message> encode(const ActivationBatch& batch, bool train) {
    const char* op = "TopKSaeEncoder::encode";
    batch.check(op);
    const index_t d = options_.dim, w = options_.width, k = options_.k, n = batch.size();
    NLA_CHECK(batch.dim == d, op, "batch has d = {}, the autoencoder d = {}", batch.dim, d);
    std::vector<T> x(static_cast<std::size_t>(n * d));  // [n, d] v_n - b_dec
    for (index_t r = 0; r < n; ++r) {
      T* row = x.data() + r * d;
      detail::sae_normalize(op, r, batch.row(r), d, row);
      for (index_t c = 0; c < d; ++c) row[c] -= decoder_->bias()[c];
    }
    // pre = x W_enc^T + b_enc: [n, width]
    std::vector<T> pre(static_cast<std::size_t>(n * w));
    for (index_t r = 0; r < n; ++r) std::copy(bias(), bias() + w, pre.begin() + r * w);
    cpu::Cpu host;
    cpu::gemm(host, false, true, n, w, d, T(1), x.data(), d, weight(), d, T(1), pre.data(), w);
    std::vector<Message> out(static_cast<std::size_t>(n));
    std::vector<std::int32_t> order(static_cast<std::size_t>(w));
    for (index_t r = 0; r < n; ++r) {
      const T* row = pre.data() + r * w;
      auto relu = [&](std::int32_t i) { return std::max(row[i], T(0)); };
      // Exact top-k of ReLU(pre): the k largest, ties to the lower index.
      std::iota(order.begin(), order.end(), 0);
      std::partial_sort(order.begin(), order.begin() + k, order.end(),
                        [&](std::int32_t a, std::int32_t b) {
                          return relu(a) > relu(b) || (relu(a) == relu(b) && a < b);
                        });
      Message& msg = out[std::size_t(r)];
      msg.indices.assign(order.begin(), order.begin() + k);
      msg.values.resize(std::size_t(k));
      for (index_t j = 0; j < k; ++j)
        msg.values[std::size_t(j)] = relu(msg.indices[std::size_t(j)]);
    }
    if (train) {
      inputs_ = std::move(x);
      rows_ = n;
    }
    return out;
  }

  // Backpropagates feedback.dmessage ([m, k], dL/d values) through the top-k
  // into W_enc, b_enc and (via the decoder) b_dec, then one Adam step.
  void learn(const ActivationBatch& batch, const std::vector<Message>& messages,
             const DecoderFeedback& feedback) {
    const char* op = "TopKSaeEncoder::learn";
    const index_t d = options_.dim, w = options_.width, k = options_.k;
    const index_t m = index_t(messages.size());
    NLA_CHECK(rows_ == batch.size() && m == rows_, op,
              "learn() for {} activations and {} messages after encode(..., true) of {}",
              batch.size(), m, rows_);
    NLA_CHECK(index_t(feedback.dmessage.size()) == m * k, op,
              "dmessage has {} values, expected {} messages x k = {}: the decoder must return "
              "dL/d values (a TopKSaeDecoder does when train = true)",
              feedback.dmessage.size(), m, k);
    std::fill(grads_.begin(), grads_.end(), T(0));
    T* dweight = grads_.data();
    T* dbias = grads_.data() + w * d;
    std::vector<T> dx(std::size_t(d), T(0));  // dL/dx summed over rows = -dL/db_dec (encoder path)
    for (index_t r = 0; r < m; ++r) {
      const T* x = inputs_.data() + r * d;
      for (index_t j = 0; j < k; ++j) {
        // ReLU passes the gradient only where the unit was active; the top-k
        // passes it straight through to the selected units.
        if (!(messages[std::size_t(r)].values[std::size_t(j)] > T(0))) continue;
        const index_t i = messages[std::size_t(r)].indices[std::size_t(j)];
        const T g = T(feedback.dmessage[std::size_t(r * k + j)]);
        const T* row = weight() + i * d;
        T* drow = dweight + i * d;
        for (index_t c = 0; c < d; ++c) {
          drow[c] += g * x[c];
          dx[std::size_t(c)] += g * row[c];
        }
        dbias[i] += g;
      }
    }
    for (T& v : dx) v = -v;  // x = v_n - b_dec
    decoder_->add_bias_gradient(dx.data());
    adam_.step(params_, grads_, options_);
    // Features used in this batch, for the "dead latents" a SAE is known for.
    std::vector<char> used(std::size_t(w), 0);
    for (const Message& msg : messages)
      for (std::size_t j = 0; j < msg.indices.size(); ++j)
        if (msg.values[j] > T(0)) used[std::size_t(msg.indices[j])] = 1;
    active_fraction_ = double(std::count(used.begin(), used.end(), char(1))) / double(w);
    rows_ = 0;
  }

  nlohmann::json stats() const {
    return {{"active_features", active_fraction_}, {"steps", adam_.steps()}};
  }

 private:
  TopKSaeDecoder<T>* decoder_;
  TopKSaeOptions options_;
  std::vector<T> params_, grads_;  // [width * d + width]
  std::vector<T> inputs_;          // [n, d] x of the last training encode
  index_t rows_ = 0;
  detail::SaeAdam<T> adam_;
  double active_fraction_ = 0;
};

}  // namespace nla
