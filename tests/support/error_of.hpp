#pragma once
// Checking error messages in tests that want more than Catch's
// REQUIRE_THROWS_WITH: the message itself, to test several parts of it.

#include <string>

#include "nla/core/error.hpp"

namespace nla::testing {

// The message of the nla::Error that `f` throws ("" when it does not throw).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return {};
}

inline bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

}  // namespace nla::testing
