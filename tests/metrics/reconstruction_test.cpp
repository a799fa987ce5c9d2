#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "nla/core/random.hpp"
#include "nla/metrics/reconstruction.hpp"

using namespace nla;

namespace {

// n vectors of dimension d with a shared offset direction (like real
// activations), row-major.
std::vector<float> vectors(std::size_t n, std::size_t d, std::uint64_t seed) {
  std::vector<float> v(n * d);
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < d; ++j)
      v[i * d + j] = float(random_normal(seed, i, j) * (1 + j % 3) + (j == 0 ? 4.0 : 0.0));
  return v;
}

std::vector<double> normalized(const float* x, std::size_t d) {
  const double s = std::sqrt(double(d) / squared_norm(x, d));
  std::vector<double> out(d);
  for (std::size_t j = 0; j < d; ++j) out[j] = x[j] * s;
  return out;
}

}  // namespace

TEST_CASE("normalised MSE is the MSE of sqrt(d)-normalised vectors and equals 2(1 - cos)",
          "[metrics]") {
  const std::size_t d = 7;
  const auto v = vectors(2, d, 1);
  const auto p = normalized(v.data(), d), g = normalized(v.data() + d, d);
  double by_hand = 0;
  for (std::size_t j = 0; j < d; ++j) by_hand += (p[j] - g[j]) * (p[j] - g[j]) / double(d);
  REQUIRE(normalized_mse(v.data(), v.data() + d, d) == Approx(by_hand).epsilon(1e-12));
  REQUIRE(normalized_mse(v.data(), v.data(), d) == Approx(0.0).margin(1e-12));
  // Scale-invariant, unlike the plain MSE.
  std::vector<float> scaled(v.begin(), v.begin() + d);
  for (auto& x : scaled) x *= 3;
  REQUIRE(normalized_mse(scaled.data(), v.data() + d, d) == Approx(by_hand).epsilon(1e-6));
  REQUIRE(mean_squared_error(scaled.data(), v.data(), d) > 1.0);
  const std::vector<float> zero(d, 0.0f);
  REQUIRE_THROWS_WITH(cosine_similarity(zero.data(), v.data(), d), Catch::Contains("norms 0"));
}

TEST_CASE("the streaming FVE baseline equals the two-pass value and 1 - |mu|^2/d", "[metrics]") {
  const std::size_t n = 500, d = 16;
  const auto v = vectors(n, d, 2);
  FveBaseline stream(d);
  for (std::size_t i = 0; i < n; ++i) stream.add(v.data() + i * d);
  // Two passes by hand.
  std::vector<double> mu(d, 0.0);
  std::vector<std::vector<double>> rows;
  for (std::size_t i = 0; i < n; ++i) {
    rows.push_back(normalized(v.data() + i * d, d));
    for (std::size_t j = 0; j < d; ++j) mu[j] += rows.back()[j] / double(n);
  }
  double b = 0, mu2 = 0;
  for (const auto& r : rows)
    for (std::size_t j = 0; j < d; ++j) b += (r[j] - mu[j]) * (r[j] - mu[j]) / double(n * d);
  for (double m : mu) mu2 += m * m;
  REQUIRE(stream.baseline() == Approx(b).epsilon(1e-10));
  REQUIRE(stream.baseline() == Approx(1 - mu2 / double(d)).epsilon(1e-10));
  REQUIRE(b < 0.8);  // the shared direction makes the baseline small

  // FVE: a perfect reconstruction explains everything; predicting the
  // normalised mean scores the looser baseline exactly, and 1 - that / B < 0.
  REQUIRE(fraction_of_variance_explained(0.0, b) == 1.0);
  std::vector<float> mean_f(mu.begin(), mu.end());
  double loose = 0;
  for (std::size_t i = 0; i < n; ++i)
    loose += normalized_mse(mean_f.data(), v.data() + i * d, d) / double(n);
  REQUIRE(stream.baseline_against_normalized_mean() == Approx(loose).epsilon(1e-6));
  REQUIRE(stream.baseline_against_normalized_mean() >= stream.baseline());
  REQUIRE(fraction_of_variance_explained(loose, b) < 0);
}

TEST_CASE("the FVE baseline rejects zero and non-finite vectors", "[metrics][errors]") {
  FveBaseline b(3);
  const float zero[3] = {0, 0, 0}, nan[3] = {1, std::nanf(""), 0};
  REQUIRE_THROWS_WITH(b.add(zero), Catch::Contains("vector 0 has norm 0"));
  REQUIRE_THROWS_WITH(b.add(nan), Catch::Contains("norm nan"));
  REQUIRE_THROWS_WITH(b.baseline(), Catch::Contains("no vectors"));
  REQUIRE_THROWS_WITH(fraction_of_variance_explained(0.1, 0.0), Catch::Contains("baseline"));
}
