#include <cmath>
#include <cstdint>

#include <catch2/catch.hpp>
#include <nla/nla.hpp>

using namespace nla;

// Known-answer vectors of Philox-4x32-10 published with the Random123 library.
TEST_CASE("philox4x32-10 reproduces the published known-answer vectors", "[core]") {
  auto a = philox4x32(0, 0, 0, 0, 0, 0);
  REQUIRE(a.v[0] == 0x6627e8d5u);
  REQUIRE(a.v[1] == 0xe169c58du);
  REQUIRE(a.v[2] == 0xbc57ac4cu);
  REQUIRE(a.v[3] == 0x9b00dbd8u);
  auto b = philox4x32(0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu);
  REQUIRE(b.v[0] == 0x408f276du);
  REQUIRE(b.v[1] == 0x41c83b0eu);
  REQUIRE(b.v[2] == 0xa20bc7c6u);
  REQUIRE(b.v[3] == 0x6d5451fdu);
  auto c = philox4x32(0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u, 0xa4093822u, 0x299f31d0u);
  REQUIRE(c.v[0] == 0xd16cfe09u);
  REQUIRE(c.v[1] == 0x94fdccebu);
  REQUIRE(c.v[2] == 0x5001e420u);
  REQUIRE(c.v[3] == 0x24126ea1u);
}

TEST_CASE("random draws are pure functions of (seed, stream, index)", "[core]") {
  REQUIRE(random_bits(7, 3, 12345) == random_bits(7, 3, 12345));
  REQUIRE(random_bits(7, 3, 12345) != random_bits(7, 4, 12345));
  REQUIRE(random_bits(7, 3, 12345) != random_bits(8, 3, 12345));
  Rng rng(42);
  REQUIRE(rng.take_stream() == 0);
  REQUIRE(rng.take_stream() == 1);
  REQUIRE(rng == Rng(42, 2));
}

TEST_CASE("uniform and normal draws have the right moments", "[core]") {
  const int n = 200000;
  double su = 0, su2 = 0, sn = 0, sn2 = 0, sn4 = 0;
  for (int i = 0; i < n; ++i) {
    const double u = random_uniform(1, 2, i), z = random_normal(1, 2, i);
    REQUIRE(u > 0.0);
    REQUIRE(u < 1.0);
    su += u;
    su2 += u * u;
    sn += z;
    sn2 += z * z;
    sn4 += z * z * z * z;
  }
  // Tolerances are about five standard errors of each estimate.
  REQUIRE(su / n == Approx(0.5).margin(5 * std::sqrt(1.0 / 12 / n)));
  REQUIRE(su2 / n - (su / n) * (su / n) == Approx(1.0 / 12).margin(0.002));
  REQUIRE(sn / n == Approx(0.0).margin(5 / std::sqrt(double(n))));
  REQUIRE(sn2 / n == Approx(1.0).margin(5 * std::sqrt(2.0 / n)));
  REQUIRE(sn4 / n == Approx(3.0).margin(5 * std::sqrt(96.0 / n)));
}
