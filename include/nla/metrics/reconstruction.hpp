#pragma once
// How well a reconstruction p of an activation g matches it. Both vectors
// are first rescaled to norm sqrt(d) (the release's convention), so that
//   mse_nrm(p, g) = (1/d) || sqrt(d) p/|p| - sqrt(d) g/|g| ||^2 = 2 (1 - cos(p, g))
// depends only on direction. The fraction of variance explained compares it
// with predicting the mean mu of the normalised training vectors v_n:
//   B   = mean over rows and dims of (v_n - mu)^2 = 1 - ||mu||^2 / d
//   FVE = 1 - mse_nrm / B
// A shared mean direction makes B small (activations of small models often
// are), which is why FVE, not cosine, is the headline number.
// All on host arrays of d floats; accumulation in double.

#include <cmath>
#include <cstdint>
#include <vector>

#include "nla/core/error.hpp"

namespace nla {

inline double squared_norm(const float* x, std::size_t d) {
  double s = 0;
  for (std::size_t j = 0; j < d; ++j) s += double(x[j]) * double(x[j]);
  return s;
}

// Plain mean squared error (1/d) ||p - g||^2, no normalisation.
inline double mean_squared_error(const float* p, const float* g, std::size_t d) {
  double s = 0;
  for (std::size_t j = 0; j < d; ++j)
    s += (double(p[j]) - double(g[j])) * (double(p[j]) - double(g[j]));
  return s / double(d);
}

inline double cosine_similarity(const float* p, const float* g, std::size_t d) {
  const double np = std::sqrt(squared_norm(p, d)), ng = std::sqrt(squared_norm(g, d));
  NLA_CHECK(np > 0 && ng > 0 && std::isfinite(np) && std::isfinite(ng), "cosine_similarity",
            "vector norms {} and {} must be positive and finite", np, ng);
  double dot = 0;
  for (std::size_t j = 0; j < d; ++j) dot += double(p[j]) * double(g[j]);
  return dot / (np * ng);
}

// mse_nrm = 2 (1 - cos): the reconstruction loss and the RL reward's input.
inline double normalized_mse(const float* p, const float* g, std::size_t d) {
  return 2.0 * (1.0 - cosine_similarity(p, g, d));
}

inline double fraction_of_variance_explained(double mse_nrm, double baseline) {
  NLA_CHECK(baseline > 0, "fraction_of_variance_explained", "baseline B = {} must be positive",
            baseline);
  return 1.0 - mse_nrm / baseline;
}

// One pass over the training vectors, normalised to norm sqrt(d) as they
// arrive, with Welford's update per dimension:
//   mu_k = mu_{k-1} + (v_k - mu_{k-1}) / k,  M_k = M_{k-1} + (v_k - mu_{k-1}) (v_k - mu_k)
// B = mean_j M_j / n equals the two-pass value without storing the vectors.
class FveBaseline {
 public:
  explicit FveBaseline(std::size_t d) : mean_(d, 0.0), m2_(d, 0.0) {
    NLA_CHECK(d > 0, "FveBaseline", "dimension must be positive");
  }

  void add(const float* v) {
    const std::size_t d = mean_.size();
    const double norm = std::sqrt(squared_norm(v, d));
    NLA_CHECK(norm > 0 && std::isfinite(norm), "FveBaseline::add",
              "vector {} has norm {} (zero, NaN or Inf)", count_, norm);
    const double scale = std::sqrt(double(d)) / norm;
    ++count_;
    for (std::size_t j = 0; j < d; ++j) {
      const double x = double(v[j]) * scale, delta = x - mean_[j];
      mean_[j] += delta / double(count_);
      m2_[j] += delta * (x - mean_[j]);
    }
  }

  std::int64_t count() const { return count_; }
  std::size_t dim() const { return mean_.size(); }
  // Mean of the normalised vectors.
  const std::vector<double>& mean() const { return mean_; }

  // B = mean over rows and dims of (v_n - mu)^2.
  double baseline() const {
    NLA_CHECK(count_ > 0, "FveBaseline::baseline", "no vectors added");
    double s = 0;
    for (double m : m2_) s += m;
    return s / (double(count_) * double(mean_.size()));
  }

  // The looser baseline: predicting the direction of mu for every vector,
  // mean of 2 (1 - cos(v_n, mu)) = 2 (1 - ||mu|| / sqrt(d)). Labelled
  // "against normalize(mu)" wherever it is reported; it is never smaller
  // than B, so FVE against it looks better.
  double baseline_against_normalized_mean() const {
    double s = 0;
    for (double m : mean_) s += m * m;
    return 2.0 * (1.0 - std::sqrt(s) / std::sqrt(double(mean_.size())));
  }

 private:
  std::vector<double> mean_, m2_;
  std::int64_t count_ = 0;
};

}  // namespace nla
