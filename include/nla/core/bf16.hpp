#pragma once
// bf16: bfloat16, the upper half of an IEEE-754 float (sign, 8-bit exponent,
// 7-bit mantissa): fp32's range at 3 significant digits. Bit-compatible with
// CUDA's __nv_bfloat16, so device buffers of bf16 go straight to cuBLASLt.
//
// Arithmetic converts to float (implicitly, both ways), so a kernel written
// for T computes in fp32 and rounds once when it stores a T. Conversion
// rounds to nearest, ties to even: add 0x7fff plus the lowest kept bit, then
// truncate; NaN stays a (quiet) NaN.

#include <string.h>
#include <cstdint>
#include <type_traits>

#include "nla/core/config.hpp"

namespace nla {

struct bf16 {
  std::uint16_t bits;

  bf16() = default;
  NLA_HOST_DEVICE bf16(float x) : bits(round(x)) {}
  template <class X, class = std::enable_if_t<std::is_arithmetic<X>::value &&
                                              !std::is_same<X, float>::value>>
  NLA_HOST_DEVICE bf16(X x) : bits(round(float(x))) {}

  NLA_HOST_DEVICE operator float() const {
    const std::uint32_t u = std::uint32_t(bits) << 16;
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
  }

  NLA_HOST_DEVICE bf16& operator+=(float y) { return *this = bf16(float(*this) + y); }
  NLA_HOST_DEVICE bf16& operator-=(float y) { return *this = bf16(float(*this) - y); }
  NLA_HOST_DEVICE bf16& operator*=(float y) { return *this = bf16(float(*this) * y); }
  NLA_HOST_DEVICE bf16& operator/=(float y) { return *this = bf16(float(*this) / y); }

  static NLA_HOST_DEVICE bf16 from_bits(std::uint16_t b) {
    bf16 x;
    x.bits = b;
    return x;
  }

 private:
  static NLA_HOST_DEVICE std::uint16_t round(float x) {
    std::uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return std::uint16_t((u >> 16) | 0x0040u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return std::uint16_t(u >> 16);
  }
};

static_assert(sizeof(bf16) == 2 && std::is_trivially_copyable<bf16>::value,
              "bf16 must be two bytes, like __nv_bfloat16");

}  // namespace nla
