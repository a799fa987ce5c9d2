// Tests for include/nla/io/safetensors.hpp and safetensors_shards.hpp.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "nla/io/safetensors.hpp"
#include "nla/io/safetensors_shards.hpp"
#include "support/files.hpp"
#include "support/temp_dir.hpp"

using Catch::Contains;
using nla::io::SafetensorsDtype;
using nla::io::SafetensorsFile;
using nla::io::SafetensorsShards;
using nla::io::SafetensorsWriter;
using nla::testing::read_bytes;
using nla::testing::TempDir;
using nla::testing::write_bytes;

namespace {

// A file built by hand: the length, the header text as given, the data.
std::string raw_file(const std::string& header, const std::string& data) {
  const std::uint64_t n = header.size();
  std::string out(reinterpret_cast<const char*>(&n), 8);
  return out + header + data;
}

std::string floats(std::initializer_list<float> xs) {
  std::string s;
  for (float x : xs) s.append(reinterpret_cast<const char*>(&x), 4);
  return s;
}

// Opens `bytes` as a safetensors file and returns the error message.
std::string open_error(const TempDir& dir, const std::string& bytes) {
  const std::string path = dir.file("bad.safetensors");
  write_bytes(path, bytes);
  try {
    SafetensorsFile f(path);
  } catch (const nla::Error& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST_CASE("safetensors: written tensors read back with their dtype, shape and metadata") {
  TempDir dir;
  const std::vector<float> a = {1.5f, -2.25f, 3e-8f, 4e7f, 0.f, -0.f};
  const std::vector<double> b = {0.1, -1e300};
  const std::vector<nla::bf16> c = {nla::bf16(1.0f), nla::bf16(-3.5f), nla::bf16(1e-3f)};
  SafetensorsWriter w;
  w.set_metadata("format", "pt");
  w.add("layer.weight", {2, 3}, a.data());
  w.add("b", {2}, b.data());
  w.add("c", {3}, c.data());
  w.add<float>("empty", {0, 4}, nullptr);
  w.write(dir.file("m.safetensors"));
  CHECK(dir.entries().size() == 1);  // no temporary file left behind

  const SafetensorsFile f(dir.file("m.safetensors"));
  CHECK(f.metadata().at("format") == "pt");
  REQUIRE(f.tensors().size() == 4);
  CHECK(f.tensors()[0].name == "layer.weight");  // data order
  CHECK(f.tensor("layer.weight").shape == std::vector<std::uint64_t>{2, 3});
  CHECK(f.tensor("b").dtype == SafetensorsDtype::F64);
  CHECK(f.tensor("c").dtype == SafetensorsDtype::BF16);
  CHECK(f.read<float>("layer.weight") == a);
  CHECK(f.read<double>("b") == b);
  const auto c_back = f.read<float>("c");
  for (std::size_t i = 0; i < c.size(); ++i) CHECK(c_back[i] == float(c[i]));
  CHECK(f.read<float>("empty").empty());

  // The header is padded so that the data section starts 8-byte aligned.
  std::uint64_t header_bytes;
  std::memcpy(&header_bytes, read_bytes(dir.file("m.safetensors")).data(), 8);
  CHECK(header_bytes % 8 == 0);

  // Reading into a narrower type converts: double -> float, float -> bf16.
  CHECK(f.read<nla::bf16>("layer.weight")[1] == nla::bf16(-2.25f));
  CHECK_THROWS_WITH(f.read<float>("b"), Contains("not finite"));  // -1e300 overflows float
  CHECK_THROWS_WITH(f.read<float>("missing"), Contains("has no tensor 'missing'"));
  std::vector<float> wrong(5);
  CHECK_THROWS_WITH(f.read("layer.weight", wrong.data(), 5),
                    Contains("shape [2, 3] (6 values), expected 5"));
}

TEST_CASE("safetensors: F16 and BF16 are widened exactly") {
  TempDir dir;
  // Half bit patterns and their values: normal, subnormal, largest, signed.
  const std::vector<std::uint16_t> half_bits = {0x3c00, 0xc000, 0x7bff, 0x0001,
                                                0x03ff, 0x0400, 0x8000, 0x3555};
  const std::vector<float> half_values = {1.0f,
                                          -2.0f,
                                          65504.0f,
                                          std::ldexp(1.0f, -24),
                                          std::ldexp(1023.0f, -24),
                                          std::ldexp(1.0f, -14),
                                          -0.0f,
                                          std::ldexp(1.0f + 341.0f / 1024, -2)};
  const std::vector<std::uint16_t> bf16_bits = {0x3f80, 0xc0b0, 0x0001};
  const std::vector<float> bf16_values = {1.0f, -5.5f, std::ldexp(1.0f, -133)};
  SafetensorsWriter w;
  w.add_bytes("h", SafetensorsDtype::F16, {half_bits.size()},
              std::string(reinterpret_cast<const char*>(half_bits.data()), 2 * half_bits.size()));
  w.add_bytes("b", SafetensorsDtype::BF16, {bf16_bits.size()},
              std::string(reinterpret_cast<const char*>(bf16_bits.data()), 2 * bf16_bits.size()));
  w.add_bytes("i", SafetensorsDtype::I64, {1}, std::string(8, '\0'));
  w.write(dir.file("h.safetensors"));
  const SafetensorsFile f(dir.file("h.safetensors"));
  CHECK(f.read<float>("h") == half_values);
  CHECK(f.read<float>("b") == bf16_values);
  CHECK_THROWS_WITH(f.read<float>("i"), Contains("dtype I64 is not a floating-point type"));

  // Every finite half against the formula of core/half.hpp.
  for (std::uint32_t bits = 0; bits < 0x10000; ++bits) {
    const std::uint32_t e = (bits >> 10) & 0x1f, m = bits & 0x3ff;
    const float sign = bits & 0x8000 ? -1.0f : 1.0f;
    const float x = nla::half_bits_to_float(std::uint16_t(bits));
    if (e == 31) {
      REQUIRE((m == 0 ? std::isinf(x) : std::isnan(x)));
      continue;
    }
    const float expected = e == 0 ? sign * std::ldexp(float(m), -24)
                                  : sign * std::ldexp(1.0f + m / 1024.0f, int(e) - 15);
    REQUIRE(x == expected);
    REQUIRE(std::signbit(x) == bool(bits & 0x8000));
  }
}

TEST_CASE("safetensors: NaN in a tensor is an error naming the tensor and index") {
  TempDir dir;
  const std::vector<float> v = {1, 2, std::numeric_limits<float>::quiet_NaN()};
  SafetensorsWriter w;
  w.add("w", {3}, v.data());
  w.write(dir.file("n.safetensors"));
  const SafetensorsFile f(dir.file("n.safetensors"));
  CHECK_THROWS_WITH(f.read<float>("w"), Contains("tensor 'w'") && Contains("flat index 2"));
}

TEST_CASE("safetensors: every malformed header is a clear error") {
  TempDir dir;
  const std::string data8 = floats({1, 2});
  auto entry = [](const std::string& name, const std::string& dtype, const std::string& shape,
                  const std::string& offsets) {
    return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape +
           ",\"data_offsets\":" + offsets + "}";
  };
  const std::string ok = entry("a", "F32", "[2]", "[0,8]");
  CHECK(open_error(dir, raw_file("{" + ok + "}", data8)) == "no error");

  CHECK_THAT(open_error(dir, std::string("\x05\0\0", 3)), Contains("truncated: 3 bytes"));
  CHECK_THAT(open_error(dir, raw_file("{" + ok + "}", data8).substr(0, 20)),
             Contains("truncated: the header needs"));
  CHECK_THAT(open_error(dir, std::string("\xff\xff\xff\xff\xff\xff\xff\x7f", 8) + "{}"),
             Contains("exceeds the limit"));
  CHECK_THAT(open_error(dir, raw_file("{\"a\":", data8)), Contains("not valid JSON"));
  CHECK_THAT(open_error(dir, raw_file("[1,2]", "")), Contains("not a JSON object"));
  CHECK_THAT(open_error(dir, raw_file("{" + entry("a", "F31", "[2]", "[0,8]") + "}", data8)),
             Contains("tensor 'a': unknown dtype \"F31\""));
  CHECK_THAT(
      open_error(dir, raw_file("{" + entry("a", "F32", "[3]", "[0,8]") + "}", data8)),
      Contains("tensor 'a': shape [3] of F32 needs 12 bytes but data_offsets [0, 8] span 8"));
  CHECK_THAT(open_error(dir, raw_file("{" + entry("a", "F32", "[-2]", "[0,8]") + "}", data8)),
             Contains("shape entry -2 is not a non-negative integer"));
  CHECK_THAT(open_error(dir, raw_file("{" + entry("a", "F32", "[2]", "[8,0]") + "}", data8)),
             Contains("end before they begin"));
  CHECK_THAT(
      open_error(
          dir, raw_file("{" + entry("a", "F32", "[4611686018427387904,4]", "[0,8]") + "}", data8)),
      Contains("overflows"));
  CHECK_THAT(
      open_error(dir, raw_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],"
                               "\"extra\":1}}",
                               data8)),
      Contains("tensor 'a': unexpected key 'extra'"));
  CHECK_THAT(open_error(dir, raw_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", data8)),
             Contains("needs dtype, shape and data_offsets"));
  CHECK_THAT(open_error(dir, raw_file("{" + ok + "," + ok + "}", data8)),
             Contains("names 'a' twice"));
  CHECK_THAT(open_error(dir, raw_file("{\"__metadata__\":{\"k\":1}," + ok + "}", data8)),
             Contains("value of 'k' is not a string"));
  // Ranges: overlap, gap, past the end, bytes left over.
  CHECK_THAT(open_error(dir, raw_file("{" + entry("a", "F32", "[2]", "[0,8]") + "," +
                                          entry("b", "F32", "[1]", "[4,8]") + "}",
                                      data8)),
             Contains("tensor 'b' (bytes 4..8) overlaps tensor 'a'"));
  CHECK_THAT(open_error(dir, raw_file("{" + entry("a", "F32", "[1]", "[4,8]") + "}", data8)),
             Contains("gap of 4 bytes before tensor 'a'"));
  CHECK_THAT(open_error(dir, raw_file("{" + entry("a", "F32", "[3]", "[0,12]") + "}", data8)),
             Contains("tensor 'a' ends at byte 12 but the data section has 8 bytes"));
  CHECK_THAT(open_error(dir, raw_file("{" + entry("a", "F32", "[1]", "[0,4]") + "}", data8)),
             Contains("the data section has 8 bytes but the tensors cover 4"));
  // The file is named in every message.
  CHECK_THAT(open_error(dir, raw_file("[]", "")), Contains("bad.safetensors"));
  CHECK_THROWS_WITH(SafetensorsFile(dir.file("absent.safetensors")), Contains("cannot open"));
}

TEST_CASE("safetensors: sharded directories round-trip and their index is checked") {
  TempDir dir;
  std::vector<float> v(100);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = float(i) / 3;
  SafetensorsWriter w;
  w.set_metadata("format", "pt");
  for (int i = 0; i < 5; ++i) w.add("t" + std::to_string(i), {20}, v.data() + 20 * i);
  // 80 bytes per tensor, shards of at most 200 bytes: 2 + 2 + 1 tensors.
  nla::io::write_safetensors_directory(dir.path().string(), w, 200);
  const std::string index_path = dir.file("model.safetensors.index.json");
  const auto index = nlohmann::json::parse(read_bytes(index_path));
  CHECK(index["metadata"]["total_size"] == 400);
  CHECK(index["weight_map"]["t4"] == "model-00003-of-00003.safetensors");
  const SafetensorsShards shards(dir.path().string());
  CHECK(shards.file_count() == 3);
  CHECK(shards.names().size() == 5);
  for (int i = 0; i < 5; ++i)
    CHECK(shards.file_of("t" + std::to_string(i)).read<float>("t" + std::to_string(i)) ==
          std::vector<float>(v.begin() + 20 * i, v.begin() + 20 * (i + 1)));
  CHECK_THROWS_WITH(shards.tensor("t9"), Contains("no shard of the checkpoint holds tensor 't9'"));

  auto index_error = [&](const nlohmann::json& bad) {
    write_bytes(index_path, bad.dump());
    try {
      SafetensorsShards s(dir.path().string());
    } catch (const nla::Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  nlohmann::json bad = index;
  bad["weight_map"]["t0"] = "model-00002-of-00003.safetensors";
  CHECK_THAT(index_error(bad), Contains("maps tensor 't0' to shard 'model-00002-of-00003"));
  bad = index;
  bad["weight_map"].erase("t1");
  CHECK_THAT(index_error(bad), Contains("holds tensor 't1', which the index maps elsewhere"));
  bad = index;
  bad["weight_map"]["t0"] = "../escape.safetensors";
  CHECK_THAT(index_error(bad), Contains("not a file name in the directory"));
  CHECK_THAT(index_error({{"metadata", {}}}), Contains("has no \"weight_map\" object"));
  write_bytes(index_path, "{");
  CHECK_THROWS_WITH(SafetensorsShards(dir.path().string()), Contains("not valid JSON"));

  // A single file replaces the shards' index when the model fits one file.
  nla::io::write_safetensors_directory(dir.path().string(), w);
  CHECK(SafetensorsShards(dir.path().string()).file_count() == 1);
  CHECK_FALSE(std::filesystem::exists(index_path));
  TempDir empty;
  CHECK_THROWS_WITH(SafetensorsShards(empty.path().string()),
                    Contains("has neither model.safetensors nor"));
}
