#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>

#include <catch2/catch.hpp>
#include <nla/nla.hpp>

using nla::bf16;

namespace {
float bits_to_float(std::uint32_t u) {
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
}
}  // namespace

TEST_CASE("bf16 keeps the values it can hold exactly", "[core][bf16]") {
  // Every float whose low 16 bits are zero is a bf16 value.
  for (float x : {0.0f, -0.0f, 1.0f, -2.5f, 0.15625f, 65536.0f, 1.0e-38f}) {
    const float exact = bits_to_float(std::uint32_t(bf16(x).bits) << 16);
    CHECK(float(bf16(exact)) == exact);
  }
  CHECK(float(bf16(1.0f)) == 1.0f);
  CHECK(float(bf16(-2.5f)) == -2.5f);
  CHECK(bf16(1.0f).bits == 0x3f80);
}

TEST_CASE("bf16 rounds to nearest, ties to even", "[core][bf16]") {
  // Near 1 the spacing is 2^-7; 1 + 2^-8 is a tie between 1 (even) and 1 + 2^-7.
  CHECK(float(bf16(1.0f + std::ldexp(1.0f, -8))) == 1.0f);
  // 1 + 3 * 2^-8 ties between 1 + 2^-7 (odd) and 1 + 2^-6 (even): rounds up.
  CHECK(float(bf16(1.0f + 3 * std::ldexp(1.0f, -8))) == 1.0f + std::ldexp(1.0f, -6));
  // Just above the tie rounds up, just below rounds down.
  CHECK(float(bf16(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20))) ==
        1.0f + std::ldexp(1.0f, -7));
  CHECK(float(bf16(1.0f + std::ldexp(1.0f, -9))) == 1.0f);
  // Relative error of any normal float is at most 2^-9.
  for (float x : {3.14159f, -123.456f, 1e-20f, 7e30f})
    CHECK(std::abs(float(bf16(x)) - x) <= std::abs(x) * std::ldexp(1.0f, -9));
}

TEST_CASE("bf16 keeps infinities and NaN, and overflows to infinity", "[core][bf16]") {
  const float inf = std::numeric_limits<float>::infinity();
  CHECK(float(bf16(inf)) == inf);
  CHECK(float(bf16(-inf)) == -inf);
  CHECK(std::isnan(float(bf16(std::numeric_limits<float>::quiet_NaN()))));
  // A NaN whose payload sits only in the dropped bits must not become inf.
  CHECK(std::isnan(float(bf16(bits_to_float(0x7f800001u)))));
  CHECK(float(bf16(std::numeric_limits<float>::max())) == inf);
}

TEST_CASE("bf16 arithmetic runs in float and rounds on store", "[core][bf16]") {
  bf16 x = 1.0f;
  x += 1.0f / 1024;  // below half the spacing at 1: no change
  CHECK(float(x) == 1.0f);
  x *= 3.0f;
  CHECK(float(x) == 3.0f);
  const bf16 y = 0.5;  // from double
  CHECK(float(x * y) == 1.5f);
  CHECK(nla::accum_t<bf16>(0.1f) == 0.1f);
  CHECK(std::string(nla::ScalarTraits<bf16>::kName) == "bf16");
}
