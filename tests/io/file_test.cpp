// Tests for include/nla/io/file.hpp.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

#include <catch2/catch.hpp>

#include "nla/io/file.hpp"
#include "support/files.hpp"
#include "support/temp_dir.hpp"

namespace fs = std::filesystem;
using Catch::Contains;

namespace {
using nla::testing::read_bytes;
using nla::testing::TempDir;
void write_text(nla::io::TemporaryFile const& f, const std::string& s) {
  f.write(s.data(), s.size());
}
}  // namespace

TEST_CASE("read_file reads whole files and names the file in errors", "[io]") {
  TempDir dir;
  const std::string p = dir.file("a.txt");
  for (std::size_t size : {std::size_t{1}, std::size_t{65535}, std::size_t{65536},
                           std::size_t{65537}, std::size_t{3 * 65536}, std::size_t{1000003}}) {
    std::string content(size, '\0');
    for (std::size_t i = 0; i < size; ++i) content[i] = static_cast<char>(i * 131 + i / 7);
    std::ofstream(p, std::ios::binary) << content;
    CHECK(nla::io::read_file("op", "file", p) == content);
  }
  std::ofstream(p, std::ios::trunc).close();
  CHECK_THROWS_WITH(nla::io::read_file("op", "file", p),
                    "op: file '" + p + "': empty file (0 bytes)");
  CHECK_THROWS_WITH(nla::io::read_file("op", "thing", dir.file("missing")),
                    Contains("op: thing '" + dir.file("missing") + "': cannot open: No such file"));
  CHECK_THROWS_WITH(nla::io::read_file("op", "file", dir.path().string()),
                    Contains("not a regular file"));
}

TEST_CASE("write_file_atomically replaces a file or leaves it untouched", "[io]") {
  TempDir dir;
  const std::string p = dir.file("out.txt");
  nla::io::write_file_atomically("op", "file", p, [](const auto& f) { write_text(f, "first"); });
  CHECK(read_bytes(p) == "first");
  nla::io::write_file_atomically("op", "file", p, [](const auto& f) {
    write_text(f, "xxxxxx");
    f.write("AB", 2, 0);
  });
  CHECK(read_bytes(p) == "ABxxxx");
  CHECK(dir.entries().size() == 1);

  // A writer that throws: the exception passes unchanged, no temporary stays.
  CHECK_THROWS_WITH(nla::io::write_file_atomically("op", "file", p,
                                                   [](const auto& f) {
                                                     write_text(f, "partial");
                                                     throw std::runtime_error("boom");
                                                   }),
                    "boom");
  CHECK(read_bytes(p) == "ABxxxx");
  CHECK(dir.entries().size() == 1);

  // The temporary's name is taken by a directory: cannot create.
  const std::string blocker = p + ".tmp." + std::to_string(::getpid());
  fs::create_directory(blocker);
  CHECK_THROWS_WITH(
      nla::io::write_file_atomically("save", "checkpoint", p, [](const auto&) {}),
      Contains("save: checkpoint '" + p + "': cannot create temporary file '" + blocker + "'"));
  CHECK(fs::is_directory(blocker));
  fs::remove(blocker);

  // The target is a non-empty directory: rename fails, the temporary is removed.
  const std::string target = dir.file("sub");
  fs::create_directory(target);
  std::ofstream(dir.file("sub/x")) << "x";
  CHECK_THROWS_WITH(
      nla::io::write_file_atomically("op", "file", target,
                                     [](const auto& f) { write_text(f, "y"); }),
      Contains("cannot rename temporary file '" + target + ".tmp.") && Contains("' over it: "));
  CHECK(!fs::exists(target + ".tmp." + std::to_string(::getpid())));

  // Missing directory.
  CHECK_THROWS_WITH(
      nla::io::write_file_atomically("op", "file", dir.file("no/such/x"), [](const auto&) {}),
      Contains("cannot create temporary file") && Contains("No such file"));
  // Relative path in the current directory (directory sync of ".").
  const fs::path old = fs::current_path();
  fs::current_path(dir.path());
  nla::io::write_file_atomically("op", "file", "rel.txt",
                                 [](const auto& f) { write_text(f, "r"); });
  fs::current_path(old);
  CHECK(read_bytes(dir.file("rel.txt")) == "r");
}
