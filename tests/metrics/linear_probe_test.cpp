#include <catch2/catch.hpp>

#include "nla/core/random.hpp"
#include "nla/metrics/linear_probe.hpp"

using namespace nla;

namespace {

// n points in d dimensions: class c = i % classes, at mean c * separation
// along axis c plus unit Gaussian noise (shifted by a large common offset so
// standardisation matters).
void clusters(std::size_t n, std::size_t d, int classes, double separation, std::uint64_t seed,
              xt::xtensor<float, 2>& x, std::vector<int>& y) {
  x = xt::xtensor<float, 2>::from_shape({n, d});
  y.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    y[i] = int(i % std::size_t(classes));
    for (std::size_t j = 0; j < d; ++j)
      x(i, j) = float(100.0 + random_normal(seed, i, j) + (int(j) == y[i] ? separation : 0.0));
  }
}

}  // namespace

TEST_CASE("a linear probe reads a linearly separable attribute", "[metrics]") {
  xt::xtensor<float, 2> train, test;
  std::vector<int> ytrain, ytest;
  clusters(600, 16, 5, 4.0, 1, train, ytrain);
  clusters(300, 16, 5, 4.0, 2, test, ytest);
  const auto probe = LinearProbe::fit(train, ytrain, 5);
  REQUIRE(probe.accuracy(test, ytest) > 0.95);
}

TEST_CASE("a linear probe is at chance on labels unrelated to the features", "[metrics]") {
  xt::xtensor<float, 2> train, test;
  std::vector<int> ytrain, ytest;
  clusters(600, 16, 4, 0.0, 3, train, ytrain);
  clusters(2000, 16, 4, 0.0, 4, test, ytest);
  const auto probe = LinearProbe::fit(train, ytrain, 4);
  // Chance is 0.25; 2000 test rows give a standard error of about 0.01.
  REQUIRE(probe.accuracy(test, ytest) < 0.32);
}

TEST_CASE("a linear probe rejects bad labels and features", "[metrics][errors]") {
  xt::xtensor<float, 2> x = xt::zeros<float>({3, 2});
  REQUIRE_THROWS_WITH(LinearProbe::fit(x, {0, 1}, 2), Catch::Contains("3 feature rows for 2"));
  REQUIRE_THROWS_WITH(LinearProbe::fit(x, {0, 1, 2}, 2), Catch::Contains("label[2] = 2"));
  x(1, 1) = std::numeric_limits<float>::quiet_NaN();
  REQUIRE_THROWS_WITH(LinearProbe::fit(x, {0, 1, 0}, 2), Catch::Contains("(1, 1)"));
}
