#pragma once
// Whole-file reads and writes for tests that build, corrupt or compare files
// byte for byte. A file that cannot be opened fails the test where it is used.

#include <catch2/catch.hpp>

#include <fstream>
#include <iterator>
#include <string>

namespace nla::testing {

inline std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  REQUIRE(out);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out);
}

}  // namespace nla::testing
