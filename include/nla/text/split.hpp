#pragma once
// Train / validation / test splits by a keyed hash, so a split is a pure
// function of (seed, key) and never of the order documents are read in.
//
// A key lands in Validation when u < validation, in Test when
// validation <= u < validation + test, and in Train otherwise, where
// u = uniform(seed, kSplitStream, key) is a Philox draw in (0, 1). The draw is
// exact IEEE arithmetic, so the same key goes to the same split everywhere.

#include <cstdint>

#include "nla/core/error.hpp"
#include "nla/core/random.hpp"

namespace nla {

enum class Split { Train = 0, Validation = 1, Test = 2 };

inline const char* split_name(Split split) {
  switch (split) {
    case Split::Train:
      return "train";
    case Split::Validation:
      return "validation";
    case Split::Test:
      return "test";
  }
  return "unknown";
}

// Fractions of keys held out; the rest is training data.
struct SplitFractions {
  double validation = 0.1;
  double test = 0.1;

  void check(const char* op) const {
    NLA_CHECK(validation >= 0.0 && test >= 0.0 && validation + test < 1.0, op,
              "split fractions validation {} and test {} must be non-negative and sum below 1",
              validation, test);
  }
  double fraction(Split split) const {
    switch (split) {
      case Split::Validation:
        return validation;
      case Split::Test:
        return test;
      case Split::Train:
        break;
    }
    return 1.0 - validation - test;
  }
};

// Philox stream reserved for split assignment (far from the small stream ids
// that Rng::take_stream hands out).
inline constexpr std::uint64_t kSplitStream = 0x5350'4C49'5400'0000ull;  // "SPLIT"

inline Split assign_split(std::uint64_t seed, std::uint64_t key, const SplitFractions& fractions) {
  const double u = random_uniform(seed, kSplitStream, key);
  if (u < fractions.validation) return Split::Validation;
  if (u < fractions.validation + fractions.test) return Split::Test;
  return Split::Train;
}

}  // namespace nla
