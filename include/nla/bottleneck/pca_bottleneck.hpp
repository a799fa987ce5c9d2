#pragma once
// A rank-k linear bottleneck (PCA), the first non-text baseline: the message
// is k numbers, the coefficients of the activation on the top-k principal
// directions of the training activations. It answers "how much of an
// activation do k linear coordinates keep?" on the NLA's metric.
//
// Like every bottleneck it sees *normalised* activations,
//   v_n = sqrt(d) v / |v|        v: [d]
// because the metric (metrics/reconstruction.hpp) compares directions only.
//
//   encode:  c = U^T (v_n - mu)          U: [d, k] orthonormal, c: [k]
//   decode:  p = mu + U c                p: [d]
//   error:   normalized_mse(p, v) = 2 (1 - cos(p, v))
//
// mu and U come from the running mean and covariance of the v_n seen by
// learn(): U holds the eigenvectors of the k largest eigenvalues of
// C = M2 / n (population covariance, the same normalisation as FveBaseline's
// B = trace(C) / d). PCA minimises the plain squared error of v_n, so on its
// training data the plain-MSE FVE is exactly the top-k eigenvalue share
// sum_{i<k} lambda_i / trace(C); the normalised-MSE FVE (the reported one)
// rescales p to norm sqrt(d) and agrees with it to first order.
//
// The encoder and decoder share one PcaBasis (both hold a pointer to it):
// PcaEncoder::learn() feeds the basis the batch and refits it, and
// PcaDecoder::learn() has nothing left to do. Two halves instead of one class
// keep the split of the Encoder/Decoder concepts visible, as for the sparse
// autoencoder (bottleneck/topk_sae.hpp), and let a caller fit the basis once
// (PcaBasis::fit) and evaluate without any training step.
//
// Eigen is used on host for the covariance and its eigen-decomposition
// (SelfAdjointEigenSolver, O(d^3) per refit); nothing Eigen appears in the
// public interface.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include <Eigen/Core>
#include <Eigen/Eigenvalues>
#include <nlohmann/json.hpp>

#include "nla/bottleneck/autoencoder.hpp"
#include "nla/core/error.hpp"
#include "nla/core/shape.hpp"

namespace nla {

// The running mean and covariance of normalised vectors and the top-k
// eigenvectors of that covariance.
class PcaBasis {
 public:
  PcaBasis(index_t dim, index_t rank) : dim_(dim), rank_(rank) {
    NLA_CHECK(dim > 0, "PcaBasis", "dimension d = {} must be positive", dim);
    NLA_CHECK(rank > 0 && rank <= dim, "PcaBasis", "rank k = {} must be in [1, d = {}]", rank, dim);
    reset();
  }

  index_t dim() const { return dim_; }
  index_t rank() const { return rank_; }
  // Vectors added since the last reset().
  std::int64_t count() const { return count_; }
  // True when components() and eigenvalues() describe every added vector.
  bool current() const { return count_ > 0 && !stale_; }

  void reset() {
    count_ = 0;
    stale_ = true;
    mean_.assign(std::size_t(dim_), 0.0);
    m2_.assign(std::size_t(dim_ * dim_), 0.0);
    components_.assign(std::size_t(rank_ * dim_), 0.0);
    eigenvalues_.assign(std::size_t(rank_), 0.0);
    total_variance_ = 0;
  }

  // Adds n raw vectors (normalised here). The batch's own mean and scatter
  // are computed in two passes and merged with the running ones (Chan et al.):
  //   n = na + nb,  delta = mean_b - mean_a
  //   mean = mean_a + delta nb / n
  //   M2   = M2_a + M2_b + delta delta^T na nb / n      M2: [d, d]
  // which is exact in any batch split and stable for a large shared mean.
  // vectors: [n, d]
  void add(const float* vectors, index_t n) {
    NLA_CHECK(n > 0, "PcaBasis::add", "no vectors to add (n = {})", n);
    using Matrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    Matrix x(n, dim_);  // [n, d] normalised
    normalize_rows("PcaBasis::add", vectors, n, x.data());
    const Eigen::RowVectorXd mean_b = x.colwise().mean();
    x.rowwise() -= mean_b;
    const Eigen::MatrixXd m2_b = x.transpose() * x;
    Eigen::Map<Eigen::RowVectorXd> mean(mean_.data(), dim_);
    Eigen::Map<Eigen::MatrixXd> m2(m2_.data(), dim_, dim_);
    const double na = double(count_), nb = double(n), total = na + nb;
    const Eigen::RowVectorXd delta = mean_b - mean;
    mean += delta * (nb / total);
    m2 += m2_b + delta.transpose() * delta * (na * nb / total);
    count_ += n;
    stale_ = true;
  }
  void add(const ActivationBatch& batch) {
    batch.check("PcaBasis::add");
    NLA_CHECK(batch.dim == dim_, "PcaBasis::add", "batch has d = {}, the basis d = {}", batch.dim,
              dim_);
    add(batch.vectors.data(), batch.size());
  }

  // The one-shot fit over every training vector: reset, add, refit. Equal to
  // adding the same vectors in any number of batches, then refit().
  // vectors: [n, d]
  void fit(const std::vector<float>& vectors) {
    NLA_CHECK(!vectors.empty() && index_t(vectors.size()) % dim_ == 0, "PcaBasis::fit",
              "{} values are not a non-empty set of rows of d = {}", vectors.size(), dim_);
    reset();
    add(vectors.data(), index_t(vectors.size()) / dim_);
    refit();
  }

  // Eigen-decomposes C = M2 / n and keeps the k leading eigenvectors, in
  // decreasing order of eigenvalue. Each is signed so that its largest
  // component (first on a tie) is positive, so a refit on the same
  // statistics always gives the same basis.
  void refit() {
    NLA_CHECK(count_ > 0, "PcaBasis::refit", "no vectors added");
    const Eigen::MatrixXd covariance =
        Eigen::Map<const Eigen::MatrixXd>(m2_.data(), dim_, dim_) / double(count_);
    Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> solver(covariance);
    NLA_CHECK(solver.info() == Eigen::Success, "PcaBasis::refit",
              "the eigen-decomposition of the {}x{} covariance did not converge", dim_, dim_);
    total_variance_ = covariance.trace();
    // Eigen returns eigenvalues in increasing order: take them from the end.
    for (index_t i = 0; i < rank_; ++i) {
      const index_t column = dim_ - 1 - i;
      Eigen::VectorXd u = solver.eigenvectors().col(column);
      index_t largest = 0;
      for (index_t j = 1; j < dim_; ++j)
        if (std::abs(u(j)) > std::abs(u(largest))) largest = j;
      if (u(largest) < 0) u = -u;
      std::copy(u.data(), u.data() + dim_, components_.begin() + i * dim_);
      eigenvalues_[std::size_t(i)] = std::max(0.0, solver.eigenvalues()(column));
    }
    stale_ = false;
  }
  void refit_if_stale() {
    if (stale_ && count_ > 0) refit();
  }

  // Mean of the normalised vectors: [d].
  const std::vector<double>& mean() const { return mean_; }
  // The k principal directions, row i = U[:, i] (unit, orthogonal): [k, d].
  const std::vector<double>& components() const {
    check_current("PcaBasis::components");
    return components_;
  }
  // Their eigenvalues (variances along them), decreasing: [k].
  const std::vector<double>& eigenvalues() const {
    check_current("PcaBasis::eigenvalues");
    return eigenvalues_;
  }
  // trace(C) = d B: the variance the FVE baseline B measures, times d.
  double total_variance() const {
    check_current("PcaBasis::total_variance");
    return total_variance_;
  }
  // sum_{i<k} lambda_i / trace(C): the training FVE of the plain MSE.
  double explained_share() const {
    double s = 0;
    for (double l : eigenvalues()) s += l;
    return total_variance_ > 0 ? s / total_variance_ : 1.0;
  }

  // c = U^T (v_n - mu) for one raw vector. v: [d], coefficients: [k]
  void project(const float* v, float* coefficients) const {
    check_current("PcaBasis::project");
    std::vector<double> x(static_cast<std::size_t>(dim_));
    normalize_rows("PcaBasis::project", v, 1, x.data());
    for (index_t i = 0; i < rank_; ++i) {
      double c = 0;
      const double* u = components_.data() + i * dim_;
      for (index_t j = 0; j < dim_; ++j) c += u[j] * (x[std::size_t(j)] - mean_[std::size_t(j)]);
      coefficients[i] = float(c);
    }
  }

  // p = mu + U c. coefficients: [k], out: [d]
  void reconstruct(const float* coefficients, float* out) const {
    check_current("PcaBasis::reconstruct");
    for (index_t j = 0; j < dim_; ++j) {
      double p = mean_[std::size_t(j)];
      for (index_t i = 0; i < rank_; ++i)
        p += components_[std::size_t(i * dim_ + j)] * coefficients[i];
      out[j] = float(p);
    }
  }

 private:
  // out = sqrt(d) v / |v| per row, in double. v: [n, d], out: [n, d]
  void normalize_rows(const char* op, const float* v, index_t n, double* out) const {
    for (index_t r = 0; r < n; ++r) {
      double s = 0;
      for (index_t j = 0; j < dim_; ++j) {
        const double x = v[r * dim_ + j];
        NLA_CHECK(std::isfinite(x), op, "vector {} has a non-finite value at {}", r, j);
        s += x * x;
      }
      NLA_CHECK(s > 0 && std::isfinite(s), op, "vector {} has norm {} (zero or overflow)", r,
                std::sqrt(s));
      const double scale = std::sqrt(double(dim_) / s);
      for (index_t j = 0; j < dim_; ++j) out[r * dim_ + j] = v[r * dim_ + j] * scale;
    }
  }

  void check_current(const char* op) const {
    NLA_CHECK(count_ > 0, op, "the basis has seen no vectors; fit() it or train a step first");
    NLA_CHECK(!stale_, op, "vectors were added since the last refit(); call refit() first");
  }

  index_t dim_, rank_;
  std::int64_t count_ = 0;
  bool stale_ = true;
  std::vector<double> mean_;         // [d]
  std::vector<double> m2_;           // [d, d] sum of (v_n - mu)(v_n - mu)^T
  std::vector<double> components_;   // [k, d]
  std::vector<double> eigenvalues_;  // [k]
  double total_variance_ = 0;
};

// The message: k coefficients. [k]
using PcaCoefficients = std::vector<float>;

// Encoder concept: c = U^T (v_n - mu). Its learn() is where the basis
// learns: the batch's vectors are merged into the statistics and the basis is
// refitted (one O(d^3) eigen-decomposition per training step). The feedback
// is not needed: PCA is a closed-form fit, not a gradient method.
class PcaEncoder {
 public:
  using Message = PcaCoefficients;

  explicit PcaEncoder(PcaBasis& basis) : basis_(&basis) {}

  index_t samples_per_activation() const { return 1; }

  // Before the basis has seen any vector a training encode sends zeros (the
  // first step's error is then the decoder's "no information" value);
  // evaluation needs a fitted basis.
  std::vector<Message> encode(const ActivationBatch& batch, bool train) {
    const char* op = "PcaEncoder::encode";
    batch.check(op);
    NLA_CHECK(batch.dim == basis_->dim(), op, "batch has d = {}, the basis d = {}", batch.dim,
              basis_->dim());
    NLA_CHECK(train || basis_->count() > 0, op,
              "the basis has seen no vectors; fit() it or train a step before evaluating");
    basis_->refit_if_stale();
    std::vector<Message> out(std::size_t(batch.size()), Message(std::size_t(basis_->rank()), 0.0f));
    if (basis_->count() == 0) return out;
    for (index_t i = 0; i < batch.size(); ++i)
      basis_->project(batch.row(i), out[std::size_t(i)].data());
    return out;
  }

  void learn(const ActivationBatch& batch, const std::vector<Message>& /*messages*/,
             const DecoderFeedback& /*feedback*/) {
    basis_->add(batch);
    basis_->refit();
  }

  nlohmann::json stats() const {
    nlohmann::json s = {{"vectors_seen", basis_->count()}, {"rank", basis_->rank()}};
    if (basis_->current()) s["explained_share"] = basis_->explained_share();
    return s;
  }

  PcaBasis& basis() { return *basis_; }

 private:
  PcaBasis* basis_;
};

// Decoder concept: p = mu + U c, error = 2 (1 - cos(p, target)) per row. It
// has no parameters of its own (the shared basis learns in the encoder), and
// no dmessage: nothing upstream of c is trained by gradient.
class PcaDecoder {
 public:
  using Message = PcaCoefficients;

  explicit PcaDecoder(PcaBasis& basis) : basis_(&basis) {}

  // targets: [m, d]
  DecoderFeedback decode(const std::vector<Message>& messages, const std::vector<float>& targets,
                         bool train) {
    const char* op = "PcaDecoder::decode";
    const index_t d = basis_->dim(), k = basis_->rank(), m = index_t(messages.size());
    NLA_CHECK(index_t(targets.size()) == m * d, op, "{} target values for {} messages of d = {}",
              targets.size(), m, d);
    for (index_t i = 0; i < m; ++i)
      NLA_CHECK(index_t(messages[std::size_t(i)].size()) == k, op,
                "message {} has {} coefficients, the basis rank is {}", i,
                messages[std::size_t(i)].size(), k);
    NLA_CHECK(train || basis_->count() > 0, op,
              "the basis has seen no vectors; fit() it or train a step before evaluating");
    basis_->refit_if_stale();
    DecoderFeedback f;
    f.predictions.assign(std::size_t(m * d), 0.0f);
    if (basis_->count() == 0) {
      // Nothing learned yet, so the prediction is the zero vector, whose
      // direction is undefined: report 2, the error of an orthogonal guess
      // (cos = 0), rather than fail the first training step.
      f.error.assign(std::size_t(m), 2.0);
      return f;
    }
    for (index_t i = 0; i < m; ++i)
      basis_->reconstruct(messages[std::size_t(i)].data(), f.predictions.data() + i * d);
    f.error = normalized_mse_rows(f.predictions, targets, d);
    return f;
  }

  void learn() {}
  nlohmann::json stats() const { return nlohmann::json::object(); }

 private:
  PcaBasis* basis_;
};

}  // namespace nla
