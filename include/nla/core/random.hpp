#pragma once
// Counter-based random numbers (Philox-4x32-10, Salmon et al., SC'11).
//
// A draw is a pure function of (seed, stream, index): no state is advanced by
// generating, so element i of a tensor gets the same number on the CPU, on a
// GPU thread or on another rank, and an RNG "state" is only two integers that
// a checkpoint stores. Rng hands out stream ids; each fill uses one stream and
// indexes it by element.

#include <cmath>
#include <cstdint>

#include "nla/core/config.hpp"

namespace nla {

struct Philox4x32 {
  std::uint32_t v[4];
};

// Philox-4x32 with 10 rounds; counter (c0..c3), key (k0, k1).
NLA_HOST_DEVICE inline Philox4x32 philox4x32(std::uint32_t c0, std::uint32_t c1, std::uint32_t c2,
                                             std::uint32_t c3, std::uint32_t k0, std::uint32_t k1) {
  constexpr std::uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
  constexpr std::uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    const std::uint64_t p0 = static_cast<std::uint64_t>(kMul0) * c0;
    const std::uint64_t p1 = static_cast<std::uint64_t>(kMul1) * c2;
    const std::uint32_t hi0 = static_cast<std::uint32_t>(p0 >> 32),
                        lo0 = static_cast<std::uint32_t>(p0);
    const std::uint32_t hi1 = static_cast<std::uint32_t>(p1 >> 32),
                        lo1 = static_cast<std::uint32_t>(p1);
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
    k0 += kWeyl0;
    k1 += kWeyl1;
  }
  return {{c0, c1, c2, c3}};
}

// Four 32-bit words for block `block` of stream `stream` under `seed`.
NLA_HOST_DEVICE inline Philox4x32 random_block(std::uint64_t seed, std::uint64_t stream,
                                               std::uint64_t block) {
  return philox4x32(static_cast<std::uint32_t>(block), static_cast<std::uint32_t>(block >> 32),
                    static_cast<std::uint32_t>(stream), static_cast<std::uint32_t>(stream >> 32),
                    static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32));
}

// The 32-bit word number `index` of a stream (four words per Philox block).
NLA_HOST_DEVICE inline std::uint32_t random_bits(std::uint64_t seed, std::uint64_t stream,
                                                 std::uint64_t index) {
  return random_block(seed, stream, index >> 2).v[index & 3];
}

// Uniform in the open interval (0, 1): (bits + 0.5) / 2^32, exact in double.
NLA_HOST_DEVICE inline double bits_to_unit(std::uint32_t bits) {
  return (static_cast<double>(bits) + 0.5) * (1.0 / 4294967296.0);
}

NLA_HOST_DEVICE inline double random_uniform(std::uint64_t seed, std::uint64_t stream,
                                             std::uint64_t index) {
  return bits_to_unit(random_bits(seed, stream, index));
}

// Standard normal by Box-Muller: element 2j and 2j+1 share one pair of
// uniforms (words 2j, 2j+1), giving the cosine and sine branches. Computed in
// double so backends with different libm round the same way to fp32.
NLA_HOST_DEVICE inline double random_normal(std::uint64_t seed, std::uint64_t stream,
                                            std::uint64_t index) {
  const std::uint64_t pair = index & ~std::uint64_t{1};
  const Philox4x32 block = random_block(seed, stream, pair >> 2);
  const double u1 = bits_to_unit(block.v[pair & 3]);
  const double u2 = bits_to_unit(block.v[(pair & 3) + 1]);
  const double radius = std::sqrt(-2.0 * std::log(u1));
  const double angle = 6.283185307179586476925 * u2;
  return (index & 1) ? radius * std::sin(angle) : radius * std::cos(angle);
}

// A seed plus a counter of streams handed out. Each consumer (a parameter
// init, a batch of samples, a data-loader step) takes a fresh stream, so the
// state to checkpoint is (seed, next_stream).
class Rng {
 public:
  explicit Rng(std::uint64_t seed = 0, std::uint64_t next_stream = 0)
      : seed_(seed), next_stream_(next_stream) {}

  std::uint64_t seed() const { return seed_; }
  std::uint64_t next_stream() const { return next_stream_; }
  std::uint64_t take_stream() { return next_stream_++; }

  bool operator==(const Rng& o) const { return seed_ == o.seed_ && next_stream_ == o.next_stream_; }

 private:
  std::uint64_t seed_;
  std::uint64_t next_stream_;
};

}  // namespace nla
