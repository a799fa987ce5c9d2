// The two non-text baselines, PCA (bottleneck/pca_bottleneck.hpp) and the
// top-k sparse autoencoder (bottleneck/topk_sae.hpp), through the generic
// Autoencoder.
#include <catch2/catch.hpp>

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <vector>

#include "nla/bottleneck/autoencoder.hpp"
#include "nla/bottleneck/pca_bottleneck.hpp"
#include "nla/bottleneck/topk_sae.hpp"
#include "nla/core/random.hpp"
#include "nla/metrics/reconstruction.hpp"
#include "support/gradcheck.hpp"

using namespace nla;

namespace {

using Matrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// `count` orthonormal directions of R^d (Gram-Schmidt of Philox normals),
// row i = direction i: [count, d].
Matrix orthonormal_directions(index_t count, index_t d, std::uint64_t seed) {
  Matrix q(count, d);
  for (index_t i = 0; i < count; ++i) {
    for (index_t j = 0; j < d; ++j)
      q(i, j) = random_normal(seed, std::uint64_t(i), std::uint64_t(j));
    for (index_t p = 0; p < i; ++p) q.row(i) -= q.row(i).dot(q.row(p)) * q.row(p);
    q.row(i).normalize();
  }
  return q;
}

// n vectors v = sum_{i<r} a_i q_i + noise: a_0 ~ 3 + 0.5 N is a shared mean
// direction, a_i ~ scale_i N for i >= 1 with decreasing scales. The
// normalised vectors sqrt(d) v/|v| stay in the r-dimensional span of the q_i
// (up to the noise), so their centred covariance has rank r.
// Returns [n, d].
std::vector<float> low_rank_vectors(index_t n, index_t d, index_t r, double noise,
                                    std::uint64_t seed) {
  const Matrix q = orthonormal_directions(r, d, seed);
  std::vector<float> v(std::size_t(n * d));
  for (index_t s = 0; s < n; ++s) {
    Eigen::RowVectorXd x = Eigen::RowVectorXd::Zero(d);
    for (index_t i = 0; i < r; ++i) {
      const double z = random_normal(seed + 1, std::uint64_t(s), std::uint64_t(i));
      const double a = i == 0 ? 3.0 + 0.5 * z : 2.0 * std::pow(0.7, double(i)) * z;
      x += a * q.row(i);
    }
    for (index_t j = 0; j < d; ++j)
      v[std::size_t(s * d + j)] =
          float(x(j) + noise * random_normal(seed + 2, std::uint64_t(s), std::uint64_t(j)));
  }
  return v;
}

// n vectors, each a positive combination of k distinct atoms out of a
// dictionary of `atoms` random unit directions: v = sum_{j<k} c_j D_{i_j},
// c_j uniform in [0.5, 1.5]. After normalisation still an exact k-sparse,
// non-negative code of the same dictionary. Returns [n, d].
std::vector<float> sparse_dictionary_vectors(index_t n, index_t d, index_t atoms, index_t k,
                                             std::uint64_t seed) {
  Matrix dictionary(atoms, d);
  for (index_t i = 0; i < atoms; ++i) {
    for (index_t j = 0; j < d; ++j)
      dictionary(i, j) = random_normal(seed, std::uint64_t(i), std::uint64_t(j));
    dictionary.row(i).normalize();
  }
  std::vector<float> v(std::size_t(n * d), 0.0f);
  std::vector<index_t> order(static_cast<std::size_t>(atoms));
  for (index_t s = 0; s < n; ++s) {
    // The first k of a Philox Fisher-Yates shuffle: k distinct atoms.
    std::iota(order.begin(), order.end(), 0);
    for (index_t j = 0; j < k; ++j) {
      const index_t pick =
          j + index_t(random_bits(seed + 1, std::uint64_t(s), std::uint64_t(j)) % (atoms - j));
      std::swap(order[std::size_t(j)], order[std::size_t(pick)]);
      const double c = 0.5 + random_uniform(seed + 2, std::uint64_t(s), std::uint64_t(j));
      for (index_t c2 = 0; c2 < d; ++c2)
        v[std::size_t(s * d + c2)] += float(c * dictionary(order[std::size_t(j)], c2));
    }
  }
  return v;
}

ActivationBatch make_batch(const std::vector<float>& v, index_t d, index_t first, index_t n) {
  ActivationBatch b;
  b.dim = d;
  b.vectors.assign(v.begin() + first * d, v.begin() + (first + n) * d);
  return b;
}

double fve_baseline(const std::vector<float>& v, index_t d) {
  FveBaseline baseline(static_cast<std::size_t>(d));
  for (std::size_t i = 0; i < v.size(); i += std::size_t(d)) baseline.add(v.data() + i);
  return baseline.baseline();
}

// sqrt(d) v / |v| per row, in double: [n, d].
Matrix normalized(const std::vector<float>& v, index_t d) {
  const index_t n = index_t(v.size()) / d;
  Matrix x(n, d);
  for (index_t i = 0; i < n; ++i) {
    for (index_t j = 0; j < d; ++j) x(i, j) = v[std::size_t(i * d + j)];
    x.row(i) *= std::sqrt(double(d)) / x.row(i).norm();
  }
  return x;
}

}  // namespace

// ---------------------------------------------------------------- PCA ----

TEST_CASE("PCA: rank >= the data's rank explains almost everything", "[bottleneck]") {
  const index_t n = 1200, d = 24, r = 5;
  const auto v = low_rank_vectors(n, d, r, 1e-3, 11);
  const double b = fve_baseline(v, d);
  for (index_t rank : {r, r + 3}) {
    PcaBasis basis(d, rank);
    basis.fit(v);
    PcaEncoder encoder(basis);
    PcaDecoder decoder(basis);
    Autoencoder<PcaEncoder, PcaDecoder> ae(encoder, decoder, b);
    const auto eval = ae.evaluate(make_batch(v, d, 0, n));
    INFO("rank " << rank << " fve " << eval.fve);
    REQUIRE(eval.fve > 0.999);
    REQUIRE(eval.fve <= 1.0);
  }
}

TEST_CASE("PCA: rank < the data's rank explains the top-k eigenvalue share", "[bottleneck]") {
  const index_t n = 1500, d = 20, r = 6;
  const auto v = low_rank_vectors(n, d, r, 1e-3, 21);
  const double b = fve_baseline(v, d);
  // Expected independently: singular values of the centred normalised data
  // (JacobiSVD, not the eigen-solver under test), lambda_i = sigma_i^2 / n.
  Matrix x = normalized(v, d);
  const Eigen::RowVectorXd mu = x.colwise().mean();
  Matrix centred = x.rowwise() - mu;
  Eigen::JacobiSVD<Matrix> svd(centred, Eigen::ComputeThinV);
  const Eigen::VectorXd lambda = svd.singularValues().array().square() / double(n);
  REQUIRE(lambda.sum() / double(d) == Approx(b).epsilon(1e-9));  // B = trace(C) / d

  for (index_t rank = 1; rank < r; ++rank) {
    const double share = lambda.head(rank).sum() / lambda.sum();
    PcaBasis basis(d, rank);
    basis.fit(v);
    PcaEncoder encoder(basis);
    PcaDecoder decoder(basis);
    Autoencoder<PcaEncoder, PcaDecoder> ae(encoder, decoder, b);
    const ActivationBatch batch = make_batch(v, d, 0, n);
    const auto eval = ae.evaluate(batch);
    // PCA minimises the plain squared error of v_n: its FVE on the training
    // data is the eigenvalue share exactly.
    const auto prediction = decoder.decode(encoder.encode(batch, false), batch.vectors, false);
    double plain = 0;
    for (index_t i = 0; i < n; ++i)
      for (index_t j = 0; j < d; ++j) {
        const double e = prediction.predictions[std::size_t(i * d + j)] - x(i, j);
        plain += e * e / double(n * d);
      }
    INFO("rank " << rank << ": share " << share << ", plain FVE " << 1 - plain / b
                 << ", normalised FVE " << eval.fve);
    REQUIRE(1 - plain / b == Approx(share).margin(1e-5));
    REQUIRE(basis.explained_share() == Approx(share).margin(1e-9));
    // The reported FVE normalises the prediction too, so it only agrees with
    // the share to first order; recomputed from the SVD's directions V_k,
    // p = mu + V_k V_k^T (x - mu), it must match exactly.
    const Matrix vk = svd.matrixV().leftCols(rank);
    const Matrix p = (centred * vk * vk.transpose()).rowwise() + mu;
    double normalized = 0;
    for (index_t i = 0; i < n; ++i)
      normalized +=
          2 * (1 - p.row(i).dot(x.row(i)) / (p.row(i).norm() * x.row(i).norm())) / double(n);
    REQUIRE(eval.fve == Approx(1 - normalized / b).margin(1e-5));
    REQUIRE(eval.fve == Approx(share).margin(0.05));
  }
}

TEST_CASE("PCA: the streamed fit through Autoencoder::step equals the one-shot fit",
          "[bottleneck]") {
  const index_t n = 1000, d = 16, r = 4, rank = 4;
  const auto v = low_rank_vectors(n, d, r, 0.05, 31);
  const double b = fve_baseline(v, d);
  PcaBasis one_shot(d, rank);
  one_shot.fit(v);

  PcaBasis streamed(d, rank);
  PcaEncoder encoder(streamed);
  PcaDecoder decoder(streamed);
  Autoencoder<PcaEncoder, PcaDecoder> ae(encoder, decoder, b);
  // Uneven batches, the first step with an empty basis.
  const std::vector<index_t> sizes = {1, 7, 100, 250, 3, 339, 300};
  index_t first = 0;
  for (std::size_t s = 0; s < sizes.size(); ++s) {
    const auto step = ae.step(make_batch(v, d, first, sizes[s]));
    if (s == 0) REQUIRE(step.mse_nrm == 2.0);  // nothing learned yet
    first += sizes[s];
  }
  REQUIRE(first == n);
  REQUIRE(streamed.count() == n);
  for (index_t j = 0; j < d; ++j)
    REQUIRE(streamed.mean()[std::size_t(j)] ==
            Approx(one_shot.mean()[std::size_t(j)]).margin(1e-12));
  for (index_t i = 0; i < rank; ++i) {
    REQUIRE(streamed.eigenvalues()[std::size_t(i)] ==
            Approx(one_shot.eigenvalues()[std::size_t(i)]).epsilon(1e-9));
    for (index_t j = 0; j < d; ++j)
      REQUIRE(streamed.components()[std::size_t(i * d + j)] ==
              Approx(one_shot.components()[std::size_t(i * d + j)]).margin(1e-8));
  }
  PcaEncoder encoder1(one_shot);
  PcaDecoder decoder1(one_shot);
  Autoencoder<PcaEncoder, PcaDecoder> ae1(encoder1, decoder1, b);
  const auto batch = make_batch(v, d, 0, n);
  REQUIRE(ae.evaluate(batch).fve == Approx(ae1.evaluate(batch).fve).margin(1e-9));
  // The step's own report: FVE of the pre-update basis on a fresh batch.
  REQUIRE(ae.step(make_batch(v, d, 0, 200)).fve > 0.5);
}

TEST_CASE("PCA: the basis is orthonormal and sorted", "[bottleneck]") {
  const index_t d = 12;
  const auto v = low_rank_vectors(400, d, 5, 0.2, 41);
  for (index_t rank : {index_t(1), index_t(5), d}) {
    PcaBasis basis(d, rank);
    basis.fit(v);
    const Eigen::Map<const Matrix> u(basis.components().data(), rank, d);
    REQUIRE((u * u.transpose() - Matrix::Identity(rank, rank)).cwiseAbs().maxCoeff() < 1e-10);
    for (index_t i = 1; i < rank; ++i)
      REQUIRE(basis.eigenvalues()[std::size_t(i)] <= basis.eigenvalues()[std::size_t(i - 1)]);
  }
  PcaBasis full(d, d);
  full.fit(v);
  REQUIRE(full.explained_share() == Approx(1.0).epsilon(1e-12));
}

TEST_CASE("PCA: bad input is rejected with the reason", "[bottleneck]") {
  const index_t d = 8;
  REQUIRE_THROWS_WITH(PcaBasis(d, d + 1), Catch::Contains("rank k = 9"));
  REQUIRE_THROWS_WITH(PcaBasis(d, 0), Catch::Contains("rank k = 0"));
  REQUIRE_THROWS_WITH(PcaBasis(0, 1), Catch::Contains("d = 0"));
  PcaBasis basis(d, 2);
  PcaEncoder encoder(basis);
  PcaDecoder decoder(basis);
  Autoencoder<PcaEncoder, PcaDecoder> ae(encoder, decoder, 1.0);
  const auto v = low_rank_vectors(10, d, 3, 0.1, 51);
  REQUIRE_THROWS_WITH(ae.evaluate(make_batch(v, d, 0, 10)), Catch::Contains("seen no vectors"));
  ActivationBatch wrong;
  wrong.dim = d + 1;
  wrong.vectors.assign(std::size_t(d + 1), 1.0f);
  REQUIRE_THROWS_WITH(ae.step(wrong), Catch::Contains("d = 9"));
  std::vector<float> bad(v.begin(), v.begin() + d);
  bad[3] = std::numeric_limits<float>::quiet_NaN();
  REQUIRE_THROWS_WITH(basis.add(bad.data(), 1), Catch::Contains("non-finite value at 3"));
  const std::vector<float> zero(std::size_t(d), 0.0f);
  REQUIRE_THROWS_WITH(basis.add(zero.data(), 1), Catch::Contains("norm 0"));
  basis.fit(v);
  REQUIRE_THROWS_WITH(decoder.decode({PcaCoefficients(3, 0.0f)}, zero, false),
                      Catch::Contains("3 coefficients, the basis rank is 2"));
  basis.add(v.data(), 1);
  REQUIRE_THROWS_WITH(basis.components(), Catch::Contains("call refit()"));
}

// ---------------------------------------------------- top-k sparse AE ----

TEST_CASE("top-k SAE: the code is the exact top-k of ReLU(pre), strongest first", "[bottleneck]") {
  // W_enc = I, b_enc = b_dec = 0: pre = v_n = sqrt(6) v / |v|, a positive
  // multiple of v, so the order is v's.
  const index_t d = 6;
  const std::vector<float> v = {1, 2, -1, 2, 0.5f, 1};
  const double scale = std::sqrt(6.0 / (1 + 4 + 1 + 4 + 0.25 + 1));
  ActivationBatch batch;
  batch.dim = d;
  batch.vectors = v;
  for (index_t k : {3, 6}) {
    TopKSaeOptions o;
    o.dim = d;
    o.width = d;
    o.k = k;
    TopKSaeDecoder<double> decoder(o);
    TopKSaeEncoder<double> encoder(decoder);
    std::fill(encoder.parameters().begin(), encoder.parameters().end(), 0.0);
    for (index_t i = 0; i < d; ++i) encoder.parameters()[std::size_t(i * d + i)] = 1.0;
    const auto code = encoder.encode(batch, false).at(0);
    // Ties (2, 2) and (1, 1) go to the lower index; ReLU(-1) = 0 comes last.
    const std::vector<std::int32_t> expected = {1, 3, 0, 5, 4, 2};
    REQUIRE(code.indices == std::vector<std::int32_t>(expected.begin(), expected.begin() + k));
    for (index_t j = 0; j < k; ++j)
      REQUIRE(code.values[std::size_t(j)] ==
              Approx(std::max(0.0, double(v[std::size_t(expected[std::size_t(j)])]) * scale))
                  .margin(1e-12));
  }

  // Random weights against a brute-force selection.
  TopKSaeOptions o;
  o.dim = 10;
  o.width = 40;
  o.k = 5;
  o.seed = 3;
  TopKSaeDecoder<double> decoder(o);
  TopKSaeEncoder<double> encoder(decoder);
  for (std::size_t i = 0; i < encoder.parameters().size(); ++i)
    encoder.parameters()[i] = random_normal(4, 0, i);
  const auto data = low_rank_vectors(20, o.dim, 6, 0.3, 5);
  const ActivationBatch many = make_batch(data, o.dim, 0, 20);
  const auto codes = encoder.encode(many, false);
  const Matrix x = normalized(data, o.dim);
  for (index_t r = 0; r < 20; ++r) {
    std::vector<double> relu(static_cast<std::size_t>(o.width));
    for (index_t i = 0; i < o.width; ++i) {
      double pre = encoder.bias()[i];
      for (index_t j = 0; j < o.dim; ++j) pre += encoder.weight()[i * o.dim + j] * x(r, j);
      relu[std::size_t(i)] = std::max(0.0, pre);
    }
    std::vector<double> sorted = relu;
    std::sort(sorted.rbegin(), sorted.rend());
    for (index_t j = 0; j < o.k; ++j) {
      const auto& c = codes[std::size_t(r)];
      REQUIRE(c.values[std::size_t(j)] == Approx(sorted[std::size_t(j)]).margin(1e-12));
      REQUIRE(c.values[std::size_t(j)] ==
              Approx(relu[std::size_t(c.indices[std::size_t(j)])]).margin(1e-12));
    }
  }
}

TEST_CASE("top-k SAE: the gradient through the generic step matches finite differences",
          "[bottleneck][gradcheck]") {
  TopKSaeOptions o;
  o.dim = 7;
  o.width = 12;
  o.k = 3;
  o.lr = 0;                     // the step computes gradients and leaves the parameters
  o.unit_norm_decoder = false;  // so is the rescaling, which would move W_dec
  o.seed = 9;
  TopKSaeDecoder<double> decoder(o);
  TopKSaeEncoder<double> encoder(decoder);
  // A generic point: random biases and encoder weights, not W_dec^T.
  auto& pe = encoder.parameters();
  auto& pd = decoder.parameters();
  for (std::size_t i = 0; i < pe.size(); ++i) pe[i] = 0.5 * random_normal(10, 0, i);
  for (std::size_t i = 0; i < pd.size(); ++i)
    pd[i] += (i < std::size_t(o.width * o.dim) ? 0.2 : 0.5) * random_normal(11, 0, i);
  const auto data = low_rank_vectors(9, o.dim, 5, 0.5, 12);
  const ActivationBatch batch = make_batch(data, o.dim, 0, 9);

  Autoencoder<TopKSaeEncoder<double>, TopKSaeDecoder<double>> ae(encoder, decoder, 1.0);
  const std::vector<double> before_e = pe, before_d = pd;
  ae.step(batch);
  REQUIRE(pe == before_e);
  REQUIRE(pd == before_d);
  const std::vector<double> grad_e = encoder.gradients(), grad_d = decoder.gradients();
  // Some encoder rows and the encoder's path into b_dec must carry gradient.
  REQUIRE(std::any_of(grad_e.begin(), grad_e.end(), [](double g) { return g != 0; }));

  const auto loss = [&] {
    decoder.decode(encoder.encode(batch, false), batch.vectors, false);
    return decoder.loss();
  };
  testing::GradcheckOptions g;
  g.max_checks = 200;
  g.atol = 1e-8;
  g.rtol = 1e-5;  // dmessage crosses the concept as float
  const index_t we = o.width * o.dim;
  testing::gradcheck("W_enc", pe.data(), grad_e.data(), we, loss, g);
  testing::gradcheck("b_enc", pe.data() + we, grad_e.data() + we, o.width, loss, g);
  testing::gradcheck("W_dec", pd.data(), grad_d.data(), we, loss, g);
  testing::gradcheck("b_dec", pd.data() + we, grad_d.data() + we, o.dim, loss, g);
}

TEST_CASE("top-k SAE: training through Autoencoder::step learns a sparse dictionary",
          "[bottleneck]") {
  const index_t d = 32, atoms = 64, k = 4, n_train = 4096, n_test = 1024, batch = 256;
  const auto v = sparse_dictionary_vectors(n_train + n_test, d, atoms, k, 61);
  const std::vector<float> train(v.begin(), v.begin() + n_train * d);
  FveBaseline stats(static_cast<std::size_t>(d));
  for (index_t i = 0; i < n_train; ++i) stats.add(train.data() + i * d);
  const double b = stats.baseline();
  const ActivationBatch test = make_batch(v, d, n_train, n_test);

  TopKSaeOptions o;
  o.dim = d;
  o.width = atoms;
  o.k = k;
  o.lr = 1e-2;
  o.seed = 62;
  TopKSaeDecoder<float> decoder(o);
  decoder.set_bias(stats.mean());
  TopKSaeEncoder<float> encoder(decoder);
  Autoencoder<TopKSaeEncoder<float>, TopKSaeDecoder<float>> ae(encoder, decoder, b);
  const double fve_init = ae.evaluate(test).fve;
  for (index_t s = 0; s < 600; ++s) ae.step(make_batch(v, d, (s * batch) % n_train, batch));
  const double fve = ae.evaluate(test).fve;

  PcaBasis basis(d, k);
  basis.fit(train);
  PcaEncoder pca_encoder(basis);
  PcaDecoder pca_decoder(basis);
  Autoencoder<PcaEncoder, PcaDecoder> pca(pca_encoder, pca_decoder, b);
  const double fve_pca = pca.evaluate(test).fve;
  INFO("FVE at init " << fve_init << ", trained " << fve << ", PCA with k = " << k << " "
                      << fve_pca);
  REQUIRE(fve > fve_init + 0.5);
  REQUIRE(fve > 0.8);
  REQUIRE(fve > fve_pca + 0.5);
}

TEST_CASE("top-k SAE: bad options and messages are rejected with the reason", "[bottleneck]") {
  TopKSaeOptions o;
  o.dim = 4;
  o.width = 3;
  o.k = 4;
  REQUIRE_THROWS_WITH(TopKSaeDecoder<float>(o), Catch::Contains("k = 4 must be in [1, width = 3]"));
  o.k = 2;
  o.lr = -1;
  REQUIRE_THROWS_WITH(TopKSaeDecoder<float>(o), Catch::Contains("learning rate -1"));
  o.lr = 1e-3;
  TopKSaeDecoder<float> decoder(o);
  TopKSaeEncoder<float> encoder(decoder);
  ActivationBatch wrong;
  wrong.dim = 5;
  wrong.vectors.assign(5, 1.0f);
  REQUIRE_THROWS_WITH(encoder.encode(wrong, false), Catch::Contains("d = 5"));
  const std::vector<float> target(4, 1.0f);
  SparseCode<float> code{{0, 7}, {1.0f, 0.5f}};
  REQUIRE_THROWS_WITH(decoder.decode({code}, target, false), Catch::Contains("feature 7"));
  REQUIRE_THROWS_WITH(decoder.learn(), Catch::Contains("no decode"));
  // An encoder's learn() needs the decoder's dL/d values.
  ActivationBatch ok;
  ok.dim = 4;
  ok.vectors = {1, 2, 3, 4};
  const auto messages = encoder.encode(ok, true);
  REQUIRE_THROWS_WITH(encoder.learn(ok, messages, DecoderFeedback{}),
                      Catch::Contains("dmessage has 0 values"));
}
