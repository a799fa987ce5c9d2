#pragma once
// A linear probe: multinomial logistic regression from activations to a
// discrete attribute. Its held-out accuracy measures what is linearly
// readable in an activation, which is the ceiling of what an explanation of
// that activation can truthfully say.
//
//   z = (x - mean) / std                  standardised with the training set's statistics
//   p = softmax(W z + b)                  W: [classes, d], b: [classes]
//   L = -mean_i log p_i[y_i] + (l2 / 2) ||W||^2
// fitted by full-batch Adam. Features are host arrays (xtensor), [n, d].

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include <xtensor/xtensor.hpp>

#include "nla/core/error.hpp"

namespace nla {

struct LinearProbeOptions {
  int iterations = 300;
  double lr = 0.05;
  double l2 = 1e-3;
};

class LinearProbe {
 public:
  // x: [n, d]; labels in [0, classes).
  static LinearProbe fit(const xt::xtensor<float, 2>& x, const std::vector<int>& labels,
                         int classes, const LinearProbeOptions& o = {}) {
    const char* op = "LinearProbe::fit";
    const std::size_t n = x.shape()[0], d = x.shape()[1];
    NLA_CHECK(n > 0 && n == labels.size(), op, "{} feature rows for {} labels", n, labels.size());
    NLA_CHECK(classes >= 2, op, "need at least 2 classes, got {}", classes);
    for (std::size_t i = 0; i < n; ++i)
      NLA_CHECK(labels[i] >= 0 && labels[i] < classes, op, "label[{}] = {} is outside [0, {})", i,
                labels[i], classes);
    LinearProbe p;
    p.classes_ = classes;
    p.d_ = d;
    p.mean_.assign(d, 0.0);
    p.inv_std_.assign(d, 0.0);
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t j = 0; j < d; ++j) {
        NLA_CHECK(std::isfinite(x(i, j)), op, "feature ({}, {}) is not finite", i, j);
        p.mean_[j] += x(i, j);
      }
    for (auto& m : p.mean_) m /= double(n);
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t j = 0; j < d; ++j)
        p.inv_std_[j] += (x(i, j) - p.mean_[j]) * (x(i, j) - p.mean_[j]);
    for (auto& s : p.inv_std_) s = 1.0 / std::sqrt(s / double(n) + 1e-8);

    // Standardised copy, then Adam on [W | b].
    std::vector<double> z(n * d);
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t j = 0; j < d; ++j) z[i * d + j] = (x(i, j) - p.mean_[j]) * p.inv_std_[j];
    const std::size_t k = std::size_t(classes), w_size = k * (d + 1);
    p.weights_.assign(w_size, 0.0);
    std::vector<double> grad(w_size), m(w_size, 0.0), v(w_size, 0.0), logits(k);
    for (int it = 1; it <= o.iterations; ++it) {
      std::fill(grad.begin(), grad.end(), 0.0);
      for (std::size_t i = 0; i < n; ++i) {
        p.scores(&z[i * d], logits.data());
        for (std::size_t c = 0; c < k; ++c) {
          const double g = (logits[c] - (int(c) == labels[i] ? 1.0 : 0.0)) / double(n);
          double* gw = &grad[c * (d + 1)];
          for (std::size_t j = 0; j < d; ++j) gw[j] += g * z[i * d + j];
          gw[d] += g;
        }
      }
      for (std::size_t c = 0; c < k; ++c)
        for (std::size_t j = 0; j < d; ++j)
          grad[c * (d + 1) + j] += o.l2 * p.weights_[c * (d + 1) + j];
      const double bc1 = 1 - std::pow(0.9, it), bc2 = 1 - std::pow(0.999, it);
      for (std::size_t q = 0; q < w_size; ++q) {
        m[q] = 0.9 * m[q] + 0.1 * grad[q];
        v[q] = 0.999 * v[q] + 0.001 * grad[q] * grad[q];
        p.weights_[q] -= o.lr * (m[q] / bc1) / (std::sqrt(v[q] / bc2) + 1e-8);
      }
    }
    return p;
  }

  int classes() const { return classes_; }

  // x: [d] raw (unstandardised) features.
  int predict(const float* x) const {
    std::vector<double> z(d_), probs(static_cast<std::size_t>(classes_));
    for (std::size_t j = 0; j < d_; ++j) z[j] = (x[j] - mean_[j]) * inv_std_[j];
    scores(z.data(), probs.data());
    return int(std::max_element(probs.begin(), probs.end()) - probs.begin());
  }

  // Fraction of rows of x ([n, d]) whose predicted class equals the label.
  double accuracy(const xt::xtensor<float, 2>& x, const std::vector<int>& labels) const {
    NLA_CHECK(x.shape()[1] == d_ && x.shape()[0] == labels.size() && !labels.empty(),
              "LinearProbe::accuracy", "features [{}, {}] and {} labels for a probe of width {}",
              x.shape()[0], x.shape()[1], labels.size(), d_);
    std::size_t hits = 0;
    for (std::size_t i = 0; i < labels.size(); ++i) hits += predict(&x(i, 0)) == labels[i];
    return double(hits) / double(labels.size());
  }

 private:
  // probs = softmax(W z + b) for one standardised row z.
  void scores(const double* z, double* probs) const {
    double max = -1e300, sum = 0;
    for (int c = 0; c < classes_; ++c) {
      const double* w = &weights_[std::size_t(c) * (d_ + 1)];
      double s = w[d_];
      for (std::size_t j = 0; j < d_; ++j) s += w[j] * z[j];
      probs[c] = s;
      max = std::max(max, s);
    }
    for (int c = 0; c < classes_; ++c) sum += probs[c] = std::exp(probs[c] - max);
    for (int c = 0; c < classes_; ++c) probs[c] /= sum;
  }

  int classes_ = 0;
  std::size_t d_ = 0;
  std::vector<double> mean_, inv_std_, weights_;  // weights_: [classes, d + 1]
};

}  // namespace nla
