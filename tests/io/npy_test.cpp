// Tests for include/nla/io/npy.hpp.
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <xtensor/xnpy.hpp>
#include <xtensor/xtensor.hpp>

#include "nla/io/npy.hpp"
#include "support/files.hpp"
#include "support/temp_dir.hpp"

namespace fs = std::filesystem;
using Catch::Contains;
using nla::io::load_npy_matrix;
using nla::io::NpyWriter;
using nla::testing::read_bytes;
using nla::testing::TempDir;
using nla::testing::write_bytes;

namespace {

// [rows, columns] with distinct, non-trivial values.
xt::xtensor<float, 2> matrix(std::size_t rows, std::size_t columns, float offset = 0) {
  xt::xtensor<float, 2> m = xt::xtensor<float, 2>::from_shape({rows, columns});
  for (std::size_t i = 0; i < rows; ++i)
    for (std::size_t j = 0; j < columns; ++j)
      m(i, j) = offset + float(i) * 1.5f - float(j) / 7.0f + (i * j % 3 ? 1e-3f : -2.5e4f);
  return m;
}

// Same shape and values (a plain bool: Catch cannot decompose xtensor's ==).
template <class A, class B>
bool same(const A& a, const B& b) {
  return a.shape() == b.shape() && bool(a == b);
}

void write_matrix(const std::string& path, const xt::xtensor<float, 2>& m, std::size_t per_call) {
  NpyWriter w(path, m.shape()[1]);
  std::size_t i = 0;
  while (i < m.shape()[0]) {
    const std::size_t n = std::min(per_call, m.shape()[0] - i);
    if (n == 1)
      w.write_row(&m(i, 0));
    else
      w.write_rows(&m(i, 0), n);
    i += n;
  }
  CHECK(w.rows() == m.shape()[0]);
  w.finish();
  CHECK(w.finished());
}

}  // namespace

TEST_CASE("NpyWriter files load with xt::load_npy and with load_npy_matrix", "[io]") {
  TempDir dir;
  for (std::size_t rows : {std::size_t{0}, std::size_t{1}, std::size_t{5}, std::size_t{3000}}) {
    for (std::size_t per_call : {std::size_t{1}, std::size_t{7}}) {
      const std::string p = dir.file("m.npy");
      const auto m = matrix(rows, 13, float(per_call));
      write_matrix(p, m, per_call);
      // Fixed 128-byte header, then exactly the data.
      CHECK(fs::file_size(p) == nla::io::kNpyHeaderBytes + rows * 13 * 4);
      const xt::xtensor<float, 2> theirs = xt::load_npy<float>(p);
      REQUIRE(theirs.shape()[0] == rows);
      REQUIRE(theirs.shape()[1] == 13);
      CHECK(same(theirs, m));
      const auto ours = load_npy_matrix(p);
      CHECK(same(ours, m));
    }
  }
  // Only the finished file is left: no temporary files.
  CHECK(dir.entries() == std::vector<std::string>{"m.npy"});
}

TEST_CASE("the NpyWriter header is NumPy's version 1.0 format with the final shape", "[io]") {
  TempDir dir;
  const std::string p = dir.file("h.npy");
  write_matrix(p, matrix(42, 3), 5);
  const std::string bytes = read_bytes(p);
  REQUIRE(bytes.size() > nla::io::kNpyHeaderBytes);
  CHECK(bytes.substr(0, 8) == std::string("\x93NUMPY\x01\x00", 8));
  // u16 header length 118: the preamble is 10 bytes, 10 + 118 = 128.
  CHECK(static_cast<unsigned char>(bytes[8]) == 118);
  CHECK(static_cast<unsigned char>(bytes[9]) == 0);
  const std::string header = bytes.substr(10, 118);
  CHECK_THAT(header, Catch::StartsWith("{'descr': '<f4', 'fortran_order': False, 'shape': (42, "
                                       "3), }"));
  CHECK(header.back() == '\n');
}

TEST_CASE("load_npy_matrix reads files written by xt::dump_npy", "[io]") {
  TempDir dir;
  for (auto shape : {std::pair<std::size_t, std::size_t>{7, 4}, {1, 1}, {0, 3}, {300, 70}}) {
    const std::string p = dir.file("x.npy");
    const auto m = matrix(shape.first, shape.second);
    xt::dump_npy(p, m);
    const auto loaded = load_npy_matrix(p);
    REQUIRE(loaded.shape()[0] == shape.first);
    REQUIRE(loaded.shape()[1] == shape.second);
    CHECK(same(loaded, m));
  }
}

TEST_CASE("an unfinished NpyWriter leaves an existing file untouched", "[io]") {
  TempDir dir;
  const std::string p = dir.file("keep.npy");
  const auto original = matrix(4, 6);
  write_matrix(p, original, 2);
  const std::string before = read_bytes(p);
  {
    NpyWriter w(p, 6);
    const auto other = matrix(9, 6, 100);
    w.write_rows(&other(0, 0), 9);
    CHECK(dir.entries().size() == 2);  // the file and the writer's temporary
  }
  CHECK(read_bytes(p) == before);
  CHECK(dir.entries() == std::vector<std::string>{"keep.npy"});
  CHECK(same(load_npy_matrix(p), original));

  // An exception while writing: the same.
  try {
    NpyWriter w(p, 6);
    const auto other = matrix(3, 6, 5);
    w.write_rows(&other(0, 0), 3);
    throw std::runtime_error("interrupted");
  } catch (const std::runtime_error&) {
  }
  CHECK(read_bytes(p) == before);
  CHECK(dir.entries() == std::vector<std::string>{"keep.npy"});

  // A writer with no existing file leaves nothing.
  { NpyWriter w(dir.file("new.npy"), 3); }
  CHECK(!fs::exists(dir.file("new.npy")));
}

TEST_CASE("load_npy_matrix names the file and the fault of a broken file", "[io]") {
  TempDir dir;
  const std::string good = dir.file("good.npy");
  write_matrix(good, matrix(5, 4), 5);
  const std::string bytes = read_bytes(good);
  const std::string p = dir.file("bad.npy");
  auto rejects = [&](const std::string& content, const std::string& fault) {
    write_bytes(p, content);
    CHECK_THROWS_WITH(load_npy_matrix(p), Contains(p) && Contains(fault));
  };

  SECTION("truncated data, header or preamble") {
    rejects(bytes.substr(0, bytes.size() - 1), "truncated");
    rejects(bytes.substr(0, bytes.size() - 16), "truncated");
    rejects(bytes.substr(0, 60), "truncated");
    rejects(bytes.substr(0, 7), "truncated");
    rejects(bytes + std::string(4, '\0'), "unexpected bytes");
  }
  SECTION("not a .npy file or an unknown version") {
    rejects(std::string(200, 'x'), "magic");
    std::string v = bytes;
    v[6] = '\x04';
    rejects(v, "version 4.0");
  }
  SECTION("corrupt header") {
    auto patched = [&](const std::string& from, const std::string& to) {
      std::string b = bytes;
      const auto at = b.find(from);
      REQUIRE(at != std::string::npos);
      b.replace(at, from.size(), to);
      return b;
    };
    rejects(patched("'shape'", "'shxpe'"), "corrupt header");
    rejects(patched("(5, 4)", "(5, 4]"), "corrupt header");
    rejects(patched("(5, 4)", "(5, x)"), "corrupt header");
    rejects(patched("'descr'", "'dxscr'"), "corrupt header");
    rejects(patched("False", "Flase"), "corrupt header");
    std::string no_newline = bytes;
    no_newline[127] = ' ';
    rejects(no_newline, "corrupt header");
    // A header length pointing past the end of the file.
    std::string long_header = bytes.substr(0, 128);
    long_header[9] = '\x10';
    rejects(long_header, "truncated");
  }
  SECTION("wrong dtype, rank or order") {
    xt::dump_npy(p, xt::xtensor<double, 2>({{1.0, 2.0}, {3.0, 4.0}}));
    CHECK_THROWS_WITH(load_npy_matrix(p), Contains(p) && Contains("wrong dtype '<f8'"));
    xt::dump_npy(p, xt::xtensor<int, 2>({{1, 2}}));
    CHECK_THROWS_WITH(load_npy_matrix(p), Contains("wrong dtype '<i4'"));
    xt::dump_npy(p, xt::xtensor<float, 1>({1.f, 2.f, 3.f}));
    CHECK_THROWS_WITH(load_npy_matrix(p),
                      Contains(p) && Contains("wrong rank") && Contains("(3,)"));
    xt::dump_npy(p, xt::xtensor<float, 3>::from_shape({2, 2, 2}));
    CHECK_THROWS_WITH(load_npy_matrix(p), Contains("wrong rank") && Contains("(2, 2, 2)"));
    xt::xtensor<float, 2, xt::layout_type::column_major> fortran = {{1.f, 2.f}, {3.f, 4.f}};
    xt::dump_npy(p, fortran);
    CHECK_THROWS_WITH(load_npy_matrix(p), Contains("fortran_order"));
  }
  SECTION("missing file") {
    CHECK_THROWS_WITH(load_npy_matrix(dir.file("none.npy")),
                      Contains("none.npy") && Contains("cannot open"));
  }
}
