// A new bottleneck is one class. This program writes one, "sign bits", and
// trains and evaluates it with the generic Autoencoder beside the two
// non-text baselines, PCA and a top-k sparse autoencoder, on the same data
// and the same metric (FVE of the normalised MSE, metrics/reconstruction.hpp).
//
//   custom_bottleneck --steps 400 --rank 8 --k 8 --bits 256 --seed 1
//   custom_bottleneck --activations acts      # acts.npy, [N, d] float32
//
// Without --activations the vectors are generated with the shape of a small
// LM's residual stream: a large shared mean direction plus a sparse,
// heavy-tailed mixture of a few hundred directions, plus noise.
//
// stderr: a progress line. stdout: one JSON line,
//   {"example": "custom_bottleneck", "fve": {"custom": .., "pca": .., "topk_sae": ..},
//    "fve_baseline_B": .., "seed": .., "minutes": ..}

#include <CLI/CLI.hpp>
#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <iostream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <string>
#include <vector>
#include <xtensor/xarray.hpp>
#include <xtensor/xnpy.hpp>

#include "nla/bottleneck/autoencoder.hpp"
#include "nla/bottleneck/pca_bottleneck.hpp"
#include "nla/bottleneck/topk_sae.hpp"
#include "nla/core/random.hpp"
#include "nla/io/progress.hpp"
#include "nla/metrics/reconstruction.hpp"

namespace {

using namespace nla;
using json = nlohmann::json;

// ----------------------------------------------------------------------------
// The new bottleneck: sign bits.
//
// The message is `bits` signs,
//   s_b = sign(r_b . (v_n - c))          r_b: [d] fixed random directions, c: [d]
// i.e. on which side of `bits` random hyperplanes through the centre c (the
// mean of the normalised training vectors) the activation lies. This is
// SimHash, or 1-bit compressed sensing: a message of pure yes/no answers with
// no learned encoder at all. The question it asks: how much of an
// activation's direction survives a budget of B bits when nobody chooses
// which bits?
//
// The decoder is the best affine map from bits to vectors,
//   v^ = A^T [s; 1]                      A: [bits + 1, d]
// fitted in closed form (ridge least squares) from all training messages so
// far. learn() adds each batch to the normal equations and solves them:
//   G += S~^T S~   [bits + 1, bits + 1],  H += S~^T V_n   [bits + 1, d]
//   A = (G + lambda I)^{-1} H            (S~: the batch's [m, bits + 1] signs and a 1)
// So "learning" need not be gradient descent: the concept only asks for
// encode/decode and a learn() after each step.
//
// One class models both concepts (its two learn() overloads are the
// encoder's and the decoder's), so Autoencoder<SignBits, SignBits> takes the
// same object twice.
class SignBits {
 public:
  using Message = std::vector<std::int8_t>;  // [bits], each +1 or -1

  // centre: [d], the mean of the normalised training vectors.
  SignBits(index_t dim, index_t bits, std::vector<double> centre, std::uint64_t seed)
      : dim_(dim),
        bits_(bits),
        centre_(std::move(centre)),
        directions_(bits, dim),
        gram_(Eigen::MatrixXd::Zero(bits + 1, bits + 1)),
        cross_(Eigen::MatrixXd::Zero(bits + 1, dim)),
        map_(Eigen::MatrixXd::Zero(bits + 1, dim)) {
    NLA_CHECK(dim > 0 && bits > 0, "SignBits", "d = {} and bits = {} must be positive", dim, bits);
    NLA_CHECK(index_t(centre_.size()) == dim, "SignBits", "centre has {} values, d = {}",
              centre_.size(), dim);
    for (index_t b = 0; b < bits; ++b)
      for (index_t j = 0; j < dim; ++j)
        directions_(b, j) = random_normal(seed, std::uint64_t(b), std::uint64_t(j));
    // Before any training the decoder predicts the centre: a nonzero guess,
    // so the first step's error is defined.
    for (index_t j = 0; j < dim; ++j) map_(bits, j) = centre_[std::size_t(j)];
  }

  // ---- Encoder concept ----
  index_t samples_per_activation() const { return 1; }

  std::vector<Message> encode(const ActivationBatch& batch, bool /*train*/) {
    batch.check("SignBits::encode");
    NLA_CHECK(batch.dim == dim_, "SignBits::encode", "batch has d = {}, expected {}", batch.dim,
              dim_);
    std::vector<Message> out;
    for (index_t i = 0; i < batch.size(); ++i) {
      const Eigen::VectorXd x = normalized_minus_centre(batch.row(i));
      const Eigen::VectorXd projections = directions_ * x;  // [bits]
      Message s(static_cast<std::size_t>(bits_));
      for (index_t b = 0; b < bits_; ++b) s[std::size_t(b)] = projections(b) >= 0 ? 1 : -1;
      out.push_back(std::move(s));
    }
    return out;
  }

  // The hyperplanes are fixed: the encoder has nothing to learn.
  void learn(const ActivationBatch&, const std::vector<Message>&, const DecoderFeedback&) {}

  // ---- Decoder concept ----
  // targets: [m, d]
  DecoderFeedback decode(const std::vector<Message>& messages, const std::vector<float>& targets,
                         bool train) {
    const index_t m = index_t(messages.size());
    NLA_CHECK(index_t(targets.size()) == m * dim_, "SignBits::decode",
              "{} target values for {} messages of d = {}", targets.size(), m, dim_);
    Eigen::MatrixXd signs(m, bits_ + 1);  // S~: [m, bits + 1]
    for (index_t i = 0; i < m; ++i) {
      NLA_CHECK(index_t(messages[std::size_t(i)].size()) == bits_, "SignBits::decode",
                "message {} has {} bits, expected {}", i, messages[std::size_t(i)].size(), bits_);
      for (index_t b = 0; b < bits_; ++b) signs(i, b) = messages[std::size_t(i)][std::size_t(b)];
      signs(i, bits_) = 1.0;
    }
    const Eigen::MatrixXd predictions = signs * map_;  // [m, d]
    DecoderFeedback f;
    f.predictions.resize(std::size_t(m * dim_));
    for (index_t i = 0; i < m; ++i)
      for (index_t j = 0; j < dim_; ++j)
        f.predictions[std::size_t(i * dim_ + j)] = float(predictions(i, j));
    f.error = normalized_mse_rows(f.predictions, targets, dim_);
    if (train) {
      // Keep what learn() needs: the signs and the normalised targets.
      pending_signs_ = signs;
      pending_targets_.resize(m, dim_);
      for (index_t i = 0; i < m; ++i)
        pending_targets_.row(i) =
            normalized_minus_centre(targets.data() + i * dim_).transpose() + centre_row();
    }
    return f;
  }

  void learn() {
    NLA_CHECK(pending_signs_.rows() > 0, "SignBits::learn",
              "no decode(..., train = true) to learn from");
    gram_ += pending_signs_.transpose() * pending_signs_;
    cross_ += pending_signs_.transpose() * pending_targets_;
    messages_seen_ += pending_signs_.rows();
    // A small ridge keeps G invertible while few messages have been seen
    // (a hyperplane may not have split any of them yet).
    const double ridge = 1e-3 * double(messages_seen_) / double(bits_ + 1) + 1e-6;
    const Eigen::MatrixXd regularised =
        gram_ + ridge * Eigen::MatrixXd::Identity(bits_ + 1, bits_ + 1);
    map_ = regularised.ldlt().solve(cross_);
    pending_signs_.resize(0, 0);
  }

  json stats() const { return {{"messages_seen", messages_seen_}, {"bits", bits_}}; }

 private:
  // sqrt(d) v / |v| - c. v: [d]
  Eigen::VectorXd normalized_minus_centre(const float* v) const {
    Eigen::VectorXd x(dim_);
    for (index_t j = 0; j < dim_; ++j) x(j) = v[j];
    const double norm = x.norm();
    NLA_CHECK(norm > 0, "SignBits", "an activation has norm 0");
    x *= std::sqrt(double(dim_)) / norm;
    for (index_t j = 0; j < dim_; ++j) x(j) -= centre_[std::size_t(j)];
    return x;
  }
  Eigen::RowVectorXd centre_row() const {
    return Eigen::Map<const Eigen::RowVectorXd>(centre_.data(), dim_);
  }

  index_t dim_, bits_;
  std::vector<double> centre_;                       // [d]
  Eigen::MatrixXd directions_;                       // [bits, d]
  Eigen::MatrixXd gram_, cross_, map_;               // G, H, A
  Eigen::MatrixXd pending_signs_, pending_targets_;  // of the last training decode
  index_t messages_seen_ = 0;
};

// ----------------------------------------------------------------------------
// Data.

// Rows like a small LM's residual stream: v = a m + sum_{j in S} c_j D_j + noise,
// with a shared mean direction m (a ~ 4 +- 0.5), 1..6 active atoms out of
// `atoms` unit directions, heavy-tailed coefficients c ~ Exp(1), and
// N(0, 0.05^2) noise per dimension. Returns [n, d].
std::vector<float> generate_activations(index_t n, index_t d, index_t atoms, std::uint64_t seed) {
  std::vector<double> mean_direction(static_cast<std::size_t>(d)),
      dictionary(std::size_t(atoms * d));
  double norm = 0;
  for (index_t j = 0; j < d; ++j) {
    mean_direction[std::size_t(j)] = random_normal(seed, 0, std::uint64_t(j));
    norm += mean_direction[std::size_t(j)] * mean_direction[std::size_t(j)];
  }
  for (double& x : mean_direction) x /= std::sqrt(norm);
  for (index_t a = 0; a < atoms; ++a) {
    double s = 0;
    for (index_t j = 0; j < d; ++j) {
      const double x = random_normal(seed, 1 + std::uint64_t(a), std::uint64_t(j));
      dictionary[std::size_t(a * d + j)] = x;
      s += x * x;
    }
    for (index_t j = 0; j < d; ++j) dictionary[std::size_t(a * d + j)] /= std::sqrt(s);
  }
  // Streams: 0 the mean direction, 1..atoms the atoms, then per row i the
  // choices (stream atoms + 1, words 64 i ..) and the Gaussians (stream
  // atoms + 2 + i: the scale a, then the noise).
  const std::uint64_t choices = 1 + std::uint64_t(atoms);
  std::vector<float> v(std::size_t(n * d));
  for (index_t i = 0; i < n; ++i) {
    const std::uint64_t r = std::uint64_t(i) * 64, gaussians = choices + 1 + std::uint64_t(i);
    const double a = 4.0 + 0.5 * random_normal(seed, gaussians, 0);
    for (index_t j = 0; j < d; ++j)
      v[std::size_t(i * d + j)] =
          float(a * mean_direction[std::size_t(j)] +
                0.05 * random_normal(seed, gaussians, 1 + std::uint64_t(j)));
    const index_t active = 1 + index_t(random_bits(seed, choices, r) % 6);
    for (index_t t = 0; t < active; ++t) {
      const index_t atom =
          index_t(random_bits(seed, choices, r + 1 + 2 * std::uint64_t(t)) % std::uint64_t(atoms));
      const double c = -std::log(random_uniform(seed, choices, r + 2 + 2 * std::uint64_t(t)));
      for (index_t j = 0; j < d; ++j)
        v[std::size_t(i * d + j)] += float(c * dictionary[std::size_t(atom * d + j)]);
    }
  }
  return v;
}

// A seeded permutation of 0..n-1 (Fisher-Yates on Philox draws).
std::vector<index_t> permutation(index_t n, std::uint64_t seed, std::uint64_t stream) {
  std::vector<index_t> p(static_cast<std::size_t>(n));
  std::iota(p.begin(), p.end(), 0);
  for (index_t i = n - 1; i > 0; --i)
    std::swap(p[std::size_t(i)],
              p[std::size_t(random_bits(seed, stream, std::uint64_t(i)) % std::uint64_t(i + 1))]);
  return p;
}

// The rows rows[first .. first + count) (cyclically) of v as one batch.
ActivationBatch gather(const std::vector<float>& v, index_t d, const std::vector<index_t>& rows,
                       index_t first, index_t count) {
  ActivationBatch b;
  b.dim = d;
  b.vectors.reserve(std::size_t(count * d));
  for (index_t i = 0; i < count; ++i) {
    const index_t r = rows[std::size_t((first + i) % index_t(rows.size()))];
    b.vectors.insert(b.vectors.end(), v.begin() + r * d, v.begin() + (r + 1) * d);
  }
  return b;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "Train a custom 'sign bits' bottleneck beside the PCA and top-k SAE baselines with the "
      "generic Autoencoder; print each one's FVE on held-out activations."};
  std::string activations;
  std::uint64_t seed = 1;
  index_t rank = 8, k = 8, width = 256, bits = 256, steps = 400, batch_size = 256;
  index_t rows = 8192, dim = 64, atoms = 256;
  double lr = 1e-2, test_fraction = 0.2;
  app.add_option("--activations", activations,
                 "load PREFIX.npy ([N, d] float32) instead of generating activations");
  app.add_option("--seed", seed, "seed of the data, the split and every initialisation");
  app.add_option("--rank", rank, "PCA rank (coefficients per message)")->check(CLI::PositiveNumber);
  app.add_option("--k", k, "active features per message of the top-k SAE")
      ->check(CLI::PositiveNumber);
  app.add_option("--width", width, "SAE dictionary size")->check(CLI::PositiveNumber);
  app.add_option("--bits", bits, "bits per message of the sign-bits bottleneck")
      ->check(CLI::PositiveNumber);
  app.add_option("--steps", steps, "training steps (one batch each, for all three)")
      ->check(CLI::PositiveNumber);
  app.add_option("--batch", batch_size, "activations per step")->check(CLI::PositiveNumber);
  app.add_option("--lr", lr, "SAE Adam learning rate")->check(CLI::PositiveNumber);
  app.add_option("--rows", rows, "generated activations")->check(CLI::Range(10, 1 << 24));
  app.add_option("--dim", dim, "width d of generated activations")->check(CLI::PositiveNumber);
  app.add_option("--test-fraction", test_fraction, "share of rows held out for evaluation")
      ->check(CLI::Range(0.01, 0.9));
  CLI11_PARSE(app, argc, argv);

  try {
    Progress clock(1, "");
    // 1. Activations [n, d], and a seeded train/test split of the rows.
    std::vector<float> v;
    if (!activations.empty()) {
      const std::string path = activations + ".npy";
      xt::xarray<float> loaded;
      try {
        loaded = xt::load_npy<float>(path);
      } catch (const std::exception& e) {
        NLA_FAIL("custom_bottleneck", "cannot load '{}' as float32 .npy: {}", path, e.what());
      }
      NLA_CHECK(loaded.dimension() == 2 && loaded.shape()[0] >= 10 && loaded.shape()[1] >= 2,
                "custom_bottleneck", "'{}' must be [N >= 10, d >= 2], has {} dimension(s)", path,
                loaded.dimension());
      rows = index_t(loaded.shape()[0]);
      dim = index_t(loaded.shape()[1]);
      v.assign(loaded.begin(), loaded.end());
    } else {
      v = generate_activations(rows, dim, atoms, seed);
    }
    const std::vector<index_t> order = permutation(rows, seed, 1000);
    const index_t n_test = std::max<index_t>(1, index_t(double(rows) * test_fraction));
    const std::vector<index_t> test_rows(order.begin(), order.begin() + n_test);
    const std::vector<index_t> train_rows(order.begin() + n_test, order.end());
    const index_t n_train = index_t(train_rows.size());
    batch_size = std::min(batch_size, n_train);

    // 2. B from the training split: what predicting the mean direction scores.
    FveBaseline baseline(static_cast<std::size_t>(dim));
    for (index_t r : train_rows) baseline.add(v.data() + r * dim);
    const double b = baseline.baseline();
    std::cerr << fmt::format("{} activations of d = {} ({} train, {} test), B = {:.4f}\n", rows,
                             dim, n_train, n_test, b);

    // 3. Three bottlenecks, each an Encoder and a Decoder, behind the same
    //    Autoencoder.
    PcaBasis basis(dim, rank);
    PcaEncoder pca_encoder(basis);
    PcaDecoder pca_decoder(basis);
    Autoencoder<PcaEncoder, PcaDecoder> pca(pca_encoder, pca_decoder, b);

    TopKSaeOptions sae_options;
    sae_options.dim = dim;
    sae_options.width = width;
    sae_options.k = k;
    sae_options.lr = lr;
    sae_options.seed = seed;
    TopKSaeDecoder<float> sae_decoder(sae_options);
    sae_decoder.set_bias(baseline.mean());
    TopKSaeEncoder<float> sae_encoder(sae_decoder);
    Autoencoder<TopKSaeEncoder<float>, TopKSaeDecoder<float>> sae(sae_encoder, sae_decoder, b);

    SignBits sign_bits(dim, bits, baseline.mean(), seed + 1);
    Autoencoder<SignBits, SignBits> custom(sign_bits, sign_bits, b);

    // 4. The same batches for all three; the step's FVE is on the batch
    //    before the update (a fresh-data estimate once the data repeats less).
    const std::vector<index_t> shuffled = permutation(n_train, seed, 1001);
    std::vector<index_t> train_order(shuffled.size());
    for (std::size_t i = 0; i < shuffled.size(); ++i)
      train_order[i] = train_rows[std::size_t(shuffled[i])];
    Progress progress(long(steps), "act");
    for (index_t s = 0; s < steps; ++s) {
      const ActivationBatch batch = gather(v, dim, train_order, s * batch_size, batch_size);
      const AutoencoderStep p = pca.step(batch), a = sae.step(batch), c = custom.step(batch);
      progress.update(
          long(s + 1), double((s + 1) * batch_size),
          fmt::format("train FVE custom {:.3f} pca {:.3f} topk_sae {:.3f}", c.fve, p.fve, a.fve));
    }

    // 5. Held-out FVE, one message per activation.
    const ActivationBatch test = gather(v, dim, test_rows, 0, n_test);
    const double fve_custom = custom.evaluate(test).fve, fve_pca = pca.evaluate(test).fve,
                 fve_sae = sae.evaluate(test).fve;
    std::cerr << fmt::format(
        "test FVE: sign bits ({} bits) {:.4f} | PCA (rank {}) {:.4f} | top-k SAE (k {} of {}) "
        "{:.4f}\n",
        bits, fve_custom, rank, fve_pca, k, width, fve_sae);
    std::cout << json{{"example", "custom_bottleneck"},
                      {"fve", {{"custom", fve_custom}, {"pca", fve_pca}, {"topk_sae", fve_sae}}},
                      {"fve_baseline_B", b},
                      {"seed", seed},
                      {"minutes", clock.elapsed() / 60.0}}
                     .dump()
              << std::endl;
  } catch (const nla::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
