#pragma once
// IEEE-754 binary16 ("half", F16) to float. Only the widening direction: the
// library reads F16 checkpoints but computes and stores in fp32, bf16 or fp64.
//
//   sign s (1 bit), exponent e (5 bits, bias 15), mantissa m (10 bits)
//   e = 0:       (-1)^s * m * 2^-24           (zero and subnormals)
//   0 < e < 31:  (-1)^s * (1 + m/1024) * 2^(e-15)
//   e = 31:      inf (m = 0) or NaN (payload kept in the top mantissa bits)
//
// Every half is exactly representable as a float, so the conversion is exact.

#include <cstdint>
#include <cstring>

namespace nla {

inline float half_bits_to_float(std::uint16_t h) {
  const std::uint32_t sign = std::uint32_t(h & 0x8000u) << 16;
  const std::uint32_t exponent = (h >> 10) & 0x1fu, mantissa = h & 0x3ffu;
  std::uint32_t bits;
  if (exponent == 0x1fu) {
    bits = sign | 0x7f800000u | (mantissa << 13);
  } else if (exponent != 0) {
    bits = sign | ((exponent + 127 - 15) << 23) | (mantissa << 13);
  } else if (mantissa == 0) {
    bits = sign;
  } else {
    // Subnormal: shift the mantissa up until its leading 1 is the implicit bit.
    int shift = 0;
    std::uint32_t m = mantissa;
    while ((m & 0x400u) == 0) {
      m <<= 1;
      ++shift;
    }
    bits = sign | (std::uint32_t(127 - 15 + 1 - shift) << 23) | ((m & 0x3ffu) << 13);
  }
  float x;
  std::memcpy(&x, &bits, sizeof x);
  return x;
}

}  // namespace nla
