#pragma once
// FNV-1a 64: a small, platform-independent, streamable hash of bytes, used as
// the checksum of checkpoints, the fingerprint of a model's weights and the
// key of per-document random draws. Not cryptographic: it detects accidental
// change, not tampering.
//   h_0 = offset basis;  h_{i+1} = (h_i xor byte_i) * prime   (mod 2^64)
// Pass the previous h to continue over the next chunk.

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace nla {

inline constexpr std::uint64_t kFnvOffsetBasis = 0xcbf29ce484222325ull;
inline constexpr std::uint64_t kFnvPrime = 0x100000001b3ull;

inline std::uint64_t fnv1a64(const void* data, std::size_t size,
                             std::uint64_t h = kFnvOffsetBasis) {
  const unsigned char* p = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < size; ++i) h = (h ^ p[i]) * kFnvPrime;
  return h;
}

inline std::uint64_t fnv1a64(std::string_view s) {
  return fnv1a64(s.data(), s.size());
}

}  // namespace nla
